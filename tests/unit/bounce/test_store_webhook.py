# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Durable storage and webhook delivery: at least once, never twice after a 2xx, backoff."""
from __future__ import annotations

import http.server
import json
import os
import threading

import pytest

from kb_bounce import store as storemod, webhook

EVENT = {"type": "bounce", "class": "hard", "recipient": "alice@recipient.example", "reason": "bad-mailbox"}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeSender:
    """Answers with a scripted status per call and records every request."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.calls = []

    def __call__(self, url, body, headers, timeout):
        self.calls.append((url, body, headers))
        status = self.statuses.pop(0)
        return (status, "" if status else "connection refused")


def _store(tmp_path):
    return storemod.Store(str(tmp_path / "events.sqlite3"))


def test_same_message_twice_is_one_event(tmp_path):
    db = _store(tmp_path)
    assert db.add_message("a" * 64, "env", "report", "1", [EVENT], now=10) == 1
    assert db.add_message("a" * 64, "env", "report", "1", [EVENT], now=20) == 0
    assert db.counts() == {"events": 1, "pending": 1, "quarantined": 0}


def test_event_id_is_stable_and_distinct():
    one = storemod.event_id("a" * 64, "Alice@X.example", 0)
    assert one == storemod.event_id("a" * 64, "alice@x.example", 0)
    assert one != storemod.event_id("b" * 64, "alice@x.example", 0)
    assert one != storemod.event_id("a" * 64, "alice@x.example", 1)


def test_sign_and_verify():
    signature = webhook.sign("k", 1700000000, b'{"a":1}')
    assert signature.startswith("sha256=") and len(signature) == 71
    assert webhook.verify("k", "1700000000", b'{"a":1}', signature)
    assert not webhook.verify("k", "1700000000", b'{"a":2}', signature)
    assert not webhook.verify("other", "1700000000", b'{"a":1}', signature)
    assert not webhook.verify("k", "1700000001", b'{"a":1}', signature)


def test_backoff_doubles_and_caps():
    assert [webhook.backoff(n, 30, 600) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]
    assert webhook.backoff(10_000, 30, 600) == 600


def test_failure_schedules_retry_then_success_marks_delivered(tmp_path):
    db, clock = _store(tmp_path), Clock()
    db.add_message("a" * 64, None, "report", "", [EVENT], now=clock.now)
    sender = FakeSender([503, None, 200])
    out = webhook.deliver_due(db, "http://hook", "k", 1, 10, 100, sender=sender, clock=clock)
    assert (out.delivered, out.failed) == (0, 1)
    event = db.recent()[0]
    assert event.attempts == 1 and event.delivered_at is None and event.next_attempt_at == clock.now + 10
    assert "503" in event.last_error
    # not due yet: nothing is sent
    assert webhook.deliver_due(db, "http://hook", "k", 1, 10, 100, sender=sender, clock=clock).failed == 0
    assert len(sender.calls) == 1
    clock.now += 10
    webhook.deliver_due(db, "http://hook", "k", 1, 10, 100, sender=sender, clock=clock)
    assert db.recent()[0].next_attempt_at == clock.now + 20
    clock.now += 20
    out = webhook.deliver_due(db, "http://hook", "k", 1, 10, 100, sender=sender, clock=clock)
    assert out.delivered == 1
    assert db.recent()[0].delivered_at == clock.now and db.due(clock.now + 10**6) == []
    keys = {c[2]["Idempotency-Key"] for c in sender.calls}
    assert keys == {db.recent()[0].id}


def test_redelivery_after_restart_and_never_after_2xx(tmp_path):
    clock = Clock()
    db = _store(tmp_path)
    db.add_message("b" * 64, None, "report", "", [EVENT, dict(EVENT, recipient="bob@x.example")], now=clock.now)
    webhook.deliver_due(db, "u", "k", 1, 5, 5, sender=FakeSender([None, None]), clock=clock)
    db.close()
    clock.now += 5
    reopened = _store(tmp_path)
    sender = FakeSender([200, 200])
    assert webhook.deliver_due(reopened, "u", "k", 1, 5, 5, sender=sender, clock=clock).delivered == 2
    clock.now += 3600
    assert webhook.deliver_due(reopened, "u", "k", 1, 5, 5, sender=FakeSender([]), clock=clock).delivered == 0
    bodies = [json.loads(c[1]) for c in sender.calls]
    assert sorted(b["recipient"] for b in bodies) == ["alice@recipient.example", "bob@x.example"]


def test_make_due_only_touches_undelivered(tmp_path):
    db, clock = _store(tmp_path), Clock()
    db.add_message("c" * 64, None, "report", "", [EVENT, dict(EVENT, recipient="b@x.example")], now=clock.now)
    first = db.due(clock.now)[0]
    db.mark_delivered(first.id, clock.now)
    db.mark_failed(db.due(clock.now)[0].id, "down", clock.now + 999)
    assert db.make_due(clock.now) == 1
    assert db.make_due(clock.now, first.id) == 0


def test_quarantine_writes_message_and_reason(tmp_path):
    path = storemod.quarantine(str(tmp_path), "d" * 64, b"\xff raw", "broken", now=0)
    with open(path, "rb") as handle:
        assert handle.read() == b"\xff raw"
    with open(path[:-4] + ".json", encoding="utf-8") as handle:
        assert json.load(handle)["reason"] == "broken"
    assert not [n for n in os.listdir(tmp_path) if ".tmp." in n]


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook that records signed POSTs; status chosen by the test."""

    status = 200
    received = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.received = []
    Receiver.status = 200
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/hook" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_real_http_post_is_signed(tmp_path, receiver):
    db = _store(tmp_path)
    db.add_message("e" * 64, None, "report", "", [EVENT])
    Receiver.status = 500
    assert webhook.deliver_due(db, receiver, "topsecret", 5, 1, 1).failed == 1
    Receiver.status = 204
    db.make_due(0)
    assert webhook.deliver_due(db, receiver, "topsecret", 5, 1, 1).delivered == 1
    assert len(Receiver.received) == 2
    headers, body = Receiver.received[-1]
    assert webhook.verify("topsecret", headers["X-Kb-Timestamp"], body, headers["X-Kb-Signature"])
    assert headers["Idempotency-Key"] == json.loads(body)["id"]
    assert json.loads(body)["recipient"] == "alice@recipient.example"


def test_unreachable_webhook_is_a_failure_not_a_crash():
    status, error = webhook.http_post("http://127.0.0.1:9/none", b"{}", {}, 2)
    assert status is None and "127.0.0.1" in error
