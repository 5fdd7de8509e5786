# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the processor importable as ``kb_bounce`` (it ships as a role file, not a plugin)."""
from __future__ import annotations

import json
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FILES = os.path.join(ROOT, "roles", "bounce_inbound", "files")
CORPUS = os.path.join(ROOT, "tests", "bounce_corpus")
if FILES not in sys.path:
    sys.path.insert(0, FILES)


@pytest.fixture
def corpus_dir() -> str:
    return CORPUS


@pytest.fixture
def files_dir() -> str:
    return FILES


@pytest.fixture
def config_file(tmp_path):
    """A config file with the database and quarantine under tmp_path; returns a writer."""
    def write(**overrides):
        quarantine = tmp_path / "quarantine"
        quarantine.mkdir(exist_ok=True)
        data = {
            "database": str(tmp_path / "events.sqlite3"),
            "quarantine_dir": str(quarantine),
            "webhook_url": "http://127.0.0.1:9/unused",
            "webhook_secret": "s3cret",
            "retry_initial_seconds": 1,
            "retry_max_seconds": 8,
            "platform_bounce_domain": "kb-bounces.kbmta.net",
        }
        data.update(overrides)
        path = tmp_path / "config.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        return str(path)
    return write


class Hook:
    """A webhook on loopback that answers 200 and records every POST (headers, body)."""

    def __init__(self) -> None:
        import http.server  # pylint: disable=import-outside-toplevel
        import threading  # pylint: disable=import-outside-toplevel

        self.received = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def ids(self):
        """The Idempotency-Key of every POST, in order."""
        return [received[0]["Idempotency-Key"] for received in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    """A recording webhook on 127.0.0.1."""
    receiver = Hook()
    yield receiver
    receiver.close()
