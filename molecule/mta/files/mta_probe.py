# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SMTP conversations with the MTA's PROXY listeners, as a load balancer
would forward them. Prints one JSON object: the SMTP reply code of each
step of each case, for verify.yml to assert on."""
from __future__ import annotations

import argparse
import json
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from typing import Dict, List, Optional, Tuple


class ProxyHeader(smtplib.SMTP):
    """Send a PROXY v1 header before the SMTP conversation starts."""

    client_ip = "203.0.113.50"

    def _get_socket(self, host, port, timeout):  # type: ignore[override]
        sock = socket.create_connection((host, port), timeout)
        sock.sendall(("PROXY TCP4 %s %s 40000 %d\r\n" % (self.client_ip, host, port)).encode())
        return sock


class ProxySMTP(ProxyHeader):
    pass


class ProxySMTPS(smtplib.SMTP_SSL, ProxyHeader):
    pass


def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def message(sender: str, rcpt: str, token: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = rcpt
    msg["Subject"] = "molecule mta " + token
    msg["Message-ID"] = "<%s@molecule.test>" % token
    msg.set_content("Test message " + token + "\n")
    return msg


def raw_message(headers: List[Tuple[str, str]], rcpt: str, token: str) -> bytes:
    """A message with exactly the given From/Sender fields (none, or several), as bytes."""
    lines = ["%s: %s" % (name, value) for name, value in headers] + [
        "To: %s" % rcpt, "Subject: molecule mta " + token, "Message-ID: <%s@molecule.test>" % token,
        "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", "Test message " + token, ""]
    return "\r\n".join(lines).encode()


def code_of(exc: Exception) -> int:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return list(exc.recipients.values())[0][0]
    if isinstance(exc, (smtplib.SMTPResponseException,)):
        return exc.smtp_code
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return -1
    return -2


def conversation(host: str, port: int, implicit_tls: bool, starttls: bool,
                 login: Optional[str], password: Optional[str],
                 sender: str, rcpt: str, token: str,
                 headers: Optional[List[Tuple[str, str]]] = None) -> Dict[str, object]:
    """One SMTP session; with ``headers``, the message carries exactly those From/Sender fields."""
    result: Dict[str, object] = {"port": port}
    cls = ProxySMTPS if implicit_tls else ProxySMTP
    kwargs = {"context": tls_context()} if implicit_tls else {}
    with cls(host, port, timeout=20, **kwargs) as smtp:  # type: ignore[arg-type]
        smtp.ehlo("client.molecule.test")
        result["auth_offered_before_tls"] = smtp.has_extn("auth") and not implicit_tls
        if starttls:
            smtp.starttls(context=tls_context())
            smtp.ehlo("client.molecule.test")
        result["auth_offered"] = smtp.has_extn("auth")
        if login is not None:
            try:
                result["auth"] = smtp.login(login, password or "")[0]
            except Exception as exc:  # noqa: BLE001 - the code is the result
                result["auth"] = code_of(exc)
                return result
        try:
            if headers is None:
                smtp.send_message(message(sender, rcpt, token), from_addr=sender, to_addrs=[rcpt])
            else:
                smtp.sendmail(sender, [rcpt], raw_message(headers, rcpt, token))
            result["send"] = 250
        except Exception as exc:  # noqa: BLE001
            result["send"] = code_of(exc)
            if isinstance(exc, smtplib.SMTPResponseException):
                result["reply"] = exc.smtp_error.decode("utf-8", "replace")
    return result


# Header From / Sender a login may not use, each refused at the end of DATA (550 5.7.1).
REFUSED_HEADERS = {
    "other_domain": [("From", "ceo@bank.example")],
    "lookalike_suffix": [("From", "support@kibamail.com.bank.example")],
    "lookalike_typo": [("From", "support@kibamai1.com")],
    "subdomain": [("From", "support@mail.kibamail.com")],
    "display_name": [("From", '"support@kibamail.com" <x@bank.example>')],
    "display_name_reverse": [("From", '"ceo@bank.example" <support@kibamail.com>')],
    "several_addresses": [("From", "support@kibamail.com, ceo@bank.example")],
    "two_from_fields": [("From", "support@kibamail.com"), ("From", "support@kibamail.com")],
    "no_from": [],
    "sender_other": [("From", "support@kibamail.com"), ("Sender", "x@bank.example")],
}
# The positive control: a display name and a Sender, both in the login's domain.
ACCEPTED_HEADERS = [("From", '"Kibamail Support" <support@kibamail.com>'), ("Sender", "support@kibamail.com")]


def refuses_new_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def drain_session(host: str, password: str, token: str, ready_file: str, wait: float) -> Dict[str, object]:
    """Open a customer session and send one message; say so in ready_file; wait until the MTA
    refuses new connections (its drain has begun); then send a second message on the same session.
    A drained MTA answers it 421 (try elsewhere) and closes the session between messages."""
    user, rcpt = "support@kibamail.com", "alice@recipient.example"
    result: Dict[str, object] = {}
    smtp = ProxySMTP(host, 2587, timeout=20)
    try:
        smtp.ehlo("client.molecule.test")
        smtp.starttls(context=tls_context())
        smtp.ehlo("client.molecule.test")
        smtp.login(user, password)
        smtp.send_message(message(user, rcpt, token + "-before"), from_addr=user, to_addrs=[rcpt])
        result["before"] = 250
        with open(ready_file, "w", encoding="ascii") as handle:
            handle.write("session open\n")
        deadline = time.monotonic() + wait
        while not refuses_new_connections(host, 2587):
            if time.monotonic() > deadline:
                result["drain_seen"] = False
                return result
            time.sleep(0.2)
        result["drain_seen"] = True
        try:
            smtp.send_message(message(user, rcpt, token + "-during"), from_addr=user, to_addrs=[rcpt])
            result["during"] = 250
        except Exception as exc:  # noqa: BLE001 - the code is the result
            result["during"] = code_of(exc)
    finally:
        try:
            smtp.close()
        except OSError:
            pass
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--drain-ready-file", help="run the drain case only, saying in this file when the session is open")
    parser.add_argument("--drain-wait", type=float, default=60.0)
    parser.add_argument("--other-stream-login", help="a login of another stream (pool): must not authenticate here")
    parser.add_argument("--other-stream-password")
    args = parser.parse_args()
    h, pw, t = args.host, args.password, args.token
    if args.drain_ready_file:
        print(json.dumps(drain_session(h, pw, t, args.drain_ready_file, args.drain_wait), sort_keys=True))
        return
    user = "support@kibamail.com"
    rcpt = "alice@recipient.example"
    cases = {
        # The customer, STARTTLS on the submission listener: must be relayed.
        "submission_ok": conversation(h, 2587, False, True, user, pw, user, rcpt, t),
        # The same over implicit TLS.
        "submissions_ok": conversation(h, 2465, True, False, user, pw, user, rcpt, t + "-465"),
        # AUTH without TLS: Postfix must not even offer it.
        "plaintext_auth": conversation(h, 2525, False, False, user, pw, user, rcpt, t + "-plain"),
        # Wrong password.
        "bad_password": conversation(h, 2587, False, True, user, pw + "x", user, rcpt, t + "-badpw"),
        # Authenticated, but MAIL FROM another domain / an address it does not own.
        "other_domain": conversation(h, 2587, False, True, user, pw, "someone@other.example", rcpt, t + "-other"),
        "other_address": conversation(h, 2587, False, True, user, pw, "sales@kibamail.com", rcpt, t + "-sales"),
        # No AUTH at all: relaying must be refused.
        "unauth_relay": conversation(h, 2525, False, True, None, None, user, rcpt, t + "-relay"),
        "unauth_relay_other": conversation(h, 2525, False, False, None, None,
                                           "someone@other.example", rcpt, t + "-relay2"),
    }
    # Header From and Sender (the sender milter): the envelope is the login's own address each time.
    cases["header_ok"] = conversation(h, 2587, False, True, user, pw, user, rcpt, t + "-hdrok", ACCEPTED_HEADERS)
    cases["header_refused"] = {
        name: conversation(h, 2587, False, True, user, pw, user, rcpt, "%s-deny-%s" % (t, name.replace("_", "-")), headers)
        for name, headers in REFUSED_HEADERS.items()}
    if args.other_stream_login:
        cases["other_stream"] = conversation(h, 2587, False, True, args.other_stream_login, args.other_stream_password,
                                             args.other_stream_login, rcpt, t + "-deny-stream")
    print(json.dumps(cases, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
