# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A small published plan for the DNS checks' unit tests: two pools, one MTA each, two customers,
and every record a healthy platform serves for it."""

from __future__ import annotations

import base64
import functools

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import reverse_name

SPF = "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all"


def _ips(mta, fqdn, addrs):
    return [{"ip": a, "ptr": fqdn, "helo": fqdn, "transport": "kb-" + a.replace(".", "-")} for a in addrs]


def make_plan():
    """A small plan in the shape of docs/model.md: two pools, one MTA each, two customers."""
    us = ["192.0.2.2", "192.0.2.3", "192.0.2.200"]
    eu = ["198.51.100.2", "198.51.100.3"]
    mtas = {
        "us-mta1": {"pool": "transactional", "profile": "transactional", "fqdn": "us-mta1.kbmta.net",
                    "address": "203.0.113.21", "sending_ips": _ips("us-mta1", "us-mta1.kbmta.net", us)},
        "eu-mta1": {"pool": "marketing", "profile": "marketing", "fqdn": "eu-mta1.kbmta.net",
                    "address": "203.0.113.31", "sending_ips": _ips("eu-mta1", "eu-mta1.kbmta.net", eu)},
    }
    customers, zones = {}, {}
    for domain, pool in (("kibamail.com", "transactional"), ("shop.example", "marketing")):
        customers[domain] = {
            "pool": pool, "dkim_selector": "kb1", "dkim_name": "kb1._domainkey." + domain,
            "return_path": "kb-bounces." + domain, "return_path_target": "kb-bounces.kbmta.net",
            "dmarc_name": "_dmarc." + domain, "dmarc_value": "v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:d@" + domain,
            "zone_managed": domain == "kibamail.com", "logins": [],
        }
        zones[domain] = [
            {"name": "kb-bounces." + domain, "type": "CNAME", "ttl": 3600, "values": ["kb-bounces.kbmta.net."]},
            {"name": "_dmarc." + domain, "type": "TXT", "ttl": 3600, "values": [customers[domain]["dmarc_value"]]},
        ]
    zones["kbmta.net"] = [
        {"name": "spf.kbmta.net", "type": "TXT", "ttl": 3600, "values": [SPF]},
        {"name": "kb-bounces.kbmta.net", "type": "TXT", "ttl": 3600, "values": ["v=spf1 include:spf.kbmta.net -all"]},
        {"name": "kb-bounces.kbmta.net", "type": "MX", "ttl": 3600, "values": ["10 eu-mta1.kbmta.net.", "10 us-mta1.kbmta.net."]},
        {"name": "smtp.kbmta.net", "type": "A", "ttl": 3600, "values": ["203.0.113.10"]},
        {"name": "smtp-mkg.kbmta.net", "type": "A", "ttl": 3600, "values": ["203.0.113.11"]},
        {"name": "us-mta1.kbmta.net", "type": "A", "ttl": 3600, "values": us},
        {"name": "us-mta1.kbmta.net", "type": "TXT", "ttl": 3600, "values": ["v=spf1 include:spf.kbmta.net -all"]},
        {"name": "eu-mta1.kbmta.net", "type": "A", "ttl": 3600, "values": eu},
        {"name": "eu-mta1.kbmta.net", "type": "TXT", "ttl": 3600, "values": ["v=spf1 include:spf.kbmta.net -all"]},
    ]
    return {
        "domain": "kbmta.net", "spf_domain": "spf.kbmta.net", "bounce_domain": "kb-bounces.kbmta.net", "ttl": 3600,
        "pools": {"transactional": {"subnet": "192.0.2.0/24", "lb_fqdn": "smtp.kbmta.net", "mtas": ["us-mta1"]},
                  "marketing": {"subnet": "198.51.100.0/24", "lb_fqdn": "smtp-mkg.kbmta.net", "mtas": ["eu-mta1"]}},
        "mtas": mtas,
        "load_balancers": {
            "lb-transactional": {"pool": "transactional", "fqdn": "smtp.kbmta.net", "address": "203.0.113.10", "backends": []},
            "lb-marketing": {"pool": "marketing", "fqdn": "smtp-mkg.kbmta.net", "address": "203.0.113.11", "backends": []},
        },
        "ptr_map": {e["ip"]: e["ptr"] for m in mtas.values() for e in m["sending_ips"]},
        "customers": customers,
        "zones": zones,
    }


@functools.lru_cache(maxsize=None)
def rsa_public_b64(bits: int, seed: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def published(plan, dkim):
    """Every record the plan says to publish, plus PTRs and DKIM keys: what a healthy platform serves."""
    records = {}
    for rrsets in plan["zones"].values():
        for rr in rrsets:
            records[(rr["name"], rr["type"])] = list(rr["values"])
    for ip, ptr in plan["ptr_map"].items():
        records[(reverse_name(ip), "PTR")] = [ptr + "."]
    for domain, conf in plan["customers"].items():
        records[(conf["dkim_name"], "TXT")] = ["v=DKIM1; k=rsa; p=" + dkim[domain]]
    return records


def by(results, check, subject=None, status=None):
    return [r for r in results if r.check == check and (subject is None or r.subject == subject)
            and (status is None or r.status == status)]
