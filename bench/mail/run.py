# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Messages per second through the transactional load balancer vs straight to an MTA, on the lab.

Needs the running lab (scripts/lab.sh up: HAProxy, Postfix, OpenDKIM, Dovecot
SASL as site.yml configures them). Every message is a customer submission:
STARTTLS, AUTH as support@kibamail.com (password from the lab vault), From
support@kibamail.com, so OpenDKIM signs it (d=kibamail.com, s=kb1) and the MTA
delivers it through its sending IP to the lab receiver kb-mx
(bench@recipient.example).

Paths, measured in the same run, alternating, median of several runs:

- lb: a throwaway client container on kb-lab (198.51.100.45) submits to the
  transactional load balancer, 198.51.100.10:587; HAProxy (TCP mode, TLS
  passed through) adds PROXY v2 and spreads the sessions over us-mta1 and
  us-mta2 (leastconn), port 2587.
- direct: the MTAs have no customer listener without PROXY protocol, and
  nftables admits only the load balancer's address to 2525/2587/2465 (the
  script proves that from the client container). So the direct client is a
  throwaway container in the load balancer's network namespace
  (--network container:lb-transactional): it connects from 198.51.100.10
  straight to us-mta1:2587 and writes the PROXY v2 header itself, as HAProxy
  would. Same TLS, AUTH, milter, queue and delivery; no HAProxy in the path.
- direct2: the same, sessions split over us-mta1 and us-mta2: the backends
  of the lb path without HAProxy, so lb / direct2 is HAProxy's own cost.

Per run: M messages of 2 KiB over N sessions. "accepted" is M over the time
from the first connect to the last 250 after DATA; "end-to-end" is M over the
time from the first connect until the last message was stored by the
receiver (its own timestamp). After each run the script waits until every
Message-ID of the run is at the receiver exactly once (missing or doubled
mail fails the benchmark), checks every message's DKIM signature with dkimpy
against the lab DNS (198.51.100.53), then removes the run's messages from the
receiver's store.

Prints a markdown section on stdout (scripts/bench.sh collects it); progress
goes to stderr. Knobs: BENCH_MAIL_MESSAGES (500), BENCH_MAIL_SESSIONS (4),
BENCH_MAIL_SIZE (2048), BENCH_MAIL_RUNS (5), BENCH_MAIL_WARMUP (100),
BENCH_MAIL_SERIES (lb,direct,direct2), BENCH_MAIL_DELIVERY_DEADLINE (180 s).

BENCH_MAIL_LB_OWN_CPU=1 gives the transactional load balancer's container a
CPU of its own for the benchmark, as in production where HAProxy runs on its
own host: lb-transactional on the last CPU, every other lab container (the
MTAs, the receiver, DNS, the clients) on the others (docker update
--cpuset-cpus); each container's own CPU set comes back at the end. Without
it, HAProxy and the MTAs share the machine's cores, and on a 2-core machine
every millisecond HAProxy spends is taken from the MTAs.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reliability"))
from reliability_support import container_running as running, lab_vault  # noqa: E402  (one vault reader)
LAB_JSON = os.environ.get("KB_LAB_JSON", os.path.join(ROOT, ".lab", "lab.json"))

MESSAGES = int(os.environ.get("BENCH_MAIL_MESSAGES", "500"))
SESSIONS = int(os.environ.get("BENCH_MAIL_SESSIONS", "4"))
SIZE = int(os.environ.get("BENCH_MAIL_SIZE", "2048"))
RUNS = int(os.environ.get("BENCH_MAIL_RUNS", "5"))
WARMUP = int(os.environ.get("BENCH_MAIL_WARMUP", "100"))
SERIES = [s for s in os.environ.get("BENCH_MAIL_SERIES", "lb,direct,direct2").split(",") if s]
DELIVERY_DEADLINE = float(os.environ.get("BENCH_MAIL_DELIVERY_DEADLINE", "180"))
LB_OWN_CPU = os.environ.get("BENCH_MAIL_LB_OWN_CPU") == "1"

SENDER = "support@kibamail.com"
SENDER_DOMAIN = "kibamail.com"
SELECTOR = "kb1"
LB_HOST = "lb-transactional"
LB_PORT = 587
BACKEND = "be_submission"          # HAProxy backend of port 587 (roles/haproxy)
IMAGE = "local/debian-systemd:12"  # the lab's image: has python3
CLIENT_LB = "kb-bench-mail-client"
CLIENT_LB_ADDRESS = "198.51.100.45"  # free in the lab (scripts/lab.sh HOSTS); .40 is kb-mon
CLIENT_DIRECT = "kb-bench-mail-direct"
LABEL = "kibamail.bench=mail"


def log(text: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), text), file=sys.stderr, flush=True)


def docker(args: Sequence[str], stdin: Optional[bytes] = None, timeout: float = 120,
           check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker"] + list(args), input=stdin, capture_output=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("docker %s failed (%d): %s%s" % (
            " ".join(args[:4]), proc.returncode, proc.stderr.decode("utf-8", "replace")[-2000:],
            proc.stdout.decode("utf-8", "replace")[-2000:]))
    return proc


def quote(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


# ---------------------------------------------------------------- the lab


def lab_description() -> Dict[str, Any]:
    if not os.path.exists(LAB_JSON):
        raise SystemExit("no %s: the mail benchmark needs the running lab (scripts/lab.sh up)" % LAB_JSON)
    with open(LAB_JSON, encoding="utf-8") as handle:
        return json.load(handle)


def sasl_password() -> str:
    """support@kibamail.com's password from the lab vault (lab-only password file)."""
    return str(lab_vault()["vault_sasl_passwords"][SENDER])


def lb_backends(lb_container: str, backend: str) -> List[Tuple[str, str]]:
    """(server name, address:port) of one HAProxy backend, read from the running configuration."""
    text = docker(["exec", lb_container, "cat", "/etc/haproxy/haproxy.cfg"]).stdout.decode()
    servers: List[Tuple[str, str]] = []
    inside = False
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("backend", "frontend", "listen", "defaults", "global"):
            inside = words[0] == "backend" and len(words) > 1 and words[1] == backend
            continue
        if inside and words[0] == "server" and len(words) >= 3:
            servers.append((words[1], words[2]))
    if not servers:
        raise RuntimeError("no servers in backend %s of %s's haproxy.cfg" % (backend, lb_container))
    return servers


def lb_server_states(lb_container: str, backend: str) -> Dict[str, str]:
    """server name -> status (UP, DOWN, MAINT, ...) of one backend, from HAProxy's stats socket."""
    proc = docker(["exec", lb_container, "sh", "-c", "echo 'show stat' | socat stdio /run/haproxy/admin.sock"])
    lines = proc.stdout.decode().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise RuntimeError("unexpected answer of HAProxy's stats socket on %s: %s" % (lb_container, lines[:3]))
    columns = lines[0][2:].split(",")
    states: Dict[str, str] = {}
    for line in lines[1:]:
        row = dict(zip(columns, line.split(",")))
        if row.get("pxname") == backend and row.get("svname") not in ("BACKEND", "FRONTEND", None):
            states[row["svname"]] = row.get("status", "")
    return states


# ---------------------------------------------------------------- the receiver

RECEIVER_SCAN = r'''
import base64, email.parser, json, os, sys
store, prefix, since, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
found = []
with os.scandir(store) as entries:
    for entry in entries:
        if not entry.name.endswith(".eml"):
            continue
        try:
            if entry.stat().st_mtime < since:
                continue
            with open(entry.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            continue
        head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
        mid = (email.parser.BytesHeaderParser().parsebytes(head + b"\r\n\r\n").get("Message-ID") or "").strip()
        if not mid.startswith("<" + prefix):
            continue
        meta_path = entry.path[:-4] + ".json"
        if not os.path.exists(meta_path):
            continue        # the receiver writes the .json last: not complete yet
        if mode == "delete":
            for path in (entry.path, meta_path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            found.append({"mid": mid})
            continue
        with open(meta_path, "rb") as handle:
            meta = json.load(handle)
        row = {"mid": mid, "received_at": meta.get("received_at"), "peer_ip": meta.get("peer_ip"),
               "mail_from": meta.get("mail_from")}
        if mode == "raw":
            row["raw"] = base64.b64encode(raw).decode()
        found.append(row)
print(json.dumps(found))
'''


@dataclass
class Receiver:
    container: str
    store: str

    def scan(self, prefix: str, since: float, mode: str = "meta") -> List[Dict[str, Any]]:
        proc = docker(["exec", "-i", self.container, "python3", "-c", RECEIVER_SCAN,
                       self.store, prefix, "%.3f" % since, mode], timeout=300)
        return list(json.loads(proc.stdout.decode()))


def container_cpu_seconds(container: str) -> float:
    """CPU time the container's processes used so far, read on this machine from the container's cgroup:
    cgroup v1 (cpuacct.usage, nanoseconds) or v2 (cpu.stat, usage_usec), as docker placed it."""
    cid = docker(["inspect", "-f", "{{.Id}}", container]).stdout.decode().strip()
    candidates = [("/sys/fs/cgroup/cpuacct/docker/%s/cpuacct.usage" % cid, None),
                  ("/sys/fs/cgroup/system.slice/docker-%s.scope/cpu.stat" % cid, "usage_usec"),
                  ("/sys/fs/cgroup/docker/%s/cpu.stat" % cid, "usage_usec")]
    for path, field_name in candidates:
        try:
            with open(path, encoding="ascii") as handle:
                text = handle.read()
        except OSError:
            continue
        if field_name is None:
            return int(text.strip()) / 1e9
        for line in text.splitlines():
            name, _sep, value = line.partition(" ")
            if name == field_name:
                return int(value) / 1e6
    raise RuntimeError("%s: no CPU usage in its cgroup (tried %s)" % (container, ", ".join(path for path, _name in candidates)))


def machine_cpu_times() -> Tuple[float, float]:
    """(busy, total) jiffies of the whole machine (first line of /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [float(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# ---------------------------------------------------------------- the MTA's journal

JOURNAL_LINE = re.compile(r"^(\d+\.\d+) \S+ (\S+?)\[\d+\]: ([0-9A-F]{6,}): (.*)$")


def milter_timeline(container: str, since: float, until: float, prefix: str) -> List[Tuple[float, float]]:
    """Per message of the bench (Message-ID starting with prefix, warm-up excluded) on one MTA:
    (cleanup has the headers -> OpenDKIM added its signature, signature -> queue manager took it),
    in seconds, from the MTA's journal (read only)."""
    proc = docker(["exec", container, "journalctl", "--since", "@%d" % int(since), "--until",
                   "@%d" % (int(until) + 2), "-o", "short-unix", "--no-pager"], timeout=300)
    open_: Dict[str, Dict[str, float]] = {}
    done: List[Tuple[float, float]] = []
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        match = JOURNAL_LINE.match(line)
        if not match:
            continue
        when, program, qid, rest = float(match.group(1)), match.group(2), match.group(3), match.group(4)
        if rest.startswith("message-id=<" + prefix):
            if "-w-" not in rest:
                open_[qid] = {"header": when}
            continue
        record = open_.get(qid)
        if record is None:
            continue
        if program.startswith("opendkim") and rest.startswith("DKIM-Signature field added"):
            record["signed"] = when
        elif program.endswith("/qmgr") and rest.endswith("(queue active)") and "signed" in record:
            done.append((record["signed"] - record["header"], when - record["signed"]))
            del open_[qid]
    return done


# ---------------------------------------------------------------- DKIM


class DkimChecker:
    """dkimpy against the lab's authoritative DNS (no other resolver is asked)."""

    def __init__(self, nameserver: str, port: int) -> None:
        import dns.resolver

        self.resolver = dns.resolver.Resolver(configure=False)
        self.resolver.nameservers = [nameserver]
        self.resolver.port = port
        self.resolver.lifetime = 5.0
        self.cache: Dict[bytes, Optional[bytes]] = {}

    def dnsfunc(self, name: bytes, timeout: int = 5) -> Optional[bytes]:
        import dns.resolver

        if name not in self.cache:
            try:
                answer = self.resolver.resolve(name.decode().rstrip("."), "TXT")
                self.cache[name] = b"".join(answer[0].strings)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                self.cache[name] = None
        return self.cache[name]

    def check(self, raw: bytes) -> Optional[str]:
        """None if the message carries a valid signature by d=kibamail.com s=kb1, else why not."""
        import dkim

        verifier = dkim.DKIM(raw)
        try:
            valid = verifier.verify(dnsfunc=self.dnsfunc)
        except dkim.DKIMException as exc:
            return "DKIM error: %s" % exc
        tags = verifier.signature_fields or {}
        domain, selector = tags.get(b"d", b"").decode().lower(), tags.get(b"s", b"").decode()
        if not valid:
            return "DKIM fail (d=%s s=%s)" % (domain, selector)
        if (domain, selector) != (SENDER_DOMAIN, SELECTOR):
            return "signed by d=%s s=%s, not d=%s s=%s" % (domain, selector, SENDER_DOMAIN, SELECTOR)
        return None


# ---------------------------------------------------------------- paths and runs


@dataclass
class Path:
    key: str
    label: str
    container: str
    targets: List[str]
    proxy_v2: bool

    def argv(self, tag: str, messages: int, recipient: str) -> List[str]:
        argv = ["python3", "/bench/client.py"]
        for target in self.targets:
            argv += ["--target", target]
        if self.proxy_v2:
            argv.append("--proxy-v2")
        return argv + ["--sessions", str(SESSIONS), "--messages", str(messages), "--size", str(SIZE),
                       "--tag", tag, "--sender", SENDER, "--recipient", recipient]


@dataclass
class RunResult:
    accepted_rate: float
    e2e_rate: float
    latencies: List[float]
    sending_ips: List[str]
    # CPU seconds each container used during the run (its cgroup's usage_usec), and the
    # share of the machine's CPU time that was busy (/proc/stat), from the first connect
    # to the last 250 after DATA.
    cpu: Dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0


@dataclass
class Series:
    path: Path
    runs: List[RunResult] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)


class CpuSets:
    """The load balancer alone on the last CPU, every other container on the rest; restore() puts back
    each container's own CPU set (an empty one means all CPUs)."""

    def __init__(self, lb_container: str, others: Sequence[str]) -> None:
        cpus = os.cpu_count() or 1
        if cpus < 2:
            raise SystemExit("BENCH_MAIL_LB_OWN_CPU=1 needs at least 2 CPUs, this machine has %d" % cpus)
        self.lb_set, self.rest_set = str(cpus - 1), "0" if cpus == 2 else "0-%d" % (cpus - 2)
        self.plan = {lb_container: self.lb_set}
        self.plan.update({name: self.rest_set for name in others if name != lb_container})
        self.saved: Dict[str, str] = {}

    def apply(self) -> None:
        for name, cpuset in self.plan.items():
            proc = docker(["inspect", "-f", "{{.HostConfig.CpusetCpus}}", name], check=False)
            if proc.returncode != 0:
                continue  # not running: nothing to pin (main() starts the clients before apply())
            self.saved[name] = proc.stdout.decode().strip()
            docker(["update", "--cpuset-cpus", cpuset, name])

    def restore(self) -> None:
        every = "0-%d" % ((os.cpu_count() or 1) - 1)
        for name, cpuset in self.saved.items():
            docker(["update", "--cpuset-cpus", cpuset or every, name], check=False)

    def describe(self) -> str:
        return ("HAProxy's container (%s) had CPU %s to itself; every other lab container, the clients included, "
                "shared CPU %s (BENCH_MAIL_LB_OWN_CPU=1: as in production, where HAProxy runs on its own host)."
                % (next(iter(self.plan)), self.lb_set, self.rest_set))


class Bench:
    def __init__(self, lab: Dict[str, Any]) -> None:
        self.lab = lab
        receiver = lab["receiver"]
        self.receiver = Receiver(lab["hosts"].get(receiver["host"], {}).get("container", receiver["host"]),
                                 receiver["store_dir"])
        self.recipient = "bench@%s" % receiver["domain"]
        self.dkim = DkimChecker(lab["dns"]["address"], int(lab["dns"].get("port", 53)))
        self.lb_container = lab["hosts"].get(LB_HOST, {}).get("container", LB_HOST)
        self.lb_address = lab["submission"]["transactional"]["address"]
        self.backends = lb_backends(self.lb_container, BACKEND)
        states = lb_server_states(self.lb_container, BACKEND)
        not_up = {name: states.get(name, "absent") for name, _address in self.backends
                  if not states.get(name, "").startswith("UP")}
        if not_up:
            raise RuntimeError("HAProxy's %s on %s does not have every MTA up: %s (is the lab converged?)"
                               % (BACKEND, self.lb_container, not_up))
        self.secret = json.dumps({"user": SENDER, "password": sasl_password()}).encode() + b"\n"
        self.run_id = uuid.uuid4().hex[:8]
        self.load_start = os.getloadavg()[0]
        self.window = [0.0, 0.0]
        self.commands: List[str] = []
        self.facts: List[str] = []
        self.delivered = 0
        self.dkim_pass = 0
        first = self.backends[0][1]
        # Whose CPU time each run is charged with: HAProxy, every MTA of the backend, the two clients.
        self.cpu_containers = {"haproxy": self.lb_container, "client (lb)": CLIENT_LB, "client (direct)": CLIENT_DIRECT}
        for name, _address in self.backends:
            self.cpu_containers[name] = lab["hosts"].get(name, {}).get("container", name)
        self.paths = {
            "lb": Path("lb", "through the load balancer (HAProxy, 2 MTAs)", CLIENT_LB,
                       ["%s:%d" % (self.lb_address, LB_PORT)], False),
            "direct": Path("direct", "straight to one MTA (%s)" % self.backends[0][0], CLIENT_DIRECT,
                           [first], True),
            "direct2": Path("direct2", "straight to the 2 MTAs, sessions split (no HAProxy)", CLIENT_DIRECT,
                            [b[1] for b in self.backends], True),
        }

    # -- containers

    def start_clients(self) -> None:
        mount = "%s:/bench:ro" % HERE
        network = self.lab["network"]["name"]
        dns_address = self.lab["dns"]["address"]
        lb_argv = ["run", "-d", "--rm", "--name", CLIENT_LB, "--label", LABEL, "--network", network,
                   "--ip", CLIENT_LB_ADDRESS, "--dns", dns_address, "-v", mount,
                   "--entrypoint", "sleep", IMAGE, "infinity"]
        direct_argv = ["run", "-d", "--rm", "--name", CLIENT_DIRECT, "--label", LABEL,
                       "--network", "container:%s" % self.lb_container, "-v", mount,
                       "--entrypoint", "sleep", IMAGE, "infinity"]
        for name, argv in ((CLIENT_LB, lb_argv), (CLIENT_DIRECT, direct_argv)):
            self.remove_client(name)
            docker(argv)
            self.commands.append("docker " + quote(argv))

    @staticmethod
    def remove_client(name: str) -> None:
        """Remove a client container of this benchmark (only one carrying its label)."""
        proc = docker(["inspect", "-f", '{{index .Config.Labels "kibamail.bench"}}', name], check=False)
        if proc.returncode == 0 and proc.stdout.decode().strip() == "mail":
            docker(["rm", "-f", name], check=False)

    def prove_direct_needs_lb_address(self) -> None:
        """From the client's own address the MTA's PROXY listener must not answer (nftables drops)."""
        host, _sep, port = self.backends[0][1].rpartition(":")
        probe = ("import socket,sys\ntry:\n socket.create_connection((%r,%s),3).close(); print('open')\n"
                 "except OSError as e: print(type(e).__name__)\n") % (host, port)
        result = docker(["exec", CLIENT_LB, "python3", "-c", probe]).stdout.decode().strip()
        if result == "open":
            raise RuntimeError("%s accepts connections from %s: the MTA firewall is not in place"
                               % (self.backends[0][1], CLIENT_LB_ADDRESS))
        self.facts.append("From the client container (%s) a TCP connect to %s gets no answer (%s): nftables on the "
                          "MTA admits only the load balancer's address to the PROXY listeners, so the direct "
                          "client runs in the load balancer's network namespace." % (
                              CLIENT_LB_ADDRESS, self.backends[0][1], result))

    # -- one run

    def cpu_snapshot(self) -> Dict[str, float]:
        return {name: container_cpu_seconds(container) for name, container in self.cpu_containers.items()}

    def one(self, path: Path, tag: str, messages: int) -> RunResult:
        argv = path.argv(tag, messages, self.recipient)
        cpu_before, machine_before = self.cpu_snapshot(), machine_cpu_times()
        proc = docker(["exec", "-i", path.container] + argv, stdin=self.secret, timeout=900, check=False)
        cpu_after, machine_after = self.cpu_snapshot(), machine_cpu_times()
        out = proc.stdout.decode("utf-8", "replace").strip()
        try:
            report = json.loads(out.splitlines()[-1]) if out else {}
        except ValueError:
            report = {}
        if proc.returncode != 0 or not report or report.get("errors"):
            raise RuntimeError("client of %s failed (%d): %s %s %s" % (
                path.key, proc.returncode, report.get("errors") or out[-2000:],
                "".join(report.get("traces") or [])[-3000:], proc.stderr.decode("utf-8", "replace")[-2000:]))
        start, end = float(report["start"]), float(report["end"])
        rows = self.wait_delivered(tag, messages, since=start - 5)
        arrived = [epoch(r["received_at"]) for r in rows]
        e2e = max(arrived) - start
        self.verify_dkim(tag, messages, since=start - 5)
        self.receiver.scan(tag + "-", start - 5, mode="delete")
        result = RunResult(messages / (end - start), messages / e2e, list(report["latencies"]),
                           sorted({str(r["peer_ip"]) for r in rows}),
                           {name: cpu_after[name] - cpu_before[name] for name in cpu_after},
                           (machine_after[0] - machine_before[0]) / max(1.0, machine_after[1] - machine_before[1]))
        log("%-8s %s: accepted %.1f msg/s, end-to-end %.1f msg/s (%.2f s / %.2f s), sessions %s, sending IPs %s" % (
            path.key, tag, result.accepted_rate, result.e2e_rate, end - start, e2e,
            [(s["target"], s["sent"]) for s in report["sessions"]], result.sending_ips))
        return result

    def wait_delivered(self, tag: str, messages: int, since: float) -> List[Dict[str, Any]]:
        wanted = {"<%s-%05d@%s>" % (tag, n, SENDER_DOMAIN) for n in range(messages)}
        deadline = time.monotonic() + DELIVERY_DEADLINE
        rows: List[Dict[str, Any]] = []
        while True:
            rows = self.receiver.scan(tag + "-", since)
            if len(rows) >= messages or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if len(rows) >= messages:
            time.sleep(2)                       # a doubled copy would arrive late: look once more
            rows = self.receiver.scan(tag + "-", since)
        counts = Counter(r["mid"] for r in rows)
        missing = sorted(wanted - set(counts))
        doubled = sorted(m for m, c in counts.items() if c > 1)
        strange = sorted(set(counts) - wanted)
        if missing or doubled or strange:
            raise RuntimeError("run %s: %d of %d messages missing after %.0f s (e.g. %s), %d doubled (%s), "
                               "%d unexpected (%s)" % (tag, len(missing), messages, DELIVERY_DEADLINE,
                                                       missing[:5], len(doubled), doubled[:5], len(strange),
                                                       strange[:5]))
        self.delivered += len(counts)
        return rows

    def verify_dkim(self, tag: str, messages: int, since: float) -> None:
        rows = self.receiver.scan(tag + "-", since, mode="raw")
        failures = []
        for row in rows:
            why = self.dkim.check(base64.b64decode(row["raw"]))
            if why:
                failures.append("%s: %s" % (row["mid"], why))
        if len(rows) != messages or failures:
            raise RuntimeError("run %s: %d messages fetched of %d, %d without a valid DKIM signature: %s" % (
                tag, len(rows), messages, len(failures), failures[:5]))
        self.dkim_pass += len(rows)

    # -- the whole benchmark

    def measure(self) -> Dict[str, Series]:
        self.window = [time.time(), 0.0]
        series = {key: Series(self.paths[key]) for key in SERIES}
        order = list(series)
        if WARMUP > 0:
            for key in order:
                log("warm-up %s" % key)
                self.one(series[key].path, "kbbench-%s-w-%s" % (self.run_id, key), WARMUP)
        for run in range(RUNS):
            rotated = order[run % len(order):] + order[:run % len(order)]  # each path goes first in turn
            for key in rotated:
                series[key].runs.append(self.one(series[key].path, "kbbench-%s-%d-%s" % (self.run_id, run, key),
                                                 MESSAGES))
        self.window[1] = time.time()
        return series

    def where_time_goes(self, series: Dict[str, Series]) -> List[str]:
        """One line: the MTA's share of the per-message latency, from the direct MTA's journal."""
        name = self.backends[0][0]
        container = self.lab["hosts"].get(name, {}).get("container", name)
        try:
            rows = milter_timeline(container, self.window[0], self.window[1], "kbbench-%s-" % self.run_id)
        except (RuntimeError, subprocess.SubprocessError) as exc:
            log("no journal timeline from %s: %s" % (container, exc))
            return []
        if not rows:
            return []
        latencies = sorted(x for s in series.values() for r in s.runs for x in r.latencies)
        return ["- Inside %s (its journal, median over %d messages of the measured runs): from cleanup having the "
                "headers to OpenDKIM's \"DKIM-Signature field added\" %.1f ms, from there until the queue manager "
                "takes the message %.1f ms; the client's median latency per message (MAIL FROM to 250 after DATA, "
                "all paths) is %.1f ms." % (
                    name, len(rows), 1000 * statistics.median(r[0] for r in rows),
                    1000 * statistics.median(r[1] for r in rows), 1000 * statistics.median(latencies))]

    def cpu_report(self, series: Dict[str, Series]) -> List[str]:
        """CPU milliseconds per accepted message, per container and path (medians over the runs), and
        what the CPU alone predicts for the lb / direct ratios when the machine's cores are the limit."""
        names = list(self.cpu_containers)
        lines = ["", "CPU per message (ms, median over the runs; the containers' cgroup usage during each run) and "
                 "the machine's busy share while the clients submitted:", "",
                 "| path | " + " | ".join(names) + " | all | machine busy |",
                 "|---" * (len(names) + 3) + "|"]
        per_message: Dict[str, float] = {}
        for key, s in series.items():
            cells = [statistics.median(1000 * r.cpu.get(n, 0.0) / MESSAGES for r in s.runs) for n in names]
            per_message[key] = statistics.median(1000 * sum(r.cpu.values()) / MESSAGES for r in s.runs)
            busy = statistics.median(r.machine_busy for r in s.runs)
            lines.append("| %s | %s | %.2f | %.0f %% |" % (key, " | ".join("%.2f" % c for c in cells),
                                                           per_message[key], 100 * busy))
        lines.append("")
        for peer in ("direct", "direct2"):
            if "lb" in per_message and peer in per_message:
                lines.append("- CPU per message, %s / lb: **%.2f** (what the lb / %s throughput ratio would be if "
                             "the machine's cores alone set the pace)." % (
                                 peer, per_message[peer] / per_message["lb"], peer))
        return lines

    def cleanup_receiver(self) -> None:
        try:
            removed = self.receiver.scan("kbbench-%s-" % self.run_id, 0, mode="delete")
            if removed:
                log("removed %d leftover messages of this run from the receiver" % len(removed))
        except (RuntimeError, ValueError, subprocess.SubprocessError) as exc:
            log("could not clean the receiver's store: %s" % exc)

    # -- the report

    def report(self, series: Dict[str, Series], seconds: float) -> str:
        example = {key: quote(s.path.argv("kbbench-<run>-<n>-%s" % key, MESSAGES, self.recipient))
                   for key, s in series.items()}
        lines = [
            "## Mail: messages per second through the load balancer vs straight to an MTA (lab, DKIM on)",
            "",
            "`python bench/mail/run.py` against the running lab (`scripts/lab.sh up`; the real platform as "
            "`site.yml` configures it). Every message is a customer submission: STARTTLS, AUTH PLAIN as "
            "%s, From %s, %d bytes of body, to %s at the lab receiver (kb-mx); OpenDKIM signs it "
            "(d=%s, s=%s) and the MTA delivers it from its sending IP." % (
                SENDER, SENDER, SIZE, self.recipient, SENDER_DOMAIN, SELECTOR),
            "",
            "Client containers (throwaway, removed at the end; image %s has python3):" % IMAGE,
            "",
        ]
        lines += ["    " + c for c in self.commands]
        lines += ["", "Client command lines (the SASL login comes as JSON on stdin; bench/mail/client.py):", ""]
        lines += ["    docker exec -i %s %s" % (s.path.container, example[k]) for k, s in series.items()]
        lines += [
            "",
            "- **lb**: from %s to HAProxy %s:%d; HAProxy passes TLS through and adds PROXY v2, "
            "leastconn over %s." % (CLIENT_LB_ADDRESS, self.lb_address, LB_PORT,
                                    ", ".join("%s %s" % b for b in self.backends)),
            "- **direct**: the MTAs have no customer listener without PROXY protocol. " + self.facts[0]
            if self.facts else "- **direct**: see bench/mail/run.py.",
            "  The client writes the PROXY v2 header itself (its real source and destination), as HAProxy "
            "does, and talks to the MTA's submission listener; everything behind HAProxy is the same.",
            "- **direct2**: like direct, sessions split over both MTAs: the lb path's backends without HAProxy.",
        ] + ["- CPUs: " + fact for fact in self.facts[1:]] + [
            "",
            "%d messages over %d sessions per run, %d runs per path, alternating (each path first in turn), "
            "after a warm-up run of %d per path. accepted = messages / (first connect to last 250 after DATA); "
            "end-to-end = messages / (first connect until the receiver stored the last one). "
            "Latency = MAIL FROM to 250 after DATA, per message, over all runs." % (
                MESSAGES, SESSIONS, RUNS, WARMUP),
            "",
            "| path | target | accepted msg/s (median) | end-to-end msg/s (median) | latency median / p95 ms | "
            "accepted runs | end-to-end runs | sending IPs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key, s in series.items():
            latencies = sorted(x for r in s.runs for x in r.latencies)
            p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
            ips = sorted({ip for r in s.runs for ip in r.sending_ips})
            lines.append("| %s | %s | %.1f | %.1f | %.1f / %.1f | %s | %s | %s |" % (
                key, ", ".join(s.path.targets), s.median("accepted_rate"), s.median("e2e_rate"),
                1000 * statistics.median(latencies), 1000 * p95,
                ", ".join("%.1f" % r.accepted_rate for r in s.runs),
                ", ".join("%.1f" % r.e2e_rate for r in s.runs), ", ".join(ips)))
        lines.append("")
        if "lb" in series:
            for peer in ("direct", "direct2"):
                if peer not in series:
                    continue
                lb, other = series["lb"], series[peer]
                paired = [a.accepted_rate / b.accepted_rate for a, b in zip(lb.runs, other.runs)]
                paired_e2e = [a.e2e_rate / b.e2e_rate for a, b in zip(lb.runs, other.runs)]
                lines.append(
                    "- Load balancer overhead, lb / %s throughput: accepted **%.2f**, end-to-end **%.2f** "
                    "(ratio of medians; per run pair: %s; %s)." % (
                        peer, lb.median("accepted_rate") / other.median("accepted_rate"),
                        lb.median("e2e_rate") / other.median("e2e_rate"),
                        ", ".join("%.2f" % p for p in paired), ", ".join("%.2f" % p for p in paired_e2e)))
        lines += self.cpu_report(series)
        total = self.delivered
        lines += self.where_time_goes(series)
        lines += [
            "- Delivered: %d of %d messages (warm-up included), each Message-ID exactly once at the receiver; "
            "DKIM pass (dkimpy, key from the lab DNS, d=%s s=%s): %d of %d." % (
                total, total, SENDER_DOMAIN, SELECTOR, self.dkim_pass, total),
            "- Wall time of the benchmark: %.0f s; load average (1 min) at start %.1f, at the end %.1f on %d cores "
            "(the lab and anything else on the machine share them)." % (
                seconds, self.load_start, os.getloadavg()[0], os.cpu_count() or 0),
        ]
        return "\n".join(lines)


def main() -> int:
    started = time.monotonic()
    lab = lab_description()
    needed = [LB_HOST, lab["receiver"]["host"]] + sorted(n for n, h in lab["hosts"].items()
                                                         if h.get("role") == "mta_transactional")
    down = [n for n in needed if not running(lab["hosts"].get(n, {}).get("container", n))]
    if down:
        raise SystemExit("lab containers not running: %s" % ", ".join(down))
    bench = Bench(lab)
    log("run %s: backends %s, receiver %s:%s" % (bench.run_id, bench.backends, bench.receiver.container,
                                                 bench.receiver.store))
    cpusets = None
    try:
        bench.start_clients()
        bench.prove_direct_needs_lb_address()
        if LB_OWN_CPU:
            cpusets = CpuSets(bench.lb_container, sorted({h.get("container", n) for n, h in lab["hosts"].items()}
                                                         | {CLIENT_LB, CLIENT_DIRECT}))
            cpusets.apply()
            bench.facts.append(cpusets.describe())
            log(cpusets.describe())
        series = bench.measure()
        print(bench.report(series, time.monotonic() - started))
    finally:
        if cpusets is not None:
            cpusets.restore()
        bench.cleanup_receiver()
        for name in (CLIENT_LB, CLIENT_DIRECT):
            bench.remove_client(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
