# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter for the acme_certificates role: acme_challenge_records (docs in acme_challenge_records.yml)."""

from __future__ import annotations

from typing import Any, Dict

from ansible.errors import AnsibleFilterError

from ansible_collections.kibamail.email_platform.plugins.module_utils.acme_dns import ChallengeError, challenge_records


def acme_challenge_records(challenges: Any, zones: Any, strict: bool = True) -> Dict[str, Any]:
    """The challenge TXT record sets of an ACME order, grouped by zone."""
    if isinstance(zones, str) or not isinstance(zones, (list, tuple)):
        raise AnsibleFilterError("acme_challenge_records: zones must be a list of zone names, got %r" % (zones,))
    try:
        return challenge_records(challenges, zones, strict=strict)
    except ChallengeError as error:
        raise AnsibleFilterError("acme_challenge_records: %s" % error)


class FilterModule:
    """ACME filters of kibamail.email_platform."""

    def filters(self) -> Dict[str, Any]:
        return {"acme_challenge_records": acme_challenge_records}
