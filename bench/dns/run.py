# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: publishing the platform's zones with dns_zone against one task per record set.

What is published is what playbooks/dns.yml publishes, computed by the project's
own plan (playbooks/_plan.yml on inventories/lab): the kbmta.net zone of the lab,
and the zones of N synthetic customers (customer0001.example ...), each with
the records the plan asks of a managed customer zone (return-path CNAME, DMARC
TXT) and its DKIM TXT (the project's dkim_txt filter over one 2048-bit RSA key,
the size playbooks/dkim_keys.yml makes).

* RFC 2136: kibamail.email_platform.dns_zone with ``zones`` (every zone in one
  task, like playbooks/dns.yml), dns_zone in a loop (one loop item per zone,
  as playbooks/dns.yml did before) and community.general.nsupdate (one loop
  item per record set), all against a fresh loopback BIND (tests/support/bind.py).
* Hetzner Cloud DNS: the same two ways of running dns_zone against
  hetzner.hcloud.zone_rrset (one loop item per record set), all against the
  Cloud DNS API stand-in
  (tests/standins/cloud_dns_api.py; every write returns an action that needs
  one status read).

Each tool publishes into empty zones, then re-checks them (a no-change run).
DNS messages are counted from BIND's query and update log, API requests from
the stand-in's log. dns_zone with ``zones`` always runs over all customer
zones; the loop runs over all of them --full-runs times; the per-record tools
(and the loop once more, to show the scaling holds) run on a sample of zones
and are scaled linearly to all of them; the table says which is which. The
tools take turns within each run, so a slow patch of the machine hits all.

    python bench/dns/run.py                  # 1,000 customers, sample 20, 3 runs, 1 loop run over all zones
    python bench/dns/run.py --full-runs 0    # the loop on the sample only, scaled like the others
    python bench/dns/run.py --customers 100 --sample 10 --runs 5 --full-runs 3

Time: dns_zone with ``zones`` takes seconds per phase for 1,000 zones. The loop
over all customer zones costs about 0.5 s per zone and phase (Ansible starts
the module once per loop item): about 37 minutes for 1,000 zones on the two
backends, which --full-runs 0 leaves out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "support"), str(ROOT / "tests" / "standins"), str(ROOT / ".collections")]

from ansible_env import ansible_env  # noqa: E402
from bind import LoopbackBind  # noqa: E402
from cloud_dns_api import CloudDnsStandin  # noqa: E402
from ansible_collections.kibamail.email_platform.plugins.filter.dns import dkim_txt  # noqa: E402
from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_records import (  # noqa: E402
    presentation_value,
    relative_name,
)

Zones = Dict[str, List[Dict[str, Any]]]
PHASES = ("publish", "re-check")
TOKEN = "bench-token"
INVENTORY = "inventories/lab"

PLAN_PLAY = """---
- name: Compute the plan
  ansible.builtin.import_playbook: {root}/playbooks/_plan.yml

- name: Write the plan for the bench
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write the plan
      ansible.builtin.copy:
        content: "{{{{ platform_plan | to_json }}}}"
        dest: "{{{{ bench_plan_file }}}}"
        mode: "0600"
"""

HEAD = """---
- name: {title}
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
  tasks:
"""

DNS_ZONE = "kibamail.email_platform.dns_zone"
DNS_ZONES = "kibamail.email_platform.dns_zone zones"
PLAYS = {
    DNS_ZONES: HEAD.format(title="One dns_zone task for every zone (zones)") + """
    - name: Publish the record sets of every zone in one task
      kibamail.email_platform.dns_zone: "{{ bench_provider | combine({'zones': bench_items}) }}"
""",
    DNS_ZONE: HEAD.format(title="One dns_zone task per zone, as playbooks/dns.yml did") + """
    - name: Publish the record sets of each zone
      kibamail.email_platform.dns_zone: "{{ bench_provider | combine(item) }}"
      loop: "{{ bench_items }}"
      loop_control:
        label: "{{ item.zone }}"
""",
    "community.general.nsupdate": HEAD.format(title="One nsupdate task per record set") + """
    - name: Publish a record set
      community.general.nsupdate:
        server: 127.0.0.1
        port: "{{ bench_port }}"
        key_name: "{{ bench_key_name }}"
        key_secret: "{{ bench_key_secret }}"
        key_algorithm: hmac-sha256
        zone: "{{ item.zone }}"
        record: "{{ item.name }}."
        type: "{{ item.type }}"
        ttl: "{{ item.ttl }}"
        value: "{{ item['values'] }}"
      loop: "{{ bench_items }}"
      loop_control:
        label: "{{ item.name }} {{ item.type }}"
""",
    "hetzner.hcloud.zone_rrset": HEAD.format(title="One zone_rrset task per record set") + """
    - name: Publish a record set
      hetzner.hcloud.zone_rrset:
        api_token: "{{ bench_token }}"
        api_endpoint: "{{ bench_endpoint }}"
        zone: "{{ item.zone }}"
        name: "{{ item.name }}"
        type: "{{ item.type }}"
        ttl: "{{ item.ttl }}"
        records: "{{ item.records }}"
      loop: "{{ bench_items }}"
      loop_control:
        label: "{{ item.name }} {{ item.zone }} {{ item.type }}"
""",
}


# ------------------------------------------------------------------ running Ansible


def playbook(workdir: Path, name: str, text: str, variables: Dict[str, Any],
             inventory: str = "localhost,") -> Tuple[float, Dict[str, Any]]:
    """Run one playbook (written to workdir) with its variables from a file; wall time and JSON output."""
    book = workdir / (name + ".yml")
    book.write_text(text)
    (workdir / "vars.json").write_text(json.dumps(variables))
    command = ["ansible-playbook", book.name, "-i", inventory, "-e", "@vars.json"]
    start = time.monotonic()
    process = subprocess.run(command, cwd=str(workdir), capture_output=True, text=True,
                             env=ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}),
                             check=False)
    elapsed = time.monotonic() - start
    if process.returncode != 0:
        sys.stderr.write(process.stdout[-6000:] + process.stderr[-2000:])
        raise SystemExit("%s failed: %s" % (name, " ".join(command)))
    return elapsed, json.loads(process.stdout[process.stdout.find("{"):])


def changed_items(output: Dict[str, Any]) -> int:
    """Loop items the play reported changed, or zones for dns_zone with zones."""
    results = [result for play in output["plays"] for task in play["tasks"]
               for host in [task["hosts"].get("localhost", {})] for result in host.get("results", [host])]
    return sum(1 for result in results for item in result.get("zones", [result]) if item.get("changed"))


# ------------------------------------------------------------------ what is published


def customers(count: int) -> List[Dict[str, Any]]:
    return [{"domain": "customer%04d.example" % n, "zone_managed": True} for n in range(1, count + 1)]


def platform_plan(workdir: Path, count: int) -> Dict[str, Any]:
    """The plan of the lab inventory, its customers replaced by ``count`` synthetic ones."""
    plan_file = workdir / "plan.json"
    variables = {"platform_customers": customers(count), "bench_plan_file": str(plan_file)}
    playbook(workdir, "plan", PLAN_PLAY.format(root=ROOT), variables, inventory=str(ROOT / INVENTORY))
    return json.loads(plan_file.read_text())


def dkim_value() -> str:
    """The DKIM TXT value of a fresh 2048-bit RSA key, through the project's dkim_txt filter."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return dkim_txt(public.public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode())


def published_zones(plan: Dict[str, Any], dkim: str) -> Zones:
    """The record sets playbooks/dns.yml publishes per managed zone: the plan's, plus each customer's DKIM TXT."""
    managed = [plan["domain"]] + [domain for domain, c in plan["customers"].items() if c["zone_managed"]]
    dkim_records = {domain: [{"name": c["dkim_name"], "type": "TXT", "ttl": plan["ttl"], "values": [dkim]}]
                    for domain, c in plan["customers"].items()}
    return {zone: plan["zones"].get(zone, []) + dkim_records.get(zone, []) for zone in managed}


def record_count(zones: Zones) -> int:
    return sum(len(records) for records in zones.values())


def per_record(zones: Zones) -> List[Tuple[str, Dict[str, Any]]]:
    """(zone, record set) in the order a per-record loop must use: address records first, since BIND
    refuses an MX whose target inside the zone has no address yet."""
    return [(zone, rrset) for zone, records in zones.items()
            for rrset in sorted(records, key=lambda r: r["type"] not in ("A", "AAAA"))]


def zone_items(zones: Zones, ttl: int) -> List[Dict[str, Any]]:
    return [{"zone": zone, "records": records, "ttl": ttl, "prune": "managed"} for zone, records in zones.items()]


def values(rrset: Dict[str, Any]) -> List[str]:
    """Values in zone-file form (TXT quoted, cut into 255-byte strings), as the per-record modules want them."""
    return [presentation_value(rrset["type"], value) for value in rrset["values"]]


# ------------------------------------------------------------------ backends


class Bind:
    """A fresh loopback BIND holding the zones empty; counts the DNS messages it logs."""

    label = "BIND (RFC 2136)"
    peer = "community.general.nsupdate"

    def __init__(self, workdir: Path, zones: Zones) -> None:
        self.server = LoopbackBind(workdir / "bind", {zone: None for zone in zones},
                                   extra_options=["querylog yes;"]).start()
        self.wait_loaded(list(zones)[-1])

    def wait_loaded(self, zone: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.server.query(zone, "SOA").answer:
            if time.monotonic() > deadline:
                raise SystemExit("BIND did not load %s" % zone)
            time.sleep(0.2)

    def count(self) -> int:
        log = self.server.log()
        return log.count(" query: ") + log.count("signer \"")

    def provider(self) -> Dict[str, Any]:
        return {"provider": "rfc2136", "server": "127.0.0.1", "port": self.server.port,
                "tsig_key_name": self.server.key_name, "tsig_key_secret": self.server.key_secret}

    def peer_vars(self, zones: Zones) -> Dict[str, Any]:
        items = [{"zone": zone, "name": r["name"], "type": r["type"], "ttl": r["ttl"], "values": values(r)}
                 for zone, r in per_record(zones)]
        return {"bench_port": self.server.port, "bench_key_name": self.server.key_name,
                "bench_key_secret": self.server.key_secret, "bench_items": items}

    def holds(self, zone: str, rrset: Dict[str, Any]) -> bool:
        answer = self.server.query(rrset["name"], rrset["type"]).answer
        return bool(answer) and len(answer[0]) == len(rrset["values"])

    def stop(self) -> None:
        self.server.stop()


class Cloud:
    """A fresh Cloud DNS API stand-in holding the zones empty; counts the API requests it logs."""

    label = "Cloud DNS stand-in"
    peer = "hetzner.hcloud.zone_rrset"

    def __init__(self, workdir: Path, zones: Zones) -> None:
        self.standin = CloudDnsStandin(TOKEN, action_polls=1).start()
        for zone in zones:
            self.standin.state.add_zone(zone)

    def count(self) -> int:
        return len(self.standin.requests)

    def provider(self) -> Dict[str, Any]:
        return {"provider": "hetzner", "hcloud_token": TOKEN, "hcloud_endpoint": self.standin.url}

    def peer_vars(self, zones: Zones) -> Dict[str, Any]:
        items = [{"zone": zone, "name": relative_name(r["name"], zone), "type": r["type"], "ttl": r["ttl"],
                  "records": [{"value": value} for value in values(r)]} for zone, r in per_record(zones)]
        return {"bench_token": TOKEN, "bench_endpoint": self.standin.url, "bench_items": items}

    def holds(self, zone: str, rrset: Dict[str, Any]) -> bool:
        held = self.standin.state.zone(zone).rrsets.get((relative_name(rrset["name"], zone), rrset["type"]))
        return held is not None and len(held["records"]) == len(rrset["values"])

    def stop(self) -> None:
        self.standin.stop()


BACKENDS = {"bind": Bind, "cloud": Cloud}


# ------------------------------------------------------------------ measuring


@dataclass
class Job:
    """One tool on one backend over some zones, ``runs`` times; scaled from ``zones`` to ``total_zones``."""

    scope: str
    backend: type
    tool: str
    zones: Zones
    total_zones: int
    total_rrsets: int
    runs: int
    ttl: int


@dataclass
class Row:
    scope: str
    backend: str
    tool: str
    phase: str
    rrsets: int
    seconds: float
    calls: float
    changed: float
    how: str


def tool_vars(job: Job, backend: Any) -> Dict[str, Any]:
    if job.tool in (DNS_ZONE, DNS_ZONES):
        return {"bench_provider": backend.provider(), "bench_items": zone_items(job.zones, job.ttl)}
    return backend.peer_vars(job.zones)


def measure(job: Job, workdir: Path) -> List[Tuple[float, int, int]]:
    """Publish into empty zones, then re-check: (seconds, messages or requests, changed items) per phase."""
    backend = job.backend(workdir, job.zones)
    results = []
    try:
        for phase in PHASES:
            before = backend.count()
            seconds, output = playbook(workdir, job.tool.rsplit(".", 1)[-1].replace(" ", "_"), PLAYS[job.tool],
                                       tool_vars(job, backend))
            results.append((seconds, backend.count() - before, changed_items(output)))
            print("bench dns: %s / %s / %s / %s: %.1f s" % (job.scope, job.backend.label, job.tool, phase, seconds),
                  file=sys.stderr, flush=True)
        missing = [rrset["name"] for zone, rrset in per_record(job.zones) if not backend.holds(zone, rrset)]
        if missing:
            raise SystemExit("%s on %s did not publish %s" % (job.tool, job.backend.label, ", ".join(missing[:5])))
    finally:
        backend.stop()
    return results


def how(job: Job) -> str:
    runs = "median of %d runs" % job.runs if job.runs > 1 else "1 run"
    if len(job.zones) == job.total_zones:
        return "measured, %s" % runs
    return "measured on %d zones, scaled x%g, %s" % (len(job.zones), job.total_zones / len(job.zones), runs)


def rows(job: Job, runs: List[List[Tuple[float, int, int]]]) -> List[Row]:
    scale = job.total_zones / len(job.zones)
    out = []
    for index, phase in enumerate(PHASES):
        seconds, calls, changed = (statistics.median(run[index][field] for run in runs) for field in range(3))
        out.append(Row(job.scope, job.backend.label, job.tool, phase, job.total_rrsets, seconds * scale,
                       calls * scale, changed * scale, how(job)))
    return out


def run_jobs(jobs: List[Job], root: Path) -> List[Row]:
    """Run every job its number of times, the jobs taking turns within each round."""
    results: Dict[int, List[List[Tuple[float, int, int]]]] = {index: [] for index in range(len(jobs))}
    rounds = max(job.runs for job in jobs)
    for round_index in range(rounds):
        print("bench dns: run %d of %d" % (round_index + 1, rounds), file=sys.stderr, flush=True)
        for index, job in enumerate(jobs):
            if round_index < job.runs:
                workdir = Path(tempfile.mkdtemp(dir=str(root)))
                results[index].append(measure(job, workdir))
    return [row for index, job in enumerate(jobs) for row in rows(job, results[index])]


def plan_jobs(args: argparse.Namespace, plan: Dict[str, Any], published: Zones) -> List[Job]:
    platform = {plan["domain"]: published[plan["domain"]]}
    zones = {zone: records for zone, records in published.items() if zone != plan["domain"]}
    sample = dict(list(zones.items())[:args.sample])
    scope = "%s customer zones" % format(len(zones), ",")
    jobs = []
    for backend in (BACKENDS[name] for name in args.backends):
        common = {"backend": backend, "ttl": plan["ttl"]}
        peers = () if args.no_peers else (backend.peer,)
        jobs += [Job(plan["domain"], tool=tool, zones=platform, total_zones=1, total_rrsets=record_count(platform),
                     runs=args.runs, **common) for tool in (DNS_ZONE,) + peers]
        jobs.append(Job(scope, tool=DNS_ZONES, zones=zones, total_zones=len(zones), total_rrsets=record_count(zones),
                        runs=args.runs, **common))
        if args.full_runs > 0:
            jobs.append(Job(scope, tool=DNS_ZONE, zones=zones, total_zones=len(zones),
                            total_rrsets=record_count(zones), runs=args.full_runs, **common))
        if 0 < args.sample < len(zones):
            jobs += [Job(scope, tool=tool, zones=sample, total_zones=len(zones), total_rrsets=record_count(zones),
                         runs=args.runs, **common) for tool in (DNS_ZONE,) + peers]
    return jobs


# ------------------------------------------------------------------ output


def table(result: List[Row]) -> str:
    lines = ["| zones | backend | tool | run | record sets | wall s | DNS messages / API requests | changed items | how |",
             "|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in result:
        lines.append("| %s | %s | %s | %s | %d | %.1f | %.0f | %.0f | %s |" % (
            r.scope, r.backend, r.tool, r.phase, r.rrsets, r.seconds, r.calls, r.changed, r.how))
    return "\n".join(lines)


def header(args: argparse.Namespace, plan: Dict[str, Any], zones: Zones) -> str:
    command = "python bench/dns/run.py --customers %d --sample %d --runs %d --full-runs %d%s" % (
        args.customers, args.sample, args.runs, args.full_runs, " --no-peers" if args.no_peers else "")
    domain = plan["domain"]
    return "\n".join([
        "## DNS: dns_zone, many zones in one task or a loop, against one task per record set (bench/dns/run.py)", "",
        "`%s`" % command, "",
        "The record sets are those playbooks/dns.yml publishes, from the project's plan of `%s` "
        "(`ansible-playbook plan.yml -i %s -e @vars.json`, plan.yml importing playbooks/_plan.yml, vars.json "
        "holding %s synthetic customers `customer0001.example` ...): %s with %d record sets (%d values), and "
        "per customer zone the return-path CNAME, the DMARC TXT and the DKIM TXT (2048-bit RSA), %d record sets "
        "in all." % (INVENTORY, INVENTORY, format(args.customers, ","), domain, len(zones[domain]),
                     sum(len(r["values"]) for r in zones[domain]), record_count(zones) - len(zones[domain])),
        "",
        "Each tool runs as `ansible-playbook <tool>.yml -i localhost, -e @vars.json` (plays in bench/dns/run.py): "
        "`dns_zone zones` one task with every zone in its `zones` option, as playbooks/dns.yml; dns_zone one loop "
        "item per zone, as playbooks/dns.yml did before; community.general.nsupdate and "
        "hetzner.hcloud.zone_rrset one loop item per record set. Each publishes into empty zones on a fresh "
        "server, then re-checks them unchanged.", ""])


def footer(started: float) -> str:
    return "\n".join([
        "",
        "DNS messages count the queries (zone transfers and SOA look-ups included) and signed updates the "
        "loopback BIND logged; API requests are those the Cloud DNS stand-in logged (each write action needs "
        "one status read). Scaled rows multiply the sample's wall time, messages and changed items by the "
        "factor shown, ansible-playbook's start (about a second) included, so their wall time is a little "
        "high; where the dns_zone loop also ran over all zones, its two rows show by how much. Changed items are "
        "loop items Ansible reported changed (zones for dns_zone, record sets for the others), and for "
        "`dns_zone zones` the zones its result reports changed.",
        "",
        "Bench wall time: %.0f min." % ((time.monotonic() - started) / 60)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--customers", type=int, default=1000, help="synthetic customer zones (default 1000)")
    parser.add_argument("--sample", type=int, default=20,
                        help="customer zones the per-record tools run on, scaled to all (default 20; 0: no sample)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the kbmta.net zone and the sample (default 3)")
    parser.add_argument("--full-runs", type=int, default=1,
                        help="runs of the dns_zone loop over all customer zones (default 1; 0: sample only)")
    parser.add_argument("--backends", type=lambda v: v.split(","), default=list(BACKENDS),
                        help="comma-separated backends to measure: bind, cloud (default both). The Cloud DNS"
                        " stand-in holds the API's 3600 requests per hour: 1,000 fresh zones need 5,160 requests,"
                        " so a run there waits on the rate limit for about 26 minutes")
    parser.add_argument("--no-peers", action="store_true",
                        help="leave out the per-record tools (nsupdate, zone_rrset): dns_zone's rows only")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp:
        root = Path(tmp)
        plan = platform_plan(root, args.customers)
        zones = published_zones(plan, dkim_value())
        print(header(args, plan, zones))
        print(table(run_jobs(plan_jobs(args, plan, zones), root)))
    print(footer(started))


if __name__ == "__main__":
    main()
