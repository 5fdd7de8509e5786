# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run Debian's pebble (/usr/bin/pebble, an RFC 8555 ACME test CA) for the lab and the tests.

Pebble is a real ACME server, not a stand-in: this only prepares what it needs.
Its HTTPS listener gets a certificate from a small CA made here (``https-ca.pem``,
what ACME clients are told to trust for the directory URL); the CA pebble issues
from is its own and new at every start (``root.pem``, fetched from its management
port, what SMTP clients must trust). Its DNS-01 checks ask the DNS server given.

    python tests/standins/pebble_ca.py --dir .lab/pebble --listen 127.0.0.1:14000 \\
        --management 127.0.0.1:15000 --dns 198.51.100.53:53

runs pebble in the foreground (its log on stdout: one line per ACME request)
after writing ``https-ca.pem``, ``server.pem``, ``server.key`` and ``pebble.json``
into DIR; once it answers, ``root.pem`` is written there too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

PEBBLE = "/usr/bin/pebble"
# Pebble's test settings: no random sleep before validation, no nonce rejections,
# no reuse of valid authorizations (every order validates its challenge).
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_https_identity(workdir: Path, host: str = "127.0.0.1") -> None:
    """https-ca.pem (a throw-away CA) and server.pem/server.key for ``host`` and localhost, signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=kb pebble https CA",
             "-keyout", str(workdir / "https-ca.key"), "-out", str(workdir / "https-ca.pem"))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", str(workdir / "server.key"), "-out", str(workdir / "server.csr"))
    (workdir / "server.ext").write_text("subjectAltName=IP:%s,DNS:localhost\n" % host)
    _openssl("x509", "-req", "-days", "30", "-in", str(workdir / "server.csr"), "-CA", str(workdir / "https-ca.pem"),
             "-CAkey", str(workdir / "https-ca.key"), "-CAcreateserial", "-extfile", str(workdir / "server.ext"),
             "-out", str(workdir / "server.pem"))
    os.chmod(workdir / "https-ca.key", 0o600)
    os.chmod(workdir / "server.key", 0o600)


def write_config(workdir: Path, listen: str, management: str, http_port: int, tls_port: int,
                 validity_seconds: Optional[int] = None) -> Path:
    """pebble.json for these listeners (httpPort/tlsPort: where its HTTP-01/TLS-ALPN-01 checks would connect)."""
    conf: Dict[str, object] = {
        "listenAddress": listen,
        "managementListenAddress": management,
        "certificate": str(workdir / "server.pem"),
        "privateKey": str(workdir / "server.key"),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }
    if validity_seconds:
        conf["certificateValidityPeriod"] = validity_seconds
    path = workdir / "pebble.json"
    path.write_text(json.dumps({"pebble": conf}, indent=1))
    return path


def command(workdir: Path, dns: str) -> List[str]:
    return [PEBBLE, "-config", str(workdir / "pebble.json"), "-dnsserver", dns]


def environment() -> Dict[str, str]:
    return dict(os.environ, **PEBBLE_ENV)


def fetch_root(management: str, https_ca: Path, timeout: float = 5.0) -> str:
    """The root pebble issues from (PEM), from its management interface."""
    context = ssl.create_default_context(cafile=str(https_ca))
    with urllib.request.urlopen("https://%s/roots/0" % management, context=context, timeout=timeout) as response:
        return response.read().decode("ascii")


def wait_root(management: str, https_ca: Path, process: subprocess.Popen, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return fetch_root(management, https_ca)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("pebble did not answer on %s" % management)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="where the HTTPS identity, the config and root.pem go")
    parser.add_argument("--listen", default="127.0.0.1:14000", help="ADDRESS:PORT of the ACME directory")
    parser.add_argument("--management", default="127.0.0.1:15000", help="ADDRESS:PORT of the management interface")
    parser.add_argument("--dns", required=True, help="ADDRESS:PORT of the DNS server the DNS-01 checks ask")
    parser.add_argument("--validity-seconds", type=int, default=0, help="lifetime of issued certificates")
    args = parser.parse_args(argv)
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    make_https_identity(workdir, args.listen.rsplit(":", 1)[0])
    # HTTP-01 and TLS-ALPN-01 are never used (DNS-01 only): ports nothing listens on.
    write_config(workdir, args.listen, args.management, 5002, 5001, args.validity_seconds or None)
    process = subprocess.Popen(command(workdir, args.dns), env=environment(), cwd=str(workdir))

    def write_root() -> None:
        try:
            (workdir / "root.pem").write_text(wait_root(args.management, workdir / "https-ca.pem", process))
        except RuntimeError as exc:
            sys.stderr.write("pebble_ca: %s\n" % exc)

    threading.Thread(target=write_root, daemon=True).start()
    # Stopped (scripts/lab.sh down): pebble goes with it.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: process.terminate())
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()


if __name__ == "__main__":
    sys.exit(main())
