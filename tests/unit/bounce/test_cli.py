# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kb-bounce command as Postfix and an operator use it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from kb_bounce import cli, config as configmod, parse, store as storemod

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "bounce_corpus")
FILES = os.path.join(ROOT, "roles", "bounce_inbound", "files")

VERP = "bounces+alice=recipient.example@kb-bounces.kibamail.com"


def _corpus(name: str) -> bytes:
    with open(os.path.join(CORPUS, name), "rb") as handle:
        return handle.read()


def run(args, stdin=b"", env_extra=None):
    """Run the real entry point in a subprocess, message on stdin, as Postfix's pipe does."""
    env = dict(os.environ, PYTHONPATH=FILES, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "kb_bounce"] + args, input=stdin, capture_output=True,
                          env=env, timeout=60, check=False)


def test_ingest_stores_event_with_customer(config_file):
    cfg = config_file()
    proc = run(["--config", cfg, "ingest", "--recipient", VERP], _corpus("postfix-user-unknown.eml"))
    assert proc.returncode == 0, proc.stderr
    listed = run(["--config", cfg, "list", "--json"])
    rows = [json.loads(line) for line in listed.stdout.decode().splitlines()]
    assert len(rows) == 1
    payload = rows[0]["payload"]
    assert payload["recipient"] == "alice@recipient.example"
    assert payload["class"] == "hard" and payload["customer_domain"] == "kibamail.com"
    assert payload["id"] == rows[0]["id"] and rows[0]["delivered_at"] is None


def test_ingest_twice_stores_once(config_file):
    cfg = config_file()
    message = _corpus("postfix-user-unknown.eml")
    assert run(["--config", cfg, "ingest", "--recipient", VERP], message).returncode == 0
    assert run(["--config", cfg, "ingest", "--recipient", VERP], message).returncode == 0
    db = storemod.Store(configmod.load(cfg).database)
    assert db.counts()["events"] == 1


def test_unparseable_is_quarantined_not_dropped(config_file, tmp_path):
    cfg = config_file()
    raw = _corpus("human-reply.eml")
    proc = run(["--config", cfg, "ingest", "--recipient", VERP], raw)
    assert proc.returncode == 0
    kept = [n for n in os.listdir(tmp_path / "quarantine") if n.endswith(".eml")]
    assert len(kept) == 1
    assert (tmp_path / "quarantine" / kept[0]).read_bytes() == raw
    listing = run(["--config", cfg, "quarantine"]).stdout.decode()
    assert kept[0] in listing and "neither a delivery report" in listing


def test_oversized_message_is_quarantined(config_file, tmp_path):
    cfg = config_file(max_message_bytes=1000)
    proc = run(["--config", cfg, "ingest"], _corpus("postfix-user-unknown.eml"))
    assert proc.returncode == 0
    assert len([n for n in os.listdir(tmp_path / "quarantine") if n.endswith(".eml")]) == 1


def test_storage_failure_asks_postfix_to_retry(config_file, tmp_path):
    cfg = config_file(database=str(tmp_path / "missing-dir" / "events.sqlite3"))
    proc = run(["--config", cfg, "ingest", "--recipient", VERP], _corpus("postfix-user-unknown.eml"))
    assert proc.returncode == 75
    assert b"Postfix will retry" in proc.stderr


def test_quarantine_failure_asks_postfix_to_retry(config_file, tmp_path):
    cfg = config_file(quarantine_dir=str(tmp_path / "nowhere"))
    assert run(["--config", cfg, "ingest"], b"garbage").returncode == 75


def test_missing_config_is_a_temporary_failure_for_ingest(tmp_path):
    proc = run(["--config", str(tmp_path / "none.json"), "ingest"], b"x")
    assert proc.returncode == 75
    assert run(["--config", str(tmp_path / "none.json"), "list"]).returncode == 78


def test_unknown_setting_is_refused(config_file):
    with pytest.raises(configmod.ConfigError, match="unknown settings webhook_ulr"):
        configmod.load(config_file(webhook_ulr="http://x"))


def test_replay_delivers_undelivered(config_file, hook):
    down = config_file()
    assert run(["--config", down, "ingest", "--recipient", VERP], _corpus("postfix-user-unknown.eml")).returncode == 0
    assert run(["--config", down, "deliver"]).returncode == 0  # webhook unreachable: stays pending
    pending = run(["--config", down, "list", "--undelivered"]).stdout.decode()
    assert "pending(1)" in pending
    up = config_file(webhook_url=hook.url)
    proc = run(["--config", up, "replay"])
    assert proc.returncode == 0 and b"delivered 1" in proc.stdout
    assert len(hook.received) == 1
    assert run(["--config", up, "replay"]).stdout.startswith(b"replayed 0")
    assert len(hook.received) == 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096), st.one_of(st.none(), st.text(max_size=80)))
def test_parser_never_raises(raw, envelope):
    result = parse.parse(raw, envelope)
    assert result.kind in (parse.REPORT, parse.IGNORED, parse.UNPARSEABLE)


def test_many_parts_stay_bounded():
    parts = "--b\nContent-Type: text/plain\n\nx\n" * 5000
    raw = ("Content-Type: multipart/mixed; boundary=b\nSubject: Undelivered\n\n" + parts + "--b--\n").encode()
    assert parse.parse(raw, VERP).kind == parse.UNPARSEABLE


def test_event_payload_uses_envelope_domain_without_verp():
    event = parse.Event(type="bounce", klass="hard", reason="bad-mailbox", recipient="a@b.example",
                        recipient_source="dsn")
    data = cli.event_payload(event, "bounces@kb-bounces.customer.example", configmod.Config())
    assert data["return_path_domain"] == "kb-bounces.customer.example"
    assert data["customer_domain"] == "customer.example"
    assert data["class"] == "hard" and "klass" not in data


def test_customer_map_wins_over_the_label_rule():
    config = configmod.from_dict({"customers": {"Bounce.Customer.Example": "customer.example"}})
    event = parse.Event(type="bounce", klass="hard", reason="bad-mailbox", recipient="a@b.example",
                        recipient_source="return-path", return_path_domain="bounce.customer.example")
    assert cli.event_payload(event, None, config)["customer_domain"] == "customer.example"


def test_customer_map_must_be_strings():
    with pytest.raises(configmod.ConfigError, match="customers must map"):
        configmod.from_dict({"customers": {"a.example": 1}})


def test_wrapper_script_runs_the_package(tmp_path, files_dir, config_file):
    """The installed command is a sh wrapper; render it the way the role does and run it."""
    template = os.path.join(files_dir, "..", "templates", "kb-bounce.j2")
    with open(template, encoding="utf-8") as handle:
        text = handle.read()
    text = text.replace("{{ ansible_managed | comment }}", "# managed").replace(
        "{{ bounce_inbound_lib_dir | quote }}", files_dir)
    script = tmp_path / "kb-bounce"
    script.write_text(text, encoding="utf-8")
    script.chmod(0o755)
    proc = subprocess.run([str(script), "--config", config_file(), "check"], capture_output=True, check=False,
                          cwd=str(tmp_path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert b"configuration valid" in proc.stdout


def test_processor_defect_quarantines_instead_of_bouncing(config_file, tmp_path, monkeypatch):
    cfg = configmod.load(config_file())

    def broken(*args, **kwargs):
        raise RuntimeError("defect")

    monkeypatch.setattr(cli, "event_payload", broken)
    monkeypatch.setattr(cli, "read_stdin", lambda limit: _corpus("postfix-user-unknown.eml"))
    args = cli.build_parser().parse_args(["ingest", "--recipient", VERP])
    assert cli.cmd_ingest(args, cfg) == 0
    kept = [n for n in os.listdir(tmp_path / "quarantine") if n.endswith(".json")]
    assert len(kept) == 1
    assert "processor error" in (tmp_path / "quarantine" / kept[0]).read_text(encoding="utf-8")
