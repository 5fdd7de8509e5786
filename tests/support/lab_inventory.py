# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the lab inventory says, for tests that run its playbooks against their own servers."""

from __future__ import annotations

from pathlib import Path
from typing import List

import yaml

ROOT = Path(__file__).resolve().parents[2]


def lab_customer_domains() -> List[str]:
    """Every customer domain of inventories/lab: dns.yml publishes a zone and needs a DKIM key for each."""
    with open(ROOT / "inventories" / "lab" / "group_vars" / "all" / "platform.yml", encoding="utf-8") as handle:
        return [customer["domain"] for customer in yaml.safe_load(handle)["platform_customers"]]
