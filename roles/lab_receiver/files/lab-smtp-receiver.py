# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recording SMTP receiver for tests and the lab.

Accepts mail for the configured domains and stores every message as
<id>.eml (raw bytes as received) and <id>.json (envelope and connection
facts). The JSON file is written last, atomically, so a reader that sees it
also sees the complete .eml file.

A receiver may answer late: when a recipient's local part starts with the
--slow-prefix, the message is stored at once but the 250 comes --slow-seconds
later, like a busy server that has taken the message and is slow to say so.
Tests use it to have deliveries in flight at a known moment.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import List

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Record:
    id: str
    peer_ip: str
    peer_port: int
    helo: str
    mail_from: str
    rcpt_to: List[str] = field(default_factory=list)
    received_at: str = ""
    size: int = 0


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class RecordingHandler:
    def __init__(self, spool: str, domains: List[str], slow_prefix: str = "", slow_seconds: float = 0) -> None:
        self.spool = spool
        self.domains = [d.lower() for d in domains]
        self.slow_prefix = slow_prefix.lower()
        self.slow_seconds = slow_seconds

    def is_slow(self, recipients: List[str]) -> bool:
        return bool(self.slow_prefix) and any(r.lower().startswith(self.slow_prefix) for r in recipients)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: List[str]) -> str:
        if self.domains and domain_of(address) not in self.domains:
            return "550 5.1.2 Relay access denied: not a domain of this receiver"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message_id = uuid.uuid4().hex
        data = envelope.original_content or b""
        record = Record(
            id=message_id,
            peer_ip=str(session.peer[0]),
            peer_port=int(session.peer[1]),
            helo=session.host_name or "",
            mail_from=envelope.mail_from or "",
            rcpt_to=list(envelope.rcpt_tos),
            received_at=datetime.now(timezone.utc).isoformat(),
            size=len(data),
        )
        write_atomic(os.path.join(self.spool, message_id + ".eml"), data)
        write_atomic(os.path.join(self.spool, message_id + ".json"),
                     json.dumps(asdict(record), indent=2).encode() + b"\n")
        if self.is_slow(record.rcpt_to):
            await asyncio.sleep(self.slow_seconds)
        return "250 2.0.0 Ok: stored as " + message_id


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--hostname", default="receiver.test")
    parser.add_argument("--spool", default="/var/lib/lab-receiver")
    parser.add_argument("--max-size", type=int, default=33554432)
    parser.add_argument("--domain", action="append", default=[],
                        help="accept recipients of this domain (repeat); none: accept all")
    parser.add_argument("--slow-prefix", default="",
                        help="answer late for recipients whose local part starts with this (empty: never)")
    parser.add_argument("--slow-seconds", type=float, default=3.0,
                        help="how late, after the message is stored")
    return parser.parse_args()


async def serve(args: argparse.Namespace) -> None:
    handler = RecordingHandler(args.spool, args.domain, args.slow_prefix, args.slow_seconds)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(handler, hostname=args.hostname, ident="lab-smtp-receiver",
                    data_size_limit=args.max_size, enable_SMTPUTF8=True)

    server = await loop.create_server(factory, host=args.listen, port=args.port)
    async with server:
        await server.serve_forever()


def main() -> None:
    args = parse_args()
    os.makedirs(args.spool, exist_ok=True)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
