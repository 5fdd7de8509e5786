# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one client of the Hetzner Robot webservice used by this collection.

Everything that talks HTTP to Robot goes through :class:`RobotClient`:

* HTTP Basic auth with the web-service user;
* request bodies form-encoded (lists as ``name[]=``), answers decoded from JSON;
* the error envelope ``{"error": {"status", "code", "message", ...}}`` turned into
  :class:`RobotError` with a message that says what to change;
* expected "not found" codes turned into absence (``None``) by the caller's choice,
  and the list endpoints' "404 NOT_FOUND means empty" convention into ``[]``;
* HTTP 403 ``RATE_LIMIT_EXCEEDED`` waited out with the ``interval`` the API returns,
  bounded by a total wait budget, with progress reported through a callback;
* HTTP 401 failing at once (three failed logins lock the client IP for 10 minutes);
* HTTP 503 (maintenance) and transport errors retried a bounded number of times for
  requests that are safe to repeat, never for orders.

The transport is a plain callable so unit tests can assert the exact conversation.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode
from ansible.module_utils.urls import open_url

DEFAULT_URL = "https://robot-ws.your-server.de"
RATE_LIMIT_CODE = "RATE_LIMIT_EXCEEDED"

# Shared argument spec of every module in the action group ``robot``.
ROBOT_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = dict(
    robot_user=dict(type="str", required=True, fallback=(env_fallback, ["ROBOT_WS_USER"])),
    robot_password=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["ROBOT_WS_PASSWORD"])),
    robot_url=dict(type="str", default=DEFAULT_URL, fallback=(env_fallback, ["ROBOT_WS_URL"])),
    robot_request_timeout=dict(type="float", default=30.0),
    rate_limit_timeout=dict(type="int", default=600),
    validate_certs=dict(type="bool", default=True),
)

FormValue = Union[str, int, bool, Sequence[str]]


@dataclass
class HttpRequest:
    """One HTTP request as it goes on the wire."""

    method: str
    url: str
    headers: Dict[str, str]
    body: Optional[str] = None


@dataclass
class HttpResponse:
    """Status and raw body of one HTTP answer."""

    status: int
    body: bytes = b""


Transport = Callable[[HttpRequest, float], HttpResponse]


def default_sleep(seconds: float) -> None:
    time.sleep(seconds)


def default_clock() -> float:
    return time.monotonic()


Sleeper = Callable[[float], None]
Clock = Callable[[], float]
Progress = Callable[[str], None]


class RobotError(Exception):
    """An error answer of the Robot API (or a failure to get an answer)."""

    def __init__(self, method: str, path: str, status: int, code: str, message: str,
                 details: Optional[Dict[str, Any]] = None, hint: str = "") -> None:
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.hint = hint
        super().__init__(self.describe())

    def describe(self) -> str:
        text = "Robot API {0} {1} failed: {2} {3}".format(self.method, self.path, self.status, self.code)
        if self.message:
            text += " ({0})".format(self.message)
        for key, label in (("missing", "missing parameters"), ("invalid", "invalid parameters")):
            value = self.details.get(key)
            if value:
                text += "; {0}: {1}".format(label, ", ".join(_as_names(value)))
        if self.hint:
            text += ". " + self.hint
        return text


class RobotAuthError(RobotError):
    """401: wrong web-service credentials. Never retried."""


class RobotRateLimitError(RobotError):
    """403 RATE_LIMIT_EXCEEDED that outlasted the wait budget."""


def _as_names(value: Any) -> List[str]:
    if isinstance(value, dict):
        return [str(k) for k in value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def encode_form(form: Optional[Dict[str, FormValue]]) -> Optional[str]:
    """Form-encode a request body; lists become repeated ``name[]=`` pairs."""
    if form is None:
        return None
    pairs: List[Tuple[str, str]] = []
    for key in sorted(form):
        value = form[key]
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, (list, tuple)):
            pairs.extend((key + "[]", str(item)) for item in value)
        else:
            pairs.append((key, str(value)))
    return urlencode(pairs)


def basic_auth_header(user: str, password: str) -> str:
    token = base64.b64encode("{0}:{1}".format(user, password).encode("utf-8")).decode("ascii")
    return "Basic " + token


def make_urllib_transport(validate_certs: bool = True) -> Transport:
    """The production transport: ansible's ``open_url``; HTTP errors become responses."""

    def transport(request: HttpRequest, timeout: float) -> HttpResponse:
        data = request.body.encode("utf-8") if request.body is not None else None
        try:
            resp = open_url(request.url, data=data, headers=request.headers, method=request.method,
                            timeout=timeout, validate_certs=validate_certs, follow_redirects="none")
            return HttpResponse(status=resp.getcode(), body=resp.read())
        except HTTPError as exc:
            body = b""
            try:
                body = exc.read()
            except Exception:  # pylint: disable=broad-except
                body = b""
            return HttpResponse(status=exc.code, body=body)

    return transport


@dataclass
class RetryPolicy:
    """Bounds on waiting and retrying."""

    rate_limit_timeout: float = 600.0   # total seconds one client may spend waiting on rate limits
    request_timeout: float = 30.0       # seconds per HTTP request
    transient_retries: int = 2          # extra attempts after 503 / 5xx / network errors (safe requests only)
    transient_delay: float = 2.0        # first delay between those attempts; doubles each time


@dataclass
class RobotClient:
    """Robot webservice client. One instance per module run."""

    base_url: str
    user: str
    password: str
    transport: Transport
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleeper = default_sleep
    clock: Clock = default_clock
    progress: Optional[Progress] = None
    calls: int = 0
    rate_limit_waited: float = 0.0
    waits: List[Dict[str, Any]] = field(default_factory=list)

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    def url(self, path: str, query: Optional[Dict[str, str]] = None) -> str:
        url = self.base_url.rstrip("/") + path
        if query:
            url += "?" + urlencode(sorted(query.items()))
        return url

    def request(self, method: str, path: str, query: Optional[Dict[str, str]] = None,
                form: Optional[Dict[str, FormValue]] = None, absent_codes: Sequence[str] = (),
                repeatable: bool = True) -> Any:
        """Send one request and return the decoded JSON answer.

        Returns ``None`` when the API answers with one of ``absent_codes``.
        ``repeatable`` says whether the request may be sent again after a
        transient failure (503, 5xx, timeout); an order never is.
        """
        body = encode_form(form)
        headers = {"Authorization": basic_auth_header(self.user, self.password), "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = HttpRequest(method=method, url=self.url(path, query), headers=headers, body=body)
        shown = path + ("?" + urlencode(sorted(query.items())) if query else "")
        transient_left = self.policy.transient_retries if repeatable else 0
        delay = self.policy.transient_delay
        while True:
            status, payload, failure = self._send_once(req)
            if failure is not None:
                if transient_left > 0:
                    transient_left -= 1
                    self._say("Robot {0} {1}: {2}; retrying in {3:.0f}s".format(method, shown, failure, delay))
                    self.sleep(delay)
                    delay *= 2
                    continue
                raise RobotError(method, shown, 0, "CONNECTION_FAILED", failure,
                                 hint="Check robot_url ({0}) and the network; raise robot_request_timeout "
                                      "if the API is slow".format(self.base_url))
            if 200 <= status < 300:
                return payload
            error = _error_of(payload, status)
            code = str(error.get("code") or "HTTP_{0}".format(status))
            message = str(error.get("message") or "")
            if status == 401:
                raise RobotAuthError(
                    method, shown, status, code or "UNAUTHORIZED", message,
                    hint="Check robot_user/robot_password (the Robot web-service user, not the account login). "
                         "Not retried: three failed logins block this client IP for 10 minutes")
            if status == 403 and code == RATE_LIMIT_CODE:
                self._wait_rate_limit(method, shown, error)
                continue
            if code in absent_codes:
                return None
            if (status == 503 or status >= 500) and transient_left > 0:
                transient_left -= 1
                self._say("Robot {0} {1}: {2} {3}; retrying in {4:.0f}s".format(method, shown, status, code, delay))
                self.sleep(delay)
                delay *= 2
                continue
            hint = ""
            if status == 503:
                hint = "The Robot webservice is in maintenance; run again later"
            elif status >= 500:
                hint = "Server-side error of the Robot API; run again later (completed writes are not repeated)"
            raise RobotError(method, shown, status, code, message, details=error, hint=hint)

    def _send_once(self, req: HttpRequest) -> Tuple[int, Any, Optional[str]]:
        self.calls += 1
        try:
            resp = self.transport(req, self.policy.request_timeout)
        except (URLError, OSError) as exc:
            return 0, None, "no answer: {0}".format(getattr(exc, "reason", exc))
        payload: Any = None
        if resp.body:
            try:
                payload = json.loads(resp.body.decode("utf-8"))
            except ValueError:
                if 200 <= resp.status < 300:
                    return resp.status, None, "answer is not JSON (HTTP {0})".format(resp.status)
                payload = None
        return resp.status, payload, None

    def _wait_rate_limit(self, method: str, shown: str, error: Dict[str, Any]) -> None:
        interval = _positive_float(error.get("interval"), 60.0)
        left = self.policy.rate_limit_timeout - self.rate_limit_waited
        if left <= 0:
            raise RobotRateLimitError(
                method, shown, 403, RATE_LIMIT_CODE, str(error.get("message") or ""), details=error,
                hint="Waited {0:.0f}s in total (rate_limit_timeout={1:.0f}); the API allows {2} requests per {3:.0f}s. "
                     "Raise rate_limit_timeout or run again later: a new run resumes where this one stopped".format(
                         self.rate_limit_waited, self.policy.rate_limit_timeout,
                         error.get("max_request", "?"), interval))
        wait = min(interval, left)
        self._say("Robot rate limit on {0} {1} ({2} requests per {3:.0f}s): waiting {4:.0f}s".format(
            method, shown, error.get("max_request", "?"), interval, wait))
        self.waits.append({"request": "{0} {1}".format(method, shown), "seconds": wait})
        started = self.clock()
        self.sleep(wait)
        self.rate_limit_waited += max(self.clock() - started, wait)

    # Convenience wrappers -----------------------------------------------------------------

    def get_list(self, path: str, query: Optional[Dict[str, str]] = None) -> List[Any]:
        """GET a list endpoint; Robot's 404 NOT_FOUND for an empty list becomes ``[]``."""
        return read_list(self.request, path, query)


def read_list(request: Callable[..., Any], path: str, query: Optional[Dict[str, str]] = None) -> List[Any]:
    """GET a list endpoint through ``request`` (a client's, or a wrapper of it); Robot's 404
    NOT_FOUND for an empty list becomes ``[]``."""
    result = request("GET", path, query=query, absent_codes=("NOT_FOUND",))
    if result is None:
        return []
    if not isinstance(result, list):
        raise RobotError("GET", path, 200, "UNEXPECTED_ANSWER", "expected a JSON list")
    return result


def _error_of(payload: Any, status: int) -> Dict[str, Any]:
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return payload["error"]
    return {"status": status, "code": "HTTP_{0}".format(status), "message": ""}


def _positive_float(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


def quote_ip(ip: str) -> str:
    """Path segment for an IP (IPv6 colons stay as they are)."""
    return quote(ip, safe=":")


def client_from_params(params: Dict[str, Any], progress: Optional[Progress] = None,
                       transport: Optional[Transport] = None) -> RobotClient:
    """Build the client from the shared module options."""
    policy = RetryPolicy(rate_limit_timeout=float(params["rate_limit_timeout"]),
                         request_timeout=float(params["robot_request_timeout"]))
    return RobotClient(
        base_url=params["robot_url"],
        user=params["robot_user"],
        password=params["robot_password"],
        transport=transport or make_urllib_transport(params["validate_certs"]),
        policy=policy,
        progress=progress,
    )


# Subnets ----------------------------------------------------------------------------------

def _int_or_none(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def mask_to_int(value: Any) -> int:
    """Robot gives the mask as an int here and as a string (or dotted netmask) elsewhere."""
    text = str(value).strip().lstrip("/")
    if "." in text:
        return sum(bin(int(octet)).count("1") for octet in text.split("."))
    return int(text)


def normalize_subnet(raw: Dict[str, Any], vswitch_of: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """One subnet in the shape the collection reports."""
    item = raw.get("subnet", raw)
    mask = mask_to_int(item["mask"])
    cidr = "{0}/{1}".format(item["ip"], mask)
    server_ip = item.get("server_ip") or None
    vswitch_id = (vswitch_of or {}).get(cidr)
    if server_ip:
        target = {"type": "server", "server_ip": server_ip, "server_number": _int_or_none(item.get("server_number")),
                  "vswitch_id": None}
    elif vswitch_id is not None:
        target = {"type": "vswitch", "server_ip": None, "server_number": None, "vswitch_id": vswitch_id}
    else:
        target = {"type": "unknown", "server_ip": None, "server_number": _int_or_none(item.get("server_number")),
                  "vswitch_id": None}
    return {
        "ip": item["ip"],
        "mask": mask,
        "cidr": cidr,
        "gateway": item.get("gateway"),
        "server_ip": server_ip,
        "server_number": _int_or_none(item.get("server_number")),
        "failover": bool(item.get("failover", False)),
        "locked": bool(item.get("locked", False)),
        "routing_target": target,
    }


def vswitch_details(client: RobotClient) -> List[Dict[str, Any]]:
    """Every live vSwitch with the numbers of its servers and the CIDRs of its subnets (one call per vSwitch)."""
    found: List[Dict[str, Any]] = []
    for vswitch in client.get_list("/vswitch"):
        item = vswitch.get("vswitch", vswitch)
        if item.get("cancelled"):
            continue
        detail = client.request("GET", "/vswitch/{0}".format(item["id"]), absent_codes=("NOT_FOUND", "VSWITCH_NOT_FOUND"))
        detail = detail or {}
        found.append({
            "id": int(item["id"]),
            "servers": sorted(n for n in (_int_or_none(s.get("server_number")) for s in detail.get("server") or []) if n is not None),
            "subnets": ["{0}/{1}".format(s["ip"], mask_to_int(s["mask"])) for s in detail.get("subnet") or []],
        })
    return found


def vswitch_subnets(client: RobotClient) -> Dict[str, int]:
    """CIDR -> vSwitch id for every subnet attached to a vSwitch."""
    return {cidr: v["id"] for v in vswitch_details(client) for cidr in v["subnets"]}


def list_subnets(client: RobotClient, server_ip: Optional[str] = None, resolve_vswitch: bool = True) -> List[Dict[str, Any]]:
    """Every subnet of the account (or routed to ``server_ip``), normalised."""
    raw = client.get_list("/subnet", query={"server_ip": server_ip} if server_ip else None)
    vswitch_of: Dict[str, int] = {}
    if resolve_vswitch and any(not (r.get("subnet", r).get("server_ip")) for r in raw):
        vswitch_of = vswitch_subnets(client)
    return sorted((normalize_subnet(r, vswitch_of) for r in raw), key=lambda s: _ip_key(s["ip"]))


def _ip_key(ip: str) -> Tuple[int, int]:
    addr = ipaddress.ip_address(ip)
    return (addr.version, int(addr))


def match_pools(subnets: List[Dict[str, Any]], pools: Dict[str, Any]) -> Dict[str, Optional[Dict[str, Any]]]:
    """Pool name -> the Robot subnet equal to the pool's ``subnet`` (or None when Robot has none)."""
    by_net = {ipaddress.ip_network(s["cidr"], strict=False): s for s in subnets}
    result: Dict[str, Optional[Dict[str, Any]]] = {}
    for name in sorted(pools):
        pool = pools[name] or {}
        wanted = pool.get("subnet") if isinstance(pool, dict) else pool
        result[name] = by_net.get(ipaddress.ip_network(str(wanted), strict=False)) if wanted else None
    return result


# Orders -----------------------------------------------------------------------------------

PENDING_STATUS = "in process"
READY_STATUS = "ready"
CANCELLED_STATUS = "cancelled"


def transaction_of(answer: Any) -> Dict[str, Any]:
    item = answer.get("transaction", answer) if isinstance(answer, dict) else {}
    return item if isinstance(item, dict) else {}


def product_id_of(transaction: Dict[str, Any]) -> Optional[str]:
    product = transaction.get("product")
    if isinstance(product, dict):
        return product.get("id")
    return transaction.get("product_id")
