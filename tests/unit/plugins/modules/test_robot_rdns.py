# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""robot_rdns: the exact HTTP conversation of each path through the module."""

from __future__ import annotations

import socket
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

# The account: two servers' main IPs, 192.0.2.0/25 routed to us-mta1, 192.0.2.128/25 to us-mta2,
# 198.51.100.0/24 on a vSwitch (no server_ip).
IPS = [{"ip": {"ip": "203.0.113.21", "server_ip": "203.0.113.21", "server_number": 101}},
       {"ip": {"ip": "203.0.113.22", "server_ip": "203.0.113.22", "server_number": 102}}]
SUBNETS = [{"subnet": {"ip": "192.0.2.0", "mask": 25, "gateway": "192.0.2.1", "server_ip": "203.0.113.21"}},
           {"subnet": {"ip": "192.0.2.128", "mask": "25", "gateway": "192.0.2.129", "server_ip": "203.0.113.22"}},
           {"subnet": {"ip": "198.51.100.0", "mask": 24, "gateway": "198.51.100.1", "server_ip": None}}]
ACCOUNT = [(200, IPS), (200, SUBNETS)]
ACCOUNT_WIRE = [("GET", "/ip", None), ("GET", "/subnet", None)]
LOST = (0, socket.timeout("timed out"))          # the transport raises: no answer came back


def ptr_answer(ip: str, ptr: str) -> Tuple[int, Any]:
    return 200, {"rdns": {"ip": ip, "ptr": ptr}}


def test_first_convergence_reads_once_checks_the_account_and_creates_with_put(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS}, [
        err(404, "NOT_FOUND"), *ACCOUNT,
        (201, {}), (201, {}), (201, {}),
    ])
    assert script.wire() == [
        ("GET", "/rdns", None),
        *ACCOUNT_WIRE,
        ("PUT", "/rdns/192.0.2.2", "ptr=us-mta1.kbmta.net"),
        ("PUT", "/rdns/192.0.2.3", "ptr=us-mta1.kbmta.net"),
        ("PUT", "/rdns/192.0.2.130", "ptr=us-mta2.kbmta.net"),
    ]
    assert all(r.headers["Content-Type"] == "application/x-www-form-urlencoded" for r in script.requests[3:])
    assert result["changed"] is True and result["remaining"] == []
    assert result["summary"]["create"] == 3 and result["summary"]["api_calls"] == 6


def test_unchanged_run_costs_one_read(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS}, [rdns_list(PTRS)])
    assert script.wire() == [("GET", "/rdns", None)]
    assert result["changed"] is False and result["changes"] == [] and result["summary"]["remaining"] == 0


def test_unchanged_rerun_of_a_template_with_purge_exclude_and_covering_server_ips(monkeypatch, capsys) -> None:
    args = {"subnet": "192.0.2.0/30", "ptr_template": "m{last_octet}.example", "purge": True,
            "exclude": ["192.0.2.2"], "server_ips": ["203.0.113.21"]}
    result, script, _slept = run(monkeypatch, capsys, args, [
        rdns_list({"192.0.2.1": "M1.example.", "192.0.2.2": "kept-by-hand.example"})])
    assert script.wire() == [("GET", "/rdns?server_ip=203.0.113.21", None)]
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
                                 [rdns_list({"192.0.2.2": "us-mta1.kbmta.net"}), *ACCOUNT])
    assert script.wire() == [("GET", "/rdns", None), *ACCOUNT_WIRE]
    assert result["changed"] is True
    assert [c["ip"] for c in result["changes"]] == ["192.0.2.3", "192.0.2.130"]
    assert result["diff"]["after"] == "192.0.2.3 us-mta1.kbmta.net\n192.0.2.130 us-mta2.kbmta.net\n"


# Conflicts and lost answers: never a blind second write --------------------------------------

def test_create_that_races_into_a_conflict_reads_then_updates(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": {"192.0.2.2": "a.example"}}, [
        err(404, "NOT_FOUND"), *ACCOUNT, err(409, "RDNS_ALREADY_EXISTS"), ptr_answer("192.0.2.2", "other.example"),
        (200, {}),
    ])
    assert script.wire() == [("GET", "/rdns", None), *ACCOUNT_WIRE, ("PUT", "/rdns/192.0.2.2", "ptr=a.example"),
                             ("GET", "/rdns/192.0.2.2", None), ("POST", "/rdns/192.0.2.2", "ptr=a.example")]
    assert result["changed"] is True


def test_conflict_with_the_wanted_value_already_there_sends_nothing_more(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": {"192.0.2.2": "a.example"}}, [
        err(404, "NOT_FOUND"), *ACCOUNT, err(409, "RDNS_ALREADY_EXISTS"), ptr_answer("192.0.2.2", "A.example."),
    ])
    assert [w[:2] for w in script.wire()][3:] == [("PUT", "/rdns/192.0.2.2"), ("GET", "/rdns/192.0.2.2")]
    assert result["changed"] is True and result["summary"]["create"] == 1


def test_put_whose_answer_is_lost_is_read_back_and_not_sent_again(monkeypatch, capsys) -> None:
    """The PUT reached Robot but the answer never came: GET shows it done, so no PUT 409 and no POST."""
    result, script, slept = run(monkeypatch, capsys, {"ptr_map": {"192.0.2.2": "a.example", "192.0.2.3": "b.example"}}, [
        err(404, "NOT_FOUND"), *ACCOUNT,
        LOST, ptr_answer("192.0.2.2", "a.example"),
        (201, {}),
    ])
    assert script.wire() == [
        ("GET", "/rdns", None), *ACCOUNT_WIRE,
        ("PUT", "/rdns/192.0.2.2", "ptr=a.example"),
        ("GET", "/rdns/192.0.2.2", None),
        ("PUT", "/rdns/192.0.2.3", "ptr=b.example"),
    ]
    assert slept == [2.0]
    assert result["changed"] is True and result["summary"]["create"] == 2


def test_put_lost_before_processing_is_sent_again_after_the_read(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": {"192.0.2.2": "a.example"}}, [
        err(404, "NOT_FOUND"), *ACCOUNT,
        (0, ConnectionResetError("connection reset by peer")), err(404, "RDNS_NOT_FOUND"), (201, {}),
    ])
    assert [w[:2] for w in script.wire()][3:] == [("PUT", "/rdns/192.0.2.2"), ("GET", "/rdns/192.0.2.2"),
                                                  ("PUT", "/rdns/192.0.2.2")]
    assert result["changed"] is True


def test_post_and_delete_with_lost_answers_are_read_back_first(monkeypatch, capsys) -> None:
    args = {"ptr_map": {"192.0.2.2": "a.example"}, "purge": True, "purge_scope": ["192.0.2.0/24"]}
    result, script, slept = run(monkeypatch, capsys, args, [
        rdns_list({"192.0.2.2": "old.example", "192.0.2.9": "stray.example"}),
        LOST, ptr_answer("192.0.2.2", "old.example"), (200, {}),      # POST lost before processing: sent again
        LOST, err(404, "RDNS_NOT_FOUND"),                              # DELETE done, answer lost: not sent again
    ])
    assert [w[:2] for w in script.wire()] == [
        ("GET", "/rdns"),
        ("POST", "/rdns/192.0.2.2"), ("GET", "/rdns/192.0.2.2"), ("POST", "/rdns/192.0.2.2"),
        ("DELETE", "/rdns/192.0.2.9"), ("GET", "/rdns/192.0.2.9"),
    ]
    assert slept == [2.0, 2.0]
    assert (result["summary"]["update"], result["summary"]["delete"]) == (1, 1)


def test_write_that_keeps_failing_stops_after_the_retries_and_says_to_run_again(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, {"ptr_map": {"192.0.2.2": "a.example"}}, [
        err(404, "NOT_FOUND"), *ACCOUNT,
        LOST, err(404, "RDNS_NOT_FOUND"), LOST, err(404, "RDNS_NOT_FOUND"), LOST,
    ])
    assert [w[0] for w in script.wire()][3:] == ["PUT", "GET", "PUT", "GET", "PUT"]
    assert slept == [2.0, 4.0]
    assert result["failed"] is True and "CONNECTION_FAILED" in result["msg"]
    assert "Run the task again to resume" in result["msg"]


# Purge and exclude ---------------------------------------------------------------------------

def test_purge_deletes_unwanted_entries_of_the_subnet_but_keeps_excluded_ones(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"subnet": "192.0.2.0/29", "ptr_template": "m{last_octet}.example",
                                                       "purge": True, "skip_network_and_broadcast": False,
                                                       "exclude": ["192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6",
                                                                   "192.0.2.7"]}, [
        rdns_list({"192.0.2.0": "m0.example", "192.0.2.1": "m1.example", "192.0.2.2": "stray.example",
                   "192.0.2.3": "set-by-hand.example", "192.0.2.9": "outside.example"}),
        (200, {}),
    ])
    assert script.wire() == [("GET", "/rdns", None), ("POST", "/rdns/192.0.2.2", "ptr=m2.example")]
    assert result["summary"]["delete"] == 0 and result["summary"]["update"] == 1


def test_purge_with_a_map_honours_exclude(monkeypatch, capsys) -> None:
    args = {"ptr_map": {"192.0.2.2": "a.example", "192.0.2.3": "b.example"}, "purge": True,
            "purge_scope": ["192.0.2.0/24"], "exclude": ["192.0.2.3", "192.0.2.50"]}
    result, script, _slept = run(monkeypatch, capsys, args, [
        rdns_list({"192.0.2.2": "a.example", "192.0.2.3": "manual.example", "192.0.2.50": "manual.example",
                   "192.0.2.51": "stray.example"}),
        (200, None),
    ])
    assert script.wire() == [("GET", "/rdns", None), ("DELETE", "/rdns/192.0.2.51", None)]
    assert result["changes"] == [{"ip": "192.0.2.51", "action": "delete", "before": "stray.example", "after": None}]


# Refused before the first write --------------------------------------------------------------

@pytest.mark.parametrize("name, why", [
    ("bad_name.kbmta.net", "'_'"),
    ("-mta.kbmta.net", "hyphen"),
    ("mta-.kbmta.net", "hyphen"),
    ("mta 1.kbmta.net", "' '"),
    (" mta1.kbmta.net", "' '"),
    ("mtä1.kbmta.net", "non-ASCII"),
    ("a" * 64 + ".kbmta.net", "64 characters"),
    ("mta1..kbmta.net", "empty label"),
    (".".join(["a" * 60] * 5), "304 characters"),
])
def test_invalid_ptr_names_are_refused_before_any_request_with_value_and_address(monkeypatch, capsys, name, why) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": dict(PTRS, **{"192.0.2.77": name})}, [])
    assert script.requests == []
    assert result["failed"] is True
    assert "192.0.2.77 -> {0!r}".format(name) in result["msg"] and why in result["msg"]
    assert "resume" not in result["msg"]


def test_invalid_template_names_every_bad_address(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"subnet": "192.0.2.0/30", "ptr_template": "{ip_dashed}_mta.example"}, [])
    assert script.requests == []
    assert "2 PTR name(s)" in result["msg"]
    assert "192.0.2.1 -> '192-0-2-1_mta.example'" in result["msg"] and "192.0.2.2 -> '192-0-2-2_mta.example'" in result["msg"]


def test_address_outside_the_account_is_refused_before_any_write(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": dict(PTRS, **{"203.0.113.99": "x.kbmta.net"})}, [
        err(404, "NOT_FOUND"), *ACCOUNT])
    assert script.wire() == [("GET", "/rdns", None), *ACCOUNT_WIRE]
    assert result["failed"] is True and result["changes"] == []
    assert "203.0.113.99" in result["msg"] and "no subnet and no single IP of this Robot account" in result["msg"]
    assert "192.0.2.2" not in result["msg"]
    assert "resume" not in result["msg"] and "running again will not help" in result["msg"]


def test_server_ips_that_cannot_see_a_planned_address_is_an_error_with_the_fix(monkeypatch, capsys) -> None:
    """Today such a run rewrites the unseen PTRs on every run and reports changed."""
    args = {"ptr_map": dict(PTRS, **{"198.51.100.7": "eu.kbmta.net"}), "server_ips": ["203.0.113.21"]}
    result, script, _slept = run(monkeypatch, capsys, args, [
        rdns_list({"192.0.2.2": "us-mta1.kbmta.net", "192.0.2.3": "us-mta1.kbmta.net"}), *ACCOUNT])
    assert script.wire() == [("GET", "/rdns?server_ip=203.0.113.21", None), *ACCOUNT_WIRE]
    assert result["failed"] is True
    msg = result["msg"]
    assert "server_ips (203.0.113.21) does not cover 2 address(es)" in msg
    assert "192.0.2.130 (routed to server 203.0.113.22)" in msg and "198.51.100.7 (routed to a vSwitch)" in msg
    assert "Add their routing servers to server_ips, or leave server_ips empty" in msg


def test_name_robot_refuses_anyway_fails_without_advice_to_run_again(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": {"192.0.2.2": "a.example", "192.0.2.3": "b.example"}}, [
        err(404, "NOT_FOUND"), *ACCOUNT, (201, {}), err(400, "INVALID_INPUT", missing=[], invalid=["ptr"])])
    assert [w[0] for w in script.wire()] == ["GET", "GET", "GET", "PUT", "PUT"]
    msg = result["msg"]
    assert msg.startswith("Wrote 1 of 2 PTR changes, then create 192.0.2.3 -> 'b.example' failed")
    assert "Robot refused the name 'b.example' for 192.0.2.3" in msg and "Running again will fail the same way" in msg
    assert "resume" not in msg


# Rate limits ---------------------------------------------------------------------------------

def test_rate_limit_mid_run_is_waited_out(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, {"ptr_map": PTRS}, [
        err(404, "NOT_FOUND"), *ACCOUNT, (201, {}),
        err(403, "RATE_LIMIT_EXCEEDED", max_request=2, interval=5),
        (201, {}), (201, {}),
    ])
    assert [w[:2] for w in script.wire()][3:] == [("PUT", "/rdns/192.0.2.2"), ("PUT", "/rdns/192.0.2.3"),
                                                  ("PUT", "/rdns/192.0.2.3"), ("PUT", "/rdns/192.0.2.130")]
    assert slept[0] == 5   # the run's oldest request (the read) leaves the 5 s window then
    assert result["summary"]["rate_limit_waited"] >= 5 and result["summary"]["create"] == 3


def test_rate_limit_longer_than_the_budget_fails_at_once_and_says_to_resume(monkeypatch, capsys) -> None:
    limited = err(403, "RATE_LIMIT_EXCEEDED", max_request=2, interval=50)
    result, script, slept = run(monkeypatch, capsys, {"ptr_map": PTRS, "rate_limit_timeout": 30},
                                [err(404, "NOT_FOUND"), *ACCOUNT, (201, {}), limited])
    assert result["failed"] is True and result["changed"] is True
    assert slept == []          # 50 s needed, 30 s allowed: no useless wait
    assert [c["ip"] for c in result["changes"]] == ["192.0.2.2"]
    assert [c["ip"] for c in result["remaining"]] == ["192.0.2.3", "192.0.2.130"]
    assert "Wrote 1 of 3" in result["msg"] and "Raise rate_limit_timeout" in result["msg"]
    assert "Run the task again to resume" in result["msg"]


# Batches -------------------------------------------------------------------------------------

def test_batches_write_at_most_max_writes_and_report_the_rest(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS, "max_writes": 2}, [
        err(404, "NOT_FOUND"), *ACCOUNT, (201, {}), (201, {})])
    assert [w[:2] for w in script.wire()][3:] == [("PUT", "/rdns/192.0.2.2"), ("PUT", "/rdns/192.0.2.3")]
    assert result["changed"] is True and [c["ip"] for c in result["changes"]] == ["192.0.2.2", "192.0.2.3"]
    assert result["remaining"] == [{"ip": "192.0.2.130", "action": "create", "before": None, "after": "us-mta2.kbmta.net"}]
    assert result["summary"]["remaining"] == 1 and result["summary"]["create"] == 2


def test_next_batch_resumes_with_what_is_left(monkeypatch, capsys) -> None:
    done = {ip: PTRS[ip] for ip in ("192.0.2.2", "192.0.2.3")}
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS, "max_writes": 2}, [
        rdns_list(done), *ACCOUNT, (201, {})])
    assert [w[:2] for w in script.wire()][3:] == [("PUT", "/rdns/192.0.2.130")]
    assert result["changed"] is True and result["remaining"] == [] and result["summary"]["unchanged"] == 2


def test_check_mode_with_batches_reports_every_pending_change(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS, "max_writes": 1, "_ansible_check_mode": True},
                                 [err(404, "NOT_FOUND"), *ACCOUNT])
    assert [w[0] for w in script.wire()] == ["GET", "GET", "GET"]
    assert len(result["changes"]) == 3 and result["remaining"] == []


# Fail fast -----------------------------------------------------------------------------------

def test_wrong_password_fails_after_one_request(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, {"ptr_map": PTRS}, [err(401, "UNAUTHORIZED")])
    assert len(script.requests) == 1 and slept == []
    assert result["failed"] is True and "10 minutes" in result["msg"] and "resume" not in result["msg"]


def test_purge_with_a_map_needs_a_scope(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"ptr_map": PTRS, "purge": True}, [])
    assert script.requests == [] and "purge_scope" in result["msg"]


def test_bad_input_fails_before_any_request(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, {"subnet": "192.0.2.0/24", "ptr_template": "{nope}.example"}, [])
    assert script.requests == [] and "unknown field" in result["msg"]
