# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: dns_zone (one task per zone) against one task per record set.

* RFC 2136: kibamail.email_platform.dns_zone against community.general.nsupdate
  (a loop, one record set per item), both against the same loopback BIND.
* Hetzner Cloud DNS: dns_zone against hetzner.hcloud.zone_rrset (a loop), both
  against the Cloud DNS API stand-in (tests/standins/cloud_dns_api.py).

The data set is synthetic: N A record sets and N/4 TXT record sets (default
N=40). For each tool: a first convergence (empty zone) and a no-change run.
Prints a markdown section: wall time, DNS messages or API requests, changed.

    python bench/dns/run.py                 # N=40, one run each
    python bench/dns/run.py --records 100 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "tests" / "standins"))

from bind import LoopbackBind  # noqa: E402
from cloud_dns_api import CloudDnsStandin  # noqa: E402

ZONE = "bench.test"

NSUPDATE = """---
- name: One nsupdate task per record set
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Publish a record set
      community.general.nsupdate:
        server: 127.0.0.1
        port: "{{ bench_port }}"
        key_name: "{{ bench_key_name }}"
        key_secret: "{{ bench_key_secret }}"
        key_algorithm: hmac-sha256
        zone: "{{ bench_zone }}"
        record: "{{ item.name }}."
        type: "{{ item.type }}"
        ttl: "{{ item.ttl }}"
        value: "{{ item['values'] }}"
      loop: "{{ bench_records }}"
"""

ZONE_RRSET = """---
- name: One zone_rrset task per record set
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Publish a record set
      hetzner.hcloud.zone_rrset:
        api_token: "{{ bench_token }}"
        api_endpoint: "{{ bench_endpoint }}"
        zone: "{{ bench_zone }}"
        name: "{{ item.name | replace('.' ~ bench_zone, '') }}"
        type: "{{ item.type }}"
        ttl: "{{ item.ttl }}"
        records: "{{ item.records }}"
      loop: "{{ bench_records }}"
"""

DNS_ZONE = """---
- name: One dns_zone task for the zone
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Publish the zone
      kibamail.email_platform.dns_zone: "{{ bench_args }}"
"""


def records(count: int) -> List[Dict[str, Any]]:
    result = [{"name": "h%d.%s" % (i, ZONE), "type": "A", "ttl": 300, "values": ["192.0.2.%d" % (i % 250 + 1)]}
              for i in range(count)]
    result += [{"name": "t%d.%s" % (i, ZONE), "type": "TXT", "ttl": 300, "values": ["v=spf1 -all %d" % i]}
               for i in range(max(1, count // 4))]
    return result


def env() -> Dict[str, str]:
    environ = dict(os.environ)
    environ.update({"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                    "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
                    "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_LOCALHOST_WARNING": "0",
                    "PATH": "%s:%s" % (ROOT / ".venv" / "bin", environ.get("PATH", ""))})
    return environ


def play(workdir: Path, text: str, extra: Dict[str, Any]) -> Tuple[float, int, bool]:
    book = workdir / "play.yml"
    book.write_text(text)
    vars_file = workdir / "vars.json"
    vars_file.write_text(json.dumps(extra))
    start = time.monotonic()
    process = subprocess.run(["ansible-playbook", str(book), "-i", "localhost,", "-e", "@%s" % vars_file],
                             capture_output=True, text=True, env=env(), check=False)
    elapsed = time.monotonic() - start
    data = json.loads(process.stdout)
    stats = data["stats"]["localhost"]
    return elapsed, stats["changed"], process.returncode == 0


def query_count(bind: LoopbackBind) -> int:
    log = bind.log()
    return log.count(" query: ") + log.count("signer \"")


def bench_rfc2136(workdir: Path, data: List[Dict[str, Any]], tool: str) -> List[Tuple[str, float, int, int]]:
    rows = []
    bind = LoopbackBind(workdir / ("bind-" + tool), {ZONE: None}, extra_options=["querylog yes;"]).start()
    try:
        for phase in ("first run", "no change"):
            before = query_count(bind)
            if tool == "dns_zone":
                args = {"zone": ZONE, "records": data, "provider": "rfc2136", "server": "127.0.0.1",
                        "port": bind.port, "tsig_key_name": bind.key_name, "tsig_key_secret": bind.key_secret}
                elapsed, changed, ok = play(workdir, DNS_ZONE, {"bench_args": args})
            else:
                extra = {"bench_port": bind.port, "bench_key_name": bind.key_name, "bench_key_secret": bind.key_secret,
                         "bench_zone": ZONE, "bench_records": data}
                elapsed, changed, ok = play(workdir, NSUPDATE, extra)
            if not ok:
                raise RuntimeError("%s %s failed" % (tool, phase))
            rows.append((phase, elapsed, query_count(bind) - before, changed))
    finally:
        bind.stop()
    return rows


def bench_hetzner(workdir: Path, data: List[Dict[str, Any]], tool: str) -> List[Tuple[str, float, int, int]]:
    rows = []
    standin = CloudDnsStandin("bench-token", action_polls=1).start()
    standin.state.add_zone(ZONE)
    try:
        for phase in ("first run", "no change"):
            before = len(standin.requests)
            if tool == "dns_zone":
                args = {"zone": ZONE, "records": data, "provider": "hetzner", "hcloud_token": "bench-token",
                        "hcloud_endpoint": standin.url}
                elapsed, changed, ok = play(workdir, DNS_ZONE, {"bench_args": args})
            else:
                quoted = [dict(r, records=[{"value": '"%s"' % v if r["type"] == "TXT" else v} for v in r["values"]])
                          for r in data]
                extra = {"bench_token": "bench-token", "bench_endpoint": standin.url, "bench_zone": ZONE,
                         "bench_records": quoted}
                elapsed, changed, ok = play(workdir, ZONE_RRSET, extra)
            if not ok:
                raise RuntimeError("%s %s failed" % (tool, phase))
            rows.append((phase, elapsed, len(standin.requests) - before, changed))
    finally:
        standin.stop()
    return rows


def median_rows(runs: List[List[Tuple[str, float, int, int]]]) -> List[Tuple[str, float, int, int]]:
    return [(runs[0][i][0], statistics.median(r[i][1] for r in runs), runs[0][i][2], runs[0][i][3])
            for i in range(len(runs[0]))]


def main() -> None:
    parser = argparse.ArgumentParser(description="dns_zone against one task per record set")
    parser.add_argument("--records", type=int, default=40, help="A record sets (plus a quarter as many TXT)")
    parser.add_argument("--runs", type=int, default=1, help="runs per tool; the table shows medians")
    args = parser.parse_args()
    data = records(args.records)
    print("## DNS: one dns_zone task against one task per record set\n")
    print("`python bench/dns/run.py --records %d --runs %d`: %d record sets in an empty zone, then a re-run.\n"
          % (args.records, args.runs, len(data)))
    print("| backend | tool | run | wall s (median) | DNS messages / API requests | changed tasks |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for backend, func, peer in (("BIND (RFC 2136)", bench_rfc2136, "community.general.nsupdate"),
                                    ("Cloud DNS stand-in", bench_hetzner, "hetzner.hcloud.zone_rrset")):
            for tool in ("dns_zone", peer):
                runs = [func(workdir, data, tool) for run_index in range(args.runs)]
                for phase, elapsed, calls, changed in median_rows(runs):
                    print("| %s | %s | %s | %.1f | %d | %d |" % (backend, tool, phase, elapsed, calls, changed))
    print("\nDNS messages count the queries (zone transfers included) and signed updates BIND logged;"
          " API requests are those the stand-in logged.")


if __name__ == "__main__":
    main()
