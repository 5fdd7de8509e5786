# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Record sets of one DNS zone: model, normalisation, diff and prune policy.

Pure code: no I/O, no third-party imports. Providers turn what a server holds
into ``RecordSet`` objects with ``record_set()``; ``plan_zone()`` compares
them with the desired record sets and returns the changes to apply.

Conventions (the same as the platform plan, see docs/model.md):

* ``name`` is the absolute owner name, lower case, without the trailing dot.
* ``type`` is upper case.
* ``values`` are in zone-file presentation form, except TXT: a TXT value is
  the unquoted text however long; ``split_txt()`` cuts it into strings of at
  most 255 bytes for the wire and ``txt_presentation()`` quotes them.
* Domain-name targets (CNAME, NS, PTR, MX, SRV) are absolute and compare
  without regard to case or a trailing dot; they are stored with the dot.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

TXT_CHUNK = 255
# Never deleted by pruning: the SOA, and DNSSEC data the signer (not this module) maintains.
PROTECTED_ALWAYS = ("SOA", "DNSKEY", "CDS", "CDNSKEY", "RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "TYPE65534")
DEFAULT_PROTECTED = ("SOA", "NS")
PRUNE_POLICIES = ("none", "managed", "all")
# DNSSEC bookkeeping types that may legally sit beside a CNAME.
CNAME_COMPANIONS = ("RRSIG", "NSEC", "NSEC3")

_NAME_TARGET_TYPES = ("CNAME", "NS", "PTR", "DNAME")


class RecordError(ValueError):
    """A record set that cannot be published as given; the message says why."""


class ProviderError(Exception):
    """A failure talking to a DNS provider; the message says what to change."""


@dataclass(frozen=True)
class RecordSet:
    """One record set: every record of one name and one type."""

    name: str
    type: str
    ttl: int
    values: Tuple[str, ...]

    @property
    def key(self) -> Tuple[str, str]:
        return (self.name, self.type)

    def as_dict(self) -> Dict[str, object]:
        return {"name": self.name, "type": self.type, "ttl": self.ttl, "values": list(self.values)}


@dataclass(frozen=True)
class Change:
    """What happens to one record set: create, update or delete."""

    action: str
    before: Optional[RecordSet]
    after: Optional[RecordSet]

    @property
    def key(self) -> Tuple[str, str]:
        rrset = self.after if self.after is not None else self.before
        if rrset is None:
            raise RecordError("a change needs a record set before or after it")
        return rrset.key

    @property
    def values_changed(self) -> bool:
        return self.before is None or self.after is None or self.before.values != self.after.values

    @property
    def ttl_changed(self) -> bool:
        return self.before is not None and self.after is not None and self.before.ttl != self.after.ttl

    def as_dict(self) -> Dict[str, object]:
        return {
            "name": self.key[0],
            "type": self.key[1],
            "action": self.action,
            "before": self.before.as_dict() if self.before else None,
            "after": self.after.as_dict() if self.after else None,
        }


@dataclass
class ZonePlan:
    """The outcome of comparing a zone with the desired record sets."""

    zone: str
    changes: List[Change] = field(default_factory=list)
    unchanged: List[RecordSet] = field(default_factory=list)
    kept: List[RecordSet] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def by_action(self, action: str) -> List[Change]:
        return [change for change in self.changes if change.action == action]


# ---------------------------------------------------------------- names


def normalize_name(name: str) -> str:
    """Lower-case an owner name and drop one trailing dot."""
    text = str(name).strip().lower()
    if text.endswith(".") and text != ".":
        text = text[:-1]
    if not text or ".." in text:
        raise RecordError("invalid DNS name %r" % (name,))
    return text


def absolute_name(name: str, zone: str) -> str:
    """Resolve ``@``, a relative label or an absolute name against ``zone``."""
    zone = normalize_name(zone)
    text = str(name).strip()
    if text in ("@", ""):
        return zone
    lowered = normalize_name(text)
    if lowered == zone or lowered.endswith("." + zone):
        return lowered
    if text.endswith("."):
        return lowered
    return "%s.%s" % (lowered, zone)


def relative_name(name: str, zone: str) -> str:
    """The owner name relative to the zone, ``@`` for the apex."""
    name = normalize_name(name)
    zone = normalize_name(zone)
    if name == zone:
        return "@"
    if name.endswith("." + zone):
        return name[: -(len(zone) + 1)]
    raise RecordError("%s is not inside zone %s" % (name, zone))


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def _target(value: str) -> str:
    text = normalize_name(value)
    return text + "."


# ---------------------------------------------------------------- TXT


def split_txt(text: str) -> List[bytes]:
    """Cut a TXT value into strings of at most 255 bytes (UTF-8)."""
    data = text.encode("utf-8")
    if not data:
        return [b""]
    return [data[i:i + TXT_CHUNK] for i in range(0, len(data), TXT_CHUNK)]


def quote_txt_string(chunk: bytes) -> str:
    """One character-string in presentation form, quotes included."""
    out = []
    for byte in bytearray(chunk):
        char = chr(byte)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append("\\%03d" % byte)
    return '"%s"' % "".join(out)


def txt_presentation(text: str) -> str:
    """The zone-file form of a TXT value: quoted strings of <= 255 bytes."""
    return " ".join(quote_txt_string(chunk) for chunk in split_txt(text))


def parse_txt_strings(presentation: str) -> List[bytes]:
    """Parse ``"a" "b"`` (or one bare word) into its character-strings."""
    text = presentation.strip()
    if not text.startswith('"'):
        return [text.encode("utf-8")]
    strings: List[bytes] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        if text[i] != '"':
            raise RecordError("malformed TXT value %r: expected a quoted string at offset %d" % (presentation, i))
        i += 1
        buf = bytearray()
        while True:
            if i >= len(text):
                raise RecordError("malformed TXT value %r: unterminated quoted string" % (presentation,))
            char = text[i]
            if char == '"':
                i += 1
                break
            if char == "\\":
                if text[i + 1:i + 4].isdigit() and len(text[i + 1:i + 4]) == 3:
                    buf.append(int(text[i + 1:i + 4]))
                    i += 4
                    continue
                if i + 1 >= len(text):
                    raise RecordError("malformed TXT value %r: dangling backslash" % (presentation,))
                buf.extend(text[i + 1].encode("utf-8"))
                i += 2
                continue
            buf.extend(char.encode("utf-8"))
            i += 1
        strings.append(bytes(buf))
    return strings


def join_txt(strings: Iterable[bytes]) -> str:
    """Join character-strings back into one text value."""
    return b"".join(strings).decode("utf-8", errors="surrogateescape")


def normalize_txt(value: str) -> str:
    """A TXT value as joined text; quoted zone-file input is joined first."""
    text = str(value)
    if text.strip().startswith('"'):
        return join_txt(parse_txt_strings(text))
    return text


# ---------------------------------------------------------------- values


def _int(text: str, what: str, rtype: str, value: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise RecordError("%s value %r: %s must be a number" % (rtype, value, what))
    if number < 0 or number > 65535:
        raise RecordError("%s value %r: %s must be between 0 and 65535" % (rtype, value, what))
    return number


def normalize_value(rtype: str, value: str) -> str:
    """Bring one value into the canonical form used for comparing."""
    rtype = rtype.upper()
    if rtype == "TXT":
        return normalize_txt(value)
    text = " ".join(str(value).split())
    if rtype in ("A", "AAAA"):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise RecordError("%s value %r is not an IP address" % (rtype, value))
        if (rtype == "A") != (address.version == 4):
            raise RecordError("%s value %r is an IPv%d address" % (rtype, value, address.version))
        return str(address)
    if rtype in _NAME_TARGET_TYPES:
        return _target(text)
    if rtype == "MX":
        parts = text.split(" ")
        if len(parts) != 2:
            raise RecordError("MX value %r must be 'preference exchange', e.g. '10 mx.example.net.'" % (value,))
        return "%d %s" % (_int(parts[0], "preference", rtype, value), _target(parts[1]))
    if rtype == "SRV":
        parts = text.split(" ")
        if len(parts) != 4:
            raise RecordError("SRV value %r must be 'priority weight port target'" % (value,))
        numbers = [_int(part, "field", rtype, value) for part in parts[:3]]
        return "%d %d %d %s" % (numbers[0], numbers[1], numbers[2], _target(parts[3]))
    if rtype == "CAA":
        parts = text.split(" ", 2)
        if len(parts) != 3:
            raise RecordError("CAA value %r must be 'flags tag \"value\"'" % (value,))
        inner = parts[2]
        if inner.startswith('"') and inner.endswith('"') and len(inner) >= 2:
            inner = inner[1:-1]
        return '%d %s "%s"' % (_int(parts[0], "flags", rtype, value), parts[1].lower(), inner)
    return text


def record_set(name: str, rtype: str, ttl: int, values: Iterable[str], zone: Optional[str] = None) -> RecordSet:
    """Build a normalised record set; ``zone`` resolves relative names."""
    rtype = str(rtype).strip().upper()
    if not rtype.isalnum():
        raise RecordError("invalid record type %r" % (rtype,))
    owner = absolute_name(name, zone) if zone else normalize_name(name)
    try:
        ttl_int = int(ttl)
    except (TypeError, ValueError):
        raise RecordError("%s %s: ttl %r is not a number" % (owner, rtype, ttl))
    if ttl_int < 0 or ttl_int > 2147483647:
        raise RecordError("%s %s: ttl %d is out of range" % (owner, rtype, ttl_int))
    normalized = sorted(set(normalize_value(rtype, value) for value in values))
    if not normalized:
        raise RecordError("%s %s has no values: give at least one value or leave the record set out" % (owner, rtype))
    if rtype == "CNAME" and len(normalized) > 1:
        raise RecordError("%s CNAME has %d values; a CNAME takes exactly one target" % (owner, len(normalized)))
    return RecordSet(name=owner, type=rtype, ttl=ttl_int, values=tuple(normalized))


def desired_from_dicts(zone: str, records: Sequence[Dict[str, object]], default_ttl: int) -> List[RecordSet]:
    """Turn the module's ``records`` option into record sets, refusing duplicates."""
    zone = normalize_name(zone)
    seen: Dict[Tuple[str, str], RecordSet] = {}
    for index, item in enumerate(records):
        if item.get("name") is None or item.get("type") is None:
            raise RecordError("records[%d] needs a name and a type" % index)
        values = item.get("values")
        if isinstance(values, str) or values is None:
            raise RecordError("records[%d] (%s %s): values must be a list" % (index, item["name"], item["type"]))
        ttl = item.get("ttl")
        rrset = record_set(str(item["name"]), str(item["type"]), default_ttl if ttl is None else ttl,
                           [str(v) for v in values], zone)  # type: ignore[union-attr]
        if not in_zone(rrset.name, zone):
            raise RecordError("records[%d]: %s is not inside zone %s; move it to the records of its own zone"
                              % (index, rrset.name, zone))
        if rrset.key in seen:
            raise RecordError("records[%d]: %s %s is listed twice; merge the values into one entry"
                              % (index, rrset.name, rrset.type))
        seen[rrset.key] = rrset
    return list(seen.values())


# ---------------------------------------------------------------- ownership


# One ownership TXT value lists many record sets, joined by ";", so the
# ownership record stays a handful of values however large the zone: a stock
# name server refuses more than 100 records of one type at a name
# (max-records-per-type, BIND 9.18.28 and later).
OWNERSHIP_VALUE_BYTES = 900
OWNERSHIP_MAX_VALUES = 90


def ownership_values(keys: Iterable[Tuple[str, str]], zone: str) -> List[str]:
    """Values of the ownership TXT record: ``<relative name> <TYPE>`` entries joined by ``;``.

    Entries are sorted and packed greedily into values of at most
    ``OWNERSHIP_VALUE_BYTES`` (more per value for a zone so large that it
    would otherwise need more than ``OWNERSHIP_MAX_VALUES`` values).
    """
    entries = sorted("%s %s" % (relative_name(name, zone), rtype) for name, rtype in set(keys))
    total = sum(len(e) + 1 for e in entries)
    # Aim under the cap: greedy packing leaves each value short by less than one entry.
    limit = max(OWNERSHIP_VALUE_BYTES, -(-total // (OWNERSHIP_MAX_VALUES - 10)))
    values: List[str] = []
    current = ""
    for entry in entries:
        if current and len(current) + 1 + len(entry) > limit:
            values.append(current)
            current = ""
        current = entry if not current else current + ";" + entry
    if current:
        values.append(current)
    return sorted(values)


def parse_ownership(rrset: Optional[RecordSet], zone: str) -> Set[Tuple[str, str]]:
    """Record-set keys the ownership TXT record lists; unknown entries are skipped."""
    owned: Set[Tuple[str, str]] = set()
    if rrset is None:
        return owned
    for value in rrset.values:
        for entry in value.split(";"):     # one entry per value in records written before packing
            parts = entry.split()
            if len(parts) != 2:
                continue
            try:
                owned.add((absolute_name(parts[0], zone), parts[1].upper()))
            except RecordError:
                continue
    return owned


# ---------------------------------------------------------------- planning


@dataclass
class PrunePolicy:
    """Which record sets absent from the desired list may be deleted."""

    mode: str = "managed"
    managed_names: Tuple[str, ...] = ()
    owned: Set[Tuple[str, str]] = field(default_factory=set)
    protected_types: Tuple[str, ...] = DEFAULT_PROTECTED

    def may_delete(self, rrset: RecordSet) -> bool:
        if rrset.type in PROTECTED_ALWAYS or rrset.type in self.protected_types:
            return False
        if self.mode == "all":
            return True
        if self.mode == "managed":
            return rrset.name in self.managed_names or rrset.key in self.owned
        return False


def make_policy(mode: str, zone: str, managed_names: Iterable[str], owned: Set[Tuple[str, str]],
                protected_types: Iterable[str]) -> PrunePolicy:
    if mode not in PRUNE_POLICIES:
        raise RecordError("prune=%r is not one of %s" % (mode, ", ".join(PRUNE_POLICIES)))
    names = tuple(sorted(absolute_name(name, zone) for name in managed_names))
    protected = tuple(sorted(set(t.upper() for t in protected_types) | set(PROTECTED_ALWAYS)))
    return PrunePolicy(mode=mode, managed_names=names, owned=set(owned), protected_types=protected)


def check_cname_conflicts(final: Iterable[RecordSet]) -> None:
    """Refuse a CNAME that would share its name with other data."""
    types_at: Dict[str, List[str]] = {}
    for rrset in final:
        types_at.setdefault(rrset.name, []).append(rrset.type)
    problems = []
    for name in sorted(types_at):
        types = types_at[name]
        if "CNAME" not in types:
            continue
        others = sorted(t for t in types if t != "CNAME" and t not in CNAME_COMPANIONS)
        if others:
            problems.append("%s (CNAME beside %s)" % (name, ", ".join(others)))
    if problems:
        raise RecordError(
            "a CNAME cannot sit beside other data at the same name: %s. Remove the other record sets "
            "from the zone (list them nowhere and use prune=all or managed_names so they are deleted) "
            "or publish the target's records at that name instead of the CNAME" % "; ".join(problems))


def plan_zone(zone: str, current: Iterable[RecordSet], desired: Iterable[RecordSet], policy: PrunePolicy) -> ZonePlan:
    """Compare a zone's record sets with the desired ones.

    Desired record sets are created or updated; current record sets that are
    not desired are deleted when the prune policy allows it, otherwise kept.
    The result is refused if a CNAME would end up beside other data.
    """
    zone = normalize_name(zone)
    current_map = {rrset.key: rrset for rrset in current}
    desired_map = {rrset.key: rrset for rrset in desired}
    plan = ZonePlan(zone=zone)
    for key in sorted(current_map):
        if key in desired_map:
            continue
        rrset = current_map[key]
        if policy.may_delete(rrset):
            plan.changes.append(Change("delete", rrset, None))
        else:
            plan.kept.append(rrset)
    for key in sorted(desired_map):
        want = desired_map[key]
        have = current_map.get(key)
        if have is None:
            plan.changes.append(Change("create", None, want))
        elif have == want:
            plan.unchanged.append(want)
        else:
            plan.changes.append(Change("update", have, want))
    check_cname_conflicts(list(plan.kept) + list(desired_map.values()))
    return plan


def diff_entries(plan: ZonePlan) -> List[Dict[str, str]]:
    """Ansible diff entries, one per changed record set, in zone-file lines."""
    entries = []
    for change in plan.changes:
        name, rtype = change.key
        entries.append({
            "before_header": "%s %s" % (name, rtype),
            "after_header": "%s %s" % (name, rtype),
            "before": "".join(line + "\n" for line in zone_file_lines([change.before])) if change.before else "",
            "after": "".join(line + "\n" for line in zone_file_lines([change.after])) if change.after else "",
        })
    return entries


def presentation_value(rtype: str, value: str) -> str:
    """A normalised value as it is written in a zone file."""
    if rtype == "TXT":
        return txt_presentation(value)
    return value


def zone_file_lines(rrsets: Iterable[Optional[RecordSet]]) -> List[str]:
    """Zone-file lines (absolute owner names) for the given record sets."""
    lines = []
    for rrset in rrsets:
        if rrset is None:
            continue
        for value in rrset.values:
            lines.append("%s. %d IN %s %s" % (rrset.name, rrset.ttl, rrset.type, presentation_value(rrset.type, value)))
    return lines


def build_plan(zone: str, current: Sequence[RecordSet], records: Sequence[Dict[str, object]], prune: str,
               managed_names: Iterable[str], protected_types: Iterable[str], ownership_record: str,
               default_ttl: int) -> ZonePlan:
    """Everything the module decides, from the zone as read to the plan.

    ``ownership_record`` names a TXT record set (relative to the zone, or
    empty to use none) that lists every record set written from ``records``;
    with ``prune=managed`` a record set listed there by an earlier run and no
    longer desired is deleted.
    """
    zone = normalize_name(zone)
    desired = desired_from_dicts(zone, records, default_ttl)
    owned: Set[Tuple[str, str]] = set()
    if ownership_record:
        marker_name = absolute_name(ownership_record, zone)
        marker_key = (marker_name, "TXT")
        if any(rrset.key == marker_key for rrset in desired):
            raise RecordError("%s TXT is the ownership record of this module; remove it from records or set "
                              "ownership_record to another name" % marker_name)
        marker = next((rrset for rrset in current if rrset.key == marker_key), None)
        owned = parse_ownership(marker, zone)
        if marker is not None:
            owned.add(marker_key)
        if desired:
            desired.append(record_set(marker_name, "TXT", default_ttl,
                                      ownership_values([rrset.key for rrset in desired], zone)))
    policy = make_policy(prune, zone, managed_names, owned, protected_types)
    return plan_zone(zone, current, desired, policy)


# ---------------------------------------------------------------- orchestration


@dataclass
class ZoneRequest:
    """Everything the dns_zone module was asked to do, provider aside."""

    zone: str
    records: Sequence[Dict[str, object]]
    prune: str = "managed"
    managed_names: Sequence[str] = ()
    protected_types: Sequence[str] = DEFAULT_PROTECTED
    ownership_record: str = "_kibamail-owned"
    default_ttl: int = 3600


def interest_keys(request: ZoneRequest, owned: Iterable[Tuple[str, str]], types: Sequence[str]) -> Set[Tuple[str, str]]:
    """The record sets a provider that reads by query must look at.

    Every type of ``types`` at every name the request touches (so a CNAME
    conflict is seen), plus what the ownership record lists.
    """
    zone = normalize_name(request.zone)
    keys = set(owned)
    for rrset in desired_from_dicts(zone, request.records, request.default_ttl):
        keys.add(rrset.key)
    names = set(key[0] for key in keys) | set(absolute_name(name, zone) for name in request.managed_names)
    for name in names:
        for rtype in types:
            keys.add((name, rtype))
    if request.ownership_record:
        keys.add((absolute_name(request.ownership_record, zone), "TXT"))
    return keys


def check_request(request: ZoneRequest) -> None:
    """Refuse what can be refused before any I/O: bad record sets, duplicates, CNAME conflicts."""
    check_cname_conflicts(desired_from_dicts(normalize_name(request.zone), request.records, request.default_ttl))


def plan_request(provider: "object", request: ZoneRequest) -> ZonePlan:
    """Read the zone once (by ``provider``) and plan the changes ``request`` asks for."""
    zone = normalize_name(request.zone)
    types = tuple(getattr(provider, "query_types", ()))
    owned: Set[Tuple[str, str]] = set()
    if types and request.ownership_record:
        marker_key = (absolute_name(request.ownership_record, zone), "TXT")
        marker = [rrset for rrset in provider.read(zone, [marker_key]) if rrset.key == marker_key]  # type: ignore[attr-defined]
        owned = parse_ownership(marker[0] if marker else None, zone)
    current = provider.read(zone, sorted(interest_keys(request, owned, types)))  # type: ignore[attr-defined]
    return build_plan(zone, current, request.records, request.prune, request.managed_names,
                      request.protected_types, request.ownership_record, request.default_ttl)


def plan_result(plan: ZonePlan) -> Dict[str, object]:
    """The module's result for one zone: changed, changes, summary, kept and the diff entries."""
    return {
        "changed": plan.changed,
        "zone": plan.zone,
        "changes": [change.as_dict() for change in plan.changes],
        "summary": {
            "create": len(plan.by_action("create")),
            "update": len(plan.by_action("update")),
            "delete": len(plan.by_action("delete")),
            "unchanged": len(plan.unchanged),
            "kept": len(plan.kept),
        },
        "kept": [{"name": rrset.name, "type": rrset.type} for rrset in plan.kept],
        "diff": diff_entries(plan),
    }


def reconcile(provider: "object", request: ZoneRequest, check_mode: bool) -> Dict[str, object]:
    """Read the zone once, plan, apply the difference unless in check mode.

    ``provider`` has ``read(zone, keys)`` returning record sets (it may ignore
    ``keys`` and return the whole zone), optionally ``query_types`` (the
    types worth asking for when reading by query), and ``apply(plan)``.
    """
    check_request(request)
    plan = plan_request(provider, request)
    if plan.changes and not check_mode:
        provider.apply(plan)  # type: ignore[attr-defined]
    return plan_result(plan)
