# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stateful local stand-in for the Hetzner Robot webservice.

It implements the endpoints the collection's Robot modules call, the way Hetzner
documents them: HTTP Basic auth, form-encoded bodies, JSON answers, the error
envelope ``{"error": {"status", "code", "message"}}``, 404 ``NOT_FOUND`` for
empty lists, 403 ``RATE_LIMIT_EXCEEDED`` with ``max_request`` and ``interval``.

Endpoints: ``GET /subnet[?server_ip=]``, ``GET /subnet/{ip}``,
``GET /rdns[?server_ip=]``, ``GET|PUT|POST|DELETE /rdns/{ip}``,
``GET /vswitch``, ``GET /vswitch/{id}``,
``GET /order/server_addon/{server_number}/product``,
``GET|POST /order/server_addon/transaction``, ``GET /order/server_addon/transaction/{id}``.

Test controls (no auth, JSON): ``GET|DELETE /_admin/log`` (the request log),
``POST /_admin/faults`` (append fault rules), ``DELETE /_admin/faults``,
``GET|PUT /_admin/state``, ``POST /_admin/rate-limit`` (``{"limit": N, "interval": S}``),
``POST /_admin/latency`` (``{"seconds": S}``).

A fault rule: ``{"method": "PUT", "path": "/rdns", "status": 500, "code": "INTERNAL_ERROR",
"count": 1, "skip": 0, "delay": 0}``. ``path`` is a prefix; ``status`` 403 with code
``RATE_LIMIT_EXCEEDED`` answers like the real rate limit (``interval`` overrides the
announced interval); ``status`` 0 only delays.

Use it in-process (``RobotStandin(...).start()``) or from the command line::

    python tests/standins/robot_api.py --listen 127.0.0.1:8089 --state /tmp/robot.json \\
        --user robot --password secret [--rate-limit 500 --rate-interval 3600] [--latency 0.05] \\
        [--seed-json seed.json] [--dns-update 127.0.0.1:5353 --tsig-key-file key.conf]

With ``--dns-update``, every rDNS write also becomes a TSIG-signed RFC 2136 update of
the PTR in the reverse zone on that DNS server (needs dnspython), so PTRs resolve.
Standard library only, apart from that option.
"""

from __future__ import annotations

import argparse
import base64
import copy
import ipaddress
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

Answer = Tuple[int, Any]

DEFAULT_STATE: Dict[str, Any] = {
    "servers": [],        # {"server_ip", "server_number", "server_name"}
    "subnets": [],        # {"ip", "mask", "gateway", "server_ip", "server_number", "failover", "locked"}
    "rdns": {},           # ip -> ptr
    "vswitches": [],      # {"id", "name", "vlan", "cancelled", "server": [...], "subnet": [...]}
    "products": {},       # str(server_number) -> [{"id", "name", ...}]
    "transactions": [],   # addon order transactions
    "order_pool": [],     # subnets a real order delivers: {"ip", "mask", "gateway"}
    "order_ready_after": 0.0,
}


def error(status: int, code: str, message: str, **extra: Any) -> Answer:
    body: Dict[str, Any] = {"status": status, "code": code, "message": message}
    body.update(extra)
    return status, {"error": body}


@dataclass
class FaultRule:
    method: str = ""
    path: str = ""
    status: int = 500
    code: str = "INTERNAL_ERROR"
    count: int = 1
    skip: int = 0
    delay: float = 0.0
    interval: int = 0          # for injected rate limits: the interval to announce (0: the limiter's)

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and path.startswith(self.path)


@dataclass
class RateLimiter:
    """A fixed window of ``limit`` requests per ``interval`` seconds for one bucket."""

    limit: int = 0
    interval: float = 3600.0
    window_start: float = 0.0
    used: int = 0

    def allow(self, now: float) -> bool:
        if self.limit <= 0:
            return True
        if now - self.window_start >= self.interval:
            self.window_start = now
            self.used = 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True


class DnsUpdater:
    """Mirror rDNS writes into a reverse zone with TSIG-signed RFC 2136 updates."""

    def __init__(self, target: str, key_file: str, ttl: int = 3600) -> None:
        import dns.tsig  # noqa: F401 (fail early when dnspython is missing)
        host, _sep, port = target.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.ttl = ttl
        self.key = self._read_key(key_file)

    @staticmethod
    def _read_key(path: str) -> Any:
        import dns.name
        import dns.tsig
        with open(path) as handle:
            text = handle.read()
        name = re.search(r'key\s+"?([^"\s{]+)"?\s*\{', text)
        algorithm = re.search(r"algorithm\s+\"?([\w.-]+)\"?\s*;", text)
        secret = re.search(r'secret\s+"([^"]+)"\s*;', text)
        if not (name and algorithm and secret):
            raise ValueError("{0} is not a BIND key file (key \"name\" {{ algorithm ...; secret \"...\"; }};)".format(path))
        return dns.tsig.Key(dns.name.from_text(name.group(1)), secret.group(1), dns.name.from_text(algorithm.group(1)))

    def __call__(self, ip: str, ptr: Optional[str]) -> None:
        import dns.query
        import dns.rcode
        import dns.reversename
        import dns.update
        owner = dns.reversename.from_address(ip)
        zone = owner.parent() if ipaddress.ip_address(ip).version == 4 else owner.split(len(owner) - 16)[1]
        update = dns.update.UpdateMessage(zone, keyring=self.key)
        if ptr is None:
            update.delete(owner, "PTR")
        else:
            update.replace(owner, self.ttl, "PTR", ptr.rstrip(".") + ".")
        answer = dns.query.tcp(update, self.host, port=self.port, timeout=5)
        if answer.rcode() != dns.rcode.NOERROR:
            raise RuntimeError("DNS update of {0} refused: {1}".format(owner, dns.rcode.to_text(answer.rcode())))


class RobotStandin:
    """The stand-in: state, rules, request log, and an HTTP server around them."""

    def __init__(self, user: str = "robot", password: str = "secret", state: Optional[Dict[str, Any]] = None,
                 state_file: Optional[str] = None, rate_limit: int = 0, rate_interval: float = 3600.0,
                 latency: float = 0.0, dns_updater: Optional[Callable[[str, Optional[str]], None]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.user = user
        self.password = password
        self.state_file = state_file
        self.state = self._initial_state(state, state_file)
        self.rdns_limit = RateLimiter(rate_limit, rate_interval)
        self.order_limit = RateLimiter(0, 86400.0)
        self.latency = latency
        self.dns_updater = dns_updater
        self.clock = clock
        self.faults: List[FaultRule] = []
        self.log: List[Dict[str, Any]] = []
        self.failed_logins = 0
        self.lock = threading.RLock()
        self.server: Optional[ThreadingHTTPServer] = None
        self.thread: Optional[threading.Thread] = None
        self._serial = 0

    # State ------------------------------------------------------------------------------

    @staticmethod
    def _initial_state(state: Optional[Dict[str, Any]], state_file: Optional[str]) -> Dict[str, Any]:
        merged = copy.deepcopy(DEFAULT_STATE)
        if state_file and os.path.exists(state_file):
            with open(state_file) as handle:
                merged.update(json.load(handle))
        elif state:
            merged.update(copy.deepcopy(state))
        return merged

    def save(self) -> None:
        if not self.state_file:
            return
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(self.state, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.state_file)

    def snapshot(self) -> Dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.state)

    def set_ptrs(self, ptrs: Dict[str, str]) -> None:
        with self.lock:
            self.state["rdns"] = dict(ptrs)
            self.save()

    # Server -----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "RobotStandin":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8") if length else ""
                status, payload = standin.handle(self.command, self.path, dict(self.headers.items()), body)
                data = b"" if payload is None else json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return "http://{0}:{1}".format(host, port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # Request handling -------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Dict[str, str], body: str) -> Answer:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if path.startswith("/_admin/"):
            return self._admin(method, path, body)
        if self.latency > 0:
            time.sleep(self.latency)
        form = parse_qs(body, keep_blank_values=True)
        entry: Dict[str, Any] = {"time": time.time(), "method": method, "path": path, "query": query,
                                 "form": {k: (v if k.endswith("[]") else v[-1]) for k, v in form.items()},
                                 "auth": headers.get("Authorization") or headers.get("authorization"),
                                 "content_type": headers.get("Content-Type") or headers.get("content-type")}
        status, payload = self._handle_api(method, path, query, entry)
        entry["status"] = status
        entry["code"] = payload["error"]["code"] if isinstance(payload, dict) and "error" in payload else None
        with self.lock:
            self.log.append(entry)
        return status, payload

    def _authorized(self, header: Optional[str]) -> Optional[str]:
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _sep, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except ValueError:
            return None
        return user if (user, password) == (self.user, self.password) else None

    def _handle_api(self, method: str, path: str, query: Dict[str, str], entry: Dict[str, Any]) -> Answer:
        entry["user"] = self._authorized(entry["auth"])
        if entry["user"] is None:
            with self.lock:
                self.failed_logins += 1
            return error(401, "UNAUTHORIZED", "Unable to authenticate")
        fault = self._take_fault(method, path)
        if fault is not None:
            if fault.delay > 0:
                time.sleep(fault.delay)
            if fault.status == 403 and fault.code == "RATE_LIMIT_EXCEEDED":
                return self._rate_limited(fault.interval)
            if fault.status:
                return error(fault.status, fault.code, "Injected fault")
        if path == "/rdns" or path.startswith("/rdns/"):
            with self.lock:
                if not self.rdns_limit.allow(self.clock()):
                    return self._rate_limited()
        if path == "/order/server_addon/transaction" and method == "POST":
            with self.lock:
                if not self.order_limit.allow(self.clock()):
                    return error(403, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded", max_request=self.order_limit.limit,
                                 interval=int(self.order_limit.interval))
        with self.lock:
            try:
                return self._route(method, path, query, entry["form"])
            except Exception as exc:  # a broken DNS update, a bad seed: answer like a server error
                return error(500, "INTERNAL_ERROR", "Stand-in failure: {0}".format(exc))

    def _rate_limited(self, interval: int = 0) -> Answer:
        return error(403, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded",
                     max_request=self.rdns_limit.limit, interval=interval or int(round(self.rdns_limit.interval)))

    def _take_fault(self, method: str, path: str) -> Optional[FaultRule]:
        with self.lock:
            for rule in self.faults:
                if rule.count > 0 and rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        return None
                    rule.count -= 1
                    return rule
        return None

    def _route(self, method: str, path: str, query: Dict[str, str], form: Dict[str, Any]) -> Answer:
        segments = [s for s in path.split("/") if s]
        if segments[:1] == ["subnet"]:
            if method != "GET":
                return error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
            return self._subnets(query) if len(segments) == 1 else self._subnet("/".join(segments[1:]))
        if segments[:1] == ["rdns"]:
            if len(segments) == 1:
                return self._rdns_list(query) if method == "GET" else error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
            return self._rdns_one(method, "/".join(segments[1:]), form)
        if segments[:1] == ["vswitch"] and method == "GET":
            return self._vswitches() if len(segments) == 1 else self._vswitch(segments[1])
        if segments[:2] == ["order", "server_addon"]:
            return self._order(method, segments[2:], form)
        return error(404, "NOT_FOUND", "Not found")

    # Subnets ----------------------------------------------------------------------------

    def _subnets(self, query: Dict[str, str]) -> Answer:
        items = [s for s in self.state["subnets"] if "server_ip" not in query or s.get("server_ip") == query["server_ip"]]
        if not items:
            return error(404, "NOT_FOUND", "Subnet not found")
        return 200, [{"subnet": dict(s)} for s in items]

    def _subnet(self, ip: str) -> Answer:
        for subnet in self.state["subnets"]:
            if subnet["ip"] == ip:
                return 200, {"subnet": dict(subnet)}
        return error(404, "SUBNET_NOT_FOUND", "Subnet not found")

    # rDNS -------------------------------------------------------------------------------

    def _owner_of(self, ip: str) -> Optional[str]:
        """Server IP (or "" for a vSwitch subnet) that owns ``ip``; None when not in the account."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for server in self.state["servers"]:
            if server["server_ip"] == ip:
                return server["server_ip"]
        for subnet in self.state["subnets"]:
            net = ipaddress.ip_network("{0}/{1}".format(subnet["ip"], subnet["mask"]), strict=False)
            if addr.version == net.version and addr in net:
                return subnet.get("server_ip") or ""
        return None

    def _rdns_list(self, query: Dict[str, str]) -> Answer:
        wanted = query.get("server_ip")
        items = [{"rdns": {"ip": ip, "ptr": ptr}} for ip, ptr in sorted(self.state["rdns"].items())
                 if wanted is None or self._owner_of(ip) == wanted]
        if not items:
            return error(404, "NOT_FOUND", "No reverse DNS entries found")
        return 200, items

    def _rdns_one(self, method: str, ip: str, form: Dict[str, Any]) -> Answer:
        if self._owner_of(ip) is None:
            return error(404, "IP_NOT_FOUND", "The IP address {0} was not found".format(ip))
        key = ipaddress.ip_address(ip).compressed
        current = self.state["rdns"].get(key)
        if method == "GET":
            if current is None:
                return error(404, "RDNS_NOT_FOUND", "The IP address {0} has no reverse DNS entry".format(ip))
            return 200, {"rdns": {"ip": key, "ptr": current}}
        if method == "DELETE":
            if current is None:
                return error(404, "RDNS_NOT_FOUND", "The IP address {0} has no reverse DNS entry".format(ip))
            self._write_ptr(key, None)
            return 200, None
        if method not in ("PUT", "POST"):
            return error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
        ptr = form.get("ptr")
        if not ptr:
            return error(400, "INVALID_INPUT", "Invalid input parameters", missing=["ptr"], invalid=[])
        if method == "PUT" and current is not None:
            return error(409, "RDNS_ALREADY_EXISTS", "There is already a reverse DNS entry for {0}".format(ip))
        status = 201 if current is None else 200
        self._write_ptr(key, ptr)
        return status, {"rdns": {"ip": key, "ptr": ptr}}

    def _write_ptr(self, ip: str, ptr: Optional[str]) -> None:
        if self.dns_updater is not None:
            self.dns_updater(ip, ptr)
        if ptr is None:
            self.state["rdns"].pop(ip, None)
        else:
            self.state["rdns"][ip] = ptr
        self.save()

    # vSwitch ----------------------------------------------------------------------------

    def _vswitches(self) -> Answer:
        return 200, [{k: v[k] for k in ("id", "name", "vlan", "cancelled")} for v in self.state["vswitches"]]

    def _vswitch(self, ident: str) -> Answer:
        for vswitch in self.state["vswitches"]:
            if str(vswitch["id"]) == ident:
                full = {"server": [], "subnet": [], "cloud_network": []}
                full.update(vswitch)
                return 200, full
        return error(404, "NOT_FOUND", "vSwitch not found")

    # Orders -----------------------------------------------------------------------------

    def _order(self, method: str, rest: List[str], form: Dict[str, Any]) -> Answer:
        if rest == ["transaction"] and method == "GET":
            self._advance_orders()
            items = [{"transaction": dict(t)} for t in self.state["transactions"]]
            return (200, items) if items else error(404, "NOT_FOUND", "No transactions found")
        if rest == ["transaction"] and method == "POST":
            return self._place_order(form)
        if len(rest) == 2 and rest[0] == "transaction" and method == "GET":
            self._advance_orders()
            for item in self.state["transactions"]:
                if item["id"] == rest[1]:
                    return 200, {"transaction": dict(item)}
            return error(404, "TRANSACTION_NOT_FOUND", "Transaction not found")
        if len(rest) == 2 and rest[1] == "product" and method == "GET":
            if not self._server(rest[0]):
                return error(404, "SERVER_NOT_FOUND", "Server not found")
            items = [{"product": dict(p)} for p in self.state["products"].get(rest[0], [])]
            return (200, items) if items else error(404, "NOT_FOUND", "No products found")
        return error(404, "NOT_FOUND", "Not found")

    def _server(self, number: Any) -> Optional[Dict[str, Any]]:
        for server in self.state["servers"]:
            if str(server["server_number"]) == str(number):
                return server
        return None

    def _place_order(self, form: Dict[str, Any]) -> Answer:
        missing = [k for k in ("product_id", "server_number", "reason") if not form.get(k)]
        if missing:
            return error(400, "INVALID_INPUT", "Invalid input parameters", missing=missing, invalid=[])
        server = self._server(form["server_number"])
        if server is None:
            return error(404, "SERVER_NOT_FOUND", "Server not found")
        products = {p["id"]: p for p in self.state["products"].get(str(server["server_number"]), [])}
        if form["product_id"] not in products:
            return error(404, "PRODUCT_NOT_FOUND", "Product not found")
        self._serial += 1
        transaction = {
            "id": "B{0}-{1}".format(time.strftime("%Y%m%d"), 100000 + len(self.state["transactions"]) + self._serial),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "status": "in process",
            "server_number": server["server_number"],
            "server_ip": server["server_ip"],
            "product": dict(products[form["product_id"]]),
            "resources": [],
            "reason": form["reason"],
            "placed_at": self.clock(),
        }
        if str(form.get("test", "false")).lower() == "true":
            transaction["id"] = "TEST-" + transaction["id"]
            return 201, {"transaction": transaction}
        self.state["transactions"].append(transaction)
        self.save()
        return 201, {"transaction": transaction}

    def _advance_orders(self) -> None:
        now = self.clock()
        for item in self.state["transactions"]:
            if item["status"] != "in process" or now - item.get("placed_at", now) < self.state["order_ready_after"]:
                continue
            mask = _mask_of_product(item["product"]["id"])
            for free in list(self.state["order_pool"]):
                if mask is None or int(free["mask"]) == mask:
                    self.state["order_pool"].remove(free)
                    subnet = {"ip": free["ip"], "mask": int(free["mask"]), "gateway": free.get("gateway"),
                              "server_ip": item["server_ip"], "server_number": item["server_number"],
                              "failover": False, "locked": False}
                    self.state["subnets"].append(subnet)
                    item["resources"] = [{"type": "subnet", "id": free["ip"]}]
                    break
            item["status"] = "ready"
            self.save()

    # Admin ------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: str) -> Answer:
        data = json.loads(body) if body else None
        with self.lock:
            if path == "/_admin/log":
                if method == "DELETE":
                    self.log.clear()
                    return 200, {}
                return 200, list(self.log)
            if path == "/_admin/faults":
                if method == "DELETE":
                    self.faults.clear()
                    return 200, {}
                rules = data if isinstance(data, list) else [data]
                self.faults.extend(FaultRule(**rule) for rule in rules)
                return 200, {"faults": len(self.faults)}
            if path == "/_admin/state":
                if method == "PUT":
                    self.state = self._initial_state(data, None)
                    self.save()
                return 200, self.state
            if path == "/_admin/rate-limit":
                self.rdns_limit = RateLimiter(int(data.get("limit", 0)), float(data.get("interval", 3600)))
                return 200, {"limit": self.rdns_limit.limit, "interval": self.rdns_limit.interval}
            if path == "/_admin/latency":
                self.latency = float(data.get("seconds", 0))
                return 200, {"latency": self.latency}
        return error(404, "NOT_FOUND", "Unknown admin endpoint")


def _mask_of_product(product_id: str) -> Optional[int]:
    match = re.search(r"subnet_ipv4_(\d+)$", product_id)
    return int(match.group(1)) if match else None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Local stand-in for the Hetzner Robot webservice")
    parser.add_argument("--listen", default="127.0.0.1:8089", help="HOST:PORT to listen on")
    parser.add_argument("--state", help="JSON file holding the state (read at start, written on change)")
    parser.add_argument("--seed-json", help="initial state when --state does not exist yet")
    parser.add_argument("--user", default="robot")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--rate-limit", type=int, default=0, help="rDNS requests allowed per --rate-interval (0: none)")
    parser.add_argument("--rate-interval", type=float, default=3600.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API answer")
    parser.add_argument("--dns-update", help="HOST:PORT of a DNS server to send PTR updates to")
    parser.add_argument("--tsig-key-file", help="BIND key file for --dns-update")
    args = parser.parse_args(argv)
    seed = None
    if args.seed_json:
        with open(args.seed_json) as handle:
            seed = json.load(handle)
    updater = None
    if args.dns_update:
        if not args.tsig_key_file:
            parser.error("--dns-update needs --tsig-key-file")
        updater = DnsUpdater(args.dns_update, args.tsig_key_file)
    host, _sep, port = args.listen.rpartition(":")
    standin = RobotStandin(args.user, args.password, state=seed, state_file=args.state, rate_limit=args.rate_limit,
                           rate_interval=args.rate_interval, latency=args.latency, dns_updater=updater)
    standin.save()
    standin.start(host or "127.0.0.1", int(port))
    print("Robot stand-in listening on {0}".format(standin.url), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
