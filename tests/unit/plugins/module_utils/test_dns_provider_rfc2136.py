# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The RFC 2136 provider splits an update too big for one DNS message."""

from __future__ import annotations

from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_provider_rfc2136 import (
    MAX_TCP_MESSAGE,
    Rfc2136Provider,
    Rfc2136Settings,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_records import Change, record_set


def per_ip_zone(count: int) -> list:
    """A zone as the plan makes it: one A and one SPF TXT record set per sending IP name."""
    changes = []
    for i in range(count):
        ip = "192.0.%d.%d" % (2 + i // 250, 2 + i % 250)
        name = "%s.us-mta1.kbmta.net" % ip.replace(".", "-")
        changes.append(Change("create", None, record_set(name, "A", 300, [ip])))
        changes.append(Change("create", None, record_set(name, "TXT", 300, ["v=spf1 include:spf.kbmta.net -all"])))
    return changes


def provider() -> Rfc2136Provider:
    return Rfc2136Provider(Rfc2136Settings(server="127.0.0.1", tsig_key_name="kb-test",
                                           tsig_key_secret="c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", tsig_algorithm="hmac-sha256"))


def test_an_update_over_64k_is_split_into_messages_that_each_fit():
    changes = per_ip_zone(1016)           # both /24s of the lab: about 150 kB as one message
    batches = provider()._batches("kbmta.net", changes)
    assert len(batches) > 1
    assert all(len(b.to_wire()) <= MAX_TCP_MESSAGE for b in batches)
    sent = sum(len(section) for b in batches for section in [b.update])
    assert sent == 2 * len(changes)       # each change: the delete of its set and its one record


def test_a_small_update_is_one_message():
    assert len(provider()._batches("kbmta.net", per_ip_zone(10))) == 1
