# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures: a plan built by the collection's own plan code, DKIM keys, a loopback BIND."""

from __future__ import annotations

import datetime
import os
import shutil
import ssl
import sys

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.dirname(__file__))   # verify_support; tests/support (bind) is on pythonpath (pytest.ini)

from ansible_collections.kibamail.email_platform.plugins.module_utils.plan import build_plan  # noqa: E402
from bind import NAMED, LoopbackBind, free_port, platform_records, zones_for  # noqa: E402
from lab_spec import lab_spec  # noqa: E402
from verify_support import DNSBL_ZONE, NAME, b64, rsa_key  # noqa: E402


@pytest.fixture(scope="session")
def plan():
    return build_plan(lab_spec())


@pytest.fixture(scope="session")
def dkim_keys(plan):
    return {domain: rsa_key() for domain in plan["customers"]}


@pytest.fixture
def healthy(plan, dkim_keys):
    """What a healthy platform publishes, plus a DNS blocklist that lists nobody."""
    records = platform_records(plan, {d: b64(k) for d, k in dkim_keys.items()})
    records[("2.0.0.127." + DNSBL_ZONE, "A")] = ["127.0.0.2"]
    records[("2.0.0.127." + DNSBL_ZONE, "TXT")] = ["test entry (RFC 5782)"]
    return records


@pytest.fixture
def serve(plan):
    """serve(records) -> a running LoopbackBind for them (stopped after the test)."""
    if not os.path.exists(NAMED) and not shutil.which("named"):
        pytest.fail("BIND (named) is not installed: apt-get install bind9")
    started = []

    def start(records):
        server = LoopbackBind.for_records(records, zones_for(records, list(plan["zones"]) + [DNSBL_ZONE])).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _cert(subject, issuer_name, issuer_key, key, names, ca=False, days=(-1, 90)):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=days[0])).not_valid_after(now + datetime.timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA and server certificates signed by it: right names, wrong names, expired."""
    base = tmp_path_factory.mktemp("pki")
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kbmta test CA")])
    ca = _cert("kbmta test CA", ca_name, ca_key, ca_key, [], ca=True, days=(-1, 365))
    (base / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (base / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    paths = {"ca": str(base / "ca.pem"), "key": str(base / "key.pem")}
    for label, names, days in (("good", [NAME], (-1, 90)), ("wrong", ["other.kbmta.test"], (-1, 90)),
                               ("expired", [NAME], (-30, -1))):
        cert = _cert(names[0], ca_name, ca_key, key, names, days=days)
        (base / (label + ".pem")).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        paths[label] = str(base / (label + ".pem"))
    return paths


class Handler:
    def __init__(self, open_relay):
        self.open_relay = open_relay
        self.data_seen = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.open_relay or address.endswith("@kb-bounces.kbmta.test"):
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        return "554 5.7.1 <%s>: Relay access denied" % address

    async def handle_DATA(self, server, session, envelope):
        self.data_seen += 1
        return "250 2.0.0 queued"


def _deny(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=False, handled=False)


@pytest.fixture
def smtp_server(pki):
    """smtp_server(cert=..., open_relay=..., auth_before_tls=..., implicit=...) -> (port, handler)."""
    running = []

    def start(cert="good", open_relay=False, auth_before_tls=False, implicit=False, tls=True):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki[cert], pki["key"])
        handler = Handler(open_relay)
        port = free_port()
        kwargs = dict(hostname="127.0.0.1", port=port, server_hostname=NAME, authenticator=_deny,
                      auth_require_tls=not auth_before_tls)
        if implicit:
            kwargs["ssl_context"] = context
        elif tls:
            kwargs["tls_context"] = context
        controller = Controller(handler, **kwargs)
        controller.start()
        running.append(controller)
        return port, handler

    yield start
    for controller in running:
        controller.stop()
