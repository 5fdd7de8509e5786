# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The plan's names through a stock recursive resolver, as a receiver resolves them.

Two real BIND servers on loopback: an authoritative one serving what the plan publishes,
and a recursive one with BIND's default limits in front of it (tests/support/bind.py).
The old layout (every sending IP of an MTA at the MTA's name) is served by an authoritative
server without the limit, as a provider's DNS may be, to show what a receiver then sees:
SERVFAIL. The plan's layout resolves name by name.
"""

from __future__ import annotations

import ipaddress

import dns.rcode
import dns.reversename

from ansible_collections.kibamail.email_platform.plugins.module_utils.plan import build_plan
from bind import LoopbackBind, LoopbackResolver, platform_records, zones_for
from lab_spec import lab_spec

SPEC = lab_spec(customers=[])


def values(answer) -> list:
    return sorted(r.to_text() for rrset in answer.answer for r in rrset)


def test_the_old_layout_gets_servfail_from_a_stock_resolver():
    many = ["192.0.2.%d" % i for i in range(2, 129)]          # 127 addresses at one name
    lines = ["us-mta1.kbmta.net. IN A %s" % ip for ip in many] + ["192-0-2-2.us-mta1.kbmta.net. IN A 192.0.2.2"]
    with LoopbackBind(None, {"kbmta.net": lines}, extra_options=["max-records-per-type 0;"]) as auth:
        assert len(values(auth.query("us-mta1.kbmta.net", "A"))) == 127    # the server itself serves it
        with LoopbackResolver(["kbmta.net"], auth.port) as resolver:
            answer = resolver.query("us-mta1.kbmta.net", "A")
            assert answer.rcode() == dns.rcode.SERVFAIL and not answer.answer
            assert "too many records" in resolver.log()
            # Positive control: one name per IP resolves through the same resolver.
            per_ip = resolver.query("192-0-2-2.us-mta1.kbmta.net", "A")
            assert per_ip.rcode() == dns.rcode.NOERROR and values(per_ip) == ["192.0.2.2"]


def test_every_name_of_the_plan_resolves_through_a_stock_resolver():
    plan = build_plan(SPEC)
    records = platform_records(plan, {})
    zones = zones_for(records, plan["zones"])
    with LoopbackBind.for_records(records, zones) as auth:       # BIND's default limits
        with LoopbackResolver(zones, auth.port) as resolver:
            for mta, conf in plan["mtas"].items():
                answer = resolver.query(conf["fqdn"], "A")
                assert answer.rcode() == dns.rcode.NOERROR and values(answer) == [conf["address"]], mta
            mx = resolver.query(plan["bounce_domain"], "MX")
            assert len(values(mx)) == 4
            ips = sorted(plan["ptr_map"], key=ipaddress.ip_address)
            assert len(ips) == 506
            for ip in ips[::23] + ips[-1:]:                       # a spread of both pools
                name = values(resolver.query(dns.reversename.from_address(ip).to_text(), "PTR"))
                assert name == [plan["ptr_map"][ip] + "."], ip
                assert values(resolver.query(plan["ptr_map"][ip], "A")) == [ip]
            assert "too many records" not in resolver.log()
