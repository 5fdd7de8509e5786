# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""robot_order: the exact HTTP conversation of each path through the module."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest
from ansible.module_utils.six.moves.urllib.error import URLError

from ansible_collections.kibamail.email_platform.plugins.modules import robot_order
from ansible_collections.kibamail.email_platform.tests.unit.plugins.robot_conversation import (
    Script, err, run_module,
)


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: Dict[str, Any],
        answers: List[Tuple[int, Any]]) -> Tuple[Dict[str, Any], Script, List[float]]:
    return run_module(robot_order, monkeypatch, capsys, args, answers)


# The inventory still holds a placeholder: Robot chooses the address.
BASE = {"pool": "transactional", "server_number": 101, "product_id": "subnet_ipv4_29",
        "reason": "Sending IPs of the transactional pool", "subnet": "198.18.1.0/29", "poll_interval": 1}
REAL = dict(BASE, test=False, confirm_order=True)
PRODUCTS = (200, [{"product": {"id": "subnet_ipv4_29", "name": "Subnet /29"}}])
REASON = "Sending IPs of the transactional pool [kibamail:transactional]"
PENDING = {"id": "B20261127-1", "status": "in process", "server_number": 101, "server_ip": "203.0.113.21",
           "product": {"id": "subnet_ipv4_29"}, "resources": [], "reason": REASON}
READY = dict(PENDING, status="ready", resources=[{"type": "subnet", "id": "203.0.113.64"}])
DELIVERED = {"ip": "203.0.113.64", "mask": 29, "gateway": "203.0.113.65", "server_ip": "203.0.113.21",
             "server_number": 101, "failover": False, "locked": False}
OTHER = {"ip": "198.51.100.0", "mask": 24, "gateway": "198.51.100.1", "server_ip": "203.0.113.31",
         "server_number": 201, "failover": False, "locked": False}
ORDER_BODY = ("product_id=subnet_ipv4_29&reason=Sending+IPs+of+the+transactional+pool+%5Bkibamail%3Atransactional%5D"
              "&server_number=101&test={0}")
NO_SUBNETS = err(404, "NOT_FOUND")
NO_ORDERS = err(404, "NOT_FOUND")
READS = [("GET", "/subnet", None), ("GET", "/order/server_addon/transaction", None)]


def test_default_dry_run_sends_no_order(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, BASE, [NO_SUBNETS, NO_ORDERS, PRODUCTS])
    assert script.wire() == READS + [("GET", "/order/server_addon/101/product", None)]
    assert result["changed"] is False and result["outcome"] == "dry_run"
    assert result["request"]["reason"] == REASON and result["request"]["test"] is True


def test_dry_run_validated_by_the_api_on_request(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, validate_with_api=True), [
        NO_SUBNETS, NO_ORDERS, PRODUCTS, (201, {"transaction": dict(PENDING, id="TEST-1")})])
    assert script.wire()[-1] == ("POST", "/order/server_addon/transaction", ORDER_BODY.format("true"))
    assert result["changed"] is False and result["outcome"] == "dry_run"


def test_subnet_at_the_inventory_address_means_no_order(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(REAL, subnet="203.0.113.64/29"),
                                 [(200, [{"subnet": DELIVERED}]), NO_ORDERS])
    assert script.wire() == READS
    assert result["changed"] is False and result["outcome"] == "exists" and result["inventory_matches"] is True


def test_rerun_after_delivery_finds_the_subnet_robot_chose(monkeypatch, capsys) -> None:
    # The delivered subnet was moved to a vSwitch the ordering server is not in: only the marker finds it.
    moved = dict(DELIVERED, server_ip=None, server_number=None)
    result, script, _slept = run(monkeypatch, capsys, REAL, [
        (200, [{"subnet": moved}, {"subnet": OTHER}]),
        (200, [{"vswitch": {"id": 7, "name": "kb", "vlan": 4001, "cancelled": False}}]),
        (200, {"id": 7, "server": [{"server_number": 102}], "subnet": [{"ip": "203.0.113.64", "mask": 29}]}),
        (200, [{"transaction": READY}]),
    ])
    assert script.wire() == [("GET", "/subnet", None), ("GET", "/vswitch", None), ("GET", "/vswitch/7", None),
                             ("GET", "/order/server_addon/transaction", None)]
    assert result["changed"] is False and result["outcome"] == "exists"
    assert result["subnet"]["cidr"] == "203.0.113.64/29" and result["inventory_matches"] is False
    assert "write 203.0.113.64/29 into platform_pools.transactional.subnet" in result["inventory_hint"]


def test_subnet_of_the_size_on_the_server_counts_when_the_order_is_no_longer_listed(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, REAL, [(200, [{"subnet": DELIVERED}]), NO_ORDERS])
    assert script.wire() == READS
    assert result["outcome"] == "exists" and result["subnet"]["cidr"] == "203.0.113.64/29"


def test_excluded_subnet_is_another_pools(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, exclude_subnets=["203.0.113.64/29"]),
                                 [(200, [{"subnet": DELIVERED}]), NO_ORDERS, PRODUCTS])
    assert result["outcome"] == "dry_run"


def test_pending_order_means_no_new_order(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, REAL, [
        NO_SUBNETS,
        (200, [{"transaction": dict(READY, id="OLD", reason="other [kibamail:marketing]")}, {"transaction": PENDING}]),
        (200, {"transaction": READY}),
        (200, {"subnet": DELIVERED}),
    ])
    assert script.wire()[2:] == [("GET", "/order/server_addon/transaction/B20261127-1", None),
                                 ("GET", "/subnet/203.0.113.64", None)]
    assert result["changed"] is False and result["outcome"] == "pending" and result["subnet"]["cidr"] == "203.0.113.64/29"


def test_real_order_needs_confirmation(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, test=False), [NO_SUBNETS, NO_ORDERS])
    assert script.wire() == READS
    assert result["failed"] is True and "confirm_order=true" in result["msg"]


def test_check_mode_never_orders(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(REAL, _ansible_check_mode=True), [NO_SUBNETS, NO_ORDERS])
    assert script.wire() == READS
    assert result["changed"] is True and result["outcome"] == "would_order"


def test_real_order_waits_until_ready(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, REAL, [
        NO_SUBNETS, NO_ORDERS, PRODUCTS,
        (201, {"transaction": PENDING}),
        (200, {"transaction": PENDING}),
        (200, {"transaction": READY}),
        (200, {"subnet": DELIVERED}),
    ])
    assert script.wire()[3] == ("POST", "/order/server_addon/transaction", ORDER_BODY.format("false"))
    assert script.wire()[4:] == [("GET", "/order/server_addon/transaction/B20261127-1", None),
                                 ("GET", "/order/server_addon/transaction/B20261127-1", None),
                                 ("GET", "/subnet/203.0.113.64", None)]
    assert slept == [1, 1]
    assert result["changed"] is True and result["outcome"] == "ordered" and result["subnet"]["mask"] == 29


def test_lost_answer_says_the_order_may_have_been_placed(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, REAL, [
        NO_SUBNETS, NO_ORDERS, PRODUCTS, (0, URLError("connection reset"))])
    assert [w[0] for w in script.wire()].count("POST") == 1 and slept == []
    assert result["failed"] is True and result["changed"] is True and result["outcome"] == "unknown"
    assert "may have been placed: transaction unknown" in result["msg"] and "[kibamail:transactional]" in result["msg"]


def test_rerun_after_a_lost_answer_finds_the_order(monkeypatch, capsys) -> None:
    # The lost order was placed: the transaction list shows it (in process), found by its marker.
    result, script, _slept = run(monkeypatch, capsys, REAL, [
        NO_SUBNETS, (200, [{"transaction": PENDING}]), (200, {"transaction": READY}), (200, {"subnet": DELIVERED})])
    assert "POST" not in [w[0] for w in script.wire()]
    assert result["changed"] is False and result["outcome"] == "pending"
    assert result["subnet"]["cidr"] == "203.0.113.64/29"


def test_delivered_order_not_yet_in_the_subnet_list_is_read_by_its_address(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, REAL, [
        NO_SUBNETS, (200, [{"transaction": READY}]), (200, {"subnet": DELIVERED})])
    assert script.wire()[2:] == [("GET", "/subnet/203.0.113.64", None)]
    assert result["changed"] is False and result["outcome"] == "exists"


def test_unknown_product_lists_what_can_be_ordered(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, product_id="subnet_ipv4_24"),
                                 [NO_SUBNETS, NO_ORDERS, PRODUCTS])
    assert "POST" not in [w[0] for w in script.wire()]
    assert "subnet_ipv4_29" in result["msg"]


def test_invalid_input_of_the_order_is_surfaced(monkeypatch, capsys) -> None:
    result, _script, _slept = run(monkeypatch, capsys, REAL, [
        NO_SUBNETS, NO_ORDERS, PRODUCTS, err(400, "INVALID_INPUT", missing=[], invalid=["product_id"])])
    assert result["failed"] is True and result["changed"] is False
    assert "400 INVALID_INPUT" in result["msg"] and "invalid parameters: product_id" in result["msg"]
    assert result["error"]["invalid"] == ["product_id"]


def test_order_is_not_retried_on_a_server_error(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, REAL, [NO_SUBNETS, NO_ORDERS, PRODUCTS, err(503, "MAINTENANCE")])
    assert [w[0] for w in script.wire()].count("POST") == 1 and slept == []
    assert result["failed"] is True and "maintenance" in result["msg"]
