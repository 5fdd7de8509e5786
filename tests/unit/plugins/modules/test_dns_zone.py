# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dns_zone: arguments, check mode, diff mode and errors, against the Cloud DNS API stand-in."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.kibamail.email_platform.plugins.module_utils import dns_provider_hetzner
from ansible_collections.kibamail.email_platform.plugins.modules import dns_zone

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "standins"))
from cloud_dns_api import CloudDnsStandin  # noqa: E402

TOKEN = "module-token"
RECORDS = [
    {"name": "smtp.kbmta.net", "type": "A", "ttl": 300, "values": ["192.0.2.10"]},
    {"name": "spf.kbmta.net", "type": "TXT", "values": ["v=spf1 ip4:192.0.2.0/24 -all"]},
]


@pytest.fixture
def standin(monkeypatch):
    server = CloudDnsStandin(TOKEN, action_polls=0).start()
    server.state.add_zone("kbmta.net")
    monkeypatch.setattr(dns_provider_hetzner.time, "sleep", lambda seconds: None)
    yield server
    server.stop()


def run(capsys, args: Dict[str, Any], check: bool = False, diff: bool = False) -> Dict[str, Any]:
    full = dict(args)
    full["_ansible_check_mode"] = check
    full["_ansible_diff"] = diff
    with patch_module_args(full):
        with pytest.raises(SystemExit):
            dns_zone.main()
    return json.loads(capsys.readouterr().out)


def hetzner(standin, **extra):
    args = dict(zone="kbmta.net.", provider="hetzner", hcloud_token=TOKEN, hcloud_endpoint=standin.url,
                records=RECORDS)
    args.update(extra)
    return args


def test_check_mode_reports_changes_and_writes_nothing(standin, capsys):
    result = run(capsys, hetzner(standin), check=True, diff=True)
    assert result["changed"] is True
    assert result["zone"] == "kbmta.net"
    assert [(c["action"], c["name"], c["type"]) for c in result["changes"]] == [
        ("create", "_kibamail-owned.kbmta.net", "TXT"), ("create", "smtp.kbmta.net", "A"),
        ("create", "spf.kbmta.net", "TXT")]
    assert result["diff"][1] == {"before_header": "smtp.kbmta.net A", "after_header": "smtp.kbmta.net A",
                                 "before": "", "after": "smtp.kbmta.net. 300 IN A 192.0.2.10\n"}
    assert not any(r["method"] in ("POST", "DELETE") for r in standin.requests)


def test_apply_then_rerun_is_unchanged(standin, capsys):
    first = run(capsys, hetzner(standin))
    assert first["changed"] is True and "diff" not in first
    second = run(capsys, hetzner(standin, zone="KBMTA.NET"))
    assert second["changed"] is False
    assert second["summary"] == {"create": 0, "update": 0, "delete": 0, "unchanged": 3, "kept": 2}


def test_token_comes_from_the_environment(standin, capsys, monkeypatch):
    monkeypatch.setenv("HCLOUD_TOKEN", TOKEN)
    monkeypatch.setenv("HCLOUD_ENDPOINT", standin.url)
    args = hetzner(standin)
    del args["hcloud_token"], args["hcloud_endpoint"]
    assert run(capsys, args, check=True)["changed"] is True


def test_the_token_never_appears_in_the_output(standin, capsys):
    result = run(capsys, hetzner(standin, hcloud_token="wrong-secret-token"))
    assert result["failed"] is True
    assert "refused the token" in result["msg"]
    assert "wrong-secret-token" not in json.dumps(result)


def test_cname_conflict_fails_before_any_write(standin, capsys):
    records = [{"name": "x", "type": "CNAME", "values": ["smtp.kbmta.net."]},
               {"name": "x", "type": "TXT", "values": ["y"]}]
    result = run(capsys, hetzner(standin, records=records))
    assert result["failed"] is True
    assert "CNAME beside TXT" in result["msg"]
    assert standin.requests == []


@pytest.mark.parametrize("args,message", [
    (dict(zone="kbmta.net", provider="rfc2136"), "provider is rfc2136 but all of the following are missing: server"),
    (dict(zone="kbmta.net", provider="hetzner"), "hcloud_token"),
    (dict(zone="kbmta.net", provider="rfc2136", server="127.0.0.1", tsig_key_name="k"),
     "parameters are required together: tsig_key_name, tsig_key_secret"),
    (dict(zone="kbmta.net", provider="rfc2136", server="127.0.0.1", prune="some"), "prune"),
])
def test_argument_errors(capsys, monkeypatch, args, message):
    monkeypatch.delenv("HCLOUD_TOKEN", raising=False)
    result = run(capsys, args)
    assert result["failed"] is True
    assert message in result["msg"]
