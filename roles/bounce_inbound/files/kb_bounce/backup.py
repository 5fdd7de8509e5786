# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copies of the events database taken while it is written, and bringing one back.

A copy is made with SQLite's online backup API in one step: the source is
read inside one read transaction, which in WAL mode does not stop ``ingest``
or the deliverer from committing meanwhile, so the copy is the database as
of one commit (a message's events are all in it or none). The copy is
turned into a single self-contained file (rollback journal mode), checked
(``PRAGMA quick_check``), fsynced and renamed into place: a copy under its
final name is always complete.

A restore *merges* a copy into the current database (created empty when it
is gone), in one transaction:

- an event is keyed by its id (message digest, recipient, index): one the
  current database has is never added twice;
- an event only the copy has is added with the copy's delivery state:
  delivered stays delivered, undelivered is due at once, so the deliverer
  sends it once;
- an event both have, delivered according to the copy but not to the current
  database, is marked delivered (delivery is a fact that only grows);
- what the current database knows and the copy does not (events received,
  deliveries made after the copy) is kept.

What cannot be known: when the database was lost, events delivered after the
copy was taken are undelivered in the copy and are sent again (with the same
id: receivers dedupe on ``Idempotency-Key``), and events received after the
copy are gone (back up more often to shorten that window).
"""
from __future__ import annotations

import calendar
import contextlib
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple
from urllib.parse import quote

from kb_bounce.store import Store, sync_directory

COPY_RE = re.compile(r"^events-(\d{8}T\d{6}Z)\.sqlite3$")
STAMP = "%Y%m%dT%H%M%SZ"
# Temporary files of a backup that died are removed after this long.
STALE_TEMPORARY_SECONDS = 86400

EVENT_COLUMNS = ("id, message_sha256, received_at, type, class, recipient, payload, attempts, next_attempt_at,"
                 " last_error, delivered_at")
MESSAGE_COLUMNS = "sha256, received_at, envelope_recipient, kind, detail, quarantine_file"


class BackupError(Exception):
    """A copy could not be made or brought back."""


@dataclass
class RestoreResult:
    """What a restore did."""

    in_copy: int = 0
    added: int = 0
    added_undelivered: int = 0
    already_present: int = 0
    marked_delivered: int = 0
    messages_added: int = 0


def copies(directory: str) -> List[Tuple[float, str]]:
    """(time taken, path) of the copies in a directory, oldest first."""
    found = []
    for name in os.listdir(directory):
        match = COPY_RE.match(name)
        if match:
            taken = float(calendar.timegm(time.strptime(match.group(1), STAMP)))
            found.append((taken, os.path.join(directory, name)))
    return sorted(found)


def take(database: str, directory: str, now: Optional[float] = None) -> str:
    """Copy the database into the directory as events-<UTC time>.sqlite3; return its path."""
    if not os.path.exists(database):
        raise BackupError("no database at %s" % database)
    now = time.time() if now is None else now
    final = os.path.join(directory, "events-%s.sqlite3" % time.strftime(STAMP, time.gmtime(now)))
    tmp = os.path.join(directory, ".%s.tmp.%d" % (os.path.basename(final), os.getpid()))
    source = Store(database)
    try:
        target = sqlite3.connect(tmp, isolation_level=None)
        try:
            source.conn.backup(target)  # pages=-1: one step, one read transaction
            target.execute("PRAGMA journal_mode=DELETE")
            verdict = target.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            target.close()
        if verdict != "ok":
            raise BackupError("the copy failed its check: %s" % verdict)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        sync_directory(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        source.close()
    return final


def prune(directory: str, keep_days: float, now: Optional[float] = None) -> List[str]:
    """Remove copies older than keep_days (never the newest one) and stale temporary files."""
    now = time.time() if now is None else now
    removed = []
    kept = copies(directory)
    for taken, path in kept[:-1]:
        if taken < now - keep_days * 86400:
            os.unlink(path)
            removed.append(path)
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if name.startswith(".events-") and ".tmp." in name and os.path.getmtime(path) < now - STALE_TEMPORARY_SECONDS:
            os.unlink(path)
            removed.append(path)
    if removed:
        sync_directory(directory)
    return removed


def _check_copy(path: str) -> None:
    """The copy opens read-only, passes quick_check and has the events table."""
    try:
        conn = sqlite3.connect("file:%s?mode=ro" % _uri_path(path), uri=True)
    except sqlite3.Error as exc:
        raise BackupError("cannot open %s: %s" % (path, exc)) from exc
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise BackupError("%s is not a readable SQLite database: %s" % (path, exc)) from exc
    finally:
        conn.close()
    if verdict != "ok":
        raise BackupError("%s failed its check: %s" % (path, verdict))
    if not {"events", "messages"} <= tables:
        raise BackupError("%s is not a copy of the events database (tables: %s)" % (path, ", ".join(sorted(tables))))


def _uri_path(path: str) -> str:
    return quote(os.path.abspath(path))


def restore(copy_path: str, database: str, now: Optional[float] = None) -> RestoreResult:
    """Merge a copy into the database (see the module's description); one transaction."""
    if not os.path.isfile(copy_path):
        raise BackupError("no file %s" % copy_path)
    _check_copy(copy_path)
    now = time.time() if now is None else now
    db = Store(database)
    conn = db.conn
    result = RestoreResult()
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise BackupError("the current database %s failed its check (%s): move it aside (with its -wal and -shm"
                              " files) and restore again" % (database, verdict))
        conn.execute("ATTACH DATABASE ? AS saved", (copy_path,))
        try:
            conn.execute("BEGIN IMMEDIATE")  # ingest and the deliverer wait for the merge
            try:
                _merge(conn, now, result)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.execute("DETACH DATABASE saved")
    finally:
        db.close()
    return result


def _merge(conn: sqlite3.Connection, now: float, result: RestoreResult) -> None:
    result.in_copy = conn.execute("SELECT COUNT(*) FROM saved.events").fetchone()[0]
    missing = "NOT EXISTS (SELECT 1 FROM main.events m WHERE m.id = s.id)"
    result.added_undelivered = conn.execute(
        "SELECT COUNT(*) FROM saved.events s WHERE s.delivered_at IS NULL AND " + missing).fetchone()[0]
    result.marked_delivered = conn.execute(
        "UPDATE main.events SET delivered_at = (SELECT s.delivered_at FROM saved.events s WHERE s.id = events.id),"
        " last_error = NULL"
        " WHERE delivered_at IS NULL AND id IN (SELECT id FROM saved.events WHERE delivered_at IS NOT NULL)").rowcount
    # Undelivered events of the copy are due now; their attempt count and last error stay for the record.
    result.added = conn.execute(
        "INSERT INTO main.events (%s) SELECT %s FROM saved.events s WHERE %s" % (
            EVENT_COLUMNS, EVENT_COLUMNS.replace("next_attempt_at", "CASE WHEN delivered_at IS NULL THEN ?"
                                                 " ELSE next_attempt_at END"), missing), (now,)).rowcount
    result.already_present = result.in_copy - result.added
    result.messages_added = conn.execute(
        "INSERT OR IGNORE INTO main.messages (%s) SELECT %s FROM saved.messages" % (MESSAGE_COLUMNS, MESSAGE_COLUMNS)
    ).rowcount
