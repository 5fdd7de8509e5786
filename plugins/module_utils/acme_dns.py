# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ACME DNS-01 challenge records (RFC 8555 section 8.4) grouped by the zone that publishes them."""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional


class ChallengeError(ValueError):
    """A challenge name no configured zone holds, or input of the wrong shape."""


def _name(text: str) -> str:
    return text.strip().rstrip(".").lower()


def owning_zone(name: str, zones: Iterable[str]) -> Optional[str]:
    """The longest of ``zones`` that holds ``name`` (None when none does)."""
    best = None
    for zone in (_name(z) for z in zones):
        if (name == zone or name.endswith("." + zone)) and (best is None or len(zone) > len(best)):
            best = zone
    return best


def challenge_records(challenges: Mapping[str, List[str]], zones: Iterable[str], strict: bool = True) -> Dict[str, List[dict]]:
    """``{zone: [{name, type: TXT, values}]}`` for the ``challenge_data_dns`` of an ACME order.

    ``challenges`` maps each ``_acme-challenge.<name>`` to its TXT values (several
    when one name is validated for more than one identifier). With ``strict``
    a name outside every zone is an error; without it, such a name is left out
    (cleaning up after a failure must not fail again).
    """
    if not isinstance(challenges, Mapping):
        raise ChallengeError("expected the challenge_data_dns dict of an ACME order, got %s" % type(challenges).__name__)
    zones = list(zones)
    grouped: Dict[str, List[dict]] = {}
    for name, values in sorted((_name(raw), values) for raw, values in challenges.items()):
        zone = owning_zone(name, zones)
        if zone is None:
            if strict:
                raise ChallengeError("no zone of %s holds %s: add its zone to acme_certificates_dns_zones"
                                     % (", ".join(zones) or "(none)", name))
            continue
        if isinstance(values, str):
            values = [values]
        grouped.setdefault(zone, []).append({"name": name, "type": "TXT", "values": sorted(str(v) for v in values)})
    return grouped
