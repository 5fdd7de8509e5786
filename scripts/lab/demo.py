# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab demo: what a receiving mail server sees from the platform.

1. Sends a message from support@kibamail.com through smtp.kbmta.net (the
   transactional load balancer, port 587, STARTTLS then AUTH) to the lab's
   stand-in recipient domain, and reads what the receiving server stored.
   Then checks it the way a receiver does, with the lab's DNS only:
   delivered, DKIM pass (dkimpy), SPF pass for the sending IP (pyspf),
   DMARC aligned, the sending IP's PTR forward-confirmed and equal to the HELO.
2. Sends one to a recipient that does not exist and follows the bounce to
   the bounce processor (kb-bounce on the MTAs) and its webhook.

Prints one line per check and exits 1 when any check fails.
Only the lab's addresses are contacted (read from .lab/lab.json).
"""
from __future__ import annotations

import argparse
import email
import email.policy
import email.utils
import json
import os
import smtplib
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Dict, List, Optional, Tuple

import dkim
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename
import spf

SENDER = "support@kibamail.com"
RECIPIENT_DOMAIN = "recipient.example"
GOOD_RECIPIENT = "demo@" + RECIPIENT_DOMAIN
# gone.recipient.example has the receiver as MX, but the receiver refuses it
# at RCPT (550): the MTA must bounce the message to its return path.
MISSING_RECIPIENT = "no-such-user@gone." + RECIPIENT_DOMAIN


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    checks: List[Check] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        print("  %-5s %-28s %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)
        return ok

    @property
    def failed(self) -> List[Check]:
        return [c for c in self.checks if not c.ok]


# --- the lab's DNS ---------------------------------------------------------------

class ChasingResolver(dns.resolver.Resolver):
    """Asks the lab's authoritative server and follows CNAMEs itself.

    A receiver asks a recursive resolver, which follows a CNAME into another
    zone (kb-bounces.kibamail.com -> kb-bounces.kbmta.net); the lab's
    server is authoritative only and answers with the CNAME alone, so the
    demo follows the chain here, as a recursive resolver would."""

    def resolve(self, qname: Any, rdtype: Any = "A", *args: Any, **kwargs: Any) -> dns.resolver.Answer:
        name = dns.name.from_text(str(qname)) if not isinstance(qname, dns.name.Name) else qname
        for _hop in range(8):
            try:
                return super().resolve(name, rdtype, *args, **kwargs)
            except dns.resolver.NoAnswer as exc:
                target = cname_target(exc.response(), name)
                if target is None:
                    raise
                name = target
        raise dns.resolver.NoAnswer(response=None)


def cname_target(response: Optional[dns.message.Message], name: dns.name.Name) -> Optional[dns.name.Name]:
    """The end of the CNAME chain that starts at name in a response, if any."""
    if response is None:
        return None
    target = None
    current = name
    for _hop in range(8):
        rrset = next((r for r in response.answer if r.name == current and r.rdtype == dns.rdatatype.CNAME), None)
        if rrset is None:
            break
        current = target = rrset[0].target
    return target


def lab_resolver(lab: Dict[str, Any]) -> dns.resolver.Resolver:
    resolver = ChasingResolver(configure=False)
    # What a receiver sees: through the lab's stock recursive resolver.
    resolver.nameservers = [lab["resolver"]["address"]]
    resolver.port = int(lab["resolver"]["port"])
    resolver.lifetime = 5.0
    return resolver


def lookup(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> List[str]:
    try:
        answer = resolver.resolve(name, rdtype)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    if rdtype == "TXT":
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    return [r.to_text() for r in answer]


def org_domain(domain: str) -> str:
    """Organizational domain. The lab's domains all sit directly under a
    public suffix (kibamail.com, kbmta.net, recipient.example), so the last
    two labels are it; a real receiver uses the Public Suffix List."""
    return ".".join(domain.lower().rstrip(".").split(".")[-2:])


# --- SMTP ------------------------------------------------------------------------

def build_message(recipient: str, token: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Kibamail Support <%s>" % SENDER
    msg["To"] = recipient
    msg["Subject"] = "Kibamail lab demo %s" % token
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = "<%s@kibamail.com>" % token
    msg.set_content("Hello from the Kibamail lab.\nToken: %s\n" % token)
    return msg


def submit(host: str, port: int, password: str, msg: EmailMessage) -> Tuple[bool, str]:
    # The lab's MTAs present certificates of their own lab CA: the demo checks
    # that STARTTLS is offered and used, not who signed the certificate.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with smtplib.SMTP(host, port, local_hostname="lab-demo.kibamail.test", timeout=30) as client:
            client.ehlo()
            if not client.has_extn("starttls"):
                return False, "the server does not offer STARTTLS"
            client.starttls(context=context)
            client.ehlo()
            client.login(SENDER, password)
            refused = client.send_message(msg)
            if refused:
                return False, "recipients refused: %s" % refused
    except (smtplib.SMTPException, OSError) as exc:
        return False, "%s: %s" % (type(exc).__name__, exc)
    return True, "accepted by %s:%d after STARTTLS and AUTH" % (host, port)


# --- what the receiver stored ------------------------------------------------------

def docker_exec(container: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", container, *argv], capture_output=True, check=False)


def find_stored(lab: Dict[str, Any], token: str, timeout: float) -> Optional[Tuple[bytes, Dict[str, Any]]]:
    receiver = lab["receiver"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = docker_exec(receiver["host"], "grep", "-rlF", "--include=*.eml", token, receiver["store_dir"])
        paths = found.stdout.decode().split()
        if paths:
            eml = docker_exec(receiver["host"], "cat", paths[0]).stdout
            meta_raw = docker_exec(receiver["host"], "cat", paths[0][: -len(".eml")] + ".json").stdout
            return eml, json.loads(meta_raw or b"{}")
        time.sleep(1)
    return None


def meta_value(meta: Dict[str, Any], *keys: str) -> Any:
    """The first of several possible key names present in the receiver's metadata."""
    for key in keys:
        if key in meta and meta[key] not in (None, ""):
            return meta[key]
    return None


# --- checks ----------------------------------------------------------------------------

def check_dkim(report: Report, resolver: dns.resolver.Resolver, eml: bytes, from_domain: str) -> Optional[str]:
    def dnsfunc(name: bytes, timeout: int = 5) -> Optional[bytes]:
        texts = lookup(resolver, name.decode().rstrip("."), "TXT")
        return texts[0].encode() if texts else None

    verifier = dkim.DKIM(eml)
    try:
        valid = verifier.verify(dnsfunc=dnsfunc)
    except dkim.DKIMException as exc:
        report.add("DKIM signature", False, str(exc))
        return None
    tags = verifier.signature_fields or {}
    domain = tags.get(b"d", b"").decode()
    selector = tags.get(b"s", b"").decode()
    report.add("DKIM signature", bool(valid), "%s (d=%s s=%s)" % ("pass" if valid else "fail", domain, selector))
    report.add("DKIM domain is the sender's", domain.lower() == from_domain, "d=%s, From domain %s" % (domain, from_domain))
    return domain if valid else None


def check_spf(report: Report, ip: str, mail_from: str, helo: str) -> bool:
    result, explanation = spf.check2(i=ip, s=mail_from, h=helo)
    return report.add("SPF", result == "pass", "%s for %s, MAIL FROM %s (%s)" % (result, ip, mail_from, explanation))


def check_dmarc(report: Report, resolver: dns.resolver.Resolver, from_domain: str,
                dkim_domain: Optional[str], spf_domain: Optional[str]) -> None:
    records = [t for t in lookup(resolver, "_dmarc." + from_domain, "TXT") if t.startswith("v=DMARC1")]
    report.add("DMARC record", len(records) == 1, records[0] if records else "no v=DMARC1 record at _dmarc.%s" % from_domain)
    dkim_aligned = dkim_domain is not None and org_domain(dkim_domain) == org_domain(from_domain)
    spf_aligned = spf_domain is not None and org_domain(spf_domain) == org_domain(from_domain)
    report.add("DMARC aligned", dkim_aligned or spf_aligned,
               "DKIM %s (d=%s), SPF %s (%s), From %s" % (
                   "aligned" if dkim_aligned else "not aligned", dkim_domain,
                   "aligned" if spf_aligned else "not aligned", spf_domain, from_domain))


def check_ptr(report: Report, resolver: dns.resolver.Resolver, ip: str, helo: str) -> None:
    names = [n.rstrip(".") for n in lookup(resolver, dns.reversename.from_address(ip).to_text(), "PTR")]
    report.add("PTR of the sending IP", len(names) == 1, "%s -> %s" % (ip, ", ".join(names) or "none"))
    if not names:
        return
    forward = lookup(resolver, names[0], "A")
    report.add("PTR forward-confirmed", ip in forward, "%s -> %d addresses, %s" % (
        names[0], len(forward), ("including " + ip) if ip in forward else "not " + ip))
    report.add("HELO matches the PTR", helo.lower().rstrip(".") == names[0].lower(), "HELO %s, PTR %s" % (helo, names[0]))


# --- the bounce ----------------------------------------------------------------------

def bounce_events(lab: Dict[str, Any]) -> List[Dict[str, Any]]:
    events: List[Dict[str, Any]] = []
    for name, host in lab["hosts"].items():
        if not host["role"].startswith("mta"):
            continue
        out = docker_exec(name, "kb-bounce", "list", "--json", "--limit", "200")
        for line in out.stdout.decode().splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                event["_mta"] = name
                events.append(event)
    return events


def webhook_records(lab: Dict[str, Any]) -> List[Dict[str, Any]]:
    """What the lab's webhook recorder received (GET on its URL)."""
    url = (lab.get("webhook") or {}).get("url")
    if not url:
        return []
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return json.loads(answer.read().decode("utf-8"))
    except (OSError, ValueError):
        return []


def mentions(value: Any, needle: str) -> bool:
    return needle.lower() in json.dumps(value).lower()


def is_this_bounce(event: Dict[str, Any], token: str, started: float) -> bool:
    """The event of this run: it names the message (Message-ID or Subject
    carry the token), or else names the recipient and arrived after we sent."""
    if mentions(event, token):
        return True
    received = event.get("received_at")
    return mentions(event, MISSING_RECIPIENT) and isinstance(received, (int, float)) and received >= started


def follow_bounce(report: Report, lab: Dict[str, Any], token: str, started: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    event = None
    while time.monotonic() < deadline and event is None:
        event = next((e for e in bounce_events(lab) if is_this_bounce(e, token, started)), None)
        if event is None:
            time.sleep(2)
    if not report.add("bounce reached the processor", event is not None,
                      "on %s: %s %s %s (%s)" % (event["_mta"], event.get("type"), event.get("class"),
                                                event.get("recipient"), (event.get("payload") or {}).get("diagnostic"))
                      if event else "no kb-bounce event for %s within %ds" % (MISSING_RECIPIENT, timeout)):
        return
    assert event is not None
    hook = None
    while time.monotonic() < deadline + 30 and hook is None:
        hook = next((r for r in webhook_records(lab) if mentions(r, event["id"])), None)
        if hook is None:
            time.sleep(2)
    if report.add("bounce reached the webhook", hook is not None,
                  json.dumps(hook.get("event"))[:300] if hook else "no webhook delivery of event %s" % event["id"]):
        assert hook is not None
        report.add("webhook signature valid", hook.get("signature_valid") is True,
                   "X-Kb-Signature %s" % hook.get("signature"))


# --- main ----------------------------------------------------------------------------

def run(lab: Dict[str, Any], password: str, timeout: float) -> Report:
    report = Report()
    resolver = lab_resolver(lab)
    # pyspf resolves through dnspython's default resolver: point it at the lab.
    dns.resolver.default_resolver = resolver
    submission = lab["submission"]["transactional"]
    token = "kb-lab-%s" % uuid.uuid4().hex[:12]

    print("== 1. %s -> %s through %s (%s:587)" % (SENDER, GOOD_RECIPIENT, submission["host"], submission["address"]))
    sent, detail = submit(submission["address"], 587, password, build_message(GOOD_RECIPIENT, token))
    if report.add("submission", sent, detail):
        stored = find_stored(lab, token, timeout)
        if report.add("delivered", stored is not None,
                      "stored by %s in %s" % (lab["receiver"]["host"], lab["receiver"]["store_dir"]) if stored
                      else "nothing with token %s within %ds" % (token, timeout)):
            assert stored is not None
            eml, meta = stored
            parsed = email.message_from_bytes(eml, policy=email.policy.default)
            from_domain = email.utils.parseaddr(str(parsed["From"]))[1].rpartition("@")[2].lower()
            ip = str(meta_value(meta, "peer_ip", "client_address", "peer", "remote_ip") or "")
            if isinstance(meta.get("peer"), list):
                ip = str(meta["peer"][0])
            helo = str(meta_value(meta, "helo", "ehlo", "helo_name") or "")
            mail_from = str(meta_value(meta, "mail_from", "envelope_from", "sender") or "")
            print("   peer %s, HELO %s, MAIL FROM %s" % (ip, helo, mail_from))
            dkim_domain = check_dkim(report, resolver, eml, from_domain)
            spf_ok = check_spf(report, ip, mail_from, helo)
            spf_domain = mail_from.rpartition("@")[2] if spf_ok else None
            check_dmarc(report, resolver, from_domain, dkim_domain, spf_domain)
            check_ptr(report, resolver, ip, helo)

    print("== 2. %s -> %s (does not exist): the bounce" % (SENDER, MISSING_RECIPIENT))
    bounce_token = token + "-bounce"
    started = time.time()
    sent, detail = submit(submission["address"], 587, password, build_message(MISSING_RECIPIENT, bounce_token))
    if report.add("submission", sent, detail):
        follow_bounce(report, lab, bounce_token, started, timeout)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab", default=os.path.join(os.path.dirname(__file__), "..", "..", ".lab", "lab.json"))
    parser.add_argument("--password", default=os.environ.get("KB_LAB_SUPPORT_PASSWORD"),
                        help="SASL password of support@kibamail.com (default: $KB_LAB_SUPPORT_PASSWORD)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for each delivery")
    args = parser.parse_args()
    if not args.password:
        parser.error("no password: pass --password or set KB_LAB_SUPPORT_PASSWORD")
    with open(args.lab, encoding="utf-8") as handle:
        lab = json.load(handle)
    report = run(lab, args.password, args.timeout)
    if report.failed:
        names = ", ".join(c.name for c in report.failed)
        print("demo: %d of %d checks failed: %s" % (len(report.failed), len(report.checks), names))
        return 1
    print("demo: all %d checks passed" % len(report.checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
