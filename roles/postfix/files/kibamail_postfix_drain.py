# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drain Postfix before it stops, so an orderly stop neither loses nor doubles mail.

SMTP delivers at least once: a message whose 250 reply is lost is sent again. A plain
``postfix stop`` signals every Postfix process at once, so it lands on messages in flight
in both directions: a client whose message was queued but whose 250 never arrived sends
it again; a delivery the next hop accepted but Postfix had not yet recorded is made
again after the restart. Installed by the kibamail.email_platform.postfix role as the
first ExecStop of postfix@-.service, this program closes those windows:

``drain``
    1. refuse new connections to every inet listener of master.cf (nftables, TCP reset:
       a load balancer retries the other servers at once);
    2. raise the drain flag: the ``policy`` service answers the next DATA command of
       every open session with 421, so sessions end between messages, never inside one;
    3. wait (at most --sessions seconds) for the open sessions to end;
    4. wait (at most --queue seconds) until the incoming and active queues are empty,
       so no delivery is in flight when Postfix is signalled.
    It always exits 0: a drain that cannot finish leaves the stop as it was before.

``end``
    Lower the flag and remove the nftables table (ExecStopPost and ExecStartPre).

``policy``
    The Postfix policy service (spawn(8), smtpd_data_restrictions): DUNNO normally,
    ``421 4.3.2`` while the flag is up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import syslog
import time
from typing import Iterable, List, Optional, Set, TextIO

FLAG = "/run/kibamail-postfix-drain/draining"
NFT_TABLE = "kibamail_postfix_drain"
DRAINING_REPLY = "421 4.3.2 Service shutting down, try again (another server will take the message)"
TCP_ESTABLISHED = "01"


def log(message: str) -> None:
    syslog.syslog(syslog.LOG_INFO, message)
    print("kibamail-postfix-drain: %s" % message, file=sys.stderr)


# ---------------------------------------------------------------- what Postfix listens on

def listener_ports(master_services: str) -> List[int]:
    """TCP ports of the inet services in ``postconf -M`` output ("[host:]port" or a service name)."""
    ports: Set[int] = set()
    for line in master_services.splitlines():
        fields = line.split()
        if len(fields) < 8 or fields[1] != "inet":
            continue
        service = fields[0].rsplit(":", 1)[-1]
        if service.isdigit():
            ports.add(int(service))
            continue
        try:
            ports.add(socket.getservbyname(service, "tcp"))
        except OSError:
            log("master.cf service %s: unknown port name, not drained" % fields[0])
    return sorted(ports)


def established_on(ports: Iterable[int], proc_net: Iterable[str]) -> int:
    """Established TCP connections whose local port is one of ports, from /proc/net/tcp{,6} lines."""
    wanted = set(ports)
    count = 0
    for line in proc_net:
        fields = line.split()
        if len(fields) < 4 or ":" not in fields[1] or fields[3] != TCP_ESTABLISHED:
            continue
        try:
            port = int(fields[1].rsplit(":", 1)[1], 16)
        except ValueError:
            continue
        if port in wanted:
            count += 1
    return count


def read_proc_net() -> List[str]:
    lines: List[str] = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name, encoding="ascii") as handle:
                lines.extend(handle.read().splitlines()[1:])
        except OSError:
            continue
    return lines


def queue_in_flight(postqueue_json: str) -> int:
    """Messages Postfix is taking in or delivering (maildrop, incoming and active queues) in ``postqueue -j``."""
    count = 0
    for line in postqueue_json.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("queue_name") in ("incoming", "active", "maildrop"):
            count += 1
    return count


# ---------------------------------------------------------------- actions

def run(argv: List[str], stdin: Optional[str] = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, timeout=60)


def nft_ruleset(ports: List[int]) -> str:
    """A table that resets new TCP connections (SYN without ACK) to the ports, ahead of any other filter."""
    return (
        "table inet %(table)s {\n"
        "  chain input {\n"
        "    type filter hook input priority -10; policy accept;\n"
        "    tcp dport { %(ports)s } tcp flags & (fin | syn | rst | ack) == syn reject with tcp reset\n"
        "  }\n"
        "}\n" % {"table": NFT_TABLE, "ports": ", ".join(str(p) for p in ports)}
    )


def refuse_new_connections(ports: List[int]) -> None:
    nft = shutil.which("nft")
    if not ports:
        return
    if nft is None:
        log("nft is not installed: new connections are not refused during the drain")
        return
    remove_nft_table()
    proc = run([nft, "-f", "-"], stdin=nft_ruleset(ports))
    if proc.returncode != 0:
        log("could not refuse new connections (nft): %s" % proc.stderr.strip())
    else:
        log("refusing new connections to ports %s" % ", ".join(str(p) for p in ports))


def remove_nft_table() -> None:
    nft = shutil.which("nft")
    if nft is None:
        return
    if run([nft, "list", "table", "inet", NFT_TABLE]).returncode == 0:
        run([nft, "delete", "table", "inet", NFT_TABLE])


def raise_flag() -> None:
    os.makedirs(os.path.dirname(FLAG), mode=0o755, exist_ok=True)
    with open(FLAG, "w", encoding="ascii") as handle:
        handle.write("%d\n" % int(time.time()))
    os.chmod(FLAG, 0o644)


def lower_flag() -> None:
    try:
        os.unlink(FLAG)
    except FileNotFoundError:
        pass


def wait_until(what: str, count, seconds: float, interval: float = 0.2) -> int:
    deadline = time.monotonic() + seconds
    left = count()
    while left and time.monotonic() < deadline:
        time.sleep(interval)
        left = count()
    if left:
        log("%s: %d left after %gs; stopping anyway" % (what, left, seconds))
    return left


def postfix_running() -> bool:
    return run(["postfix", "status"]).returncode == 0


def drain(sessions: float, queue: float) -> int:
    if not postfix_running():
        return 0
    started = time.monotonic()
    proc = run(["postconf", "-M"])
    ports = listener_ports(proc.stdout) if proc.returncode == 0 else []
    refuse_new_connections(ports)
    raise_flag()
    open_sessions = wait_until("open SMTP sessions", lambda: established_on(ports, read_proc_net()), sessions)

    def in_flight() -> int:
        listing = run(["postqueue", "-j"])
        return queue_in_flight(listing.stdout) if listing.returncode == 0 else 0

    in_queue = wait_until("messages in the incoming and active queues", in_flight, queue)
    log("drained in %.1fs (%d sessions and %d messages left)" % (time.monotonic() - started, open_sessions, in_queue))
    return 0


def end() -> int:
    lower_flag()
    remove_nft_table()
    return 0


# ---------------------------------------------------------------- policy service

def policy(stdin: TextIO, stdout: TextIO, flag: str = FLAG) -> int:
    """Answer Postfix policy requests (attribute lines ending with an empty line) until EOF."""
    request = False
    for line in stdin:
        if line.strip():
            request = True
            continue
        if not request:
            continue
        request = False
        action = DRAINING_REPLY if os.path.exists(flag) else "DUNNO"
        stdout.write("action=%s\n\n" % action)
        stdout.flush()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="kibamail-postfix-drain", description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    step = sub.add_parser("drain", help="refuse new sessions, end open ones between messages, empty the queues")
    step.add_argument("--sessions", type=float, default=10.0, help="seconds to wait for open sessions")
    step.add_argument("--queue", type=float, default=30.0, help="seconds to wait for deliveries in flight")
    sub.add_parser("end", help="lower the drain flag and accept new connections again")
    sub.add_parser("policy", help="the Postfix policy service (reads stdin)")
    args = parser.parse_args(argv)
    syslog.openlog("kibamail-postfix-drain", syslog.LOG_PID, syslog.LOG_MAIL)
    if args.command == "policy":
        return policy(sys.stdin, sys.stdout)
    if args.command == "end":
        return end()
    try:
        return drain(args.sessions, args.queue)
    except Exception as exc:  # pylint: disable=broad-except
        log("drain failed, stopping without it: %s" % exc)
        return 0


if __name__ == "__main__":
    sys.exit(main())
