# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kb-bounce metrics (text format and values), backups taken while the processor writes, restores."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time

import pytest

from kb_bounce import backup as backupmod, classify, cli, config as configmod, metrics, store as storemod

NOW = 1_800_000_000.0


# ---- a strict reader of the text format ------------------------------------------------------

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)')


def parse_exposition(body):
    """{family: {"help", "type", "samples": {labels tuple: value}}}; ValueError on anything the
    text format forbids: a sample before its HELP and TYPE or outside its family, a family twice,
    a bad name, type or escape, a duplicate series or label."""
    families = {}
    current = None
    if not body.endswith("\n"):
        raise ValueError("no final line feed")
    for number, line in enumerate(body[:-1].split("\n"), 1):
        if line.startswith(("# HELP ", "# TYPE ")):
            keyword, parts = line[2:6].lower(), line[7:].split(" ", 1)
            name, rest = parts[0], parts[1] if len(parts) > 1 else ""
            if not NAME_RE.match(name):
                raise ValueError("line %d: bad name %r" % (number, name))
            entry = families.setdefault(name, {"samples": {}})
            if keyword in entry or entry["samples"]:
                raise ValueError("line %d: %s of %s repeated or misplaced" % (number, keyword, name))
            if keyword == "type" and rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                raise ValueError("line %d: bad type %r" % (number, rest))
            if keyword == "help" and not re.fullmatch(r"(?:[^\\]|\\[\\n])*", rest):
                raise ValueError("line %d: bad escape in HELP" % number)
            entry[keyword] = rest
            current = name
            continue
        match = SAMPLE_RE.match(line)
        if not match or match.group(1) != current or "type" not in families[current]:
            raise ValueError("line %d: sample outside its family or malformed: %r" % (number, line))
        raw, pairs = match.group(2) or "", []
        while raw:
            label = LABEL_RE.match(raw)
            if not label:
                raise ValueError("line %d: malformed labels %r" % (number, match.group(2)))
            pairs.append((label.group(1), re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1),
                                                 label.group(2))))
            raw = raw[label.end():]
        if len(dict(pairs)) != len(pairs):
            raise ValueError("line %d: a label twice" % number)
        samples = families[current]["samples"]
        if tuple(pairs) in samples:
            raise ValueError("line %d: series repeated" % number)
        samples[tuple(pairs)] = float(match.group(3))
    if any("type" not in f or "help" not in f for f in families.values()):
        raise ValueError("a family without HELP or TYPE")
    return families


def values(families, name):
    """{labels as a dict's sorted items: value} of one family."""
    return {tuple(sorted(k)): v for k, v in families[name]["samples"].items()}


# ---- helpers ---------------------------------------------------------------------------------

def event(recipient, klass="hard", reason="bad-mailbox", customer="kibamail.com"):
    kind = {"complaint": "complaint", "delay": "delay"}.get(klass, "bounce")
    return {"type": kind, "class": klass, "reason": reason, "recipient": recipient, "customer_domain": customer}


def add(db, name, events, now=None):
    """Store a message named name with its events; return their ids."""
    sha = hashlib.sha256(name.encode()).hexdigest()
    db.add_message(sha, None, "report", "", events, now=now)
    return [storemod.event_id(sha, e["recipient"], i) for i, e in enumerate(events)]


def all_ids(path):
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM events")]
    finally:
        conn.close()


class Writer(threading.Thread):
    """The processor writing: one message with two events after another, on its own connection."""

    def __init__(self, database, prefix):
        super().__init__(daemon=True)
        self.database, self.prefix, self.written = database, prefix, 0
        self.stop = threading.Event()

    def run(self):
        db = storemod.Store(self.database)
        try:
            while not self.stop.is_set():
                name = "%s-%d" % (self.prefix, self.written)
                add(db, name, [event("%s-a@x.example" % name), event("%s-b@x.example" % name, "soft", "mailbox-full")],
                    now=time.time())
                self.written += 1
        finally:
            db.close()


# ---- the text format --------------------------------------------------------------------------

def test_render_escapes_labels_and_help():
    family = metrics.Family("kb_test_total", "counter", 'a \\ back"slash\nand a line').add(
        3, customer='we"ird\\name\nx', reason="other")
    text = metrics.render([family])
    assert text == ('# HELP kb_test_total a \\\\ back"slash\\nand a line\n'
                    "# TYPE kb_test_total counter\n"
                    'kb_test_total{customer="we\\"ird\\\\name\\nx",reason="other"} 3\n')
    parsed = parse_exposition(text)
    assert values(parsed, "kb_test_total") == {(("customer", 'we"ird\\name\nx'), ("reason", "other")): 3}


def test_values_are_written_as_prometheus_reads_them():
    assert [metrics.format_value(v) for v in (0, 7, 2.5, float("nan"), float("inf"), -float("inf"), 1e300)] == [
        "0", "7", "2.5", "NaN", "+Inf", "-Inf", "1e+300"]


def test_strict_reader_refuses_what_the_format_forbids():
    for bad in ("kb_x 1\n", "# TYPE kb_x counter\n# TYPE kb_x counter\n", '# HELP kb_x h\n# TYPE kb_x gauge\nkb_x{a="\\q"} 1\n',
                '# HELP kb_x h\n# TYPE kb_x gauge\nkb_x{a="1"} 1\nkb_x{a="1"} 2\n', "# HELP kb_x a\\q\n# TYPE kb_x gauge\n",
                "# HELP kb_x h\n# TYPE kb_x gauge\nkb_x 1"):
        with pytest.raises(ValueError):
            parse_exposition(bad)


# ---- the values --------------------------------------------------------------------------------

@pytest.fixture
def config(config_file, tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    return configmod.load(config_file(customers={
        "kb-bounces.kibamail.com": "kibamail.com", "kb-bounces.shop.example": "shop.example"}))


def test_metrics_count_events_backlog_quarantine_and_backups(config, tmp_path):
    db = storemod.Store(config.database)
    delivered = add(db, "m1", [event("a@x.example"), event("b@x.example"), event("c@x.example", "soft", "mailbox-full")],
                    now=NOW - 600)
    add(db, "m2", [event("d@x.example", "complaint", "abuse", "shop.example"),
                   event("e@x.example", "complaint", "Something\nfree-text", "shop.example"),  # unknown reason
                   event("f@x.example", "hard", "bad-mailbox", None),  # the platform's own domain
                   event("g@x.example", "soft", "made-up", "stranger.example")], now=NOW - 120)
    db.add_message("q" * 64, None, "unparseable", "why", [], now=NOW)
    db.add_message("i" * 64, None, "ignored", "auto-reply", [], now=NOW)
    for ident in delivered[:2]:
        db.mark_delivered(ident, NOW - 300)
    failing = add(db, "m3", [event("h@x.example", "delay", "delayed")], now=NOW - 60)
    db.mark_failed(failing[0], "HTTP 503", NOW + 30)
    db.close()
    for name in ("one.eml", "one.json", "two.eml"):
        (tmp_path / "quarantine" / name).write_text("x")
    backupmod.take(config.database, str(tmp_path / "backups"), now=NOW - 3600)

    parsed = parse_exposition(metrics.text(config, str(tmp_path / "backups"), now=NOW))
    counted = {labels: number for labels, number in values(parsed, "kb_bounce_events_total").items() if number}
    assert counted == {
        (("class", "hard"), ("customer", "kibamail.com"), ("reason", "bad-mailbox")): 2,
        (("class", "soft"), ("customer", "kibamail.com"), ("reason", "mailbox-full")): 1,
        (("class", "complaint"), ("customer", "shop.example"), ("reason", "abuse")): 1,
        (("class", "complaint"), ("customer", "shop.example"), ("reason", "other")): 1,
        (("class", "hard"), ("customer", "none"), ("reason", "bad-mailbox")): 1,
        (("class", "soft"), ("customer", "other"), ("reason", "other")): 1,
        (("class", "delay"), ("customer", "kibamail.com"), ("reason", "delayed")): 1,
    }
    # The configured customers' other series are there at 0 (every class and reason).
    assert set(values(parsed, "kb_bounce_events_total")) - set(counted) == configured_zero_series() - set(counted)
    assert parsed["kb_bounce_events_total"]["type"] == "counter"
    assert values(parsed, "kb_bounce_messages_total") == {
        (("kind", "report"),): 3, (("kind", "ignored"),): 1, (("kind", "unparseable"),): 1}
    single = {name: list(f["samples"].values())[0] for name, f in parsed.items() if len(f["samples"]) == 1}
    assert abs(single.pop("kb_bounce_store_created_timestamp_seconds") - time.time()) < 60  # created by this test
    assert single == {
        "kb_bounce_webhook_backlog_events": 6,  # 8 events, 2 delivered
        "kb_bounce_webhook_failing_events": 1,
        "kb_bounce_webhook_oldest_undelivered_age_seconds": 600,
        "kb_bounce_webhook_last_success_timestamp_seconds": NOW - 300,
        "kb_bounce_store_up": 1,
        "kb_bounce_quarantine_messages": 2,
        "kb_bounce_backup_last_success_timestamp_seconds": NOW - 3600,
        "kb_bounce_backup_copies": 1,
        "kb_bounce_metrics_generated_timestamp_seconds": NOW,
    }
    assert all(f["type"] == "gauge" for name, f in parsed.items() if name in single)


def configured_zero_series():
    """The event series of the customers configured in the config fixture."""
    return {(("class", klass), ("customer", customer), ("reason", reason))
            for customer in ("kibamail.com", "shop.example")
            for klass, reasons in metrics.CLASS_REASONS.items() for reason in reasons}


def test_metrics_of_an_empty_and_of_an_unreadable_store(config, tmp_path):
    parsed = parse_exposition(metrics.text(config, str(tmp_path / "backups"), now=NOW))
    # Before its first event, each configured customer has every series at 0, so Prometheus'
    # increase() counts that first event; the backup alert starts from the store's creation.
    assert values(parsed, "kb_bounce_events_total") == dict.fromkeys(configured_zero_series(), 0)
    assert abs(list(parsed["kb_bounce_store_created_timestamp_seconds"]["samples"].values())[0] - time.time()) < 60
    assert list(parsed["kb_bounce_webhook_oldest_undelivered_age_seconds"]["samples"].values()) == [0]
    assert list(parsed["kb_bounce_webhook_last_success_timestamp_seconds"]["samples"].values()) == [0]
    assert list(parsed["kb_bounce_backup_last_success_timestamp_seconds"]["samples"].values()) == [0]
    config.database = str(tmp_path / "missing" / "events.sqlite3")
    parsed = parse_exposition(metrics.text(config, now=NOW))
    assert list(parsed["kb_bounce_store_up"]["samples"].values()) == [0]
    assert "kb_bounce_webhook_backlog_events" not in parsed
    assert "kb_bounce_backup_copies" not in parsed  # no backup directory given


def test_class_reasons_hold_every_verdict_of_the_classifier():
    """The zero series are what classify can say: every enhanced code and every text rule, as a
    permanent and as a temporary failure, and a delay; a complaint's reasons are its own list."""
    texts = [""] + [pattern.pattern.replace("\\", "") for pattern, reason in classify.TEXT_RULES if reason]
    codes = list(classify.STATUS_REASONS) + ["5.%d.99" % n for n in range(8)] + ["4.%d.99" % n for n in range(8)] + [None]
    verdicts = {(v.klass, v.reason) for code in codes for text in texts for smtp in (550, 450, None)
                for v in [classify.classify(code, smtp, text)]}
    verdicts.add((classify.classify("4.4.1", 450, "", "delayed").klass, "delayed"))
    # Exactly: no zero series for a pair that never happens, none missing for one that does.
    assert verdicts == {(klass, reason) for klass, reasons in metrics.CLASS_REASONS.items() for reason in reasons
                        if klass != classify.COMPLAINT}
    assert metrics.CLASS_REASONS[classify.COMPLAINT] == classify.COMPLAINT_REASONS


def test_store_remembers_when_it_was_created(tmp_path):
    path = str(tmp_path / "events.sqlite3")
    before = time.time()
    db = storemod.Store(path)
    created = db.created_at()
    add(db, "m1", [event("a@x.example")], now=NOW)
    db.close()
    assert before <= created <= time.time()
    db = storemod.Store(path)
    try:
        assert db.created_at() == created  # reopened: unchanged
    finally:
        db.close()


def test_a_store_older_than_the_record_dates_from_its_oldest_message(tmp_path):
    """A store made before the created_at record: its oldest message is its start, so a host
    whose copies stopped long ago still alerts after the upgrade."""
    path = str(tmp_path / "events.sqlite3")
    db = storemod.Store(path)
    add(db, "m1", [event("a@x.example")], now=NOW - 7200)
    add(db, "m2", [event("b@x.example")], now=NOW)
    db.conn.execute("DROP TABLE meta")
    db.close()
    db = storemod.Store(path)
    try:
        assert db.created_at() == NOW - 7200
    finally:
        db.close()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) not installed")
def test_promtool_accepts_the_metrics(config):
    db = storemod.Store(config.database)
    add(db, "m1", [event("a@x.example"), event("b@x.example", "complaint", "abuse")])
    db.close()
    proc = subprocess.run(["promtool", "check", "metrics"], input=metrics.text(config).encode(), capture_output=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_metrics_command_writes_the_file_atomically(config_file, tmp_path):
    out = tmp_path / "textfile"
    out.mkdir()
    path = str(out / "kb_bounce.prom")
    assert cli.main(["--config", config_file(), "metrics", "--output", path]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # node exporter reads it as another user
    assert os.listdir(str(out)) == ["kb_bounce.prom"]  # no temporary file left
    assert "kb_bounce_store_up" in parse_exposition(open(path, encoding="utf-8").read())
    assert cli.main(["--config", config_file(), "metrics", "--output", str(tmp_path / "nodir" / "x.prom")]) == 75


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_root_reads_the_store_as_its_owner_and_writes_the_file_itself(config_file):
    base = tempfile.mkdtemp(prefix="kb-bounce-metrics-")  # traversable by the owner, unlike pytest's tmp
    try:
        os.chmod(base, 0o755)
        store_dir, textfile = os.path.join(base, "store"), os.path.join(base, "textfile")
        os.mkdir(store_dir, 0o750)
        os.mkdir(textfile, 0o755)  # root's: the store's owner cannot write here
        os.chown(store_dir, 65534, 65534)
        cfg = config_file(database=os.path.join(store_dir, "events.sqlite3"), quarantine_dir=store_dir)
        os.chmod(cfg, 0o644)
        assert cli.main(["--config", cfg, "metrics", "--output", os.path.join(textfile, "kb_bounce.prom")]) == 0
        body = open(os.path.join(textfile, "kb_bounce.prom"), encoding="utf-8").read()
        assert list(parse_exposition(body)["kb_bounce_store_up"]["samples"].values()) == [1]
        owners = {name: os.stat(os.path.join(store_dir, name)).st_uid for name in os.listdir(store_dir)}
        assert "events.sqlite3" in owners and set(owners.values()) == {65534}, owners
    finally:
        shutil.rmtree(base)


# ---- backups -----------------------------------------------------------------------------------

def test_backup_while_the_processor_writes_is_consistent(tmp_path):
    database = str(tmp_path / "events.sqlite3")
    backups = tmp_path / "backups"
    backups.mkdir()
    storemod.Store(database).close()
    writer = Writer(database, "w")
    writer.start()
    try:
        taken = []
        for second in range(3):
            while writer.written < 50 * (second + 1):
                time.sleep(0.01)
            taken.append(backupmod.take(database, str(backups), now=NOW + second))
    finally:
        writer.stop.set()
        writer.join()
    counts = []
    for path in taken:
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            events, messages = (conn.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0] for t in ("events", "messages"))
        finally:
            conn.close()
        assert events == 2 * messages  # a message's events are all in the copy or none
        counts.append(messages)
    assert 50 <= counts[0] < counts[1] < counts[2] <= writer.written
    assert sorted(os.listdir(str(backups))) == [os.path.basename(p) for p in taken]


def test_prune_keeps_recent_copies_and_always_the_newest(tmp_path):
    database = str(tmp_path / "events.sqlite3")
    storemod.Store(database).close()
    directory = str(tmp_path)
    old = [backupmod.take(database, directory, now=NOW - days * 86400) for days in (10, 9, 3)]
    stale = os.path.join(directory, ".events-x.sqlite3.tmp.1")
    open(stale, "w").close()
    os.utime(stale, (NOW - 2 * 86400, NOW - 2 * 86400))
    assert sorted(backupmod.prune(directory, 7, now=NOW)) == sorted(old[:2] + [stale])
    assert backupmod.prune(directory, 1, now=NOW) == []  # the newest stays, however old
    assert [copy[1] for copy in backupmod.copies(directory)] == old[2:]


def test_backup_command(config_file, tmp_path):
    cfg = config_file()
    storemod.Store(configmod.load(cfg).database).close()
    with pytest.raises(SystemExit):
        cli.main(["--config", cfg, "backup"])
    assert cli.main(["--config", cfg, "backup", "--dir", str(tmp_path), "--keep-days", "0"]) == 64
    assert cli.main(["--config", cfg, "backup", "--dir", str(tmp_path / "absent")]) == 75
    assert cli.main(["--config", cfg, "backup", "--dir", str(tmp_path)]) == 0
    assert len(backupmod.copies(str(tmp_path))) == 1


# ---- restore -----------------------------------------------------------------------------------

def test_backup_while_writing_loss_and_restore_deliver_each_undelivered_event_once(config_file, tmp_path, hook):
    """The issue's proof: events stored, backup taken while the processor writes, database deleted,
    restore: every event present once, undelivered ones delivered once."""
    cfg = configmod.load(config_file(webhook_url=hook.url))
    db = storemod.Store(cfg.database)
    for n in range(10):
        add(db, "early-%d" % n, [event("early-%d@x.example" % n)])
    db.close()
    assert cli.one_pass(cfg).delivered == 10  # delivered before the copy: never sent again
    writer = Writer(cfg.database, "late")
    writer.start()
    try:
        while writer.written < 20:
            time.sleep(0.01)
        copy = backupmod.take(cfg.database, str(tmp_path), now=NOW)
        while writer.written < 40:  # the processor goes on after the copy
            time.sleep(0.01)
    finally:
        writer.stop.set()
        writer.join()
    in_copy = all_ids(copy)
    assert len(in_copy) >= 50
    for path in glob.glob(cfg.database + "*"):  # the disk is lost
        os.unlink(path)

    assert cli.main(["--config", cfg_path(cfg, tmp_path), "restore", copy]) == 0
    restored = all_ids(cfg.database)
    assert sorted(restored) == sorted(in_copy)  # every event of the copy, once (id is the key)
    undelivered_in_copy = set(in_copy) - set(hook.ids())
    assert len(undelivered_in_copy) == len(in_copy) - 10

    while cli.one_pass(cfg).delivered:
        pass
    sent_after_restore = hook.ids()[10:]
    assert sorted(sent_after_restore) == sorted(undelivered_in_copy)  # each once, none of the ten again
    assert all(json.loads(body)["id"] == headers["Idempotency-Key"] for headers, body in hook.received)

    # Restoring the same copy again changes nothing and sends nothing.
    assert cli.main(["--config", cfg_path(cfg, tmp_path), "restore", copy]) == 0
    assert sorted(all_ids(cfg.database)) == sorted(in_copy)
    assert cli.one_pass(cfg).delivered == 0 and len(hook.ids()) == len(in_copy)


def cfg_path(cfg, tmp_path):
    """The settings file of a loaded configuration, written again (restore runs through the command)."""
    path = tmp_path / "restore-config.json"
    path.write_text(json.dumps({"database": cfg.database, "quarantine_dir": cfg.quarantine_dir,
                                "webhook_url": cfg.webhook_url, "webhook_secret": cfg.webhook_secret}))
    return str(path)


def test_restore_into_a_living_database_keeps_its_newer_knowledge(config_file, tmp_path, hook):
    cfg = configmod.load(config_file(webhook_url=hook.url))
    db = storemod.Store(cfg.database)
    before = add(db, "before", [event("a@x.example"), event("b@x.example")])
    db.close()
    copy = backupmod.take(cfg.database, str(tmp_path), now=NOW)
    db = storemod.Store(cfg.database)
    after = add(db, "after", [event("c@x.example")])
    db.close()
    assert cli.one_pass(cfg).delivered == 3  # delivered after the copy was taken

    result = backupmod.restore(copy, cfg.database)
    assert (result.in_copy, result.added, result.already_present, result.marked_delivered) == (2, 0, 2, 0)
    assert sorted(all_ids(cfg.database)) == sorted(before + after)
    assert cli.one_pass(cfg).delivered == 0 and len(hook.ids()) == 3  # nothing re-sent


def test_restore_adds_what_is_missing_and_takes_deliveries_the_copy_knows(tmp_path):
    database, saved = str(tmp_path / "events.sqlite3"), str(tmp_path / "saved.sqlite3")
    db = storemod.Store(saved)
    known = add(db, "m1", [event("a@x.example"), event("b@x.example")])
    db.mark_delivered(known[0], NOW)
    db.close()
    db = storemod.Store(database)  # a new database that got the first message again
    add(db, "m1", [event("a@x.example"), event("b@x.example")])
    db.close()
    db = storemod.Store(saved)
    lost = add(db, "m2", [event("c@x.example")])
    db.mark_failed(lost[0], "HTTP 503", NOW + 3600)
    db.close()

    result = backupmod.restore(saved, database, now=NOW)
    assert (result.added, result.added_undelivered, result.already_present, result.marked_delivered) == (1, 1, 2, 1)
    db = storemod.Store(database)
    try:
        assert db.get(known[0]).delivered_at == NOW and db.get(known[1]).delivered_at is None
        restored = db.get(lost[0])
        assert restored.next_attempt_at == NOW and restored.attempts == 1  # due at once, history kept
        assert [e.id for e in db.due(NOW)] == sorted([known[1], lost[0]], key=lambda i: (db.get(i).received_at, i))
    finally:
        db.close()


def test_restore_refuses_what_is_not_a_copy(config_file, tmp_path):
    cfg = config_file()
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database" * 100)
    assert cli.main(["--config", cfg, "restore", str(junk)]) == 64
    assert cli.main(["--config", cfg, "restore", str(tmp_path / "absent")]) == 64
    other = sqlite3.connect(str(tmp_path / "other.sqlite3"))
    other.execute("CREATE TABLE t (x)")
    other.close()
    assert cli.main(["--config", cfg, "restore", str(tmp_path / "other.sqlite3")]) == 64
