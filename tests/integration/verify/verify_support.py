# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Helpers the verification tests share: the lab's spec, DKIM keys and their encodings, names.

A module of its own (not conftest) so the test modules import it by a name no other
folder uses: with several folders on one pytest command line, ``conftest`` may be
another folder's. The fixtures stay in conftest.py.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

NAME = "smtp.kbmta.test"   # the name the loopback SMTP server's certificate carries
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
