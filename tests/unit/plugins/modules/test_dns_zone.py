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


# ---------------------------------------------------------------- many zones in one task

CUSTOMERS = ["c%d.example" % n for n in range(1, 7)]


def customer_records(zone: str, dmarc: str = "none") -> list:
    return [{"name": "_dmarc", "type": "TXT", "values": ["v=DMARC1; p=%s" % dmarc]},
            {"name": "kb-bounces", "type": "CNAME", "values": ["kb-bounces.kbmta.net."]}]


@pytest.fixture
def customers(standin):
    for zone in CUSTOMERS:
        standin.state.add_zone(zone)
    return standin


def many(standin, zones=None, **extra):
    args = dict(provider="hetzner", hcloud_token=TOKEN, hcloud_endpoint=standin.url,
                zones=[{"zone": zone, "records": customer_records(zone)} for zone in (zones or CUSTOMERS)])
    args.update(extra)
    return args


def writes(standin):
    return [r for r in standin.requests if r["method"] in ("POST", "DELETE")]


def test_many_zones_check_mode_reports_each_zone_and_writes_nothing(customers, capsys):
    result = run(capsys, many(customers), check=True, diff=True)
    assert result["changed"] is True
    assert [z["zone"] for z in result["zones"]] == CUSTOMERS
    assert all(z["changed"] and not z["failed"] and z["summary"]["create"] == 3 for z in result["zones"])
    first = result["zones"][0]["diff"]
    assert [d["after_header"] for d in first] == [
        "_dmarc.c1.example TXT", "_kibamail-owned.c1.example TXT", "kb-bounces.c1.example CNAME"]
    assert result["diff"] == [entry for zone in result["zones"] for entry in zone["diff"]]
    assert result["summary"] == {"create": 18, "update": 0, "delete": 0, "unchanged": 0, "kept": 12,
                                 "zones": 6, "changed_zones": 6, "failed_zones": 0}
    assert writes(customers) == []


def test_many_zones_publish_with_one_read_per_zone_and_one_write_per_record_set(customers, capsys):
    first = run(capsys, many(customers))
    assert first["changed"] is True and "diff" not in first and "diff" not in first["zones"][0]
    reads = [r for r in customers.requests if r["method"] == "GET" and r["path"].endswith("/rrsets")]
    assert sorted(r["path"] for r in reads) == sorted("/v1/zones/%s/rrsets" % zone for zone in CUSTOMERS)
    assert len(writes(customers)) == 3 * len(CUSTOMERS)
    polls = [r for r in customers.requests if r["path"] == "/v1/actions"]
    assert [len(p["query"]["id"]) for p in polls] == []  # action_polls=0: every action is done on return
    customers.state.requests.clear()

    again = run(capsys, many(customers))
    assert again["changed"] is False
    assert [z["changed"] for z in again["zones"]] == [False] * len(CUSTOMERS)
    assert [(r["method"], r["path"]) for r in sorted(customers.requests, key=lambda r: r["path"])] == [
        ("GET", "/v1/zones/%s/rrsets" % zone) for zone in CUSTOMERS]


def test_many_zones_actions_of_all_zones_are_polled_together(capsys, monkeypatch):
    server = CloudDnsStandin(TOKEN, action_polls=1).start()
    monkeypatch.setattr(dns_provider_hetzner.time, "sleep", lambda seconds: None)
    try:
        for zone in CUSTOMERS:
            server.state.add_zone(zone)
        run(capsys, many(server))
        polls = [len(r["query"]["id"]) for r in server.requests if r["path"] == "/v1/actions"]
        assert polls == [18]  # 18 actions of six zones in one status request
    finally:
        server.stop()


def test_many_zones_changed_is_per_zone(customers, capsys):
    run(capsys, many(customers))
    args = many(customers)
    args["zones"][2]["records"] = customer_records(CUSTOMERS[2], dmarc="reject")
    result = run(capsys, args, diff=True)
    assert result["changed"] is True
    assert [z["changed"] for z in result["zones"]] == [False, False, True, False, False, False]
    assert [d["after_header"] for d in result["diff"]] == ["_dmarc.c3.example TXT"]
    assert result["summary"]["changed_zones"] == 1


def test_many_zones_entries_override_the_task_values(customers, capsys):
    args = many(customers, zones=CUSTOMERS[:2], ttl=600)
    args["zones"][1]["ttl"] = 900
    args["zones"][1]["ownership_record"] = ""
    result = run(capsys, args)
    ttls = [{c["after"]["ttl"] for c in z["changes"]} for z in result["zones"]]
    assert ttls == [{600}, {900}]
    assert [z["summary"]["create"] for z in result["zones"]] == [3, 2]


def test_a_failing_zone_fails_alone_and_the_others_are_applied(customers, capsys):
    zones = CUSTOMERS[:2] + ["missing.example"] + CUSTOMERS[2:4]
    result = run(capsys, many(customers, zones=zones))
    assert result["failed"] is True and result["changed"] is True
    assert result["msg"].startswith("1 of 5 zones failed: zone missing.example: zone missing.example does not "
                                    "exist in the Hetzner Cloud project")
    assert "nothing was written to it. The other 4 zones were reconciled (4 changed)" in result["msg"]
    failed = result["zones"][2]
    assert failed == {"zone": "missing.example", "changed": False, "failed": True, "msg": failed["msg"]}
    assert [z["changed"] for z in result["zones"]] == [True, True, False, True, True]
    assert result["summary"]["failed_zones"] == 1
    assert ("_dmarc", "TXT") in customers.state.zone("c4.example").rrsets


def test_bad_input_in_one_zone_writes_nothing_and_names_the_zone(customers, capsys):
    args = many(customers)
    args["zones"][1]["records"] = [{"name": "x", "type": "A", "values": ["not-an-address"]}]
    args["zones"][4]["records"] = [{"name": "x", "type": "CNAME", "values": ["a.example."]},
                                   {"name": "x", "type": "TXT", "values": ["y"]}]
    result = run(capsys, args)
    assert result["failed"] is True
    assert result["msg"].startswith("2 of 6 zones cannot be published as given, so nothing was written: "
                                    "zone c2.example: A value 'not-an-address' is not an IP address; zone c5.example:")
    assert customers.requests == []


def test_a_zone_listed_twice_is_refused(customers, capsys):
    result = run(capsys, many(customers, zones=["c1.example", "C1.example."]))
    assert result["failed"] is True
    assert "zone C1.example.: listed twice (zones[0] and zones[1])" in result["msg"]


def test_concurrency_bounds_the_requests_in_flight(capsys, monkeypatch):
    server = CloudDnsStandin(TOKEN, action_polls=0, latency=0.05).start()
    try:
        for zone in CUSTOMERS:
            server.state.add_zone(zone)
        result = run(capsys, many(server, concurrency=3))
        assert result["summary"]["changed_zones"] == 6
        assert server.state.max_in_flight == 3
    finally:
        server.stop()


def test_many_zones_rate_limit_is_retried_by_the_client(customers, capsys):
    customers.state.rate_limit_next = 3
    result = run(capsys, many(customers))
    assert result["summary"]["changed_zones"] == 6 and result["summary"]["failed_zones"] == 0
    assert len(customers.requests) == 6 * 4 + 3


@pytest.mark.parametrize("extra,message", [
    (dict(zone="kbmta.net", zones=[]), "parameters are mutually exclusive: zone|zones"),
    (dict(), "one of the following is required: zone, zones"),
    (dict(zones=[{"zone": "kbmta.net"}], concurrency=0), "concurrency must be at least 1, not 0"),
    (dict(zones=[{"records": []}]), "missing required arguments: zone found in zones"),
])
def test_many_zones_argument_errors(capsys, extra, message):
    args = dict(provider="hetzner", hcloud_token=TOKEN, hcloud_endpoint="http://127.0.0.1:9/v1")
    args.update(extra)
    result = run(capsys, args)
    assert result["failed"] is True
    assert message in result["msg"]
