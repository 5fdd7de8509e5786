# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the plan's own rules: placeholder_addresses (docs in placeholder_addresses.yml)."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible_collections.kibamail.email_platform.plugins.module_utils.plan import placeholder


def placeholder_addresses(values: List[Any]) -> List[str]:
    """The values that are placeholders by the plan's rule, each with why."""
    return [why for why in (placeholder(value) for value in values) if why is not None]


class FilterModule:
    """kibamail.email_platform filters that apply the plan's rules."""

    def filters(self) -> Dict[str, Any]:
        return {"placeholder_addresses": placeholder_addresses}
