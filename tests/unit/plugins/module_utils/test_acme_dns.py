# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.kibamail.email_platform.plugins.module_utils.acme_dns import (
    ChallengeError,
    challenge_records,
    owning_zone,
)


def test_each_challenge_name_goes_into_the_longest_zone_that_holds_it():
    records = challenge_records({
        "_acme-challenge.smtp.kbmta.net.": ["b", "a"],
        "_acme-challenge.US-MTA1.kbmta.net": ["c"],
        "_acme-challenge.mx.lab.kbmta.net": "d",
    }, ["kbmta.net", "lab.kbmta.net."])
    assert records == {
        "kbmta.net": [
            {"name": "_acme-challenge.smtp.kbmta.net", "type": "TXT", "values": ["a", "b"]},
            {"name": "_acme-challenge.us-mta1.kbmta.net", "type": "TXT", "values": ["c"]},
        ],
        "lab.kbmta.net": [{"name": "_acme-challenge.mx.lab.kbmta.net", "type": "TXT", "values": ["d"]}],
    }


def test_a_name_outside_every_zone_is_refused_with_the_setting_to_change():
    with pytest.raises(ChallengeError, match="add its zone to acme_certificates_dns_zones"):
        challenge_records({"_acme-challenge.mx.example.net": ["x"]}, ["kbmta.net"])


def test_cleanup_leaves_out_names_no_zone_holds():
    assert challenge_records({"_acme-challenge.mx.example.net": ["x"]}, ["kbmta.net"], strict=False) == {}


def test_a_zone_is_not_a_suffix_of_a_longer_label():
    assert owning_zone("_acme-challenge.notkbmta.net", ["kbmta.net"]) is None
    assert owning_zone("kbmta.net", ["kbmta.net"]) == "kbmta.net"


def test_no_challenges_no_records():
    assert challenge_records({}, ["kbmta.net"]) == {}
