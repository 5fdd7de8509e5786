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

import json
import os
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import List, Optional

from bind import free_port  # tests/support is on pythonpath (pytest.ini)

PEBBLE = "/usr/bin/pebble"
_REQUEST = re.compile(r"^Pebble \S+ \S+ (GET|POST|HEAD) (\S+) -> calling handler", re.M)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_https_identity(workdir: Path) -> None:
    """ca.pem (test CA) and server.pem/server.key for 127.0.0.1 and localhost, signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=kb-test pebble https CA",
             "-keyout", str(workdir / "ca.key"), "-out", str(workdir / "ca.pem"))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", str(workdir / "server.key"), "-out", str(workdir / "server.csr"))
    (workdir / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-days", "2", "-in", str(workdir / "server.csr"), "-CA", str(workdir / "ca.pem"),
             "-CAkey", str(workdir / "ca.key"), "-CAcreateserial", "-extfile", str(workdir / "server.ext"),
             "-out", str(workdir / "server.pem"))


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
        return str(self.workdir / "ca.pem")

    def start(self, timeout: float = 20.0) -> "LoopbackPebble":
        make_https_identity(self.workdir)
        config = {"pebble": {
            "listenAddress": "127.0.0.1:%d" % self.port,
            "managementListenAddress": "127.0.0.1:%d" % self.management_port,
            "certificate": str(self.workdir / "server.pem"),
            "privateKey": str(self.workdir / "server.key"),
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": self.validity_seconds,
        }}
        (self.workdir / "pebble.json").write_text(json.dumps(config))
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
        log = open(self.workdir / "pebble.log", "w")
        self.process = subprocess.Popen(
            [PEBBLE, "-config", str(self.workdir / "pebble.json"), "-dnsserver", "127.0.0.1:%d" % self.dns_port],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(self.workdir))
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

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_bundle)

    def root(self) -> str:
        """The root pebble issues from (PEM), from its management interface."""
        url = "https://127.0.0.1:%d/roots/0" % self.management_port
        with urllib.request.urlopen(url, context=self._context(), timeout=5) as response:
            return response.read().decode("ascii")

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
