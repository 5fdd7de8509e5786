# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The SMTP side of verification: talk to a host the way a client and an abuser would.

``probe(target)`` connects, reads the greeting, says EHLO, looks at what is
offered before and after TLS, checks the certificate, and tries to relay to
a domain in the reserved .invalid TLD. It never sends DATA: a relay attempt
ends with RSET and QUIT, so nothing can be delivered even by an open relay.
``check_lb_stats`` reads HAProxy's CSV statistics and reports backends that
are not up.
"""

from __future__ import annotations

import csv
import datetime
import io
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from ansible.module_utils.urls import open_url

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import (
    CheckResult,
    failure,
    ok,
    warning,
)

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - depends on the controller
    HAS_CRYPTOGRAPHY = False

HOST = "host"
TLS_MODES = ("starttls", "implicit", "none")
TLS_MIN_DAYS = 14      # fewer days left is a failure; fewer than twice as many, a warning
# One text for every listener, so the report shows the fix once with the listeners it applies to.
RENEW_FIX = ("renew the certificate: with ACME, ansible-playbook playbooks/tls.yml (or site.yml) renews it when fewer than "
             "platform_acme_renew_days days remain (see docs/tls.md); otherwise replace mta_tls_certificate / mta_tls_private_key")
RELAY_SENDER = "verify-probe@relay-probe.invalid"
RELAY_RECIPIENT = "relay-test@relay-test.invalid"


@dataclass
class SmtpTarget:
    """One SMTP listener to probe."""

    address: str
    port: int = 25
    name: str = ""                              # how the report names it (default address:port)
    tls: str = "starttls"                       # starttls | implicit | none
    server_names: List[str] = field(default_factory=list)   # names the certificate must cover
    auth: str = "any"                           # required | forbidden | any: AUTH offered after TLS
    relay_test: bool = True
    timeout: float = 10.0

    @property
    def subject(self) -> str:
        return self.name or "%s:%d" % (self.address, self.port)


@dataclass
class SmtpSettings:
    helo: str = "verify.kbmta.invalid"
    ca_path: Optional[str] = None
    verify_chain: bool = True
    min_days: int = TLS_MIN_DAYS                # a certificate with fewer days left fails


def probe(target: SmtpTarget, settings: SmtpSettings) -> List[CheckResult]:
    """Every SMTP check of one target."""
    subject = target.subject
    results: List[CheckResult] = []
    try:
        client, greeting, peer_der, tls_error = _connect(target, settings)
    except (OSError, smtplib.SMTPException) as exc:
        return [failure(HOST, "smtp_connect", subject, "cannot talk SMTP to %s port %d: %s" % (target.address, target.port, exc),
                        "start the service on %s and open TCP port %d to the outside" % (target.address, target.port))]
    try:
        code, banner = greeting
        if code != 220:
            results.append(failure(HOST, "smtp_connect", subject, "the greeting is %d %s, not 220" % (code, banner),
                                   "see the server's log: it refuses this client at connect time"))
            return results
        results.append(ok(HOST, "smtp_connect", subject, "port %d open; greeting 220 %s" % (target.port, banner)))
        if target.tls == "starttls":
            found, client = _starttls(client, target, settings)
            results.extend(found)
        elif target.tls == "implicit":
            results.append(check_certificate(target, settings, peer_der, tls_error))
            results.append(_auth_after_tls(client, target))
        else:
            results.append(_auth_plaintext(client, target))
        if target.relay_test:
            results.append(_relay(client, target))
    finally:
        _quit(client)
    return results


def _context(settings: SmtpSettings, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca_path) if verify else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Names are matched against the report's server_names below, not against the address we dial.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    return context


def _client(target: SmtpTarget, context: Optional[ssl.SSLContext] = None) -> smtplib.SMTP:
    """A client not yet connected. smtplib sends its ``_host`` as the TLS server name (SNI) and only
    sets it when the constructor connects; we connect ourselves to read the greeting, so set it here."""
    client = smtplib.SMTP_SSL(timeout=target.timeout, context=context) if context else smtplib.SMTP(timeout=target.timeout)
    client._host = target.server_names[0] if target.server_names else target.address
    return client


def _connect(target: SmtpTarget, settings: SmtpSettings):
    """Connect (with TLS first for implicit TLS); returns client, greeting, peer DER, chain error."""
    if target.tls != "implicit":
        client = _client(target)
        greeting = client.connect(target.address, target.port)
        client.ehlo(settings.helo)
        return client, _text(greeting), None, ""
    chain_error = ""
    try:
        client = _client(target, _context(settings, True))
        greeting = client.connect(target.address, target.port)
    except ssl.SSLError as exc:
        chain_error = _ssl_reason(exc)
        client = _client(target, _context(settings, False))
        greeting = client.connect(target.address, target.port)
    client.ehlo(settings.helo)
    return client, _text(greeting), client.sock.getpeercert(binary_form=True), chain_error


def _text(reply: Tuple[int, bytes]) -> Tuple[int, str]:
    code, message = reply
    return code, message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)


def _ssl_reason(exc: ssl.SSLError) -> str:
    return getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)


def _starttls(client: smtplib.SMTP, target: SmtpTarget, settings: SmtpSettings) -> Tuple[List[CheckResult], smtplib.SMTP]:
    """STARTTLS, verifying the chain; when that fails, again without verifying, to read the certificate."""
    subject = target.subject
    results = [_auth_plaintext(client, target)]
    if not client.has_extn("starttls"):
        results.append(failure(HOST, "smtp_starttls", subject, "STARTTLS is not offered: mail and passwords travel in clear",
                               "enable TLS on this listener (Postfix: smtpd_tls_security_level = may, a certificate and key)"))
        return results, client
    chain_error = ""
    try:
        client.starttls(context=_context(settings, True))
    except ssl.SSLError as exc:
        chain_error = _ssl_reason(exc)
        client.close()
        client = _client(target)
        client.connect(target.address, target.port)
        client.ehlo(settings.helo)
        client.starttls(context=_context(settings, False))
    client.ehlo(settings.helo)
    results.append(ok(HOST, "smtp_starttls", subject, "STARTTLS works (%s, %s)" % (client.sock.version(), client.sock.cipher()[0])))
    results.append(check_certificate(target, settings, client.sock.getpeercert(binary_form=True), chain_error))
    results.append(_auth_after_tls(client, target))
    return results, client


def _auth_plaintext(client: smtplib.SMTP, target: SmtpTarget) -> CheckResult:
    if client.has_extn("auth"):
        return failure(HOST, "smtp_auth", target.subject, "AUTH %s is offered before TLS: passwords can cross the network in clear" % (
            client.esmtp_features.get("auth", "").strip()), "offer AUTH only after STARTTLS (Postfix: smtpd_tls_auth_only = yes)")
    return ok(HOST, "smtp_auth", target.subject, "no AUTH before TLS")


def _auth_after_tls(client: smtplib.SMTP, target: SmtpTarget) -> CheckResult:
    offered = client.has_extn("auth")
    mechanisms = client.esmtp_features.get("auth", "").strip()
    if target.auth == "required" and not offered:
        return failure(HOST, "smtp_auth_tls", target.subject, "AUTH is not offered after TLS: customers cannot log in",
                       "enable SASL on this listener (Postfix: smtpd_sasl_auth_enable = yes)")
    if target.auth == "forbidden" and offered:
        return failure(HOST, "smtp_auth_tls", target.subject, "AUTH %s is offered on a listener that takes no logins" % mechanisms,
                       "disable SASL on this listener (Postfix: -o smtpd_sasl_auth_enable=no)")
    return ok(HOST, "smtp_auth_tls", target.subject, ("AUTH %s after TLS" % mechanisms) if offered else "no AUTH after TLS")


def check_certificate(target: SmtpTarget, settings: SmtpSettings, der: Optional[bytes], chain_error: str,
                      now: Optional[datetime.datetime] = None) -> CheckResult:
    """The ``tls_certificate`` result of a listener's certificate (DER); ``chain_error`` says why the chain was not trusted.

    Every reason names the issuer, the certificate's names and the days left. Fewer days left than
    ``settings.min_days`` is a failure, fewer than twice as many a warning."""
    subject = target.subject
    if not der:
        return failure(HOST, "tls_certificate", subject, "the server sent no certificate", "configure a certificate for this listener")
    if not HAS_CRYPTOGRAPHY:
        return warning(HOST, "tls_certificate", subject, "not checked: the Python package cryptography is missing",
                       "pip install cryptography on the controller")
    cert = x509.load_der_x509_certificate(der)
    names = certificate_names(cert)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    start, end = _validity(cert)
    days = (end - now).days
    detail = describe_certificate(cert, names, now)
    if now < start:
        return failure(HOST, "tls_certificate", subject, "the certificate is valid only from %s: %s" % (start.isoformat(), detail),
                       "renew the certificate of %s for %s (or set the host's clock)" % (subject, ", ".join(target.server_names or names)))
    if now > end:
        return failure(HOST, "tls_certificate", subject, "the certificate is no longer valid: " + detail, RENEW_FIX)
    missing = [n for n in target.server_names if not name_matches(n, names)]
    if missing:
        return failure(HOST, "tls_certificate", subject, "the certificate does not name %s: %s" % (", ".join(missing), detail),
                       "issue a certificate whose subjectAltName covers %s" % ", ".join(target.server_names))
    if days < settings.min_days:
        return failure(HOST, "tls_certificate", subject, "the certificate expires in fewer than %d days: %s" % (settings.min_days, detail),
                       RENEW_FIX)
    if chain_error:
        why = "the certificate is not trusted (%s): %s" % (chain_error, detail)
        fix = "use a certificate from a public CA (or give ca_path the CA that signed it)"
        return failure(HOST, "tls_certificate", subject, why, fix) if settings.verify_chain else warning(HOST, "tls_certificate", subject, why, fix)
    if days < 2 * settings.min_days:
        return warning(HOST, "tls_certificate", subject, "the certificate expires in fewer than %d days: %s" % (2 * settings.min_days, detail),
                       RENEW_FIX)
    return ok(HOST, "tls_certificate", subject, "trusted certificate " + detail)


def describe_certificate(cert, names: Sequence[str], now: datetime.datetime) -> str:
    """``issued by <issuer> for <names>; <n> days left (until <date>)``, or how long ago it expired."""
    end = _validity(cert)[1]
    if end < now:
        ago = (now - end).days
        left = "expired on %s (%s)" % (end.date().isoformat(), "today" if ago == 0 else _days(ago) + " ago")
    else:
        left = "%s left (until %s)" % (_days((end - now).days), end.date().isoformat())
    return "issued by %s for %s; %s" % (issuer_name(cert), ", ".join(names) or "no name", left)


def _days(count: int) -> str:
    return "%d day%s" % (count, "" if count == 1 else "s")


def issuer_name(cert) -> str:
    """The issuer's common name, else its organization, else the whole issuer name (RFC 4514)."""
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        values = [a.value for a in cert.issuer.get_attributes_for_oid(oid) if a.value]
        if values:
            return str(values[0])
    return cert.issuer.rfc4514_string() or "an empty issuer name"


def _validity(cert) -> Tuple[datetime.datetime, datetime.datetime]:
    start = getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    end = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return start, end


def certificate_names(cert) -> List[str]:
    """The DNS names of a certificate: its subjectAltName, else its common name."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [a.value.lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def name_matches(name: str, names: Sequence[str]) -> bool:
    """RFC 6125: exact match, or a wildcard in the left-most label covering exactly one label."""
    name = name.lower().rstrip(".")
    for pattern in names:
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def _relay(client: smtplib.SMTP, target: SmtpTarget) -> CheckResult:
    """Try to relay to a reserved domain; never send DATA."""
    subject = target.subject
    try:
        code, message = _text(client.mail(RELAY_SENDER))
        if code >= 400:
            return ok(HOST, "open_relay", subject, "relay refused at MAIL FROM: %d %s" % (code, message))
        code, message = _text(client.rcpt(RELAY_RECIPIENT))
        client.rset()
    except (OSError, smtplib.SMTPException) as exc:
        return warning(HOST, "open_relay", subject, "the relay attempt was cut off: %s" % exc, "run the check again; see the server's log")
    if 200 <= code < 300:
        return failure(HOST, "open_relay", subject, "OPEN RELAY: an unauthenticated client got %d %s for %s" % (code, message, RELAY_RECIPIENT),
                       "refuse relaying for unauthenticated clients (Postfix: smtpd_relay_restrictions = permit_sasl_authenticated, "
                       "reject_unauth_destination; mynetworks without the load balancers' clients)")
    if 400 <= code < 500:
        return warning(HOST, "open_relay", subject, "relay only deferred (%d %s): a retrying abuser is told to try again" % (code, message),
                       "reject rather than defer unauthorised relaying (Postfix: defer_unauth_destination -> reject_unauth_destination)")
    return ok(HOST, "open_relay", subject, "relay refused: %d %s" % (code, message))


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def check_lb_stats(name: str, url: str, timeout: float = 10.0, validate_certs: bool = True) -> List[CheckResult]:
    """Backends of an HAProxy, from its CSV statistics (the stats page URL with ';csv')."""
    try:
        response = open_url(url, timeout=timeout, validate_certs=validate_certs)
        text = response.read().decode("utf-8", "replace")
    except (OSError, ValueError, ConnectionError) as exc:
        return [warning(HOST, "lb_backends", name, "cannot read the HAProxy statistics at %s: %s" % (url, exc),
                        "expose the stats page to the controller (a 'stats uri' on a listener it reaches) or fix the URL")]
    return parse_lb_stats(name, text)


def parse_lb_stats(name: str, text: str) -> List[CheckResult]:
    reader = csv.DictReader(io.StringIO(text.lstrip("# ")))
    down, up = [], []
    for row in reader:
        server = row.get("svname", "")
        if server in ("FRONTEND", "BACKEND", "") or not row.get("status"):
            continue
        label = "%s/%s" % (row.get("pxname", "?"), server)
        (up if row["status"].startswith("UP") or row["status"] == "no check" else down).append("%s %s" % (label, row["status"]))
    if down:
        return [failure(HOST, "lb_backends", name, "backends not up: %s (up: %d)" % ("; ".join(down), len(up)),
                        "see why the health check fails on each (haproxy log 'Health check'); start the MTA or fix its PROXY listener")]
    if not up:
        return [warning(HOST, "lb_backends", name, "the statistics list no backend server", "check the HAProxy configuration")]
    return [ok(HOST, "lb_backends", name, "%d backends up: %s" % (len(up), ", ".join(u.split(" ")[0] for u in up)))]


def run_host_checks(targets: Sequence[SmtpTarget], settings: SmtpSettings, lb_stats: Sequence[Tuple[str, str]] = (),
                    workers: int = 8) -> List[CheckResult]:
    """Probe every SMTP target and read every HAProxy statistics page, concurrently."""
    jobs = [lambda t=t: probe(t, settings) for t in targets] + [lambda n=n, u=u: check_lb_stats(n, u) for n, u in lb_stats]
    results: List[CheckResult] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for found in pool.map(lambda job: job(), jobs):
            results.extend(found)
    return results


def plan_smtp_targets(plan: dict, lb_ports: Sequence[int] = (25, 465, 587), mta_ports: Sequence[int] = (25,),
                      timeout: float = 10.0) -> List[SmtpTarget]:
    """The listeners the plan implies: each load balancer on ``lb_ports`` (465 implicit TLS; AUTH required
    on 465 and 587), each MTA's main address on ``mta_ports`` (bounces come in there: no AUTH wanted)."""
    targets = []
    for name, lb in sorted(plan.get("load_balancers", {}).items()):
        for port in lb_ports:
            targets.append(SmtpTarget(address=lb["address"], port=port, name="%s %s:%d" % (name, lb["address"], port),
                                      tls="implicit" if port == 465 else "starttls", server_names=[lb["fqdn"]],
                                      auth="required" if port in (465, 587) else "any", timeout=timeout))
    for name, mta in sorted(plan.get("mtas", {}).items()):
        for port in mta_ports:
            targets.append(SmtpTarget(address=mta["address"], port=port, name="%s %s:%d" % (name, mta["address"], port),
                                      tls="starttls", server_names=[mta["fqdn"]], auth="any", timeout=timeout))
    return targets
