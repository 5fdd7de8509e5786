# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test webhook for the bounce_inbound scenario.

POST /hook: while the file FAIL_FLAG exists, answer 503 (an outage) and log
the attempt; otherwise check the HMAC signature, append the event to
RECEIVED (one JSON object per line) and answer 200.
"""
import hashlib
import hmac
import http.server
import json
import os

SECRET = os.environ["WEBHOOK_SECRET"].encode("utf-8")
STATE = "/var/lib/webhook"
FAIL_FLAG = os.path.join(STATE, "fail")
RECEIVED = os.path.join(STATE, "received.jsonl")
REFUSED = os.path.join(STATE, "refused.jsonl")


def append(path, record):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        key = self.headers.get("Idempotency-Key", "")
        if self.path != "/hook":
            self.send_response(404)
        elif os.path.exists(FAIL_FLAG):
            append(REFUSED, {"id": key})
            self.send_response(503)
        else:
            timestamp = self.headers.get("X-Kb-Timestamp", "")
            expected = "sha256=" + hmac.new(SECRET, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
            valid = hmac.compare_digest(expected, self.headers.get("X-Kb-Signature", ""))
            append(RECEIVED, {"id": key, "valid_signature": valid, "event": json.loads(body)})
            self.send_response(200 if valid else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    os.makedirs(STATE, exist_ok=True)
    http.server.HTTPServer(("0.0.0.0", 8080), Hook).serve_forever()
