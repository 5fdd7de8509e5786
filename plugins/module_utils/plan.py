# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The platform plan: every derived fact of the platform, computed once.

Pure Python, no I/O. ``build_plan(spec)`` takes the inventory's description
of the platform (see docs/model.md) and returns the plan every applier reads:
sending IPs per MTA, PTR and HELO names, the record sets of each zone, the
load balancers' backends, the customers' DKIM / return-path / DMARC names.
Bad input raises ``PlanError`` with a message that says what to change,
before anything anywhere is modified.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Optional

# RFC 7208 3.4: keep an SPF record small enough for a UDP answer.
SPF_MAX_BYTES = 450
# BIND 9.18.28 and later refuse more records of one type at one name than
# this (max-records-per-type); resolvers running it answer SERVFAIL.
RESOLVER_SAFE_RRSET = 100
PROFILES = ("transactional", "marketing")
DMARC_POLICIES = ("none", "quarantine", "reject")
PTR_FIELDS = ("mta", "mta_fqdn", "ip_dashed", "index", "domain")
# One name per sending IP, under its MTA's name: 192-0-2-10.us-mta1.kbmta.net.
DEFAULT_PTR_TEMPLATE = "{ip_dashed}.{mta_fqdn}"
# Address blocks an inventory uses for values that are not known yet. Outside
# a lab, any address in them is a placeholder and no playbook may act on it.
PLACEHOLDER_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15")
)
PLACEHOLDER_MARK = "CHANGEME"

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class PlanError(ValueError):
    """The inventory cannot be turned into a plan; the message says why and what to change."""


@dataclass
class Pool:
    name: str
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    reserved: set
    profile: str
    mta_group: str
    lb_group: str
    lb_label: str
    vswitch_vlan: Any
    mtas: list = field(default_factory=list)
    lbs: list = field(default_factory=list)


# --------------------------------------------------------------------------
# small validators


def normalize_fqdn(name: Any, what: str) -> str:
    """Lower-case, strip one trailing dot, and check every label."""
    if not isinstance(name, str) or not name.strip():
        raise PlanError("%s must be a domain name, got %r" % (what, name))
    fqdn = name.strip().lower()
    if fqdn.endswith("."):
        fqdn = fqdn[:-1]
    labels = fqdn.split(".")
    if len(labels) < 2 or len(fqdn) > 253 or not all(_LABEL.match(label) for label in labels):
        raise PlanError(
            "%s %r is not a valid fully qualified domain name: use letters, digits and "
            "hyphens in dot-separated labels of at most 63 characters (for example kbmta.net)" % (what, name)
        )
    return fqdn


def check_label(label: Any, what: str) -> str:
    if not isinstance(label, str) or not _LABEL.match(label.lower()):
        raise PlanError("%s %r must be a single DNS label (letters, digits, hyphens), for example 'spf'" % (what, label))
    return label.lower()


def parse_network(value: Any, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        raise PlanError("%s %r is not an IPv4 network in CIDR form such as 192.0.2.0/24 (%s)" % (what, value, exc))
    if net.version != 4:
        raise PlanError("%s %r: only IPv4 sending subnets are supported" % (what, value))
    if net.prefixlen > 30:
        raise PlanError("%s %r is too small to send from: use a /30 or larger subnet" % (what, value))
    return net


def parse_address(value: Any, what: str) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        raise PlanError("%s %r is not an IPv4 address" % (what, value))
    if addr.version != 4:
        raise PlanError("%s %r must be an IPv4 address" % (what, value))
    return addr


def expand_addresses(values: Any, what: str) -> list:
    """Addresses from a list of single addresses, 'a-b' ranges and CIDR blocks."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise PlanError("%s must be a list of addresses, ranges (a-b) or CIDR blocks" % what)
    out = []
    for item in values:
        text = str(item).strip()
        if "-" in text:
            first, last = (parse_address(p.strip(), what) for p in text.split("-", 1))
            if int(last) < int(first):
                raise PlanError("%s range %r ends before it starts" % (what, text))
            out.extend(ipaddress.IPv4Address(i) for i in range(int(first), int(last) + 1))
        elif "/" in text:
            out.extend(parse_network(text, what).hosts())
        else:
            out.append(parse_address(text, what))
    return out


# --------------------------------------------------------------------------
# the IP split


def usable_addresses(pool: Pool) -> list:
    """Every address of the pool that may send: not network, broadcast, gateway or reserved."""
    hosts = list(pool.network.hosts())
    return [a for a in hosts if a != pool.gateway and a not in pool.reserved]


def rendezvous_owner(pool_name: str, address: ipaddress.IPv4Address, mtas: list) -> str:
    """Highest-random-weight choice of an MTA for one address.

    Each (pool, MTA, address) triple gets a score from SHA-256; the address
    goes to the MTA with the highest score. The result depends only on the
    address and the set of MTAs, so adding an MTA moves only the addresses the
    new MTA wins (about 1/n of them) and never moves an address between MTAs
    that were already there; removing one moves only that MTA's addresses.
    """
    def score(mta: str) -> bytes:
        return hashlib.sha256(("%s|%s|%s" % (pool_name, mta, address)).encode()).digest()

    return max(sorted(mtas), key=score)


def split_pool(pool: Pool, explicit: dict) -> dict:
    """Map MTA name -> sorted list of sending addresses for one pool.

    ``explicit`` maps MTA name -> addresses the inventory pins to it; those
    leave the shared set, and the rest is split by ``rendezvous_owner`` among
    the MTAs that have no explicit list.
    """
    usable = usable_addresses(pool)
    usable_set = set(usable)
    owner = {}
    for mta in sorted(explicit):
        for addr in explicit[mta]:
            if addr not in usable_set:
                raise PlanError(
                    "mta_sending_ips of %s lists %s, which is not a usable address of pool %s (%s, gateway %s, "
                    "reserved %s): use addresses inside the pool" % (
                        mta, addr, pool.name, pool.network, pool.gateway, sorted(str(r) for r in pool.reserved) or "none")
                )
            if addr in owner and owner[addr] != mta:
                raise PlanError("%s is pinned to both %s and %s: give each address to one MTA" % (addr, owner[addr], mta))
            owner[addr] = mta
    shared = [m for m in pool.mtas if m not in explicit]
    if shared:
        for addr in usable:
            if addr not in owner:
                owner[addr] = rendezvous_owner(pool.name, addr, shared)
    result = {m: [] for m in pool.mtas}
    for addr, mta in owner.items():
        result[mta].append(addr)
    for mta in result:
        result[mta].sort()
        if not result[mta]:
            raise PlanError(
                "MTA %s of pool %s gets no sending address: the pool %s is too small for %d MTAs, "
                "or the explicit lists leave nothing; use a larger subnet or fewer MTAs" % (
                    mta, pool.name, pool.network, len(pool.mtas))
            )
    return result


# --------------------------------------------------------------------------
# SPF


def spf_terms(networks: list) -> list:
    """Collapsed ip4: mechanisms covering exactly the given networks."""
    collapsed = ipaddress.collapse_addresses(networks)
    return ["ip4:%s" % (n.network_address if n.prefixlen == 32 else n) for n in collapsed]


def spf_record(terms: list, spf_domain: str) -> str:
    record = " ".join(["v=spf1"] + terms + ["-all"])
    size = len(record.encode())
    if size > SPF_MAX_BYTES:
        raise PlanError(
            "the SPF record for %s would be %d bytes, over the %d that fit a DNS answer over UDP "
            "(RFC 7208 section 3.4): use fewer, larger or adjacent sending subnets" % (spf_domain, size, SPF_MAX_BYTES)
        )
    return record


# --------------------------------------------------------------------------
# the plan


def _rrset(name: str, rtype: str, ttl: int, values: list) -> dict:
    return {"name": name, "type": rtype, "ttl": ttl, "values": list(values)}


def placeholder(addr_text: Any) -> Optional[str]:
    """Why an inventory value is a placeholder (None when it is not): it holds the
    PLACEHOLDER_MARK, or it is an address or network inside PLACEHOLDER_NETS."""
    if addr_text is None:
        return None
    text = str(addr_text)
    if PLACEHOLDER_MARK in text:
        return text
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if any(net.subnet_of(p) for p in PLACEHOLDER_NETS if p.version == net.version):
        return "%s, a documentation/benchmark address" % text
    return None


def _placeholders(spec: dict, pools: dict, hosts: dict) -> list:
    if spec.get("lab"):
        return []
    found = []

    def check(addr_text: Any, where: str) -> None:
        why = placeholder(addr_text)
        if why is not None:
            found.append("%s is %s" % (where, why))

    for name, pool in sorted(pools.items()):
        check(pool.network, "pool %s subnet" % name)
    for host, hv in sorted(hosts.items()):
        for key in ("mta_address", "lb_address", "ansible_host"):
            check(hv.get(key), "%s %s" % (host, key))
    return found


def _pools(spec: dict, groups: dict) -> dict:
    raw = spec.get("pools")
    if not isinstance(raw, dict) or not raw:
        raise PlanError("platform_pools must map each pool name (for example transactional, marketing) to its settings")
    pools = {}
    for name, conf in sorted(raw.items()):
        if not isinstance(conf, dict):
            raise PlanError("platform_pools.%s must be a mapping with at least 'subnet'" % name)
        if "subnet" not in conf:
            raise PlanError("platform_pools.%s has no 'subnet': set it to the pool's CIDR, for example 192.0.2.0/24" % name)
        net = parse_network(conf["subnet"], "platform_pools.%s.subnet" % name)
        gateway = parse_address(conf.get("gateway", net.network_address + 1), "platform_pools.%s.gateway" % name)
        if gateway not in net:
            raise PlanError("platform_pools.%s.gateway %s is outside its subnet %s" % (name, gateway, net))
        reserved = set(expand_addresses(conf.get("reserved", []), "platform_pools.%s.reserved" % name))
        outside = sorted(str(a) for a in reserved if a not in net)
        if outside:
            raise PlanError("platform_pools.%s.reserved lists %s outside the subnet %s" % (name, ", ".join(outside), net))
        profile = conf.get("profile", name)
        if profile not in PROFILES:
            raise PlanError("platform_pools.%s.profile must be one of %s, got %r" % (name, ", ".join(PROFILES), profile))
        pool = Pool(
            name=name, network=net, gateway=gateway, reserved=reserved, profile=profile,
            mta_group=conf.get("mta_group", "mta_%s" % name), lb_group=conf.get("lb_group", "lb_%s" % name),
            lb_label=check_label(conf.get("lb_label", "smtp" if profile == "transactional" else "smtp-%s" % name),
                                 "platform_pools.%s.lb_label" % name),
            vswitch_vlan=conf.get("vswitch_vlan"),
        )
        pool.mtas = sorted(groups.get(pool.mta_group, []))
        pool.lbs = sorted(groups.get(pool.lb_group, []))
        if not pool.mtas:
            raise PlanError(
                "pool %s has no MTA: add hosts to the inventory group %s (or set platform_pools.%s.mta_group)" % (
                    name, pool.mta_group, name))
        pools[name] = pool
    names = sorted(pools)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if pools[a].network.overlaps(pools[b].network):
                raise PlanError("pools %s (%s) and %s (%s) overlap: give each pool its own subnet" % (
                    a, pools[a].network, b, pools[b].network))
    return pools


def _mta_pools(pools: dict, groups: dict) -> dict:
    member = {}
    for name, pool in pools.items():
        for mta in pool.mtas:
            if mta in member:
                raise PlanError("MTA %s is in two pools (%s and %s): keep it in one MTA group" % (mta, member[mta], name))
            member[mta] = name
    for mta in sorted(groups.get("mta", [])):
        if mta not in member:
            raise PlanError(
                "MTA %s (group mta) is in no pool: add it to one of the groups %s" % (
                    mta, ", ".join(sorted(p.mta_group for p in pools.values()))))
    return member


def _pool_of(name: Any, pools: dict, what: str, fix: str) -> str:
    if name not in pools:
        raise PlanError("%s uses pool %r, which is not defined: %s to one of %s" % (what, name, fix, ", ".join(sorted(pools))))
    return name


def _logins(conf: dict, i: int, cdomain: str, default_pool: str, pools: dict, owners: dict) -> list:
    """The logins of one customer, each bound to exactly one pool (its stream)."""
    raw = conf.get("logins") or []
    if not isinstance(raw, list):
        raise PlanError("platform_customers[%d].logins of %s must be a list of logins, each with a username" % (i, cdomain))
    logins = []
    for j, login in enumerate(raw):
        user = str(login.get("username", "")).lower() if isinstance(login, dict) else ""
        if not user:
            raise PlanError("platform_customers[%d].logins[%d] needs a username" % (i, j))
        if user in owners:
            if owners[user] == cdomain:
                raise PlanError("login %s of %s is listed twice" % (user, cdomain))
            raise PlanError("login %s is listed for both %s and %s: a login belongs to one customer, "
                            "give the other customer a login of its own" % (user, owners[user], cdomain))
        owners[user] = cdomain
        if "pool" in login:
            pool = _pool_of(login["pool"], pools, "login %s of %s" % (user, cdomain), "set its pool")
        else:
            pool = _pool_of(default_pool, pools, "login %s of %s (it names no pool, so the customer's)" % (user, cdomain),
                            "set the login's pool or the customer's")
        senders = [str(s).lower() for s in (login.get("senders") or ["@" + cdomain])]
        for s in senders:
            sdomain = s.rsplit("@", 1)[-1]
            if sdomain != cdomain:
                raise PlanError(
                    "login %s may only send as %s addresses, but its senders list %s: "
                    "move that address to the customer that owns its domain" % (user, cdomain, s))
        logins.append({"username": user, "pool": pool, "senders": senders})
    return logins


def _customers(spec: dict, pools: dict, domain: str, bounce_domain: str, ttl: int) -> tuple:
    raw = spec.get("customers") or []
    if not isinstance(raw, list):
        raise PlanError("platform_customers must be a list of customers, each with a 'domain'")
    customers, zones, owners = {}, {}, {}
    for i, conf in enumerate(raw):
        if not isinstance(conf, dict) or "domain" not in conf:
            raise PlanError("platform_customers[%d] must be a mapping with a 'domain'" % i)
        cdomain = normalize_fqdn(conf["domain"], "platform_customers[%d].domain" % i)
        if cdomain in customers:
            raise PlanError("customer domain %s is listed twice in platform_customers: keep one entry" % cdomain)
        if cdomain == domain or cdomain.endswith("." + domain):
            raise PlanError("customer domain %s is inside the platform domain %s: customers bring their own domain" % (
                cdomain, domain))
        # The customer's pool is the default stream of the logins that name none.
        default_pool = conf.get("pool", "transactional")
        if "pool" in conf:
            _pool_of(default_pool, pools, "customer %s" % cdomain, "set its pool")
        selector = check_label(conf.get("dkim_selector", "kb1"), "dkim_selector of %s" % cdomain)
        rp_label = check_label(conf.get("return_path_label", "kb-bounces"), "return_path_label of %s" % cdomain)
        policy = conf.get("dmarc_policy", "none")
        if policy not in DMARC_POLICIES:
            raise PlanError("dmarc_policy of %s must be one of %s, got %r" % (cdomain, ", ".join(DMARC_POLICIES), policy))
        dmarc = "v=DMARC1; p=%s; adkim=r; aspf=r" % policy
        if conf.get("dmarc_rua"):
            dmarc += "; rua=%s" % conf["dmarc_rua"]
        logins = _logins(conf, i, cdomain, default_pool, pools, owners)
        # Every MTA of every stream the domain uses signs it, rewrites its
        # return path and picks its transport; each MTA takes only the logins
        # of its own pool.
        streams = sorted({login["pool"] for login in logins}) or [
            _pool_of(default_pool, pools, "customer %s" % cdomain, "set its pool")]
        entry = {
            "pool": default_pool,
            "pools": streams,
            "mtas": sorted(m for p in streams for m in pools[p].mtas),
            "dkim_selector": selector,
            "dkim_name": "%s._domainkey.%s" % (selector, cdomain),
            "return_path": "%s.%s" % (rp_label, cdomain),
            "return_path_target": bounce_domain,
            "dmarc_name": "_dmarc.%s" % cdomain,
            "dmarc_value": dmarc,
            "zone_managed": bool(conf.get("zone_managed", False)),
            "logins": logins,
        }
        customers[cdomain] = entry
        zones[cdomain] = [
            _rrset(entry["return_path"], "CNAME", ttl, [bounce_domain + "."]),
            _rrset(entry["dmarc_name"], "TXT", ttl, [dmarc]),
        ]
    return customers, zones


def domain_transport(domain: str, sending_ips: list) -> str:
    """The transport (sending IP) one customer domain leaves an MTA through.

    A stable choice by the domain name: the first 32 bits of its MD5, modulo
    the number of the MTA's sending IPs (in plan order, sorted by address).
    The same domain keeps its IP as long as the MTA's list of IPs does not change.
    """
    if not sending_ips:
        raise PlanError("an MTA without sending IPs cannot carry %s" % domain)
    index = int(hashlib.md5(domain.lower().encode()).hexdigest()[:8], 16) % len(sending_ips)
    return sending_ips[index]["transport"]


def _transports(customers: dict, mtas: dict) -> dict:
    """Per MTA: customer domain -> its transport, for every domain of the MTA's streams."""
    return {
        mta: {d: domain_transport(d, mtas[mta]["sending_ips"]) for d, c in sorted(customers.items()) if mta in c["mtas"]}
        for mta in sorted(mtas)
    }


def _ptr_name(template: str, mta: str, mta_fqdn: str, ip: ipaddress.IPv4Address, index: int, domain: str) -> str:
    try:
        name = template.format(mta=mta, mta_fqdn=mta_fqdn, ip_dashed=str(ip).replace(".", "-"), index=index, domain=domain)
    except (KeyError, IndexError, ValueError) as exc:
        raise PlanError("platform_ptr_template %r is invalid (%s): use only the fields %s" % (
            template, exc, ", ".join("{%s}" % f for f in PTR_FIELDS)))
    return normalize_fqdn(name, "the PTR name %r made by platform_ptr_template" % name)


def _refuse_oversize(records: list, template: str) -> None:
    """Refuse any record set a stock resolver would not accept.

    BIND 9.18.28 and later (Debian 12's included) refuse more than 100 records
    of one type at one name (max-records-per-type) and answer SERVFAIL, so
    receivers behind them could neither forward-confirm a sending IP nor reach
    a bounce MX published that way.
    """
    for rr in records:
        if len(rr["values"]) > RESOLVER_SAFE_RRSET:
            raise PlanError(
                "%s would carry %d %s records, more than the %d that resolvers running BIND 9.18.28 or later accept "
                "at one name (they answer SERVFAIL, so receivers could not forward-confirm these sending IPs): "
                "give each sending IP a name of its own with platform_ptr_template: '%s' (the default), "
                "not %r" % (rr["name"], len(rr["values"]), rr["type"], RESOLVER_SAFE_RRSET, DEFAULT_PTR_TEMPLATE, template))


def tls_names(fqdn: str, lb_fqdn: str, mx_target: str) -> list:
    """The names one MTA's TLS certificate carries: its own name first (the subject), then the rest sorted.

    Clients reach the MTA as its pool's load balancer name (HAProxy passes TLS
    through, so the MTA's certificate answers for it), as its own name, and as
    the bounce MX target that names it.
    """
    return [fqdn] + sorted({lb_fqdn, mx_target} - {fqdn})


def build_plan(spec: dict) -> dict:
    """Compute the plan from an inventory spec (see docs/model.md for both shapes)."""
    domain = normalize_fqdn(spec.get("domain"), "platform_domain")
    spf_domain = "%s.%s" % (check_label(spec.get("spf_label", "spf"), "platform_spf_label"), domain)
    bounce_domain = "%s.%s" % (check_label(spec.get("bounce_label", "kb-bounces"), "platform_bounce_label"), domain)
    ttl = spec.get("ttl", 3600)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 60 <= ttl <= 86400:
        raise PlanError("platform_ttl must be a whole number of seconds between 60 and 86400, got %r" % (ttl,))
    template = spec.get("ptr_template") or DEFAULT_PTR_TEMPLATE
    groups = spec.get("groups") or {}
    hosts = spec.get("hosts") or {}

    pools = _pools(spec, groups)
    member = _mta_pools(pools, groups)

    mtas = {}
    for mta in sorted(member):
        hv = hosts.get(mta, {})
        fqdn = normalize_fqdn(hv.get("mta_fqdn") or "%s.%s" % (mta, domain), "mta_fqdn of %s" % mta)
        address = hv.get("mta_address") or hv.get("ansible_host")
        if address is None:
            raise PlanError("MTA %s has no mta_address: set it to the server's main IP" % mta)
        mtas[mta] = {"pool": member[mta], "profile": pools[member[mta]].profile, "fqdn": fqdn,
                     "address": str(parse_address(address, "mta_address of %s" % mta)), "sending_ips": []}

    ptr_map = {}
    for pname, pool in sorted(pools.items()):
        explicit = {}
        for mta in pool.mtas:
            pinned = hosts.get(mta, {}).get("mta_sending_ips")
            if pinned:
                explicit[mta] = expand_addresses(pinned, "mta_sending_ips of %s" % mta)
        for mta, addrs in sorted(split_pool(pool, explicit).items()):
            entries = []
            for index, ip in enumerate(addrs, start=1):
                ptr = _ptr_name(template, mta, mtas[mta]["fqdn"], ip, index, domain)
                entries.append({"ip": str(ip), "ptr": ptr, "helo": ptr, "transport": "kb-%s" % str(ip).replace(".", "-")})
                ptr_map[str(ip)] = ptr
            mtas[mta]["sending_ips"] = entries

    load_balancers, lb_names = {}, {}
    for pname, pool in sorted(pools.items()):
        fqdn = "%s.%s" % (pool.lb_label, domain)
        if fqdn in lb_names:
            raise PlanError("pools %s and %s both answer as %s: give each pool its own lb_label" % (lb_names[fqdn], pname, fqdn))
        lb_names[fqdn] = pname
        for lb in pool.lbs:
            if lb in load_balancers:
                raise PlanError("load balancer %s is in two pools (%s and %s): keep it in one group" % (
                    lb, load_balancers[lb]["pool"], pname))
            hv = hosts.get(lb, {})
            address = hv.get("lb_address") or hv.get("ansible_host")
            if address is None:
                raise PlanError("load balancer %s has no lb_address: set it to its public address" % lb)
            load_balancers[lb] = {
                "pool": pname, "fqdn": fqdn, "address": str(parse_address(address, "lb_address of %s" % lb)),
                "backends": [{"name": m, "fqdn": mtas[m]["fqdn"], "address": mtas[m]["address"]} for m in pool.mtas],
            }

    # The zone of the platform: SPF, bounce domain, load balancers, MTAs.
    # The bounce MX: every MTA receives bounces under its own name.
    bounce_mx = {m: mtas[m]["fqdn"] for m in sorted(mtas)}
    records = [
        _rrset(spf_domain, "TXT", ttl, [spf_record(spf_terms([p.network for p in pools.values()]), spf_domain)]),
        _rrset(bounce_domain, "TXT", ttl, ["v=spf1 include:%s -all" % spf_domain]),
        _rrset(bounce_domain, "MX", ttl, ["10 %s." % target for target in bounce_mx.values()]),
    ]
    for fqdn, pname in sorted(lb_names.items()):
        addrs = sorted({load_balancers[lb]["address"] for lb in pools[pname].lbs}, key=ipaddress.ip_address)
        if addrs:
            records.append(_rrset(fqdn, "A", ttl, addrs))
    # Each sending IP's PTR name gets an A record back to it (forward-confirmed
    # reverse DNS) and an SPF record for the HELO identity (RFC 7208 2.3:
    # bounces the MTAs send have an empty MAIL FROM). Each MTA's own name
    # answers the address it receives mail on (the bounce MX listener), plus
    # any sending IP whose PTR template names the MTA itself.
    by_name = {}
    for mta, conf in sorted(mtas.items()):
        by_name.setdefault(conf["fqdn"], set()).add(conf["address"])
    for ip, ptr in ptr_map.items():
        by_name.setdefault(ptr, set()).add(ip)
    for lb_fqdn in lb_names:
        if lb_fqdn in by_name:
            raise PlanError("%s is both a load balancer name and a PTR name (or an MTA name): change lb_label or platform_ptr_template"
                            % lb_fqdn)
    for name in sorted(by_name):
        if not (name == domain or name.endswith("." + domain)):
            continue  # a PTR template pointing outside the platform zone: its A records live elsewhere
        records.append(_rrset(name, "A", ttl, sorted(by_name[name], key=ipaddress.ip_address)))
        records.append(_rrset(name, "TXT", ttl, ["v=spf1 include:%s -all" % spf_domain]))
    _refuse_oversize(records, template)

    for mta, conf in mtas.items():
        conf["tls_names"] = tls_names(conf["fqdn"], "%s.%s" % (pools[conf["pool"]].lb_label, domain), bounce_mx[mta])

    customers, customer_zones = _customers(spec, pools, domain, bounce_domain, ttl)
    zones = {domain: records}
    zones.update(customer_zones)

    plan = {
        "domain": domain,
        "spf_domain": spf_domain,
        "bounce_domain": bounce_domain,
        "ttl": ttl,
        "pools": {
            name: {
                "subnet": str(p.network), "prefixlen": p.network.prefixlen, "gateway": str(p.gateway),
                "profile": p.profile, "vswitch_vlan": p.vswitch_vlan, "lb_fqdn": "%s.%s" % (p.lb_label, domain),
                "load_balancers": p.lbs, "mtas": p.mtas,
                "sending_ip_count": sum(len(mtas[m]["sending_ips"]) for m in p.mtas),
            }
            for name, p in sorted(pools.items())
        },
        "mtas": mtas,
        "load_balancers": load_balancers,
        "ptr_map": dict(sorted(ptr_map.items(), key=lambda kv: ipaddress.ip_address(kv[0]))),
        "customers": customers,
        "transports": _transports(customers, mtas),
        "bounce_domains": [bounce_domain] + sorted(c["return_path"] for c in customers.values()),
        "zones": zones,
        "placeholders": _placeholders(spec, pools, hosts),
        "warnings": [],
    }
    return plan


def summarize(plan: dict) -> list:
    """Lines a person reads at a glance: records to publish, each MTA's IPs, PTRs."""
    lines = ["platform %s (SPF %s, bounces %s)" % (plan["domain"], plan["spf_domain"], plan["bounce_domain"])]
    for name, pool in plan["pools"].items():
        lines.append("pool %s: %s gateway %s, %d sending IPs, answers as %s via %s" % (
            name, pool["subnet"], pool["gateway"], pool["sending_ip_count"], pool["lb_fqdn"],
            ", ".join(pool["load_balancers"]) or "no load balancer"))
        for mta in pool["mtas"]:
            ips = [e["ip"] for e in plan["mtas"][mta]["sending_ips"]]
            lines.append("  %s (%s, main IP %s): %d IPs %s .. %s" % (
                mta, plan["mtas"][mta]["fqdn"], plan["mtas"][mta]["address"], len(ips), ips[0], ips[-1]))
    for zone, rrsets in plan["zones"].items():
        lines.append("zone %s:" % zone)
        for rr in rrsets:
            values = rr["values"]
            shown = values if len(values) <= 3 else values[:2] + ["... (%d values)" % len(values)]
            lines.append("  %s %d IN %s %s" % (rr["name"] + ".", rr["ttl"], rr["type"], " | ".join(shown)))
    for domain, c in plan["customers"].items():
        lines.append("customer %s: pools %s, DKIM %s, return path %s -> %s, logins %s" % (
            domain, ", ".join(c["pools"]), c["dkim_name"], c["return_path"], c["return_path_target"],
            ", ".join("%s (%s)" % (login["username"], login["pool"]) for login in c["logins"]) or "none"))
    lines.append("PTR records: %d (for example %s)" % (
        len(plan["ptr_map"]), ", ".join("%s -> %s" % kv for kv in list(plan["ptr_map"].items())[:2])))
    for warning in plan["warnings"]:
        lines.append("WARNING: " + warning)
    if plan["placeholders"]:
        lines.append("PLACEHOLDERS LEFT (no playbook will act until they are replaced): " + "; ".join(plan["placeholders"]))
    return lines
