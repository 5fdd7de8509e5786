# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""robot_rdns: the exact HTTP conversation of each path through the module."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest

from ansible_collections.kibamail.email_platform.plugins.modules import robot_rdns
from ansible_collections.kibamail.email_platform.tests.unit.plugins.robot_conversation import (
    Script, err, rdns_list, run_module,
)


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: Dict[str, Any],
        answers: List[Tuple[int, Any]]) -> Tuple[Dict[str, Any], Script, List[float]]:
    return run_module(robot_rdns, monkeypatch, capsys, args, answers)


PTRS = {"192.0.2.2": "us-mta1.kbmta.net", "192.0.2.3": "us-mta1.kbmta.net", "192.0.2.130": "us-mta2.kbmta.net"}


def test_first_convergence_reads_once_and_creates_with_put(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS}, [
        err(404, "NOT_FOUND"),
        (201, {}), (201, {}), (201, {}),
    ])
    assert script.wire() == [
        ("GET", "/rdns", None),
        ("PUT", "/rdns/192.0.2.2", "ptr=us-mta1.kbmta.net"),
        ("PUT", "/rdns/192.0.2.3", "ptr=us-mta1.kbmta.net"),
        ("PUT", "/rdns/192.0.2.130", "ptr=us-mta2.kbmta.net"),
    ]
    assert all(r.headers["Content-Type"] == "application/x-www-form-urlencoded" for r in script.requests[1:])
    assert result["changed"] is True
    assert result["summary"]["create"] == 3 and result["summary"]["api_calls"] == 4


def test_unchanged_run_costs_one_read(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS}, [rdns_list(PTRS)])
    assert script.wire() == [("GET", "/rdns", None)]
    assert result["changed"] is False and result["changes"] == []


def test_changed_entry_is_updated_with_post(monkeypatch, capsys) -> None:
    current = dict(PTRS, **{"192.0.2.3": "old.kbmta.net"})
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS, "server_ips": ["203.0.113.21", "203.0.113.22"]}, [
        rdns_list({k: v for k, v in current.items() if k != "192.0.2.130"}),
        rdns_list({"192.0.2.130": current["192.0.2.130"]}),
        (200, {}),
    ])
    assert script.wire() == [
        ("GET", "/rdns?server_ip=203.0.113.21", None),
        ("GET", "/rdns?server_ip=203.0.113.22", None),
        ("POST", "/rdns/192.0.2.3", "ptr=us-mta1.kbmta.net"),
    ]
    assert result["changes"] == [{"ip": "192.0.2.3", "action": "update", "before": "old.kbmta.net",
                                  "after": "us-mta1.kbmta.net"}]


def test_check_and_diff_mode_only_read(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS, "_ansible_check_mode": True, "_ansible_diff": True},
                                 [rdns_list({"192.0.2.2": "us-mta1.kbmta.net"})])
    assert script.wire() == [("GET", "/rdns", None)]
    assert result["changed"] is True
    assert [c["ip"] for c in result["changes"]] == ["192.0.2.3", "192.0.2.130"]
    assert result["diff"]["after"] == "192.0.2.3 us-mta1.kbmta.net\n192.0.2.130 us-mta2.kbmta.net\n"


def test_create_that_races_into_a_conflict_becomes_an_update(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": {"192.0.2.2": "a.example"}}, [
        err(404, "NOT_FOUND"), err(409, "RDNS_ALREADY_EXISTS"), (200, {}),
    ])
    assert script.wire() == [("GET", "/rdns", None), ("PUT", "/rdns/192.0.2.2", "ptr=a.example"),
                             ("POST", "/rdns/192.0.2.2", "ptr=a.example")]
    assert result["changed"] is True


def test_purge_deletes_unwanted_entries_of_the_subnet(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"subnet": "192.0.2.0/30", "ptr_template": "m{last_octet}.example",
                                                       "purge": True, "skip_network_and_broadcast": False,
                                                       "exclude": ["192.0.2.3"]}, [
        rdns_list({"192.0.2.0": "m0.example", "192.0.2.1": "m1.example", "192.0.2.2": "m2.example",
                   "192.0.2.3": "stray.example", "192.0.2.9": "outside.example"}),
        (200, None),
    ])
    assert script.wire() == [("GET", "/rdns", None), ("DELETE", "/rdns/192.0.2.3", None)]
    assert result["summary"]["delete"] == 1


def test_rate_limit_mid_run_is_waited_out(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, {"ptr_map": PTRS}, [
        err(404, "NOT_FOUND"), (201, {}),
        err(403, "RATE_LIMIT_EXCEEDED", max_request=2, interval=5),
        (201, {}), (201, {}),
    ])
    assert [w[:2] for w in script.wire()] == [("GET", "/rdns"), ("PUT", "/rdns/192.0.2.2"), ("PUT", "/rdns/192.0.2.3"),
                                              ("PUT", "/rdns/192.0.2.3"), ("PUT", "/rdns/192.0.2.130")]
    assert slept == [5]
    assert result["summary"]["rate_limit_waited"] == 5 and result["summary"]["create"] == 3


def test_rate_limit_budget_spent_reports_progress_and_remaining(monkeypatch, capsys) -> None:
    limited = err(403, "RATE_LIMIT_EXCEEDED", max_request=2, interval=50)
    result, script, slept = run(monkeypatch, capsys, {"ptr_map": PTRS, "rate_limit_timeout": 30},
                                [err(404, "NOT_FOUND"), (201, {}), limited, limited])
    assert result["failed"] is True and result["changed"] is True
    assert [c["ip"] for c in result["changes"]] == ["192.0.2.2"]
    assert [c["ip"] for c in result["remaining"]] == ["192.0.2.3", "192.0.2.130"]
    assert "Wrote 1 of 3" in result["msg"] and "again to resume" in result["msg"]
    assert slept == [30]


def test_wrong_password_fails_after_one_request(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, {"ptr_map": PTRS}, [err(401, "UNAUTHORIZED")])
    assert len(script.requests) == 1 and slept == []
    assert result["failed"] is True and "10 minutes" in result["msg"]


def test_purge_with_a_map_needs_a_scope(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS, "purge": True}, [])
    assert script.requests == [] and "purge_scope" in result["msg"]


def test_bad_input_fails_before_any_request(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"subnet": "192.0.2.0/24", "ptr_template": "{nope}.example"}, [])
    assert script.requests == [] and "unknown field" in result["msg"]
