# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""SPF evaluated the way a receiver does it: pyspf over our resolver.

pyspf resolves names through its module-level ``DNSLookup`` function. We
replace it once with a function that asks the resolver of the calling
thread (set by ``SpfEvaluator`` around each evaluation) and falls back to
pyspf's own lookup when no evaluation of ours is running. Results are
remembered per (published SPF text, IP) when no record seen during the
evaluation uses macros, so thousands of domains that share one SPF chain
cost one evaluation per IP.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import (
    ERROR,
    Resolver,
    normalize_name,
)

try:
    import spf
    HAS_PYSPF = True
    PYSPF_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the controller
    spf = None
    HAS_PYSPF = False
    PYSPF_IMPORT_ERROR = exc

# RFC 7208 4.6.4: at most 10 terms that cause DNS lookups.
MAX_LOOKUPS = 10
# RFC 7208 3.4: a record that keeps the whole answer within 512 bytes.
MAX_RECORD_BYTES = 450

_SPF_START = re.compile(r"^v=spf1(\s|$)", re.IGNORECASE)
_LOOKUP_TERMS = re.compile(r"^[-+~?]?(include:|a$|a:|a/|mx$|mx:|mx/|ptr$|ptr:|exists:|redirect=)", re.IGNORECASE)

_CONTEXT = threading.local()


@dataclass(frozen=True)
class SpfOutcome:
    """The result a receiver would get: pass, fail, softfail, neutral, none, permerror or temperror."""

    result: str
    explanation: str
    lookups: int


def spf_records(texts) -> List[str]:
    """The TXT values that are SPF records."""
    return [t for t in texts if _SPF_START.match(t.strip())]


def all_qualifier(record: str) -> Optional[str]:
    """The qualifier of the record's ``all`` term ('-', '~', '?', '+'), 'redirect' or None."""
    for term in record.split()[1:]:
        low = term.lower()
        if low in ("all", "+all", "-all", "~all", "?all"):
            return "+" if low == "all" else low[0]
        if low.startswith("redirect="):
            return "redirect"
    return None


def lookup_terms(record: str) -> int:
    """How many terms of this record alone cause DNS lookups (nested ones not counted)."""
    return sum(1 for term in record.split()[1:] if _LOOKUP_TERMS.match(term))


def has_macro(text: str) -> bool:
    return "%{" in text


def _lookup(name, qtype, strict=True, timeout=30):
    """pyspf's DNSLookup, answered by the resolver of the running evaluation."""
    context = getattr(_CONTEXT, "evaluation", None)
    if context is None:
        return _ORIGINAL_LOOKUP(name, qtype, strict, timeout)
    answer = context.resolver.lookup(name, qtype)
    if answer.status == ERROR:
        raise spf.TempError("DNS %s" % answer.error)
    results = []
    for value in answer.values:
        if qtype in ("TXT", "SPF"):
            if has_macro(value):
                context.saw_macro = True
            results.append(((name, qtype), (value.encode("utf-8"),)))
        elif qtype == "MX":
            preference, exchange = value.split(None, 1)
            results.append(((name, qtype), (int(preference), exchange.rstrip("."))))
        elif qtype in ("PTR", "CNAME"):
            results.append(((name, qtype), value.rstrip(".")))
        else:
            results.append(((name, qtype), value))
    return results


if HAS_PYSPF:
    _ORIGINAL_LOOKUP = getattr(spf, "_kibamail_original_lookup", spf.DNSLookup)
    spf._kibamail_original_lookup = _ORIGINAL_LOOKUP
    spf.DNSLookup = _lookup


class _Evaluation:
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.saw_macro = False


class SpfEvaluator:
    """Evaluate SPF for (IP, sender domain) pairs over one resolver."""

    def __init__(self, resolver: Resolver) -> None:
        if not HAS_PYSPF:
            raise RuntimeError("the Python package pyspf is required on the controller to evaluate SPF: pip install pyspf")
        self._resolver = resolver
        self._memo: Dict[Tuple[str, Tuple[str, ...], str], SpfOutcome] = {}
        self._lock = threading.Lock()

    def evaluate(self, ip: str, domain: str, helo: str = "", mail_from: bool = True) -> SpfOutcome:
        """SPF of ``domain`` for a client at ``ip``: the MAIL FROM identity, or the HELO one."""
        domain = normalize_name(domain)
        top = self._resolver.lookup(domain, "TXT")
        key = ("mailfrom" if mail_from else "helo", tuple(sorted(spf_records(top.values))), ip) if top.status != ERROR else None
        if key is not None and key[1]:
            with self._lock:
                memo = self._memo.get(key)
            if memo is not None:
                return memo
        outcome, saw_macro = self._run(ip, domain, helo or domain, mail_from)
        if key is not None and key[1] and not saw_macro and outcome.result != "temperror":
            with self._lock:
                self._memo[key] = outcome
        return outcome

    def evaluate_many(self, clients: List[Tuple[str, str]], domain: str) -> List[SpfOutcome]:
        """SPF of ``domain`` (MAIL FROM) for many (IP, HELO) clients; the published record is read once."""
        domain = normalize_name(domain)
        top = self._resolver.lookup(domain, "TXT")
        records = tuple(sorted(spf_records(top.values))) if top.status != ERROR else ()
        if not records:
            return [self.evaluate(ip, domain, helo=helo) for ip, helo in clients]
        outcomes = []
        with self._lock:
            memo = dict(self._memo)
        for ip, helo in clients:
            outcome = memo.get(("mailfrom", records, ip))
            outcomes.append(outcome if outcome is not None else self.evaluate(ip, domain, helo=helo))
        return outcomes

    def _run(self, ip: str, domain: str, helo: str, mail_from: bool) -> Tuple[SpfOutcome, bool]:
        evaluation = _Evaluation(self._resolver)
        previous = getattr(_CONTEXT, "evaluation", None)
        _CONTEXT.evaluation = evaluation
        try:
            sender = ("postmaster@%s" % domain) if mail_from else ""
            query = spf.query(i=ip, s=sender, h=helo, timeout=30)
            result, _code, explanation = query.check()
            lookups = query.lookups
        finally:
            _CONTEXT.evaluation = previous
        return SpfOutcome(result=result, explanation=explanation, lookups=lookups), evaluation.saw_macro
