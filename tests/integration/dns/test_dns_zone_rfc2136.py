# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dns_zone over RFC 2136 against a real BIND on loopback, through ansible-playbook."""

from __future__ import annotations

import base64
import os

import dns.query
import dns.rcode
import dns.tsig
import dns.update

ZONE = "example.test"
DKIM = "v=DKIM1; k=rsa; p=" + base64.b64encode(os.urandom(294)).decode()
RECORDS = [
    {"name": "mx1.example.test", "type": "A", "ttl": 300, "values": ["192.0.2.2", "192.0.2.3"]},
    {"name": "bounces.example.test", "type": "MX", "values": ["10 mx1.example.test."]},
    {"name": "spf", "type": "TXT", "values": ["v=spf1 ip4:192.0.2.0/24 -all"]},
    {"name": "kb1._domainkey.example.test.", "type": "TXT", "ttl": 600, "values": [DKIM]},
    {"name": "rp.example.test", "type": "CNAME", "values": ["bounces.example.test"]},
]


def answer(bind, name, rtype):
    response = bind.query(name, rtype)
    if response.rcode() == dns.rcode.NXDOMAIN:
        return None
    assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())
    return response.answer[0] if response.answer else None


def texts(rrset):
    return sorted(rdata.to_text() for rdata in rrset)


def dns_zone_result(run):
    (result,) = run.task("Reconcile the zone")
    return result


def test_create_then_rerun_unchanged(bind, zone_run):
    first = zone_run(RECORDS)
    assert first.rc == 0, first.data
    assert dns_zone_result(first)["changed"] is True
    assert dns_zone_result(first)["summary"]["create"] == 6  # five record sets and the ownership record

    a = answer(bind, "mx1.example.test", "A")
    assert a.ttl == 300 and texts(a) == ["192.0.2.2", "192.0.2.3"]
    assert texts(answer(bind, "bounces.example.test", "MX")) == ["10 mx1.example.test."]
    assert texts(answer(bind, "rp.example.test", "CNAME")) == ["bounces.example.test."]
    assert texts(answer(bind, "_kibamail-owned.example.test", "TXT")) == [
        '"bounces MX;kb1._domainkey TXT;mx1 A;rp CNAME;spf TXT"']

    second = zone_run(RECORDS)
    assert second.rc == 0
    assert dns_zone_result(second)["changed"] is False
    assert second.stats["changed"] == 0


def test_long_txt_is_split_and_joined(bind, zone_run):
    zone_run(RECORDS)
    (rdata,) = list(answer(bind, "kb1._domainkey.example.test", "TXT"))
    assert [len(s) for s in rdata.strings] == [255, len(DKIM) - 255]
    assert b"".join(rdata.strings).decode() == DKIM
    assert dns_zone_result(zone_run(RECORDS))["changed"] is False


def test_change_value_and_ttl(bind, zone_run):
    zone_run(RECORDS)
    changed = [dict(r) for r in RECORDS]
    changed[0] = {"name": "mx1.example.test", "type": "A", "ttl": 900, "values": ["192.0.2.9"]}
    changed[2] = {"name": "spf", "type": "TXT", "values": ["v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 -all"]}
    result = dns_zone_result(zone_run(changed))
    assert sorted((c["action"], c["name"]) for c in result["changes"]) == [
        ("update", "mx1.example.test"), ("update", "spf.example.test")]
    a = answer(bind, "mx1.example.test", "A")
    assert a.ttl == 900 and texts(a) == ["192.0.2.9"]
    assert texts(answer(bind, "spf.example.test", "TXT")) == ['"v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 -all"']


def foreign_update(bind, name, value):
    update = dns.update.UpdateMessage(ZONE + ".")
    update.add(name, 300, "A", value)
    update.use_tsig(dns.tsig.Key(bind.key_name, bind.key_secret, "hmac-sha256"))
    assert dns.query.tcp(update, "127.0.0.1", port=bind.port, timeout=5).rcode() == dns.rcode.NOERROR


def test_prune_managed_removes_only_what_the_module_wrote(bind, zone_run):
    zone_run(RECORDS)
    foreign_update(bind, "foreign.example.test.", "192.0.2.77")
    fewer = [r for r in RECORDS if r["name"] != "spf"]
    result = dns_zone_result(zone_run(fewer))
    assert [(c["action"], c["name"]) for c in result["changes"] if c["action"] == "delete"] == [
        ("delete", "spf.example.test")]
    assert answer(bind, "spf.example.test", "TXT") is None
    assert texts(answer(bind, "foreign.example.test", "A")) == ["192.0.2.77"]
    assert {"name": "foreign.example.test", "type": "A"} in result["kept"]
    assert texts(answer(bind, "example.test", "NS")) == ["ns1.example.test."]


def test_prune_all_removes_foreign_data_but_not_soa_or_ns(bind, zone_run):
    zone_run(RECORDS)
    foreign_update(bind, "foreign.example.test.", "192.0.2.77")
    # The name server's address must stay: BIND refuses to leave an in-zone NS target without one.
    refused = dns_zone_result(zone_run(RECORDS, prune="all"))
    assert refused["failed"] is True and "NS, MX or SRV target" in refused["msg"]
    assert texts(answer(bind, "foreign.example.test", "A")) == ["192.0.2.77"]
    with_ns = RECORDS + [{"name": "ns1", "type": "A", "ttl": 3600, "values": ["127.0.0.1"]}]
    result = dns_zone_result(zone_run(with_ns, prune="all", protected_types=["SOA", "NS"]))
    deleted = sorted(c["name"] for c in result["changes"] if c["action"] == "delete")
    assert deleted == ["foreign.example.test"]
    assert answer(bind, "foreign.example.test", "A") is None
    assert answer(bind, "example.test", "SOA") is not None
    assert answer(bind, "example.test", "NS") is not None


def test_check_mode_changes_nothing_and_reports_the_same_plan(bind, zone_run):
    checked = zone_run(RECORDS, args=["--check"])
    planned = dns_zone_result(checked)
    assert planned["changed"] is True
    assert answer(bind, "mx1.example.test", "A") is None
    applied = dns_zone_result(zone_run(RECORDS))
    assert applied["changes"] == planned["changes"]


def test_diff_mode_shows_before_and_after_per_record_set(bind, zone_run):
    zone_run(RECORDS)
    changed = [dict(r) for r in RECORDS]
    changed[0] = {"name": "mx1.example.test", "type": "A", "ttl": 300, "values": ["192.0.2.9"]}
    result = dns_zone_result(zone_run(changed, args=["--diff"]))
    (diff,) = result["diff"]
    assert diff["before_header"] == "mx1.example.test A"
    assert diff["before"] == "mx1.example.test. 300 IN A 192.0.2.2\nmx1.example.test. 300 IN A 192.0.2.3\n"
    assert diff["after"] == "mx1.example.test. 300 IN A 192.0.2.9\n"


def test_read_by_query_sees_the_same_zone(bind, zone_run):
    zone_run(RECORDS)
    again = dns_zone_result(zone_run(RECORDS, read_method="query"))
    assert again["changed"] is False
    fewer = [r for r in RECORDS if r["name"] != "spf"]
    pruned = dns_zone_result(zone_run(fewer, read_method="query"))
    assert [(c["action"], c["name"]) for c in pruned["changes"] if c["action"] == "delete"] == [
        ("delete", "spf.example.test")]


def test_cname_beside_existing_data_is_refused(bind, zone_run):
    zone_run(RECORDS)
    foreign_update(bind, "www.example.test.", "192.0.2.80")
    run = zone_run(RECORDS + [{"name": "www", "type": "CNAME", "values": ["mx1.example.test."]}])
    result = dns_zone_result(run)
    assert run.rc != 0 and result["failed"] is True
    assert "www.example.test (CNAME beside A)" in result["msg"]


def test_bad_tsig_key_is_a_clear_error(bind, zone_run):
    wrong = base64.b64encode(os.urandom(32)).decode()
    for transport in ("tcp", "udp"):
        run = zone_run(RECORDS, tsig_key_secret=wrong, transport=transport)
        result = dns_zone_result(run)
        assert run.rc != 0 and result["failed"] is True
        assert "rejected the TSIG signature" in result["msg"]
        assert "dns_tsig_key_secret" in result["msg"]
        assert wrong not in str(run.data)
    assert answer(bind, "mx1.example.test", "A") is None


def test_unknown_key_name_is_a_clear_error(bind, zone_run):
    run = zone_run(RECORDS, tsig_key_name="no-such-key", read_method="query", transport="udp")
    result = dns_zone_result(run)
    assert run.rc != 0
    assert "rejected the TSIG signature" in result["msg"]


def test_unreachable_server_is_a_clear_error(bind, zone_run):
    closed = bind.port
    bind.stop()
    run = zone_run(RECORDS, port=closed, timeout=2)
    result = dns_zone_result(run)
    assert run.rc != 0
    assert "cannot talk to the DNS server at 127.0.0.1 port %d" % closed in result["msg"]
    run = zone_run(RECORDS, port=closed, timeout=1, transport="udp", read_method="query")
    result = dns_zone_result(run)
    assert "no answer from the DNS server at 127.0.0.1 port %d within 1s" % closed in result["msg"]


def test_zone_the_server_does_not_serve_is_a_clear_error(bind, zone_run):
    run = zone_run([], zone="notthere.test")
    result = dns_zone_result(run)
    assert run.rc != 0
    assert "zone transfer of notthere.test from 127.0.0.1 port %d was refused" % bind.port in result["msg"]
    assert "primary for notthere.test" in result["msg"]
