# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Orders through the Robot webservice, idempotent by intent.

Robot chooses what an order delivers (the subnet's address, the server's number and
main IP); the order names only a product. So an order is never found again by the
address the inventory wanted. Instead, before ordering, the account is read:

* subnets: a pool's subnet is the one at the inventory's address, or the one an order
  for the pool delivered (the transaction list keeps delivered orders), or a subnet of
  the ordered size routed to the ordering server or to a vSwitch that server is in;
* servers: an inventory host's server is the one whose ``server_name`` is the host's
  name, or the one an order for the host delivered.

An order is tied to its pool or host by a marker, ``[kibamail:<name>]``, at the end of
the addon order's ``reason`` and in the server order's ``comment``; the transaction
list shows it back. A lost answer to an order POST (no HTTP answer at all) may mean the
order was placed: it is reported as such, and the next run finds it by the marker
before it would order again. An order is never sent twice in one run.

Everything here is the modules' logic; the modules only parse options and exit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import (
    CANCELLED_STATUS,
    PENDING_STATUS,
    READY_STATUS,
    RobotClient,
    RobotError,
    _int_or_none,
    list_subnets,
    normalize_subnet,
    product_id_of,
    transaction_of,
    vswitch_details,
)

MARKER_RE = re.compile(r"\[kibamail:([^\]\s]+)\]")


def marker(name: str) -> str:
    """The marker that ties an order to a pool or an inventory host."""
    return "[kibamail:{0}]".format(name)


def with_marker(text: str, name: str) -> str:
    """``text`` with the marker of ``name`` at its end (once)."""
    text = (text or "").strip()
    tag = marker(name)
    return text if tag in text else (text + " " + tag).strip()


def marked_for(text: Any) -> List[str]:
    """Names whose marker appears in ``text``."""
    return MARKER_RE.findall(str(text or ""))


# Options every ordering module takes (documented in the doc fragment robot.order).
ORDER_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = dict(
    test=dict(type="bool", default=True),
    confirm_order=dict(type="bool", default=False),
    validate_with_api=dict(type="bool", default=False),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=1800),
    poll_interval=dict(type="int", default=30),
)


class OrderFailed(Exception):
    """An order path that must stop; ``result`` goes into the module's answer."""

    def __init__(self, msg: str, changed: bool = False, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.changed = changed
        self.result = result


@dataclass
class OrderControl:
    """What the caller allows: real or dry run, API validation, waiting, check mode."""

    test: bool = True
    confirm_order: bool = False
    validate_with_api: bool = False
    wait: bool = True
    wait_timeout: float = 1800.0
    poll_interval: float = 30.0
    check_mode: bool = False

    @classmethod
    def from_params(cls, params: Dict[str, Any], check_mode: bool) -> "OrderControl":
        return cls(test=params["test"], confirm_order=params["confirm_order"],
                   validate_with_api=params["validate_with_api"], wait=params["wait"],
                   wait_timeout=float(params["wait_timeout"]), poll_interval=float(params["poll_interval"]),
                   check_mode=check_mode)

    @property
    def real(self) -> bool:
        return not self.test

    def refuse_unconfirmed(self) -> None:
        if self.real and not self.confirm_order:
            raise OrderFailed("test=false places a real, paid order: set confirm_order=true as well to place it")


@dataclass
class OrderOutcome:
    outcome: str
    changed: bool = False
    transaction: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    def as_result(self) -> Dict[str, Any]:
        result: Dict[str, Any] = dict(changed=self.changed, outcome=self.outcome)
        if self.transaction is not None:
            result["transaction"] = self.transaction
        result.update(self.extra)
        return result


def run_order(module: Any, client: RobotClient, ensure: Any, order: Any) -> None:
    """Run ``ensure(client, order, control)`` for a module and exit with its result (or its failure)."""
    control = OrderControl.from_params(module.params, module.check_mode)
    try:
        outcome = ensure(client, order, control)
    except OrderFailed as exc:
        module.fail_json(msg=exc.msg, changed=exc.changed, **exc.result)
    except RobotError as exc:
        module.fail_json(msg=str(exc), changed=False, error_code=exc.code, error=exc.details)
    for warning in outcome.warnings:
        module.warn(warning)
    result = outcome.as_result()
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


# Shared steps ---------------------------------------------------------------------------

def live_transactions(client: RobotClient, path: str) -> List[Dict[str, Any]]:
    """Transactions of a list endpoint that are not cancelled (Robot's 404 for none becomes [])."""
    items = [transaction_of(entry) for entry in client.get_list(path)]
    return [t for t in items if t.get("status") != CANCELLED_STATUS]


def wait_for(client: RobotClient, path: str, transaction: Dict[str, Any], control: OrderControl,
             what: str) -> Dict[str, Any]:
    """Poll ``path/{id}`` until the transaction leaves ``in process``, within ``wait_timeout``."""
    deadline = client.clock() + control.wait_timeout
    while transaction.get("status") == PENDING_STATUS:
        if client.clock() >= deadline:
            raise OrderFailed(
                "{0}: transaction {1} is still '{2}' after {3:.0f}s (wait_timeout). Nothing more was ordered; "
                "run again later: the next run finds this transaction and waits for it instead of ordering".format(
                    what, transaction.get("id"), PENDING_STATUS, control.wait_timeout),
                changed=False, outcome="pending", transaction=transaction)
        client.sleep(max(1.0, control.poll_interval))
        transaction = transaction_of(client.request("GET", "{0}/{1}".format(path, transaction["id"])))
    if transaction.get("status") != READY_STATUS:
        raise OrderFailed("{0}: transaction {1} ended with status '{2}'; ask Hetzner support why, then run again".format(
            what, transaction.get("id"), transaction.get("status")), outcome="failed", transaction=transaction)
    return transaction


def post_order(client: RobotClient, path: str, form: Dict[str, Any], what: str, name: str) -> Dict[str, Any]:
    """Send an order once. A lost answer may mean it was placed: say so, never resend."""
    try:
        return transaction_of(client.request("POST", path, form=form, repeatable=False))
    except RobotError as exc:
        if exc.status == 0:
            raise OrderFailed(
                "{0}: the order may have been placed: transaction unknown ({1}). Do not order by hand: run again; "
                "the next run reads the transaction list first and finds the order by its marker {2}".format(
                    what, exc.message, marker(name)),
                changed=True, outcome="unknown")
        if exc.code == "INVALID_INPUT":
            exc.hint = "Robot refused the order's parameters and ordered nothing; check them against the product list"
            exc.args = (exc.describe(),)
        raise


def mine(transactions: List[Dict[str, Any]], name: str) -> List[Dict[str, Any]]:
    """Transactions whose marker names ``name``."""
    return [t for t in transactions if name in marked_for(t.get("reason")) + marked_for(t.get("comment"))]


# Subnets --------------------------------------------------------------------------------

ADDON_TRANSACTIONS = "/order/server_addon/transaction"


def prefixlen_of_product(product_id: str) -> Optional[int]:
    match = re.search(r"subnet_ipv[46]_(\d+)$", product_id or "")
    return int(match.group(1)) if match else None


@dataclass
class SubnetOrder:
    """A pool's need: one subnet of ``product_id`` routed (first) to ``server_number``."""

    pool: str
    server_number: int
    product_id: str
    reason: str
    subnet: Optional[str] = None          # the inventory's address, when it has one
    exclude: List[str] = field(default_factory=list)   # other pools' subnets: never this pool's
    gateway: Optional[str] = None

    @property
    def what(self) -> str:
        return "Subnet order for pool {0} ({1}, server {2})".format(self.pool, self.product_id, self.server_number)

    def form(self, test: bool) -> Dict[str, Any]:
        form: Dict[str, Any] = dict(server_number=self.server_number, product_id=self.product_id,
                                    reason=with_marker(self.reason, self.pool), test=test)
        if self.gateway:
            form["gateway"] = self.gateway
        return form


def _pool_subnets(client: RobotClient) -> List[Dict[str, Any]]:
    """Every subnet of the account, with vSwitch targets and each vSwitch's member servers."""
    subnets = list_subnets(client, resolve_vswitch=False)
    if all(s["server_ip"] for s in subnets):
        return subnets
    details = vswitch_details(client)
    by_cidr = {cidr: v for v in details for cidr in v["subnets"]}
    for subnet in subnets:
        vswitch = by_cidr.get(subnet["cidr"])
        if vswitch is not None and not subnet["server_ip"]:
            subnet["routing_target"] = {"type": "vswitch", "server_ip": None, "server_number": None,
                                        "vswitch_id": vswitch["id"]}
        subnet["vswitch_servers"] = vswitch["servers"] if vswitch else []
    return subnets


def _routed_to(subnet: Dict[str, Any], server_number: int) -> bool:
    return subnet.get("server_number") == server_number or server_number in (subnet.get("vswitch_servers") or [])


def find_pool_subnet(subnets: List[Dict[str, Any]], transactions: List[Dict[str, Any]],
                     order: SubnetOrder) -> Optional[Dict[str, Any]]:
    """The account's subnet that meets the pool's need, or None (pure: no I/O)."""
    by_cidr = {s["cidr"]: s for s in subnets}
    if order.subnet and order.subnet in by_cidr:
        return by_cidr[order.subnet]
    by_ip = {s["ip"]: s for s in subnets}
    for transaction in mine(transactions, order.pool):
        for resource in transaction.get("resources") or []:
            if isinstance(resource, dict) and resource.get("type") == "subnet" and resource.get("id") in by_ip:
                return by_ip[resource["id"]]
    size = prefixlen_of_product(order.product_id)
    for subnet in subnets:
        if (size is not None and subnet["mask"] == size and subnet["cidr"] not in order.exclude
                and _routed_to(subnet, order.server_number)):
            return subnet
    return None


def pending_for(transactions: List[Dict[str, Any]], order: SubnetOrder) -> List[Dict[str, Any]]:
    """Orders of the pool still in process: by marker, or (no marker) by product and server."""
    pending = []
    for t in transactions:
        if t.get("status") != PENDING_STATUS:
            continue
        names = marked_for(t.get("reason"))
        same = product_id_of(t) == order.product_id and _int_or_none(t.get("server_number")) == order.server_number
        if order.pool in names or (not names and same):
            pending.append(t)
    return pending


def _subnet_result(found: Dict[str, Any], order: SubnetOrder, outcome: OrderOutcome) -> OrderOutcome:
    found = {k: v for k, v in found.items() if k != "vswitch_servers"}
    outcome.extra["subnet"] = found
    outcome.extra["inventory_matches"] = order.subnet == found["cidr"]
    if order.subnet != found["cidr"]:
        hint = "Robot has {0} for pool {1}, the inventory says {2}: write {0} into platform_pools.{1}.subnet".format(
            found["cidr"], order.pool, order.subnet or "nothing")
        outcome.extra["inventory_hint"] = hint
        outcome.warnings.append(hint)
    return outcome


def delivered_subnet(client: RobotClient, transaction: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    for resource in transaction.get("resources") or []:
        if isinstance(resource, dict) and resource.get("type") == "subnet" and resource.get("id"):
            answer = client.request("GET", "/subnet/{0}".format(resource["id"]), absent_codes=("NOT_FOUND", "SUBNET_NOT_FOUND"))
            if answer is not None:
                return normalize_subnet(answer)
    return None


def ensure_subnet(client: RobotClient, order: SubnetOrder, control: OrderControl) -> OrderOutcome:
    """Order the pool's subnet unless the account has it or an order for it is on its way."""
    subnets = _pool_subnets(client)
    transactions = live_transactions(client, ADDON_TRANSACTIONS)
    found = find_pool_subnet(subnets, transactions, order)
    if found is not None:
        return _subnet_result(found, order, OrderOutcome("exists"))
    delivered = [t for t in mine(transactions, order.pool) if t.get("status") == READY_STATUS]
    if delivered:
        # Delivered, yet not (or not yet) in the subnet list: read it by its address, never order again.
        found = delivered_subnet(client, delivered[0])
        if found is None:
            raise OrderFailed(
                "{0}: order {1} was delivered but its subnet is not in the account (cancelled or moved?). "
                "Nothing was ordered; check the subnets in Robot, then set platform_pools.{2}.subnet".format(
                    order.what, delivered[0].get("id"), order.pool), outcome="failed", transaction=delivered[0])
        return _subnet_result(found, order, OrderOutcome("exists", transaction=delivered[0]))
    pending = pending_for(transactions, order)
    if pending:
        transaction = pending[0]
        if not control.wait or control.check_mode:
            return OrderOutcome("pending", transaction=transaction)
        transaction = wait_for(client, ADDON_TRANSACTIONS, transaction, control, order.what)
        found = delivered_subnet(client, transaction)
        outcome = OrderOutcome("pending", transaction=transaction)
        return _subnet_result(found, order, outcome) if found else outcome
    control.refuse_unconfirmed()
    form = order.form(test=not control.real)
    if control.check_mode:
        return OrderOutcome("would_order" if control.real else "would_dry_run", changed=control.real,
                            extra={"request": form})
    products = [entry.get("product", entry).get("id") for entry in
                client.get_list("/order/server_addon/{0}/product".format(order.server_number))]
    if order.product_id not in products:
        raise OrderFailed("{0}: product '{1}' cannot be ordered for server {2}; orderable addons: {3}".format(
            order.what, order.product_id, order.server_number, ", ".join(str(p) for p in products) or "none"))
    if not control.real and not control.validate_with_api:
        return OrderOutcome("dry_run", extra={"request": form})
    transaction = post_order(client, ADDON_TRANSACTIONS, form, order.what, order.pool)
    if not control.real:
        return OrderOutcome("dry_run", transaction=transaction, extra={"request": form})
    if not control.wait:
        return OrderOutcome("ordered", changed=True, transaction=transaction)
    transaction = wait_for(client, ADDON_TRANSACTIONS, transaction, control, order.what)
    found = delivered_subnet(client, transaction)
    outcome = OrderOutcome("ordered", changed=True, transaction=transaction)
    return _subnet_result(found, order, outcome) if found else outcome


# Servers --------------------------------------------------------------------------------

@dataclass
class ServerOrder:
    """One dedicated server for one inventory host."""

    name: str
    product_id: str
    market: bool = False
    location: Optional[str] = None
    dist: Optional[str] = None
    lang: Optional[str] = None
    authorized_keys: List[str] = field(default_factory=list)
    password: Optional[str] = None
    addons: List[str] = field(default_factory=list)
    comment: str = ""
    set_server_name: bool = True

    @property
    def base(self) -> str:
        return "/order/server_market" if self.market else "/order/server"

    @property
    def transactions_path(self) -> str:
        return self.base + "/transaction"

    @property
    def what(self) -> str:
        return "Server order for {0} ({1}{2})".format(self.name, "auction " if self.market else "", self.product_id)

    def form(self, test: bool) -> Dict[str, Any]:
        form: Dict[str, Any] = dict(product_id=self.product_id, comment=with_marker(self.comment, self.name), test=test)
        for key in ("location", "dist", "lang", "password"):
            if getattr(self, key):
                form[key] = getattr(self, key)
        if self.authorized_keys:
            form["authorized_key"] = list(self.authorized_keys)
        if self.addons:
            form["addon"] = list(self.addons)
        return form

    def shown_form(self, test: bool) -> Dict[str, Any]:
        form = self.form(test)
        if "password" in form:
            form["password"] = "********"
        return form


def server_view(raw: Dict[str, Any]) -> Dict[str, Any]:
    item = raw.get("server", raw)
    return {"server_number": _int_or_none(item.get("server_number")), "server_ip": item.get("server_ip"),
            "server_name": item.get("server_name") or "", "product": item.get("product"), "dc": item.get("dc")}


def list_servers(client: RobotClient) -> List[Dict[str, Any]]:
    return [server_view(s) for s in client.get_list("/server")]


def _name_server(client: RobotClient, order: ServerOrder, server: Dict[str, Any], control: OrderControl,
                 outcome: OrderOutcome) -> OrderOutcome:
    """Give the delivered server the host's name, so later runs find it by name alone."""
    outcome.extra.update(server=server, server_number=server["server_number"], server_ip=server["server_ip"])
    if not order.set_server_name or server.get("server_name") == order.name or server["server_number"] is None:
        return outcome
    outcome.changed = True
    outcome.extra["diff"] = {"before": {"server_name": server.get("server_name") or ""},
                             "after": {"server_name": order.name}}
    if control.check_mode:
        return outcome
    answer = client.request("POST", "/server/{0}".format(server["server_number"]), form={"server_name": order.name})
    outcome.extra["server"] = server_view(answer or {})
    return outcome


def _delivered_server(servers: List[Dict[str, Any]], transaction: Dict[str, Any]) -> Dict[str, Any]:
    number = _int_or_none(transaction.get("server_number"))
    for server in servers:
        if server["server_number"] == number:
            return server
    return {"server_number": number, "server_ip": transaction.get("server_ip"), "server_name": "",
            "product": None, "dc": None}


def ensure_server(client: RobotClient, order: ServerOrder, control: OrderControl) -> OrderOutcome:
    """Order a server for the host unless the account has one for it or an order is on its way."""
    servers = list_servers(client)
    named = [s for s in servers if s["server_name"] == order.name]
    if named:
        server = named[0]
        return OrderOutcome("exists", extra={"server": server, "server_number": server["server_number"],
                                             "server_ip": server["server_ip"]})
    transactions = mine(live_transactions(client, order.transactions_path), order.name)
    ready = [t for t in transactions if t.get("status") == READY_STATUS]
    if ready:
        return _name_server(client, order, _delivered_server(servers, ready[0]), control,
                            OrderOutcome("delivered", transaction=ready[0]))
    if transactions:
        transaction = transactions[0]
        if not control.wait or control.check_mode:
            return OrderOutcome("pending", transaction=transaction)
        transaction = wait_for(client, order.transactions_path, transaction, control, order.what)
        return _name_server(client, order, _delivered_server(list_servers(client), transaction), control,
                            OrderOutcome("delivered", transaction=transaction))
    control.refuse_unconfirmed()
    shown = order.shown_form(test=not control.real)
    if control.check_mode:
        return OrderOutcome("would_order" if control.real else "would_dry_run", changed=control.real,
                            extra={"request": shown, "diff": _order_diff(order, control)})
    _check_product(client, order)
    if not control.real and not control.validate_with_api:
        return OrderOutcome("dry_run", extra={"request": shown})
    transaction = post_order(client, order.transactions_path, order.form(test=not control.real), order.what, order.name)
    if not control.real:
        return OrderOutcome("dry_run", transaction=transaction, extra={"request": shown})
    outcome = OrderOutcome("ordered", changed=True, transaction=transaction, extra={"diff": _order_diff(order, control)})
    if not control.wait:
        return outcome
    transaction = wait_for(client, order.transactions_path, transaction, control, order.what)
    outcome.transaction = transaction
    return _name_server(client, order, _delivered_server(list_servers(client), transaction), control, outcome)


def _order_diff(order: ServerOrder, control: OrderControl) -> Dict[str, Any]:
    if not control.real:
        return {"before": {}, "after": {}}
    return {"before": {}, "after": {"server_name": order.name, "product": order.product_id, "location": order.location}}


def _check_product(client: RobotClient, order: ServerOrder) -> None:
    """Refuse an order Robot would refuse, before the POST (reads only)."""
    answer = client.request("GET", "{0}/product/{1}".format(order.base, order.product_id),
                            absent_codes=("NOT_FOUND", "PRODUCT_NOT_FOUND"))
    if answer is None:
        raise OrderFailed("{0}: Robot has no {1}product '{2}'; list them with GET {3}/product".format(
            order.what, "auction " if order.market else "", order.product_id, order.base))
    product = answer.get("product", answer) if isinstance(answer, dict) else {}
    for key in ("location", "dist"):
        offered = product.get(key)
        wanted = getattr(order, key)
        if wanted and isinstance(offered, list) and wanted not in offered:
            raise OrderFailed("{0}: {1} '{2}' is not offered for '{3}'; offered: {4}".format(
                order.what, key, wanted, order.product_id, ", ".join(str(o) for o in offered)))
