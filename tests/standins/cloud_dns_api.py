# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A local stand-in of the Hetzner Cloud API's DNS endpoints (zones, RRSets, actions).

It serves what ``hcloud``'s ``client.zones`` calls, with the documented JSON
shapes: ``{"zone": ...}``, ``{"rrsets": [...], "meta": {"pagination": ...}}``,
``{"rrset": ..., "action": ...}``, ``{"action": ...}``, ``{"actions": [...]}``,
and the error envelope ``{"error": {"code": ..., "message": ..., "details": ...}}``
(401 unauthorized, 404 not_found, 409 uniqueness_error, 400 invalid_input,
429 rate_limit_exceeded). Writes return an action in status ``running``; it
turns ``success`` after ``action_polls`` status reads. Every request is logged.

Rate limit as Hetzner documents it: a budget of ``rate_limit`` requests (3600
per hour per project) that refills gradually, ``rate_refill`` requests per
second (one), so a token bucket. Every API request takes one, authenticated or
not; an empty bucket answers 429 ``rate_limit_exceeded``. Every API response
carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``
(the UNIX time at which the bucket is full again; with ``rate_refill`` 0 it
never refills, and Reset says a year from now). No ``Retry-After``: Hetzner
does not document one. ``rate_limited`` counts the 429s served.

Run it on loopback::

    python tests/standins/cloud_dns_api.py --listen 127.0.0.1:8080 --token T --zone kbmta.net

and point the client at ``http://127.0.0.1:8080/v1``. In tests, use
``CloudDnsStandin`` directly (``start()``, ``url``, ``requests``, ``zones``).
Small buckets for tests: ``--rate-limit 10 --rate-refill 5``.
Control endpoints (no token, no rate limit): ``GET /_standin/requests`` (the log),
``POST /_standin/faults`` with ``{"rate_limit": N}`` (answer the next N API
requests with 429). ``latency`` (seconds, outside the lock) makes requests overlap
as on a real network; ``max_in_flight`` is the most API requests seen at once.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

RRSET_TYPES = ("A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SOA", "SRV",
               "SVCB", "TLSA", "TXT")
TXT_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
HOUR = 3600
NEVER = 365 * 24 * HOUR  # how far away RateLimit-Reset is when the bucket never refills


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Optional[dict] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class TokenBucket:
    """Hetzner's rate limit: ``limit`` requests at most, ``refill`` more per second, up to ``limit``."""

    def __init__(self, limit: int = HOUR, refill: float = 1.0) -> None:
        if limit < 1 or refill < 0:
            raise ValueError("the rate limit needs a limit of at least 1 and a refill of at least 0")
        self.limit = limit
        self.refill = refill
        self.tokens = float(limit)
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        moment = time.monotonic()
        self.tokens = min(float(self.limit), self.tokens + (moment - self.stamp) * self.refill)
        self.stamp = moment

    def take(self) -> bool:
        """Spend one request of the budget; False when none is left."""
        self._refill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def headers(self) -> Dict[str, str]:
        self._refill()
        missing = self.limit - self.tokens
        to_full = missing / self.refill if self.refill else (NEVER if missing else 0)
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(int(self.tokens)),
                "RateLimit-Reset": str(int(math.ceil(time.time() + to_full)))}


@dataclass
class Action:
    id: int
    command: str
    zone_id: int
    polls_left: int
    status: str = "running"
    started: str = field(default_factory=now)
    finished: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        return {"id": self.id, "command": self.command, "status": self.status,
                "progress": 100 if self.status == "success" else 0, "started": self.started,
                "finished": self.finished, "resources": [{"id": self.zone_id, "type": "zone"}], "error": None}

    def poll(self) -> None:
        if self.status == "running":
            self.polls_left -= 1
            if self.polls_left <= 0:
                self.status = "success"
                self.finished = now()


@dataclass
class Zone:
    id: int
    name: str
    ttl: int = 3600
    rrsets: Dict[Tuple[str, str], Dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        return {"id": self.id, "name": self.name, "created": now(), "mode": "primary", "ttl": self.ttl,
                "labels": {}, "protection": {"delete": False}, "status": "ok", "record_count": sum(
                    len(r["records"]) for r in self.rrsets.values()), "registrar": "other",
                "primary_nameservers": [],
                "authoritative_nameservers": {"assigned": ["hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.",
                                                           "helium.ns.hetzner.de."],
                                              "delegated": [], "delegation_last_check": None,
                                              "delegation_status": "unknown"}}


class CloudDnsState:
    """Zones, record sets and actions, guarded by one lock."""

    def __init__(self, token: str, action_polls: int = 1, latency: float = 0.0, rate_limit: int = HOUR,
                 rate_refill: float = 1.0) -> None:
        self.token = token
        self.bucket = TokenBucket(rate_limit, rate_refill)
        self.rate_limited = 0
        self.action_polls = action_polls
        self.latency = latency
        self.in_flight = 0
        self.max_in_flight = 0
        self.zones: Dict[int, Zone] = {}
        self.actions: Dict[int, Action] = {}
        self.requests: List[Dict[str, Any]] = []
        self.rate_limit_next = 0  # a fault: the next N API requests are answered 429 whatever the bucket holds
        self.lock = threading.Lock()
        self._ids = 0

    def take_request(self) -> bool:
        """Count one API request against the budget; False if it must be answered 429."""
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            allowed = False
        else:
            allowed = self.bucket.take()
        if not allowed:
            self.rate_limited += 1
        return allowed

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def add_zone(self, name: str, ttl: int = 3600) -> Zone:
        zone = Zone(id=self.next_id(), name=name, ttl=ttl)
        zone.rrsets[("@", "SOA")] = self._rrset_json(zone, "@", "SOA", None, [
            "hydrogen.ns.hetzner.com. dns.hetzner.com. 2026112701 86400 10800 3600000 3600"])
        zone.rrsets[("@", "NS")] = self._rrset_json(zone, "@", "NS", None, [
            "hydrogen.ns.hetzner.com.", "oxygen.ns.hetzner.com.", "helium.ns.hetzner.de."])
        self.zones[zone.id] = zone
        return zone

    @staticmethod
    def _rrset_json(zone: Zone, name: str, rtype: str, ttl: Optional[int], values: List[str]) -> Dict[str, Any]:
        return {"id": "%s/%s" % (name, rtype), "name": name, "type": rtype, "ttl": ttl, "labels": {},
                "protection": {"change": False}, "records": [{"value": v, "comment": None} for v in values],
                "zone": zone.id}

    def zone(self, id_or_name: str) -> Zone:
        for zone in self.zones.values():
            if str(zone.id) == id_or_name or zone.name == id_or_name:
                return zone
        raise ApiError(404, "not_found", "zone with ID %s not found" % id_or_name)

    def action(self, command: str, zone: Zone) -> Action:
        action = Action(id=self.next_id(), command=command, zone_id=zone.id, polls_left=self.action_polls)
        if self.action_polls <= 0:
            action.status = "success"
            action.finished = now()
        self.actions[action.id] = action
        return action

    # ------------------------------------------------------------ validation

    def check_records(self, rtype: str, records: Any) -> List[str]:
        if not isinstance(records, list) or not records:
            raise ApiError(400, "invalid_input", "invalid input in field 'records'",
                           {"fields": [{"name": "records", "messages": ["must be a non-empty list"]}]})
        values = []
        for record in records:
            value = record.get("value") if isinstance(record, dict) else None
            if not isinstance(value, str) or not value:
                raise ApiError(400, "invalid_input", "invalid input in field 'records'",
                               {"fields": [{"name": "records", "messages": ["value is required"]}]})
            if rtype == "TXT":
                self._check_txt(value)
            values.append(value)
        return values

    @staticmethod
    def _check_txt(value: str) -> None:
        text = value.strip()
        strings = TXT_STRING.findall(text)
        rest = TXT_STRING.sub("", text).strip()
        if not strings or rest:
            raise ApiError(400, "invalid_input", "invalid input in field 'records'",
                           {"fields": [{"name": "records", "messages": ["TXT value must be quoted strings"]}]})
        for string in strings:
            if len(re.sub(r"\\(\d{3}|.)", "x", string)) > 255:
                raise ApiError(400, "invalid_input", "invalid input in field 'records'",
                               {"fields": [{"name": "records", "messages": [
                                   "TXT string longer than 255 characters: split it"]}]})

    @staticmethod
    def check_name_type(name: Any, rtype: Any) -> None:
        if rtype not in RRSET_TYPES:
            raise ApiError(400, "invalid_input", "invalid input in field 'type'")
        if not isinstance(name, str) or not name or name.endswith(".") or name != name.lower():
            raise ApiError(400, "invalid_input", "invalid input in field 'name'",
                           {"fields": [{"name": "name", "messages": ["must be relative and lower case"]}]})


class Handler(BaseHTTPRequestHandler):
    server_version = "cloud-dns-standin/1"
    state: CloudDnsState  # set on the subclass per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    # plumbing ------------------------------------------------------------

    def _send(self, status: int, body: Optional[Dict[str, Any]], headers: Optional[Dict[str, str]] = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Correlation-Id", "standin")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        try:
            return json.loads(self.rfile.read(length))
        except ValueError:
            raise ApiError(400, "json_error", "invalid JSON in request body")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        state = self.state
        headers: Dict[str, str] = {}
        try:
            body = self._body() if method in ("POST", "PUT") else None
            if url.path.startswith("/_standin/"):
                self._control(method, url.path, body)
                return
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                time.sleep(state.latency)
            finally:
                with state.lock:
                    state.in_flight -= 1
            with state.lock:
                state.requests.append({"method": method, "path": url.path, "query": query, "body": body})
                allowed = state.take_request()  # every request counts, authenticated or not
                headers = state.bucket.headers()
                if self.headers.get("Authorization") != "Bearer %s" % state.token:
                    raise ApiError(401, "unauthorized", "unable to authenticate")
                if not allowed:
                    raise ApiError(429, "rate_limit_exceeded",
                                   "limit of %d requests per hour reached" % state.bucket.limit)
                status, response = self._route(method, url.path, query, body)
            self._send(status, response, headers)
        except ApiError as error:
            self._send(error.status, {"error": {"code": error.code, "message": error.message,
                                                "details": error.details}}, headers)

    def _control(self, method: str, path: str, body: Any) -> None:
        state = self.state
        with state.lock:
            if method == "GET" and path == "/_standin/requests":
                self._send(200, {"requests": state.requests})
            elif method == "POST" and path == "/_standin/faults":
                state.rate_limit_next = int(body.get("rate_limit", 0))
                self._send(200, {"rate_limit": state.rate_limit_next})
            else:
                raise ApiError(404, "not_found", "no such control endpoint")

    # routes --------------------------------------------------------------

    def _route(self, method: str, path: str, query: Dict[str, List[str]], body: Any) -> Tuple[int, Any]:
        state = self.state
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] != "v1":
            raise ApiError(404, "not_found", "not found")
        parts = parts[1:]
        if parts == ["actions"] and method == "GET":
            return 200, {"actions": self._actions_by_id(query)}
        if len(parts) == 2 and parts[0] == "actions" and method == "GET":
            return 200, {"action": self._action(parts[1])}
        if parts[:1] != ["zones"]:
            raise ApiError(404, "not_found", "not found")
        if parts == ["zones"] and method == "GET":
            zones = [z for z in state.zones.values() if "name" not in query or z.name in query["name"]]
            return 200, {"zones": [z.to_json() for z in zones], "meta": _pagination(1, 25, len(zones))}
        if parts == ["zones", "actions"] and method == "GET":
            return 200, {"actions": self._actions_by_id(query), "meta": _pagination(1, 25, 1)}
        if len(parts) == 3 and parts[1] == "actions" and method == "GET":
            return 200, {"action": self._action(parts[2])}
        zone = state.zone(parts[1])
        if len(parts) == 2 and method == "GET":
            return 200, {"zone": zone.to_json()}
        if parts[2:] == ["rrsets"] and method == "GET":
            return 200, self._list_rrsets(zone, query)
        if parts[2:] == ["rrsets"] and method == "POST":
            return 201, self._create_rrset(zone, body)
        if len(parts) >= 5 and parts[2] == "rrsets":
            key = (parts[3], parts[4])
            if key not in zone.rrsets:
                raise ApiError(404, "not_found", "rrset %s/%s not found" % key)
            rrset = zone.rrsets[key]
            if len(parts) == 5 and method == "GET":
                return 200, {"rrset": rrset}
            if len(parts) == 5 and method == "DELETE":
                if key[1] == "SOA" or (key == ("@", "NS")):
                    raise ApiError(400, "invalid_input", "the SOA and apex NS record sets cannot be deleted")
                del zone.rrsets[key]
                return 201, {"action": state.action("delete_rrset", zone).to_json()}
            if len(parts) == 7 and parts[5] == "actions" and method == "POST":
                return 201, {"action": self._rrset_action(zone, key, rrset, parts[6], body).to_json()}
        raise ApiError(404, "not_found", "not found")

    def _action(self, ident: str) -> Dict[str, Any]:
        action = self.state.actions.get(int(ident)) if ident.isdigit() else None
        if action is None:
            raise ApiError(404, "not_found", "action with ID %s not found" % ident)
        action.poll()
        return action.to_json()

    def _actions_by_id(self, query: Dict[str, List[str]]) -> List[Dict[str, Any]]:
        ids = query.get("id", [])
        if not ids:
            raise ApiError(400, "invalid_input", "invalid input in field 'id'")
        if len(ids) > 25:
            raise ApiError(400, "invalid_input", "at most 25 IDs may be given")
        return [self._action(ident) for ident in ids if ident.isdigit() and int(ident) in self.state.actions]

    def _list_rrsets(self, zone: Zone, query: Dict[str, List[str]]) -> Dict[str, Any]:
        items = [zone.rrsets[key] for key in sorted(zone.rrsets)]
        if "name" in query:
            items = [r for r in items if r["name"] in query["name"]]
        if "type" in query:
            items = [r for r in items if r["type"] in query["type"]]
        page = int(query.get("page", ["1"])[0])
        per_page = min(int(query.get("per_page", ["25"])[0]), 100)
        start = (page - 1) * per_page
        return {"rrsets": items[start:start + per_page], "meta": _pagination(page, per_page, len(items))}

    def _create_rrset(self, zone: Zone, body: Any) -> Dict[str, Any]:
        name, rtype = body.get("name"), body.get("type")
        self.state.check_name_type(name, rtype)
        if (name, rtype) in zone.rrsets:
            raise ApiError(409, "uniqueness_error", "rrset %s/%s already exists" % (name, rtype))
        values = self.state.check_records(rtype, body.get("records"))
        others = [key for key in zone.rrsets if key[0] == name]
        if rtype == "CNAME" and others or any(key[1] == "CNAME" for key in others):
            raise ApiError(400, "invalid_input", "a CNAME cannot coexist with other record sets at %s" % name)
        rrset = self.state._rrset_json(zone, name, rtype, body.get("ttl"), values)
        rrset["labels"] = body.get("labels") or {}
        zone.rrsets[(name, rtype)] = rrset
        return {"rrset": rrset, "action": self.state.action("create_rrset", zone).to_json()}

    def _rrset_action(self, zone: Zone, key: Tuple[str, str], rrset: Dict[str, Any], command: str,
                      body: Any) -> Action:
        if rrset["protection"]["change"]:
            raise ApiError(423, "protected", "rrset %s/%s is protected" % key)
        if command == "set_records":
            values = self.state.check_records(key[1], body.get("records"))
            rrset["records"] = [{"value": v, "comment": None} for v in values]
        elif command == "add_records":
            values = self.state.check_records(key[1], body.get("records"))
            existing = [r["value"] for r in rrset["records"]]
            rrset["records"].extend({"value": v, "comment": None} for v in values if v not in existing)
            if body.get("ttl") is not None:
                rrset["ttl"] = body["ttl"]
        elif command == "remove_records":
            values = self.state.check_records(key[1], body.get("records"))
            rrset["records"] = [r for r in rrset["records"] if r["value"] not in values]
            if not rrset["records"]:
                del zone.rrsets[key]
        elif command == "change_ttl":
            ttl = body.get("ttl")
            if ttl is not None and (not isinstance(ttl, int) or ttl < 60):
                raise ApiError(400, "invalid_input", "invalid input in field 'ttl'")
            rrset["ttl"] = ttl
        else:
            raise ApiError(404, "not_found", "unknown action %s" % command)
        return self.state.action("%s" % command, zone)

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def _pagination(page: int, per_page: int, total: int) -> Dict[str, Any]:
    last = max(1, (total + per_page - 1) // per_page)
    return {"pagination": {"page": page, "per_page": per_page, "previous_page": page - 1 if page > 1 else None,
                           "next_page": page + 1 if page < last else None, "last_page": last,
                           "total_entries": total}}


class CloudDnsStandin:
    """The stand-in as an object: ``start()``, ``url``, ``state``, ``stop()``."""

    def __init__(self, token: str, host: str = "127.0.0.1", port: int = 0, action_polls: int = 1,
                 latency: float = 0.0, rate_limit: int = HOUR, rate_refill: float = 1.0) -> None:
        self.state = CloudDnsState(token, action_polls, latency, rate_limit, rate_refill)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return "http://%s:%d/v1" % (host, port)

    @property
    def requests(self) -> List[Dict[str, Any]]:
        return self.state.requests

    def start(self) -> "CloudDnsStandin":
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port to listen on (loopback only)")
    parser.add_argument("--token", required=True, help="the API token clients must send")
    parser.add_argument("--zone", action="append", default=[], help="a zone to create at start (repeatable)")
    parser.add_argument("--action-polls", type=int, default=1, help="status reads before an action succeeds")
    parser.add_argument("--rate-limit", type=int, default=HOUR,
                        help="requests the budget holds at most (Hetzner: 3600 per hour per project)")
    parser.add_argument("--rate-refill", type=float, default=1.0,
                        help="requests per second the budget refills (Hetzner: 1; 0: never)")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the stand-in listens on loopback only")
    standin = CloudDnsStandin(args.token, host, int(port), args.action_polls, rate_limit=args.rate_limit,
                              rate_refill=args.rate_refill)
    for zone in args.zone:
        standin.state.add_zone(zone)
    print("listening on %s" % standin.url, flush=True)
    try:
        standin.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
