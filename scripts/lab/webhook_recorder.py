# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's bounce webhook: records every POST it receives.

Runs on the lab's receiving host (kb-mx) as the systemd unit
lab-webhook-recorder. Each POST is appended as one JSON line to --store:
{received_at, path, idempotency_key, timestamp, signature, signature_valid,
event}. signature_valid checks X-Kb-Signature (sha256= HMAC-SHA256 of
"<X-Kb-Timestamp>.<body>") with the secret in --secret-file; null when no
secret is configured. GET of the same path returns the records as a JSON
list. Standard library only (runs on the container's python3).
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional


class Recorder:
    def __init__(self, store: str, secret: Optional[str]) -> None:
        self.store = store
        self.secret = secret
        self.lock = threading.Lock()

    def signature_valid(self, timestamp: str, body: bytes, signature: str) -> Optional[bool]:
        if not self.secret:
            return None
        expected = "sha256=" + hmac.new(self.secret.encode("utf-8"), timestamp.encode("ascii", "replace") + b"." + body,
                                        hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    def record(self, path: str, headers: Dict[str, str], body: bytes) -> Dict[str, Any]:
        try:
            event: Any = json.loads(body.decode("utf-8"))
        except ValueError:
            event = {"unparsed": body.decode("utf-8", "replace")}
        entry = {
            "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "path": path,
            "idempotency_key": headers.get("Idempotency-Key"),
            "timestamp": headers.get("X-Kb-Timestamp"),
            "signature": headers.get("X-Kb-Signature"),
            "signature_valid": self.signature_valid(headers.get("X-Kb-Timestamp", ""), body,
                                                    headers.get("X-Kb-Signature", "")),
            "event": event,
        }
        with self.lock, open(self.store, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
        return entry

    def records(self) -> List[Dict[str, Any]]:
        if not os.path.exists(self.store):
            return []
        with self.lock, open(self.store, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]


def make_handler(recorder: Recorder, path: str) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "kb-lab-webhook/1"

        def _answer(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != path:
                self._answer(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            entry = recorder.record(self.path, dict(self.headers.items()), self.rfile.read(length))
            self._answer(200, {"recorded": True, "signature_valid": entry["signature_valid"]})

        def do_GET(self) -> None:  # noqa: N802
            if self.path != path:
                self._answer(404, {"error": "not found"})
                return
            self._answer(200, recorder.records())

        def log_message(self, fmt: str, *args: Any) -> None:
            print("%s %s" % (self.address_string(), fmt % args), flush=True)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="0.0.0.0:8025", help="ADDRESS:PORT")
    parser.add_argument("--path", default="/bounces")
    parser.add_argument("--store", default="/var/lib/lab-webhook/bounces.jsonl")
    parser.add_argument("--secret-file", help="file holding the shared HMAC secret")
    args = parser.parse_args()
    secret = None
    if args.secret_file and os.path.exists(args.secret_file):
        with open(args.secret_file, encoding="utf-8") as handle:
            secret = handle.read().strip() or None
    os.makedirs(os.path.dirname(args.store), exist_ok=True)
    address, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((address, int(port)), make_handler(Recorder(args.store, secret), args.path))
    server.serve_forever()


if __name__ == "__main__":
    main()
