# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many zones in one run: each zone reconciled exactly as one zone is, a bounded pool doing the I/O.

The work of one zone is a few round trips (one read, one write per change or
one UPDATE message), so the time of many zones is spent waiting; a pool of
``concurrency`` threads overlaps the waits. The bound keeps the load on the
server (BIND serves 10 zone transfers at once by default) and the burst of API
requests in check. Each thread has its own provider (its own connections).

Input is checked for every zone before any I/O, so bad input writes nothing.
A zone that fails while talking to the provider fails alone: the others are
reconciled and reported, and the failed zone says whether anything was
written to it. Providers with ``start(plan)`` and ``settle(pending_by_zone)``
(Hetzner) send every zone's writes first and then wait for the actions of all
zones together, so 25 actions of any zones share one status request.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_records import (
    ProviderError,
    RecordError,
    ZonePlan,
    ZoneRequest,
    check_request,
    normalize_name,
    plan_request,
    plan_result,
)

SUMMARY_KEYS = ("create", "update", "delete", "unchanged", "kept")


@dataclass
class ZoneOutcome:
    """What happened to one zone of the run."""

    request: ZoneRequest
    plan: Optional[ZonePlan] = None
    pending: Sequence[Any] = ()
    error: Optional[str] = None
    writing: bool = False  # writes were being sent when the error came, so some may be applied

    @property
    def zone(self) -> str:
        return self.plan.zone if self.plan else normalize_name(self.request.zone)


def check_requests(requests: Sequence[ZoneRequest]) -> None:
    """Refuse the bad input of every zone at once, naming each zone, before any I/O."""
    problems = []
    seen: Dict[str, int] = {}
    for index, request in enumerate(requests):
        try:
            zone = normalize_name(request.zone)
            if zone in seen:
                raise RecordError("listed twice (zones[%d] and zones[%d]); merge its records into one entry"
                                  % (seen[zone], index))
            seen[zone] = index
            check_request(request)
        except RecordError as error:
            problems.append("zone %s: %s" % (request.zone, error))
    if problems:
        raise RecordError("%d of %d zones cannot be published as given, so nothing was written: %s"
                          % (len(problems), len(requests), "; ".join(problems)))


def reconcile_many(new_provider: Callable[[], Any], requests: Sequence[ZoneRequest], check_mode: bool,
                   concurrency: int) -> List[Dict[str, Any]]:
    """Reconcile every zone of ``requests``; one result per zone, in the order given.

    ``new_provider()`` makes a provider (called once per thread). A zone's result is
    ``plan_result()``'s, plus ``failed`` and, for a failed zone, ``msg``.
    """
    check_requests(requests)
    local = threading.local()

    def provider() -> Any:
        if not hasattr(local, "provider"):
            local.provider = new_provider()
        return local.provider

    def work(request: ZoneRequest) -> ZoneOutcome:
        outcome = ZoneOutcome(request)
        try:
            outcome.plan = plan_request(provider(), request)
            if outcome.plan.changes and not check_mode:
                outcome.writing = True
                start = getattr(provider(), "start", None)
                if start is not None:
                    outcome.pending = start(outcome.plan)
                else:
                    provider().apply(outcome.plan)
        except (RecordError, ProviderError) as error:
            outcome.error = str(error)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(requests)))) as pool:
        outcomes = list(pool.map(work, requests))
    settle(provider, outcomes)
    return [outcome_result(outcome) for outcome in outcomes]


def settle(provider: Callable[[], Any], outcomes: Sequence[ZoneOutcome]) -> None:
    """Wait for the actions every zone started, together; a zone whose actions failed fails."""
    pending = {outcome.zone: outcome.pending for outcome in outcomes if outcome.pending and not outcome.error}
    if not pending:
        return
    try:
        problems = provider().settle(pending)
    except ProviderError as error:
        problems = dict.fromkeys(pending, str(error))
    for outcome in outcomes:
        if outcome.zone in problems:
            outcome.error = problems[outcome.zone]


def outcome_result(outcome: ZoneOutcome) -> Dict[str, Any]:
    """One zone's result; a failed zone says what was and was not written to it."""
    if outcome.error is None and outcome.plan is not None:
        return dict(plan_result(outcome.plan), failed=False)
    if outcome.plan is None or not outcome.writing:
        result: Dict[str, Any] = dict(plan_result(outcome.plan)) if outcome.plan else {"zone": outcome.zone}
        result.update(changed=False, failed=True,
                      msg="zone %s: %s; nothing was written to it" % (outcome.zone, outcome.error))
        return result
    return dict(plan_result(outcome.plan), changed=True, failed=True,
                msg="zone %s: %s; writing had started, so some of the changes listed may be applied: "
                    "run again once fixed" % (outcome.zone, outcome.error))


def summarize(results: Sequence[Dict[str, Any]]) -> Dict[str, int]:
    """Record-set counts summed over the zones, and how many zones changed and failed."""
    summary = {key: sum(result.get("summary", {}).get(key, 0) for result in results) for key in SUMMARY_KEYS}
    summary.update(zones=len(results), changed_zones=sum(1 for result in results if result["changed"]),
                   failed_zones=sum(1 for result in results if result["failed"]))
    return summary


def failure_message(results: Sequence[Dict[str, Any]]) -> Optional[str]:
    """One message naming every failed zone and what became of the others; None if none failed."""
    failed = [result for result in results if result["failed"]]
    if not failed:
        return None
    summary = summarize(results)
    return "%d of %d zones failed: %s. The other %d zones were reconciled (%d changed); see zones for each " \
           "zone's result" % (len(failed), len(results), "; ".join(result["msg"] for result in failed),
                              len(results) - len(failed), summary["changed_zones"] - sum(
                                  1 for result in failed if result["changed"]))
