# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A real BIND on 127.0.0.1 (high port) serving whatever records a test gives it.

``platform_records(plan, dkim)`` turns a plan into what a healthy platform
publishes (its record sets, a PTR per sending IP, each customer's DKIM key);
tests then break one record and serve the result with ``LoopbackBind``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Dict, Iterable, List, Tuple

import dns.exception
import dns.message
import dns.query

NAMED = shutil.which("named") or "/usr/sbin/named"
Records = Dict[Tuple[str, str], List[str]]


def platform_records(plan: dict, dkim_b64: Dict[str, str]) -> Records:
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


def _zone_file(zone: str, records: Records) -> str:
    lines = ["$TTL 300", "@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300" % (zone, zone), "@ IN NS ns.%s." % zone,
             "ns.%s. IN A 127.0.0.1" % zone]
    for (name, rdtype), values in sorted(records.items()):
        for value in values:
            lines.append("%s. IN %s %s" % (name, rdtype, _quote(value) if rdtype == "TXT" else value))
    return "\n".join(lines) + "\n"


def _owner_zone(name: str, zones: List[str]) -> str:
    best = ""
    for zone in zones:
        if (name == zone or name.endswith("." + zone)) and len(zone) > len(best):
            best = zone
    return best


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp.bind(("127.0.0.1", port))
        return port


class LoopbackBind:
    """Start named for the given records; stop it (and remove its files) on exit."""

    def __init__(self, records: Records, zones: List[str]) -> None:
        self.records, self.zones = records, zones
        self.port = 0
        self._dir = ""
        self._proc = None

    def __enter__(self) -> "LoopbackBind":
        self._dir = tempfile.mkdtemp(prefix="kb-verify-bind-")
        per_zone: Dict[str, Records] = {z: {} for z in self.zones}
        for key, values in self.records.items():
            zone = _owner_zone(key[0], self.zones)
            if not zone:
                raise ValueError("no zone served for %s: add its zone" % key[0])
            per_zone[zone][key] = values
        # max-records-per-type 0: BIND 9.18.28+ refuses more than 100 records of one type at a name by
        # default, and an MTA name that carries all its sending IPs has more; the checks warn about it.
        conf = ['options { directory "%s"; pid-file "%s/named.pid"; listen-on { 127.0.0.1; }; listen-on-v6 { none; };'
                ' recursion no; dnssec-validation no; notify no;'
                ' max-records-per-type 0; };' % (self._dir, self._dir)]
        for zone in self.zones:
            path = os.path.join(self._dir, zone + ".zone")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(_zone_file(zone, per_zone[zone]))
            conf.append('zone "%s" { type primary; file "%s"; };' % (zone, path))
        with open(os.path.join(self._dir, "named.conf"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(conf) + "\n")
        for _attempt in range(5):
            self.port = free_port()
            log = open(os.path.join(self._dir, "named.log"), "w", encoding="utf-8")
            self._proc = subprocess.Popen([NAMED, "-g", "-4", "-n", "2", "-p", str(self.port), "-c",
                                           os.path.join(self._dir, "named.conf")], stdout=log, stderr=subprocess.STDOUT)
            log.close()
            if self._wait_ready():
                return self
            self._stop()
        raise RuntimeError("named did not start; log:\n" + open(os.path.join(self._dir, "named.log"), encoding="utf-8").read()[-3000:])

    def _wait_ready(self) -> bool:
        query = dns.message.make_query(self.zones[0] + ".", "SOA")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                response = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
                if response.answer:
                    return True
            except (dns.exception.DNSException, OSError):
                pass
            time.sleep(0.1)
        return False

    def _stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __exit__(self, *exc) -> None:
        self._stop()
        shutil.rmtree(self._dir, ignore_errors=True)
