# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parser's accuracy on the corpus in tests/bounce_corpus (every message, every field)."""
from __future__ import annotations

import base64
import collections
import os

import pytest
import yaml

from kb_bounce import parse

CORPUS = os.path.join(os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")), "tests", "bounce_corpus")

with open(os.path.join(CORPUS, "expectations.yml"), encoding="utf-8") as _handle:
    EXPECTED = yaml.safe_load(_handle)["messages"]


def _load(name: str) -> bytes:
    with open(os.path.join(CORPUS, name), "rb") as handle:
        data = handle.read()
    return base64.b64decode(data) if name.endswith(".b64") else data


def test_every_message_has_an_expectation():
    on_disk = sorted(n for n in os.listdir(CORPUS) if n.endswith((".eml", ".eml.b64")))
    assert on_disk == sorted(m["file"] for m in EXPECTED)


def test_corpus_covers_every_outcome():
    kinds = collections.Counter(m["kind"] for m in EXPECTED)
    classes = collections.Counter(e["class"] for m in EXPECTED for e in m.get("events") or [])
    assert kinds["report"] >= 20 and kinds["ignored"] >= 3 and kinds["unparseable"] >= 5
    assert classes["hard"] >= 8 and classes["soft"] >= 5 and classes["complaint"] >= 3


@pytest.mark.parametrize("case", EXPECTED, ids=[m["file"] for m in EXPECTED])
def test_message(case):
    result = parse.parse(_load(case["file"]), case["envelope"])
    assert result.kind == case["kind"], result.reason
    got = [
        {"recipient": e.recipient, "type": e.type, "class": e.klass, "reason": e.reason,
         "status": e.status, "smtp_code": e.smtp_code}
        for e in result.events
    ]
    assert got == (case.get("events") or [])


def test_accuracy_on_the_whole_corpus():
    """The summary a reviewer reads: class and recipient right for every report."""
    right = total = 0
    for case in EXPECTED:
        result = parse.parse(_load(case["file"]), case["envelope"])
        for expected, event in zip(case.get("events") or [], result.events):
            total += 1
            right += int(event.klass == expected["class"] and event.recipient == expected["recipient"])
        total += abs(len(case.get("events") or []) - len(result.events))
    assert total > 0
    assert right / total == 1.0


def test_verp_recipient_wins_over_final_recipient():
    """postfix-alias-expanded: the DSN names the expanded address; the return path names ours."""
    result = parse.parse(_load("postfix-alias-expanded.eml"), "bounces+sales=corp.example@kb-bounces.kibamail.com")
    assert [e.recipient for e in result.events] == ["sales@corp.example"]
    assert result.events[0].return_path_domain == "kb-bounces.kibamail.com"


def test_without_envelope_the_attached_return_path_is_decoded():
    result = parse.parse(_load("postfix-user-unknown.eml"), None)
    assert result.events[0].recipient == "alice@recipient.example"
    assert result.events[0].recipient_source == "return-path"
    assert result.events[0].original_message_id == "<receipt-1042@kibamail.com>"


def test_non_utf8_message_really_is_not_utf8():
    raw = _load("hostile-non-utf8.eml.b64")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
