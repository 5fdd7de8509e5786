# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``kb-bounce`` command.

ingest      read one message on stdin (Postfix pipe); exit 0 once it is stored
            or quarantined, 75 (EX_TEMPFAIL) when it could not be kept
deliver     send due events to the webhook (``--loop`` for the service)
list        recent events
replay      send undelivered events now, ignoring their backoff
quarantine  messages kept aside because they could not be parsed
check       validate the settings file
metrics     figures in the Prometheus text format (node exporter's textfile collector)
backup      copy the database while it is written; remove old copies
restore     merge a copy back into the database (nothing lost, nothing twice)
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import sys
import time
from dataclasses import asdict
from typing import Callable, Iterator, List, Optional

from kb_bounce import __version__, backup as backupmod, config as configmod, metrics as metricsmod, parse
from kb_bounce import store as storemod, verp, webhook

EX_OK = 0
EX_USAGE = 64
EX_TEMPFAIL = 75
EX_CONFIG = 78


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        config = configmod.load(args.config)
    except configmod.ConfigError as exc:
        print("kb-bounce: %s" % exc, file=sys.stderr)
        return EX_TEMPFAIL if args.command == "ingest" else EX_CONFIG
    os.umask(0o027)
    if not getattr(args, "keep_rights", False):
        drop_privileges(config.database)
    return args.func(args, config)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands."""
    parser = argparse.ArgumentParser(prog="kb-bounce", description="Kibamail bounce and complaint processor")
    parser.add_argument("--config", default=os.environ.get("KB_BOUNCE_CONFIG", configmod.DEFAULT_PATH),
                        help="settings file (default: %(default)s)")
    parser.add_argument("--version", action="version", version="kb-bounce %s" % __version__)
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="store one message read on stdin (Postfix pipe)")
    ingest.add_argument("--recipient", help="envelope recipient (the VERP return path)")
    ingest.add_argument("--sender", help="envelope sender")
    ingest.set_defaults(func=cmd_ingest)

    deliver = sub.add_parser("deliver", help="send due events to the webhook")
    deliver.add_argument("--loop", action="store_true", help="keep running (the systemd service)")
    deliver.set_defaults(func=cmd_deliver)

    lister = sub.add_parser("list", help="recent events")
    lister.add_argument("--limit", type=int, default=20)
    lister.add_argument("--undelivered", action="store_true", help="only events not yet delivered")
    lister.add_argument("--json", action="store_true", help="one JSON object per line")
    lister.set_defaults(func=cmd_list)

    replay = sub.add_parser("replay", help="send undelivered events now, ignoring backoff")
    replay.add_argument("--id", help="only this event")
    replay.set_defaults(func=cmd_replay)

    check = sub.add_parser("check", help="validate the settings file and exit")
    check.set_defaults(func=cmd_check)

    quarantine = sub.add_parser("quarantine", help="messages kept aside for a person")
    quarantine.add_argument("--limit", type=int, default=20)
    quarantine.add_argument("--json", action="store_true")
    quarantine.set_defaults(func=cmd_quarantine)

    metrics = sub.add_parser("metrics", help="figures in the Prometheus text format")
    metrics.add_argument("--output", help="write this file atomically (mode 0644) instead of standard output")
    metrics.add_argument("--backup-dir", default="", help="also tell the newest copy in this directory")
    # The store is read as its owner; the file is written with the caller's rights (root can write
    # node exporter's directory, the processor's user cannot).
    metrics.set_defaults(func=cmd_metrics, keep_rights=True)

    backup = sub.add_parser("backup", help="copy the database while it is written; remove old copies")
    backup.add_argument("--dir", required=True, help="where copies go")
    backup.add_argument("--keep-days", type=int, default=7, help="remove older copies, never the newest (default: 7)")
    backup.set_defaults(func=cmd_backup)

    restore = sub.add_parser("restore", help="merge a copy back into the database (nothing lost, nothing twice)")
    restore.add_argument("file", help="a copy made by kb-bounce backup")
    restore.set_defaults(func=cmd_restore)
    return parser


def store_owner(database: str) -> Optional[os.stat_result]:
    """The database directory's status when a user other than root owns it (the processor's user)."""
    try:
        info = os.stat(os.path.dirname(os.path.abspath(database)))
    except OSError:
        return None
    return None if info.st_uid == 0 else info


def drop_privileges(database: str) -> None:
    """Run as the owner of the database directory when started as root, so files keep their owner."""
    if os.geteuid() != 0:
        return
    info = store_owner(database)
    if info is None:
        return
    os.setgroups([])
    os.setgid(info.st_gid)
    os.setuid(info.st_uid)


def as_store_owner(database: str, produce: Callable[[], bytes]) -> bytes:
    """produce() run as the store's owner (in a child process when we are root); its bytes."""
    if os.geteuid() != 0 or store_owner(database) is None:
        return produce()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the owner, produce, hand the bytes over
        status = 1
        try:
            os.close(read_end)
            drop_privileges(database)
            data = produce()
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
            status = 0
        except BaseException as exc:  # pylint: disable=broad-except
            print("kb-bounce: %s" % exc, file=sys.stderr)
            sys.stderr.flush()
        finally:
            os._exit(status)  # pylint: disable=protected-access
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        raise OSError("reading the store as its owner failed")
    return data


def read_stdin(limit: int) -> bytes:
    """The whole message (at most limit + 1 bytes, the rest is drained)."""
    stream = sys.stdin.buffer
    data = stream.read(limit + 1)
    while stream.read(1 << 20):
        pass
    return data


def cmd_ingest(args: argparse.Namespace, config: configmod.Config) -> int:
    """Store one message: events, an auto-reply note, or a quarantined copy."""
    raw = read_stdin(config.max_message_bytes)
    try:
        return ingest(raw, args.recipient, config)
    except (sqlite3.Error, OSError) as exc:
        print("kb-bounce: cannot store the message, Postfix will retry: %s" % exc, file=sys.stderr)
        return EX_TEMPFAIL
    except Exception as exc:  # pylint: disable=broad-except
        # A defect of the processor must neither bounce the message nor lose it.
        return keep_aside(raw, args.recipient, config, "processor error: %r" % exc)


def keep_aside(raw: bytes, recipient: Optional[str], config: configmod.Config, reason: str) -> int:
    """Quarantine after an unexpected error; EX_TEMPFAIL when even that fails."""
    try:
        path = storemod.quarantine(config.quarantine_dir, hashlib.sha256(raw).hexdigest(), raw, reason)
    except OSError as exc:
        print("kb-bounce: %s; cannot quarantine either, Postfix will retry: %s" % (reason, exc), file=sys.stderr)
        return EX_TEMPFAIL
    print("kb-bounce: %s (recipient %s); kept in %s" % (reason, recipient or "-", path), file=sys.stderr)
    return EX_OK


def ingest(raw: bytes, recipient: Optional[str], config: configmod.Config) -> int:
    """Parse and store; raises sqlite3.Error or OSError when storage fails."""
    sha = hashlib.sha256(raw).hexdigest()
    if len(raw) > config.max_message_bytes:
        result = parse.ParseResult(kind=parse.UNPARSEABLE, reason="larger than %d bytes" % config.max_message_bytes)
        raw = raw[:config.max_message_bytes]
    else:
        try:
            result = parse.parse(raw, recipient, verp.own_domains(
                config.platform_bounce_domain, config.return_path_label, config.customers))
        except Exception as exc:  # pylint: disable=broad-except
            result = parse.ParseResult(kind=parse.UNPARSEABLE, reason="parser error: %r" % exc)
    db = storemod.Store(config.database)
    try:
        if result.kind == parse.UNPARSEABLE:
            path = storemod.quarantine(config.quarantine_dir, sha, raw, result.reason)
            db.add_message(sha, recipient, result.kind, result.reason, [], quarantine_file=path)
            print("kb-bounce: quarantined %s: %s" % (os.path.basename(path), result.reason), file=sys.stderr)
            return EX_OK
        payloads = [event_payload(e, recipient, config) for e in result.events]
        detail = result.reason or "%d event(s)" % len(payloads)
        added = db.add_message(sha, recipient, result.kind, detail, payloads)
        print("kb-bounce: %s, %d new event(s)" % (result.kind, added), file=sys.stderr)
        return EX_OK
    finally:
        db.close()


def event_payload(event: parse.Event, envelope_recipient: Optional[str], config: configmod.Config) -> dict:
    """The JSON document the webhook receives (without id and received_at, added on storing)."""
    data = asdict(event)
    data["class"] = data.pop("klass")
    if not data.get("return_path_domain") and envelope_recipient:
        parts = verp.split_address(envelope_recipient)
        data["return_path_domain"] = parts[1] if parts else None
    domain = str(data.get("return_path_domain") or "").lower()
    if domain in config.customers:
        data["customer_domain"] = config.customers[domain]
    elif domain:
        data["customer_domain"] = verp.customer_domain(domain, config.platform_bounce_domain, config.return_path_label)
    else:
        data["customer_domain"] = None
    data["envelope_recipient"] = envelope_recipient
    return data


@contextlib.contextmanager
def delivery_lock(database: str) -> Iterator[None]:
    """One deliverer at a time (the service and a manual replay never send the same event together)."""
    with open(database + ".deliver-lock", "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def one_pass(config: configmod.Config) -> webhook.Outcome:
    """Deliver what is due, under the lock."""
    db = storemod.Store(config.database)
    try:
        with delivery_lock(config.database):
            return webhook.deliver_due(db, config.webhook_url, config.webhook_secret, config.webhook_timeout,
                                       config.retry_initial_seconds, config.retry_max_seconds, config.batch_size)
    finally:
        db.close()


def cmd_deliver(args: argparse.Namespace, config: configmod.Config) -> int:
    """Send due events; with --loop keep polling."""
    if not config.webhook_url:
        print("kb-bounce: no webhook_url configured; events stay stored", file=sys.stderr)
        if not args.loop:
            return EX_CONFIG
        while True:  # the service stays up (and quiet) until a URL is configured and it is restarted
            time.sleep(3600)
    while True:
        try:
            outcome = one_pass(config)
            if outcome.delivered or outcome.failed:
                print("kb-bounce: delivered %d, failed %d" % (outcome.delivered, outcome.failed), file=sys.stderr)
        except sqlite3.Error as exc:
            print("kb-bounce: database error, will try again: %s" % exc, file=sys.stderr)
            if not args.loop:
                return EX_TEMPFAIL
        if not args.loop:
            return EX_OK
        time.sleep(config.poll_interval)


def cmd_replay(args: argparse.Namespace, config: configmod.Config) -> int:
    """Make undelivered events due now and send them once."""
    db = storemod.Store(config.database)
    try:
        if args.id and db.get(args.id) is None:
            print("kb-bounce: no event with id %s" % args.id, file=sys.stderr)
            return EX_USAGE
        count = db.make_due(time.time(), args.id)
    finally:
        db.close()
    outcome = one_pass(config)
    print("replayed %d undelivered event(s): delivered %d, failed %d" % (count, outcome.delivered, outcome.failed))
    return EX_OK if outcome.failed == 0 else EX_TEMPFAIL


def cmd_list(args: argparse.Namespace, config: configmod.Config) -> int:
    """Print recent events."""
    db = storemod.Store(config.database)
    try:
        events = db.recent(args.limit, args.undelivered)
        counts = db.counts()
    finally:
        db.close()
    for event in events:
        if args.json:
            print(json.dumps(storemod.event_dict(event), sort_keys=True))
            continue
        state = "delivered" if event.delivered_at else "pending(%d)" % event.attempts
        payload = event.payload
        print("%s  %s  %-9s %-17s %-8s %-10s %s" % (
            payload.get("received_at"), event.id, event.klass, payload.get("reason"), payload.get("status") or "-",
            state, event.recipient))
    if not args.json:
        print("events: %(events)d, pending: %(pending)d, quarantined: %(quarantined)d" % counts)
    return EX_OK


def cmd_check(args: argparse.Namespace, config: configmod.Config) -> int:
    """The settings loaded (main did the work); say what they point at."""
    del args
    print("kb-bounce: configuration valid; database %s, webhook %s" % (config.database, config.webhook_url or "(none)"))
    return EX_OK


def cmd_quarantine(args: argparse.Namespace, config: configmod.Config) -> int:
    """Print quarantined messages."""
    db = storemod.Store(config.database)
    try:
        rows = db.messages(parse.UNPARSEABLE, args.limit)
    finally:
        db.close()
    for row in rows:
        if args.json:
            print(json.dumps(row, sort_keys=True))
        else:
            print("%s  %s  %s" % (row["quarantine_file"], row["envelope_recipient"] or "-", row["detail"]))
    return EX_OK


def cmd_metrics(args: argparse.Namespace, config: configmod.Config) -> int:
    """Print or write the figures."""
    try:
        body = as_store_owner(config.database, lambda: metricsmod.text(config, args.backup_dir).encode("utf-8"))
        if args.output:
            storemod.write_durably(args.output, body, 0o644)  # node exporter runs as another user
        else:
            sys.stdout.write(body.decode("utf-8"))
    except OSError as exc:
        print("kb-bounce: cannot write the metrics: %s" % exc, file=sys.stderr)
        return EX_TEMPFAIL
    return EX_OK


def cmd_backup(args: argparse.Namespace, config: configmod.Config) -> int:
    """Take a copy, then remove the old ones."""
    if args.keep_days < 1:
        print("kb-bounce: --keep-days must be at least 1", file=sys.stderr)
        return EX_USAGE
    try:
        path = backupmod.take(config.database, args.dir)
        removed = backupmod.prune(args.dir, args.keep_days)
    except (backupmod.BackupError, sqlite3.Error, OSError) as exc:
        print("kb-bounce: backup failed: %s" % exc, file=sys.stderr)
        return EX_TEMPFAIL
    print("kb-bounce: copied %s to %s; removed %d file(s) older than %d day(s)" % (
        config.database, path, len(removed), args.keep_days))
    return EX_OK


def cmd_restore(args: argparse.Namespace, config: configmod.Config) -> int:
    """Merge a copy into the database; no delivery runs meanwhile."""
    try:
        with delivery_lock(config.database):
            result = backupmod.restore(args.file, config.database)
    except backupmod.BackupError as exc:
        print("kb-bounce: %s" % exc, file=sys.stderr)
        return EX_USAGE
    except (sqlite3.Error, OSError) as exc:
        print("kb-bounce: restore failed, nothing changed: %s" % exc, file=sys.stderr)
        return EX_TEMPFAIL
    print("restored %s: %d event(s) in the copy; %d added (%d undelivered, due now: the deliverer sends each once);"
          " %d already present; %d marked delivered as the copy knew; %d message record(s) added" % (
              args.file, result.in_copy, result.added, result.added_undelivered, result.already_present,
              result.marked_delivered, result.messages_added))
    return EX_OK
