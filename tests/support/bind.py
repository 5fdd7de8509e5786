# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a throw-away authoritative BIND (``/usr/sbin/named``) on loopback for tests.

Usage::

    from tests.support.bind import LoopbackBind   # or put tests/support on sys.path

    with LoopbackBind(workdir, zones={"kbmta.net": None}) as bind:
        bind.port, bind.key_name, bind.key_secret   # where and how to send updates
        bind.query("spf.kbmta.net", "TXT")          # dnspython answer (authoritative)

Every zone is a primary with a writable journal. ``zones`` maps a zone name to
extra zone-file lines (or None for just SOA and NS); ``extra_options`` are added
to the ``options`` block (for example ``"querylog yes;"``). The TSIG key (hmac-sha256)
may update and transfer every zone; unsigned updates are refused. The server
listens on 127.0.0.1 only, on a free high port, recursion off. Nothing leaves
loopback.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

import dns.message
import dns.query
import dns.rcode

NAMED = shutil.which("named") or "/usr/sbin/named"


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


def zone_text(zone: str, extra: Optional[List[str]] = None) -> str:
    """A minimal zone file: SOA, one NS inside the zone with its A record."""
    lines = [
        "$TTL 3600",
        "@ IN SOA ns1.%s. hostmaster.%s. 1 3600 600 86400 300" % (zone, zone),
        "@ IN NS ns1.%s." % zone,
        "ns1 IN A 127.0.0.1",
    ]
    lines.extend(extra or [])
    return "\n".join(lines) + "\n"


class LoopbackBind:
    """A named process serving primary zones on 127.0.0.1:<port>."""

    key_name = "kb-test-key"
    algorithm = "hmac-sha256"

    def __init__(self, workdir: Path, zones: Dict[str, Optional[List[str]]], port: Optional[int] = None,
                 extra_options: Optional[List[str]] = None) -> None:
        self.workdir = Path(workdir)
        self.zones = zones
        self.extra_options = list(extra_options or [])
        self.port = port or free_port()
        self.key_secret = base64.b64encode(os.urandom(32)).decode("ascii")
        self.process: Optional[subprocess.Popen] = None

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
            # The plan gives each MTA name one A record per sending IP (forward-confirmed
            # rDNS), more than BIND's default limit of 100 records per set.
            "  max-records-per-type 0;",
        ] + ["  %s" % option for option in self.extra_options] + [
            "};",
            'controls { };',
        ]
        for zone in self.zones:
            parts.append('zone "%s" { type primary; file "%s.zone"; allow-update { key "%s"; }; };'
                         % (zone, zone, self.key_name))
        return "\n".join(parts) + "\n"

    def start(self, timeout: float = 15.0) -> "LoopbackBind":
        self.workdir.mkdir(parents=True, exist_ok=True)
        for zone, extra in self.zones.items():
            (self.workdir / ("%s.zone" % zone)).write_text(zone_text(zone, extra))
        conf = self.workdir / "named.conf"
        conf.write_text(self._config())
        check = subprocess.run(["named-checkconf", str(conf)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError("named-checkconf failed: %s" % (check.stdout + check.stderr))
        log = open(self.workdir / "named.log", "w")
        self.process = subprocess.Popen([NAMED, "-g", "-4", "-n", "1", "-c", str(conf)],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        zone = next(iter(self.zones))
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError("named exited: %s" % self.log())
            try:
                answer = self.query(zone, "SOA", timeout=0.5)
                if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.1)
        raise RuntimeError("named did not answer within %ss: %s" % (timeout, self.log()))

    def log(self) -> str:
        path = self.workdir / "named.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> "LoopbackBind":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # asking it ---------------------------------------------------------

    def query(self, name: str, rtype: str, timeout: float = 3.0) -> dns.message.Message:
        """An authoritative answer from this server, over TCP."""
        message = dns.message.make_query(name.rstrip(".") + ".", rtype)
        return dns.query.tcp(message, "127.0.0.1", port=self.port, timeout=timeout)
