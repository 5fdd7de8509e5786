# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a throw-away authoritative BIND (``/usr/sbin/named``) on loopback for tests.

``tests/support`` is on ``sys.path`` under pytest (``pythonpath`` in pytest.ini);
scripts outside pytest (bench/) put it there themselves. Two ways to use it::

    from bind import LoopbackBind

    # empty zones to update: the DNS tests and bench/dns
    with LoopbackBind(workdir, zones={"kbmta.net": None}) as bind:
        bind.port, bind.key_name, bind.key_secret   # where and how to send updates
        bind.query("spf.kbmta.net", "TXT")          # dnspython answer (authoritative)

    # given records to read: the verification tests and bench/verify
    records = platform_records(plan, dkim_b64)      # what a healthy platform publishes
    with LoopbackBind.for_records(records, zones_for(records, plan["zones"])) as bind:
        ...

Every zone is a primary with a writable journal. ``zones`` maps a zone name to
extra zone-file lines (or None for just SOA and NS); ``extra_options`` are added
to the ``options`` block (for example ``"querylog yes;"``). The TSIG key (hmac-sha256)
may update and transfer every zone; unsigned updates are refused. The server
listens on 127.0.0.1 only, on a free high port, recursion off. Nothing leaves
loopback. Without a ``workdir`` the files go to a temporary folder that ``stop()``
removes.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import dns.message
import dns.query
import dns.rcode

NAMED = shutil.which("named") or "/usr/sbin/named"
Records = Dict[Tuple[str, str], List[str]]   # (owner name, type) -> values
Zones = Dict[str, Optional[List[str]]]        # zone -> extra zone-file lines


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (also checked for UDP)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def zone_text(zone: str, extra: Optional[List[str]] = None, ttl: int = 3600) -> str:
    """A minimal zone file: SOA, one NS inside the zone with its A record."""
    lines = [
        "$TTL %d" % ttl,
        "@ IN SOA ns1.%s. hostmaster.%s. 1 3600 600 86400 300" % (zone, zone),
        "@ IN NS ns1.%s." % zone,
        "ns1 IN A 127.0.0.1",
    ]
    lines.extend(extra or [])
    return "\n".join(lines) + "\n"


# records: what a test gives the server to publish ------------------------

def platform_records(plan: dict, dkim_b64: Dict[str, str]) -> Records:
    """What a healthy platform publishes for a plan: its record sets, a PTR per sending IP, each customer's DKIM key."""
    records: Records = {}
    for rrsets in plan["zones"].values():
        for rr in rrsets:
            records[(rr["name"], rr["type"])] = list(rr["values"])
    for ip, ptr in plan["ptr_map"].items():
        records[(ipaddress.ip_address(ip).reverse_pointer, "PTR")] = [ptr + "."]
    for domain, conf in plan["customers"].items():
        if domain in dkim_b64:
            records[(conf["dkim_name"], "TXT")] = ["v=DKIM1; k=rsa; p=" + dkim_b64[domain]]
    return records


def zones_for(records: Records, extra_zones: Iterable[str] = ()) -> List[str]:
    """The zones to serve: every customer/platform zone the test names, plus a /24 reverse zone per PTR."""
    zones = set(extra_zones)
    for name, rdtype in records:
        if rdtype == "PTR" and name.endswith(".in-addr.arpa"):
            zones.add(name.split(".", 1)[1])
    return sorted(zones)


def _quote(value: str) -> str:
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"%s"' % c.replace("\\", "\\\\").replace('"', '\\"') for c in chunks)


def _owner_zone(name: str, zones: Iterable[str]) -> str:
    best = ""
    for zone in zones:
        if (name == zone or name.endswith("." + zone)) and len(zone) > len(best):
            best = zone
    return best


def records_by_zone(records: Records, zones: Iterable[str]) -> Zones:
    """Zone-file lines of each record, in the longest of ``zones`` that holds its name."""
    per_zone: Zones = {zone: [] for zone in zones}
    for (name, rdtype), values in sorted(records.items()):
        zone = _owner_zone(name, per_zone)
        if not zone:
            raise ValueError("no zone served for %s: add its zone" % name)
        per_zone[zone].extend("%s. IN %s %s" % (name, rdtype, _quote(value) if rdtype == "TXT" else value)
                              for value in values)
    return per_zone


# the server -----------------------------------------------------------------

def end_named(process: Optional[subprocess.Popen]) -> None:
    """Stop a named process: TERM, then KILL after 10 s (None is fine)."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class LoopbackBind:
    """A named process serving primary zones on 127.0.0.1:<port>."""

    key_name = "kb-test-key"
    algorithm = "hmac-sha256"

    def __init__(self, workdir: Optional[Path], zones: Zones, port: Optional[int] = None,
                 extra_options: Optional[List[str]] = None, ttl: int = 3600, threads: int = 1) -> None:
        self._temporary = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self.zones = zones
        self.extra_options = list(extra_options or [])
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.ttl = ttl
        self.threads = threads
        self.key_secret = base64.b64encode(os.urandom(32)).decode("ascii")
        self.process: Optional[subprocess.Popen] = None

    @classmethod
    def for_records(cls, records: Records, zones: Iterable[str], workdir: Optional[Path] = None) -> "LoopbackBind":
        """A server publishing ``records`` ((name, type) -> values); every name must fall in one of ``zones``."""
        return cls(workdir, records_by_zone(records, zones), ttl=300, threads=2)

    # the configuration ------------------------------------------------

    def _config(self) -> str:
        parts = [
            'key "%s" { algorithm %s; secret "%s"; };' % (self.key_name, self.algorithm, self.key_secret),
            "options {",
            '  directory "%s";' % self.workdir,
            '  pid-file "%s/named.pid";' % self.workdir,
            '  session-keyfile "%s/session.key";' % self.workdir,
            "  listen-on port %d { 127.0.0.1; };" % self.port,
            "  listen-on-v6 { none; };",
            "  recursion no;",
            "  allow-query { any; };",
            '  allow-transfer { key "%s"; };' % self.key_name,
            "  dnssec-validation no;",
            "  notify no;",
            # Every limit is BIND's default (max-records-per-type 100 included): the plan
            # must publish only what a stock server and a stock resolver accept.
        ] + ["  %s" % option for option in self.extra_options] + [
            "};",
            'controls { };',
        ]
        for zone in self.zones:
            parts.append('zone "%s" { type primary; file "%s.zone"; allow-update { key "%s"; }; };'
                         % (zone, zone, self.key_name))
        return "\n".join(parts) + "\n"

    def start(self, timeout: float = 20.0) -> "LoopbackBind":
        """Start named and wait until it answers; on a port of its own choosing, retry on another port."""
        if self._temporary:
            self.workdir = Path(tempfile.mkdtemp(prefix="kb-bind-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        for zone, extra in self.zones.items():
            (self.workdir / ("%s.zone" % zone)).write_text(zone_text(zone, extra, self.ttl))
        conf = self.workdir / "named.conf"
        for attempt in range(1 if self._fixed_port else 5):
            if attempt:
                self.port = free_port()
            conf.write_text(self._config())
            check = subprocess.run(["named-checkconf", str(conf)], capture_output=True, text=True, check=False)
            if check.returncode != 0:
                self.stop()
                raise RuntimeError("named-checkconf failed: %s" % (check.stdout + check.stderr))
            log = open(self.workdir / "named.log", "w")
            self.process = subprocess.Popen([NAMED, "-g", "-4", "-n", str(self.threads), "-c", str(conf)],
                                            stdout=log, stderr=subprocess.STDOUT)
            log.close()
            failure = self._wait_ready(timeout)
            if failure is None:
                return self
            self._end_process()
        log = self.log()
        self.stop()
        raise RuntimeError("%s (port %d): %s" % (failure, self.port, log[-3000:]))

    def _wait_ready(self, timeout: float) -> Optional[str]:
        """None once the first zone answers, else why not."""
        deadline = time.monotonic() + timeout
        zone = next(iter(self.zones))
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return "named exited"
            try:
                answer = self.query(zone, "SOA", timeout=0.5)
                if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                    return None
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.1)
        return "named did not answer within %ss" % timeout

    def log(self) -> str:
        path = self.workdir / "named.log" if self.workdir is not None else None
        return path.read_text() if path is not None and path.exists() else ""

    def _end_process(self) -> None:
        end_named(self.process)
        self.process = None

    def stop(self) -> None:
        """Stop named (again is fine); a temporary folder is removed with it."""
        self._end_process()
        if self._temporary and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "LoopbackBind":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # asking it ---------------------------------------------------------

    def query(self, name: str, rtype: str, timeout: float = 3.0) -> dns.message.Message:
        """An authoritative answer from this server, over TCP."""
        message = dns.message.make_query(name.rstrip(".") + ".", rtype)
        return dns.query.tcp(message, "127.0.0.1", port=self.port, timeout=timeout)


class LoopbackResolver:
    """A stock recursive BIND on 127.0.0.1:<port> that forwards the given zones to a server.

    Nothing is set but what a loopback test needs (where to listen, who may recurse, the
    zones to forward, no DNSSEC validation of unsigned test zones): every limit is BIND's
    default, as on a receiver's resolver (max-records-per-type 100 included).
    """

    def __init__(self, zones: Iterable[str], server_port: int) -> None:
        self.zones = list(zones)
        self.server_port = server_port
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="kb-resolver-"))
        self.process: Optional[subprocess.Popen] = None

    def _config(self) -> str:
        parts = [
            "options {",
            '  directory "%s";' % self.workdir,
            '  pid-file "%s/named.pid";' % self.workdir,
            "  listen-on port %d { 127.0.0.1; };" % self.port,
            "  listen-on-v6 { none; };",
            "  recursion yes;",
            "  allow-recursion { 127.0.0.1; };",
            "  dnssec-validation no;",
            "};",
            "controls { };",
        ]
        for zone in self.zones:
            parts.append('zone "%s" { type forward; forward only; forwarders { 127.0.0.1 port %d; }; };'
                         % (zone, self.server_port))
        return "\n".join(parts) + "\n"

    def start(self, timeout: float = 20.0) -> "LoopbackResolver":
        conf = self.workdir / "named.conf"
        conf.write_text(self._config())
        log = open(self.workdir / "named.log", "w")
        self.process = subprocess.Popen([NAMED, "-g", "-4", "-n", "1", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.query(self.zones[0], "SOA", timeout=0.5).rcode() == dns.rcode.NOERROR:
                    return self
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.1)
        text = self.log()
        self.stop()
        raise RuntimeError("the resolver did not answer within %ss: %s" % (timeout, text[-3000:]))

    def query(self, name: str, rtype: str, timeout: float = 5.0) -> dns.message.Message:
        """A recursive query (RD set) over UDP, as a stub resolver sends it."""
        message = dns.message.make_query(name.rstrip(".") + ".", rtype)
        return dns.query.udp(message, "127.0.0.1", port=self.port, timeout=timeout)

    def log(self) -> str:
        path = self.workdir / "named.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        end_named(self.process)
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "LoopbackResolver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
