# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Messages per second through the HAProxy load balancer vs straight to one MTA.

Uses the containers of the molecule scenario `haproxy` (one HAProxy, two
Postfix MTAs, one client; network 198.51.100.64/27) and Postfix's
smtp-source on the client. Nothing leaves those containers: every message
is addressed to sink@mta.test and delivered into a local Maildir.

Prints a markdown section on stdout (scripts/bench.sh collects it).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = "hap-client"
LB = "198.51.100.66:25"
MTA = "198.51.100.67:25"
MESSAGES = int(os.environ.get("BENCH_MAIL_MESSAGES", "400"))
SESSIONS = 3  # the scenario's per-client connection limit
RUNS = int(os.environ.get("BENCH_MAIL_RUNS", "3"))
SOURCE = ["smtp-source", "-d", "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", "2048",
          "-f", "bench@client.example.test", "-t", "sink@mta.test", "-M", "client.example.test"]


@dataclass
class Series:
    label: str
    target: str
    rates: List[float]


def run(argv: List[str]) -> str:
    done = subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    return done.stdout


def molecule(action: str) -> None:
    run(["molecule", action, "-s", "haproxy"])


def client(argv: List[str]) -> str:
    return run(["docker", "exec", CLIENT] + argv)


def rate(target: str) -> float:
    start = time.monotonic()
    client(SOURCE + [target])
    return MESSAGES / (time.monotonic() - start)


def measure() -> List[Series]:
    series = [Series("through the load balancer (2 MTAs, PROXY v2)", LB, []),
              Series("straight to one MTA", MTA, [])]
    for dummy in range(RUNS):
        for item in series:  # alternate, so drift hits both alike
            item.rates.append(rate(item.target))
    return series


def report(series: List[Series]) -> str:
    lines = [
        "## Mail: messages per second through HAProxy vs one MTA",
        "",
        "`python bench/mail/run.py` (molecule scenario `haproxy`: create, prepare, converge; then on hap-client:)",
        "",
        "    {0} <target>".format(" ".join(SOURCE)),
        "",
        "{0} messages of 2 KiB over {1} sessions per run, {2} runs each, alternating; median messages/s:".format(
            MESSAGES, SESSIONS, RUNS),
        "",
        "| path | target | median msg/s | runs |",
        "|---|---|---|---|",
    ]
    for item in series:
        lines.append("| {0} | {1} | {2:.1f} | {3} |".format(
            item.label, item.target, statistics.median(item.rates), ", ".join("{0:.1f}".format(r) for r in item.rates)))
    return "\n".join(lines)


def main() -> int:
    try:
        molecule("create")
        molecule("prepare")
        molecule("converge")
        run(["docker", "exec", "-e", "DEBIAN_FRONTEND=noninteractive", CLIENT, "apt-get", "install", "-y", "-q", "postfix"])
        print(report(measure()))
    finally:
        molecule("destroy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
