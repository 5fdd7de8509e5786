# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""DNS blocklists (RFC 5782): the platform's sending IPs and domains, looked up in the configured zones.

IP blocklists are asked for the reversed address (10.2.0.192.bl.example), domain blocklists for
the name itself (kb-bounces.kbmta.net.dbl.example). A zone is used only when it answers its RFC 5782
test entry (127.0.0.2 for addresses, ``test`` for names). Every lookup gives one ``Listing`` (subject,
zone, listed or clear or unknown): the verification report sums them up per subject, and
``exposition`` turns them into Prometheus figures for node exporter's textfile collector
(docs/operations.md, "Blocklists").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import NODATA, NXDOMAIN, OK, Resolver, normalize_name
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import CheckResult, failure, ok, warning

IP_KIND = "ip"
DOMAIN_KIND = "domain"
LISTED = "listed"
CLEAR = "clear"
UNKNOWN = "unknown"
# RFC 5782 section 5: every list holds a test entry; a list that does not answer it is unusable.
TEST_ENTRY = {IP_KIND: "2.0.0.127", DOMAIN_KIND: "test"}
KIND_WORDS = {IP_KIND: "IP blocklist", DOMAIN_KIND: "domain blocklist"}


@dataclass(frozen=True)
class Listing:
    """What one blocklist zone says of one subject (an address or a name)."""

    subject: str
    kind: str
    zone: str
    state: str
    detail: str = ""


@dataclass(frozen=True)
class Zone:
    """A configured blocklist zone and whether it answered its test entry."""

    name: str
    kind: str
    usable: bool


def query_name(subject: str, kind: str, zone: str) -> str:
    """The name a blocklist is asked: the reversed IPv4 address, or the domain, under the zone."""
    if kind == IP_KIND:
        return "%s.%s" % (".".join(reversed(subject.split("."))), zone)
    return "%s.%s" % (normalize_name(subject), zone)


def _refused(values: Iterable[str]) -> bool:
    """127.255.255.x: the list refuses the querier (Spamhaus' error codes), it lists nothing."""
    return any(v.startswith("127.255.255.") for v in values)


def zone_checks(resolver: Resolver, zones: Sequence[str], kind: str) -> Tuple[List[Zone], List[CheckResult]]:
    """Each zone, usable or not (its test entry answered), with the report's dnsbl_zone result."""
    found, results = [], []
    for zone in zones:
        zone = normalize_name(zone)
        answer = resolver.lookup("%s.%s" % (TEST_ENTRY[kind], zone), "A")
        usable = answer.found and not _refused(answer.values)
        found.append(Zone(zone, kind, usable))
        if usable:
            results.append(ok("platform", "dnsbl_zone", zone, "%s; answers its test entry %s (%s)" % (
                KIND_WORDS[kind], TEST_ENTRY[kind], ", ".join(answer.values))))
        else:
            results.append(warning("platform", "dnsbl_zone", zone, "skipped: the %s does not answer its test entry %s (%s); "
                                   "it is unreachable or refuses this resolver" % (
                                       KIND_WORDS[kind], TEST_ENTRY[kind],
                                       answer.describe() if not answer.found else "refused: " + ", ".join(answer.values)),
                                   "query the blocklist through a resolver it accepts (verify_nameserver), or drop the zone"))
    return found, results


def look_up(resolver: Resolver, subject: str, kind: str, zone: str) -> Listing:
    """One subject in one zone: listed (with the list's TXT reason), clear, or unknown (the lookup failed)."""
    name = query_name(subject, kind, zone)
    answer = resolver.lookup(name, "A")
    # NODATA too: the name exists without an address, as kbmta.net.<zone> does when a name under it is listed.
    if answer.status in (NXDOMAIN, NODATA) or (answer.status == OK and not answer.values):
        return Listing(subject, kind, zone, CLEAR)
    if answer.status == OK and not _refused(answer.values):
        why = resolver.lookup(name, "TXT")
        return Listing(subject, kind, zone, LISTED, ", ".join(answer.values) + (": " + " ".join(why.values) if why.found else ""))
    if answer.status == OK:
        return Listing(subject, kind, zone, UNKNOWN, "refused: " + ", ".join(answer.values))
    return Listing(subject, kind, zone, UNKNOWN, answer.describe())


def check_subject(resolver: Resolver, category: str, subject: str, kind: str, zones: Sequence[str]) -> Tuple[CheckResult, List[Listing]]:
    """The report's dnsbl result of one subject over every usable zone, and the listings it rests on."""
    listings = [look_up(resolver, subject, kind, zone) for zone in zones]
    listed = ["%s (%s)" % (x.zone, x.detail) for x in listings if x.state == LISTED]
    unknown = ["%s (%s)" % (x.zone, x.detail) for x in listings if x.state == UNKNOWN]
    if listed:
        fix = ("stop sending from %s, find and fix the cause, then request delisting from each blocklist" % subject if kind == IP_KIND
               else "find why %s is listed (the messages or links that name it), fix the cause, then request delisting" % subject)
        return failure(category, "dnsbl", subject, "%s is listed on %s" % (subject, "; ".join(listed)), fix), listings
    if unknown:
        return warning(category, "dnsbl", subject, "listing unknown on %s" % "; ".join(unknown), "check these blocklists by hand"), listings
    return ok(category, "dnsbl", subject, "not listed on %d %ss" % (len(zones), KIND_WORDS[kind])), listings


def blocklist_domains(plan: dict) -> List[str]:
    """The names domain blocklists are asked about: the platform's domain and its bounce domains
    (the platform's and each customer's return-path domain: every envelope sender is one of them)."""
    names = [plan.get("domain", "")] + list(plan.get("bounce_domains") or [plan.get("bounce_domain", "")])
    return sorted({normalize_name(n) for n in names if n})


# --------------------------------------------------------------------------
# Prometheus text exposition (format 0.0.4), for node exporter's textfile collector

def _labels(pairs: Sequence[Tuple[str, str]]) -> str:
    text = ",".join('%s="%s"' % (k, v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")) for k, v in pairs)
    return "{%s}" % text if text else ""


def _family(name: str, kind: str, text: str, samples: Iterable[Tuple[Sequence[Tuple[str, str]], float]]) -> List[str]:
    lines = ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind)]
    lines.extend("%s%s %s" % (name, _labels(labels), ("%d" % value) if float(value).is_integer() else repr(float(value)))
                 for labels, value in sorted(samples))
    return lines


def exposition(listings: Sequence[Listing], zones: Sequence[Zone], results: Sequence[CheckResult], now: float) -> str:
    """The blocklist figures of one verification run (and its result counts) as exposition text.

    kb_blocklist_listed is given only for definite answers (listed 1, clear 0); a subject the
    list could not answer for is counted in kb_blocklist_lookup_failures instead, and a zone that
    does not answer its test entry has kb_blocklist_zone_usable 0 and no listings."""
    failures: Dict[str, int] = {z.name: 0 for z in zones if z.usable}
    listed = []
    for entry in listings:
        if entry.state == UNKNOWN:
            failures[entry.zone] = failures.get(entry.zone, 0) + 1
        else:
            listed.append(((("subject", entry.subject), ("kind", entry.kind), ("zone", entry.zone)), 1 if entry.state == LISTED else 0))
    counts: Dict[Tuple[str, str, str], int] = {}
    for result in results:
        key = (result.category, result.check, result.status)
        counts[key] = counts.get(key, 0) + 1
    lines: List[str] = []
    lines += _family("kb_blocklist_listed", "gauge", "1 when the zone lists the subject (a sending IP or a platform domain), 0 when not.",
                     listed)
    lines += _family("kb_blocklist_zone_usable", "gauge", "1 when the blocklist answered its RFC 5782 test entry; 0: its listings are unknown.",
                     [((("zone", z.name), ("kind", z.kind)), 1 if z.usable else 0) for z in zones])
    lines += _family("kb_blocklist_lookup_failures", "gauge", "Subjects whose lookup in the zone failed (no answer, refused) in the last run.",
                     [((("zone", zone),), number) for zone, number in failures.items()])
    lines += _family("kb_blocklist_last_check_timestamp_seconds", "gauge", "Unix time of the verification run that wrote these figures.",
                     [((), round(now, 3))])
    lines += _family("kb_verify_results", "gauge", "Results of the last verification run by category, check and status.",
                     [((("category", c), ("check", k), ("status", s)), n) for (c, k, s), n in counts.items()])
    return "\n".join(lines) + "\n"
