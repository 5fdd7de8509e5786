# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Customers' clients accept the platform's certificates (needs the running lab).

The MTAs' certificates come from the lab's ACME CA (Debian's pebble, DNS-01 through
the lab DNS: playbooks/tls.yml). A client as customers run it (Python's smtplib with
default certificate checks, host name included) trusts pebble's root and nothing
else: STARTTLS on 25 and 587 and TLS on 465 through both load balancers, and
STARTTLS on every MX host of the bounce domain, verify. Negative controls: the same
client with the system's trust store (where the lab's CA is not) and the same client
asking for a name the certificate does not carry are refused.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import threading
from typing import List, Tuple

import pytest

from reliability_support import Lab, lab_resolver, lab_vault, run_lab_playbooks

pytestmark = pytest.mark.lab

LOGINS = {"transactional": "support@kibamail.com", "marketing": "news@kibamail.com"}
# One line of pebble's log per ACME request it serves.
PEBBLE_REQUEST = re.compile(r"^Pebble \S+ \S+ (GET|POST|HEAD) (\S+) -> calling handler", re.M)


def trusting_the_lab_ca(lab: Lab) -> ssl.SSLContext:
    """A default client context (chain and host name checked) whose only trust is pebble's root."""
    return ssl.create_default_context(cafile=lab.data["acme"]["root_pem"])


class NamedSMTP(smtplib.SMTP):
    """smtplib's client, connecting to an address while checking the certificate for a name
    (the lab's names resolve only through the lab resolver, not on this machine)."""

    def __init__(self, server_name: str, **kwargs) -> None:
        self.server_name = server_name
        super().__init__(**kwargs)

    def connect(self, host="localhost", port=0, source_address=None):
        reply = super().connect(host, port, source_address)
        self._host = self.server_name   # what starttls() checks the certificate against
        return reply


class NamedSMTPSSL(smtplib.SMTP_SSL):
    """The same for TLS from the first byte (465)."""

    def __init__(self, server_name: str, **kwargs) -> None:
        self.server_name = server_name
        super().__init__(**kwargs)

    def _get_socket(self, host, port, timeout):
        self._host = self.server_name   # what the TLS handshake checks the certificate against
        return super()._get_socket(host, port, timeout)


def handshake(address: str, port: int, name: str, context: ssl.SSLContext) -> dict:
    """Greet, STARTTLS (25, 587) or TLS from the start (465), checking the certificate for ``name``."""
    if port == 465:
        client: smtplib.SMTP = NamedSMTPSSL(name, timeout=30, context=context, local_hostname="client.recipient.example")
        client.connect(address, port)
    else:
        client = NamedSMTP(name, timeout=30, local_hostname="client.recipient.example")
        client.connect(address, port)
        client.ehlo()
        client.starttls(context=context)
    with client:
        client.ehlo()
        return client.sock.getpeercert()


def lb_listeners(lab: Lab) -> List[Tuple[str, str, str, int]]:
    return [(pool, entry["host"], entry["address"], port)
            for pool, entry in sorted(lab.data["submission"].items()) for port in (25, 465, 587)]


def mx_listeners(lab: Lab) -> List[Tuple[str, str]]:
    """Every MX host of the bounce domain and its address, as a receiver's resolver finds them."""
    resolver = lab_resolver(lab.data)
    found = []
    for mx in resolver.resolve("kb-bounces.kbmta.net", "MX"):
        host = mx.exchange.to_text().rstrip(".")
        for a in resolver.resolve(host, "A"):
            found.append((host, a.to_text()))
    return sorted(found)


def names_of(peer: dict) -> List[str]:
    return sorted(value for kind, value in peer.get("subjectAltName", ()) if kind == "DNS")


def test_every_load_balancer_listener_verifies_against_the_lab_ca(lab: Lab) -> None:
    seen = {}
    for _pool, name, address, port in lb_listeners(lab):
        peer = handshake(address, port, name, trusting_the_lab_ca(lab))
        assert name in names_of(peer), (name, port, names_of(peer))
        seen["%s:%d" % (name, port)] = dict(x[0] for x in peer["issuer"]).get("commonName")
    assert len(seen) == 6 and all(issuer and "Pebble" in issuer for issuer in seen.values()), seen


def test_every_bounce_mx_host_verifies_against_the_lab_ca(lab: Lab) -> None:
    listeners = mx_listeners(lab)
    assert len(listeners) >= 4, listeners
    for host, address in listeners:
        peer = handshake(address, 25, host, trusting_the_lab_ca(lab))
        assert host in names_of(peer)


@pytest.mark.parametrize("pool", sorted(LOGINS))
def test_a_customer_logs_in_over_a_verified_connection(lab: Lab, pool: str) -> None:
    entry = lab.data["submission"][pool]
    client = NamedSMTP(entry["host"], timeout=30, local_hostname="client.kibamail.com")
    with client:
        client.connect(entry["address"], 587)
        client.starttls(context=trusting_the_lab_ca(lab))
        code, _text = client.login(LOGINS[pool], str(lab_vault()["vault_sasl_passwords"][LOGINS[pool]]))
        assert code == 235


def test_the_system_trust_store_refuses_the_lab_certificates(lab: Lab) -> None:
    """Negative control: without the lab CA's root the same client refuses (the check is real)."""
    _pool, name, address, port = lb_listeners(lab)[0]
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(address, port, name, ssl.create_default_context())


def test_a_name_the_certificate_does_not_carry_is_refused(lab: Lab) -> None:
    """Negative control: the transactional load balancer does not answer for the marketing name."""
    transactional, marketing = lab.data["submission"]["transactional"], lab.data["submission"]["marketing"]
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch|doesn't match"):
        handshake(transactional["address"], 587, marketing["host"], trusting_the_lab_ca(lab))


def pebble_requests(lab: Lab) -> List[str]:
    """Every ACME request the lab's pebble served so far ('METHOD /path'), from its log."""
    log = (lab.directory / "pebble.log").read_text(errors="replace")
    return ["%s %s" % m for m in PEBBLE_REQUEST.findall(log)]


def mta_serials(lab: Lab) -> dict:
    """Each MTA's certificate serial, asked of the MTA itself under its own name (a load
    balancer would answer with either MTA of its pool)."""
    return {host: handshake(address, 25, host, trusting_the_lab_ca(lab))["serialNumber"]
            for host, address in mx_listeners(lab)}


class OpenSession:
    """A verified customer session through a load balancer, kept busy with NOOPs (every
    10 s, from a thread) while something else runs, as a client between messages."""

    def __init__(self, lab: Lab, entry: dict) -> None:
        self.client = NamedSMTP(entry["host"], timeout=30, local_hostname="client.kibamail.com")
        self.client.connect(entry["address"], 587)
        self.client.starttls(context=trusting_the_lab_ca(lab))
        self.client.ehlo()
        self.serial = self.client.sock.getpeercert()["serialNumber"]
        self.replies: List[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._keep_busy, daemon=True)
        self.thread.start()

    def _keep_busy(self) -> None:
        while not self.stop.wait(10):
            try:
                self.replies.append(self.client.noop()[0])
            except (smtplib.SMTPException, OSError):
                self.replies.append(-1)
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=40)
        self.client.close()


def test_a_renewal_replaces_every_certificate_keeps_open_sessions_and_a_rerun_asks_the_ca_nothing(lab: Lab) -> None:
    """Issue 22's renewal proof on the running lab: with a renew threshold above pebble's
    validity, tls.yml renews every MTA's certificate and mta.yml installs them with a Postfix
    reload; a customer session opened before it keeps working through it, new sessions see
    the new certificate, and a second tls.yml run sends pebble no request at all."""
    mtas = lab.hosts_with_role("mta_transactional") + lab.hosts_with_role("mta_marketing")
    entry = lab.data["submission"]["transactional"]
    old_serials = mta_serials(lab)
    session = OpenSession(lab, entry)
    before = pebble_requests(lab)
    try:
        run = run_lab_playbooks(lab, ["playbooks/tls.yml", "playbooks/mta.yml",
                                      "-e", "platform_acme_renew_days=3650"])
        assert run.rc == 0, (run.stdout + run.stderr)[-4000:]
        # The session opened before the reload still answers: Postfix was reloaded, not restarted.
        assert session.client.noop()[0] == 250
        assert session.client.ehlo()[0] == 250
        assert session.replies and set(session.replies) == {250}, session.replies
    finally:
        session.close()
    orders = [r for r in pebble_requests(lab)[len(before):] if r.startswith("POST /order-plz")]
    assert len(orders) == len(mtas), orders
    new_serials = mta_serials(lab)
    assert sorted(new_serials) == sorted(old_serials) and len(new_serials) == len(mtas), new_serials
    still_old = sorted(host for host in new_serials if new_serials[host] == old_serials[host])
    assert not still_old, "still showing the old certificate: %s" % still_old
    assert session.serial in old_serials.values()     # the open session began on an old certificate

    # Nothing due now: the CA is not contacted at all, and nothing changes.
    before = pebble_requests(lab)
    again = run_lab_playbooks(lab, ["playbooks/tls.yml"])
    assert again.rc == 0, (again.stdout + again.stderr)[-4000:]
    assert pebble_requests(lab) == before
    assert again.recap.get("localhost") == 0, again.plain[-2000:]


def test_an_mta_keeps_its_ca_certificate_when_the_controller_has_no_copy(lab: Lab) -> None:
    """A controller without platform_acme_cert_dir (a new one, a lost directory): mta.yml
    must not put a self-signed pair over the CA's certificate in place. us-mta1 keeps it,
    the run says why and changes nothing."""
    acme_dir = lab.directory / "acme"
    moved = lab.directory / "acme.moved-by-test"
    mta = lab.hosts_with_role("mta_transactional")[0]
    # the MTA's own name (on its certificate), as the bounce domain's MX list gives it
    name = next(host for host, address in mx_listeners(lab) if address == lab.address(mta))
    before = handshake(lab.address(mta), 25, name, trusting_the_lab_ca(lab))["serialNumber"]
    acme_dir.rename(moved)
    try:
        run = run_lab_playbooks(lab, ["playbooks/mta.yml", "--limit", mta])
    finally:
        moved.rename(acme_dir)
    assert run.rc == 0, (run.stdout + run.stderr)[-4000:]
    assert "the certificate in place stays" in run.plain, run.plain[-3000:]
    assert run.recap.get(mta) == 0, run.plain[-3000:]
    assert handshake(lab.address(mta), 25, name, trusting_the_lab_ca(lab))["serialNumber"] == before
