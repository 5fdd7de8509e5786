# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Orders are idempotent by intent: re-runs after delivery and after a lost answer order nothing.

The stand-in records every request (answered or not), so the number of order POSTs is counted."""

from __future__ import annotations

from robot_api import FaultRule

ADDON = "/order/server_addon/transaction"
SERVER = "/order/server/transaction"
REAL_SUBNET = {"order": True, "order_test": False, "order_confirm": True, "order_subnet": "198.18.1.0/29"}
REAL_SERVER = {"server": True, "order_test": False, "order_confirm": True}


def test_subnet_rerun_after_delivery_orders_nothing(standin, playbook) -> None:
    first = playbook("subnets.yml", REAL_SUBNET)
    assert first.rc == 0, first.stdout[-3000:]
    assert first.result("Order")["outcome"] == "ordered"
    for _run in range(2):
        again = playbook("subnets.yml", REAL_SUBNET)
        assert again.rc == 0, again.stdout[-3000:]
        assert (again.result("Order")["outcome"], again.result("Order")["changed"]) == ("exists", False)
    assert len(standin.requests("POST", ADDON, dry_run=False)) == 1
    assert len([s for s in standin.snapshot()["subnets"] if s["mask"] == 29]) == 1


def test_subnet_lost_answer_then_rerun_orders_nothing(standin, playbook) -> None:
    standin.faults.append(FaultRule(method="POST", path=ADDON, drop="after"))
    first = playbook("subnets.yml", REAL_SUBNET)
    assert first.rc != 0
    result = first.result("Order")
    assert result["changed"] is True and result["outcome"] == "unknown"
    assert "the order may have been placed: transaction unknown" in result["msg"]
    assert len(standin.snapshot()["transactions"]) == 1          # it was placed
    second = playbook("subnets.yml", REAL_SUBNET)
    assert second.rc == 0, second.stdout[-3000:]
    assert second.result("Order")["changed"] is False
    assert second.result("Order")["subnet"]["cidr"] == "203.0.113.64/29"
    assert len(standin.requests("POST", ADDON, dry_run=False)) == 1


def test_subnet_connection_dropped_before_processing_places_nothing(standin, playbook) -> None:
    standin.faults.append(FaultRule(method="POST", path=ADDON, drop="before"))
    first = playbook("subnets.yml", REAL_SUBNET)
    assert first.rc != 0 and first.result("Order")["outcome"] == "unknown"
    assert standin.snapshot()["transactions"] == []
    second = playbook("subnets.yml", REAL_SUBNET)        # nothing found: this run orders, once
    assert second.rc == 0 and second.result("Order")["outcome"] == "ordered"
    assert len(standin.requests("POST", ADDON, dry_run=False)) == 2
    assert len(standin.snapshot()["transactions"]) == 1


def test_server_converges_and_reconverges_unchanged(standin, playbook) -> None:
    dry = playbook("subnets.yml", {"server": True})
    assert dry.rc == 0, dry.stdout[-3000:]
    assert dry.result("Server")["outcome"] == "dry_run" and standin.requests("POST", SERVER) == []
    check = playbook("subnets.yml", REAL_SERVER, check=True)
    assert check.rc == 0 and check.result("Server")["outcome"] == "would_order"
    first = playbook("subnets.yml", REAL_SERVER)
    assert first.rc == 0, first.stdout[-3000:]
    result = first.result("Server")
    assert result["changed"] is True and result["outcome"] == "ordered"
    server = [s for s in standin.snapshot()["servers"] if s["server_name"] == "eu-mta2"]
    assert [(s["server_number"], s["server_ip"]) for s in server] == [(result["server_number"], result["server_ip"])]
    assert standin.snapshot()["rdns"] == {}                        # the default PTR is Hetzner's, not stored
    again = playbook("subnets.yml", REAL_SERVER)
    assert again.rc == 0
    assert (again.result("Server")["outcome"], again.result("Server")["changed"]) == ("exists", False)
    assert len(standin.requests("POST", SERVER, dry_run=False)) == 1


def test_server_lost_answer_then_rerun_orders_nothing(standin, playbook) -> None:
    standin.faults.append(FaultRule(method="POST", path="/order/*/transaction", drop="after"))
    first = playbook("subnets.yml", REAL_SERVER)
    assert first.rc != 0
    result = first.result("Server")
    assert result["changed"] is True and result["outcome"] == "unknown"
    assert "the order may have been placed: transaction unknown" in result["msg"]
    second = playbook("subnets.yml", REAL_SERVER)
    assert second.rc == 0, second.stdout[-3000:]
    assert second.result("Server")["outcome"] == "delivered" and second.result("Server")["server_ip"]
    third = playbook("subnets.yml", REAL_SERVER)
    assert third.result("Server")["outcome"] == "exists" and third.result("Server")["changed"] is False
    assert len(standin.requests("POST", SERVER, dry_run=False)) == 1
    assert len([s for s in standin.snapshot()["servers"] if s["server_name"] == "eu-mta2"]) == 1


def test_bad_server_input_fails_well(standin, playbook) -> None:
    unknown = playbook("subnets.yml", dict(REAL_SERVER, server_product="AX0"))
    assert unknown.rc != 0 and "no product 'AX0'" in unknown.result("Server")["msg"]
    refused = playbook("subnets.yml", {"server": True, "order_validate": True, "server_keys": []})
    assert refused.rc != 0
    msg = refused.result("Server")["msg"]
    assert "400 INVALID_INPUT" in msg and "missing parameters: authorized_key" in msg and "Traceback" not in msg
    assert standin.requests("POST", SERVER, dry_run=False) == []


def test_servers_playbook_orders_each_host_once(standin, playbook, tmp_path) -> None:
    from robot_support import ROOT
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    mta:\n      vars:\n        robot_server_product: AX42\n"
        "        robot_server_location: FSN1\n      hosts:\n        us-mta1: {}\n        new-mta3: {}\n")
    servers = str(ROOT / "playbooks" / "servers.yml")
    extra = {"robot_server_keys": ["aa:bb"], "robot_server_wait_timeout": 30}
    dry = playbook(servers, extra, inventory=str(inventory))
    assert dry.rc == 0, dry.stdout[-3000:]
    outcomes = {r["item"]: r["outcome"] for r in dry.result("Order each host's server (dry run unless robot_order_confirm)")["results"]}
    assert outcomes == {"us-mta1": "exists", "new-mta3": "dry_run"}
    assert standin.requests("POST", SERVER) == []
    real = dict(extra, robot_order_confirm=True)
    for _run in range(2):
        run = playbook(servers, real, inventory=str(inventory))
        assert run.rc == 0, run.stdout[-3000:]
    assert len(standin.requests("POST", SERVER, dry_run=False)) == 1
    assert [s["server_name"] for s in standin.snapshot()["servers"]].count("new-mta3") == 1
