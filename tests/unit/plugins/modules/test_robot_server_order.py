# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""robot_server_order: the exact HTTP conversation of each path through the module."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest
from ansible.module_utils.six.moves.urllib.error import URLError

from ansible_collections.kibamail.email_platform.plugins.modules import robot_server_order
from ansible_collections.kibamail.email_platform.tests.unit.plugins.robot_conversation import (
    Script, err, run_module,
)


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: Dict[str, Any],
        answers: List[Tuple[int, Any]]) -> Tuple[Dict[str, Any], Script, List[float]]:
    return run_module(robot_server_order, monkeypatch, capsys, args, answers)


BASE = {"name": "us-mta1", "product_id": "AX42", "location": "FSN1", "dist": "Debian 12 base",
        "authorized_keys": ["aa:bb"], "poll_interval": 1}
REAL = dict(BASE, test=False, confirm_order=True)
OTHER_SERVER = {"server": {"server_number": 102, "server_ip": "203.0.113.22", "server_name": "us-mta2", "product": "AX42"}}
NEW_SERVER = {"server": {"server_number": 1001, "server_ip": "203.0.113.40", "server_name": "", "product": "AX42"}}
NAMED = {"server": dict(NEW_SERVER["server"], server_name="us-mta1")}
PRODUCT = (200, {"product": {"id": "AX42", "location": ["FSN1", "NBG1"], "dist": ["Debian 12 base"]}})
COMMENT = "Kibamail+sending+platform+%5Bkibamail%3Aus-mta1%5D"
ORDER_BODY = ("authorized_key%5B%5D=aa%3Abb&comment=" + COMMENT
              + "&dist=Debian+12+base&location=FSN1&product_id=AX42&test={0}")
PENDING = {"id": "B1", "status": "in process", "server_number": None, "server_ip": None,
           "comment": "Kibamail sending platform [kibamail:us-mta1]", "product": {"id": "AX42"}}
READY = dict(PENDING, status="ready", server_number=1001, server_ip="203.0.113.40")
READS = [("GET", "/server", None), ("GET", "/order/server/transaction", None)]


def test_default_dry_run_reads_the_product_and_sends_no_order(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, BASE, [(200, [OTHER_SERVER]), err(404, "NOT_FOUND"), PRODUCT])
    assert script.wire() == READS + [("GET", "/order/server/product/AX42", None)]
    assert result["changed"] is False and result["outcome"] == "dry_run"
    assert result["request"]["comment"].endswith("[kibamail:us-mta1]")


def test_server_named_for_the_host_means_no_order(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, REAL, [(200, [OTHER_SERVER, NAMED])])
    assert script.wire() == [("GET", "/server", None)]
    assert result["changed"] is False and result["outcome"] == "exists"
    assert (result["server_number"], result["server_ip"]) == (1001, "203.0.113.40")


def test_real_order_waits_names_the_server_and_returns_number_and_ip(monkeypatch, capsys) -> None:
    result, script, slept = run(monkeypatch, capsys, dict(REAL, _ansible_diff=True), [
        (200, [OTHER_SERVER]), err(404, "NOT_FOUND"), PRODUCT,
        (201, {"transaction": PENDING}), (200, {"transaction": READY}),
        (200, [OTHER_SERVER, NEW_SERVER]), (200, NAMED),
    ])
    assert script.wire()[2:] == [
        ("GET", "/order/server/product/AX42", None),
        ("POST", "/order/server/transaction", ORDER_BODY.format("false")),
        ("GET", "/order/server/transaction/B1", None),
        ("GET", "/server", None),
        ("POST", "/server/1001", "server_name=us-mta1"),
    ]
    assert slept == [1]
    assert result["changed"] is True and result["outcome"] == "ordered"
    assert (result["server_number"], result["server_ip"]) == (1001, "203.0.113.40")
    assert result["diff"]["after"]["server_name"] == "us-mta1"


def test_lost_answer_says_the_order_may_have_been_placed(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, REAL, [
        (200, [OTHER_SERVER]), err(404, "NOT_FOUND"), PRODUCT, (0, URLError("connection reset"))])
    assert [w[0] for w in script.wire()].count("POST") == 1
    assert result["failed"] is True and result["changed"] is True and result["outcome"] == "unknown"
    assert "may have been placed: transaction unknown" in result["msg"]


def test_rerun_after_a_lost_answer_finds_the_delivered_order(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, REAL, [
        (200, [OTHER_SERVER, NEW_SERVER]), (200, [{"transaction": READY}]), (200, NAMED)])
    assert script.wire() == READS + [("POST", "/server/1001", "server_name=us-mta1")]
    assert result["changed"] is True and result["outcome"] == "delivered" and result["server_number"] == 1001


def test_check_mode_orders_nothing_and_renames_nothing(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(REAL, _ansible_check_mode=True), [
        (200, [OTHER_SERVER, NEW_SERVER]), (200, [{"transaction": READY}])])
    assert script.wire() == READS
    assert result["changed"] is True and result["outcome"] == "delivered"


def test_unknown_product_is_refused_before_any_order(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, product_id="AX0"), [
        (200, [OTHER_SERVER]), err(404, "NOT_FOUND"), err(404, "PRODUCT_NOT_FOUND")])
    assert "POST" not in [w[0] for w in script.wire()]
    assert result["failed"] is True and "no product 'AX0'" in result["msg"]


def test_location_not_offered_is_refused(monkeypatch, capsys) -> None:
    result, _script, _slept = run(monkeypatch, capsys, dict(BASE, location="HEL1"), [
        (200, [OTHER_SERVER]), err(404, "NOT_FOUND"), PRODUCT])
    assert result["failed"] is True and "location 'HEL1' is not offered" in result["msg"]


def test_invalid_input_of_the_order_is_surfaced(monkeypatch, capsys) -> None:
    result, _script, _slept = run(monkeypatch, capsys, dict(BASE, validate_with_api=True), [
        (200, [OTHER_SERVER]), err(404, "NOT_FOUND"), PRODUCT,
        err(400, "INVALID_INPUT", missing=[], invalid=["product_id"])])
    assert result["failed"] is True and "400 INVALID_INPUT" in result["msg"]
    assert "invalid parameters: product_id" in result["msg"] and "ordered nothing" in result["msg"]


def test_password_is_masked_in_the_request(monkeypatch, capsys) -> None:
    args = {k: v for k, v in BASE.items() if k != "authorized_keys"}
    args["password"] = "hunter2-long"
    result, _script, _slept = run(monkeypatch, capsys, args, [(200, [OTHER_SERVER]), err(404, "NOT_FOUND"), PRODUCT])
    assert result["request"]["password"] == "********" and "hunter2-long" not in str(result)


def test_market_order_uses_the_auction_endpoints(monkeypatch, capsys) -> None:
    result, script, _slept = run(monkeypatch, capsys, dict(BASE, market=True, product_id="1234567", location=None), [
        err(404, "NOT_FOUND"), err(404, "NOT_FOUND"), (200, {"product": {"id": 1234567, "dist": ["Debian 12 base"]}})])
    assert script.wire() == [("GET", "/server", None), ("GET", "/order/server_market/transaction", None),
                             ("GET", "/order/server_market/product/1234567", None)]
    assert result["outcome"] == "dry_run"
