# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Return-path decoding and the taxonomy."""
from __future__ import annotations

import pytest

from kb_bounce import classify, verp


@pytest.mark.parametrize("address, recipient, domain", [
    ("bounces+alice=recipient.example@kb-bounces.kibamail.com", "alice@recipient.example", "kb-bounces.kibamail.com"),
    ("<bounces+a.b+tag=Sub.Example.TEST@KB-Bounces.kbmta.net>", "a.b+tag@sub.example.test", "kb-bounces.kbmta.net"),
    ("bounces+x=y=z.example@kb-bounces.kbmta.net", "x=y@z.example", "kb-bounces.kbmta.net"),
])
def test_decode(address, recipient, domain):
    decoded = verp.decode(address)
    assert decoded is not None
    assert (decoded.recipient, decoded.domain) == (recipient, domain)


@pytest.mark.parametrize("address", [
    "bounces@kb-bounces.kbmta.net",
    "bounces+news@kb-bounces.kbmta.net",
    "bounces+alice=@kb-bounces.kbmta.net",
    "bounces+=example.com@kb-bounces.kbmta.net",
    "+alice=example.com@kb-bounces.kbmta.net",
    "bounces+alice=localhost@kb-bounces.kbmta.net",
    "not an address",
    "",
])
def test_decode_refuses(address):
    assert verp.decode(address) is None


def test_customer_domain():
    assert verp.customer_domain("kb-bounces.kibamail.com", "kb-bounces.kbmta.net") == "kibamail.com"
    assert verp.customer_domain("KB-BOUNCES.kbmta.net.", "kb-bounces.kbmta.net") is None
    assert verp.customer_domain("other.example", "kb-bounces.kbmta.net") is None


@pytest.mark.parametrize("status, code, text, action, klass, reason", [
    ("5.1.1", 550, "user unknown", "failed", "hard", "bad-mailbox"),
    ("5.1.2", 550, "", "failed", "hard", "bad-domain"),
    ("5.1.10", 550, "RecipientNotFound", "failed", "hard", "bad-mailbox"),
    ("5.1.10", 550, "domain has a null MX", "failed", "hard", "bad-domain"),
    ("5.2.1", 550, "account disabled", "failed", "hard", "mailbox-disabled"),
    ("5.2.2", 552, "mailbox full", "failed", "soft", "mailbox-full"),
    ("5.3.4", 552, "", "failed", "soft", "message-too-large"),
    ("5.7.1", 550, "blocked as spam", "failed", "soft", "spam-block"),
    ("5.7.1", 550, "relaying denied", "failed", "soft", "policy"),
    ("5.7.1", 550, "no such user here", "failed", "hard", "bad-mailbox"),
    ("5.7.26", 550, "DMARC policy", "failed", "soft", "auth-failure"),
    ("4.2.2", 452, "over quota", "failed", "soft", "mailbox-full"),
    ("4.4.1", None, "connection timed out", "failed", "soft", "transient"),
    ("4.4.1", None, "connection timed out", "delayed", "soft", "delayed"),
    ("5.0.0", 550, "mailbox unavailable", "failed", "hard", "bad-mailbox"),
    ("5.0.0", 550, "", "failed", "hard", "other"),
    (None, 421, "too many connections", "failed", "soft", "transient"),
    (None, 550, "", "failed", "hard", "other"),
    (None, None, "Mailbox full", "failed", "soft", "mailbox-full"),
    (None, None, "Host or domain name not found", "failed", "hard", "bad-domain"),
])
def test_classify(status, code, text, action, klass, reason):
    assert classify.classify(status, code, text, action) == classify.Verdict(klass, reason)


@pytest.mark.parametrize("text, enhanced, code", [
    ("smtp; 550 5.1.1 <a@b.example>: nope", "5.1.1", 550),
    ("550-5.7.26 Unauthenticated", "5.7.26", 550),
    ("from [192.0.2.5] said: 421 4.7.0 try later", "4.7.0", 421),
    ("Postfix 3.7.10 on host 10.0.2.2", None, None),
    ("(#5.1.1)", "5.1.1", None),
    ("#550 5.1.1 RESOLVER", "5.1.1", 550),
])
def test_code_extraction(text, enhanced, code):
    assert classify.find_enhanced(text) == enhanced
    assert classify.find_smtp_code(text) == code
