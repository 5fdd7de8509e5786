# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import copy
import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.kibamail.email_platform.plugins.module_utils.plan import (
    Pool,
    PlanError,
    build_plan,
    spf_terms,
    split_pool,
    summarize,
    usable_addresses,
)


def spec(**overrides):
    base = {
        "domain": "kbmta.net",
        "lab": True,
        "pools": {
            "transactional": {"subnet": "192.0.2.0/24", "profile": "transactional", "lb_label": "smtp"},
            "marketing": {"subnet": "203.0.113.0/24", "profile": "marketing", "lb_label": "smtp-mkg"},
        },
        "customers": [
            {
                "domain": "kibamail.com",
                "pool": "transactional",
                "zone_managed": True,
                "logins": [{"username": "support@kibamail.com", "senders": ["support@kibamail.com"]}],
            }
        ],
        "groups": {
            "mta": ["us-mta1", "us-mta2", "eu-mta1", "eu-mta2"],
            "mta_transactional": ["us-mta1", "us-mta2"],
            "mta_marketing": ["eu-mta1", "eu-mta2"],
            "lb_transactional": ["lb-transactional"],
            "lb_marketing": ["lb-marketing"],
        },
        "hosts": {
            "us-mta1": {"mta_address": "198.51.100.21"},
            "us-mta2": {"mta_address": "198.51.100.22"},
            "eu-mta1": {"mta_address": "198.51.100.31"},
            "eu-mta2": {"mta_address": "198.51.100.32"},
            "lb-transactional": {"lb_address": "198.51.100.10"},
            "lb-marketing": {"lb_address": "198.51.100.11"},
        },
    }
    base.update(overrides)
    return base


def rrsets(plan, zone, rtype, name):
    return [r for r in plan["zones"][zone] if r["type"] == rtype and r["name"] == name]


# ---------------------------------------------------------------- the seed checklist


def test_spf_domain_covers_both_pools_and_nothing_else():
    plan = build_plan(spec())
    (spf,) = rrsets(plan, "kbmta.net", "TXT", "spf.kbmta.net")
    assert spf["values"] == ["v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.0/24 -all"]


def test_bounce_domain_has_spf_include_and_mx_to_every_mta():
    plan = build_plan(spec())
    (txt,) = rrsets(plan, "kbmta.net", "TXT", "kb-bounces.kbmta.net")
    assert txt["values"] == ["v=spf1 include:spf.kbmta.net -all"]
    (mx,) = rrsets(plan, "kbmta.net", "MX", "kb-bounces.kbmta.net")
    assert sorted(mx["values"]) == [
        "10 eu-mta1.kbmta.net.", "10 eu-mta2.kbmta.net.", "10 us-mta1.kbmta.net.", "10 us-mta2.kbmta.net."]


def test_each_mta_certificate_names_itself_its_pools_load_balancer_and_its_bounce_mx():
    plan = build_plan(spec())
    assert plan["mtas"]["us-mta1"]["tls_names"] == ["us-mta1.kbmta.net", "smtp.kbmta.net"]
    assert plan["mtas"]["eu-mta2"]["tls_names"] == ["eu-mta2.kbmta.net", "smtp-mkg.kbmta.net"]
    (mx,) = rrsets(plan, "kbmta.net", "MX", "kb-bounces.kbmta.net")
    targets = {value.split()[1].rstrip(".") for value in mx["values"]}
    for mta, entry in plan["mtas"].items():
        assert entry["tls_names"][0] == entry["fqdn"]
        assert plan["pools"][entry["pool"]]["lb_fqdn"] in entry["tls_names"]
        assert len(set(entry["tls_names"])) == len(entry["tls_names"])
        # every MX target that is this MTA is on its certificate, no other MTA's name is
        assert targets & set(entry["tls_names"]) == {entry["fqdn"]}


def test_an_mta_named_outside_the_platform_keeps_that_name_on_its_certificate():
    hosts = dict(spec()["hosts"])
    hosts["us-mta1"] = {"mta_address": "198.51.100.21", "mta_fqdn": "MX1.Example.NET."}
    plan = build_plan(spec(hosts=hosts))
    assert plan["mtas"]["us-mta1"]["tls_names"] == ["mx1.example.net", "smtp.kbmta.net"]


def test_load_balancer_names_point_at_their_pools_load_balancer():
    plan = build_plan(spec())
    assert rrsets(plan, "kbmta.net", "A", "smtp.kbmta.net")[0]["values"] == ["198.51.100.10"]
    assert rrsets(plan, "kbmta.net", "A", "smtp-mkg.kbmta.net")[0]["values"] == ["198.51.100.11"]
    lb = plan["load_balancers"]["lb-transactional"]
    assert [b["name"] for b in lb["backends"]] == ["us-mta1", "us-mta2"]
    assert [b["address"] for b in lb["backends"]] == ["198.51.100.21", "198.51.100.22"]
    assert [b["name"] for b in plan["load_balancers"]["lb-marketing"]["backends"]] == ["eu-mta1", "eu-mta2"]


def test_every_sending_ip_has_a_name_of_its_own_under_its_mta():
    plan = build_plan(spec())
    for mta, entry in plan["mtas"].items():
        for e in entry["sending_ips"]:
            name = "%s.%s.kbmta.net" % (e["ip"].replace(".", "-"), mta)
            assert plan["ptr_map"][e["ip"]] == name
            assert e["ptr"] == e["helo"] == name
            assert rrsets(plan, "kbmta.net", "A", name)[0]["values"] == [e["ip"]]
            assert rrsets(plan, "kbmta.net", "TXT", name)[0]["values"] == ["v=spf1 include:spf.kbmta.net -all"]


def test_each_mta_name_answers_only_its_receiving_address():
    plan = build_plan(spec())
    for mta, entry in plan["mtas"].items():
        (a,) = rrsets(plan, "kbmta.net", "A", "%s.kbmta.net" % mta)
        assert a["values"] == [entry["address"]]
    (mx,) = rrsets(plan, "kbmta.net", "MX", "kb-bounces.kbmta.net")
    assert sorted(mx["values"]) == sorted("10 %s.kbmta.net." % m for m in plan["mtas"])


def test_no_record_set_of_the_plan_exceeds_what_resolvers_accept():
    plan = build_plan(spec())
    for zone in plan["zones"].values():
        for rr in zone:
            assert len(rr["values"]) <= 100, rr["name"]


def test_customer_records_and_names():
    plan = build_plan(spec())
    c = plan["customers"]["kibamail.com"]
    assert c["dkim_name"] == "kb1._domainkey.kibamail.com"
    assert c["return_path"] == "kb-bounces.kibamail.com"
    assert rrsets(plan, "kibamail.com", "CNAME", "kb-bounces.kibamail.com")[0]["values"] == ["kb-bounces.kbmta.net."]
    assert rrsets(plan, "kibamail.com", "TXT", "_dmarc.kibamail.com")[0]["values"] == ["v=DMARC1; p=none; adkim=r; aspf=r"]
    assert plan["bounce_domains"] == ["kb-bounces.kbmta.net", "kb-bounces.kibamail.com"]
    assert c["logins"] == [{"username": "support@kibamail.com", "pool": "transactional", "senders": ["support@kibamail.com"]}]
    assert c["pools"] == ["transactional"]
    assert c["mtas"] == ["us-mta1", "us-mta2"]


# ---------------------------------------------------------------- streams


def two_streams():
    """kibamail.com sends transactional mail as support@ and newsletters as news@."""
    s = spec()
    s["customers"][0]["logins"].append({"username": "News@Kibamail.com", "pool": "marketing"})
    return s


def test_a_domain_on_two_pools_is_on_every_mta_of_both():
    plan = build_plan(two_streams())
    c = plan["customers"]["kibamail.com"]
    assert c["pools"] == ["marketing", "transactional"]
    assert c["mtas"] == ["eu-mta1", "eu-mta2", "us-mta1", "us-mta2"]
    # One DKIM key, one return path for both streams: DKIM and SPF align the same on each.
    assert c["dkim_name"] == "kb1._domainkey.kibamail.com"
    assert c["return_path"] == "kb-bounces.kibamail.com"
    assert plan["bounce_domains"] == ["kb-bounces.kbmta.net", "kb-bounces.kibamail.com"]


def test_each_login_is_bound_to_one_stream():
    c = build_plan(two_streams())["customers"]["kibamail.com"]
    assert c["logins"] == [
        {"username": "support@kibamail.com", "pool": "transactional", "senders": ["support@kibamail.com"]},
        {"username": "news@kibamail.com", "pool": "marketing", "senders": ["@kibamail.com"]},
    ]


def test_a_login_without_pool_takes_the_customers_pool():
    s = two_streams()
    s["customers"][0]["pool"] = "marketing"
    s["customers"][0]["logins"][0].pop("senders")
    c = build_plan(s)["customers"]["kibamail.com"]
    assert [(login["username"], login["pool"]) for login in c["logins"]] == [
        ("support@kibamail.com", "marketing"), ("news@kibamail.com", "marketing")]
    assert c["pools"] == ["marketing"]
    assert c["mtas"] == ["eu-mta1", "eu-mta2"]


def test_an_old_inventory_without_any_pool_still_plans_on_transactional():
    s = spec()
    s["customers"][0].pop("pool")
    c = build_plan(s)["customers"]["kibamail.com"]
    assert c["pool"] == "transactional"
    assert c["pools"] == ["transactional"]


def test_a_customer_without_logins_stays_on_its_pool():
    s = spec()
    s["customers"][0].update(pool="marketing", logins=[])
    assert build_plan(s)["customers"]["kibamail.com"]["pools"] == ["marketing"]


def test_the_summary_names_each_logins_stream():
    lines = summarize(build_plan(two_streams()))
    assert any("customer kibamail.com: pools marketing, transactional" in line
               and "support@kibamail.com (transactional), news@kibamail.com (marketing)" in line for line in lines)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s["customers"][0]["logins"][1].update(pool="bulk"),
         "login news@kibamail.com of kibamail.com uses pool 'bulk', which is not defined: set its pool to one of "
         "marketing, transactional"),
        (lambda s: (s["customers"][0].pop("pool"), s["pools"].pop("transactional"), s["groups"].pop("mta_transactional"),
                    s["groups"].update(mta=["eu-mta1", "eu-mta2"])),
         "login support@kibamail.com of kibamail.com (it names no pool, so the customer's) uses pool 'transactional', "
         "which is not defined: set the login's pool or the customer's to one of marketing"),
        (lambda s: s["customers"].append({"domain": "other.example", "logins": [{"username": "news@kibamail.com"}]}),
         "login news@kibamail.com is listed for both kibamail.com and other.example: a login belongs to one customer"),
        (lambda s: s["customers"][0]["logins"].append({"username": "NEWS@kibamail.com", "pool": "transactional"}),
         "login news@kibamail.com of kibamail.com is listed twice"),
        (lambda s: s["customers"][0].update(logins={"username": "x"}),
         "platform_customers[0].logins of kibamail.com must be a list of logins"),
    ],
)
def test_bad_streams_are_refused_with_what_to_change(mutate, message):
    s = two_streams()
    mutate(s)
    with pytest.raises(PlanError, match="^" + re.escape(message)):
        build_plan(s)


def test_customer_secrets_never_enter_the_plan():
    s = spec()
    s["customers"][0]["logins"][0]["password"] = "s3cret-value"
    assert "s3cret-value" not in repr(build_plan(s))


def test_usable_addresses_leave_out_network_broadcast_gateway_and_reserved():
    s = spec()
    s["pools"]["transactional"]["reserved"] = ["192.0.2.250-192.0.2.254"]
    plan = build_plan(s)
    used = {e["ip"] for m in ("us-mta1", "us-mta2") for e in plan["mtas"][m]["sending_ips"]}
    assert "192.0.2.0" not in used and "192.0.2.255" not in used and "192.0.2.1" not in used
    assert not used & {"192.0.2.%d" % i for i in range(250, 255)}
    assert len(used) == 254 - 1 - 5


def test_explicit_sending_ips_are_respected_and_the_rest_is_shared():
    s = spec()
    s["hosts"]["us-mta1"]["mta_sending_ips"] = ["192.0.2.10-192.0.2.12"]
    plan = build_plan(s)
    assert [e["ip"] for e in plan["mtas"]["us-mta1"]["sending_ips"]] == ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
    assert len(plan["mtas"]["us-mta2"]["sending_ips"]) == 253 - 3


def test_the_mta_name_as_ptr_of_a_whole_pool_is_refused_with_the_template_to_use():
    with pytest.raises(PlanError) as err:
        build_plan(spec(ptr_template="{mta_fqdn}"))
    text = str(err.value)
    assert "more than the 100" in text and "SERVFAIL" in text
    assert "platform_ptr_template: '{ip_dashed}.{mta_fqdn}'" in text
    assert "eu-mta1.kbmta.net would carry" in text


def test_the_mta_name_as_ptr_of_a_small_share_is_accepted():
    s = spec(ptr_template="{mta_fqdn}")
    s["pools"]["transactional"]["subnet"] = "192.0.2.0/25"
    s["pools"]["marketing"]["subnet"] = "203.0.113.0/25"
    plan = build_plan(s)
    entry = plan["mtas"]["us-mta1"]
    (a,) = rrsets(plan, "kbmta.net", "A", "us-mta1.kbmta.net")
    assert set(a["values"]) == {e["ip"] for e in entry["sending_ips"]} | {entry["address"]}
    assert all(e["helo"] == "us-mta1.kbmta.net" for e in entry["sending_ips"])
    assert plan["warnings"] == []


def test_a_hundred_and_one_addresses_at_one_name_are_refused():
    s = spec(ptr_template="{mta_fqdn}")
    s["pools"]["transactional"]["subnet"] = "192.0.2.0/25"
    s["pools"]["marketing"]["subnet"] = "203.0.113.0/25"
    s["hosts"]["us-mta1"]["mta_sending_ips"] = ["192.0.2.2-192.0.2.101"]  # 100 sending IPs + the main address
    with pytest.raises(PlanError, match="us-mta1.kbmta.net would carry 101 A records"):
        build_plan(s)
    s["hosts"]["us-mta1"]["mta_sending_ips"] = ["192.0.2.2-192.0.2.100"]  # 99 + 1: accepted
    assert len(rrsets(build_plan(s), "kbmta.net", "A", "us-mta1.kbmta.net")[0]["values"]) == 100


def test_summary_names_records_ips_and_ptrs():
    text = "\n".join(summarize(build_plan(spec())))
    assert "spf.kbmta.net." in text and "us-mta1" in text and "PTR records: 506" in text


def test_plan_is_deterministic_whatever_the_input_order():
    s1 = spec()
    s2 = copy.deepcopy(s1)
    s2["groups"]["mta_transactional"] = ["us-mta2", "us-mta1"]
    s2["pools"] = dict(reversed(list(s2["pools"].items())))
    assert build_plan(s1) == build_plan(s2)


# ---------------------------------------------------------------- placeholders


def test_documentation_addresses_are_placeholders_outside_a_lab():
    plan = build_plan(spec(lab=False))
    assert any("pool transactional subnet" in p for p in plan["placeholders"])
    assert any("us-mta1 mta_address" in p for p in plan["placeholders"])
    assert build_plan(spec())["placeholders"] == []


def test_changeme_marks_a_placeholder():
    s = spec(lab=False)
    s["pools"] = {"transactional": {"subnet": "10.20.0.0/24"}, "marketing": {"subnet": "10.21.0.0/24"}}
    for h in s["hosts"].values():
        for k in list(h):
            h[k] = h[k].replace("198.51.100", "10.30.0")
    s["hosts"]["us-mta1"]["ansible_host"] = "CHANGEME"
    plan = build_plan(s)
    assert plan["placeholders"] == ["us-mta1 ansible_host is CHANGEME"]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s["pools"]["marketing"].update(subnet="192.0.2.128/25"), "overlap"),
        (lambda s: s["hosts"]["us-mta1"].update(mta_sending_ips=["203.0.113.5"]), "not a usable address of pool transactional"),
        (lambda s: s["groups"]["mta"].append("orphan-mta"), "orphan-mta (group mta) is in no pool"),
        (lambda s: s["groups"]["mta_marketing"].append("us-mta1"), "us-mta1 is in two pools"),
        (lambda s: s["groups"].update(mta_marketing=[]), "pool marketing has no MTA"),
        (lambda s: s.update(domain="kbmta..net"), "not a valid fully qualified domain name"),
        (lambda s: s["customers"].append({"domain": "KibaMail.com."}), "listed twice"),
        (lambda s: s["customers"][0].update(pool="bulk"), "not defined"),
        (lambda s: s["customers"][0]["logins"][0].update(senders=["x@other.example"]), "may only send as kibamail.com"),
        (lambda s: s["pools"]["transactional"].update(gateway="203.0.113.1"), "outside its subnet"),
        (lambda s: s["pools"]["transactional"].update(subnet="192.0.2.0/33"), "not an IPv4 network"),
        (lambda s: s["pools"]["transactional"].update(subnet="192.0.2.1/24"), "not an IPv4 network"),
        (lambda s: s["hosts"]["us-mta1"].pop("mta_address"), "has no mta_address"),
        (lambda s: s.update(ttl=5), "platform_ttl"),
        (lambda s: s.update(ptr_template="{hostname}.kbmta.net"), "platform_ptr_template"),
        (lambda s: s["pools"]["marketing"].update(lb_label="smtp"), "both answer as smtp.kbmta.net"),
        (lambda s: s["customers"][0].update(dmarc_policy="block"), "dmarc_policy"),
    ],
)
def test_bad_input_is_refused_with_what_to_change(mutate, message):
    s = spec()
    mutate(s)
    with pytest.raises(PlanError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        build_plan(s)


def test_spf_that_would_not_fit_a_dns_answer_is_refused():
    s = spec()
    s["pools"] = {"p%d" % i: {"subnet": "10.%d.%d.0/30" % (i // 2, (i % 2) * 2), "profile": "marketing"} for i in range(40)}
    s["groups"] = {"mta": ["m%d" % i for i in range(40)]}
    s["groups"].update({"mta_p%d" % i: ["m%d" % i] for i in range(40)})
    s["hosts"] = {"m%d" % i: {"mta_address": "198.51.100.%d" % (i + 1)} for i in range(40)}
    s["customers"] = []
    with pytest.raises(PlanError, match="SPF record for spf.kbmta.net would be"):
        build_plan(s)


# ---------------------------------------------------------------- properties of the IP split


def make_pool(prefixlen, mtas, reserved=()):
    net = ipaddress.ip_network("10.0.0.0/%d" % prefixlen)
    return Pool(name="p", network=net, gateway=net.network_address + 1, reserved=set(reserved), profile="transactional",
                mta_group="g", lb_group="l", lb_label="smtp", vswitch_vlan=None, mtas=list(mtas))


mta_names = st.lists(st.from_regex(r"[a-z]{2,6}-mta[0-9]", fullmatch=True), min_size=1, max_size=6, unique=True)


@settings(max_examples=60, deadline=None)
@given(prefixlen=st.integers(min_value=22, max_value=28), mtas=mta_names)
def test_every_usable_ip_is_assigned_exactly_once(prefixlen, mtas):
    pool = make_pool(prefixlen, mtas)
    if len(usable_addresses(pool)) < len(mtas) * 4:
        return
    try:
        split = split_pool(pool, {})
    except PlanError:
        return  # an MTA that wins nothing is refused loudly, never silently
    assigned = [a for addrs in split.values() for a in addrs]
    assert sorted(assigned) == usable_addresses(pool)
    assert len(set(assigned)) == len(assigned)


@settings(max_examples=60, deadline=None)
@given(prefixlen=st.integers(min_value=22, max_value=26), mtas=mta_names, new=st.from_regex(r"new-mta[0-9]", fullmatch=True))
def test_adding_an_mta_moves_only_the_addresses_it_takes(prefixlen, mtas, new):
    before = split_pool(make_pool(prefixlen, mtas), {})
    after = split_pool(make_pool(prefixlen, mtas + [new]), {})
    owner_before = {a: m for m, addrs in before.items() for a in addrs}
    owner_after = {a: m for m, addrs in after.items() for a in addrs}
    moved = [a for a in owner_before if owner_before[a] != owner_after[a]]
    # No address moves between MTAs that were already there...
    assert all(owner_after[a] == new for a in moved)
    # ...and the newcomer takes about its fair share, not more.
    total = len(owner_before)
    assert len(moved) <= total / (len(mtas) + 1) + 4 * (total ** 0.5)


@settings(max_examples=40, deadline=None)
@given(prefixlen=st.integers(min_value=22, max_value=26), mtas=st.lists(
    st.from_regex(r"m[0-9]{1,2}", fullmatch=True), min_size=2, max_size=5, unique=True))
def test_removing_an_mta_moves_only_its_own_addresses(prefixlen, mtas):
    before = split_pool(make_pool(prefixlen, mtas), {})
    gone = mtas[0]
    after = split_pool(make_pool(prefixlen, mtas[1:]), {})
    for m in mtas[1:]:
        assert set(before[m]) <= set(after[m])
    assert sum(len(v) for v in after.values()) == sum(len(v) for v in before.values())
    assert gone not in after


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=2 ** 32 - 1), st.integers(min_value=16, max_value=30)),
                min_size=1, max_size=8))
def test_spf_terms_cover_exactly_the_pools(nets):
    networks = [ipaddress.ip_network((addr, plen), strict=False) for addr, plen in nets]
    terms = spf_terms(networks)
    covered = [ipaddress.ip_network(t[4:]) for t in terms]
    for n in networks:
        assert any(n.subnet_of(c) for c in covered)
    for c in covered:
        # every covered block lies inside the union of the pools (nothing extra is authorised)
        assert sum(x.num_addresses for x in ipaddress.collapse_addresses(networks) if x.subnet_of(c)) == c.num_addresses
    assert len(terms) == len(list(ipaddress.collapse_addresses(networks)))


# ---------------------------------------------------------------- transports per stream


def test_every_mta_of_every_stream_has_one_transport_for_the_domain():
    plan = build_plan(two_streams())
    for mta in ("us-mta1", "us-mta2", "eu-mta1", "eu-mta2"):
        (transport,) = plan["transports"][mta].values()
        assert transport in [e["transport"] for e in plan["mtas"][mta]["sending_ips"]]
    single = build_plan(spec())
    assert single["transports"]["eu-mta1"] == {} and "kibamail.com" in single["transports"]["us-mta1"]


def test_the_transport_is_the_md5_choice_the_role_made_before():
    """md5 of the domain, first 32 bits, modulo the MTA's IPs: upgrading moves no domain to another IP."""
    import hashlib

    plan = build_plan(two_streams())
    for mta, domains in plan["transports"].items():
        ips = plan["mtas"][mta]["sending_ips"]
        for domain, transport in domains.items():
            index = int(hashlib.md5(domain.encode()).hexdigest()[:8], 16) % len(ips)
            assert transport == ips[index]["transport"]
    assert build_plan(two_streams())["transports"] == plan["transports"]
