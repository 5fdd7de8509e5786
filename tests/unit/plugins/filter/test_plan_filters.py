# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""placeholder_addresses applies the plan's placeholder rule to values the plan does not see."""

from __future__ import annotations

from ansible_collections.kibamail.email_platform.plugins.filter.plan import FilterModule, placeholder_addresses


def test_documentation_benchmark_and_changeme_values_are_placeholders():
    found = placeholder_addresses(["198.18.0.40", "192.0.2.7", "203.0.113.0/28", "CHANGEME-mon"])
    assert found == ["198.18.0.40, a documentation/benchmark address", "192.0.2.7, a documentation/benchmark address",
                     "203.0.113.0/28, a documentation/benchmark address", "CHANGEME-mon"]


def test_real_addresses_and_non_addresses_are_not():
    assert placeholder_addresses(["10.0.0.40", "2a01:4f8::40", "mon.example.net", None]) == []


def test_the_filter_is_registered():
    assert FilterModule().filters()["placeholder_addresses"] is placeholder_addresses
