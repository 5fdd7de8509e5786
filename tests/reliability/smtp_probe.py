# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One SMTP conversation that records every reply code: what the relay and auth tests assert on.

Standard library only, so it also runs inside a lab container (``docker exec -i <c> python3 -``
with this file on stdin and a JSON request as its last line). It never sends DATA unless asked
to, so a refused probe cannot turn into a message.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import sys
from typing import Any, Dict, List, Optional


class ProxiedSMTP(smtplib.SMTP):
    """smtplib.SMTP that writes a PROXY protocol v1 line first, as a load balancer does."""

    proxy_line: Optional[bytes] = None

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:  # type: ignore[override]
        sock = socket.create_connection((host, port), timeout)
        if self.proxy_line:
            sock.sendall(self.proxy_line)
        return sock


def probe(request: Dict[str, Any]) -> Dict[str, Any]:
    """Run one conversation. request keys: host, port, timeout, proxy (client ip or None), starttls,
    wrapper (implicit TLS), auth ([user, password]), mail_from, rcpt_to (list), data (bytes as text or None)."""
    steps: List[List[Any]] = []
    result: Dict[str, Any] = {"steps": steps, "banner": None, "error": None, "auth_advertised_before_tls": None}
    host, port = request["host"], int(request["port"])
    timeout = float(request.get("timeout", 15))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE      # lab certificates are self-signed; only lab addresses are probed
    try:
        if request.get("wrapper"):
            client: smtplib.SMTP = smtplib.SMTP_SSL(timeout=timeout, context=context)
        else:
            client = ProxiedSMTP(timeout=timeout)
            if request.get("proxy"):
                client.proxy_line = ("PROXY TCP4 %s %s 40000 %d\r\n" % (request["proxy"], host, port)).encode()
        client._host = host     # smtplib takes the TLS server name from the constructor's host only
        code, msg = client.connect(host, port)
        result["banner"] = code
        steps.append(["banner", code, msg.decode("utf-8", "replace")])
        code, msg = client.ehlo("probe.recipient.example")
        steps.append(["ehlo", code, ""])
        result["auth_advertised_before_tls"] = client.has_extn("auth") and not request.get("wrapper")
        if request.get("try_auth_before_tls"):
            code, msg = client.docmd("AUTH", "PLAIN AHN1cHBvcnRAa2liYW1haWwuY29tAHdyb25n")
            steps.append(["auth-before-tls", code, msg.decode("utf-8", "replace")])
        if request.get("starttls"):
            code, msg = client.starttls(context=context)
            steps.append(["starttls", code, msg.decode("utf-8", "replace")])
            client.ehlo("probe.recipient.example")
        if request.get("auth"):
            user, password = request["auth"]
            try:
                code, msg = client.login(user, password)
            except smtplib.SMTPAuthenticationError as exc:
                code, msg = exc.smtp_code, exc.smtp_error
            steps.append(["auth", code, msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)])
        code, msg = client.docmd("MAIL", "FROM:<%s>" % request.get("mail_from", ""))
        steps.append(["mail", code, msg.decode("utf-8", "replace")])
        accepted = 0
        for rcpt in request.get("rcpt_to", []):
            code, msg = client.docmd("RCPT", "TO:<%s>" % rcpt)
            steps.append(["rcpt", code, msg.decode("utf-8", "replace")])
            accepted += 1 if code // 100 == 2 else 0
        if request.get("data") is not None and accepted:
            code, msg = client.data(request["data"].encode("utf-8"))
            steps.append(["data", code, msg.decode("utf-8", "replace")])
        else:
            code, msg = client.docmd("RSET")
            steps.append(["rset", code, ""])
        client.quit()
    except (OSError, smtplib.SMTPException) as exc:
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
    return result


def codes(result: Dict[str, Any], step: str) -> List[int]:
    """The reply codes of every step of this kind."""
    return [int(s[1]) for s in result["steps"] if s[0] == step]


def main() -> int:
    request = json.loads(sys.stdin.readline() if len(sys.argv) < 2 else sys.argv[1])
    print(json.dumps(probe(request)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
