# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""robot_subnet_info: the exact HTTP conversation of each path through the module."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest

from ansible_collections.kibamail.email_platform.plugins.modules import robot_subnet_info
from ansible_collections.kibamail.email_platform.tests.unit.plugins.robot_conversation import (
    Script, err, run_module,
)


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: Dict[str, Any],
        answers: List[Tuple[int, Any]]) -> Tuple[Dict[str, Any], Script, List[float]]:
    return run_module(robot_subnet_info, monkeypatch, capsys, args, answers)


SUBNET_A = {"ip": "192.0.2.0", "mask": 24, "gateway": "192.0.2.1", "server_ip": None, "server_number": None,
            "failover": False, "locked": False}
SUBNET_B = {"ip": "198.51.100.0", "mask": "24", "gateway": "198.51.100.1", "server_ip": "203.0.113.31",
            "server_number": 201, "failover": False, "locked": False}


def test_empty_account_is_an_empty_list(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {}, [err(404, "NOT_FOUND")])
    assert script.wire() == [("GET", "/subnet", None)]
    assert result["subnets"] == [] and result["changed"] is False


def test_server_filter_and_integer_mask(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"server_ip": "203.0.113.31"}, [(200, [{"subnet": SUBNET_B}])])
    assert script.wire() == [("GET", "/subnet?server_ip=203.0.113.31", None)]
    assert result["subnets"][0]["mask"] == 24 and result["subnets"][0]["routing_target"]["type"] == "server"


def test_vswitch_subnets_are_resolved(monkeypatch, capsys) -> None:
    vswitch = {"id": 4001, "name": "tx", "vlan": 4001, "cancelled": False, "server": [],
               "subnet": [{"ip": "192.0.2.0", "mask": 24, "gateway": "192.0.2.1"}]}
    result, script, _slept = run(monkeypatch, capsys, {}, [
        (200, [{"subnet": SUBNET_B}, {"subnet": SUBNET_A}]),
        (200, [{"id": 4001, "name": "tx", "vlan": 4001, "cancelled": False},
               {"id": 9, "name": "old", "vlan": 4009, "cancelled": True}]),
        (200, vswitch),
    ])
    assert script.wire() == [("GET", "/subnet", None), ("GET", "/vswitch", None), ("GET", "/vswitch/4001", None)]
    assert [s["cidr"] for s in result["subnets"]] == ["192.0.2.0/24", "198.51.100.0/24"]
    assert result["subnets"][0]["routing_target"] == {"type": "vswitch", "server_ip": None, "server_number": None,
                                                      "vswitch_id": 4001}
    assert result["subnets"][0]["failover"] is False and result["subnets"][0]["gateway"] == "192.0.2.1"


def test_pools_filter_reports_missing_pools(monkeypatch, capsys) -> None:
    pools = {"transactional": {"subnet": "198.51.100.0/24"}, "marketing": {"subnet": "203.0.113.0/24"}}
    result, script, _slept = run(monkeypatch, capsys, {"pools": pools, "resolve_vswitch": False},
                                 [(200, [{"subnet": SUBNET_A}, {"subnet": SUBNET_B}])])
    assert script.wire() == [("GET", "/subnet", None)]
    assert result["missing_pools"] == ["marketing"]
    assert [s["cidr"] for s in result["subnets"]] == ["198.51.100.0/24"]
    assert result["pools"]["transactional"]["server_ip"] == "203.0.113.31"


def test_wrong_password_fails_fast(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, {}, [err(401, "UNAUTHORIZED")])
    assert len(script.requests) == 1 and slept == [] and result["failed"] is True
