# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bounce path loses nothing: kb-bounce as Postfix runs it (a subprocess per message,
the message on stdin), its deliverer as systemd runs it, and a webhook on 127.0.0.1
that is down, then failing, then up."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple


from reliability_support import BOUNCE_FILES

from kb_bounce import webhook as webhookmod  # noqa: E402 (path set up by conftest)

SECRET = "reliability-webhook-secret"
BOUNCES = 100
HOSTILE = 50
MAX_MESSAGE_BYTES = 2 * 1024 * 1024


# ---------------------------------------------------------------- helpers


def kb_bounce(config: str, args: List[str], stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess:
    """The real entry point, as Postfix's pipe(8) and systemd start it."""
    env = dict(os.environ, PYTHONPATH=str(BOUNCE_FILES))
    return subprocess.run([sys.executable, "-m", "kb_bounce", "--config", config] + args, input=stdin,
                          capture_output=True, env=env, timeout=timeout, check=False)


def kb_bounce_process(config: str, args: List[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(BOUNCE_FILES))
    return subprocess.Popen([sys.executable, "-m", "kb_bounce", "--config", config] + args, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def write_config(tmp_path: Path, webhook_url: str, **overrides: Any) -> str:
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir(exist_ok=True)
    data: Dict[str, Any] = {
        "database": str(tmp_path / "events.sqlite3"),
        "quarantine_dir": str(quarantine),
        "webhook_url": webhook_url,
        "webhook_secret": SECRET,
        "webhook_timeout": 5,
        "retry_initial_seconds": 0.2,
        "retry_max_seconds": 1.0,
        "poll_interval": 0.2,
        "batch_size": 100,
        "platform_bounce_domain": "kb-bounces.kbmta.net",
        "max_message_bytes": MAX_MESSAGE_BYTES,
    }
    data.update(overrides)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return str(path)


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Webhook:
    """A webhook consumer on 127.0.0.1: checks each signature, answers ``status``, counts by event id.

    It is "down" (connection refused) until ``start()``; ``status`` set to 503
    makes it answer but refuse.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 200
        self.accepted: Counter = Counter()       # Idempotency-Key -> 2xx answers given
        self.refused = 0
        self.bad_signatures = 0
        self.payloads: Dict[str, Dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.server: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/bounces" % self.port

    def start(self) -> "Webhook":
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key") or ""
                good = webhookmod.verify(SECRET, self.headers.get("X-Kb-Timestamp") or "", body,
                                         self.headers.get("X-Kb-Signature") or "")
                with hook.lock:
                    status = hook.status if good else 401
                    if not good:
                        hook.bad_signatures += 1
                    elif 200 <= status < 300:
                        hook.accepted[key] += 1
                        hook.payloads[key] = json.loads(body)
                    else:
                        hook.refused += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def dsn(index: int) -> Tuple[bytes, str, str]:
    """A Postfix-style RFC 3464 bounce for recipient user<index>; returns (message, envelope, recipient)."""
    recipient = "user%03d@recipient.example" % index
    envelope = "bounces+user%03d=recipient.example@kb-bounces.kibamail.com" % index
    boundary = "rel-%06d/us-mta1.kbmta.net" % index
    text = (
        "Return-Path: <>\n"
        "Date: Fri, 27 Nov 2026 09:14:03 +0000 (UTC)\n"
        "From: MAILER-DAEMON@us-mta1.kbmta.net (Mail Delivery System)\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "To: %(envelope)s\n"
        "Auto-Submitted: auto-replied\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        "\tboundary=\"%(boundary)s\"\n"
        "Message-Id: <bounce-%(index)d@us-mta1.kbmta.net>\n"
        "\n"
        "--%(boundary)s\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        "<%(recipient)s>: host mx.recipient.example[198.51.100.25] said: 550 5.1.1 User unknown\n"
        "\n"
        "--%(boundary)s\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Reporting-MTA: dns; us-mta1.kbmta.net\n"
        "\n"
        "Final-Recipient: rfc822; %(recipient)s\n"
        "Action: failed\n"
        "Status: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <%(recipient)s>: Recipient address rejected: User unknown\n"
        "\n"
        "--%(boundary)s\n"
        "Content-Type: text/rfc822-headers\n"
        "\n"
        "From: Kibamail Support <support@kibamail.com>\n"
        "To: %(recipient)s\n"
        "Message-ID: <receipt-%(index)d@kibamail.com>\n"
        "\n"
        "--%(boundary)s--\n"
    ) % {"envelope": envelope, "boundary": boundary, "recipient": recipient, "index": index}
    return text.encode("ascii"), envelope, recipient


def delivered_in_db(database: str) -> Tuple[int, int]:
    """(events, delivered events) in the processor's database."""
    conn = sqlite3.connect(database)
    try:
        total = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        done = conn.execute("SELECT COUNT(*) FROM events WHERE delivered_at IS NOT NULL").fetchone()[0]
    finally:
        conn.close()
    return int(total), int(done)


def wait_for(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


# ---------------------------------------------------------------- webhook outage


def test_webhook_outage_during_100_bounces_loses_none_and_repeats_none(tmp_path: Path, figures: Dict[str, Any]) -> None:
    hook = Webhook(free_port())
    config = write_config(tmp_path, hook.url, batch_size=30)
    database = str(tmp_path / "events.sqlite3")
    recipients = []

    # The deliverer runs (as its service does) while the webhook is down and the bounces arrive.
    deliverer = kb_bounce_process(config, ["deliver", "--loop"])
    try:
        for index in range(BOUNCES):
            raw, envelope, recipient = dsn(index)
            recipients.append(recipient)
            proc = kb_bounce(config, ["ingest", "--recipient", envelope], raw)
            assert proc.returncode == 0, proc.stderr.decode()
        assert delivered_in_db(database) == (BOUNCES, 0)
        # Let it fail a few rounds against the closed port, then kill it hard: a crash, not a stop.
        time.sleep(1.5)
        assert deliverer.poll() is None, "the deliverer died while the webhook was down: %s" % (
            deliverer.stderr.read().decode() if deliverer.stderr else "")
    finally:
        deliverer.send_signal(signal.SIGKILL)
        deliverer.wait(timeout=30)
    attempts = sqlite3.connect(database).execute("SELECT SUM(attempts) FROM events").fetchone()[0]
    assert attempts >= BOUNCES, "every event should have been tried while the webhook was down"

    # The webhook answers but refuses (503) for one pass of a fresh deliverer.
    hook.start()
    try:
        hook.status = 503
        time.sleep(1.1)   # retry_max_seconds: every event is due again
        proc = kb_bounce(config, ["deliver"])
        assert proc.returncode == 0, proc.stderr.decode()
        assert hook.refused == 30 and not hook.accepted
        assert delivered_in_db(database) == (BOUNCES, 0)

        # Back up: one-pass deliverers (a restart between each batch of 30), then the service again.
        hook.status = 200
        time.sleep(1.1)
        passes = 0
        while delivered_in_db(database)[1] < 60 and passes < 10:
            proc = kb_bounce(config, ["deliver"])
            assert proc.returncode == 0, proc.stderr.decode()
            passes += 1
        assert delivered_in_db(database)[1] >= 60
        service = kb_bounce_process(config, ["deliver", "--loop"])
        try:
            assert wait_for(lambda: delivered_in_db(database)[1] == BOUNCES, 60), delivered_in_db(database)
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=30)
    finally:
        hook.stop()

    delivered_recipients = sorted(str(p["recipient"]) for p in hook.payloads.values())
    assert delivered_recipients == sorted(recipients)
    assert len(hook.accepted) == BOUNCES
    assert max(hook.accepted.values()) == 1, "an event was accepted twice: %s" % [
        k for k, v in hook.accepted.items() if v > 1]
    assert hook.bad_signatures == 0
    assert all(p["class"] == "hard" and p["customer_domain"] == "kibamail.com" for p in hook.payloads.values())
    figures.update(bounces=BOUNCES, webhook_down_phase="connection refused, then HTTP 503",
                   deliverer_restarts=passes + 2, events_delivered=len(hook.accepted),
                   delivered_twice=sum(1 for v in hook.accepted.values() if v > 1), refused_answers=hook.refused)


def test_the_same_bounce_handed_over_twice_is_one_event(tmp_path: Path) -> None:
    """Postfix may pipe a message again after a timeout: the webhook still sees it once."""
    hook = Webhook(free_port()).start()
    try:
        config = write_config(tmp_path, hook.url)
        raw, envelope, _recipient = dsn(7)
        for _attempt in range(3):
            assert kb_bounce(config, ["ingest", "--recipient", envelope], raw).returncode == 0
        assert kb_bounce(config, ["deliver"]).returncode == 0
        assert kb_bounce(config, ["replay"]).returncode == 0
    finally:
        hook.stop()
    assert list(hook.accepted.values()) == [1]


# ---------------------------------------------------------------- hostile input


def _nested_dsn(depth: int) -> bytes:
    inner = dsn(depth)[0]
    for level in range(depth):
        boundary = "nest-%d" % level
        inner = (
            "From: MAILER-DAEMON@relay%d.example\nTo: bounces@kb-bounces.kbmta.net\n"
            "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"%s\"\n\n"
            "--%s\nContent-Type: text/plain\n\nreturned\n\n"
            "--%s\nContent-Type: message/rfc822\n\n" % (level, boundary, boundary, boundary)
        ).encode() + inner + ("\n--%s--\n" % boundary).encode()
    return inner


def hostile_messages() -> List[Tuple[str, bytes]]:
    """50 malformed or hostile messages, generated (seeded, so every run tries the same)."""
    rng = random.Random(20261127)
    base, _env, _rcpt = dsn(1)
    head, _sep, body = base.partition(b"\n\n")
    cases: List[Tuple[str, bytes]] = [
        ("empty", b""),
        ("only-newlines", b"\n\n\n\n"),
        ("headers-no-body", head + b"\n"),
        ("body-no-headers", body),
        ("one-mb-subject", b"Subject: " + b"x" * (1024 * 1024) + b"\n\nbody\n"),
        ("huge-folded-header", b"X-Long: a\n" + b"\tcontinued\n" * 200000 + b"\nbody\n"),
        ("header-flood-50k", b"".join(b"X-H%d: v\n" % i for i in range(50000)) + b"\nbody\n"),
        ("huge-headers-on-dsn", b"X-Pad: " + b"y" * 500000 + b"\n" + base),
        ("no-boundary-param", base.replace(b'boundary="rel-000001/us-mta1.kbmta.net"', b"")),
        ("boundary-never-closed", base.replace(b"--rel-000001/us-mta1.kbmta.net--\n", b"")),
        ("boundary-never-appears", base.replace(b"\n--rel-000001/us-mta1.kbmta.net", b"\n--other")),
        ("empty-boundary", base.replace(b'boundary="rel-000001/us-mta1.kbmta.net"', b'boundary=""')),
        ("garbage-content-type", base.replace(b"multipart/report", b"multipart/;;;==\x00")),
        ("delivery-status-garbage", base.replace(b"Final-Recipient: rfc822; user001@recipient.example",
                                                 b"Final-Recipient: \x01\x02 ;;; <>")),
        ("status-out-of-range", base.replace(b"Status: 5.1.1", b"Status: 9.999.999999")),
        ("dsn-without-final-recipient", base.replace(b"Final-Recipient: rfc822; user001@recipient.example\n", b"")),
        ("thousand-recipients", base.replace(
            b"Final-Recipient: rfc822; user001@recipient.example\nAction: failed\nStatus: 5.1.1\n",
            b"".join(b"Final-Recipient: rfc822; r%d@recipient.example\nAction: failed\nStatus: 5.1.1\n\n" % i
                     for i in range(1000)))),
        ("broken-base64", b"MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\n"
                          b"!!!!not base64@@@@\n===\n"),
        ("broken-quoted-printable", b"Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n"
                                    b"=ZZ=\n=0=1=\n"),
        ("unknown-transfer-encoding", base.replace(b"MIME-Version: 1.0", b"Content-Transfer-Encoding: x-weird\nMIME-Version: 1.0")),
        ("latin1-headers", "Subject: Unzustellbar: Rückläufer\nFrom: MAILER-DAEMON@ä.example\n\nText\n".encode("latin-1")),
        ("invalid-utf8-everywhere", b"Subject: \xff\xfe\xfd\nFrom: \xc3\x28@x.example\n\n\xe2\x28\xa1 body \xf0\x90\x28\xbc\n"),
        ("unknown-charset", b"Content-Type: text/plain; charset=x-no-such-charset\nSubject: =?x-no-such?Q?abc?=\n\nhello\n"),
        ("encoded-word-bomb", b"Subject: " + b" ".join(b"=?utf-8?B?" + b"QUFB" * 100 + b"?=" for _word in range(2000))
         + b"\n\nbody\n"),
        ("utf16-with-bom", "\ufeffFrom: a@b.example\nSubject: x\n\nbody\n".encode("utf-16")),
        ("nul-bytes", b"From: a\x00b@x.example\nSubject: \x00\x00\n\n\x00" * 3),
        ("cr-only-line-ends", base.replace(b"\n", b"\r")),
        ("mixed-line-ends", base.replace(b"\n", b"\r\n", 10)),
        ("one-mb-line-no-newline", b"Subject: flat\n\n" + b"z" * (1024 * 1024)),
        ("larger-than-the-limit", b"Subject: big\n\n" + (b"0123456789abcdef" * 64 + b"\n") * (MAX_MESSAGE_BYTES // 1024 + 100)),
        ("five-thousand-parts", b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"
         + b"".join(b"--b\nContent-Type: text/plain\n\npart %d\n" % i for i in range(5000)) + b"--b--\n"),
        ("same-boundary-nested", b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
                                 b"Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n--b--\n--b--\n"),
        ("arf-without-report", b"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report; "
                               b"boundary=q\n\n--q\nContent-Type: message/feedback-report\n\n--q--\n"),
        ("arf-garbage-fields", b"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report; "
                               b"boundary=q\n\n--q\nContent-Type: message/feedback-report\n\nFeedback-Type: \xff\xff\n"
                               b"Original-Rcpt-To: <<<>>>\n--q--\n"),
        ("header-injection", b"Subject: a\r\nBcc: victim@recipient.example\r\n\r\nTo: x\n\nbody\n"),
        ("address-bomb", b"From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail\n\n"
                         + b" ".join(b"<a%d@recipient.example>:" % i for i in range(20000)) + b"\n"),
        ("regex-pathological", b"From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail\n\n"
                               + b"a" * 200000 + b"@" + b"b." * 50000 + b"\n"),
    ]
    for depth in (2, 5, 30, 200):
        cases.append(("nested-dsn-depth-%d" % depth, _nested_dsn(depth)))
    cases.append(("dsn-inside-arf", b"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report; "
                                    b"boundary=q\n\n--q\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n\n"
                                    b"--q\nContent-Type: message/rfc822\n\n" + base + b"\n--q--\n"))
    while len(cases) < HOSTILE:
        size = rng.randint(1, 200000)
        cases.append(("random-bytes-%d" % len(cases), rng.randbytes(size)))
    assert len(cases) == HOSTILE and len({case[0] for case in cases}) == HOSTILE
    return cases


def test_50_hostile_messages_neither_crash_nor_get_dropped(tmp_path: Path, figures: Dict[str, Any]) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/unused")
    database = str(tmp_path / "events.sqlite3")
    outcomes: Dict[str, str] = {}
    slowest = 0.0
    for name, raw in hostile_messages():
        started = time.monotonic()
        proc = kb_bounce(config, ["ingest", "--recipient", "bounces@kb-bounces.kbmta.net"], raw, timeout=120)
        slowest = max(slowest, time.monotonic() - started)
        stderr = proc.stderr.decode("utf-8", "replace")
        assert proc.returncode == 0, "%s: exit %d: %s" % (name, proc.returncode, stderr[-2000:])
        assert "Traceback" not in stderr, "%s crashed: %s" % (name, stderr[-2000:])
        # What ingest read: at most max_message_bytes + 1 bytes.
        sha = hashlib.sha256(raw[:MAX_MESSAGE_BYTES + 1]).hexdigest()
        conn = sqlite3.connect(database)
        try:
            row = conn.execute("SELECT kind, quarantine_file FROM messages WHERE sha256 = ?", (sha,)).fetchone()
        finally:
            conn.close()
        assert row is not None, "%s was dropped: no trace in the database" % name
        kind, quarantine_file = row
        if kind == "unparseable":
            assert quarantine_file and os.path.exists(quarantine_file), "%s: quarantine file missing" % name
            assert os.path.exists(quarantine_file[:-len(".eml")] + ".json")
        else:
            assert kind in ("report", "ignored"), "%s: unexpected kind %s" % (name, kind)
        outcomes[name] = kind
    kinds = Counter(outcomes.values())
    assert sum(kinds.values()) == HOSTILE
    assert outcomes["larger-than-the-limit"] == "unparseable"
    assert outcomes["empty"] == "unparseable"
    figures.update(hostile_messages=HOSTILE, crashed=0, dropped=0, slowest_seconds=round(slowest, 2),
                   **{"outcome_%s" % k: v for k, v in sorted(kinds.items())})
