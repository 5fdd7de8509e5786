# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Robot client: wire format, error envelope, absence, retries and their bounds."""

from __future__ import annotations

from typing import Any, List, Tuple

import pytest

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import (
    RetryPolicy,
    RobotAuthError,
    RobotClient,
    RobotError,
    RobotRateLimitError,
    encode_form,
    mask_to_int,
    match_pools,
    normalize_subnet,
)
from ansible_collections.kibamail.email_platform.tests.unit.plugins.robot_conversation import AUTH, Script, err


def client(script: Script, **policy: Any) -> Tuple[RobotClient, List[float]]:
    slept: List[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    c = RobotClient(base_url="http://robot.test/", user="robot", password="s3cret", transport=script,
                    policy=RetryPolicy(**policy), sleep=sleep, clock=lambda: clock[0])
    return c, slept


def test_form_encoding_sorts_keys_and_repeats_list_items() -> None:
    assert encode_form({"test": True, "ptr": "a.example", "server": ["1.2.3.4", "5.6.7.8"]}) == \
        "ptr=a.example&server%5B%5D=1.2.3.4&server%5B%5D=5.6.7.8&test=true"
    assert encode_form(None) is None


def test_request_sends_basic_auth_form_body_and_decodes_json() -> None:
    script = Script([(201, {"rdns": {"ip": "192.0.2.7", "ptr": "x.example"}})])
    c, _slept = client(script)
    answer = c.request("PUT", "/rdns/192.0.2.7", form={"ptr": "x.example"})
    assert answer == {"rdns": {"ip": "192.0.2.7", "ptr": "x.example"}}
    req = script.requests[0]
    assert (req.method, req.url, req.body) == ("PUT", "http://robot.test/rdns/192.0.2.7", "ptr=x.example")
    assert req.headers["Authorization"] == AUTH
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_get_has_no_body_and_query_is_encoded() -> None:
    script = Script([(200, [])])
    c, _slept = client(script)
    c.get_list("/rdns", query={"server_ip": "203.0.113.21"})
    assert script.wire(base="") == [("GET", "http://robot.test/rdns?server_ip=203.0.113.21", None)]
    assert "Content-Type" not in script.requests[0].headers


def test_empty_list_is_404_not_found() -> None:
    c, _slept = client(Script([err(404, "NOT_FOUND")]))
    assert c.get_list("/subnet") == []


def test_expected_not_found_code_is_absence_and_others_raise() -> None:
    c, _slept = client(Script([err(404, "RDNS_NOT_FOUND"), err(404, "IP_NOT_FOUND")]))
    assert c.request("GET", "/rdns/192.0.2.7", absent_codes=("RDNS_NOT_FOUND",)) is None
    with pytest.raises(RobotError) as info:
        c.request("GET", "/rdns/192.0.2.8", absent_codes=("RDNS_NOT_FOUND",))
    assert info.value.code == "IP_NOT_FOUND"
    assert "GET /rdns/192.0.2.8 failed: 404 IP_NOT_FOUND" in str(info.value)


def test_wrong_password_fails_at_once_without_retry() -> None:
    script = Script([err(401, "UNAUTHORIZED"), (200, [])])
    c, slept = client(script)
    with pytest.raises(RobotAuthError) as info:
        c.request("GET", "/rdns")
    assert len(script.requests) == 1 and slept == []
    assert "10 minutes" in str(info.value) and "robot_password" in str(info.value)


def test_rate_limit_waits_the_interval_then_succeeds() -> None:
    script = Script([err(403, "RATE_LIMIT_EXCEEDED", max_request=500, interval=7), (200, {"ok": 1})])
    progress: List[str] = []
    c, slept = client(script, rate_limit_timeout=60)
    c.progress = progress.append
    assert c.request("POST", "/rdns/192.0.2.7", form={"ptr": "a.example"}) == {"ok": 1}
    assert slept == [7]
    assert [r.body for r in script.requests] == ["ptr=a.example", "ptr=a.example"]
    assert any("waiting 7s" in line for line in progress)
    assert c.rate_limit_waited == 7


def test_rate_limit_wait_is_cut_to_the_budget_then_fails_with_resume_hint() -> None:
    limited = err(403, "RATE_LIMIT_EXCEEDED", max_request=500, interval=3600)
    script = Script([limited, limited])
    c, slept = client(script, rate_limit_timeout=100)
    with pytest.raises(RobotRateLimitError) as info:
        c.request("GET", "/rdns")
    assert slept == [100]
    assert len(script.requests) == 2
    assert "rate_limit_timeout" in str(info.value) and "resumes" in str(info.value)


def test_zero_budget_fails_at_first_rate_limit() -> None:
    script = Script([err(403, "RATE_LIMIT_EXCEEDED", max_request=1, interval=5)])
    c, slept = client(script, rate_limit_timeout=0)
    with pytest.raises(RobotRateLimitError):
        c.request("GET", "/rdns")
    assert slept == []


def test_maintenance_is_retried_a_bounded_number_of_times() -> None:
    script = Script([err(503, "MAINTENANCE")] * 3)
    c, slept = client(script, transient_retries=2, transient_delay=1)
    with pytest.raises(RobotError) as info:
        c.request("GET", "/subnet")
    assert len(script.requests) == 3 and slept == [1, 2]
    assert "maintenance" in str(info.value)


def test_unrepeatable_request_is_never_retried() -> None:
    script = Script([err(503, "MAINTENANCE"), (201, {})])
    c, slept = client(script, transient_retries=2)
    with pytest.raises(RobotError):
        c.request("POST", "/order/server_addon/transaction", form={"test": True}, repeatable=False)
    assert len(script.requests) == 1 and slept == []


def test_network_error_is_retried_then_reported() -> None:
    script = Script([(0, OSError("timed out")), (200, {"ok": True})])
    c, slept = client(script, transient_retries=1, transient_delay=3)
    assert c.request("GET", "/subnet") == {"ok": True}
    assert slept == [3]


def test_invalid_input_names_missing_and_invalid_parameters() -> None:
    c, _slept = client(Script([err(400, "INVALID_INPUT", missing=["ptr"], invalid=["ip"])]))
    with pytest.raises(RobotError) as info:
        c.request("POST", "/rdns/192.0.2.7", form={})
    assert "missing parameters: ptr" in str(info.value) and "invalid parameters: ip" in str(info.value)


@pytest.mark.parametrize("raw, expected", [(24, 24), ("29", 29), ("/28", 28), ("255.255.255.0", 24)])
def test_mask_is_an_integer_whatever_robot_sends(raw: Any, expected: int) -> None:
    assert mask_to_int(raw) == expected


def test_subnet_routing_target() -> None:
    on_server = normalize_subnet({"subnet": {"ip": "192.0.2.0", "mask": "24", "gateway": "192.0.2.1",
                                             "server_ip": "203.0.113.21", "server_number": "321", "failover": False}})
    assert on_server["cidr"] == "192.0.2.0/24" and on_server["mask"] == 24
    assert on_server["routing_target"] == {"type": "server", "server_ip": "203.0.113.21", "server_number": 321,
                                           "vswitch_id": None}
    on_vswitch = normalize_subnet({"ip": "198.51.100.0", "mask": 24, "server_ip": None}, {"198.51.100.0/24": 4001})
    assert on_vswitch["routing_target"]["type"] == "vswitch" and on_vswitch["routing_target"]["vswitch_id"] == 4001


def test_match_pools_reports_missing_pools() -> None:
    subnets = [normalize_subnet({"ip": "192.0.2.0", "mask": 24, "server_ip": "203.0.113.21"})]
    matched = match_pools(subnets, {"transactional": {"subnet": "192.0.2.0/24"}, "marketing": {"subnet": "198.51.100.0/24"}})
    assert matched["transactional"]["cidr"] == "192.0.2.0/24"
    assert matched["marketing"] is None
