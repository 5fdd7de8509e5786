# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Blocklists: sending IPs and the platform's domains in IP and domain lists, and the figures
exported for Prometheus (kb_blocklist_listed{subject,kind,zone} and the rest)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_blocklist import (
    CLEAR,
    DOMAIN_KIND,
    IP_KIND,
    LISTED,
    UNKNOWN,
    Listing,
    Zone,
    blocklist_domains,
    exposition,
    query_name,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_checks import DnsOptions, run_dns_checks
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import StaticResolver
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import FAILURE, OK, WARNING, CheckResult
from ansible_collections.kibamail.email_platform.tests.unit.plugins.verify_world import by, make_plan, published, rsa_public_b64

SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


@pytest.fixture(name="world")
def fixture_world():
    plan = make_plan()
    plan["bounce_domains"] = ["kb-bounces.kbmta.net", "kb-bounces.kibamail.com", "kb-bounces.shop.example"]
    keys = {"kibamail.com": rsa_public_b64(2048, 1), "shop.example": rsa_public_b64(2048, 2)}
    records = published(plan, keys)
    records[("2.0.0.127.bl.test", "A")] = ["127.0.0.2"]
    records[("test.dbl.test", "A")] = ["127.0.1.2"]
    return plan, keys, records


def run(plan, records, keys, checks, **kw):
    options = DnsOptions(dkim_public_keys=keys, workers=4, categories=checks, **kw)
    return run_dns_checks(plan, StaticResolver(records), options), options


def samples(text):
    """{(name, frozenset(labels)): value} of an exposition text, each line checked against the format."""
    found = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group("labels") or ""))
        found[(match.group("name"), labels)] = float(match.group("value"))
    return found


def test_query_names():
    assert query_name("192.0.2.10", IP_KIND, "bl.example") == "10.2.0.192.bl.example"
    assert query_name("Kb-Bounces.kbmta.net.", DOMAIN_KIND, "dbl.example") == "kb-bounces.kbmta.net.dbl.example"


def test_domains_asked_are_the_platform_domain_and_every_bounce_domain(world):
    plan, _keys, _records = world
    assert blocklist_domains(plan) == ["kb-bounces.kbmta.net", "kb-bounces.kibamail.com", "kb-bounces.shop.example", "kbmta.net"]
    del plan["bounce_domains"]
    assert blocklist_domains(plan) == ["kb-bounces.kbmta.net", "kbmta.net"]


def test_listed_ip_and_bounce_domain_only(world):
    plan, keys, records = world
    records[("3.2.0.192.bl.test", "A")] = ["127.0.0.4"]
    records[("3.2.0.192.bl.test", "TXT")] = ["listed for spam"]
    records[("kb-bounces.kbmta.net.dbl.test", "A")] = ["127.0.1.2"]
    results, options = run(plan, records, keys, ["blocklist"], dnsbl_zones=["bl.test"], dnsbl_domain_zones=["dbl.test"])
    # Only the blocklist lookups ran: zones, 5 IPs, 4 names.
    assert {r.check for r in results} == {"dnsbl_zone", "dnsbl"}
    assert by(results, "dnsbl_zone", "bl.test", OK) and "IP blocklist" in by(results, "dnsbl_zone", "bl.test")[0].reason
    assert by(results, "dnsbl_zone", "dbl.test", OK) and "domain blocklist" in by(results, "dnsbl_zone", "dbl.test")[0].reason
    assert sorted((r.subject, r.category) for r in by(results, "dnsbl", status=FAILURE)) == [
        ("192.0.2.3", "ip"), ("kb-bounces.kbmta.net", "platform")]
    assert "bl.test (127.0.0.4: listed for spam)" in by(results, "dnsbl", "192.0.2.3")[0].reason
    assert "request delisting" in by(results, "dnsbl", "kb-bounces.kbmta.net")[0].fix
    assert len(by(results, "dnsbl", status=OK)) == 4 + 3
    states = {(x.subject, x.zone): x.state for x in options.listings}
    assert len(states) == 9
    assert states[("192.0.2.3", "bl.test")] == LISTED and states[("kb-bounces.kbmta.net", "dbl.test")] == LISTED
    assert sum(1 for s in states.values() if s == CLEAR) == 7
    assert [(z.name, z.kind, z.usable) for z in options.blocklist_zones] == [("bl.test", IP_KIND, True), ("dbl.test", DOMAIN_KIND, True)]


def test_blocklists_are_part_of_the_ip_and_platform_checks(world):
    plan, keys, records = world
    results, options = run(plan, records, keys, ["ip"], dnsbl_zones=["bl.test"], dnsbl_domain_zones=["dbl.test"])
    assert len(by(results, "dnsbl", status=OK)) == 5 + 4
    assert by(results, "ptr", status=OK)
    assert len(options.listings) == 9
    # Without "ip" or "blocklist" nothing is asked of the lists.
    results, options = run(plan, records, keys, ["customer"], dnsbl_zones=["bl.test"])
    assert not by(results, "dnsbl") and not options.listings


def test_unusable_zone_and_failed_lookups(world):
    plan, keys, records = world
    # A domain list that does not answer its test entry; an IP list that refuses one lookup (Spamhaus' 127.255.255.x).
    records[("2.2.0.192.bl.test", "A")] = ["127.255.255.254"]
    results, options = run(plan, records, keys, ["blocklist"], dnsbl_zones=["bl.test"], dnsbl_domain_zones=["dead.test"])
    assert by(results, "dnsbl_zone", "dead.test", WARNING)
    assert by(results, "dnsbl", "192.0.2.2", WARNING)
    assert not by(results, "dnsbl", "kbmta.net")
    assert [x.state for x in options.listings if x.subject == "192.0.2.2"] == [UNKNOWN]
    text = exposition(options.listings, options.blocklist_zones, results, 1700000000.5)
    found = samples(text)
    assert found[("kb_blocklist_zone_usable", frozenset({("zone", "dead.test"), ("kind", "domain")}))] == 0
    assert found[("kb_blocklist_zone_usable", frozenset({("zone", "bl.test"), ("kind", "ip")}))] == 1
    assert found[("kb_blocklist_lookup_failures", frozenset({("zone", "bl.test")}))] == 1
    assert not [k for k in found if k[0] == "kb_blocklist_listed" and ("subject", "192.0.2.2") in k[1]]


def test_exposition(world):
    plan, keys, records = world
    records[("3.2.0.192.bl.test", "A")] = ["127.0.0.4"]
    results, options = run(plan, records, keys, ["blocklist"], dnsbl_zones=["bl.test"], dnsbl_domain_zones=["dbl.test"])
    text = exposition(options.listings, options.blocklist_zones, results, 1700000000.5)
    found = samples(text)
    listed = {dict(k[1])["subject"]: v for k, v in found.items() if k[0] == "kb_blocklist_listed"}
    assert listed == {"192.0.2.2": 0, "192.0.2.3": 1, "192.0.2.200": 0, "198.51.100.2": 0, "198.51.100.3": 0,
                      "kbmta.net": 0, "kb-bounces.kbmta.net": 0, "kb-bounces.kibamail.com": 0, "kb-bounces.shop.example": 0}
    assert found[("kb_blocklist_listed", frozenset({("subject", "192.0.2.3"), ("kind", "ip"), ("zone", "bl.test")}))] == 1
    assert found[("kb_blocklist_lookup_failures", frozenset({("zone", "bl.test")}))] == 0
    assert found[("kb_blocklist_last_check_timestamp_seconds", frozenset())] == 1700000000.5
    assert found[("kb_verify_results", frozenset({("category", "ip"), ("check", "dnsbl"), ("status", "failure")}))] == 1
    assert text.count("# TYPE kb_blocklist_listed gauge") == 1
    # The same run gives the same text (sorted): a file that changes only when a figure does.
    assert exposition(list(reversed(options.listings)), options.blocklist_zones, results, 1700000000.5) == text


def test_exposition_escapes_label_values():
    text = exposition([Listing('a"b\\c', DOMAIN_KIND, "z.test", LISTED)], [Zone("z.test", DOMAIN_KIND, True)],
                      [CheckResult("dnsbl", "x", FAILURE, "r")], 0)
    assert 'subject="a\\"b\\\\c"' in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) is missing")
def test_promtool_accepts_the_exposition(world):
    plan, keys, records = world
    results, options = run(plan, records, keys, ["blocklist"], dnsbl_zones=["bl.test"], dnsbl_domain_zones=["dbl.test"])
    text = exposition(options.listings, options.blocklist_zones, results, 1700000000)
    proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
