# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The DNS side of verification: what a receiver sees of the platform.

Each check is a function of the plan, a resolver and (for SPF) an evaluator,
and returns ``CheckResult`` values with a reason and, when it is not OK, the
change that fixes it. Expectations come from the plan (its record sets when it
has them); nothing here recomputes a platform fact. ``run_dns_checks`` runs
them all concurrently over a caching resolver.
"""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.kibamail.email_platform.plugins.module_utils.plan import RESOLVER_SAFE_RRSET
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dkim import (
    MIN_KEY_BITS,
    DkimKeyError,
    dkim_txt_value,
    fingerprint,
    key_bits,
    key_text_to_der,
    parse_tags,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_blocklist import (
    DOMAIN_KIND,
    IP_KIND,
    Listing,
    Zone,
    blocklist_domains,
    check_subject,
    zone_checks,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_delegation import Querier, delegation_task
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import (
    ERROR,
    OK,
    Answer,
    CachingResolver,
    Resolver,
    absolute,
    normalize_name,
    reverse_name,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import (
    CheckResult,
    failure,
    ok,
    sort_results,
    warning,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_spf import (
    MAX_LOOKUPS,
    MAX_RECORD_BYTES,
    SpfEvaluator,
    all_qualifier,
    spf_records,
)

PLATFORM = "platform"
IP = "ip"
CUSTOMER = "customer"
# Not a report category: selects the blocklist lookups alone (they are part of ip and platform too),
# for a frequent scheduled run (docs/operations.md, "Blocklists").
BLOCKLIST = "blocklist"
DNS_CATEGORIES = (PLATFORM, IP, CUSTOMER)
# BIND 9.18.28+ (max-records-per-type, CVE-2024-1737) refuses to load or cache more
# records of one type at one name by default; resolvers built on it answer SERVFAIL.
# The plan refuses to publish such a set; the same limit judges what is published.
MAX_RRSET_RECORDS = RESOLVER_SAFE_RRSET
DMARC_POLICY_MEANING = {
    "none": "receivers only report, they take no action on mail that fails DMARC",
    "quarantine": "receivers put mail that fails DMARC in spam",
    "reject": "receivers refuse mail that fails DMARC",
}


@dataclass
class DnsOptions:
    """What the DNS checks need besides the plan and the resolver."""

    dkim_public_keys: Dict[str, str] = field(default_factory=dict)
    dnsbl_zones: List[str] = field(default_factory=list)
    # Domain blocklists (RFC 5782 name lists): the platform's domain and bounce domains are looked up.
    dnsbl_domain_zones: List[str] = field(default_factory=list)
    categories: Sequence[str] = DNS_CATEGORIES
    workers: int = 32
    # Asks name servers directly for the delegation checks (verify_delegation); None skips them.
    querier: Optional[Querier] = None
    # Filled by run_dns_checks: every blocklist zone and every (subject, zone) answer, for the metrics export.
    blocklist_zones: List[Zone] = field(default_factory=list)
    listings: List[Listing] = field(default_factory=list)


@dataclass(frozen=True)
class SendingIp:
    ip: str
    mta: str
    pool: str
    ptr: str
    helo: str


# --------------------------------------------------------------------------
# reading the plan

def sending_ips(plan: dict, pool: Optional[str] = None) -> List[SendingIp]:
    found = []
    for mta, conf in sorted(plan.get("mtas", {}).items()):
        if pool is not None and conf.get("pool") != pool:
            continue
        for entry in conf.get("sending_ips", []):
            found.append(SendingIp(ip=entry["ip"], mta=mta, pool=conf.get("pool", ""),
                                   ptr=normalize_name(entry["ptr"]), helo=normalize_name(entry.get("helo", entry["ptr"]))))
    return sorted(found, key=lambda s: ipaddress.ip_address(s.ip))


def planned_values(plan: dict, name: str, rdtype: str) -> Optional[List[str]]:
    """The values the plan publishes for (name, type), or None when it publishes none."""
    name = normalize_name(name)
    for rrsets in plan.get("zones", {}).values():
        for rrset in rrsets:
            if normalize_name(rrset["name"]) == name and rrset["type"].upper() == rdtype:
                return list(rrset["values"])
    return None


def publish_hint(plan: dict, name: str) -> str:
    """Who publishes a name: the platform (re-apply) or a customer (ask them)."""
    name = normalize_name(name)
    for domain, conf in plan.get("customers", {}).items():
        if name == domain or name.endswith("." + domain):
            if conf.get("zone_managed"):
                return "the platform manages the zone %s: re-apply the DNS records (playbooks/dns.yml)" % domain
            return "the zone %s is the customer's: ask them to publish it" % domain
    return "re-apply the platform's DNS records (playbooks/dns.yml)"


def ranges(ips: Sequence[str]) -> str:
    """Addresses as runs of consecutive addresses: 192.0.2.2-192.0.2.254, 198.51.100.7."""
    addrs = sorted({ipaddress.ip_address(ip) for ip in ips})
    runs: List[List] = []
    for addr in addrs:
        if runs and int(addr) == int(runs[-1][1]) + 1:
            runs[-1][1] = addr
        else:
            runs.append([addr, addr])
    return ", ".join(str(a) if a == b else "%s-%s" % (a, b) for a, b in runs)


_MEMBERS: Dict[int, Tuple[dict, Dict[str, frozenset]]] = {}


def pool_members(plan: dict) -> Dict[str, frozenset]:
    """The sending IPs of each pool, computed once per plan object (the cache holds the plan, so its id stays its own)."""
    cached = _MEMBERS.get(id(plan))
    if cached is None or cached[0] is not plan:
        cached = (plan, {name: frozenset(e.ip for e in sending_ips(plan, name)) for name in plan.get("pools", {})})
        _MEMBERS.clear()
        _MEMBERS[id(plan)] = cached
    return cached[1]


def describe_ips(plan: dict, ips: Sequence[str]) -> str:
    """Addresses named by pool where a whole pool is meant: 'all 253 sending IPs of pool marketing (203.0.113.0/24)'."""
    wanted = set(ips)
    parts, rest = [], set(wanted)
    for name, pool in sorted(plan.get("pools", {}).items()):
        members = pool_members(plan).get(name, frozenset())
        if members and members <= wanted:
            parts.append("all %d sending IPs of pool %s (%s)" % (len(members), name, pool.get("subnet", "")))
            rest -= members
    if rest:
        parts.append(ranges(sorted(rest)))
    return "; ".join(parts)


def spf_terms_for(plan: dict, ips: Sequence[str]) -> str:
    """ip4: terms that would cover the addresses: a pool's subnet when all of it is meant."""
    wanted, terms = set(ips), []
    for name, pool in sorted(plan.get("pools", {}).items()):
        members = pool_members(plan).get(name, frozenset())
        if members and members <= wanted and pool.get("subnet"):
            terms.append("ip4:%s" % pool["subnet"])
            wanted -= members
    nets = ipaddress.collapse_addresses(ipaddress.ip_network(ip) for ip in wanted)
    terms.extend("ip4:%s" % (n.network_address if n.num_addresses == 1 else n) for n in nets)
    return " ".join(terms)


def _lookup_failed(category: str, check: str, subject: str, answer: Answer) -> CheckResult:
    return warning(category, check, subject, "not checked: %s" % answer.describe(),
                   "make the name server answer for %s, then run the verification again" % answer.name)


# --------------------------------------------------------------------------
# SPF

def check_spf_record(resolver: Resolver, evaluator: SpfEvaluator, plan: dict, domain: str, probe_ip: Optional[str]) -> CheckResult:
    """One valid SPF record at ``domain``: within the lookup and size limits, ending in -all."""
    check = "spf_record"
    answer = resolver.lookup(domain, "TXT")
    planned = [v for v in (planned_values(plan, domain, "TXT") or []) if v.lower().startswith("v=spf1")]
    publish = "publish %s TXT %r (%s)" % (domain, planned[0], publish_hint(plan, domain)) if planned else \
        "publish one TXT record 'v=spf1 ... -all' at %s listing every sending subnet" % domain
    if answer.status == ERROR:
        return _lookup_failed(PLATFORM, check, domain, answer)
    records = spf_records(answer.values)
    if not records:
        return failure(PLATFORM, check, domain, "no SPF record: %s; receivers get SPF none for every message" % answer.describe(), publish)
    if len(records) > 1:
        return failure(PLATFORM, check, domain, "%d SPF records (%s): receivers return permerror (RFC 7208 4.5)" % (
            len(records), " | ".join(records)), "keep exactly one: " + publish)
    record = records[0]
    size = len(record.encode("utf-8"))
    problems: List[str] = []
    outcome = evaluator.evaluate(probe_ip, domain) if probe_ip else None
    if outcome is not None and outcome.result == "permerror":
        return failure(PLATFORM, check, domain, "the record %r is invalid: %s (receivers return permerror)" % (
            record, outcome.explanation), publish)
    lookups = outcome.lookups if outcome is not None else 0
    if lookups > MAX_LOOKUPS:
        return failure(PLATFORM, check, domain, "evaluating %r takes %d DNS lookups, over the limit of %d (RFC 7208 4.6.4)" % (
            record, lookups, MAX_LOOKUPS), "replace include/a/mx terms with ip4: ranges: " + publish)
    qualifier = all_qualifier(record)
    if qualifier == "+":
        return failure(PLATFORM, check, domain, "%r ends in +all: every host on the Internet passes" % record, publish)
    if size > MAX_RECORD_BYTES:
        problems.append("it is %d bytes, over the %d that keep the answer within one UDP packet (RFC 7208 3.4)" % (size, MAX_RECORD_BYTES))
    if qualifier in (None, "?"):
        problems.append("it ends in %s, so mail from other hosts gets neutral instead of fail" % ("?all" if qualifier else "no all term"))
    if planned and record != planned[0]:
        problems.append("it differs from the plan's %r" % planned[0])
    summary = "%r: %d bytes, %d of %d DNS lookups" % (record, size, lookups, MAX_LOOKUPS)
    if problems:
        return warning(PLATFORM, check, domain, summary + "; but " + "; ".join(problems), publish)
    return ok(PLATFORM, check, domain, summary)


def check_spf_covers(evaluator: SpfEvaluator, plan: dict, category: str, check: str, domain: str,
                     ips: Sequence[SendingIp], what: str) -> CheckResult:
    """SPF of ``domain`` passes for every one of ``ips`` (evaluated as a receiver would)."""
    if not ips:
        return warning(category, check, domain, "no sending IP to evaluate %s for" % what, "add sending IPs to the pool in the inventory")
    by_result: Dict[str, List[str]] = {}
    explanations: Dict[str, str] = {}
    for entry, outcome in zip(ips, evaluator.evaluate_many([(e.ip, e.helo) for e in ips], domain)):
        by_result.setdefault(outcome.result, []).append(entry.ip)
        explanations.setdefault(outcome.result, outcome.explanation)
    passed = len(by_result.pop("pass", []))
    if not by_result:
        return ok(category, check, domain, "SPF passes for all %d sending IPs of %s (%s)" % (len(ips), what, describe_ips(plan, [e.ip for e in ips])))
    parts = ["%s for %d IPs (%s)%s" % (result, len(bad), describe_ips(plan, bad), (": " + explanations[result]) if explanations[result] else "")
             for result, bad in sorted(by_result.items())]
    missing = [ip for result, bad in by_result.items() if result in ("fail", "softfail", "neutral", "none") for ip in bad]
    temp = set(by_result) == {"temperror"}
    reason = "SPF of %s passes for %d of %d sending IPs of %s; %s" % (domain, passed, len(ips), what, "; ".join(parts))
    planned = [v for v in (planned_values(plan, domain, "TXT") or []) if v.lower().startswith("v=spf1")]
    if missing and planned:
        fix = "the record must cover %s: publish %s TXT %r (%s)" % (
            spf_terms_for(plan, missing), domain, planned[0], publish_hint(plan, domain))
    elif missing:
        fix = "add %s to the SPF record that %s uses (%s)" % (spf_terms_for(plan, missing), domain, publish_hint(plan, domain))
    else:
        fix = "make the SPF record of %s valid and reachable: %s" % (domain, publish_hint(plan, domain))
    if temp:
        return warning(category, check, domain, reason, fix)
    return failure(category, check, domain, reason, fix)


# --------------------------------------------------------------------------
# platform names

def check_records(resolver: Resolver, plan: dict, check: str, name: str, rdtype: str, expected: Sequence[str],
                  what: str) -> CheckResult:
    """The published values of (name, type) hold every expected value; extras are warned about."""
    answer = resolver.lookup(name, rdtype)
    shown = ", ".join(expected)
    fix = "publish %s %s %s (%s)" % (name, rdtype, shown, publish_hint(plan, name))
    if answer.status == ERROR:
        return _lookup_failed(PLATFORM, check, name, answer)
    if not answer.found:
        return failure(PLATFORM, check, name, "%s: %s" % (what, answer.describe()), fix)
    want = {_norm_value(v, rdtype) for v in expected}
    have = {_norm_value(v, rdtype) for v in answer.values}
    missing, extra = sorted(want - have), sorted(have - want)
    if missing:
        return failure(PLATFORM, check, name, "%s: %s lacks %s" % (what, answer.describe(), ", ".join(missing)), fix)
    if len(have) > MAX_RRSET_RECORDS:
        return oversize(check, name, rdtype, len(have), what)
    if extra:
        return warning(PLATFORM, check, name, "%s: %s also has %s, which the plan does not" % (what, answer.describe(), ", ".join(extra)),
                       "remove %s from %s %s" % (", ".join(extra), name, rdtype))
    return ok(PLATFORM, check, name, "%s: %s %s is %s" % (what, name, rdtype, _shorten(sorted(have))))


def oversize(check: str, name: str, rdtype: str, count: int, what: str) -> CheckResult:
    """A record set larger than stock resolvers accept: a failure, with the fix."""
    return failure(PLATFORM, check, name, "%s: %s has %d %s records, more than the %d that resolvers running BIND 9.18.28 or later "
                   "(Debian 12's included) accept at one name (max-records-per-type): they answer SERVFAIL, so receivers behind "
                   "them cannot resolve %s" % (what, name, count, rdtype, MAX_RRSET_RECORDS, name),
                   "give each sending IP a name of its own (platform_ptr_template: '{ip_dashed}.{mta_fqdn}', the default) so that "
                   "each MTA name carries only the address it receives mail on, then run playbooks/dns.yml and playbooks/network.yml")


def _shorten(values: List[str], shown: int = 4) -> str:
    if len(values) <= shown:
        return ", ".join(values)
    return "%s ... (%d values)" % (", ".join(values[:shown]), len(values))


def _norm_value(value: str, rdtype: str) -> str:
    if rdtype == "MX":
        pref, host = value.split(None, 1)
        return "%s %s" % (int(pref), absolute(host))
    if rdtype in ("CNAME", "PTR", "NS"):
        return absolute(value)
    return value.strip()


def check_mx_hosts(resolver: Resolver, plan: dict, domain: str) -> List[CheckResult]:
    """Every MX host of the bounce domain resolves to an address."""
    answer = resolver.lookup(domain, "MX")
    results = []
    for value in answer.values if answer.status == OK else ():
        host = normalize_name(value.split(None, 1)[1])
        a = resolver.lookup(host, "A")
        if a.found and len(a.values) > MAX_RRSET_RECORDS:
            results.append(oversize("bounce_mx_host", host, "A", len(a.values), "MX host of %s" % domain))
        elif a.found:
            results.append(ok(PLATFORM, "bounce_mx_host", host, "MX host of %s resolves: %s" % (domain, ", ".join(a.values))))
        elif a.status == ERROR:
            results.append(_lookup_failed(PLATFORM, "bounce_mx_host", host, a))
        else:
            results.append(failure(PLATFORM, "bounce_mx_host", host, "MX host of %s does not resolve: %s; bounces cannot be delivered" % (
                domain, a.describe()), "publish an A record for %s (%s)" % (host, publish_hint(plan, host))))
    return results


def platform_checks(resolver: Resolver, evaluator: SpfEvaluator, plan: dict) -> List[Callable[[], List[CheckResult]]]:
    ips = sending_ips(plan)
    probe = ips[0].ip if ips else None
    spf_domain, bounce = plan["spf_domain"], plan["bounce_domain"]
    tasks: List[Callable[[], List[CheckResult]]] = [
        lambda: [check_spf_record(resolver, evaluator, plan, spf_domain, probe)],
        lambda: [check_spf_covers(evaluator, plan, PLATFORM, "spf_covers_sending_ips", spf_domain, ips, "the platform")],
        lambda: [check_spf_record(resolver, evaluator, plan, bounce, probe)],
        lambda: [check_spf_covers(evaluator, plan, PLATFORM, "spf_covers_sending_ips", bounce, ips, "the platform")],
    ]
    mx = planned_values(plan, bounce, "MX") or ["10 %s." % m["fqdn"] for _n, m in sorted(plan.get("mtas", {}).items())]
    tasks.append(lambda: [check_records(resolver, plan, "bounce_mx", bounce, "MX", mx, "MX of the bounce domain")]
                 + check_mx_hosts(resolver, plan, bounce))
    lb_names: Dict[str, List[str]] = {}
    for lb in plan.get("load_balancers", {}).values():
        lb_names.setdefault(lb["fqdn"], []).append(lb["address"])
    for name, addrs in sorted(lb_names.items()):
        want = planned_values(plan, name, "A") or sorted(set(addrs))
        tasks.append(lambda name=name, want=want: [check_records(resolver, plan, "lb_a", name, "A", want, "load balancer name")])
    for mta, conf in sorted(plan.get("mtas", {}).items()):
        fqdn = normalize_name(conf["fqdn"])
        want = planned_values(plan, fqdn, "A") or [e["ip"] for e in conf.get("sending_ips", []) if normalize_name(e["ptr"]) == fqdn] \
            or [conf["address"]]
        tasks.append(lambda fqdn=fqdn, want=want, mta=mta: [check_records(resolver, plan, "mta_a", fqdn, "A", want, "MTA %s" % mta)])
    return tasks


# --------------------------------------------------------------------------
# per sending IP

def check_ptr(resolver: Resolver, entry: SendingIp) -> Tuple[CheckResult, List[str]]:
    answer = resolver.lookup(reverse_name(entry.ip), "PTR")
    fix = "set the reverse DNS (PTR) of %s to %s (Hetzner Robot rDNS: playbooks/network.yml applies the plan's PTRs)" % (entry.ip, entry.ptr)
    if answer.status == ERROR:
        return _lookup_failed(IP, "ptr", entry.ip, answer), []
    names = [normalize_name(v) for v in answer.values] if answer.status == OK else []
    if not names:
        return failure(IP, "ptr", entry.ip, "%s (MTA %s) has no PTR record: receivers distrust or refuse mail from an IP "
                       "without reverse DNS" % (entry.ip, entry.mta), fix), []
    if names != [entry.ptr]:
        if entry.ptr in names:
            return warning(IP, "ptr", entry.ip, "%s has %d PTR records (%s); receivers may pick any" % (
                entry.ip, len(names), ", ".join(names)), "keep only %s" % entry.ptr), names
        return failure(IP, "ptr", entry.ip, "the PTR of %s is %s, the plan says %s (the HELO name of MTA %s)" % (
            entry.ip, ", ".join(names), entry.ptr, entry.mta), fix), names
    return ok(IP, "ptr", entry.ip, "PTR %s -> %s" % (entry.ip, entry.ptr)), names


def check_fcrdns(resolver: Resolver, plan: dict, entry: SendingIp, ptr_names: List[str]) -> CheckResult:
    if not ptr_names:
        return warning(IP, "fcrdns", entry.ip, "not checked: %s has no PTR (see the ptr check)" % entry.ip,
                       "set the PTR of %s to %s first" % (entry.ip, entry.ptr))
    for name in ptr_names:
        answer = resolver.lookup(name, "A")
        if answer.status == ERROR:
            return _lookup_failed(IP, "fcrdns", entry.ip, answer)
        if entry.ip in answer.values:
            return ok(IP, "fcrdns", entry.ip, "forward-confirmed: %s -> %s -> %s" % (entry.ip, name, entry.ip))
    name = ptr_names[0]
    return failure(IP, "fcrdns", entry.ip, "not forward-confirmed: the PTR name %s does not resolve back to %s (%s)" % (
        name, entry.ip, resolver.lookup(name, "A").describe()),
        "publish %s A %s (%s)" % (name, entry.ip, publish_hint(plan, name)))


def check_helo(evaluator: SpfEvaluator, entry: SendingIp, ptr_names: List[str]) -> CheckResult:
    if ptr_names and entry.helo not in ptr_names:
        return failure(IP, "helo", entry.ip, "MTA %s greets as %s from %s, but the PTR is %s" % (
            entry.mta, entry.helo, entry.ip, ", ".join(ptr_names)),
            "make the PTR of %s %s (the HELO name comes from the plan)" % (entry.ip, entry.helo))
    outcome = evaluator.evaluate(entry.ip, entry.helo, helo=entry.helo, mail_from=False)
    if outcome.result == "pass":
        return ok(IP, "helo", entry.ip, "HELO %s matches the PTR and its SPF passes" % entry.helo)
    if outcome.result in ("none", "neutral"):
        return warning(IP, "helo", entry.ip, "HELO %s matches the PTR but its SPF gives %s: bounces (empty MAIL FROM) "
                       "are checked against the HELO name (RFC 7208 2.3)" % (entry.helo, outcome.result),
                       "publish %s TXT 'v=spf1 include:<the platform SPF domain> -all' (playbooks/dns.yml)" % entry.helo)
    if outcome.result == "temperror":
        return warning(IP, "helo", entry.ip, "SPF of the HELO name %s could not be evaluated: %s" % (entry.helo, outcome.explanation),
                       "make the name server answer for %s, then run the verification again" % entry.helo)
    return failure(IP, "helo", entry.ip, "SPF of the HELO name %s gives %s for %s: %s" % (
        entry.helo, outcome.result, entry.ip, outcome.explanation),
        "make the SPF record of %s cover %s (playbooks/dns.yml)" % (entry.helo, entry.ip))


def ip_task(resolver: Resolver, evaluator: SpfEvaluator, plan: dict, entry: SendingIp) -> List[CheckResult]:
    ptr_result, names = check_ptr(resolver, entry)
    return [ptr_result, check_fcrdns(resolver, plan, entry, names), check_helo(evaluator, entry, names)]


# --------------------------------------------------------------------------
# per customer

def check_dkim(resolver: Resolver, plan: dict, domain: str, conf: dict, key_text: Optional[str]) -> List[CheckResult]:
    name = conf["dkim_name"]
    signing = None
    signing_error = ""
    if key_text:
        try:
            signing = key_text_to_der(key_text)
        except DkimKeyError as exc:
            signing_error = "the signing key given for %s cannot be read: %s" % (domain, exc)
    publish = "publish %s TXT %r (%s)" % (name, dkim_txt_value(signing), publish_hint(plan, name)) if signing else \
        "publish the public key the MTAs sign %s with at %s TXT (%s)" % (domain, name, publish_hint(plan, name))
    answer = resolver.lookup(name, "TXT")
    if answer.status == ERROR:
        return [_lookup_failed(CUSTOMER, "dkim", domain, answer)]
    records = [v for v in answer.values if "p=" in v]
    if not records:
        return [failure(CUSTOMER, "dkim", domain, "no DKIM key at %s: %s; every signature of %s fails" % (
            name, answer.describe(), domain), publish)]
    if len(records) > 1:
        return [failure(CUSTOMER, "dkim", domain, "%d DKIM records at %s: verifiers fail when they pick the wrong one" % (
            len(records), name), "keep one: " + publish)]
    try:
        tags = parse_tags(records[0])
        if tags.get("v", "DKIM1") != "DKIM1":
            raise DkimKeyError("v=%s, it must be DKIM1 (or absent)" % tags["v"])
        published = key_text_to_der(records[0])
    except DkimKeyError as exc:
        return [failure(CUSTOMER, "dkim", domain, "the DKIM record at %s is unusable: %s" % (name, exc), publish)]
    results = []
    if signing is not None and published != signing:
        results.append(failure(CUSTOMER, "dkim", domain, "the key at %s (%s) is not the key the MTAs sign with (%s): "
                               "every signature of %s fails" % (name, fingerprint(published), fingerprint(signing), domain), publish))
    elif signing is not None:
        results.append(ok(CUSTOMER, "dkim", domain, "%s publishes the signing key (%s)" % (name, fingerprint(published))))
    else:
        results.append(warning(CUSTOMER, "dkim", domain, "%s publishes a key (%s) but it was not compared: %s" % (
            name, fingerprint(published), signing_error or "no signing key was given for %s" % domain),
            "pass the MTAs' public key for %s (dkim_public_keys)" % domain))
    results.append(check_key_size(domain, name, tags, published))
    return results


def check_key_size(domain: str, name: str, tags: Dict[str, str], der: bytes) -> CheckResult:
    algorithm = tags.get("k", "rsa")
    if algorithm == "ed25519":
        return ok(CUSTOMER, "dkim_key_size", domain, "%s is an Ed25519 key" % name)
    try:
        bits = key_bits(der)
    except DkimKeyError as exc:
        return failure(CUSTOMER, "dkim_key_size", domain, "the key at %s cannot be read: %s" % (name, exc),
                       "publish a 2048-bit RSA public key at %s" % name)
    if bits is None:
        return warning(CUSTOMER, "dkim_key_size", domain, "not checked: the Python package cryptography is missing",
                       "pip install cryptography on the controller")
    if bits < MIN_KEY_BITS:
        return failure(CUSTOMER, "dkim_key_size", domain, "the key at %s is %d bits; receivers want at least %d (RFC 8301)" % (
            name, bits, MIN_KEY_BITS), "generate a %d-bit key for %s under a new selector, publish it, then switch the MTAs to it" % (
            MIN_KEY_BITS, domain))
    return ok(CUSTOMER, "dkim_key_size", domain, "%s: %d-bit RSA" % (name, bits))


def check_return_path(resolver: Resolver, plan: dict, domain: str, conf: dict) -> CheckResult:
    name, target = conf["return_path"], normalize_name(conf["return_path_target"])
    fix = "publish %s CNAME %s. (%s)" % (name, target, publish_hint(plan, name))
    answer = resolver.lookup(name, "CNAME")
    if answer.status == ERROR:
        return _lookup_failed(CUSTOMER, "return_path", domain, answer)
    if not answer.found:
        return failure(CUSTOMER, "return_path", domain, "the return-path domain %s is not a CNAME to %s: %s; bounces to it "
                       "are lost and SPF of the envelope sender fails" % (name, target, answer.describe()), fix)
    got = normalize_name(answer.values[0])
    if got != target:
        return failure(CUSTOMER, "return_path", domain, "%s is a CNAME to %s, not %s" % (name, got, target), fix)
    return ok(CUSTOMER, "return_path", domain, "%s CNAME %s" % (name, target))


def check_dmarc(resolver: Resolver, plan: dict, domain: str, conf: dict) -> List[CheckResult]:
    name = conf["dmarc_name"]
    planned = conf.get("dmarc_value", "")
    publish = "publish %s TXT %r (%s)" % (name, planned, publish_hint(plan, name)) if planned else \
        "publish %s TXT 'v=DMARC1; p=none; rua=mailto:...'" % name
    answer = resolver.lookup(name, "TXT")
    if answer.status == ERROR:
        return [_lookup_failed(CUSTOMER, "dmarc", domain, answer)]
    records = [v for v in answer.values if v.replace(" ", "").upper().startswith("V=DMARC1")]
    if not records:
        return [failure(CUSTOMER, "dmarc", domain, "no DMARC record at %s: %s; large mailbox providers require one "
                        "from bulk senders" % (name, answer.describe()), publish)]
    if len(records) > 1:
        return [failure(CUSTOMER, "dmarc", domain, "%d DMARC records at %s: receivers ignore them all (RFC 7489 6.6.3)" % (
            len(records), name), "keep one: " + publish)]
    try:
        tags = parse_tags(records[0])
    except DkimKeyError as exc:
        return [failure(CUSTOMER, "dmarc", domain, "the DMARC record at %s cannot be parsed: %s" % (name, exc), publish)]
    policy = tags.get("p", "").lower()
    if policy not in DMARC_POLICY_MEANING:
        return [failure(CUSTOMER, "dmarc", domain, "the DMARC record %r has p=%r; it must be none, quarantine or reject" % (
            records[0], policy), publish)]
    reason = "p=%s: %s" % (policy, DMARC_POLICY_MEANING[policy])
    if tags.get("pct", "100") != "100":
        reason += "; pct=%s applies it to that share of failing mail only" % tags["pct"]
    reason += "; aggregate reports go to %s" % tags["rua"] if tags.get("rua") else "; no rua= tag, so nobody receives aggregate reports"
    results = []
    planned_policy = parse_tags(planned).get("p", "") if planned else ""
    if planned_policy and planned_policy != policy:
        results.append(warning(CUSTOMER, "dmarc", domain, reason + "; the plan says p=%s" % planned_policy, publish))
    elif policy == "none":
        results.append(warning(CUSTOMER, "dmarc", domain, reason, "once the aggregate reports show all legitimate mail aligned, "
                               "raise dmarc_policy of %s to quarantine, then reject" % domain))
    else:
        results.append(ok(CUSTOMER, "dmarc", domain, reason))
    results.append(check_alignment(domain, conf, tags))
    return results


def check_alignment(domain: str, conf: dict, tags: Dict[str, str]) -> CheckResult:
    """Explain how the platform's mail aligns: DKIM d= is the From domain; the MAIL FROM is a subdomain of it."""
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    rp = conf["return_path"]
    dkim_part = "DKIM aligns (the MTAs sign with d=%s, the From domain; adkim=%s)" % (domain, adkim)
    if aspf == "s":
        return warning(CUSTOMER, "dmarc_alignment", domain, dkim_part + "; SPF does not: the envelope sender %s is a subdomain "
                       "of %s and aspf=s wants the exact domain, so DMARC rests on DKIM alone" % (rp, domain),
                       "set aspf=r in the DMARC record of %s" % domain)
    return ok(CUSTOMER, "dmarc_alignment", domain, dkim_part + "; SPF aligns too (the envelope sender %s shares the "
              "organizational domain %s; aspf=r)" % (rp, domain))


def customer_task(resolver: Resolver, evaluator: SpfEvaluator, plan: dict, domain: str, keys: Dict[str, str],
                  pool_ips: Dict[str, List[SendingIp]]) -> List[CheckResult]:
    conf = plan["customers"][domain]
    results = check_dkim(resolver, plan, domain, conf, keys.get(domain))
    # SPF first: its TXT answer also tells whether the return path is a CNAME, so the next check asks nothing.
    # Every stream (pool) the domain sends on must pass SPF for its return path.
    streams = conf.get("pools") or [conf["pool"]]
    spf_result = check_spf_covers(evaluator, plan, CUSTOMER, "return_path_spf", conf["return_path"],
                                  [ip for p in streams for ip in pool_ips.get(p, [])],
                                  "pool%s %s" % ("s" if len(streams) > 1 else "", ", ".join(streams)))
    results.append(CheckResult(check=spf_result.check, subject=domain, status=spf_result.status, reason=spf_result.reason,
                               fix=spf_result.fix, category=CUSTOMER))
    results.append(check_return_path(resolver, plan, domain, conf))
    results.extend(check_dmarc(resolver, plan, domain, conf))
    return results


# --------------------------------------------------------------------------
# running everything

def preflight(resolver: Resolver, plan: dict) -> Optional[str]:
    """Why the DNS checks cannot run at all (the server does not answer), or None.

    Asked once before thousands of lookups, so an unreachable server fails in seconds, not minutes."""
    domain = plan.get("domain") or plan.get("spf_domain", "")
    answer = resolver.lookup(domain, "SOA")
    if answer.status == ERROR:
        return "the name server does not answer (%s): check verify_nameserver / the module's nameserver and port" % answer.error
    return None


def blocklist_tasks(resolver: Resolver, plan: dict, options: DnsOptions, results: List[CheckResult]) -> List[Callable[[], List[CheckResult]]]:
    """Check the zones now (their results go to ``results``); a task per subject for the usable ones.

    Each task keeps its listings in ``options.listings`` (list.append is atomic across the workers)."""
    tasks: List[Callable[[], List[CheckResult]]] = []
    options.blocklist_zones.clear()
    options.listings.clear()
    subjects = [(IP, IP_KIND, options.dnsbl_zones, [e.ip for e in sending_ips(plan)]),
                (PLATFORM, DOMAIN_KIND, options.dnsbl_domain_zones, blocklist_domains(plan))]
    for category, kind, configured, names in subjects:
        zones, zone_results = zone_checks(resolver, configured, kind)
        options.blocklist_zones.extend(zones)
        results.extend(zone_results)
        usable = [z.name for z in zones if z.usable]
        if not usable:
            continue
        for name in names:
            def task(name=name, category=category, kind=kind, usable=usable) -> List[CheckResult]:
                result, listings = check_subject(resolver, category, name, kind, usable)
                for listing in listings:
                    options.listings.append(listing)
                return [result]
            tasks.append(task)
    return tasks


def run_dns_checks(plan: dict, resolver: Resolver, options: Optional[DnsOptions] = None) -> List[CheckResult]:
    """Every DNS check of the plan, concurrently; results sorted by category, check, subject."""
    options = options or DnsOptions()
    cached = CachingResolver(resolver)
    evaluator = SpfEvaluator(cached)
    tasks: List[Callable[[], List[CheckResult]]] = []
    results: List[CheckResult] = []
    if PLATFORM in options.categories:
        tasks.extend(platform_checks(cached, evaluator, plan))
        tasks.append(lambda: delegation_task(cached, options.querier, plan.get("domain", "")))
    if IP in options.categories or BLOCKLIST in options.categories:
        tasks.extend(blocklist_tasks(cached, plan, options, results))
    if IP in options.categories:
        for entry in sending_ips(plan):
            tasks.append(lambda entry=entry: ip_task(cached, evaluator, plan, entry))
    if CUSTOMER in options.categories:
        pool_ips = {name: sending_ips(plan, name) for name in plan.get("pools", {})}
        for domain in sorted(plan.get("customers", {})):
            tasks.append(lambda domain=domain: customer_task(cached, evaluator, plan, domain, options.dkim_public_keys, pool_ips))
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        for found in pool.map(lambda task: task(), tasks):
            results.extend(found)
    return sort_results(results)
