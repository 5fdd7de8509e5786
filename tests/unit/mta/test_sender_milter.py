# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kibamail-sender-milter (roles/mta/files): a login sends only with From and Sender in its domains."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "mta" / "files" / "kibamail_sender_milter.py"


def _load():
    loader = importlib.machinery.SourceFileLoader("kibamail_sender_milter", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module
    loader.exec_module(module)
    return module


milter = _load()

LOGINS = {"support@kibamail.com": ["kibamail.com"], "news@kibamail.com": ["kibamail.com"],
          "ops@two.example": ["one.example", "two.example"]}


def decide(from_value=None, sender=None, login="support@kibamail.com", extra=()):
    headers = [("Subject", "hello")]
    if from_value is not None:
        headers.append(("From", from_value))
    if sender is not None:
        headers.append(("Sender", sender))
    headers.extend(extra)
    return milter.decide(login, headers, LOGINS)


@pytest.mark.parametrize("value", [
    "support@kibamail.com",
    "Kibamail Support <support@kibamail.com>",
    "Support <SUPPORT@KibaMail.COM>",              # domains compare case-insensitively
    '"Kibamail, Support" <support@kibamail.com>',
    "=?utf-8?b?S2liYW1haWw=?= <news@kibamail.com>",  # an encoded display name without an address
    "Kibamail\r\n Support <support@kibamail.com>",    # folded
    '"support@kibamail.com" <support@kibamail.com>',  # an address in the display name of the own domain
])
def test_a_from_in_the_logins_domain_passes(value):
    assert decide(value) is None


@pytest.mark.parametrize("value, reason", [
    ("ceo@bank.example", "From header domain bank.example is not one support@kibamail.com may send as (kibamail.com)"),
    ('"support@kibamail.com" <x@bank.example>', "From header domain bank.example is not one"),
    ('"ceo@bank.example" <support@kibamail.com>', "From header also names an address in bank.example"),
    ("=?utf-8?q?ceo=40bank.example?= <support@kibamail.com>", "From header also names an address in bank.example"),
    ("support@kibamail.com (ceo@bank.example)", "From header also names an address in bank.example"),
    ("x@bank.example <support@kibamail.com>", "is not a valid address list"),
    ("support@kibamail.com.evil.example", "domain kibamail.com.evil.example is not one"),
    ("support@kibamai1.com", "domain kibamai1.com is not one"),
    ("support@kibamaіl.com", "domain kibama?l.com is not one"),   # Cyrillic i, echoed as ?
    ("support@mail.kibamail.com", "domain mail.kibamail.com is not one"),  # a subdomain is not the domain
    ("support@kibamail.com.", "is not a valid address list"),
    ("a@kibamail.com, b@kibamail.com", "From header has 2 addresses: use exactly one"),
    ("a@kibamail.com, ceo@bank.example", "From header has 2 addresses"),
    ("undisclosed-recipients:;", "From header has 0 addresses"),
    ("<>", "is not a valid address list"),
    ("support", "is not a valid address list"),
])
def test_a_from_outside_the_logins_domains_is_refused_with_5_7_1(value, reason):
    refusal = decide(value)
    assert refusal is not None
    assert refusal.status == "5.7.1"
    assert reason in refusal.text
    assert "%" not in refusal.text and all(32 <= ord(c) < 127 for c in refusal.text)


def test_no_from_is_refused():
    refusal = decide(None)
    assert refusal.status == "5.7.1"
    assert refusal.text == "message has no From header: set From to an address of kibamail.com"


def test_two_from_fields_are_refused():
    refusal = decide("support@kibamail.com", extra=[("from", "support@kibamail.com")])
    assert refusal.text == "message has 2 From header fields: use exactly one"


@pytest.mark.parametrize("sender, reason", [
    ("x@bank.example", "Sender header domain bank.example is not one"),
    ('"support@kibamail.com" <x@bank.example>', "Sender header domain bank.example is not one"),
    ("a@kibamail.com, b@kibamail.com", "Sender header has 2 addresses"),
])
def test_a_sender_outside_the_logins_domains_is_refused(sender, reason):
    refusal = decide("support@kibamail.com", sender)
    assert refusal.status == "5.7.1" and reason in refusal.text


def test_two_sender_fields_are_refused():
    refusal = decide("support@kibamail.com", "news@kibamail.com", extra=[("SENDER", "news@kibamail.com")])
    assert refusal.text == "message has 2 Sender header fields: use exactly one"


def test_a_sender_in_the_domain_passes():
    assert decide("Newsletter <news@kibamail.com>", "support@kibamail.com") is None


def test_a_login_with_several_domains_may_use_each_and_no_other():
    assert decide("ops@one.example", login="ops@two.example") is None
    assert decide("ops@two.example", login="OPS@two.example") is None
    assert "is not one ops@two.example may send as (one.example, two.example)" in decide(
        "ops@three.example", login="ops@two.example").text


def test_a_login_missing_from_the_map_sends_nothing():
    refusal = decide("support@kibamail.com", login="intruder@kibamail.com")
    assert refusal.text == "login intruder@kibamail.com may send as no domain through this server"


def test_mail_without_authentication_is_not_the_milters_business():
    # Bounces to the bounce domain come in unauthenticated (and on a listener without milters).
    assert decide("MAILER-DAEMON@mx.recipient.example", login="") is None
    assert decide(None, login="") is None


def test_an_attacker_controlled_value_is_echoed_safely():
    refusal = decide("x@bank%n.example\x07")
    assert "%" not in refusal.text and "\x07" not in refusal.text


# ---------------------------------------------------------------- the login map


def test_the_login_map_is_validated():
    assert milter.parse_map('{"a@kibamail.com": ["kibamail.com", "kibamail.com"]}') == {"a@kibamail.com": ["kibamail.com"]}
    for bad, message in [
        ("[]", "must be a JSON object"),
        ('{"A@kibamail.com": ["kibamail.com"]}', "lower-case"),
        ('{"a@kibamail.com": []}', "non-empty list"),
        ('{"a@kibamail.com": ["Kibamail.com"]}', "not a lower-case domain name"),
        ('{"a@kibamail.com": ["kibamail..com"]}', "not a lower-case domain name"),
    ]:
        with pytest.raises(ValueError, match=message):
            milter.parse_map(bad)


def test_check_command_accepts_a_good_map_and_refuses_a_bad_one(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(LOGINS))
    assert milter.main(["check", str(good)]) == 0
    assert "3 logins" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text('{"a@kibamail.com": "kibamail.com"}')
    assert milter.main(["check", str(bad)]) == 1
    assert "non-empty list" in capsys.readouterr().err


def test_the_map_is_read_again_when_it_changes_and_a_broken_one_is_ignored(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"a@kibamail.com": ["kibamail.com"]}))
    logins = milter.LoginMap(str(path))
    assert logins.current() == {"a@kibamail.com": ["kibamail.com"]}
    path.write_text(json.dumps({"b@kibamail.com": ["kibamail.com"], "c@x.example": ["x.example"]}))
    os.utime(path, ns=(1, 1))
    assert sorted(logins.current()) == ["b@kibamail.com", "c@x.example"]
    path.write_text("{not json")
    os.utime(path, ns=(2, 2))
    assert sorted(logins.current()) == ["b@kibamail.com", "c@x.example"]


# ---------------------------------------------------------------- the pymilter glue

SYSTEM_PYTHON = "/usr/bin/python3"
GLUE = r'''
import importlib.machinery, importlib.util, json, sys
import Milter
from Milter.testctx import TestCtx
loader = importlib.machinery.SourceFileLoader("kibamail_sender_milter", sys.argv[1])
spec = importlib.util.spec_from_loader(loader.name, loader)
module = importlib.util.module_from_spec(spec)
sys.modules[loader.name] = module
loader.exec_module(module)
Milter.factory = module.milter_class(Milter, module.LoginMap(sys.argv[2]))
out = []
for login, value in json.loads(sys.argv[3]):
    ctx = TestCtx(logfile="/dev/null")
    ctx._setsymval("{auth_authen}", login)
    ctx._connect()
    ctx._envfrom("<%s>" % login)
    ctx._header("From", value)
    rc = ctx._eoh()
    out.append({"accept": rc == Milter.ACCEPT, "reject": rc == Milter.REJECT, "reply": ctx._reply,
                "no_body": bool(ctx._protocol & Milter.P_NOBODY)})
print(json.dumps(out))
'''


def _system_pymilter() -> bool:
    import subprocess  # pylint: disable=import-outside-toplevel
    return os.path.exists(SYSTEM_PYTHON) and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import Milter.testctx"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _system_pymilter(), reason="Debian's python3-milter is not installed on this machine")
def test_the_milter_asks_postfix_for_the_login_and_replies_550_5_7_1(tmp_path):
    import subprocess  # pylint: disable=import-outside-toplevel
    path = tmp_path / "map.json"
    path.write_text(json.dumps(LOGINS))
    cases = [["support@kibamail.com", "support@kibamail.com"],
             ["support@kibamail.com", '"support@kibamail.com" <x@bank.example>'],
             ["", "x@bank.example"]]
    run = subprocess.run([SYSTEM_PYTHON, "-c", GLUE, str(SCRIPT), str(path), json.dumps(cases)],
                         capture_output=True, text=True, check=True)
    ok, refused, unauthenticated = json.loads(run.stdout)
    assert ok["accept"] and ok["reply"] is None and ok["no_body"]
    assert refused["reject"]
    assert refused["reply"] == ["550", "5.7.1", "From header domain bank.example is not one support@kibamail.com "
                                "may send as (kibamail.com)"]
    assert unauthenticated["accept"]
