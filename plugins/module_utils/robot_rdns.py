# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bulk reverse DNS on Hetzner Robot: desired state, difference, and applying it.

The difference is pure (no I/O) so it is the same for check mode, diff mode and
the real run. Applying it goes through :class:`RobotClient`, one write per
changed address: ``PUT`` creates an absent PTR, ``POST`` updates an existing
one, ``DELETE`` removes one. Because every run first reads the current PTRs and
writes only the difference, a run that stopped half way (rate limit budget
spent, interrupted) resumes with the next missing entry and repeats no write.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import (
    RobotClient,
    RobotError,
    quote_ip,
)

# Hetzner puts this name back on a server's main IP when its PTR is deleted:
# such entries are never purged (deleting them would change nothing).
HETZNER_DEFAULT_SUFFIX = ".clients.your-server.de"

TEMPLATE_FIELDS = ("ip", "ip_dashed", "index", "last_octet", "subnet")


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
    """The desired state cannot be built from the given options."""


def normalize_ip(value: str) -> str:
    try:
        return ipaddress.ip_address(str(value).strip()).compressed
    except ValueError:
        raise RdnsInputError("'{0}' is not an IP address".format(value))


def normalize_ptr(value: str) -> str:
    name = str(value).strip().rstrip(".").lower()
    if not name or len(name) > 253 or any(not label or len(label) > 63 for label in name.split(".")):
        raise RdnsInputError("'{0}' is not a valid host name for a PTR".format(value))
    return name


def ip_sort_key(ip: str) -> Any:
    addr = ipaddress.ip_address(ip)
    return (addr.version, int(addr))


def desired_from_map(ptr_map: Dict[str, str]) -> Dict[str, str]:
    """Normalise an IP -> PTR map (such as the plan's ``ptr_map``)."""
    desired: Dict[str, str] = {}
    for ip, ptr in ptr_map.items():
        key = normalize_ip(ip)
        if key in desired:
            raise RdnsInputError("address {0} is listed twice in the PTR map".format(key))
        desired[key] = normalize_ptr(ptr)
    return desired


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
    excluded = {normalize_ip(ip) for ip in exclude}
    hosts: Iterable[Any] = net.hosts() if (skip_network_and_broadcast and net.prefixlen < 31) else iter(net)
    desired: Dict[str, str] = {}
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
            name = template.format(**fields)
        except (KeyError, IndexError, ValueError) as exc:
            raise RdnsInputError("ptr_template '{0}' uses an unknown field {1}; known fields: {2}".format(
                template, exc, ", ".join(TEMPLATE_FIELDS)))
        desired[ip] = normalize_ptr(name)
    return desired


def parse_rdns_list(answer: List[Any]) -> Dict[str, str]:
    """Turn ``GET /rdns`` entries (``[{"rdns": {"ip", "ptr"}}]``) into IP -> PTR."""
    current: Dict[str, str] = {}
    for entry in answer:
        item = entry.get("rdns", entry) if isinstance(entry, dict) else None
        if not isinstance(item, dict) or "ip" not in item:
            continue
        if item.get("ptr"):
            current[normalize_ip(item["ip"])] = str(item["ptr"]).rstrip(".").lower()
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


def plan_changes(desired: Dict[str, str], current: Dict[str, str], purge_scope: Optional[Sequence[Any]] = None) -> List[PtrChange]:
    """The writes that turn ``current`` into ``desired``, sorted by address.

    With ``purge_scope`` (a list of networks), PTRs inside it that are not
    desired are deleted, except Hetzner's own default names.
    """
    changes: List[PtrChange] = []
    for ip, ptr in desired.items():
        now = current.get(ip)
        if now is None:
            changes.append(PtrChange(ip, "create", None, ptr))
        elif now != ptr:
            changes.append(PtrChange(ip, "update", now, ptr))
    if purge_scope:
        for ip, now in current.items():
            if ip in desired or not in_scope(ip, purge_scope) or now.endswith(HETZNER_DEFAULT_SUFFIX):
                continue
            changes.append(PtrChange(ip, "delete", now, None))
    return sorted(changes, key=lambda change: ip_sort_key(change.ip))


def read_current(client: RobotClient, server_ips: Sequence[str]) -> Dict[str, str]:
    """Every current PTR: one ``GET /rdns`` for the account, or one per server IP."""
    current: Dict[str, str] = {}
    if not server_ips:
        return parse_rdns_list(client.get_list("/rdns"))
    for server_ip in server_ips:
        current.update(parse_rdns_list(client.get_list("/rdns", query={"server_ip": server_ip})))
    return current


def apply_change(client: RobotClient, change: PtrChange) -> str:
    """Write one change; returns the HTTP method that did it."""
    path = "/rdns/" + quote_ip(change.ip)
    if change.action == "delete":
        client.request("DELETE", path, absent_codes=("RDNS_NOT_FOUND",))
        return "DELETE"
    if change.action == "create":
        try:
            client.request("PUT", path, form={"ptr": change.after or ""})
            return "PUT"
        except RobotError as exc:
            # Someone created it between our read and this write: update instead.
            if exc.code != "RDNS_ALREADY_EXISTS":
                raise
    client.request("POST", path, form={"ptr": change.after or ""})
    return "POST"


def apply_changes(client: RobotClient, changes: Sequence[PtrChange],
                  on_done: Optional[Callable[[int, int, PtrChange], None]] = None) -> List[PtrChange]:
    """Apply changes in order. Raises on the first failure; ``on_done`` sees each success."""
    done: List[PtrChange] = []
    for number, change in enumerate(changes, start=1):
        apply_change(client, change)
        done.append(change)
        if on_done is not None:
            on_done(number, len(changes), change)
    return done


def diff_text(changes: Sequence[PtrChange], current: Dict[str, str], desired: Dict[str, str]) -> Dict[str, str]:
    """Before/after text for diff mode: only the addresses that change, one per line."""
    ips = [change.ip for change in changes]
    before = "".join("{0} {1}\n".format(ip, current[ip]) for ip in ips if ip in current)
    after = "".join("{0} {1}\n".format(ip, desired[ip]) for ip in ips if ip in desired)
    return {"before": before, "after": after, "before_header": "rdns (current)", "after_header": "rdns (wanted)"}
