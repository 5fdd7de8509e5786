# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's shape as a plan spec, for the suites and benchmarks that plan without an inventory."""

from __future__ import annotations


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
