# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The result of one verification check, and how results are summed up."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List

OK = "ok"
WARNING = "warning"
FAILURE = "failure"
STATUSES = (OK, WARNING, FAILURE)

# The order results are shown in: the platform first, then what hangs off it.
CATEGORIES = ("platform", "ip", "customer", "host")


@dataclass(frozen=True)
class CheckResult:
    """One finding: which check, about what, how it went, why, and what to change."""

    check: str
    subject: str
    status: str
    reason: str
    fix: str = ""
    category: str = "platform"

    def to_dict(self) -> Dict[str, str]:
        return asdict(self)


def ok(category: str, check: str, subject: str, reason: str) -> CheckResult:
    return CheckResult(check=check, subject=subject, status=OK, reason=reason, fix="", category=category)


def warning(category: str, check: str, subject: str, reason: str, fix: str) -> CheckResult:
    return CheckResult(check=check, subject=subject, status=WARNING, reason=reason, fix=fix, category=category)


def failure(category: str, check: str, subject: str, reason: str, fix: str) -> CheckResult:
    return CheckResult(check=check, subject=subject, status=FAILURE, reason=reason, fix=fix, category=category)


def sort_results(results: Iterable[CheckResult]) -> List[CheckResult]:
    """A stable order: category, then check, then subject."""
    def key(r: CheckResult) -> tuple:
        cat = CATEGORIES.index(r.category) if r.category in CATEGORIES else len(CATEGORIES)
        return (cat, r.check, r.subject)
    return sorted(results, key=key)


def summarize(results: Iterable[CheckResult]) -> Dict[str, int]:
    counts = {status: 0 for status in STATUSES}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    counts["total"] = sum(counts[s] for s in STATUSES)
    return counts
