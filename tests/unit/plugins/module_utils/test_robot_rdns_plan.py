# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bulk rDNS: desired state, the difference, and its properties."""

from __future__ import annotations

import ipaddress
from typing import Dict, Set

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot_rdns import (
    AccountBlock,
    PtrChange,
    RdnsInputError,
    desired_from_map,
    desired_from_template,
    diff_text,
    host_name_problem,
    owner_of,
    parse_account,
    parse_rdns_list,
    parse_scope,
    plan_changes,
    reachability_error,
)


def test_template_names_every_usable_address_of_a_24() -> None:
    desired = desired_from_template("192.0.2.0/24", "mta-{ip_dashed}.kbmta.net")
    assert len(desired) == 254
    assert "192.0.2.0" not in desired and "192.0.2.255" not in desired
    assert desired["192.0.2.7"] == "mta-192-0-2-7.kbmta.net"


def test_template_fields_and_exclusions() -> None:
    desired = desired_from_template("198.51.100.8/29", "{index}-{last_octet}.{subnet}.example",
                                    skip_network_and_broadcast=False, exclude=["198.51.100.9"])
    assert sorted(desired, key=lambda ip: int(ipaddress.ip_address(ip))) == [
        "198.51.100.8", "198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.13", "198.51.100.14",
        "198.51.100.15"]
    assert desired["198.51.100.10"] == "2-10.198-51-100-8-29.example"


@pytest.mark.parametrize("subnet, template, message", [
    ("192.0.2.0/24", "{host}.example", "unknown field"),
    ("192.0.2.1/24", "{ip_dashed}.example", "network address"),
    ("2001:db8::/120", "{ip_dashed}.example", "IPv4"),
    ("192.0.2.0/24", "{ip_dashed}..example", "not valid host names"),
])
def test_template_errors_say_what_to_change(subnet: str, template: str, message: str) -> None:
    with pytest.raises(RdnsInputError, match=message):
        desired_from_template(subnet, template)


def test_map_is_normalised_and_duplicates_refused() -> None:
    assert desired_from_map({"192.0.2.7": "US-MTA1.kbmta.net."}) == {"192.0.2.7": "us-mta1.kbmta.net"}
    assert desired_from_map({"2001:DB8:0::1": "a.example"}) == {"2001:db8::1": "a.example"}
    with pytest.raises(RdnsInputError, match="twice"):
        desired_from_map({"2001:db8::1": "a.example", "2001:DB8::1": "b.example"})
    with pytest.raises(RdnsInputError, match="not an IP"):
        desired_from_map({"mta1": "a.example"})


def test_parse_rdns_list_reads_robot_entries() -> None:
    answer = [{"rdns": {"ip": "192.0.2.7", "ptr": "A.example."}}, {"rdns": {"ip": "192.0.2.8", "ptr": None}}]
    assert parse_rdns_list(answer) == {"192.0.2.7": "a.example"}


def test_plan_creates_updates_and_leaves_equal_entries_alone() -> None:
    desired = {"192.0.2.10": "b.example", "192.0.2.2": "a.example", "192.0.2.3": "same.example"}
    current = {"192.0.2.10": "old.example", "192.0.2.3": "same.example", "192.0.2.99": "stray.example"}
    assert plan_changes(desired, current) == [
        PtrChange("192.0.2.2", "create", None, "a.example"),
        PtrChange("192.0.2.10", "update", "old.example", "b.example"),
    ]


def test_purge_deletes_only_inside_scope_and_never_hetzner_defaults() -> None:
    current = {"192.0.2.99": "stray.example", "198.51.100.5": "other.example",
               "192.0.2.200": "static.200.2.0.192.clients.your-server.de"}
    changes = plan_changes({}, current, parse_scope(["192.0.2.0/24"]))
    assert changes == [PtrChange("192.0.2.99", "delete", "stray.example", None)]


def test_purge_keeps_the_addresses_of_exclude() -> None:
    current = {"192.0.2.98": "by-hand.example", "192.0.2.99": "stray.example"}
    changes = plan_changes({}, current, parse_scope(["192.0.2.0/24"]), keep={"192.0.2.98"})
    assert changes == [PtrChange("192.0.2.99", "delete", "stray.example", None)]


@pytest.mark.parametrize("name", ["mta1.kbmta.net", "a", "1-2-3.x", "xn--mt-via.kbmta.net", "a" * 63 + ".b",
                                  ".".join(["a" * 49] * 5) + ".abc"])
def test_host_names_robot_accepts(name: str) -> None:
    assert len(name) <= 253 and host_name_problem(name) is None


@pytest.mark.parametrize("name, problem", [
    ("", "it is empty"),
    ("bad_name.kbmta.net", "label 'bad_name' has '_'"),
    ("-mta.kbmta.net", "label '-mta' starts or ends with a hyphen"),
    ("mta-.kbmta.net", "label 'mta-' starts or ends with a hyphen"),
    ("mta 1.kbmta.net", "label 'mta 1' has ' '"),
    ("mta\t1.x", "has '\\t'"),
    ("mtä.kbmta.net", "non-ASCII"),
    ("a" * 64 + ".b", "is 64 characters long"),
    ("a..b", "empty label"),
    (".".join(["a" * 50] * 5) + ".abc", "is 258 characters long"),
])
def test_host_names_robot_refuses(name: str, problem: str) -> None:
    assert problem in (host_name_problem(name) or "")


def test_map_with_bad_names_names_each_with_its_address() -> None:
    with pytest.raises(RdnsInputError) as info:
        desired_from_map({"192.0.2.7": "ok.example", "192.0.2.8": "bad_one.example", "2001:db8::1": "-x.example"})
    text = str(info.value)
    assert text.startswith("2 PTR name(s) from ptr_map are not valid host names")
    assert "192.0.2.8 -> 'bad_one.example'" in text and "2001:db8::1 -> '-x.example'" in text
    assert "ok.example" not in text and "nothing was written" in text


def test_map_exclude_drops_addresses() -> None:
    assert desired_from_map({"192.0.2.7": "a.example", "192.0.2.8": "b.example"}, exclude=["192.0.2.8"]) == {
        "192.0.2.7": "a.example"}


ACCOUNT = parse_account(
    [{"ip": {"ip": "203.0.113.21", "server_ip": "203.0.113.21"}}, {"ip": {"ip": "192.0.2.200", "server_ip": "203.0.113.31"}}],
    [{"subnet": {"ip": "192.0.2.0", "mask": 24, "server_ip": "203.0.113.21"}},
     {"subnet": {"ip": "2001:db8::", "mask": "64", "server_ip": "203.0.113.21"}},
     {"subnet": {"ip": "198.51.100.0", "mask": 24, "server_ip": None}}])


def test_owner_of_takes_the_most_specific_block() -> None:
    assert owner_of("192.0.2.200", ACCOUNT) == AccountBlock(ipaddress.ip_network("192.0.2.200/32"), "203.0.113.31")
    assert owner_of("192.0.2.7", ACCOUNT).server_ip == "203.0.113.21"
    assert owner_of("2001:db8::7", ACCOUNT).server_ip == "203.0.113.21"
    assert owner_of("198.51.100.7", ACCOUNT).server_ip is None
    assert owner_of("203.0.113.99", ACCOUNT) is None


def test_reachability_checks_only_creations() -> None:
    changes = [PtrChange("203.0.113.99", "update", "a.example", "b.example"),
               PtrChange("192.0.2.7", "create", None, "b.example")]
    assert reachability_error(changes, ACCOUNT, []) is None
    assert reachability_error(changes, ACCOUNT, ["203.0.113.21"]) is None
    text = reachability_error(changes, ACCOUNT, ["203.0.113.31"])
    assert "192.0.2.7 (routed to server 203.0.113.21)" in text and text.endswith("Nothing was written.")
    outside = reachability_error([PtrChange("203.0.113.99", "create", None, "b.example")], ACCOUNT, [])
    assert "203.0.113.99" in outside and "running again will not help" in outside


def test_diff_text_shows_only_changed_addresses() -> None:
    desired = {"192.0.2.2": "a.example", "192.0.2.3": "same.example"}
    current = {"192.0.2.3": "same.example"}
    diff = diff_text(plan_changes(desired, current), current, desired)
    assert diff["before"] == "" and diff["after"] == "192.0.2.2 a.example\n"


names = st.from_regex(r"[a-z][a-z0-9-]{0,10}\.example", fullmatch=True)
addresses = st.integers(min_value=0, max_value=63).map("192.0.2.{0}".format)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(addresses, names, max_size=30), st.dictionaries(addresses, names, max_size=30),
       st.booleans(), st.sets(addresses, max_size=10))
def test_applying_the_plan_reaches_the_wanted_state_and_a_rerun_plans_nothing(
        desired: Dict[str, str], current: Dict[str, str], purge: bool, keep: Set[str]) -> None:
    desired = {ip: ptr for ip, ptr in desired.items() if ip not in keep}
    scope = parse_scope(["192.0.2.0/26"]) if purge else None
    changes = plan_changes(desired, current, scope, keep=keep)
    after = dict(current)
    for change in changes:
        if change.action == "delete":
            assert change.ip not in desired
            del after[change.ip]
        else:
            assert (change.action == "create") == (change.ip not in current)
            after[change.ip] = change.after
    for ip, ptr in desired.items():
        assert after[ip] == ptr
    for ip in keep:
        assert after.get(ip) == current.get(ip)
    if purge:
        assert set(after) == set(desired) | (set(current) & keep)
    assert plan_changes(desired, after, scope, keep=keep) == []
    assert len({c.ip for c in changes}) == len(changes)
