# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RdnsSession: rate-limit waits as long as the window needs, on a clock the test drives."""

from __future__ import annotations

from typing import Any, List, Tuple

import pytest

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import (
    HttpRequest, HttpResponse, RetryPolicy, RobotClient, RobotRateLimitError,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.robot_rdns import PtrChange, RdnsSession
from ansible_collections.kibamail.email_platform.tests.unit.plugins.robot_conversation import URL, Script, err


class Clock:
    """Every request takes ``step`` seconds; sleeping moves the clock on."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step
        self.slept: List[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def session(answers: List[Tuple[int, Any]], budget: float, step: float = 10.0) -> Tuple[RdnsSession, Script, Clock]:
    clock = Clock(step)
    script = Script(answers)

    def transport(request: HttpRequest, timeout: float) -> HttpResponse:
        clock.now += clock.step
        return script(request, timeout)

    client = RobotClient(URL, "robot", "s3cret", transport, policy=RetryPolicy(rate_limit_timeout=0),
                         sleep=clock.sleep, clock=lambda: clock.now)
    return RdnsSession(client, budget), script, clock


def creates(count: int) -> List[PtrChange]:
    return [PtrChange("192.0.2.{0}".format(n), "create", None, "m{0}.example".format(n)) for n in range(1, count + 1)]


def test_waits_until_the_oldest_request_leaves_the_window_then_paces() -> None:
    """Robot allows 3 requests per 60 s. Requests take 10 s each (sent at 1000, 1010, 1020)."""
    limited = err(403, "RATE_LIMIT_EXCEEDED", max_request=3, interval=60)
    rdns, script, clock = session([(201, {})] * 3 + [limited] + [(201, {})] * 3, budget=600)
    for change in creates(6):
        rdns.write(change)
    # The 4th PUT (sent at 1030) is refused at 1040; the oldest accepted one (1000) leaves the window at
    # 1060: wait 20 s, not the whole 60 s interval. From then on the session paces itself: no second 403.
    assert clock.slept[0] == 20
    assert [r.method for r in script.requests] == ["PUT"] * 7
    assert clock.slept == [20]
    assert rdns.waits[0] == {"request": "PUT /rdns/192.0.2.4", "seconds": 20}
    assert len(rdns.waits) == len(clock.slept)


def test_a_window_full_of_other_clients_requests_is_waited_out_whole() -> None:
    limited = err(403, "RATE_LIMIT_EXCEEDED", max_request=500, interval=3600)
    rdns, script, clock = session([limited, (201, {})], budget=7200)
    rdns.write(creates(1)[0])
    assert clock.slept == [3600] and len(script.requests) == 2


def test_a_wait_beyond_the_budget_fails_at_once() -> None:
    limited = err(403, "RATE_LIMIT_EXCEEDED", max_request=500, interval=3600)
    rdns, _script, clock = session([limited], budget=600)
    with pytest.raises(RobotRateLimitError) as info:
        rdns.write(creates(1)[0])
    assert clock.slept == []
    assert "next one is possible in 3600s, more than the 600s left of rate_limit_timeout" in str(info.value)
