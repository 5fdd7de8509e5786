# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Hetzner provider against the Cloud DNS API stand-in: the request sequence, call by call."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ansible_collections.kibamail.email_platform.plugins.module_utils import dns_records as R
from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_provider_hetzner import (
    HetznerProvider,
    HetznerSettings,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "standins"))
from cloud_dns_api import CloudDnsStandin  # noqa: E402

ZONE = "kbmta.net"
TOKEN = "test-token"
DKIM = "v=DKIM1; k=rsa; p=" + "M" * 392


@pytest.fixture
def standin():
    server = CloudDnsStandin(TOKEN, action_polls=2).start()
    server.state.add_zone(ZONE)
    yield server
    server.stop()


def provider(standin, token=TOKEN):
    return HetznerProvider(HetznerSettings(token, standin.url, poll_interval=0), sleep=lambda seconds: None)


def calls(standin):
    return [(r["method"], r["path"]) for r in standin.requests]


def run(standin, records, check_mode=False, **kwargs):
    request = R.ZoneRequest(ZONE, records, **kwargs)
    return R.reconcile(provider(standin), request, check_mode)


RECORDS = [
    {"name": "spf.kbmta.net", "type": "TXT", "values": ["v=spf1 ip4:192.0.2.0/24 -all"]},
    {"name": "kb1._domainkey", "type": "TXT", "values": [DKIM]},
    {"name": "smtp", "type": "A", "ttl": 300, "values": ["192.0.2.10"]},
]


def test_first_run_reads_once_creates_and_waits_for_actions_together(standin):
    result = run(standin, RECORDS)
    assert result["summary"]["create"] == 4
    assert calls(standin) == [
        ("GET", "/v1/zones/kbmta.net/rrsets"),
        ("POST", "/v1/zones/kbmta.net/rrsets"),
        ("POST", "/v1/zones/kbmta.net/rrsets"),
        ("POST", "/v1/zones/kbmta.net/rrsets"),
        ("POST", "/v1/zones/kbmta.net/rrsets"),
        ("GET", "/v1/actions"),
        ("GET", "/v1/actions"),
    ]
    waits = [r for r in standin.requests if r["path"] == "/v1/actions"]
    assert len(waits[0]["query"]["id"]) == 4


def test_long_txt_is_sent_as_quoted_255_byte_strings(standin):
    run(standin, RECORDS)
    stored = standin.state.zones[1].rrsets[("kb1._domainkey", "TXT")]["records"][0]["value"]
    strings = R.parse_txt_strings(stored)
    assert [len(s) for s in strings] == [255, len(DKIM) - 255]
    assert R.join_txt(strings) == DKIM


def test_second_run_only_reads(standin):
    run(standin, RECORDS)
    standin.state.requests.clear()
    result = run(standin, RECORDS)
    assert result["changed"] is False
    assert calls(standin) == [("GET", "/v1/zones/kbmta.net/rrsets")]
    assert standin.requests[0]["query"]["per_page"] == ["100"]


def test_the_zone_is_read_only_for_a_record_set_that_inherits_its_ttl(standin):
    zone = standin.state.zones[1]
    zone.ttl = 7200
    zone.rrsets[("www", "A")] = standin.state._rrset_json(zone, "www", "A", None, ["192.0.2.7"])
    result = run(standin, [{"name": "www", "type": "A", "ttl": 7200, "values": ["192.0.2.7"]}], prune="none")
    assert result["changes"][0]["name"] == "_kibamail-owned.kbmta.net"
    assert len(result["changes"]) == 1
    assert ("GET", "/v1/zones/kbmta.net") in calls(standin)


def test_many_record_sets_are_read_100_per_page(standin):
    zone = standin.state.zones[1]
    for index in range(150):
        zone.rrsets[("h%d" % index, "A")] = standin.state._rrset_json(zone, "h%d" % index, "A", 300, ["192.0.2.1"])
    assert len(provider(standin).read(ZONE)) == 152
    assert calls(standin) == [("GET", "/v1/zones/kbmta.net/rrsets")] * 2


def test_check_mode_writes_nothing(standin):
    result = run(standin, RECORDS, check_mode=True)
    assert result["changed"] is True
    assert all(method == "GET" for method, path in calls(standin))
    assert set(standin.state.zones[1].rrsets) == {("@", "SOA"), ("@", "NS")}


def test_update_uses_set_records_and_change_ttl_and_prune_deletes_first(standin):
    run(standin, RECORDS)
    standin.state.requests.clear()
    changed = [
        {"name": "spf.kbmta.net", "type": "TXT", "values": ["v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 -all"]},
        {"name": "smtp", "type": "A", "ttl": 600, "values": ["192.0.2.10"]},
    ]
    result = run(standin, changed)
    assert sorted((c["action"], c["name"]) for c in result["changes"]) == [
        ("delete", "kb1._domainkey.kbmta.net"), ("update", "_kibamail-owned.kbmta.net"),
        ("update", "smtp.kbmta.net"), ("update", "spf.kbmta.net")]
    sequence = calls(standin)
    assert sequence[:4] == [
        ("GET", "/v1/zones/kbmta.net/rrsets"),
        ("DELETE", "/v1/zones/kbmta.net/rrsets/kb1._domainkey/TXT"), ("GET", "/v1/actions"), ("GET", "/v1/actions")]
    assert [c[0] for c in sequence[4:]] == ["POST"] * 3 + ["GET"] * 2  # three writes, their actions polled together
    writes = [c for c in sequence[4:] if c[0] == "POST"]
    assert ("POST", "/v1/zones/kbmta.net/rrsets/smtp/A/actions/change_ttl") in writes
    assert ("POST", "/v1/zones/kbmta.net/rrsets/spf/TXT/actions/set_records") in writes
    assert ("POST", "/v1/zones/kbmta.net/rrsets/smtp/A/actions/set_records") not in writes
    assert standin.state.zones[1].rrsets[("smtp", "A")]["ttl"] == 600


def test_actions_are_polled_25_at_a_time(standin):
    records = [{"name": "h%d" % i, "type": "A", "values": ["192.0.2.%d" % i]} for i in range(1, 40)]
    run(standin, records)
    waits = [r["query"]["id"] for r in standin.requests if r["path"] == "/v1/actions"]
    assert [len(ids) for ids in waits[:2]] == [25, 15]


def test_actions_are_read_before_the_first_sleep(standin):
    """Two status reads per action in the stand-in: look, sleep once, look again, done."""
    slept = []
    request = R.ZoneRequest(ZONE, RECORDS[:1])
    R.reconcile(HetznerProvider(HetznerSettings(TOKEN, standin.url, poll_interval=0.5), sleep=slept.append),
                request, False)
    assert slept == [0.5]


def test_actions_done_at_once_need_no_sleep():
    server = CloudDnsStandin(TOKEN, action_polls=1).start()
    try:
        server.state.add_zone(ZONE)
        slept = []
        R.reconcile(HetznerProvider(HetznerSettings(TOKEN, server.url, poll_interval=0.5), sleep=slept.append),
                    R.ZoneRequest(ZONE, RECORDS), False)
        assert slept == []
        assert [r["path"] for r in server.requests].count("/v1/actions") == 1
    finally:
        server.stop()


def test_bad_token_is_a_clear_error(standin):
    with pytest.raises(R.ProviderError, match="refused the token: set hcloud_token"):
        provider(standin, token="wrong").read(ZONE)


def test_missing_zone_is_a_clear_error(standin):
    with pytest.raises(R.ProviderError, match="zone nope.example does not exist"):
        provider(standin).read("nope.example")


def test_rate_limit_is_retried_by_the_client(standin):
    standin.state.rate_limit_next = 1
    rrsets = provider(standin).read(ZONE)
    assert [r.type for r in rrsets] == ["NS", "SOA"]
    assert calls(standin) == [("GET", "/v1/zones/kbmta.net/rrsets")] * 2


def test_unreachable_endpoint_is_a_clear_error():
    gone = HetznerProvider(HetznerSettings(TOKEN, "http://127.0.0.1:9/v1"), sleep=lambda seconds: None)
    with pytest.raises(R.ProviderError, match="cannot reach the Hetzner Cloud API"):
        gone.read(ZONE)
