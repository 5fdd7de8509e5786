# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.kibamail.email_platform.plugins.module_utils import dns_records as R

ZONE = "kbmta.net"


def rs(name, rtype, values, ttl=3600):
    return R.record_set(name, rtype, ttl, values, ZONE)


def plan(current, records, prune="managed", managed_names=(), ownership="_kibamail-owned", protected=("SOA", "NS")):
    return R.build_plan(ZONE, current, records, prune, managed_names, protected, ownership, 3600)


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["SPF.KBMTA.NET.", "spf.kbmta.net", "spf", "Spf.Kbmta.Net"])
def test_names_compare_without_case_or_trailing_dot(name):
    assert R.absolute_name(name, "KBMTA.net.") == "spf.kbmta.net"


def test_apex_and_relative_names():
    assert R.absolute_name("@", ZONE) == ZONE
    assert R.relative_name(ZONE, ZONE) == "@"
    assert R.relative_name("a.b.kbmta.net", ZONE) == "a.b"
    with pytest.raises(R.RecordError, match="not inside zone"):
        R.relative_name("kibamail.com", ZONE)


def test_name_targets_are_absolute_and_lower_case():
    assert rs("x", "CNAME", ["KB-Bounces.KBMTA.net"]).values == ("kb-bounces.kbmta.net.",)
    assert rs("x", "MX", ["10   US-MTA1.kbmta.net."]).values == ("10 us-mta1.kbmta.net.",)
    assert rs("x", "SRV", ["0 5 25 mx.kbmta.net"]).values == ("0 5 25 mx.kbmta.net.",)


def test_values_are_sorted_and_deduplicated():
    a = rs("x", "A", ["192.0.2.3", "192.0.2.2", "192.0.2.2"])
    b = rs("x", "A", ["192.0.2.2", "192.0.2.3"])
    assert a == b
    assert a.values == ("192.0.2.2", "192.0.2.3")


@pytest.mark.parametrize("rtype,value,message", [
    ("A", "2001:db8::1", "IPv6"),
    ("AAAA", "192.0.2.1", "IPv4"),
    ("A", "not-an-ip", "not an IP"),
    ("MX", "mx.example.", "preference exchange"),
    ("MX", "x mx.example.", "must be a number"),
])
def test_bad_values_are_refused_with_reason(rtype, value, message):
    with pytest.raises(R.RecordError, match=message):
        rs("x", rtype, [value])


def test_cname_takes_one_value():
    with pytest.raises(R.RecordError, match="exactly one target"):
        rs("x", "CNAME", ["a.example.", "b.example."])


# ---------------------------------------------------------------- TXT


def test_long_txt_is_split_into_255_byte_strings():
    text = "v=DKIM1; k=rsa; p=" + "A" * 392
    chunks = R.split_txt(text)
    assert [len(c) for c in chunks] == [255, len(text) - 255]
    assert b"".join(chunks).decode() == text
    presentation = R.txt_presentation(text)
    assert presentation.count('"') == 4
    assert R.join_txt(R.parse_txt_strings(presentation)) == text


def test_txt_in_quoted_form_compares_equal_to_plain_text():
    plain = rs("spf", "TXT", ["v=spf1 -all"])
    quoted = rs("spf", "TXT", ['"v=spf1 " "-all"'])
    assert plain == quoted


def test_txt_quotes_and_backslashes_are_escaped():
    text = 'say "hi" \\ there'
    assert R.txt_presentation(text) == '"say \\"hi\\" \\\\ there"'
    assert R.join_txt(R.parse_txt_strings(R.txt_presentation(text))) == text


def test_txt_decimal_escapes_are_read():
    assert R.parse_txt_strings('"a\\032b"') == [b"a b"]


def test_unterminated_txt_is_refused():
    with pytest.raises(R.RecordError, match="unterminated"):
        R.parse_txt_strings('"abc')


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=900))
def test_txt_round_trips_through_presentation(text):
    strings = R.parse_txt_strings(R.txt_presentation(text))
    assert all(len(s) <= 255 for s in strings)
    assert R.join_txt(strings) == text


# ---------------------------------------------------------------- planning


SOA = rs("@", "SOA", ["ns1.kbmta.net. hostmaster.kbmta.net. 1 3600 600 86400 300"])
NS = rs("@", "NS", ["ns1.kbmta.net."])


def test_create_then_unchanged():
    records = [{"name": "spf.kbmta.net", "type": "TXT", "ttl": 300, "values": ["v=spf1 -all"]}]
    first = plan([SOA, NS], records)
    assert [(c.action, c.key) for c in first.changes] == [
        ("create", ("_kibamail-owned.kbmta.net", "TXT")), ("create", ("spf.kbmta.net", "TXT"))]
    after = [SOA, NS] + [c.after for c in first.changes]
    second = plan(after, records)
    assert second.changes == []
    assert not second.changed


def test_ownership_record_lists_what_the_module_writes():
    records = [{"name": "spf", "type": "TXT", "values": ["x"]}, {"name": "smtp", "type": "A", "values": ["192.0.2.1"]}]
    marker = [c.after for c in plan([], records).changes if c.key[0].startswith("_kibamail")][0]
    assert marker.values == ("smtp A;spf TXT",)


def test_update_reports_before_and_after():
    current = [rs("smtp", "A", ["192.0.2.1"]), rs("_kibamail-owned", "TXT", ["smtp A"])]
    result = plan(current, [{"name": "smtp", "type": "A", "ttl": 300, "values": ["192.0.2.9"]}])
    (change,) = result.changes
    assert change.action == "update"
    assert change.before.values == ("192.0.2.1",) and change.after.values == ("192.0.2.9",)
    assert change.ttl_changed and change.values_changed


def test_prune_managed_deletes_only_owned_record_sets():
    current = [SOA, NS, rs("old", "A", ["192.0.2.5"]), rs("foreign", "A", ["192.0.2.6"]),
               rs("_kibamail-owned", "TXT", ["old A", "keep A"]), rs("keep", "A", ["192.0.2.7"])]
    result = plan(current, [{"name": "keep", "type": "A", "values": ["192.0.2.7"]}])
    assert [c.key for c in result.by_action("delete")] == [("old.kbmta.net", "A")]
    assert ("foreign.kbmta.net", "A") in [r.key for r in result.kept]


def test_prune_managed_names_marks_ownership_without_marker():
    current = [SOA, NS, rs("old", "A", ["192.0.2.5"]), rs("old", "TXT", ["x"]), rs("other", "A", ["192.0.2.6"])]
    result = plan(current, [], managed_names=["OLD.kbmta.net."], ownership="")
    assert sorted(c.key for c in result.by_action("delete")) == [("old.kbmta.net", "A"), ("old.kbmta.net", "TXT")]


def test_prune_none_deletes_nothing_and_all_spares_soa_and_ns():
    current = [SOA, NS, rs("foreign", "A", ["192.0.2.6"])]
    assert plan(current, [], prune="none").changes == []
    result = plan(current, [], prune="all")
    assert [c.key for c in result.changes] == [("foreign.kbmta.net", "A")]
    result = plan(current, [], prune="all", protected=("SOA",))
    assert sorted(c.key for c in result.changes) == [("foreign.kbmta.net", "A"), ("kbmta.net", "NS")]
    result = plan(current, [], prune="all", protected=())
    assert ("kbmta.net", "SOA") not in [c.key for c in result.changes]


def test_empty_records_drop_the_ownership_record_under_managed():
    current = [rs("_kibamail-owned", "TXT", ["old A"]), rs("old", "A", ["192.0.2.5"])]
    result = plan(current, [])
    assert sorted(c.key for c in result.by_action("delete")) == [
        ("_kibamail-owned.kbmta.net", "TXT"), ("old.kbmta.net", "A")]


def test_cname_beside_other_data_is_refused():
    records = [{"name": "kb-bounces", "type": "CNAME", "values": ["kb-bounces.kbmta.net."]},
               {"name": "kb-bounces", "type": "TXT", "values": ["x"]}]
    with pytest.raises(R.RecordError, match="CNAME beside TXT"):
        plan([], records)


def test_cname_beside_data_that_stays_is_refused_and_allowed_when_pruned():
    current = [rs("rp", "A", ["192.0.2.1"])]
    records = [{"name": "rp", "type": "CNAME", "values": ["kb-bounces.kbmta.net."]}]
    with pytest.raises(R.RecordError, match=r"rp.kbmta.net \(CNAME beside A\)"):
        plan(current, records)
    result = plan(current, records, prune="all")
    assert [c.action for c in result.changes] == ["delete", "create", "create"]


def test_duplicates_and_foreign_names_are_refused():
    with pytest.raises(R.RecordError, match="listed twice"):
        plan([], [{"name": "a", "type": "A", "values": ["192.0.2.1"]},
                  {"name": "A.kbmta.net.", "type": "a", "values": ["192.0.2.2"]}])
    with pytest.raises(R.RecordError, match="not inside zone"):
        plan([], [{"name": "kibamail.com.", "type": "A", "values": ["192.0.2.1"]}])
    with pytest.raises(R.RecordError, match="values must be a list"):
        plan([], [{"name": "a", "type": "A", "values": "192.0.2.1"}])


def test_marker_name_may_not_be_used_by_records():
    with pytest.raises(R.RecordError, match="ownership record"):
        plan([], [{"name": "_kibamail-owned", "type": "TXT", "values": ["x"]}])


def test_bad_prune_policy():
    with pytest.raises(R.RecordError, match="prune="):
        plan([], [], prune="some")


def test_diff_entries_show_zone_file_lines():
    current = [rs("smtp", "A", ["192.0.2.1"])]
    result = plan(current, [{"name": "smtp", "type": "A", "values": ["192.0.2.9"]}], ownership="")
    (entry,) = R.diff_entries(result)
    assert entry["before"] == "smtp.kbmta.net. 3600 IN A 192.0.2.1\n"
    assert entry["after"] == "smtp.kbmta.net. 3600 IN A 192.0.2.9\n"
    assert entry["before_header"] == "smtp.kbmta.net A"


# ---------------------------------------------------------------- reconcile


class FakeProvider:
    def __init__(self, current, query_types=()):
        self.current = list(current)
        self.query_types = query_types
        self.reads = []
        self.applied = []

    def read(self, zone, keys):
        self.reads.append(sorted(keys))
        wanted = set(keys)
        return [r for r in self.current if not self.query_types or r.key in wanted]

    def apply(self, zone_plan):
        self.applied.append(zone_plan)


def test_reconcile_check_mode_plans_but_does_not_apply():
    provider = FakeProvider([SOA, NS])
    request = R.ZoneRequest(ZONE, [{"name": "smtp", "type": "A", "values": ["192.0.2.1"]}])
    result = R.reconcile(provider, request, check_mode=True)
    assert result["changed"] is True
    assert result["summary"]["create"] == 2
    assert provider.applied == []
    applied = R.reconcile(provider, request, check_mode=False)
    assert applied["changes"] == result["changes"]
    assert len(provider.applied) == 1


def test_reconcile_by_query_reads_marker_first_then_interesting_names():
    marker = rs("_kibamail-owned", "TXT", ["old A"])
    provider = FakeProvider([SOA, NS, marker, rs("old", "A", ["192.0.2.5"]), rs("x", "A", ["192.0.2.9"])],
                            query_types=("A", "CNAME", "TXT"))
    request = R.ZoneRequest(ZONE, [{"name": "smtp", "type": "A", "values": ["192.0.2.1"]}])
    result = R.reconcile(provider, request, check_mode=True)
    assert provider.reads[0] == [("_kibamail-owned.kbmta.net", "TXT")]
    assert ("old.kbmta.net", "A") in provider.reads[1]
    assert ("x.kbmta.net", "A") not in provider.reads[1]
    assert [(c["action"], c["name"]) for c in result["changes"]] == [
        ("delete", "old.kbmta.net"), ("update", "_kibamail-owned.kbmta.net"), ("create", "smtp.kbmta.net")]


def test_reconcile_refuses_bad_input_before_reading():
    provider = FakeProvider([])
    with pytest.raises(R.RecordError):
        R.reconcile(provider, R.ZoneRequest(ZONE, [{"name": "a", "type": "A", "values": ["nope"]}]), False)
    assert provider.reads == []


def test_prune_all_never_touches_dnssec_data():
    current = [SOA, NS, rs("@", "DNSKEY", ["257 3 13 AAAA"]), rs("@", "NSEC3PARAM", ["1 0 0 -"]),
               rs("x", "A", ["192.0.2.1"])]
    result = plan(current, [], prune="all", protected=())
    assert [c.key for c in result.changes] == [("kbmta.net", "NS"), ("x.kbmta.net", "A")]


def test_the_ownership_record_of_a_large_zone_stays_under_100_values():
    from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_records import (
        ownership_values, parse_ownership)
    keys = [("192-0-2-%d.us-mta%d.kbmta.net" % (i % 250, i // 250), t) for i in range(5000) for t in ("A", "TXT")]
    values = ownership_values(keys, "kbmta.net")
    assert 1 < len(values) <= 90
    rrset = R.record_set("_kibamail-owned.kbmta.net", "TXT", 300, values)
    assert parse_ownership(rrset, "kbmta.net") == set(keys)


def test_an_ownership_record_written_one_entry_per_value_is_still_read():
    from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_records import parse_ownership
    rrset = R.record_set("_kibamail-owned.kbmta.net", "TXT", 300, ["smtp A", "spf TXT"])
    assert parse_ownership(rrset, "kbmta.net") == {("smtp.kbmta.net", "A"), ("spf.kbmta.net", "TXT")}
