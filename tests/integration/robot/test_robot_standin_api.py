# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Robot stand-in answers as Robot documents it, and its admin endpoints work over HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional, Tuple

from robot_support import PASSWORD, USER


def call(url: str, method: str = "GET", body: Optional[str] = None, auth: Tuple[str, str] = (USER, PASSWORD),
         json_body: Any = None) -> Tuple[int, Any]:
    headers = {}
    data = None
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode("{0}:{1}".format(*auth).encode()).decode()
    if body is not None:
        data = body.encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if json_body is not None:
        data = json.dumps(json_body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_documented_answers(standin) -> None:
    base = standin.url
    assert call(base + "/rdns", auth=("robot", "wrong")) == (401, {"error": {
        "status": 401, "code": "UNAUTHORIZED", "message": "Unable to authenticate"}})
    assert call(base + "/rdns")[1]["error"]["code"] == "NOT_FOUND"            # empty list is a 404
    assert call(base + "/rdns/192.0.2.9")[1]["error"]["code"] == "RDNS_NOT_FOUND"
    assert call(base + "/rdns/10.0.0.1")[1]["error"]["code"] == "IP_NOT_FOUND"
    status, body = call(base + "/rdns/192.0.2.9", "PUT", "")
    assert status == 400 and body["error"]["code"] == "INVALID_INPUT" and body["error"]["missing"] == ["ptr"]
    assert call(base + "/rdns/192.0.2.9", "PUT", "ptr=a.example")[0] == 201
    assert call(base + "/rdns/192.0.2.9", "PUT", "ptr=b.example")[1]["error"]["code"] == "RDNS_ALREADY_EXISTS"
    assert call(base + "/rdns/192.0.2.9", "POST", "ptr=b.example") == (200, {"rdns": {"ip": "192.0.2.9", "ptr": "b.example"}})
    assert call(base + "/rdns/192.0.2.10", "POST", "ptr=c.example")[0] == 201
    assert call(base + "/rdns?server_ip=203.0.113.31")[1]["error"]["code"] == "NOT_FOUND"  # 192.0.2.0/24 is on a vSwitch
    assert call(base + "/rdns/192.0.2.9", "DELETE") == (200, None)
    assert call(base + "/subnet?server_ip=203.0.113.31")[1] == [{"subnet": standin.state["subnets"][1]}]
    assert call(base + "/subnet/203.0.113.0")[1]["error"]["code"] == "SUBNET_NOT_FOUND"
    # single IPs: each server's main IP (GET /ip lists what GET /subnet does not)
    ips = call(base + "/ip")[1]
    assert [i["ip"]["ip"] for i in ips] == [s["server_ip"] for s in standin.state["servers"]]
    assert call(base + "/ip?server_ip=203.0.113.31")[1] == [{"ip": {
        "ip": "203.0.113.31", "server_ip": "203.0.113.31", "server_number": 201, "locked": False,
        "separate_mac": None, "traffic_warnings": False}}]
    assert call(base + "/ip/203.0.113.31")[1]["ip"]["server_number"] == 201
    assert call(base + "/ip/203.0.113.99")[1]["error"]["code"] == "IP_NOT_FOUND"
    assert call(base + "/ip?server_ip=203.0.113.99")[1]["error"]["code"] == "NOT_FOUND"


def test_rate_limit_window_and_admin_endpoints(standin) -> None:
    base = standin.url
    assert call(base + "/_admin/rate-limit", "POST", json_body={"limit": 2, "interval": 1}, auth=None)[0] == 200
    assert [call(base + "/rdns")[0] for _attempt in range(3)] == [404, 404, 403]
    limited = call(base + "/rdns")[1]["error"]
    assert (limited["code"], limited["max_request"], limited["interval"]) == ("RATE_LIMIT_EXCEEDED", 2, 1)
    time.sleep(1.1)
    assert call(base + "/rdns")[0] == 404                                      # a new window
    assert call(base + "/_admin/faults", "POST", auth=None,
                json_body=[{"method": "GET", "path": "/subnet", "status": 503, "code": "MAINTENANCE"}])[0] == 200
    assert call(base + "/subnet")[0] == 503 and call(base + "/subnet")[0] == 200
    log = call(base + "/_admin/log", auth=None)[1]
    assert [(e["method"], e["path"], e["status"]) for e in log[-2:]] == [("GET", "/subnet", 503), ("GET", "/subnet", 200)]
    assert call(base + "/_admin/log", "DELETE", auth=None)[0] == 200 and call(base + "/_admin/log", auth=None)[1] == []
    assert call(base + "/_admin/latency", "POST", json_body={"seconds": 0.3}, auth=None)[0] == 200
    started = time.monotonic()
    call(base + "/subnet")
    assert time.monotonic() - started >= 0.3


def test_orders_refuse_unknown_products_with_invalid_input(standin) -> None:
    base = standin.url
    status, body = call(base + "/order/server_addon/transaction", "POST",
                        "product_id=subnet_ipv4_8&server_number=101&reason=x&test=true")
    assert status == 400 and body["error"]["code"] == "INVALID_INPUT" and body["error"]["invalid"] == ["product_id"]
    status, body = call(base + "/order/server/transaction", "POST",
                        "product_id=AX0&location=FSN1&authorized_key%5B%5D=aa&test=true")
    assert status == 400 and body["error"]["invalid"] == ["product_id"]
    status, body = call(base + "/order/server/transaction", "POST",
                        "product_id=AX42&location=XX9&authorized_key%5B%5D=aa&test=maybe")
    assert status == 400 and sorted(body["error"]["invalid"]) == ["location", "test"]


def test_ptr_names_robot_refuses_and_default_ptrs(standin) -> None:
    base = standin.url
    for bad in ("a_b.example", "-a.example", "a-.example", "a b.example", "b\u00fccher.example"):
        status, body = call(base + "/rdns/192.0.2.9", "POST", "ptr=" + urllib.parse.quote(bad))
        assert (status, body["error"]["code"], body["error"]["invalid"]) == (400, "INVALID_INPUT", ["ptr"]), bad
    assert call(base + "/rdns/192.0.2.9", "POST", "ptr=ok-1.example.")[0] == 201
    assert call(base + "/rdns")[1] == [{"rdns": {"ip": "192.0.2.9", "ptr": "ok-1.example."}}]
    standin.state["default_ptrs"] = True       # Hetzner's names of the main IPs (off by default)
    assert {e["rdns"]["ptr"] for e in call(base + "/rdns")[1]} == {"ok-1.example."} | {
        "static.203.0.113.{0}.clients.your-server.de".format(n) for n in (21, 22, 31)}
    main = "203.0.113.21"
    assert call(base + "/rdns/" + main)[1] == {"rdns": {"ip": main, "ptr": "static.203.0.113.21.clients.your-server.de"}}
    assert call(base + "/rdns/" + main, "POST", "ptr=us-mta1.kbmta.net")[0] == 200
    assert call(base + "/rdns/" + main, "DELETE")[0] == 200
    assert call(base + "/rdns/" + main)[1]["rdns"]["ptr"].startswith("static.")


def test_connection_drops_and_per_endpoint_limits(standin) -> None:
    base = standin.url
    call(base + "/_admin/faults", "POST", auth=None, json_body=[
        {"method": "POST", "path": "/rdns/*", "drop": "after"}, {"method": "GET", "path": "/subnet", "drop": "before"}])
    for path, method, body in (("/rdns/192.0.2.9", "POST", "ptr=x.example"), ("/subnet", "GET", None)):
        try:
            call(base + path, method, body)
            raise AssertionError("an answer came for " + path)
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
            pass
    assert standin.snapshot()["rdns"]["192.0.2.9"] == "x.example"        # applied, answer lost
    assert [e.get("dropped") for e in standin.log[-2:]] == ["after", "before"]
    assert call(base + "/_admin/rate-limit", "POST", auth=None,
                json_body={"bucket": "order_server", "limit": 1, "interval": 60})[0] == 200
    form = "product_id=AX42&location=FSN1&authorized_key%5B%5D=aa&test=true"
    assert call(base + "/order/server/transaction", "POST", form)[0] == 201
    status, body = call(base + "/order/server/transaction", "POST", form)
    assert (status, body["error"]["code"], body["error"]["max_request"], body["error"]["interval"]) == (
        403, "RATE_LIMIT_EXCEEDED", 1, 60)
    assert call(base + "/order/server_addon/transaction", "POST",
                "product_id=subnet_ipv4_29&server_number=101&reason=x&test=true")[0] == 201   # another bucket
