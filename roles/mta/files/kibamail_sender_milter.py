# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sender milter of the Kibamail MTAs: a customer sends only as its own domains.

Postfix checks the envelope sender against the SASL login (reject_sender_login_mismatch),
but receivers judge a message by its header From: that is the domain DMARC aligns with
and the one the reader sees. This milter, installed by the kibamail.email_platform.mta
role and run by /usr/bin/python3 as the service kibamail-sender-milter, sits before
OpenDKIM on the customer listeners and refuses, at the end of DATA with 550 5.7.1, a
message of an authenticated login when

* it has no From header field, or more than one, or a From with no or several addresses;
* the From or Sender address is not in a domain the login may use (exact domain: no
  subdomain, no look-alike);
* a display name or comment names an address in another domain
  (``"support@kibamail.com" <x@bank.example>``, or the other way round);
* it has more than one Sender field, or a Sender with other than one address.

Every domain a login may use has its DKIM key on this MTA (the role writes the map and
OpenDKIM's signing table from the same customers), so what passes here is signed.
Mail without SASL authentication is not this milter's business and passes untouched
(the bounce MX on port 25 does not even use it).

``run``    serve Postfix on a UNIX socket (needs Debian's python3-milter);
``check``  validate a login map file (the role's template validation).

The login map is JSON: {"<login>": ["<domain>", ...]}. It is read again when the file
changes, so a new customer needs no restart.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import syslog
import threading
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry
from email.utils import getaddresses
from typing import Dict, List, Optional, Sequence, Tuple

# Anything that looks like an address: local part, '@', domain (any characters a
# look-alike could use, so non-ASCII domains are caught too).
ADDRESS_LIKE = re.compile(r"[^\s<>\"(),;:@\[\]]+@([^\s<>\"(),;:@\[\]]+)")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
STATUS = "5.7.1"
_REGISTRY = HeaderRegistry()


@dataclass(frozen=True)
class Refusal:
    """Why a message is refused: an enhanced status code and the text after it."""

    status: str
    text: str


def printable(value: str, limit: int = 80) -> str:
    """A value fit to echo in an SMTP reply or a log line: ASCII, no control or % characters."""
    text = "".join(c if 32 <= ord(c) < 127 and c != "%" else "?" for c in value)
    return text if len(text) <= limit else text[:limit] + "..."


def unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "").replace("\n", "")


def mailboxes(field: str, value: str) -> Tuple[List[Tuple[str, str]], bool]:
    """(display name, address) of each mailbox of one header field, and whether it parsed cleanly.

    Parsed with the standard library's RFC 5322 parser; any defect counts as unclean.
    """
    header = _REGISTRY(field, value)
    clean = not header.defects
    result = []
    for address in getattr(header, "addresses", ()):
        result.append((str(address.display_name or ""), "%s@%s" % (address.username, address.domain)
                       if address.domain else str(address.username)))
        if not address.domain:
            clean = False
    return result, clean


def _domain_of(address: str) -> str:
    return address.rsplit("@", 1)[1].lower() if "@" in address else ""


def _named_domains(raw: str, names: Sequence[str]) -> List[str]:
    """Domains of every address-like text in the raw field and in its decoded display names."""
    found = []
    for text in [raw] + list(names):
        for match in ADDRESS_LIKE.finditer(text):
            found.append(match.group(1).lower().rstrip("."))
    return found


def check_field(field: str, values: List[str], login: str, allowed: Sequence[str], required: bool) -> Optional[Refusal]:
    """The verdict on every occurrence of one header field (From or Sender)."""
    own = ", ".join(allowed)
    if not values:
        if required:
            return Refusal(STATUS, "message has no From header: set From to an address of %s" % own)
        return None
    if len(values) > 1:
        return Refusal(STATUS, "message has %d %s header fields: use exactly one" % (len(values), field))
    raw = unfold(values[0])
    boxes, clean = mailboxes(field, raw)
    if not clean:
        return Refusal(STATUS, "%s header %r is not a valid address list (RFC 5322): use Name <user@%s>" % (
            field, printable(raw), allowed[0] if allowed else "your.domain"))
    if len(boxes) != 1:
        return Refusal(STATUS, "%s header has %d addresses: use exactly one, in %s" % (field, len(boxes), own))
    name, address = boxes[0]
    domain = _domain_of(address)
    if domain not in allowed:
        return Refusal(STATUS, "%s header domain %s is not one %s may send as (%s)" % (
            field, printable(domain), printable(login), own))
    # The addresses the standard library found must be the only ones in the field:
    # a second parser (getaddresses) and any address text in a display name or
    # comment must not point anywhere else.
    others = [_domain_of(a) for _n, a in getaddresses([raw]) if a] + _named_domains(raw, [name])
    for other in others:
        if other not in allowed:
            return Refusal(STATUS, "%s header also names an address in %s, which %s may not send as (%s): "
                           "remove it from the display name" % (field, printable(other), printable(login), own))
    return None


def decide(login: str, headers: Sequence[Tuple[str, str]], logins: Dict[str, Sequence[str]]) -> Optional[Refusal]:
    """The milter's whole decision: None to let the message pass, else why it is refused.

    ``login`` is the SASL login ({auth_authen}, empty when the client did not
    authenticate); ``headers`` the message's header fields in order; ``logins``
    the login map (login -> the domains it may send as).
    """
    if not login:
        return None
    allowed = sorted(logins.get(login.lower(), ()))
    if not allowed:
        return Refusal(STATUS, "login %s may send as no domain through this server" % printable(login))
    fields: Dict[str, List[str]] = {"from": [], "sender": []}
    for name, value in headers:
        key = name.strip().lower()
        if key in fields:
            fields[key].append(value)
    return (check_field("From", fields["from"], login, allowed, required=True)
            or check_field("Sender", fields["sender"], login, allowed, required=False))


# --------------------------------------------------------------------------
# the login map


def parse_map(text: str) -> Dict[str, List[str]]:
    """Parse and validate a login map; ValueError says what is wrong."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the login map must be a JSON object: login -> list of domains")
    result = {}
    for login, domains in data.items():
        if not isinstance(login, str) or not login or login != login.lower():
            raise ValueError("login %r must be a non-empty lower-case string" % (login,))
        if not isinstance(domains, list) or not domains:
            raise ValueError("login %s must map to a non-empty list of domains" % login)
        for domain in domains:
            if not isinstance(domain, str) or not DOMAIN.match(domain):
                raise ValueError("login %s lists %r, which is not a lower-case domain name" % (login, domain))
        result[login] = sorted(set(domains))
    return result


class LoginMap:
    """The login map file, read again whenever it changes (checked once per message)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: Optional[Tuple[int, int, int]] = None
        self._map: Dict[str, List[str]] = {}
        self.current()

    def current(self) -> Dict[str, List[str]]:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            syslog.syslog(syslog.LOG_ERR, "cannot read the login map %s (%s): keeping the previous one" % (self.path, exc))
            return self._map
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    with open(self.path, encoding="utf-8") as handle:
                        self._map = parse_map(handle.read())
                    syslog.syslog(syslog.LOG_INFO, "login map %s: %d logins" % (self.path, len(self._map)))
                except (OSError, ValueError) as exc:
                    syslog.syslog(syslog.LOG_ERR, "login map %s is invalid (%s): keeping the previous one" % (self.path, exc))
                self._stamp = stamp
            return self._map


# --------------------------------------------------------------------------
# the milter


def milter_class(milter_module, logins: LoginMap):
    """The pymilter class (one instance per SMTP connection) around ``decide``."""
    Milter = milter_module  # pylint: disable=invalid-name

    class SenderMilter(Milter.Base):
        def __init__(self) -> None:
            super().__init__()
            self.login = ""
            self.headers: List[Tuple[str, str]] = []

        def envfrom(self, mailfrom, *params):  # pylint: disable=unused-argument
            self.login = self.getsymval("{auth_authen}") or ""
            self.headers = []
            return Milter.CONTINUE

        def header(self, name, value):
            self.headers.append((name, value))
            return Milter.CONTINUE

        def eoh(self):
            refusal = decide(self.login, self.headers, logins.current())
            if refusal is None:
                return Milter.ACCEPT
            syslog.syslog(syslog.LOG_NOTICE, "refused a message of login %s: %s %s" % (
                printable(self.login), refusal.status, refusal.text))
            self.setreply("550", refusal.status, refusal.text)
            return Milter.REJECT

        def abort(self):
            self.headers = []
            return Milter.CONTINUE

    return SenderMilter


def serve(socket_path: str, logins: LoginMap, timeout: int) -> None:
    import Milter  # pylint: disable=import-error,import-outside-toplevel

    Milter.factory = milter_class(Milter, logins)
    Milter.set_flags(0)
    syslog.syslog(syslog.LOG_INFO, "listening on %s" % socket_path)
    Milter.runmilter("kibamail-sender-milter", "unix:" + socket_path, timeout)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve Postfix on a UNIX socket")
    run.add_argument("--socket", required=True)
    run.add_argument("--map", required=True)
    run.add_argument("--timeout", type=int, default=30)
    check = sub.add_parser("check", help="validate a login map file")
    check.add_argument("path")
    args = parser.parse_args(argv)
    syslog.openlog("kibamail-sender-milter", syslog.LOG_PID, syslog.LOG_MAIL)
    if args.command == "check":
        try:
            with open(args.path, encoding="utf-8") as handle:
                found = parse_map(handle.read())
        except (OSError, ValueError) as exc:
            print("%s: %s" % (args.path, exc), file=sys.stderr)
            return 1
        print("%s: %d logins" % (args.path, len(found)))
        return 0
    serve(args.socket, LoginMap(args.map), args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
