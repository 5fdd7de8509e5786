# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The DNS checks against a real BIND: the healthy lab passes; each broken record is named with its fix."""

from __future__ import annotations

import ipaddress

from verify_support import DNSBL_ZONE, b64, pem, rsa_key

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_checks import DnsOptions, run_dns_checks
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import DnsPythonResolver
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import FAILURE, OK


def verify(plan, server, dkim_keys):
    resolver = DnsPythonResolver("127.0.0.1", server.port, timeout=2.0)
    options = DnsOptions(dkim_public_keys={d: pem(k) for d, k in dkim_keys.items()}, dnsbl_zones=[DNSBL_ZONE], workers=16)
    return run_dns_checks(plan, resolver, options)


def failures(results):
    return [r for r in results if r.status == FAILURE]


def one(results, check, subject):
    found = [r for r in results if r.check == check and r.subject == subject]
    assert len(found) == 1, (check, subject, found)
    return found[0]


def test_healthy_platform_has_no_failure(plan, dkim_keys, healthy, serve):
    results = verify(plan, serve(healthy), dkim_keys)
    assert failures(results) == []
    sending = sorted(plan["ptr_map"])
    assert len(sending) > 400  # two /24 pools
    for check in ("ptr", "fcrdns", "helo", "dnsbl"):
        assert sorted(r.subject for r in results if r.check == check and r.status == OK) == sending, check
    for domain in plan["customers"]:
        for check in ("dkim", "dkim_key_size", "return_path", "return_path_spf", "dmarc", "dmarc_alignment"):
            assert one(results, check, domain).status == OK, (check, domain)
    assert one(results, "spf_covers_sending_ips", plan["spf_domain"]).status == OK
    assert one(results, "dnsbl_zone", DNSBL_ZONE).status == OK


def test_wrong_dkim_key(plan, dkim_keys, healthy, serve):
    conf = plan["customers"]["kibamail.com"]
    healthy[(conf["dkim_name"], "TXT")] = ["v=DKIM1; k=rsa; p=" + b64(rsa_key())]
    results = verify(plan, serve(healthy), dkim_keys)
    assert [(r.check, r.subject) for r in failures(results)] == [("dkim", "kibamail.com")]
    found = one(results, "dkim", "kibamail.com")
    assert "is not the key the MTAs sign with" in found.reason
    assert found.fix.startswith("publish kb1._domainkey.kibamail.com TXT 'v=DKIM1; k=rsa; p=%s'" % b64(dkim_keys["kibamail.com"]))


def test_missing_ptr(plan, dkim_keys, healthy, serve):
    ip = sorted(plan["ptr_map"], key=ipaddress.ip_address)[7]
    del healthy[(ipaddress.ip_address(ip).reverse_pointer, "PTR")]
    results = verify(plan, serve(healthy), dkim_keys)
    assert [(r.check, r.subject) for r in failures(results)] == [("ptr", ip)]
    found = one(results, "ptr", ip)
    assert "has no PTR record" in found.reason
    assert found.fix.startswith("set the reverse DNS (PTR) of %s to %s" % (ip, plan["ptr_map"][ip]))


def test_spf_leaving_out_a_subnet(plan, dkim_keys, healthy, serve):
    healthy[(plan["spf_domain"], "TXT")] = ["v=spf1 ip4:192.0.2.0/24 -all"]
    results = verify(plan, serve(healthy), dkim_keys)
    marketing = plan["pools"]["marketing"]["sending_ip_count"]
    found = one(results, "spf_covers_sending_ips", plan["spf_domain"])
    assert found.status == FAILURE
    assert "fail for {0} IPs (all {0} sending IPs of pool marketing (203.0.113.0/24))".format(marketing) in found.reason
    planned = [rr for rr in plan["zones"]["kbmta.net"] if rr["name"] == plan["spf_domain"]][0]["values"][0]
    assert found.fix.startswith("the record must cover ip4:203.0.113.0/24: publish spf.kbmta.net TXT") and planned in found.fix
    # only what depends on the marketing subnet fails
    failing = {(r.check, r.subject) for r in failures(results)}
    assert ("return_path_spf", "shop.example") in failing and ("return_path_spf", "kibamail.com") not in failing
    assert all(r.subject.startswith("203.0.113.") for r in failures(results) if r.category == "ip")


def test_missing_return_path_cname(plan, dkim_keys, healthy, serve):
    conf = plan["customers"]["kibamail.com"]
    del healthy[(conf["return_path"], "CNAME")]
    results = verify(plan, serve(healthy), dkim_keys)
    assert sorted((r.check, r.subject) for r in failures(results)) == [("return_path", "kibamail.com"),
                                                                       ("return_path_spf", "kibamail.com")]
    found = one(results, "return_path", "kibamail.com")
    assert "does not exist (NXDOMAIN)" in found.reason
    assert found.fix == "publish kb-bounces.kibamail.com CNAME kb-bounces.kbmta.net. (the platform manages the zone " \
                        "kibamail.com: re-apply the DNS records (playbooks/dns.yml))"


def test_listed_ip(plan, dkim_keys, healthy, serve):
    ip = sorted(plan["ptr_map"], key=ipaddress.ip_address)[0]
    name = ".".join(reversed(ip.split("."))) + "." + DNSBL_ZONE
    healthy[(name, "A")] = ["127.0.0.3"]
    healthy[(name, "TXT")] = ["listed: spam trap hits"]
    results = verify(plan, serve(healthy), dkim_keys)
    assert [(r.check, r.subject) for r in failures(results)] == [("dnsbl", ip)]
    assert "spam trap hits" in one(results, "dnsbl", ip).reason
