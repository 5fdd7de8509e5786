# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SMTP submission load generator of the mail benchmark (standard library only).

Runs inside a throwaway container of bench/mail/run.py (python3 of
local/debian-systemd:12). Opens --sessions SMTP sessions at once (one process
each), every one EHLO, STARTTLS, EHLO, AUTH PLAIN, then submits messages from
one shared counter until --messages are accepted (250 after DATA), then QUIT.
Targets are host:port; with several, session i uses target i mod count. With
--proxy-v2 each connection first writes a PROXY protocol v2 header (TCP over
IPv4, the connection's real source and destination), as HAProxy's
send-proxy-v2 does.

The SASL login and password come as one JSON line on stdin
({"user": ..., "password": ...}), never on the command line. Prints one JSON
object: the wall-clock start (first connect) and end (last accepted DATA),
per-session counts and per-message submission latencies. Any SMTP error
aborts the run with exit status 1: a benchmark run that lost a message is
not a figure.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import smtplib
import socket
import ssl
import struct
import sys
import time
import traceback
from email.utils import formatdate
from typing import Any, Dict, List, Tuple

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2_header(source: Tuple[str, int], destination: Tuple[str, int]) -> bytes:
    """PROXY protocol v2 header, command PROXY, TCP over IPv4, no TLVs (28 bytes)."""
    addresses = (socket.inet_aton(source[0]) + socket.inet_aton(destination[0])
                 + struct.pack("!HH", source[1], destination[1]))
    return PROXY_V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


class ProxiedSMTP(smtplib.SMTP):
    """smtplib.SMTP that writes a PROXY v2 header right after connecting."""

    send_proxy = False

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:  # type: ignore[override]
        sock = socket.create_connection((host, port), timeout)
        if self.send_proxy:
            sock.sendall(proxy_v2_header(sock.getsockname()[:2], sock.getpeername()[:2]))
        return sock


def message(tag: str, number: int, sender: str, recipient: str, size: int) -> bytes:
    """A text message with a body of exactly size bytes (76 characters and CRLF a line)."""
    headers = ("From: {0}\r\nTo: {1}\r\nSubject: mail bench {2} #{3}\r\nDate: {4}\r\n"
               "Message-ID: <{2}-{3:05d}@{5}>\r\nMIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=us-ascii\r\n\r\n").format(
                   sender, recipient, tag, number, formatdate(localtime=False), sender.rpartition("@")[2])
    line = ("mail bench {0} message {1:05d} ".format(tag, number) * 4)[:76] + "\r\n"
    body = (line * (size // len(line) + 1))[:size - 2] + "\r\n"
    return (headers + body).encode("ascii")


def session(index: int, args: argparse.Namespace, secret: Dict[str, str], counter: Any,
            barrier: Any, results: Any) -> None:
    host, _sep, port = args.target[index % len(args.target)].rpartition(":")
    out: Dict[str, Any] = {"session": index, "target": "%s:%s" % (host, port), "sent": [], "latencies": [],
                           "start": None, "end": None, "error": None}
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE   # the lab's certificates are self-signed; only lab addresses are used
    try:
        barrier.wait(timeout=60)
        out["start"] = time.time()
        client = ProxiedSMTP(timeout=args.timeout)
        client.send_proxy = args.proxy_v2
        client._host = host
        client.connect(host, int(port))
        client.ehlo(args.helo)
        client.starttls(context=context)
        client.ehlo(args.helo)
        client.login(secret["user"], secret["password"])
        while True:
            with counter.get_lock():
                number = counter.value
                if number >= args.messages:
                    break
                counter.value += 1
            data = message(args.tag, number, args.sender, args.recipient, args.size)
            began = time.time()
            refused = client.sendmail(args.sender, [args.recipient], data)
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)
            out["end"] = time.time()
            out["latencies"].append(round(out["end"] - began, 6))
            out["sent"].append(number)
        client.quit()
    except Exception as exc:  # noqa: BLE001 - every failure ends the run and is reported
        out["error"] = "%s: %s" % (type(exc).__name__, exc)
        out["trace"] = traceback.format_exc()[-2000:]
        with counter.get_lock():
            counter.value = args.messages     # stop the other sessions too
    results.put(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--target", action="append", required=True, help="host:port (repeat: sessions alternate)")
    parser.add_argument("--proxy-v2", action="store_true", help="write a PROXY v2 header on each connection")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--size", type=int, default=2048, help="body bytes per message")
    parser.add_argument("--tag", required=True, help="goes into every Message-ID: <tag-NNNNN@sender domain>")
    parser.add_argument("--sender", required=True)
    parser.add_argument("--recipient", required=True)
    parser.add_argument("--helo", default="bench-client.recipient.example")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    secret = json.loads(sys.stdin.readline())
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value("i", 0)
    barrier = ctx.Barrier(args.sessions)
    results = ctx.Queue()
    workers = [ctx.Process(target=session, args=(i, args, secret, counter, barrier, results))
               for i in range(args.sessions)]
    for worker in workers:
        worker.start()
    outs: List[Dict[str, Any]] = [results.get(timeout=args.timeout * 20) for _worker in workers]
    for worker in workers:
        worker.join()
    outs.sort(key=lambda o: o["session"])
    errors = [o["error"] for o in outs if o["error"]]
    sent = sorted(n for o in outs for n in o["sent"])
    report = {
        "start": min(o["start"] for o in outs if o["start"] is not None) if any(o["start"] for o in outs) else None,
        "end": max((o["end"] for o in outs if o["end"] is not None), default=None),
        "sent": len(sent),
        "sessions": [{"session": o["session"], "target": o["target"], "sent": len(o["sent"]),
                      "error": o["error"]} for o in outs],
        "latencies": sorted(latency for o in outs for latency in o["latencies"]),
        "errors": errors,
        "traces": [o.get("trace") for o in outs if o.get("trace")],
    }
    if not errors and sent != list(range(args.messages)):
        report["errors"] = errors = ["accepted %d messages, expected %d" % (len(sent), args.messages)]
    print(json.dumps(report))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
