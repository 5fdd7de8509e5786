# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers the Robot tests share: the stand-in's account and seed state, the PTRs of two /24 pools.

A module of its own (not conftest) so the test modules import it by a name no other
folder uses: with several folders on one pytest command line, ``conftest`` may be
another folder's. The fixtures stay in conftest.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

ROOT = Path(__file__).resolve().parents[3]

USER = "kb-test"
PASSWORD = "correct-horse"
SERVERS = [
    {"server_ip": "203.0.113.21", "server_number": 101, "server_name": "us-mta1"},
    {"server_ip": "203.0.113.22", "server_number": 102, "server_name": "us-mta2"},
    {"server_ip": "203.0.113.31", "server_number": 201, "server_name": "eu-mta1"},
]
TRANSACTIONAL = "192.0.2.0/24"
MARKETING = "198.51.100.0/24"


def seed() -> Dict[str, Any]:
    return {
        "servers": SERVERS,
        "subnets": [
            {"ip": "192.0.2.0", "mask": 24, "gateway": "192.0.2.1", "server_ip": None, "server_number": None,
             "failover": False, "locked": False},
            {"ip": "198.51.100.0", "mask": "24", "gateway": "198.51.100.1", "server_ip": "203.0.113.31",
             "server_number": 201, "failover": False, "locked": False},
        ],
        "vswitches": [{"id": 4001, "name": "kb-transactional", "vlan": 4001, "cancelled": False,
                       "server": [{"server_ip": "203.0.113.21", "server_number": 101, "status": "ready"}],
                       "subnet": [{"ip": "192.0.2.0", "mask": 24, "gateway": "192.0.2.1"}]}],
        "products": {"101": [{"id": "subnet_ipv4_29", "name": "Additional subnet /29"}]},
        # Robot's own choice: what orders deliver comes from here, never from the request.
        "free_ranges": ["203.0.113.64/26"],
        "order_ready_after": 1.0,
        "server_products": [{"id": "AX42", "name": "AX42", "location": ["FSN1", "NBG1"],
                             "dist": ["Debian 12 base"]}],
    }


def two_pools_ptr_map() -> Dict[str, str]:
    """PTRs of every usable address of both /24s, as the plan would give them."""
    ptrs: Dict[str, str] = {}
    for prefix, names in (("192.0.2.", ("us-mta1", "us-mta2")), ("198.51.100.", ("eu-mta1", "eu-mta2"))):
        for last in range(1, 255):
            ptrs[prefix + str(last)] = "{0}.kbmta.net".format(names[0] if last < 128 else names[1])
    return ptrs
