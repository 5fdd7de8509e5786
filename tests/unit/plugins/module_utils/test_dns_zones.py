# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""reconcile_many against an in-memory provider: order, per-zone failures, the pool's bound, settling."""

from __future__ import annotations

import threading
import time
from typing import Dict, List

import pytest

from ansible_collections.kibamail.email_platform.plugins.module_utils import dns_records as R
from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_zones import (
    failure_message,
    reconcile_many,
    summarize,
)

ZONES = ["z%02d.example" % n for n in range(12)]


class MemoryProvider:
    """Zones held in a dict shared by every thread's provider; counts the calls in flight."""

    def __init__(self, store: Dict[str, List[R.RecordSet]], stats: dict, fail_read=(), fail_apply=(),
                 delay: float = 0.0) -> None:
        self.store, self.stats, self.delay = store, stats, delay
        self.fail_read, self.fail_apply = fail_read, fail_apply

    def _enter(self) -> None:
        with self.stats["lock"]:
            self.stats["now"] += 1
            self.stats["most"] = max(self.stats["most"], self.stats["now"])
        time.sleep(self.delay)
        with self.stats["lock"]:
            self.stats["now"] -= 1

    def read(self, zone, keys=()):
        self._enter()
        if zone in self.fail_read:
            raise R.ProviderError("zone transfer of %s was refused" % zone)
        return list(self.store.get(zone, []))

    def apply(self, plan):
        self._enter()
        if plan.zone in self.fail_apply:
            raise R.ProviderError("update of zone %s failed with SERVFAIL" % plan.zone)
        held = {rrset.key: rrset for rrset in self.store.get(plan.zone, [])}
        for change in plan.changes:
            held.pop(change.key, None)
            if change.after is not None:
                held[change.key] = change.after
        self.store[plan.zone] = list(held.values())


class SettlingProvider(MemoryProvider):
    """A provider whose writes return actions that are waited for later, all zones together."""

    fail_settle = (ZONES[5],)

    def start(self, plan):
        self.apply(plan)
        return ["action-of-%s" % plan.zone]

    def settle(self, pending):
        self.stats["settled"] = dict(pending)
        return {zone: "the Hetzner Cloud API reports failed actions: action 7 (create_rrset): boom"
                for zone in pending if zone in self.fail_settle}


def requests(zones=ZONES, value="v=DMARC1; p=none"):
    return [R.ZoneRequest(zone, [{"name": "_dmarc", "type": "TXT", "values": [value]}]) for zone in zones]


@pytest.fixture
def stats():
    return {"lock": threading.Lock(), "now": 0, "most": 0}


def test_results_come_in_the_order_given_and_rerun_is_unchanged(stats):
    store: Dict[str, List[R.RecordSet]] = {}
    first = reconcile_many(lambda: MemoryProvider(store, stats), requests(), False, 4)
    assert [r["zone"] for r in first] == ZONES
    assert all(r["changed"] and not r["failed"] for r in first)
    again = reconcile_many(lambda: MemoryProvider(store, stats), requests(), False, 4)
    assert not any(r["changed"] for r in again)
    assert summarize(again)["unchanged"] == 2 * len(ZONES)
    assert failure_message(again) is None


def test_check_mode_writes_nothing(stats):
    store: Dict[str, List[R.RecordSet]] = {}
    result = reconcile_many(lambda: MemoryProvider(store, stats), requests(), True, 4)
    assert all(r["changed"] for r in result) and store == {}
    assert result[0]["diff"][0]["after"] == '_dmarc.z00.example. 3600 IN TXT "v=DMARC1; p=none"\n'


def test_the_pool_never_runs_more_zones_than_the_bound(stats):
    store: Dict[str, List[R.RecordSet]] = {}
    reconcile_many(lambda: MemoryProvider(store, stats, delay=0.02), requests(), False, 3)
    assert stats["most"] == 3


def test_one_provider_per_thread(stats):
    made = []
    store: Dict[str, List[R.RecordSet]] = {}

    def new():
        made.append(threading.get_ident())
        return MemoryProvider(store, stats, delay=0.01)

    reconcile_many(new, requests(), False, 2)
    assert len(made) == len(set(made)) <= 2


def test_a_zone_failing_before_or_while_writing_says_so(stats):
    store: Dict[str, List[R.RecordSet]] = {}
    result = reconcile_many(lambda: MemoryProvider(store, stats, fail_read=[ZONES[1]], fail_apply=[ZONES[2]]),
                            requests(), False, 4)
    unread, unwritten = result[1], result[2]
    assert unread == {"zone": ZONES[1], "changed": False, "failed": True,
                      "msg": "zone z01.example: zone transfer of z01.example was refused; nothing was written to it"}
    assert unwritten["changed"] is True and unwritten["failed"] is True
    assert unwritten["msg"] == ("zone z02.example: update of zone z02.example failed with SERVFAIL; writing had "
                                "started, so some of the changes listed may be applied: run again once fixed")
    assert unwritten["summary"]["create"] == 2
    assert sorted(store) == sorted(set(ZONES) - {ZONES[1], ZONES[2]})
    message = failure_message(result)
    assert message.startswith("2 of 12 zones failed: zone z01.example: ")
    assert message.endswith("The other 10 zones were reconciled (10 changed); see zones for each zone's result")


def test_actions_of_every_zone_are_settled_together_and_failures_land_on_their_zone(stats):
    store: Dict[str, List[R.RecordSet]] = {}
    result = reconcile_many(lambda: SettlingProvider(store, stats), requests(), False, 4)
    assert stats["settled"] == {zone: ["action-of-%s" % zone] for zone in ZONES}
    assert [r["zone"] for r in result if r["failed"]] == [ZONES[5]]
    assert "action 7 (create_rrset): boom; writing had started" in result[5]["msg"]


def test_check_mode_settles_nothing(stats):
    store: Dict[str, List[R.RecordSet]] = {}
    reconcile_many(lambda: SettlingProvider(store, stats), requests(), True, 4)
    assert "settled" not in stats


def test_bad_input_is_refused_for_every_zone_before_any_read(stats):
    bad = requests()
    bad[3] = R.ZoneRequest(ZONES[3], [{"name": "x", "type": "MX", "values": ["mx.example."]}])
    bad[7] = R.ZoneRequest(ZONES[7], [{"name": "outside.test.", "type": "A", "values": ["192.0.2.1"]}])
    with pytest.raises(R.RecordError) as caught:
        reconcile_many(lambda: MemoryProvider({}, stats, delay=0), bad, False, 4)
    message = str(caught.value)
    assert message.startswith("2 of 12 zones cannot be published as given, so nothing was written: zone z03.example: ")
    assert "zone z07.example: records[0]: outside.test is not inside zone z07.example" in message
    assert stats["most"] == 0
