# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures: a plan built by the collection's own plan code, DKIM keys, a loopback BIND."""

from __future__ import annotations

import base64
import os
import shutil
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, os.path.dirname(__file__))

from ansible_collections.kibamail.email_platform.plugins.module_utils.plan import build_plan  # noqa: E402
from loopback_bind import NAMED, LoopbackBind, platform_records, zones_for  # noqa: E402

DNSBL_ZONE = "bl.kbmta.test"


def lab_spec(customers=None):
    """The lab's shape: two /24 pools, two MTAs and one load balancer each."""
    return {
        "lab": True,
        "domain": "kbmta.net",
        "ttl": 300,
        "pools": {
            "transactional": {"subnet": "192.0.2.0/24", "lb_label": "smtp"},
            "marketing": {"subnet": "203.0.113.0/24", "profile": "marketing", "lb_label": "smtp-mkg"},
        },
        "groups": {
            "mta_transactional": ["us-mta1", "us-mta2"], "mta_marketing": ["eu-mta1", "eu-mta2"],
            "mta": ["us-mta1", "us-mta2", "eu-mta1", "eu-mta2"],
            "lb_transactional": ["lb-transactional"], "lb_marketing": ["lb-marketing"],
        },
        "hosts": {
            "us-mta1": {"mta_address": "198.51.100.21"}, "us-mta2": {"mta_address": "198.51.100.22"},
            "eu-mta1": {"mta_address": "198.51.100.31"}, "eu-mta2": {"mta_address": "198.51.100.32"},
            "lb-transactional": {"lb_address": "198.51.100.10"}, "lb-marketing": {"lb_address": "198.51.100.11"},
        },
        "customers": customers if customers is not None else [
            {"domain": "kibamail.com", "pool": "transactional", "zone_managed": True, "dmarc_policy": "quarantine",
             "dmarc_rua": "mailto:dmarc@kibamail.com"},
            {"domain": "shop.example", "pool": "marketing", "zone_managed": False, "dmarc_policy": "reject"},
        ],
    }


def rsa_key(bits=2048):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.public_key()


def pem(public_key) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def b64(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@pytest.fixture(scope="session")
def plan():
    return build_plan(lab_spec())


@pytest.fixture(scope="session")
def dkim_keys(plan):
    return {domain: rsa_key() for domain in plan["customers"]}


@pytest.fixture
def healthy(plan, dkim_keys):
    """What a healthy platform publishes, plus a DNS blocklist that lists nobody."""
    records = platform_records(plan, {d: b64(k) for d, k in dkim_keys.items()})
    records[("2.0.0.127." + DNSBL_ZONE, "A")] = ["127.0.0.2"]
    records[("2.0.0.127." + DNSBL_ZONE, "TXT")] = ["test entry (RFC 5782)"]
    return records


@pytest.fixture
def serve(plan):
    """serve(records) -> a running LoopbackBind for them (stopped after the test)."""
    if not os.path.exists(NAMED) and not shutil.which("named"):
        pytest.fail("BIND (named) is not installed: apt-get install bind9")
    started = []

    def start(records):
        server = LoopbackBind(records, zones_for(records, list(plan["zones"]) + [DNSBL_ZONE])).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)
