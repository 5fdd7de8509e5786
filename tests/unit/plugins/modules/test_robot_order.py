# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""robot_order: the exact HTTP conversation of each path through the module."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest

from ansible_collections.kibamail.email_platform.plugins.modules import robot_order
from ansible_collections.kibamail.email_platform.tests.unit.plugins.robot_conversation import (
    Script, err, run_module,
)


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: Dict[str, Any],
        answers: List[Tuple[int, Any]]) -> Tuple[Dict[str, Any], Script, List[float]]:
    return run_module(robot_order, monkeypatch, capsys, args, answers)


BASE = {"server_number": 101, "product_id": "subnet_ipv4_29", "reason": "Sending IPs of the transactional pool",
        "subnet": "203.0.113.64/29", "poll_interval": 1}
PRODUCTS = (200, [{"product": {"id": "subnet_ipv4_29", "name": "Subnet /29"}}])
PENDING = {"id": "B20261127-1", "status": "in process", "server_number": 101,
           "product": {"id": "subnet_ipv4_29"}, "resources": []}
READY = dict(PENDING, status="ready", resources=[{"type": "subnet", "id": "203.0.113.64"}])
SUBNET = {"subnet": {"ip": "203.0.113.64", "mask": 29, "gateway": "203.0.113.65", "server_ip": "203.0.113.21",
                     "server_number": 101, "failover": False, "locked": False}}
ORDER_BODY = "product_id=subnet_ipv4_29&reason=Sending+IPs+of+the+transactional+pool&server_number=101&test={0}"


def test_default_is_a_dry_run(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, BASE, [
        err(404, "SUBNET_NOT_FOUND"), err(404, "NOT_FOUND"), PRODUCTS,
        (201, {"transaction": dict(PENDING, id="TEST-1")}),
    ])
    assert script.wire() == [
        ("GET", "/subnet/203.0.113.64", None),
        ("GET", "/order/server_addon/transaction", None),
        ("GET", "/order/server_addon/101/product", None),
        ("POST", "/order/server_addon/transaction", ORDER_BODY.format("true")),
    ]
    assert result["changed"] is False and result["outcome"] == "dry_run"


def test_existing_subnet_means_no_order(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, test=False, confirm_order=True), [(200, SUBNET)])
    assert script.wire() == [("GET", "/subnet/203.0.113.64", None)]
    assert result["changed"] is False and result["outcome"] == "exists"


def test_pending_order_means_no_new_order(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, test=False, confirm_order=True), [
        err(404, "SUBNET_NOT_FOUND"),
        (200, [{"transaction": dict(PENDING, status="ready", id="OLD")}, {"transaction": PENDING}]),
        (200, {"transaction": READY}),
        (200, SUBNET),
    ])
    assert [w[0] for w in script.wire()] == ["GET", "GET", "GET", "GET"]
    assert script.wire()[2] == ("GET", "/order/server_addon/transaction/B20261127-1", None)
    assert result["changed"] is False and result["outcome"] == "pending" and result["subnet"]["cidr"] == "203.0.113.64/29"


def test_real_order_needs_confirmation(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, test=False),
                                 [err(404, "SUBNET_NOT_FOUND"), err(404, "NOT_FOUND")])
    assert "POST" not in [w[0] for w in script.wire()]
    assert result["failed"] is True and "confirm_order=true" in result["msg"]


def test_check_mode_never_orders(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, test=False, confirm_order=True, _ansible_check_mode=True),
                                 [err(404, "SUBNET_NOT_FOUND"), err(404, "NOT_FOUND")])
    assert [w[0] for w in script.wire()] == ["GET", "GET"]
    assert result["changed"] is True and result["outcome"] == "would_order"


def test_real_order_waits_until_ready(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, dict(BASE, test=False, confirm_order=True), [
        err(404, "SUBNET_NOT_FOUND"), err(404, "NOT_FOUND"), PRODUCTS,
        (201, {"transaction": PENDING}),
        (200, {"transaction": PENDING}),
        (200, {"transaction": READY}),
        (200, SUBNET),
    ])
    assert script.wire()[3] == ("POST", "/order/server_addon/transaction", ORDER_BODY.format("false"))
    assert script.wire()[4:] == [("GET", "/order/server_addon/transaction/B20261127-1", None),
                                 ("GET", "/order/server_addon/transaction/B20261127-1", None),
                                 ("GET", "/subnet/203.0.113.64", None)]
    assert slept == [1, 1]
    assert result["changed"] is True and result["outcome"] == "ordered" and result["subnet"]["mask"] == 29


def test_unknown_product_lists_what_can_be_ordered(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, product_id="subnet_ipv4_24"),
                                 [err(404, "SUBNET_NOT_FOUND"), err(404, "NOT_FOUND"), PRODUCTS])
    assert "POST" not in [w[0] for w in script.wire()]
    assert "subnet_ipv4_29" in result["msg"]


def test_order_is_not_retried_on_a_server_error(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, dict(BASE, test=False, confirm_order=True), [
        err(404, "SUBNET_NOT_FOUND"), err(404, "NOT_FOUND"), PRODUCTS, err(503, "MAINTENANCE"),
    ])
    assert [w[0] for w in script.wire()].count("POST") == 1 and slept == []
    assert result["failed"] is True and "maintenance" in result["msg"]
