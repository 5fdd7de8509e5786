# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The delegation checks: the parent's referral against the zone's NS, and lame servers."""

from __future__ import annotations

from typing import Dict, List, Tuple

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_delegation import (
    DirectAnswer,
    Querier,
    check_delegation,
    delegation_task,
    parent_servers,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import StaticResolver

PUBLIC = {
    ("net", "NS"): ["a.gtld.example.", "b.gtld.example."],
    ("a.gtld.example", "A"): ["192.0.2.201"],
    ("b.gtld.example", "A"): ["192.0.2.202"],
    ("kbmta.net", "NS"): ["hydrogen.ns.example.", "oxygen.ns.example."],
    ("kbmta.net", "SOA"): ["hydrogen.ns.example. dns.example. 1 3600 600 86400 300"],
    ("hydrogen.ns.example", "A"): ["192.0.2.211"],
    ("oxygen.ns.example", "A"): ["192.0.2.212"],
}
OWN = ("hydrogen.ns.example", "oxygen.ns.example")


class FakeQuerier(Querier):
    """Answers from a table {(server, name, type): DirectAnswer}; records every question."""

    def __init__(self, table: Dict[Tuple[str, str, str], DirectAnswer]) -> None:
        self.table = table
        self.asked: List[Tuple[str, str, str]] = []

    def ask(self, server: str, name: str, rdtype: str) -> DirectAnswer:
        self.asked.append((server, name, rdtype))
        return self.table.get((server, name, rdtype), DirectAnswer(error="timed out"))


def healthy(referral=OWN) -> Dict[Tuple[str, str, str], DirectAnswer]:
    return {
        ("192.0.2.201", "kbmta.net", "NS"): DirectAnswer(rcode="NOERROR", referral=tuple(referral)),
        ("192.0.2.202", "kbmta.net", "NS"): DirectAnswer(rcode="NOERROR", referral=tuple(referral)),
        ("192.0.2.211", "kbmta.net", "SOA"): DirectAnswer(rcode="NOERROR", authoritative=True),
        ("192.0.2.212", "kbmta.net", "SOA"): DirectAnswer(rcode="NOERROR", authoritative=True),
    }


def by_check(results):
    return {(r.check, r.subject): r for r in results}


def test_a_right_delegation_and_authoritative_servers_are_ok():
    querier = FakeQuerier(healthy())
    results = by_check(check_delegation(StaticResolver(PUBLIC), querier, "kbmta.net."))
    assert results[("delegation", "kbmta.net")].status == "ok"
    assert "parent zone net delegates kbmta.net to hydrogen.ns.example, oxygen.ns.example" in results[("delegation", "kbmta.net")].reason
    assert results[("ns_authoritative", "hydrogen.ns.example")].status == "ok"
    assert results[("ns_authoritative", "oxygen.ns.example")].status == "ok"
    # the parent is asked without recursion for the NS, one server is enough
    assert querier.asked[0] == ("192.0.2.201", "kbmta.net", "NS")


def test_a_registrar_pointing_elsewhere_fails_with_both_sets_and_the_registrar_fix():
    querier = FakeQuerier(healthy(referral=("hydrogen.ns.example", "ns.old-host.example")))
    result = by_check(check_delegation(StaticResolver(PUBLIC), querier, "kbmta.net"))[("delegation", "kbmta.net")]
    assert result.status == "failure"
    assert "not delegated: oxygen.ns.example" in result.reason
    assert "delegated but not in the zone: ns.old-host.example" in result.reason
    assert result.fix.startswith("at the registrar of kbmta.net, set the domain's name servers to exactly "
                                 "hydrogen.ns.example, oxygen.ns.example")


def test_an_undelegated_domain_fails():
    table = healthy()
    table[("192.0.2.201", "kbmta.net", "NS")] = DirectAnswer(rcode="NXDOMAIN", authoritative=True)
    result = by_check(check_delegation(StaticResolver(PUBLIC), FakeQuerier(table), "kbmta.net"))[("delegation", "kbmta.net")]
    assert result.status == "failure"
    assert "does not delegate kbmta.net" in result.reason


def test_a_parent_server_that_does_not_answer_is_passed_over():
    table = healthy()
    del table[("192.0.2.201", "kbmta.net", "NS")]
    querier = FakeQuerier(table)
    result = by_check(check_delegation(StaticResolver(PUBLIC), querier, "kbmta.net"))[("delegation", "kbmta.net")]
    assert result.status == "ok"
    assert ("192.0.2.202", "kbmta.net", "NS") in querier.asked


def test_no_parent_server_answering_is_a_warning_not_a_pass():
    table = {k: v for k, v in healthy().items() if k[2] == "SOA"}
    result = by_check(check_delegation(StaticResolver(PUBLIC), FakeQuerier(table), "kbmta.net"))[("delegation", "kbmta.net")]
    assert result.status == "warning"
    assert "dig +trace kbmta.net NS" in result.fix


def test_a_lame_server_fails_and_names_itself():
    table = healthy()
    table[("192.0.2.212", "kbmta.net", "SOA")] = DirectAnswer(rcode="REFUSED")
    results = by_check(check_delegation(StaticResolver(PUBLIC), FakeQuerier(table), "kbmta.net"))
    lame = results[("ns_authoritative", "oxygen.ns.example")]
    assert lame.status == "failure"
    assert "lame delegation" in lame.reason and "192.0.2.212: REFUSED, not authoritative" in lame.reason
    assert results[("ns_authoritative", "hydrogen.ns.example")].status == "ok"


def test_a_name_server_without_address_fails():
    records = dict(PUBLIC)
    del records[("oxygen.ns.example", "A")]
    results = by_check(check_delegation(StaticResolver(records), FakeQuerier(healthy()), "kbmta.net"))
    assert results[("ns_authoritative", "oxygen.ns.example")].status == "failure"
    assert "has no address" in results[("ns_authoritative", "oxygen.ns.example")].reason


def test_a_lab_resolver_without_parent_zone_says_the_delegation_was_not_checked():
    records = {k: v for k, v in PUBLIC.items() if k[0] not in ("net", "a.gtld.example", "b.gtld.example")}
    results = by_check(check_delegation(StaticResolver(records), FakeQuerier(healthy()), "kbmta.net"))
    assert results[("delegation", "kbmta.net")].status == "warning"
    assert "was not checked" in results[("delegation", "kbmta.net")].reason
    assert results[("ns_authoritative", "hydrogen.ns.example")].status == "ok"


def test_the_parent_is_the_nearest_zone_cut():
    records = dict(PUBLIC)
    records[("mail.kbmta.net", "A")] = ["192.0.2.9"]     # a name, not a zone cut: NODATA for NS
    parent, servers, why = parent_servers(StaticResolver(records), "x.mail.kbmta.net")
    assert (parent, why) == ("kbmta.net", "")
    assert servers == [("hydrogen.ns.example", "192.0.2.211"), ("oxygen.ns.example", "192.0.2.212")]


def test_a_zone_without_ns_records_fails():
    records = {k: v for k, v in PUBLIC.items() if k != ("kbmta.net", "NS")}
    results = check_delegation(StaticResolver(records), FakeQuerier(healthy()), "kbmta.net")
    assert [(r.check, r.status) for r in results] == [("delegation", "failure")]


def test_switched_off_means_no_question():
    assert delegation_task(StaticResolver(PUBLIC), None, "kbmta.net") == []
