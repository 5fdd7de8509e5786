# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Durable storage: SQLite for events, a directory for quarantined messages.

An event is committed (WAL, synchronous=FULL) before ``ingest`` tells
Postfix the message is delivered.  Its id is derived from the message and
the recipient, so a message Postfix hands over twice yields the same id
and is stored once.  ``delivered_at`` is set only after the webhook answered
2xx; until then the event waits for its ``next_attempt_at``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    message_sha256 TEXT NOT NULL,
    received_at REAL NOT NULL,
    type TEXT NOT NULL,
    class TEXT NOT NULL,
    recipient TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS events_due ON events (delivered_at, next_attempt_at);
CREATE TABLE IF NOT EXISTS messages (
    sha256 TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    envelope_recipient TEXT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    quarantine_file TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value NOT NULL
);
"""


@dataclass
class StoredEvent:
    """An event row."""

    id: str
    received_at: float
    type: str
    klass: str
    recipient: str
    payload: Dict[str, object]
    attempts: int
    next_attempt_at: float
    last_error: Optional[str]
    delivered_at: Optional[float]


def event_id(message_sha256: str, recipient: str, index: int) -> str:
    """Stable id of the index-th event of a message (the webhook's idempotency key)."""
    digest = hashlib.sha256(("%s\n%s\n%d" % (message_sha256, recipient.lower(), index)).encode("utf-8"))
    return digest.hexdigest()[:32]


class Store:
    """The events database."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)
        if self.created_at() is None:
            # A new store starts its life now; one made before this record existed, with its
            # oldest message (so the backup alert still sees how long it has gone uncopied).
            self.conn.execute("INSERT OR IGNORE INTO meta (key, value)"
                              " SELECT 'created_at', COALESCE(MIN(received_at), ?) FROM messages", (time.time(),))

    def created_at(self) -> Optional[float]:
        """Unix time the store was created (the backup alert's start when no copy is newer)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()
        return None if row is None else float(row[0])

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def add_message(self, sha256: str, envelope_recipient: Optional[str], kind: str, detail: str,
                    events: List[Dict[str, object]], quarantine_file: Optional[str] = None,
                    now: Optional[float] = None) -> int:
        """Store a message and its events in one transaction; return the number of new events."""
        now = time.time() if now is None else now
        added = 0
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute(
                "INSERT OR IGNORE INTO messages (sha256, received_at, envelope_recipient, kind, detail,"
                " quarantine_file) VALUES (?, ?, ?, ?, ?, ?)",
                (sha256, now, envelope_recipient, kind, detail, quarantine_file))
            for index, payload in enumerate(events):
                ident = event_id(sha256, str(payload["recipient"]), index)
                body = dict(payload, id=ident, received_at=_iso(now))
                cursor = self.conn.execute(
                    "INSERT OR IGNORE INTO events (id, message_sha256, received_at, type, class, recipient,"
                    " payload, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (ident, sha256, now, payload["type"], payload["class"], payload["recipient"],
                     json.dumps(body, sort_keys=True), now))
                added += cursor.rowcount
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return added

    def due(self, now: float, limit: int = 100) -> List[StoredEvent]:
        """Undelivered events whose next attempt is due, oldest first."""
        rows = self.conn.execute(
            "SELECT * FROM events WHERE delivered_at IS NULL AND next_attempt_at <= ?"
            " ORDER BY received_at, id LIMIT ?", (now, limit)).fetchall()
        return [_event(r) for r in rows]

    def recent(self, limit: int = 50, undelivered_only: bool = False) -> List[StoredEvent]:
        """The newest events."""
        where = "WHERE delivered_at IS NULL" if undelivered_only else ""
        rows = self.conn.execute(
            "SELECT * FROM events %s ORDER BY received_at DESC, id LIMIT ?" % where, (limit,)).fetchall()
        return [_event(r) for r in rows]

    def get(self, ident: str) -> Optional[StoredEvent]:
        """One event by id."""
        row = self.conn.execute("SELECT * FROM events WHERE id = ?", (ident,)).fetchone()
        return _event(row) if row else None

    def mark_delivered(self, ident: str, now: float) -> None:
        """Record a 2xx answer."""
        self.conn.execute("UPDATE events SET delivered_at = ?, attempts = attempts + 1, last_error = NULL"
                          " WHERE id = ?", (now, ident))

    def mark_failed(self, ident: str, error: str, next_attempt_at: float) -> None:
        """Record a failed attempt and when to try again."""
        self.conn.execute("UPDATE events SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
                          " WHERE id = ?", (error[:500], next_attempt_at, ident))

    def make_due(self, now: float, ident: Optional[str] = None) -> int:
        """Make undelivered events (or one) due now; return how many."""
        if ident is None:
            cursor = self.conn.execute("UPDATE events SET next_attempt_at = ? WHERE delivered_at IS NULL", (now,))
        else:
            cursor = self.conn.execute("UPDATE events SET next_attempt_at = ? WHERE delivered_at IS NULL"
                                       " AND id = ?", (now, ident))
        return cursor.rowcount

    def counts(self) -> Dict[str, int]:
        """Totals for a status line."""
        row = self.conn.execute(
            "SELECT COUNT(*) AS total, SUM(delivered_at IS NULL) AS pending FROM events").fetchone()
        quarantined = self.conn.execute("SELECT COUNT(*) FROM messages WHERE kind = 'unparseable'").fetchone()[0]
        return {"events": row["total"] or 0, "pending": row["pending"] or 0, "quarantined": quarantined}

    def event_totals(self) -> List[Tuple[Optional[str], str, Optional[str], int]]:
        """(customer domain, class, reason, number) of the events stored, for the metrics."""
        rows = self.conn.execute(
            "SELECT json_extract(payload, '$.customer_domain'), class, json_extract(payload, '$.reason'), COUNT(*)"
            " FROM events GROUP BY 1, 2, 3").fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def message_totals(self) -> Dict[str, int]:
        """Messages ingested, by kind (report, ignored, unparseable)."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT kind, COUNT(*) FROM messages GROUP BY kind")}

    def backlog(self) -> Dict[str, Optional[float]]:
        """Undelivered events, those that failed at least once, the oldest one's arrival, the last delivery."""
        row = self.conn.execute(
            "SELECT COUNT(*), SUM(attempts > 0), MIN(received_at) FROM events WHERE delivered_at IS NULL").fetchone()
        last = self.conn.execute("SELECT MAX(delivered_at) FROM events").fetchone()[0]
        return {"pending": row[0], "failing": row[1] or 0, "oldest_received_at": row[2], "last_delivered_at": last}

    def messages(self, kind: Optional[str] = None, limit: int = 50) -> List[Dict[str, object]]:
        """Ingested messages, newest first (kind: report, autoreply, unparseable)."""
        if kind is None:
            rows = self.conn.execute("SELECT * FROM messages ORDER BY received_at DESC LIMIT ?", (limit,))
        else:
            rows = self.conn.execute("SELECT * FROM messages WHERE kind = ? ORDER BY received_at DESC LIMIT ?",
                                     (kind, limit))
        return [dict(r) for r in rows.fetchall()]


def _event(row: sqlite3.Row) -> StoredEvent:
    return StoredEvent(
        id=row["id"], received_at=row["received_at"], type=row["type"], klass=row["class"],
        recipient=row["recipient"], payload=json.loads(row["payload"]), attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"], last_error=row["last_error"], delivered_at=row["delivered_at"],
    )


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def quarantine(directory: str, sha256: str, raw: bytes, reason: str, now: Optional[float] = None) -> str:
    """Keep a message aside for a person: write it and its reason atomically, durably."""
    now = time.time() if now is None else now
    name = "%s-%s" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)), sha256[:16])
    path = os.path.join(directory, name + ".eml")
    write_durably(path, raw)
    write_durably(os.path.join(directory, name + ".json"),
                  json.dumps({"reason": reason, "sha256": sha256, "received_at": _iso(now)},
                             sort_keys=True).encode("utf-8"))
    return path


def write_durably(path: str, data: bytes, mode: int = 0o640) -> None:
    """Write a file atomically (a temporary file renamed over it) and durably (fsync of both)."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_directory(os.path.dirname(path))


def sync_directory(directory: str) -> None:
    """Make a rename or an unlink in a directory durable."""
    dir_fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def event_dict(event: StoredEvent) -> Dict[str, object]:
    """An event as plain data (for ``list --json``)."""
    data = asdict(event)
    data["class"] = data.pop("klass")
    return data
