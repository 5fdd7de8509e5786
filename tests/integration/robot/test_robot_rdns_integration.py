# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""robot_rdns through ansible-playbook against the stateful Robot stand-in."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any, Dict, List

from robot_support import PASSWORD, USER, two_pools_ptr_map

AUTH = "Basic " + base64.b64encode("{0}:{1}".format(USER, PASSWORD).encode()).decode()
WRITES = ("PUT", "POST", "DELETE")


def api_log(standin) -> List[Dict[str, Any]]:
    return list(standin.log)


def writes(log: List[Dict[str, Any]], ok_only: bool = True) -> List[Dict[str, Any]]:
    return [e for e in log if e["method"] in WRITES and (not ok_only or 200 <= e["status"] < 300)]


def test_first_convergence_of_two_24s(standin, playbook) -> None:
    wanted = two_pools_ptr_map()
    run = playbook("rdns.yml", {"ptr_map": wanted})
    assert run.rc == 0, run.stdout[-3000:]
    result = run.result("Reconcile")
    assert result["changed"] is True and result["summary"]["create"] == 508
    assert standin.snapshot()["rdns"] == wanted
    log = api_log(standin)
    # One read of the PTRs, one of the account's addresses (only because there is something to create).
    reads = [(e["method"], e["path"]) for e in log if e["method"] == "GET"]
    assert reads == [("GET", "/rdns"), ("GET", "/ip"), ("GET", "/subnet")]
    assert len(log) == 511
    puts = writes(log)
    assert all(e["method"] == "PUT" and e["status"] == 201 for e in puts)
    assert sorted(e["path"][len("/rdns/"):] for e in puts) == sorted(wanted)
    assert all(e["form"] == {"ptr": wanted[e["path"][len("/rdns/"):]]} for e in puts)
    assert all(e["auth"] == AUTH and e["content_type"] == "application/x-www-form-urlencoded" for e in puts)


def test_rerun_is_unchanged_and_costs_one_read(standin, playbook) -> None:
    wanted = two_pools_ptr_map()
    standin.set_ptrs(wanted)
    run = playbook("rdns.yml", {"ptr_map": wanted})
    assert run.rc == 0
    assert run.result("Reconcile")["changed"] is False
    assert [(e["method"], e["path"], e["status"]) for e in api_log(standin)] == [("GET", "/rdns", 200)]


def test_partial_change_writes_only_the_difference(standin, playbook) -> None:
    wanted = two_pools_ptr_map()
    current = dict(wanted)
    for ip in ("192.0.2.10", "192.0.2.200", "198.51.100.7"):
        current[ip] = "old-name.kbmta.net"
    for ip in ("192.0.2.11", "198.51.100.254"):
        del current[ip]
    current["192.0.2.0"] = "stray.kbmta.net"          # outside the map, inside the subnet
    standin.set_ptrs(current)
    run = playbook("rdns.yml", {"ptr_map": wanted, "purge": True, "purge_scope": ["192.0.2.0/24", "198.51.100.0/24"]})
    assert run.rc == 0, run.stdout[-3000:]
    done = sorted((e["method"], e["path"]) for e in writes(api_log(standin)))
    assert done == [("DELETE", "/rdns/192.0.2.0"), ("POST", "/rdns/192.0.2.10"), ("POST", "/rdns/192.0.2.200"),
                    ("POST", "/rdns/198.51.100.7"), ("PUT", "/rdns/192.0.2.11"), ("PUT", "/rdns/198.51.100.254")]
    assert standin.snapshot()["rdns"] == wanted
    summary = run.result("Reconcile")["summary"]
    assert (summary["create"], summary["update"], summary["delete"], summary["unchanged"]) == (2, 3, 1, 503)


def test_rate_limit_mid_run_then_resumed_without_repeated_writes(standin, playbook, tmp_path) -> None:
    from robot_api import FaultRule, RateLimiter

    wanted = two_pools_ptr_map()
    # The hour's budget: 100 rDNS calls. The run may not wait (rate_limit_timeout=0): it stops.
    standin.rdns_limit = RateLimiter(limit=100, interval=3600)
    first = playbook("rdns.yml", {"ptr_map": wanted, "rate_limit_timeout": 0})
    assert first.rc != 0
    failed = first.result("Reconcile")
    assert failed["failed"] is True and "RATE_LIMIT_EXCEEDED" in failed["msg"] and "resume" in failed["msg"]
    assert len(failed["changes"]) == 99 and len(failed["remaining"]) == 508 - 99
    assert len(standin.snapshot()["rdns"]) == 99

    # A new hour; two more rate limits strike mid-run, announcing a 1 s interval: waited out.
    standin.rdns_limit = RateLimiter(limit=0)
    standin.faults.extend([FaultRule(method="PUT", status=403, code="RATE_LIMIT_EXCEEDED", skip=50, count=1, interval=1),
                           FaultRule(method="PUT", status=403, code="RATE_LIMIT_EXCEEDED", skip=200, count=1, interval=1)])
    progress = tmp_path / "progress.log"
    second = playbook("rdns.yml", {"ptr_map": wanted, "rate_limit_timeout": 60, "progress_file": str(progress)})
    assert second.rc == 0, second.stdout[-3000:]
    resumed = second.result("Reconcile")
    assert resumed["summary"]["create"] == 508 - 99 and resumed["summary"]["unchanged"] == 99
    assert resumed["summary"]["rate_limit_waited"] >= 2
    assert [w["seconds"] for w in resumed["rate_limit_waits"]] == [1, 1]
    assert standin.snapshot()["rdns"] == wanted
    log = api_log(standin)
    assert len([e for e in log if e["status"] == 403 and e["code"] == "RATE_LIMIT_EXCEEDED"]) == 3
    per_ip = Counter(e["path"] for e in writes(log))
    assert len(per_ip) == 508 and set(per_ip.values()) == {1}
    lines = progress.read_text().splitlines()
    assert len([line for line in lines if "rate limit" in line]) == 2 and any("409/409" in line for line in lines)


def test_wrong_password_fails_fast_without_retries(standin, playbook) -> None:
    run = playbook("rdns.yml", {"ptr_map": two_pools_ptr_map()}, password="wrong")
    assert run.rc != 0
    result = run.result("Reconcile")
    assert "401" in result["msg"] and "10 minutes" in result["msg"]
    assert [(e["method"], e["status"]) for e in api_log(standin)] == [("GET", 401)]
    assert standin.failed_logins == 1


def test_check_mode_reports_and_writes_nothing(standin, playbook) -> None:
    wanted = two_pools_ptr_map()
    run = playbook("rdns.yml", {"ptr_map": wanted}, check=True, args=["--diff"])
    assert run.rc == 0
    result = run.result("Reconcile")
    assert result["changed"] is True and len(result["changes"]) == 508
    assert result["diff"]["after"].count("\n") == 508
    assert [(e["method"], e["path"]) for e in api_log(standin)] == [("GET", "/rdns"), ("GET", "/ip"), ("GET", "/subnet")]
    assert standin.snapshot()["rdns"] == {}


def test_server_errors_and_slow_answers_are_retried(standin, playbook) -> None:
    from robot_api import FaultRule

    standin.faults.extend([
        FaultRule(method="PUT", path="/rdns/192.0.2.5", status=500, code="INTERNAL_ERROR", count=1),
        FaultRule(method="PUT", path="/rdns/192.0.2.6", status=503, code="MAINTENANCE", count=1),
        FaultRule(method="PUT", path="/rdns/192.0.2.7", status=0, delay=2.5, count=1),
    ])
    wanted = {"192.0.2.{0}".format(n): "us-mta1.kbmta.net" for n in range(4, 9)}
    run = playbook("rdns.yml", {"ptr_map": wanted, "request_timeout": 1})
    assert run.rc == 0, run.stdout[-3000:]
    assert standin.snapshot()["rdns"] == wanted
    statuses = [(e["path"], e["status"]) for e in api_log(standin) if e["method"] == "PUT"]
    assert ("/rdns/192.0.2.5", 500) in statuses and ("/rdns/192.0.2.6", 503) in statuses
    assert run.result("Reconcile")["summary"]["create"] == 5


def test_lasting_maintenance_fails_with_a_clear_message(standin, playbook) -> None:
    from robot_api import FaultRule

    standin.faults.append(FaultRule(path="/rdns", status=503, code="MAINTENANCE", count=100))
    run = playbook("rdns.yml", {"ptr_map": {"192.0.2.4": "a.kbmta.net"}})
    assert run.rc != 0
    msg = run.result("Reconcile")["msg"]
    assert "503 MAINTENANCE" in msg and "maintenance" in msg.split("MAINTENANCE", 1)[1]
    assert len(api_log(standin)) == 3


def test_template_names_a_whole_subnet(standin, playbook) -> None:
    run = playbook("rdns.yml", {"subnet": "198.51.100.0/24", "ptr_template": "mkg-{last_octet}.kbmta.net"})
    assert run.rc == 0
    ptrs = standin.snapshot()["rdns"]
    assert len(ptrs) == 254 and ptrs["198.51.100.9"] == "mkg-9.kbmta.net"


def test_answer_lost_after_processing_is_read_back_not_written_twice(standin, playbook) -> None:
    from robot_api import FaultRule

    # Robot does the PUT, but its answer comes after the client has given up (request_timeout 1 s).
    standin.faults.append(FaultRule(method="PUT", path="/rdns/192.0.2.7", status=0, delay=2.5, count=1))
    wanted = {"192.0.2.{0}".format(n): "us-mta1.kbmta.net" for n in range(6, 9)}
    run = playbook("rdns.yml", {"ptr_map": wanted, "request_timeout": 1})
    assert run.rc == 0, run.stdout[-3000:]
    assert standin.snapshot()["rdns"] == wanted
    seven = [(e["method"], e["status"]) for e in api_log(standin) if e["path"] == "/rdns/192.0.2.7"]
    assert seven == [("PUT", 201), ("GET", 200)]          # no second PUT, no 409, no POST
    assert run.result("Reconcile")["summary"]["create"] == 3


def test_server_ips_blind_to_a_vswitch_subnet_is_refused_then_fixed_and_rerun_unchanged(standin, playbook) -> None:
    wanted = two_pools_ptr_map()
    # 192.0.2.0/24 is on a vSwitch: GET /rdns?server_ip= of any server never shows its PTRs.
    blind = playbook("rdns.yml", {"ptr_map": wanted, "server_ips": ["203.0.113.31"]})
    assert blind.rc != 0
    msg = blind.result("Reconcile")["msg"]
    assert "does not cover 254 address(es)" in msg and "192.0.2.1 (routed to a vSwitch)" in msg
    assert "leave server_ips empty" in msg
    assert not writes(api_log(standin), ok_only=False)

    standin.log.clear()
    fixed = playbook("rdns.yml", {"ptr_map": wanted})
    assert fixed.rc == 0 and fixed.result("Reconcile")["summary"]["create"] == 508
    standin.log.clear()
    again = playbook("rdns.yml", {"ptr_map": wanted})
    assert again.rc == 0 and again.result("Reconcile")["changed"] is False
    assert [(e["method"], e["path"]) for e in api_log(standin)] == [("GET", "/rdns")]


def test_exclude_survives_purge(standin, playbook) -> None:
    standin.set_ptrs({"198.51.100.5": "kept-by-hand.kbmta.net", "198.51.100.6": "stray.kbmta.net"})
    run = playbook("rdns.yml", {"subnet": "198.51.100.0/29", "ptr_template": "mkg-{last_octet}.kbmta.net",
                                "purge": True, "exclude": ["198.51.100.5", "198.51.100.6"]})
    assert run.rc == 0, run.stdout[-3000:]
    ptrs = standin.snapshot()["rdns"]
    assert ptrs["198.51.100.5"] == "kept-by-hand.kbmta.net" and ptrs["198.51.100.6"] == "stray.kbmta.net"
    assert not [e for e in writes(api_log(standin)) if e["method"] == "DELETE"]


def test_bad_names_and_foreign_addresses_are_refused_before_any_write(standin, playbook) -> None:
    bad = playbook("rdns.yml", {"ptr_map": {"192.0.2.5": "ok.kbmta.net", "192.0.2.6": "bad_name.kbmta.net",
                                            "192.0.2.7": "-mta.kbmta.net"}})
    assert bad.rc != 0
    msg = bad.result("Reconcile")["msg"]
    assert "192.0.2.6 -> 'bad_name.kbmta.net'" in msg and "192.0.2.7 -> '-mta.kbmta.net'" in msg
    assert api_log(standin) == []                          # not even a read

    foreign = playbook("rdns.yml", {"ptr_map": {"192.0.2.5": "ok.kbmta.net", "203.0.113.200": "x.kbmta.net"}})
    assert foreign.rc != 0
    msg = foreign.result("Reconcile")["msg"]
    assert "203.0.113.200" in msg and "running again will not help" in msg and "resume" not in msg
    assert [e["method"] for e in api_log(standin)] == ["GET", "GET", "GET"]
    assert standin.snapshot()["rdns"] == {}


def test_a_servers_main_ip_is_in_the_account(standin, playbook) -> None:
    # GET /ip lists each server's main IP: its PTR is written like a subnet address's.
    run = playbook("rdns.yml", {"ptr_map": {"203.0.113.31": "eu-mta1.kbmta.net"}})
    assert run.rc == 0, run.stdout[-3000:]
    assert standin.snapshot()["rdns"]["203.0.113.31"] == "eu-mta1.kbmta.net"
    assert [(e["method"], e["path"]) for e in writes(api_log(standin))] == [("PUT", "/rdns/203.0.113.31")]


def test_batches_report_what_is_left_and_resume(standin, playbook) -> None:
    wanted = two_pools_ptr_map()
    left = []
    for _batch in range(3):
        run = playbook("rdns.yml", {"ptr_map": wanted, "max_writes": 200})
        assert run.rc == 0, run.stdout[-3000:]
        result = run.result("Reconcile")
        assert result["summary"]["create"] == len(result["changes"]) <= 200
        left.append(result["summary"]["remaining"])
    assert left == [308, 108, 0]
    assert standin.snapshot()["rdns"] == wanted
    per_ip = Counter(e["path"] for e in writes(api_log(standin)))
    assert len(per_ip) == 508 and set(per_ip.values()) == {1}
