# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SMTP client used by the haproxy molecule scenario (runs on the client container).

Prints one JSON object on stdout. Commands:
  send    send --count messages, each over its own connection
  hold    hold --hold connections open, then try one more, then release and retry
  burst   open --count connections one after another, count greetings and refusals
"""
from __future__ import annotations

import argparse
import json
import socket
import ssl
import smtplib
import sys
import time
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import List, Optional, Tuple

EHLO_NAME = "client.example.test"


@dataclass
class SendResult:
    sent: int = 0
    errors: List[str] = field(default_factory=list)


@dataclass
class HoldResult:
    held: int = 0
    extra: str = ""
    after_release: str = ""


@dataclass
class BurstResult:
    greeted: int = 0
    refused: int = 0


def unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def source(address: Optional[str]) -> Optional[Tuple[str, int]]:
    return (address, 0) if address else None


def open_smtp(args: argparse.Namespace) -> smtplib.SMTP:
    if args.mode == "tls":
        return smtplib.SMTP_SSL(args.host, args.port, local_hostname=EHLO_NAME, timeout=args.timeout,
                                source_address=source(args.source), context=unverified_context())
    client = smtplib.SMTP(args.host, args.port, local_hostname=EHLO_NAME, timeout=args.timeout,
                          source_address=source(args.source))
    if args.mode == "starttls":
        client.starttls(context=unverified_context())
    return client


def message(tag: str, number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "probe@client.example.test"
    msg["To"] = "sink@mta.test"
    msg["Subject"] = "{0} {1}".format(tag, number)
    msg["Message-ID"] = "<{0}-{1}@client.example.test>".format(tag, number)
    msg.set_content("haproxy molecule probe {0} {1}\n".format(tag, number))
    return msg


def send(args: argparse.Namespace) -> SendResult:
    result = SendResult()
    for number in range(args.count):
        try:
            client = open_smtp(args)
            if args.pause:
                client.ehlo_or_helo_if_needed()
                client.mail("probe@client.example.test")
                client.rcpt("sink@mta.test")
                time.sleep(args.pause)
                client.data(message(args.tag, number).as_bytes())
            else:
                client.send_message(message(args.tag, number))
            client.quit()
            result.sent += 1
        except (OSError, smtplib.SMTPException) as exc:
            result.errors.append("message {0}: {1!r}".format(number, exc))
    return result


def greeting(args: argparse.Namespace) -> Optional[socket.socket]:
    """Connect; return the socket if a 220 greeting arrives, None if the connection is closed."""
    try:
        sock = socket.create_connection((args.host, args.port), timeout=args.timeout,
                                        source_address=source(args.source))
    except OSError:
        return None
    try:
        data = sock.recv(512)
    except OSError:
        data = b""
    if data.startswith(b"220"):
        return sock
    sock.close()
    return None


def verdict(sock: Optional[socket.socket]) -> str:
    if sock is None:
        return "refused"
    sock.close()
    return "greeted"


def hold(args: argparse.Namespace) -> HoldResult:
    result = HoldResult()
    held = [greeting(args) for dummy in range(args.hold)]
    result.held = len([sock for sock in held if sock is not None])
    result.extra = verdict(greeting(args))
    for sock in held:
        if sock is not None:
            sock.close()
    time.sleep(1)
    result.after_release = verdict(greeting(args))
    return result


def burst(args: argparse.Namespace) -> BurstResult:
    result = BurstResult()
    for dummy in range(args.count):
        if verdict(greeting(args)) == "greeted":
            result.greeted += 1
        else:
            result.refused += 1
    return result


def parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["send", "hold", "burst"])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--source", default=None, help="local address to connect from")
    parser.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--hold", type=int, default=1)
    parser.add_argument("--tag", default="probe")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds to wait between RCPT and DATA")
    parser.add_argument("--timeout", type=float, default=10.0)
    return parser.parse_args(argv)


def main(argv: List[str]) -> int:
    args = parse(argv)
    if args.command == "send":
        outcome = send(args)
        print(json.dumps(asdict(outcome)))
        return 0 if not outcome.errors else 1
    if args.command == "hold":
        print(json.dumps(asdict(hold(args))))
        return 0
    print(json.dumps(asdict(burst(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
