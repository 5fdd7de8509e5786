# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""DNS lookups for the verification checks, behind one small interface.

Every check asks a resolver ``lookup(name, rdtype)`` and gets an ``Answer``
back; it never raises for DNS trouble. ``DnsPythonResolver`` asks a real
server (the system's resolvers or one given address and port);
tests give the checks a resolver of their own.

Values are in presentation form: A ``192.0.2.2``; PTR, CNAME ``name.``
(lower case, absolute); MX ``10 name.``; TXT the strings of one record joined,
unquoted.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

try:
    import dns.exception
    import dns.name
    import dns.rdatatype
    import dns.resolver
    HAS_DNSPYTHON = True
    DNSPYTHON_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the controller
    HAS_DNSPYTHON = False
    DNSPYTHON_IMPORT_ERROR = exc

OK = "ok"
NXDOMAIN = "nxdomain"
NODATA = "nodata"
ERROR = "error"


@dataclass(frozen=True)
class Answer:
    """What a lookup found. ``status`` is ok, nxdomain, nodata or error."""

    name: str
    rdtype: str
    status: str
    values: Tuple[str, ...] = ()
    canonical_name: str = ""
    error: str = ""
    cname: str = ""          # the CNAME target of ``name`` itself, when the answer showed one

    @property
    def found(self) -> bool:
        return self.status == OK and bool(self.values)

    def describe(self) -> str:
        """Half a sentence for a report: what the lookup saw."""
        if self.status == OK:
            return "%s %s is %s" % (self.name, self.rdtype, ", ".join(repr(v) for v in self.values))
        if self.status == NXDOMAIN:
            return "%s does not exist (NXDOMAIN)" % self.name
        if self.status == NODATA:
            return "%s has no %s record" % (self.name, self.rdtype)
        return "the %s lookup of %s failed: %s" % (self.rdtype, self.name, self.error)


def normalize_name(name: str) -> str:
    """Lower case, no trailing dot."""
    return name.strip().rstrip(".").lower()


def absolute(name: str) -> str:
    return normalize_name(name) + "."


def reverse_name(ip: str) -> str:
    """The in-addr.arpa / ip6.arpa name of an address, without trailing dot."""
    return ipaddress.ip_address(ip).reverse_pointer


def txt_text(strings) -> str:
    """The character-strings of one TXT record, joined (RFC 7208 3.3)."""
    return "".join(s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s) for s in strings)


class Resolver:
    """The interface the checks use. Subclasses implement ``lookup``."""

    def lookup(self, name: str, rdtype: str) -> Answer:  # pragma: no cover - interface
        raise NotImplementedError


class DnsPythonResolver(Resolver):
    """Ask a real DNS server through dnspython.

    With ``nameserver`` set, only that address (and ``port``) is asked;
    otherwise the system's configuration (/etc/resolv.conf) is used.
    """

    def __init__(self, nameserver: Optional[str] = None, port: int = 53, timeout: float = 3.0, tries: int = 2,
                 follow_cnames: bool = True) -> None:
        self.follow_cnames = follow_cnames
        if not HAS_DNSPYTHON:
            raise RuntimeError("the Python package dnspython is required on the controller: pip install dnspython")
        if nameserver:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [nameserver]
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.port = port
        # EDNS with the DNS Flag Day 2020 buffer size: DKIM keys fit a UDP answer instead of retrying over TCP.
        self._resolver.use_edns(0, 0, 1232)
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout * max(1, tries)
        self.description = "%s port %d" % (nameserver, port) if nameserver else "the system resolver"

    def lookup(self, name: str, rdtype: str) -> Answer:
        """One lookup. An authoritative server (recursion off) answers a CNAME into another of its
        zones without the target's records: follow such chains here, as a recursive resolver would."""
        qname = normalize_name(name)
        current = qname
        first_cname = ""
        for _hop in range(8):
            answer = self._lookup_once(qname, current, rdtype)
            first_cname = first_cname or answer.cname
            if answer.cname and first_cname != answer.cname:
                answer = Answer(name=answer.name, rdtype=answer.rdtype, status=answer.status, values=answer.values,
                                canonical_name=answer.canonical_name, error=answer.error, cname=first_cname)
            if not self.follow_cnames or answer.status != NODATA or rdtype == "CNAME" or answer.canonical_name in ("", current):
                return answer
            current = answer.canonical_name
        return Answer(name=qname, rdtype=rdtype, status=ERROR, error="CNAME chain longer than 8 names")

    def _lookup_once(self, qname: str, current: str, rdtype: str) -> Answer:
        try:
            answer = self._resolver.resolve(current + ".", rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return Answer(name=qname, rdtype=rdtype, status=NXDOMAIN)
        except dns.resolver.NoNameservers as exc:
            return Answer(name=qname, rdtype=rdtype, status=ERROR, error="no server answered (%s)" % _short(exc))
        except dns.exception.Timeout:
            return Answer(name=qname, rdtype=rdtype, status=ERROR, error="timed out asking %s" % self.description)
        except dns.exception.DNSException as exc:
            return Answer(name=qname, rdtype=rdtype, status=ERROR, error=_short(exc))
        canonical = normalize_name(answer.canonical_name.to_text())
        cname = _first_cname(answer, current) if canonical != current else ""
        if answer.rrset is None:
            return Answer(name=qname, rdtype=rdtype, status=NODATA, canonical_name=canonical, cname=cname)
        values = tuple(_presentation(rdata, rdtype) for rdata in answer.rrset)
        return Answer(name=qname, rdtype=rdtype, status=OK, values=values, canonical_name=canonical, cname=cname)


def _first_cname(answer, owner: str) -> str:
    """The CNAME target of ``owner`` in a response, lower case, no trailing dot."""
    for rrset in answer.response.answer:
        if rrset.rdtype == dns.rdatatype.CNAME and normalize_name(rrset.name.to_text()) == owner:
            for rdata in rrset:
                return normalize_name(rdata.target.to_text())
    return ""


def _short(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _presentation(rdata, rdtype: str) -> str:
    if rdtype == "TXT":
        return txt_text(rdata.strings)
    if rdtype in ("PTR", "CNAME", "NS"):
        return rdata.target.to_text().lower()
    if rdtype == "MX":
        return "%d %s" % (rdata.preference, rdata.exchange.to_text().lower())
    return rdata.to_text()


class CachingResolver(Resolver):
    """Remember answers for one verification run: many checks ask the same names.

    When the inner resolver can leave CNAME chains to it (``follow_cnames``), the chain is
    followed here, so a target many names point to (kb-bounces.kbmta.net) is asked once. An
    answer that shows whether its name is a CNAME also answers the CNAME question for that name.
    """

    def __init__(self, inner: Resolver) -> None:
        self._inner = inner
        self._chase = getattr(inner, "follow_cnames", None) is not None
        if self._chase:
            inner.follow_cnames = False
        self._cache: Dict[Tuple[str, str], Answer] = {}
        self._lock = threading.Lock()
        self.lookups = 0

    def lookup(self, name: str, rdtype: str) -> Answer:
        key = (normalize_name(name), rdtype.upper())
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        answer = self._inner.lookup(key[0], key[1])
        with self._lock:
            self.lookups += 1
        if self._chase and answer.status == NODATA and key[1] != "CNAME" and answer.canonical_name not in ("", key[0]):
            target = self.lookup(answer.canonical_name, key[1])
            answer = Answer(name=key[0], rdtype=key[1], status=target.status, values=target.values,
                            canonical_name=target.canonical_name or answer.canonical_name, error=target.error, cname=answer.cname)
        with self._lock:
            self._cache[key] = answer
            if key[1] != "CNAME" and (key[0], "CNAME") not in self._cache:
                if answer.cname:
                    self._cache[(key[0], "CNAME")] = Answer(name=key[0], rdtype="CNAME", status=OK, values=(answer.cname + ".",),
                                                            canonical_name=key[0])
                elif answer.status in (OK, NODATA) and answer.canonical_name in ("", key[0]):
                    self._cache[(key[0], "CNAME")] = Answer(name=key[0], rdtype="CNAME", status=NODATA, canonical_name=key[0])
                elif answer.status == NXDOMAIN:
                    self._cache[(key[0], "CNAME")] = Answer(name=key[0], rdtype="CNAME", status=NXDOMAIN)
        return answer


class StaticResolver(Resolver):
    """Answers from a fixed set of records: {(name, type): [values]}.

    Follows CNAMEs like a recursive resolver; a name with no record of any
    type is NXDOMAIN, a name with records of other types is NODATA. Useful to
    check a plan against its own record sets before publishing, and in tests.
    """

    def __init__(self, records: Dict[Tuple[str, str], list]) -> None:
        self._records = {(normalize_name(n), t.upper()): tuple(v) for (n, t), v in records.items()}
        self._names = {n for n, _t in self._records}

    def lookup(self, name: str, rdtype: str) -> Answer:
        qname = current = normalize_name(name)
        rdtype = rdtype.upper()
        first = ""
        for _hop in range(8):
            values = self._records.get((current, rdtype))
            if values:
                return Answer(name=qname, rdtype=rdtype, status=OK, values=values, canonical_name=current, cname=first)
            cname = self._records.get((current, "CNAME"))
            if rdtype != "CNAME" and cname:
                current = normalize_name(cname[0])
                first = first or current
                continue
            if current in self._names or any(n.endswith("." + current) for n in self._names):
                return Answer(name=qname, rdtype=rdtype, status=NODATA, canonical_name=current, cname=first)
            return Answer(name=qname, rdtype=rdtype, status=NXDOMAIN, cname=first)
        return Answer(name=qname, rdtype=rdtype, status=ERROR, error="CNAME chain longer than 8")
