# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The delegation a receiver depends on.

``kbmta.net`` is bought at a registrar, which no Hetzner API does: the registrar
publishes the domain's name servers in the parent zone (``net``). A receiver
finds the platform's names only when that delegation is right, so two checks:

- ``delegation``: the parent zone's NS for the domain (the referral one of the
  parent's servers gives) equal the zone's own NS records;
- ``ns_authoritative``: every name server of the zone answers for it with
  authority (a server that does not is a lame delegation).

The parent's servers and the zone's servers are asked directly, without
recursion, the way a resolver walks down from the root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import (
    ERROR,
    NODATA,
    Resolver,
    normalize_name,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import (
    CheckResult,
    failure,
    ok,
    warning,
)

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdatatype
except ImportError:  # pragma: no cover - verify_dns reports the missing library
    pass

CATEGORY = "platform"
DELEGATION = "delegation"
AUTHORITATIVE = "ns_authoritative"
# Enough servers to get past one that is down; a receiver asks no more either.
MAX_SERVERS = 3


@dataclass(frozen=True)
class DirectAnswer:
    """What one server said to one non-recursive question."""

    rcode: str = ""                  # NOERROR, NXDOMAIN, REFUSED, ...; empty when nothing came back
    authoritative: bool = False      # the AA flag
    answer: Tuple[str, ...] = ()     # NS targets in the answer section, at the asked name
    referral: Tuple[str, ...] = ()   # NS targets in the authority section, at the asked name
    error: str = ""

    def describe(self) -> str:
        if self.error:
            return "no answer (%s)" % self.error
        return "%s%s" % (self.rcode, ", authoritative" if self.authoritative else ", not authoritative")


class Querier:
    """Asks one server directly. Subclasses implement ``ask``."""

    def ask(self, server: str, name: str, rdtype: str) -> DirectAnswer:  # pragma: no cover - interface
        raise NotImplementedError


class DnsPythonQuerier(Querier):
    """Non-recursive questions over UDP (TCP when the answer is truncated)."""

    def __init__(self, port: int = 53, timeout: float = 3.0) -> None:
        self.port = port
        self.timeout = timeout

    def ask(self, server: str, name: str, rdtype: str) -> DirectAnswer:
        owner = dns.name.from_text(normalize_name(name) + ".")
        query = dns.message.make_query(owner, rdtype)
        query.flags &= ~dns.flags.RD
        try:
            response = dns.query.udp(query, server, timeout=self.timeout, port=self.port)
            if response.flags & dns.flags.TC:
                response = dns.query.tcp(query, server, timeout=self.timeout, port=self.port)
        except (dns.exception.DNSException, OSError) as exc:
            return DirectAnswer(error=str(exc) or exc.__class__.__name__)
        return DirectAnswer(rcode=dns.rcode.to_text(response.rcode()),
                            authoritative=bool(response.flags & dns.flags.AA),
                            answer=_ns_targets(response.answer, owner),
                            referral=_ns_targets(response.authority, owner))


def _ns_targets(section, owner) -> Tuple[str, ...]:
    return tuple(sorted({normalize_name(rdata.target.to_text()) for rrset in section
                         if rrset.rdtype == dns.rdatatype.NS and rrset.name == owner for rdata in rrset}))


# --------------------------------------------------------------------------
# the checks

def _addresses(resolver: Resolver, host: str) -> List[str]:
    answer = resolver.lookup(host, "A")
    return list(answer.values) if answer.found else []


def parent_servers(resolver: Resolver, domain: str) -> Tuple[str, List[Tuple[str, str]], str]:
    """The zone above ``domain`` and up to MAX_SERVERS of its (name, address) pairs, or why not.

    Walks up the labels: a name with no NS records (NODATA) is not a zone cut, so the
    next one up is asked. The root is never asked: every top-level domain has servers."""
    labels = normalize_name(domain).split(".")
    for start in range(1, len(labels)):
        parent = ".".join(labels[start:])
        answer = resolver.lookup(parent, "NS")
        if answer.status == NODATA:
            continue
        if not answer.found:
            return parent, [], "the resolver gave no name servers for the parent zone %s (%s)" % (parent, answer.describe())
        servers = [(ns, addr) for ns in sorted(normalize_name(v) for v in answer.values)
                   for addr in _addresses(resolver, ns)[:1]]
        if not servers:
            return parent, [], "no name server of the parent zone %s resolves to an address" % parent
        return parent, servers[:MAX_SERVERS], ""
    return "", [], "%s has no parent zone to ask" % domain


def check_parent_delegation(querier: Querier, domain: str, parent: str, servers: Sequence[Tuple[str, str]],
                            own: Sequence[str]) -> CheckResult:
    """The parent's referral for ``domain`` names exactly the zone's own name servers."""
    registrar_fix = ("at the registrar of %s, set the domain's name servers to exactly %s (the zone's own NS records), "
                     "or change the zone's NS records to the servers the registrar has; the registrar publishes them "
                     "in the %s zone (docs/dns.md, 'The domain')" % (domain, ", ".join(own), parent))
    tried = []
    for ns, addr in servers:
        reply = querier.ask(addr, domain, "NS")
        tried.append("%s (%s): %s" % (ns, addr, reply.describe()))
        if reply.error:
            continue
        if reply.rcode == "NXDOMAIN":
            return failure(CATEGORY, DELEGATION, domain, "the parent zone %s does not delegate %s: %s answers NXDOMAIN; "
                           "no receiver can find any name of the platform" % (parent, domain, ns), registrar_fix)
        delegated = reply.referral or (reply.answer if reply.authoritative else ())
        if not delegated:
            continue
        if set(delegated) == set(own):
            return ok(CATEGORY, DELEGATION, domain, "the parent zone %s delegates %s to %s, as the zone's own NS records say" % (
                parent, domain, ", ".join(delegated)))
        missing = sorted(set(own) - set(delegated))
        extra = sorted(set(delegated) - set(own))
        reason = "the parent zone %s delegates %s to %s, the zone's own NS records are %s" % (
            parent, domain, ", ".join(delegated), ", ".join(own))
        if missing:
            reason += "; not delegated: %s" % ", ".join(missing)
        if extra:
            reason += "; delegated but not in the zone: %s" % ", ".join(extra)
        return failure(CATEGORY, DELEGATION, domain, reason, registrar_fix)
    return warning(CATEGORY, DELEGATION, domain, "no server of the parent zone %s gave a delegation for %s: %s" % (
        parent, domain, "; ".join(tried)), "check the delegation from outside: dig +trace %s NS" % domain)


def check_authoritative(resolver: Resolver, querier: Querier, domain: str, own: Sequence[str]) -> List[CheckResult]:
    """Every name server of the zone answers the zone's SOA with authority."""
    results = []
    for ns in own:
        addresses = _addresses(resolver, ns)[:MAX_SERVERS]
        if not addresses:
            results.append(failure(CATEGORY, AUTHORITATIVE, ns, "name server %s of %s has no address: resolvers cannot ask it" % (
                ns, domain), "publish an A record for %s, or remove it from the NS records of %s and at the registrar" % (ns, domain)))
            continue
        bad = []
        for addr in addresses:
            reply = querier.ask(addr, domain, "SOA")
            if reply.error or reply.rcode != "NOERROR" or not reply.authoritative:
                bad.append("%s: %s" % (addr, reply.describe()))
        if bad:
            results.append(failure(CATEGORY, AUTHORITATIVE, ns, "name server %s does not answer for %s with authority (a lame "
                                   "delegation): %s" % (ns, domain, "; ".join(bad)),
                                   "serve the zone %s on %s (port 53, UDP and TCP), or remove it from the NS records and at "
                                   "the registrar" % (domain, ns)))
        else:
            results.append(ok(CATEGORY, AUTHORITATIVE, ns, "%s answers for %s with authority at %s" % (ns, domain, ", ".join(addresses))))
    return results


def check_delegation(resolver: Resolver, querier: Querier, domain: str) -> List[CheckResult]:
    """The delegation of ``domain`` from its parent zone, and its servers' authority."""
    domain = normalize_name(domain)
    answer = resolver.lookup(domain, "NS")
    if not answer.found:
        status = warning if answer.status == ERROR else failure
        return [status(CATEGORY, DELEGATION, domain, "the zone's own NS records: %s" % answer.describe(),
                       "serve the zone %s with NS records for its name servers" % domain)]
    own = sorted({normalize_name(v) for v in answer.values})
    parent, servers, why = parent_servers(resolver, domain)
    if servers:
        results = [check_parent_delegation(querier, domain, parent, servers, own)]
    else:
        results = [warning(CATEGORY, DELEGATION, domain, "the delegation of %s was not checked: %s" % (domain, why),
                           "ask a resolver that reaches the public DNS (leave verify_nameserver unset), "
                           "or check it with: dig +trace %s NS" % domain)]
    return results + check_authoritative(resolver, querier, domain, own)


def delegation_task(resolver: Resolver, querier: Optional[Querier], domain: str) -> List[CheckResult]:
    """The checks, or nothing when no querier is given (the caller switched them off)."""
    return check_delegation(resolver, querier, domain) if querier is not None and domain else []
