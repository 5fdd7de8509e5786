# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The delegation checks against real BIND servers: a parent zone that delegates, a child that answers.

Two loopback servers: the parent serves ``test`` with a delegation of ``kbmta.test`` (NS and glue),
the child serves ``kbmta.test``. The direct questions go to them as a resolver's would.
"""

from __future__ import annotations

import os

import pytest
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_delegation import (
    DnsPythonQuerier,
    Querier,
    check_delegation,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import StaticResolver
from bind import NAMED, LoopbackBind

pytestmark = pytest.mark.skipif(not os.path.exists(NAMED), reason="BIND (named) is not installed")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    delegation = ["kbmta IN NS ns1.kbmta.test.", "kbmta IN NS ns2.kbmta.test.",
                  "ns1.kbmta IN A 127.0.0.1", "ns2.kbmta IN A 127.0.0.1"]
    with LoopbackBind(tmp_path_factory.mktemp("parent"), zones={"test": delegation}) as parent, \
            LoopbackBind(tmp_path_factory.mktemp("child"), zones={"kbmta.test": ["@ IN NS ns2.kbmta.test.", "ns2 IN A 127.0.0.1"]}) as child:
        yield parent, child


class ByQuestion(Querier):
    """Both servers listen on 127.0.0.1: NS questions go to the parent's port, SOA to the child's."""

    def __init__(self, parent: Querier, child: Querier) -> None:
        self.parent, self.child = parent, child

    def ask(self, server, name, rdtype):
        return (self.parent if rdtype == "NS" else self.child).ask(server, name, rdtype)


def test_the_parent_answers_with_a_referral_not_with_authority(servers):
    parent, _child = servers
    reply = DnsPythonQuerier(parent.port).ask("127.0.0.1", "kbmta.test", "NS")
    assert reply.rcode == "NOERROR"
    assert not reply.authoritative
    assert reply.referral == ("ns1.kbmta.test", "ns2.kbmta.test")
    assert reply.answer == ()


def test_the_child_answers_with_authority(servers):
    _parent, child = servers
    reply = DnsPythonQuerier(child.port).ask("127.0.0.1", "kbmta.test.", "SOA")
    assert (reply.rcode, reply.authoritative) == ("NOERROR", True)
    own = DnsPythonQuerier(child.port).ask("127.0.0.1", "kbmta.test", "NS")
    assert own.authoritative and own.answer == ("ns1.kbmta.test", "ns2.kbmta.test")


def test_a_server_without_the_zone_is_not_authoritative(servers):
    parent, _child = servers
    reply = DnsPythonQuerier(parent.port).ask("127.0.0.1", "kbmta.test", "SOA")
    assert not reply.authoritative


def test_nothing_listening_is_an_error_not_an_answer(servers):
    _parent, child = servers
    reply = DnsPythonQuerier(child.port + 1 if child.port < 65535 else child.port - 1, timeout=0.5).ask("127.0.0.1", "kbmta.test", "SOA")
    assert reply.error and not reply.rcode


def test_the_check_finds_the_registrar_and_the_zone_disagree(servers):
    parent, child = servers
    resolver = StaticResolver({
        ("test", "NS"): ["ns1.test."], ("ns1.test", "A"): ["127.0.0.1"],
        # the zone says ns1 and ns2; the child server really answers its own NS with both
        ("kbmta.test", "NS"): ["ns1.kbmta.test.", "ns2.kbmta.test."],
        ("ns1.kbmta.test", "A"): ["127.0.0.1"], ("ns2.kbmta.test", "A"): ["127.0.0.1"],
    })
    querier = ByQuestion(DnsPythonQuerier(parent.port), DnsPythonQuerier(child.port))
    results = {(r.check, r.subject): r for r in check_delegation(resolver, querier, "kbmta.test")}
    assert results[("delegation", "kbmta.test")].status == "ok", results[("delegation", "kbmta.test")].reason
    assert results[("ns_authoritative", "ns1.kbmta.test")].status == "ok"

    resolver = StaticResolver({
        ("test", "NS"): ["ns1.test."], ("ns1.test", "A"): ["127.0.0.1"],
        ("kbmta.test", "NS"): ["ns2.kbmta.test.", "ns3.kbmta.test."],
        ("ns2.kbmta.test", "A"): ["127.0.0.1"], ("ns3.kbmta.test", "A"): ["127.0.0.1"],
    })
    results = {(r.check, r.subject): r for r in check_delegation(resolver, querier, "kbmta.test")}
    wrong = results[("delegation", "kbmta.test")]
    assert wrong.status == "failure"
    assert "not delegated: ns3.kbmta.test" in wrong.reason and "delegated but not in the zone: ns1.kbmta.test" in wrong.reason
