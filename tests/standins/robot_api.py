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
``GET /vswitch``, ``GET /vswitch/{id}``, ``GET /server``, ``GET|POST /server/{number}``,
``GET /order/server_addon/{server_number}/product``,
``GET|POST /order/server_addon/transaction``, ``GET /order/server_addon/transaction/{id}``,
``GET /order/server/product[/{id}]``, ``GET|POST /order/server/transaction``,
``GET /order/server/transaction/{id}``, and the same three for ``/order/server_market``.

Like Robot, the stand-in chooses what an order delivers: subnets and the main IPs of
new servers come from its own ``free_ranges`` (the first free aligned block of the
ordered size), never from anything the client sent. With ``"default_ptrs": true`` in the
state, a server's main IPv4 has the PTR ``static.<ip>.clients.your-server.de`` until one
is written (and again after a DELETE), as at Hetzner.

Test controls (no auth, JSON): ``GET|DELETE /_admin/log`` (the request log),
``POST /_admin/faults`` (append fault rules), ``DELETE /_admin/faults``,
``GET|PUT /_admin/state``, ``POST /_admin/rate-limit``
(``{"limit": N, "interval": S[, "bucket": NAME]}``, bucket ``rdns`` unless named; see
``LIMITED_ENDPOINTS``), ``POST /_admin/latency`` (``{"seconds": S}``).

A fault rule: ``{"method": "PUT", "path": "/rdns", "status": 500, "code": "INTERNAL_ERROR",
"count": 1, "skip": 0, "delay": 0, "drop": ""}``. ``path`` is a prefix, or a shell
pattern when it holds ``*`` (``/order/*/transaction``); ``status`` 403 with code
``RATE_LIMIT_EXCEEDED`` answers like the real rate limit (``interval`` overrides the
announced interval); ``status`` 0 only delays. ``drop`` closes the connection without
an answer: ``before`` the request is processed (nothing happens), or ``after`` it
(its effect is applied and logged, the answer is lost).

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
import fnmatch
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
    "free_ranges": [],    # CIDRs the stand-in assigns delivered subnets and server main IPs from
    "order_pool": [],     # legacy: {"ip", "mask"} entries count as free ranges too
    "order_ready_after": 0.0,
    "server_products": [],         # {"id", "name", "location": [...], "dist": [...]}
    "server_transactions": [],     # standard server orders
    "market_products": [],         # {"id" (int), "name", ...}: the server auction
    "market_transactions": [],     # server auction orders
    "default_ptrs": False,         # true: main IPv4s answer static.<ip>.clients.your-server.de until a PTR is set
}

# Rate-limit buckets: name -> (methods ("" = any), path pattern, default limit, default interval).
# Robot limits each endpoint on its own; a limit of 0 is off. The rDNS bucket takes --rate-limit.
LIMITED_ENDPOINTS: Dict[str, Tuple[str, str, int, float]] = {
    "rdns": ("", r"^/rdns(/.*)?$", 0, 3600.0),
    "subnet": ("GET", r"^/subnet(/.*)?$", 0, 3600.0),
    "server": ("", r"^/server(/.*)?$", 0, 3600.0),
    "order_read": ("GET", r"^/order/.*$", 0, 3600.0),
    "order_addon": ("POST", r"^/order/server_addon/transaction$", 20, 86400.0),
    "order_server": ("POST", r"^/order/server/transaction$", 20, 86400.0),
    "order_market": ("POST", r"^/order/server_market/transaction$", 20, 86400.0),
}

DROP = -1   # status of an answer that is never sent: the connection is closed instead

_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def valid_host_name(name: str) -> bool:
    """What Robot accepts as a PTR: ASCII host name labels (letters, digits, inner hyphens)."""
    text = name[:-1] if name.endswith(".") else name
    if not text or len(text) > 253:
        return False
    return all(_HOST_LABEL.match(label) for label in text.split("."))


def default_ptr(ip: str) -> str:
    """The PTR Hetzner gives a server's main IPv4 until the customer sets one."""
    return "static.{0}.clients.your-server.de".format(ip)


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
    drop: str = ""             # "before" or "after": close the connection without an answer

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        if "*" in self.path:
            return fnmatch.fnmatchcase(path, self.path)
        return path.startswith(self.path)


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
        self.limits: Dict[str, RateLimiter] = {
            name: RateLimiter(limit, interval) for name, (_m, _p, limit, interval) in LIMITED_ENDPOINTS.items()}
        self.limits["rdns"] = RateLimiter(rate_limit, rate_interval)
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

    @property
    def rdns_limit(self) -> RateLimiter:
        return self.limits["rdns"]

    @rdns_limit.setter
    def rdns_limit(self, limiter: RateLimiter) -> None:
        self.limits["rdns"] = limiter

    @property
    def order_limit(self) -> RateLimiter:
        return self.limits["order_addon"]

    @order_limit.setter
    def order_limit(self, limiter: RateLimiter) -> None:
        self.limits["order_addon"] = limiter

    def requests(self, method: str, path: str, dry_run: Optional[bool] = None) -> List[Dict[str, Any]]:
        """The logged requests of one method and path (every one, answered or not).

        ``dry_run`` keeps only real orders (False) or only ``test=true`` ones (True)."""
        found = [e for e in list(self.log) if e["method"] == method and e["path"] == path]
        if dry_run is not None:
            found = [e for e in found if (str(e["form"].get("test", "false")).lower() == "true") == dry_run]
        return found

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
                if status == DROP:      # no answer at all: the client sees the connection close
                    self.close_connection = True
                    return
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
        if entry.get("dropped"):
            return DROP, None
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
            if fault.drop == "before":
                entry["dropped"] = "before"
                return 0, None
            if fault.drop == "after":
                entry["dropped"] = "after"
            elif fault.status == 403 and fault.code == "RATE_LIMIT_EXCEEDED":
                return self._rate_limited(self._bucket(method, path) or "rdns", fault.interval)
            elif fault.status:
                return error(fault.status, fault.code, "Injected fault")
        bucket = self._bucket(method, path)
        if bucket is not None:
            with self.lock:
                if not self.limits[bucket].allow(self.clock()):
                    return self._rate_limited(bucket)
        with self.lock:
            try:
                return self._route(method, path, query, entry["form"])
            except Exception as exc:  # a broken DNS update, a bad seed: answer like a server error
                return error(500, "INTERNAL_ERROR", "Stand-in failure: {0}".format(exc))

    @staticmethod
    def _bucket(method: str, path: str) -> Optional[str]:
        for name, (methods, pattern, _limit, _interval) in LIMITED_ENDPOINTS.items():
            if (not methods or methods == method) and re.match(pattern, path):
                return name
        return None

    def _rate_limited(self, bucket: str = "rdns", interval: int = 0) -> Answer:
        limiter = self.limits[bucket]
        return error(403, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded",
                     max_request=limiter.limit, interval=interval or int(round(limiter.interval)))

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
        if segments[:1] == ["ip"]:
            if method != "GET":
                return error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
            return self._ips(query) if len(segments) == 1 else self._ip("/".join(segments[1:]))
        if segments[:1] == ["rdns"]:
            if len(segments) == 1:
                return self._rdns_list(query) if method == "GET" else error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
            return self._rdns_one(method, "/".join(segments[1:]), form)
        if segments[:1] == ["vswitch"] and method == "GET":
            return self._vswitches() if len(segments) == 1 else self._vswitch(segments[1])
        if segments[:1] == ["server"]:
            return self._servers(method, segments[1:], form)
        if segments[:2] == ["order", "server_addon"]:
            return self._order(method, segments[2:], form)
        if segments[:2] in (["order", "server"], ["order", "server_market"]):
            return self._server_order(segments[1] == "server_market", method, segments[2:], form)
        return error(404, "NOT_FOUND", "Not found")

    # Single IPs: every server's main IP, as GET /ip lists them ------------------------------

    @staticmethod
    def _ip_view(server: Dict[str, Any]) -> Dict[str, Any]:
        return {"ip": server["server_ip"], "server_ip": server["server_ip"], "server_number": server.get("server_number"),
                "locked": False, "separate_mac": None, "traffic_warnings": False}

    def _ips(self, query: Dict[str, str]) -> Answer:
        items = [self._ip_view(s) for s in self.state["servers"] if s.get("server_ip")
                 and ("server_ip" not in query or s["server_ip"] == query["server_ip"])]
        if not items:
            return error(404, "NOT_FOUND", "IP not found")
        return 200, [{"ip": item} for item in items]

    def _ip(self, ip: str) -> Answer:
        for server in self.state["servers"]:
            if server.get("server_ip") == ip:
                return 200, {"ip": self._ip_view(server)}
        return error(404, "IP_NOT_FOUND", "IP not found")

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

    # Servers ----------------------------------------------------------------------------

    def _servers(self, method: str, rest: List[str], form: Dict[str, Any]) -> Answer:
        if not rest:
            if method != "GET":
                return error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
            items = [{"server": self._server_view(s)} for s in self.state["servers"]]
            return (200, items) if items else error(404, "NOT_FOUND", "No servers found")
        server = self._server(rest[0])
        if server is None:
            return error(404, "SERVER_NOT_FOUND", "Server not found")
        if method == "POST":
            name = form.get("server_name")
            if name is None:
                return error(400, "INVALID_INPUT", "Invalid input parameters", missing=["server_name"], invalid=[])
            server["server_name"] = name
            self.save()
        elif method != "GET":
            return error(405, "METHOD_NOT_ALLOWED", "Method not allowed")
        return 200, {"server": self._server_view(server)}

    @staticmethod
    def _server_view(server: Dict[str, Any]) -> Dict[str, Any]:
        view = {"server_ip": None, "server_number": None, "server_name": "", "product": "", "dc": "",
                "status": "ready", "cancelled": False}
        view.update(server)
        return view

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

    def _main_ips(self) -> List[str]:
        if not self.state.get("default_ptrs"):
            return []
        return [s["server_ip"] for s in self.state["servers"]
                if s.get("server_ip") and ipaddress.ip_address(s["server_ip"]).version == 4]

    def _ptr_of(self, ip: str) -> Optional[str]:
        """The stored PTR, or Hetzner's default name for a server's main IPv4."""
        current = self.state["rdns"].get(ip)
        if current is None and ip in self._main_ips():
            return default_ptr(ip)
        return current

    def _rdns_list(self, query: Dict[str, str]) -> Answer:
        wanted = query.get("server_ip")
        ptrs = dict(self.state["rdns"])
        for ip in self._main_ips():
            ptrs.setdefault(ip, default_ptr(ip))
        items = [{"rdns": {"ip": ip, "ptr": ptr}} for ip, ptr in sorted(ptrs.items())
                 if wanted is None or self._owner_of(ip) == wanted]
        if not items:
            return error(404, "NOT_FOUND", "No reverse DNS entries found")
        return 200, items

    def _rdns_one(self, method: str, ip: str, form: Dict[str, Any]) -> Answer:
        if self._owner_of(ip) is None:
            return error(404, "IP_NOT_FOUND", "The IP address {0} was not found".format(ip))
        key = ipaddress.ip_address(ip).compressed
        current = self._ptr_of(key)
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
        if not valid_host_name(ptr):
            return error(400, "INVALID_INPUT", "Invalid input parameters", missing=[], invalid=["ptr"])
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

    @staticmethod
    def _public(transaction: Dict[str, Any]) -> Dict[str, Any]:
        return {k: v for k, v in transaction.items() if not k.startswith("_") and k != "placed_at"}

    def _transactions(self, key: str, method: str, rest: List[str]) -> Optional[Answer]:
        """GET of a transaction list or of one transaction; None for any other request."""
        if method != "GET" or not rest or rest[0] != "transaction" or len(rest) > 2:
            return None
        self._advance_orders()
        if len(rest) == 1:
            items = [{"transaction": self._public(t)} for t in self.state[key]]
            return (200, items) if items else error(404, "NOT_FOUND", "No transactions found")
        for item in self.state[key]:
            if str(item["id"]) == rest[1]:
                return 200, {"transaction": self._public(item)}
        return error(404, "TRANSACTION_NOT_FOUND", "Transaction not found")

    def _order(self, method: str, rest: List[str], form: Dict[str, Any]) -> Answer:
        listed = self._transactions("transactions", method, rest)
        if listed is not None:
            return listed
        if rest == ["transaction"] and method == "POST":
            return self._place_order(form)
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

    def _new_transaction(self, prefix: str, form: Dict[str, Any]) -> Dict[str, Any]:
        self._serial += 1
        count = len(self.state["transactions"]) + len(self.state["server_transactions"]) + len(self.state["market_transactions"])
        return {
            "id": "{0}{1}-{2}".format(prefix, time.strftime("%Y%m%d"), 100000 + count + self._serial),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "status": "in process",
            "_placed_at": self.clock(),
            "_test": _is_true(form.get("test", "false")),
        }

    def _store(self, key: str, transaction: Dict[str, Any]) -> Answer:
        if transaction.pop("_test"):
            transaction["id"] = "TEST-" + transaction["id"]
            return 201, {"transaction": self._public(transaction)}
        self.state[key].append(transaction)
        self.save()
        return 201, {"transaction": self._public(transaction)}

    def _place_order(self, form: Dict[str, Any]) -> Answer:
        missing = [k for k in ("product_id", "server_number", "reason") if not form.get(k)]
        invalid = [] if _is_bool(form.get("test", "false")) else ["test"]
        if missing or invalid:
            return error(400, "INVALID_INPUT", "Invalid input parameters", missing=missing, invalid=invalid)
        server = self._server(form["server_number"])
        if server is None:
            return error(404, "SERVER_NOT_FOUND", "Server not found")
        products = {p["id"]: p for p in self.state["products"].get(str(server["server_number"]), [])}
        if form["product_id"] not in products:
            return error(400, "INVALID_INPUT", "Invalid input parameters", missing=[], invalid=["product_id"])
        transaction = self._new_transaction("B", form)
        transaction.update({"server_number": server["server_number"], "server_ip": server["server_ip"],
                            "product": dict(products[form["product_id"]]), "resources": [],
                            "reason": form["reason"]})
        return self._store("transactions", transaction)

    def _server_order(self, market: bool, method: str, rest: List[str], form: Dict[str, Any]) -> Answer:
        key = "market_transactions" if market else "server_transactions"
        listed = self._transactions(key, method, rest)
        if listed is not None:
            return listed
        products = {str(p["id"]): p for p in self.state["market_products" if market else "server_products"]}
        if rest and rest[0] == "product" and method == "GET" and len(rest) <= 2:
            if len(rest) == 2:
                if rest[1] not in products:
                    return error(404, "PRODUCT_NOT_FOUND", "Product not found")
                return 200, {"product": dict(products[rest[1]])}
            items = [{"product": dict(p)} for p in products.values()]
            return (200, items) if items else error(404, "NOT_FOUND", "No products found")
        if rest == ["transaction"] and method == "POST":
            return self._place_server_order(key, products, market, form)
        return error(404, "NOT_FOUND", "Not found")

    def _place_server_order(self, key: str, products: Dict[str, Dict[str, Any]], market: bool,
                            form: Dict[str, Any]) -> Answer:
        missing = [] if form.get("product_id") else ["product_id"]
        invalid = [] if _is_bool(form.get("test", "false")) else ["test"]
        product = products.get(str(form.get("product_id")))
        if form.get("product_id") and product is None:
            invalid.append("product_id")
        if not form.get("authorized_key[]") and not form.get("password"):
            missing.append("authorized_key")
        for field in ("location", "dist"):
            if product is not None and form.get(field) and field in product and form[field] not in product[field]:
                invalid.append(field)
        if not market and product is not None and not form.get("location"):
            missing.append("location")
        if missing or invalid:
            return error(400, "INVALID_INPUT", "Invalid input parameters", missing=missing, invalid=invalid)
        assert product is not None
        transaction = self._new_transaction("M" if market else "B", form)
        transaction.update({
            "server_number": None, "server_ip": None, "comment": form.get("comment") or None,
            "authorized_key": [{"key": {"fingerprint": k}} for k in form.get("authorized_key[]") or []],
            "host_key": [],
            "product": dict(product, dist=form.get("dist"), location=form.get("location")),
        })
        return self._store(key, transaction)

    def _due(self, item: Dict[str, Any]) -> bool:
        placed = item.get("_placed_at", item.get("placed_at", self.clock()))
        return item["status"] == "in process" and self.clock() - placed >= self.state["order_ready_after"]

    def _advance_orders(self) -> None:
        changed = False
        for item in self.state["transactions"]:
            if not self._due(item):
                continue
            mask = _mask_of_product(item["product"]["id"])
            net = self._allocate(mask if mask is not None else 29)
            if net is not None:
                subnet = {"ip": str(net.network_address), "mask": net.prefixlen, "gateway": str(net.network_address + 1),
                          "server_ip": item["server_ip"], "server_number": item["server_number"],
                          "failover": False, "locked": False}
                self.state["subnets"].append(subnet)
                item["resources"] = [{"type": "subnet", "id": subnet["ip"]}]
            item["status"] = "ready"
            changed = True
        for key in ("server_transactions", "market_transactions"):
            for item in self.state[key]:
                if not self._due(item):
                    continue
                net = self._allocate(32)
                number = max([int(s["server_number"]) for s in self.state["servers"]] + [1000]) + 1
                server = {"server_ip": str(net.network_address) if net is not None else None, "server_number": number,
                          "server_name": "", "product": item["product"].get("name", ""),
                          "dc": item["product"].get("location") or ""}
                self.state["servers"].append(server)
                item.update(status="ready", server_number=number, server_ip=server["server_ip"])
                changed = True
        if changed:
            self.save()

    def _taken(self) -> List[Any]:
        taken: List[Any] = [ipaddress.ip_network("{0}/{1}".format(s["ip"], mask_int(s["mask"])), strict=False)
                            for s in self.state["subnets"]]
        taken += [ipaddress.ip_network(s["server_ip"]) for s in self.state["servers"] if s.get("server_ip")]
        return taken

    def _allocate(self, prefixlen: int) -> Optional[Any]:
        """The first free block of ``prefixlen`` in the stand-in's own free ranges (Robot's choice)."""
        ranges = list(self.state.get("free_ranges") or [])
        ranges += ["{0}/{1}".format(p["ip"], p["mask"]) for p in self.state.get("order_pool") or []]
        taken = self._taken()
        for text in ranges:
            free = ipaddress.ip_network(text, strict=False)
            if free.prefixlen > prefixlen:
                continue
            for candidate in free.subnets(new_prefix=prefixlen):
                if prefixlen == 32 and candidate.network_address in (free.network_address, free.broadcast_address):
                    continue
                if not any(candidate.overlaps(other) for other in taken):
                    return candidate
        return None

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
                bucket = str(data.get("bucket", "rdns"))
                if bucket not in self.limits:
                    return error(400, "INVALID_INPUT", "Unknown bucket", missing=[], invalid=["bucket"])
                self.limits[bucket] = RateLimiter(int(data.get("limit", 0)), float(data.get("interval", 3600)))
                return 200, {"bucket": bucket, "limit": self.limits[bucket].limit,
                             "interval": self.limits[bucket].interval}
            if path == "/_admin/latency":
                self.latency = float(data.get("seconds", 0))
                return 200, {"latency": self.latency}
        return error(404, "NOT_FOUND", "Unknown admin endpoint")


def _is_bool(value: Any) -> bool:
    return str(value).lower() in ("true", "false")


def _is_true(value: Any) -> bool:
    return str(value).lower() == "true"


def mask_int(value: Any) -> int:
    return int(str(value).lstrip("/"))


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
