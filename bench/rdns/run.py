# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: bulk rDNS with robot_rdns against a loop of community.hrobot.reverse_dns.

Both run through ansible-playbook against the same Robot stand-in
(tests/standins/robot_api.py) with a per-call latency, over the PTRs of whole
subnets (default: two /24s, 508 PTRs). For each tool: a first convergence
(no PTR set yet) and a no-change run. Prints a markdown table: API calls, rDNS
calls, wall time, and the hours of Robot's rDNS budget (500 calls an hour)
those calls use.

community.hrobot always talks to https://robot-ws.your-server.de; to aim it at
the stand-in, this script writes a throw-away copy of its reverse_dns module
into a temporary library folder with only the base URL replaced (nothing is
stored in the repository, the module's logic is untouched).

    python bench/rdns/run.py                   # defaults: 2 x /24, 50 ms per call, hrobot on 16 PTRs
    python bench/rdns/run.py --hrobot-sample 0 # the hrobot loop over all PTRs too (about 20 minutes)

The community.hrobot loop costs about a second per loop item in ansible-playbook,
so by default it runs on a sample of the PTRs and its calls and time are scaled
to the whole set (the table says so); both grow linearly with the number of PTRs.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "standins"))

from robot_api import RobotStandin  # noqa: E402

USER = "bench"
PASSWORD = "bench-password"
SUBNETS = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]
RDNS_BUDGET_PER_HOUR = 500

ROBOT_RDNS_PLAY = """
- name: robot_rdns
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Reconcile all PTRs
      kibamail.email_platform.robot_rdns:
        robot_user: "{{ robot_user }}"
        robot_password: "{{ robot_password }}"
        robot_url: "{{ robot_url }}"
        ptr_map: "{{ ptr_map }}"
"""

HROBOT_PLAY = """
- name: community.hrobot.reverse_dns loop
  hosts: localhost
  gather_facts: false
  tasks:
    - name: One PTR per loop item
      bench_hrobot_reverse_dns:
        hetzner_user: "{{ robot_user }}"
        hetzner_password: "{{ robot_password }}"
        ip: "{{ item.key }}"
        value: "{{ item.value }}"
      loop: "{{ ptr_map | dict2items }}"
      loop_control:
        label: "{{ item.key }}"
"""


@dataclass
class Row:
    tool: str
    run: str
    ptrs: int
    calls: float
    rdns_calls: float
    seconds: float
    changed: bool
    note: str = "measured"


def ptr_map(count: int) -> Dict[str, str]:
    ptrs: Dict[str, str] = {}
    for n, subnet in enumerate(SUBNETS[:count]):
        for addr in ipaddress.ip_network(subnet).hosts():
            ptrs[str(addr)] = "mta{0}-{1}.kbmta.net".format(n + 1, str(addr).replace(".", "-"))
    return ptrs


def seed(count: int) -> Dict[str, Any]:
    return {"subnets": [{"ip": s.split("/")[0], "mask": 24, "gateway": None, "server_ip": None,
                         "server_number": None, "failover": False, "locked": False} for s in SUBNETS[:count]]}


def hrobot_library(dest: Path) -> Path:
    """A copy of community.hrobot.reverse_dns aimed at the stand-in (base URL from the environment)."""
    import ansible_collections.community.hrobot.plugins.modules.reverse_dns as original

    source = Path(original.__file__).read_text()
    needle = 'url = "{0}/rdns/{1}".format(BASE_URL, ip)'
    if needle not in source:
        raise SystemExit("community.hrobot.reverse_dns changed: cannot aim it at the stand-in ({0})".format(original.__file__))
    patched = source.replace(needle, 'url = "{0}/rdns/{1}".format(__import__("os").environ["BENCH_ROBOT_URL"], ip)')
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "bench_hrobot_reverse_dns.py").write_text(patched)
    return dest


def play(tmp: Path, name: str, text: str, variables: Dict[str, Any], library: Path, url: str) -> tuple:
    book = tmp / (name + ".yml")
    book.write_text(text)
    vars_file = tmp / "vars.json"
    vars_file.write_text(json.dumps(variables))
    env = dict(os.environ)
    env.update({"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
                "ANSIBLE_LIBRARY": str(library), "BENCH_ROBOT_URL": url,
                "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
           "-e", "@" + str(vars_file), str(book)]
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit("{0} failed".format(name))
    stats = json.loads(proc.stdout[proc.stdout.find("{"):])["stats"]["localhost"]
    return elapsed, stats.get("changed", 0) > 0


def measure(standin: RobotStandin, tmp: Path, tool: str, text: str, ptrs: Dict[str, str], library: Path,
            sample: int = 0) -> List[Row]:
    """Run the tool twice (first convergence, no change). With ``sample``, run it on that many PTRs
    and scale calls and time linearly to all of ``ptrs`` (both grow with the number of PTRs)."""
    full = len(ptrs)
    if sample and sample < full:
        ptrs = dict(list(ptrs.items())[:sample])
    scale = full / len(ptrs)
    rows = []
    variables = {"robot_user": USER, "robot_password": PASSWORD, "robot_url": standin.url, "ptr_map": ptrs,
                 "ansible_python_interpreter": sys.executable}
    standin.set_ptrs({})
    for run in ("first convergence", "no change"):
        standin.log.clear()
        seconds, changed = play(tmp, tool.replace(".", "_"), text, variables, library, standin.url)
        log = list(standin.log)
        note = "measured" if scale == 1 else "measured on {0} PTRs, scaled x{1:.1f}".format(len(ptrs), scale)
        rows.append(Row(tool, run, full, len(log) * scale,
                        sum(1 for e in log if e["path"].startswith("/rdns")) * scale, seconds * scale, changed, note))
    if standin.snapshot()["rdns"] != ptrs:  # the tool must really have reached the wanted state
        raise SystemExit("{0} did not reach the wanted PTRs".format(tool))
    return rows


def table(rows: List[Row], latency: float) -> str:
    lines = [
        "| tool | run | PTRs | API calls | rDNS calls | hours of rDNS budget (500/h) | wall time (s) | changed | how |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append("| {0} | {1} | {2} | {3:.0f} | {4:.0f} | {5:.2f} | {6:.1f} | {7} | {8} |".format(
            r.tool, r.run, r.ptrs, r.calls, r.rdns_calls, r.rdns_calls / RDNS_BUDGET_PER_HOUR, r.seconds,
            "yes" if r.changed else "no", r.note))
    lines.append("")
    lines.append("Stand-in latency {0:.0f} ms per API call; no rate limit applied, so wall time excludes waiting "
                 "for Robot's budget (the budget column says how long that would add).".format(latency * 1000))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--subnets", type=int, default=2, choices=(1, 2, 3), help="number of /24s (default 2)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per API call at the stand-in")
    parser.add_argument("--skip-hrobot", action="store_true", help="measure robot_rdns only")
    parser.add_argument("--hrobot-sample", type=int, default=16,
                        help="run the community.hrobot loop on this many PTRs and scale (0: all; about 1 s per "
                             "loop item, so all of two /24s takes about 20 minutes)")
    args = parser.parse_args()
    ptrs = ptr_map(args.subnets)
    with tempfile.TemporaryDirectory(prefix="bench-rdns-") as tmpdir:
        tmp = Path(tmpdir)
        library = hrobot_library(tmp / "library")
        standin = RobotStandin(USER, PASSWORD, state=seed(args.subnets), latency=args.latency).start()
        try:
            rows = measure(standin, tmp, "kibamail.email_platform.robot_rdns", ROBOT_RDNS_PLAY, ptrs, library)
            if not args.skip_hrobot:
                rows += measure(standin, tmp, "community.hrobot.reverse_dns (loop)", HROBOT_PLAY, ptrs, library,
                                args.hrobot_sample)
        finally:
            standin.stop()
    print(table(rows, args.latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
