# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The DNS checks over a fake resolver: a published plan passes; each breakage is named and fixed."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_checks import DnsOptions, run_dns_checks
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import StaticResolver, reverse_name
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import FAILURE, OK, WARNING
from ansible_collections.kibamail.email_platform.tests.unit.plugins.verify_world import SPF, by, make_plan, published, rsa_public_b64


@pytest.fixture
def world():
    plan = make_plan()
    keys = {"kibamail.com": rsa_public_b64(2048, 1), "shop.example": rsa_public_b64(2048, 2)}
    return plan, keys, published(plan, keys)


def run(plan, records, keys, **kw):
    return run_dns_checks(plan, StaticResolver(records), DnsOptions(dkim_public_keys=keys, workers=4, **kw))


def test_published_plan_has_no_failure(world):
    plan, keys, records = world
    results = run(plan, records, keys)
    assert [r for r in results if r.status == FAILURE] == []
    assert [r for r in results if r.status == WARNING] == []
    # every kind of check ran
    for check in ("spf_record", "spf_covers_sending_ips", "bounce_mx", "bounce_mx_host", "lb_a", "mta_a",
                  "ptr", "fcrdns", "helo", "dkim", "dkim_key_size", "return_path", "return_path_spf", "dmarc", "dmarc_alignment"):
        assert by(results, check, status=OK), check
    assert len(by(results, "ptr")) == 5


def test_spf_leaving_out_a_subnet(world):
    plan, keys, records = world
    records[("spf.kbmta.net", "TXT")] = ["v=spf1 ip4:192.0.2.0/24 -all"]
    results = run(plan, records, keys)
    bad = by(results, "spf_covers_sending_ips", "spf.kbmta.net", FAILURE)
    assert len(bad) == 1
    assert "fail for 2 IPs (all 2 sending IPs of pool marketing (198.51.100.0/24))" in bad[0].reason
    assert SPF in bad[0].fix and bad[0].fix.startswith("the record must cover ip4:198.51.100.0/24: publish spf.kbmta.net TXT")
    # the bounce domain includes spf.kbmta.net: the marketing customer's return path fails too, the other passes
    assert by(results, "return_path_spf", "shop.example", FAILURE)
    assert by(results, "return_path_spf", "kibamail.com", OK)
    # the record itself is valid but not the plan's
    assert by(results, "spf_record", "spf.kbmta.net", WARNING)


def test_wrong_dkim_key(world):
    plan, keys, records = world
    records[("kb1._domainkey.kibamail.com", "TXT")] = ["v=DKIM1; k=rsa; p=" + rsa_public_b64(2048, 99)]
    results = run(plan, records, keys)
    bad = by(results, "dkim", "kibamail.com", FAILURE)
    assert len(bad) == 1 and "not the key the MTAs sign with" in bad[0].reason
    assert keys["kibamail.com"] in bad[0].fix and "kb1._domainkey.kibamail.com" in bad[0].fix
    assert by(results, "dkim", "shop.example", OK)


def test_missing_ptr(world):
    plan, keys, records = world
    del records[(reverse_name("192.0.2.3"), "PTR")]
    results = run(plan, records, keys)
    bad = by(results, "ptr", "192.0.2.3", FAILURE)
    assert len(bad) == 1 and "no PTR" in bad[0].reason
    assert "to us-mta1.kbmta.net" in bad[0].fix
    assert by(results, "fcrdns", "192.0.2.3", WARNING)
    assert [r.subject for r in results if r.check == "ptr" and r.status == FAILURE] == ["192.0.2.3"]


def test_missing_return_path_cname(world):
    plan, keys, records = world
    del records[("kb-bounces.shop.example", "CNAME")]
    results = run(plan, records, keys)
    bad = by(results, "return_path", "shop.example", FAILURE)
    assert len(bad) == 1
    assert bad[0].fix.startswith("publish kb-bounces.shop.example CNAME kb-bounces.kbmta.net.")
    assert "customer's" in bad[0].fix  # shop.example's zone is not managed by the platform
    assert by(results, "return_path_spf", "shop.example", FAILURE)


def test_wrong_ptr_and_unconfirmed_name(world):
    plan, keys, records = world
    records[(reverse_name("192.0.2.2"), "PTR")] = ["static.2.0.192.clients.your-server.de."]
    records[("us-mta1.kbmta.net", "A")] = ["192.0.2.2", "192.0.2.3"]
    results = run(plan, records, keys)
    assert "plan says us-mta1.kbmta.net" in by(results, "ptr", "192.0.2.2", FAILURE)[0].reason
    assert by(results, "helo", "192.0.2.2", FAILURE)
    fcr = by(results, "fcrdns", "192.0.2.200", FAILURE)
    assert fcr and fcr[0].fix == "publish us-mta1.kbmta.net A 192.0.2.200 (re-apply the platform's DNS records (playbooks/dns.yml))"
    assert by(results, "mta_a", "us-mta1.kbmta.net", FAILURE)


def test_small_dkim_key_and_missing_dmarc(world):
    plan, keys, records = world
    keys["shop.example"] = rsa_public_b64(1024, 3)
    records[("kb1._domainkey.shop.example", "TXT")] = ["v=DKIM1; k=rsa; p=" + keys["shop.example"]]
    del records[("_dmarc.kibamail.com", "TXT")]
    results = run(plan, records, keys)
    assert "1024 bits" in by(results, "dkim_key_size", "shop.example", FAILURE)[0].reason
    assert by(results, "dkim", "shop.example", OK)
    dmarc = by(results, "dmarc", "kibamail.com", FAILURE)
    assert dmarc and "p=quarantine" in dmarc[0].fix


@pytest.mark.parametrize("record, status, text", [
    ("v=DMARC1; p=none; rua=mailto:x@kibamail.com", WARNING, "only report"),
    ("v=DMARC1; p=reject; aspf=s", WARNING, "the plan says p=quarantine"),
    ("v=DMARC1; p=maybe", FAILURE, "must be none, quarantine or reject"),
])
def test_dmarc_policies(world, record, status, text):
    plan, keys, records = world
    records[("_dmarc.kibamail.com", "TXT")] = [record]
    results = run(plan, records, keys)
    found = by(results, "dmarc", "kibamail.com")
    assert found[0].status == status and text in found[0].reason


def test_strict_spf_alignment_is_explained(world):
    plan, keys, records = world
    plan = copy.deepcopy(plan)
    plan["customers"]["kibamail.com"]["dmarc_value"] = "v=DMARC1; p=quarantine; aspf=s"
    records[("_dmarc.kibamail.com", "TXT")] = ["v=DMARC1; p=quarantine; aspf=s"]
    results = run(plan, records, keys)
    align = by(results, "dmarc_alignment", "kibamail.com", WARNING)
    assert align and "DMARC rests on DKIM alone" in align[0].reason and align[0].fix == "set aspf=r in the DMARC record of kibamail.com"


def test_spf_record_problems(world):
    plan, keys, records = world
    records[("spf.kbmta.net", "TXT")] = [SPF, "v=spf1 -all"]
    assert "2 SPF records" in by(run(plan, records, keys), "spf_record", "spf.kbmta.net", FAILURE)[0].reason
    chain = {("spf.kbmta.net", "TXT"): ["v=spf1 include:l1.kbmta.net ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all"]}
    for i in range(1, 12):
        chain[("l%d.kbmta.net" % i, "TXT")] = ["v=spf1 include:l%d.kbmta.net -all" % (i + 1)]
    chain[("l12.kbmta.net", "TXT")] = ["v=spf1 -all"]
    records.update(chain)
    bad = by(run(plan, records, keys), "spf_record", "spf.kbmta.net", FAILURE)
    assert bad and "permerror" in bad[0].reason
    records[("spf.kbmta.net", "TXT")] = ["v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 +all"]
    assert "+all" in by(run(plan, records, keys), "spf_record", "spf.kbmta.net", FAILURE)[0].reason


def test_dnsbl(world):
    plan, keys, records = world
    records[("2.0.0.127.bl.test", "A")] = ["127.0.0.2"]
    records[("3.2.0.192.bl.test", "A")] = ["127.0.0.4"]
    records[("3.2.0.192.bl.test", "TXT")] = ["listed for spam"]
    results = run(plan, records, keys, dnsbl_zones=["bl.test", "dead.test"])
    assert by(results, "dnsbl_zone", "bl.test", OK)
    assert by(results, "dnsbl_zone", "dead.test", WARNING)
    listed = by(results, "dnsbl", "192.0.2.3", FAILURE)
    assert listed and "bl.test (127.0.0.4: listed for spam)" in listed[0].reason
    assert len(by(results, "dnsbl", status=OK)) == 4


def test_unreachable_dns_is_a_warning_not_a_failure(world):
    plan, keys, _records = world

    class Down(StaticResolver):
        def lookup(self, name, rdtype):
            from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import Answer
            return Answer(name=name, rdtype=rdtype, status="error", error="timed out")

    results = run_dns_checks(plan, Down({}), DnsOptions(dkim_public_keys=keys, workers=2))
    assert results and not [r for r in results if r.status == OK]
    assert {r.status for r in by(results, "ptr")} == {WARNING}


def test_a_record_set_over_100_is_a_failure_with_its_fix(world):
    plan, keys, records = world
    # An old layout: the MTA name is the PTR of 101 sending IPs, and the plan says so.
    many = ["192.0.2.%d" % i for i in range(2, 103)]
    for rr in plan["zones"]["kbmta.net"]:
        if rr["name"] == "us-mta1.kbmta.net" and rr["type"] == "A":
            rr["values"] = many
    records[("us-mta1.kbmta.net", "A")] = many
    results = run(plan, records, keys)
    (mta_a,) = by(results, "mta_a", "us-mta1.kbmta.net", FAILURE)
    assert "101 A records, more than the 100" in mta_a.reason and "SERVFAIL" in mta_a.reason
    assert "platform_ptr_template: '{ip_dashed}.{mta_fqdn}'" in mta_a.fix
    (mx_host,) = by(results, "bounce_mx_host", "us-mta1.kbmta.net", FAILURE)
    assert "101 A records" in mx_host.reason
    # Positive control: 100 records at one name pass.
    records[("us-mta1.kbmta.net", "A")] = many[:100]
    for rr in plan["zones"]["kbmta.net"]:
        if rr["name"] == "us-mta1.kbmta.net" and rr["type"] == "A":
            rr["values"] = many[:100]
    results = run(plan, records, keys)
    assert by(results, "mta_a", "us-mta1.kbmta.net", OK) and by(results, "bounce_mx_host", "us-mta1.kbmta.net", OK)
