# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throw-away pebble (Debian's /usr/bin/pebble, the ACME test CA) on loopback, and a TLS probe.

Pebble's HTTPS listener gets a certificate from a test CA made here (``ca_bundle``:
what the role is told to trust); the CA pebble issues from is another one, fetched
from its management port (``/roots/0``). Its DNS-01 checks go to the DNS server
given (the loopback BIND the role updates). Every HTTP request pebble serves is
one log line (``GET /dir -> calling handler()``): ``requests()`` counts them.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional

from bind import free_port  # tests/support is on pythonpath (pytest.ini)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "standins"))
from pebble_ca import command, environment, fetch_root, make_https_identity, write_config  # noqa: E402

_REQUEST = re.compile(r"^Pebble \S+ \S+ (GET|POST|HEAD) (\S+) -> calling handler", re.M)


class LoopbackPebble:
    """pebble on 127.0.0.1, its DNS-01 lookups sent to 127.0.0.1:<dns_port>."""

    def __init__(self, dns_port: int, validity_seconds: int = 90 * 86400) -> None:
        self.dns_port = dns_port
        self.validity_seconds = validity_seconds
        self.workdir = Path(tempfile.mkdtemp(prefix="kb-pebble-"))
        self.port = free_port()
        self.management_port = free_port()
        self.process: Optional[subprocess.Popen] = None

    @property
    def directory(self) -> str:
        return "https://127.0.0.1:%d/dir" % self.port

    @property
    def ca_bundle(self) -> str:
        return str(self.workdir / "https-ca.pem")

    def start(self, timeout: float = 20.0) -> "LoopbackPebble":
        make_https_identity(self.workdir)
        write_config(self.workdir, "127.0.0.1:%d" % self.port, "127.0.0.1:%d" % self.management_port,
                     free_port(), free_port(), self.validity_seconds)
        log = open(self.workdir / "pebble.log", "w")
        self.process = subprocess.Popen(command(self.workdir, "127.0.0.1:%d" % self.dns_port),
                                        stdout=log, stderr=subprocess.STDOUT, env=environment(), cwd=str(self.workdir))
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                self.root()
                return self
            except OSError:
                time.sleep(0.2)
        text = self.log()
        self.stop()
        raise RuntimeError("pebble did not start: %s" % text[-3000:])

    def root(self) -> str:
        """The root pebble issues from (PEM), from its management interface."""
        return fetch_root("127.0.0.1:%d" % self.management_port, Path(self.ca_bundle))

    def log(self) -> str:
        path = self.workdir / "pebble.log"
        return path.read_text() if path.exists() else ""

    def requests(self) -> List[str]:
        """Every ACME request pebble served so far, as 'METHOD /path' (management requests are not logged)."""
        return ["%s %s" % m for m in _REQUEST.findall(self.log())]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        subprocess.run(["rm", "-rf", str(self.workdir)], check=False)


def tls_handshake(cert: Path, key: Path, trusted_root: Path, server_name: str) -> dict:
    """Serve cert/key on loopback and connect to it the way a verifying client does.

    The client trusts only ``trusted_root`` and checks ``server_name`` against the
    certificate; a failed check raises ssl.SSLCertVerificationError. Returns the
    peer certificate the client saw.
    """
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(cert), str(key))
    client_ctx = ssl.create_default_context(cafile=str(trusted_root))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: List[BaseException] = []

    def serve() -> None:
        try:
            conn = listener.accept()[0]
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError) as error:  # the client refused us: its error is the one that matters
            errors.append(error)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                peer = tls.getpeercert()
                tls.sendall(b"x")
                return peer
    finally:
        thread.join(timeout=5)
        listener.close()
