# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bulk reverse DNS on Hetzner Robot: desired state, difference, and applying it.

The difference is pure (no I/O) so it is the same for check mode, diff mode and
the real run. Before the first write, every wanted name is checked against the
host-name rules Robot applies, and every address to create is looked up in the
account (``GET /ip`` and ``GET /subnet``), so an input error never stops a run
half way. Applying the difference goes through :class:`RdnsSession`, one write
per changed address: ``PUT`` creates an absent PTR, ``POST`` updates one,
``DELETE`` removes one. A write whose answer was lost is never sent blind a
second time: the PTR is read back first. Rate limits are waited out only as long
as the window needs. Because every run first reads the current PTRs and writes
only the difference, a run that stopped half way resumes with the next missing
entry and repeats no write.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import (
    RATE_LIMIT_CODE,
    HttpRequest,
    HttpResponse,
    RobotClient,
    RobotError,
    RobotRateLimitError,
    mask_to_int,
    quote_ip,
    read_list,
)

# Hetzner puts this name back on a server's main IP when its PTR is deleted:
# such entries are never purged (deleting them would change nothing).
HETZNER_DEFAULT_SUFFIX = ".clients.your-server.de"

TEMPLATE_FIELDS = ("ip", "ip_dashed", "index", "last_octet", "subnet")

HOST_NAME_RULE = ("a host name (RFC 1123) is ASCII labels of 1-63 letters, digits and hyphens, "
                  "no hyphen at either end of a label, at most 253 characters in all")
LDH_LABEL = re.compile(r"^[a-z0-9-]+$")
SHOWN_AT_MOST = 10          # offending entries named in one error message
WRITE_METHOD = {"create": "PUT", "update": "POST", "delete": "DELETE"}


@dataclass(frozen=True)
class PtrChange:
    """One address whose PTR must change."""

    ip: str
    action: str              # "create", "update" or "delete"
    before: Optional[str]
    after: Optional[str]

    def as_dict(self) -> Dict[str, Any]:
        return {"ip": self.ip, "action": self.action, "before": self.before, "after": self.after}


class RdnsInputError(ValueError):
    """The wanted state is wrong: the options must change, running again will not help."""


# Names and addresses ----------------------------------------------------------------------

def normalize_ip(value: str) -> str:
    try:
        return ipaddress.ip_address(str(value).strip()).compressed
    except ValueError:
        raise RdnsInputError("'{0}' is not an IP address".format(value))


def canonical_ptr(value: Any) -> str:
    """A PTR name as compared: lower case, no trailing dot."""
    return str(value).rstrip(".").lower()


def host_name_problem(name: str) -> Optional[str]:
    """Why ``name`` (already canonical) is not a host name Robot accepts, or None."""
    if not name:
        return "it is empty"
    if not name.isascii():
        return "it has non-ASCII characters (write an internationalised name in its xn-- form)"
    if len(name) > 253:
        return "it is {0} characters long".format(len(name))
    for label in name.split("."):
        if not label:
            return "it has an empty label"
        if len(label) > 63:
            return "label '{0}' is {1} characters long".format(label, len(label))
        if not LDH_LABEL.match(label):
            bad = sorted({c for c in label if not (c.isalnum() or c == "-")})
            return "label '{0}' has {1}".format(label, ", ".join(repr(c) for c in bad))
        if label.startswith("-") or label.endswith("-"):
            return "label '{0}' starts or ends with a hyphen".format(label)
    return None


def checked_names(raw: Dict[str, Any], source: str) -> Dict[str, str]:
    """Canonical names of an IP -> name map; every name Robot would refuse is named in one error."""
    desired: Dict[str, str] = {}
    bad: List[str] = []
    for ip, value in raw.items():
        name = canonical_ptr(value)
        problem = host_name_problem(name)
        if problem is None:
            desired[ip] = name
        else:
            bad.append("{0} -> {1!r}: {2}".format(ip, value, problem))
    if bad:
        shown = "; ".join(bad[:SHOWN_AT_MOST])
        more = " (and {0} more)".format(len(bad) - SHOWN_AT_MOST) if len(bad) > SHOWN_AT_MOST else ""
        raise RdnsInputError(
            "{0} PTR name(s) from {1} are not valid host names, so Robot would refuse them: {2}{3}. "
            "Rule: {4}. Correct {1}; nothing was written".format(len(bad), source, shown, more, HOST_NAME_RULE))
    return desired


def ip_sort_key(ip: str) -> Any:
    addr = ipaddress.ip_address(ip)
    return (addr.version, int(addr))


def excluded_set(exclude: Sequence[str]) -> frozenset:
    return frozenset(normalize_ip(ip) for ip in exclude)


def desired_from_map(ptr_map: Dict[str, str], exclude: Sequence[str] = ()) -> Dict[str, str]:
    """Check and normalise an IP -> PTR map (such as the plan's ``ptr_map``)."""
    excluded = excluded_set(exclude)
    raw: Dict[str, Any] = {}
    for ip, ptr in ptr_map.items():
        key = normalize_ip(ip)
        if key in raw:
            raise RdnsInputError("address {0} is listed twice in the PTR map".format(key))
        raw[key] = ptr
    return checked_names({ip: ptr for ip, ptr in raw.items() if ip not in excluded}, "ptr_map")


def desired_from_template(subnet: str, template: str, skip_network_and_broadcast: bool = True,
                          exclude: Sequence[str] = ()) -> Dict[str, str]:
    """Name every address of an IPv4 subnet with ``template``.

    Fields: ``{ip}`` (192.0.2.7), ``{ip_dashed}`` (192-0-2-7), ``{index}`` (offset in
    the subnet, 7), ``{last_octet}`` (7), ``{subnet}`` (192-0-2-0-24).
    """
    try:
        net = ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        raise RdnsInputError("subnet '{0}' is not a network address with prefix: {1}".format(subnet, exc))
    if net.version != 4:
        raise RdnsInputError("a naming template needs an IPv4 subnet; give IPv6 PTRs as a ptr_map")
    if net.num_addresses > 65536:
        raise RdnsInputError("subnet {0} is larger than a /16; name it in parts".format(subnet))
    excluded = excluded_set(exclude)
    hosts: Iterable[Any] = net.hosts() if (skip_network_and_broadcast and net.prefixlen < 31) else iter(net)
    raw: Dict[str, str] = {}
    for addr in hosts:
        ip = addr.compressed
        if ip in excluded:
            continue
        fields = {
            "ip": ip,
            "ip_dashed": ip.replace(".", "-"),
            "index": int(addr) - int(net.network_address),
            "last_octet": ip.rsplit(".", 1)[1],
            "subnet": net.with_prefixlen.replace(".", "-").replace("/", "-"),
        }
        try:
            raw[ip] = template.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise RdnsInputError("ptr_template '{0}' uses an unknown field {1}; known fields: {2}".format(
                template, exc, ", ".join(TEMPLATE_FIELDS)))
    return checked_names(raw, "ptr_template '{0}'".format(template))


def parse_rdns_list(answer: List[Any]) -> Dict[str, str]:
    """Turn ``GET /rdns`` entries (``[{"rdns": {"ip", "ptr"}}]``) into IP -> PTR."""
    current: Dict[str, str] = {}
    for entry in answer:
        item = entry.get("rdns", entry) if isinstance(entry, dict) else None
        if not isinstance(item, dict) or "ip" not in item:
            continue
        if item.get("ptr"):
            current[normalize_ip(item["ip"])] = canonical_ptr(item["ptr"])
    return current


def in_scope(ip: str, scope: Sequence[Any]) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr.version == net.version and addr in net for net in scope)


def parse_scope(subnets: Sequence[str]) -> List[Any]:
    scope = []
    for subnet in subnets:
        try:
            scope.append(ipaddress.ip_network(subnet, strict=False))
        except ValueError as exc:
            raise RdnsInputError("purge scope '{0}' is not a subnet: {1}".format(subnet, exc))
    return scope


def plan_changes(desired: Dict[str, str], current: Dict[str, str], purge_scope: Optional[Sequence[Any]] = None,
                 keep: Iterable[str] = ()) -> List[PtrChange]:
    """The writes that turn ``current`` into ``desired``, sorted by address.

    With ``purge_scope`` (a list of networks), PTRs inside it that are not
    desired are deleted, except Hetzner's own default names and the addresses
    in ``keep`` (the ``exclude`` option: addresses this task leaves alone).
    """
    kept = frozenset(keep)
    changes: List[PtrChange] = []
    for ip, ptr in desired.items():
        now = current.get(ip)
        if now is None:
            changes.append(PtrChange(ip, "create", None, ptr))
        elif now != ptr:
            changes.append(PtrChange(ip, "update", now, ptr))
    if purge_scope:
        for ip, now in current.items():
            if (ip in desired or ip in kept or not in_scope(ip, purge_scope)
                    or now.endswith(HETZNER_DEFAULT_SUFFIX)):
                continue
            changes.append(PtrChange(ip, "delete", now, None))
    return sorted(changes, key=lambda change: ip_sort_key(change.ip))


def diff_text(changes: Sequence[PtrChange], current: Dict[str, str], desired: Dict[str, str]) -> Dict[str, str]:
    """Before/after text for diff mode: only the addresses that change, one per line."""
    ips = [change.ip for change in changes]
    before = "".join("{0} {1}\n".format(ip, current[ip]) for ip in ips if ip in current)
    after = "".join("{0} {1}\n".format(ip, desired[ip]) for ip in ips if ip in desired)
    return {"before": before, "after": after, "before_header": "rdns (current)", "after_header": "rdns (wanted)"}


# The account's addresses ------------------------------------------------------------------

@dataclass(frozen=True)
class AccountBlock:
    """Addresses the account holds: a single IP (``GET /ip``) or a subnet (``GET /subnet``)."""

    network: Any                 # ipaddress network
    server_ip: Optional[str]     # where Robot routes it; None for a subnet on a vSwitch


def parse_account(ips: List[Any], subnets: List[Any]) -> List[AccountBlock]:
    blocks: List[AccountBlock] = []
    for entry in ips:
        item = entry.get("ip", entry) if isinstance(entry, dict) else {}
        if isinstance(item, dict) and item.get("ip"):
            blocks.append(AccountBlock(ipaddress.ip_network(str(item["ip"])), item.get("server_ip") or None))
    for entry in subnets:
        item = entry.get("subnet", entry) if isinstance(entry, dict) else {}
        if isinstance(item, dict) and item.get("ip"):
            net = ipaddress.ip_network("{0}/{1}".format(item["ip"], mask_to_int(item["mask"])), strict=False)
            blocks.append(AccountBlock(net, item.get("server_ip") or None))
    return blocks


def owner_of(ip: str, blocks: Sequence[AccountBlock]) -> Optional[AccountBlock]:
    """The most specific block of the account holding ``ip``."""
    addr = ipaddress.ip_address(ip)
    found = [b for b in blocks if b.network.version == addr.version and addr in b.network]
    return max(found, key=lambda b: b.network.prefixlen) if found else None


def reachability_error(changes: Sequence[PtrChange], blocks: Sequence[AccountBlock],
                       server_ips: Sequence[str]) -> Optional[str]:
    """Why some PTRs to create cannot be written or were not seen by the read, or None.

    Only creations need the check: an address whose PTR the read returned is in
    the account and visible. With ``server_ips``, an address routed elsewhere
    (another server, a vSwitch) is invisible to ``GET /rdns?server_ip=``: it would
    be rewritten on every run, so it is refused.
    """
    outside: List[str] = []
    unseen: List[str] = []
    listed = {normalize_ip(ip) for ip in server_ips}
    for change in changes:
        if change.action != "create":
            continue
        block = owner_of(change.ip, blocks)
        if block is None:
            outside.append(change.ip)
        elif listed and (block.server_ip is None or normalize_ip(block.server_ip) not in listed):
            unseen.append("{0} (routed to {1})".format(
                change.ip, "server {0}".format(block.server_ip) if block.server_ip else "a vSwitch"))
    problems = []
    if outside:
        problems.append(
            "{0} address(es) are in no subnet and no single IP of this Robot account (GET /ip, GET /subnet): {1}. "
            "Remove them from the wanted PTRs, or use the web-service user of the account that holds them; "
            "running again will not help".format(len(outside), _some(outside)))
    if unseen:
        problems.append(
            "server_ips ({0}) does not cover {1} address(es) to name: {2}. GET /rdns?server_ip= cannot see their "
            "PTRs, so every run would rewrite them. Add their routing servers to server_ips, or leave server_ips "
            "empty to read the whole account with one GET /rdns".format(
                ", ".join(server_ips), len(unseen), _some(unseen)))
    return " ".join(p + "." for p in problems) + " Nothing was written." if problems else None


def _some(items: Sequence[str]) -> str:
    text = ", ".join(items[:SHOWN_AT_MOST])
    return text + (" (and {0} more)".format(len(items) - SHOWN_AT_MOST) if len(items) > SHOWN_AT_MOST else "")


# Talking to Robot -------------------------------------------------------------------------

def is_transient(exc: RobotError) -> bool:
    """Whether waiting or running again can help (rate limit, no answer, server error)."""
    return isinstance(exc, RobotRateLimitError) or exc.status == 0 or exc.status >= 500


def _is_rdns(path: str) -> bool:
    return path == "/rdns" or path.startswith("/rdns/") or path.startswith("/rdns?")


class RdnsSession:
    """rDNS requests of one module run: rate limits, and writes whose answer was lost.

    Rate limits: the client is built to fail at once on HTTP 403
    ``RATE_LIMIT_EXCEEDED`` (``rate_limit_timeout=0``) and this class waits
    instead, no longer than the window needs. It remembers when each of its
    rDNS requests was accepted; a window of ``interval`` seconds frees a slot
    when the oldest request in it leaves, so it waits until this run's oldest
    request in the window is ``interval`` seconds old (the full ``interval``
    when it sent none). Once Robot has named the limit (``max_request``), later
    requests are paced to stay under it instead of meeting 403 again. Waits are
    bounded by ``budget`` seconds in all: a wait that would overrun it fails at
    once instead of sleeping for nothing.

    Lost answers: a write is sent once. When no answer comes (timeout, dropped
    connection) or the server fails, Robot may have done it anyway, so the PTR
    is read back with ``GET /rdns/{ip}`` before anything is sent again; a PTR
    that already has the wanted value counts as written.
    """

    def __init__(self, client: RobotClient, budget: float, progress: Optional[Callable[[str], None]] = None) -> None:
        self.client = client
        self.budget = float(budget)
        self.progress = progress
        self.accepted: List[float] = []          # clock time of every rDNS request Robot did not rate-limit
        self.limit: Optional[Tuple[int, float]] = None   # (max_request, interval) once Robot has named them
        self.waited = 0.0
        self.waits: List[Dict[str, Any]] = []
        client.transport = self._recording(client.transport)

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    def _recording(self, inner: Callable[[HttpRequest, float], HttpResponse]) -> Callable[[HttpRequest, float], HttpResponse]:
        base = len(self.client.base_url.rstrip("/"))

        def transport(request: HttpRequest, timeout: float) -> HttpResponse:
            sent = self.client.clock()
            response = inner(request, timeout)   # a request without answer raises: it may count, but is not recorded
            if _is_rdns(request.url[base:]) and not (response.status == 403 and RATE_LIMIT_CODE.encode() in response.body):
                self.accepted.append(sent)
            return response

        return transport

    # Rate limits ------------------------------------------------------------------------

    def _in_window(self, interval: float) -> List[float]:
        now = self.client.clock()
        return [t for t in self.accepted if t > now - interval]

    def _wait(self, seconds: float, shown: str, why: str, exc: Optional[RobotError] = None) -> None:
        left = self.budget - self.waited
        if seconds > left:
            max_request, interval = self.limit or ("?", seconds)
            raise RobotRateLimitError(
                shown.split(" ", 1)[0], shown.split(" ", 1)[1], 403, RATE_LIMIT_CODE,
                exc.message if exc is not None else "", details=exc.details if exc is not None else {},
                hint="Robot allows {0} rDNS requests per {1:.0f}s; the next one is possible in {2:.0f}s, more than "
                     "the {3:.0f}s left of rate_limit_timeout ({4:.0f}s). Raise rate_limit_timeout, or run again "
                     "after that: a new run resumes where this one stopped".format(
                         max_request, interval, seconds, max(left, 0), self.budget))
        self._say("Robot rate limit on {0}: waiting {1:.0f}s ({2})".format(shown, seconds, why))
        self.waits.append({"request": shown, "seconds": seconds})
        started = self.client.clock()
        self.client.sleep(seconds)
        self.waited += max(self.client.clock() - started, seconds)

    def _pace(self, shown: str) -> None:
        """Before an rDNS request: wait while this run alone has used Robot's whole window."""
        if self.limit is None:
            return
        max_request, interval = self.limit
        recent = self._in_window(interval)
        if len(recent) >= max_request:
            seconds = recent[len(recent) - max_request] + interval - self.client.clock()
            if seconds > 0:
                self._wait(seconds, shown, "{0} requests per {1:.0f}s".format(max_request, interval))

    def _after_limited(self, exc: RobotError, shown: str) -> None:
        interval = _positive(exc.details.get("interval"), 60.0)
        max_request = int(_positive(exc.details.get("max_request"), 0))
        if max_request > 0:
            self.limit = (max_request, interval)
        recent = self._in_window(interval)
        if recent:
            seconds = recent[0] + interval - self.client.clock()
            why = "until this run's oldest request in the {0:.0f}s window leaves it".format(interval)
        else:
            seconds = interval
            why = "the whole {0:.0f}s window: no request of this run is in it".format(interval)
        self._wait(float(min(max(1, math.ceil(seconds)), math.ceil(interval))), shown, why, exc)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """``client.request`` with rate limits waited out as described above."""
        shown = "{0} {1}".format(method, path)
        while True:
            if _is_rdns(path):
                self._pace(shown)
            try:
                return self.client.request(method, path, **kwargs)
            except RobotRateLimitError as exc:
                if not _is_rdns(path):
                    raise
                self._after_limited(exc, shown)

    def get_list(self, path: str, query: Optional[Dict[str, str]] = None) -> List[Any]:
        """A list endpoint, read through this session's rate-limit pacing."""
        return read_list(self.request, path, query)

    # Reads ------------------------------------------------------------------------------

    def read_current(self, server_ips: Sequence[str]) -> Dict[str, str]:
        """Every current PTR: one ``GET /rdns`` for the account, or one per server IP."""
        if not server_ips:
            return parse_rdns_list(self.get_list("/rdns"))
        current: Dict[str, str] = {}
        for server_ip in server_ips:
            current.update(parse_rdns_list(self.get_list("/rdns", query={"server_ip": server_ip})))
        return current

    def read_account(self) -> List[AccountBlock]:
        """The account's single IPs and subnets (two calls, outside the rDNS budget)."""
        return parse_account(self.get_list("/ip"), self.get_list("/subnet"))

    def read_one(self, ip: str) -> Optional[str]:
        answer = self.request("GET", "/rdns/" + quote_ip(ip), absent_codes=("RDNS_NOT_FOUND",))
        item = answer.get("rdns", answer) if isinstance(answer, dict) else None
        if not isinstance(item, dict) or not item.get("ptr"):
            return None
        return canonical_ptr(item["ptr"])

    # Writes -----------------------------------------------------------------------------

    def write(self, change: PtrChange) -> str:
        """Make one change; returns how (``PUT``, or for example ``PUT (no answer) GET: done``).

        A write is never repeated blind: after a conflict, a lost answer or a
        server error the PTR is read back first, and written again only if it
        still differs (at most ``transient_retries`` times after failures).
        """
        path = "/rdns/" + quote_ip(change.ip)
        method = WRITE_METHOD[change.action]
        retries = self.client.policy.transient_retries
        delay = self.client.policy.transient_delay
        steps: List[str] = []
        for _attempt in range(retries + 3):
            try:
                self.request(method, path, form=None if method == "DELETE" else {"ptr": change.after or ""},
                             absent_codes=("RDNS_NOT_FOUND",) if method == "DELETE" else (), repeatable=False)
                return " ".join(steps + [method])
            except RobotRateLimitError:
                raise
            except RobotError as exc:
                if method == "PUT" and exc.code == "RDNS_ALREADY_EXISTS":
                    steps.append("PUT (409)")
                elif is_transient(exc) and retries > 0:
                    retries -= 1
                    steps.append("{0} ({1})".format(method, exc.status or "no answer"))
                    self._say("Robot {0} {1}: {2}; reading the PTR back in {3:.0f}s before sending it again".format(
                        method, path, exc.message or exc.code, delay))
                    self.client.sleep(delay)
                    delay *= 2
                else:
                    raise
            now = self.read_one(change.ip)
            if now == change.after or (change.action == "delete" and now is not None
                                       and now.endswith(HETZNER_DEFAULT_SUFFIX)):
                return " ".join(steps + ["GET: already done"])
            method = "DELETE" if change.action == "delete" else ("PUT" if now is None else "POST")
        raise RobotError(method, path, 409, "RDNS_CONFLICT", "the PTR keeps changing under this run",
                         hint="Another client writes this PTR at the same time; stop it and run again")


def _positive(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


# One run ----------------------------------------------------------------------------------

def failure_message(written: int, total: int, change: PtrChange, exc: RobotError) -> str:
    """What went wrong at ``change``, and whether running again helps."""
    target = "{0} {1}".format(change.action, change.ip) + (" -> '{0}'".format(change.after) if change.after else "")
    text = "Wrote {0} of {1} PTR changes, then {2} failed: {3}.".format(written, total, target, exc)
    if is_transient(exc):
        return text + " Run the task again to resume: it reads first, so written entries are not repeated."
    if exc.code == "INVALID_INPUT":
        advice = "Robot refused the name '{0}' for {1}: correct it in ptr_map or ptr_template".format(change.after, change.ip)
    elif exc.status == 401:
        advice = "correct robot_user/robot_password"
    elif exc.status == 404:
        advice = "{0} is not an address of this Robot account: remove it from the wanted PTRs".format(change.ip)
    else:
        advice = "correct the input this error names"
    return text + " Running again will fail the same way: " + advice + "."


@dataclass(frozen=True)
class WantedPtrs:
    """What one task manages: the wanted PTRs, where to purge, and what to leave alone."""

    desired: Dict[str, str]
    purge_scope: Optional[List[Any]]
    keep: frozenset


def wanted_from_params(params: Dict[str, Any]) -> WantedPtrs:
    """The module's options as checked, normalised wanted state; raises :class:`RdnsInputError`."""
    if params.get("max_writes", 0) < 0:
        raise RdnsInputError("max_writes must be 0 (no limit) or a positive number of writes")
    if params["ptr_map"] is not None:
        desired = desired_from_map(params["ptr_map"], params["exclude"])
        scope_list = params["purge_scope"] or []
        if params["purge"] and not scope_list:
            raise RdnsInputError("purge=true with ptr_map needs purge_scope: the subnets whose PTRs this task manages")
    else:
        desired = desired_from_template(params["subnet"], params["ptr_template"],
                                        params["skip_network_and_broadcast"], params["exclude"])
        scope_list = params["purge_scope"] or [params["subnet"]]
    scope = parse_scope(scope_list) if params["purge"] else None
    return WantedPtrs(desired, scope, excluded_set(params["exclude"]))
