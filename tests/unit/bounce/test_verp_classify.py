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
    ("5.1.10", 550, "domain has a null MX", "failed", "hard", "not-accepting"),
    ("5.2.1", 550, "account disabled", "failed", "soft", "suspended"),
    ("5.2.2", 552, "mailbox full", "failed", "soft", "mailbox-full"),
    ("5.3.4", 552, "", "failed", "soft", "message-too-large"),
    ("5.7.1", 550, "blocked as spam", "failed", "soft", "spam-block"),
    ("5.7.1", 550, "relaying denied", "failed", "soft", "policy"),
    ("5.7.1", 550, "no such user here", "failed", "hard", "bad-mailbox"),
    ("5.7.26", 550, "DMARC policy", "failed", "soft", "auth-failure"),
    ("4.2.2", 452, "over quota", "failed", "soft", "mailbox-full"),
    ("4.4.1", None, "connection timed out", "failed", "soft", "transient"),
    ("4.4.1", None, "connection timed out", "delayed", "delay", "delayed"),
    ("5.0.0", 550, "mailbox unavailable", "failed", "hard", "bad-mailbox"),
    ("5.0.0", 550, "", "failed", "soft", "other"),
    (None, 421, "too many connections", "failed", "soft", "rate-limited"),
    (None, 550, "", "failed", "soft", "other"),
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
    # session transcripts: the failing reply, not the greeting or the 250s before it
    ("<-- 220 mx ready\n<-- 250 2.1.0 Sender OK\n<-- 550 5.1.1 <a@b.example> unknown", "5.1.1", 550),
    ("250 2.0.0 Ok: queued", "2.0.0", 250),
    # never from a version string, a dotted number or an IPv6 address
    ("Lotus SMTP MTA v4.6.1: User x not listed", None, None),
    ("421 4.7.0 [TSS04] deferred - 4.16.55.1; see", "4.7.0", 421),
    ("host mx.example [2001:db8:452::25]: 550 5.1.1 <a@b.example> unknown", "5.1.1", 550),
    ("host mx.example [IPv6:2001:db8::421]\n550 user unknown", None, 550),
    # Zoho and Exchange 2003 put the codes after a label
    ("a@b.example Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 <a@b.example>", "5.1.1", 550),
    ("<exch01.example #5.2.2>", "5.2.2", None),
])
def test_code_extraction(text, enhanced, code):
    assert classify.find_enhanced(text) == enhanced
    assert classify.find_smtp_code(text) == code


@pytest.mark.parametrize("status, code, text, action, klass, reason", [
    # 5.1.7 / 5.1.8 and "Sender address rejected" are about our return path, not the recipient
    ("5.1.8", 553, "Sender address rejected: Domain not found", "failed", "soft", "sender-rejected"),
    ("5.1.0", 553, "<x@y>: Sender address rejected: Domain not found", "failed", "soft", "sender-rejected"),
    (None, 550, "Sender verify failed", "failed", "soft", "sender-rejected"),
    ("5.1.1", 550, "Recipient address rejected: User unknown", "failed", "hard", "bad-mailbox"),
    # a full mailbox is soft whatever the 5.x.x around it says
    ("5.0.0", 552, "Mailbox quota exceeded for this recipient", "failed", "soft", "mailbox-full"),
    ("5.5.0", 550, "mailbox full", "failed", "soft", "mailbox-full"),
    ("5.2.2", 554, "STOREDRV.Deliver.Exception:QuotaExceededException", "failed", "soft", "mailbox-full"),
    # 552 is not always quota
    ("5.0.0", 552, "552 1 Requested mail action aborted, mailbox not found", "failed", "hard", "bad-mailbox"),
    (None, None, "User x (x@y.example) not listed in Domino Directory", "failed", "hard", "bad-mailbox"),
    ("5.4.7", 550, "message expired", "failed", "soft", "expired"),
    ("5.0.0", 554, "Blocked - see https://ipcheck.example/?ip=192.0.2.1", "failed", "soft", "blocked"),
    ("4.4.7", 451, "read error", "delayed", "delay", "delayed"),
    ("5.1.1", 550, "user unknown", "delayed", "delay", "delayed"),
])
def test_classify_real_world_forms(status, code, text, action, klass, reason):
    assert classify.classify(status, code, text, action) == classify.Verdict(klass, reason)


@pytest.mark.parametrize("status, code, text, klass, reason", [
    # a 5xx for a temporary or policy condition is soft: the address is fine
    ("5.7.1", 550, "Message rejected as spam by Content Filtering", "soft", "spam-block"),
    ("5.7.1", 554, "Client host [192.0.2.1] blocked using zen.dnsbl.example", "soft", "blocked"),
    ("5.7.25", 550, "The IP address sending this message does not have a PTR record setup", "soft", "blocked"),
    ("5.7.1", 554, "Rate limit exceeded: too many messages from your IP", "soft", "rate-limited"),
    ("4.7.0", 421, "temporarily deferred due to unexpected volume or user complaints", "soft", "rate-limited"),
    ("5.2.2", 552, "mailbox unavailable", "soft", "mailbox-full"),
    ("5.0.0", 550, "Account suspended for non-payment", "soft", "suspended"),
    ("5.7.0", 530, "Must issue a STARTTLS command first", "soft", "tls-required"),
    ("5.7.9", 554, "Message not accepted for policy reasons", "soft", "policy"),
    ("5.0.0", 550, "permanent failure for one or more recipients (a@b.example:blocked)", "soft", "blocked"),
    (None, None, "you may not have permission to post messages to the group", "soft", "policy"),
    ("4.4.7", 554, "Message expired: unable to deliver in 840 minutes", "soft", "expired"),
    # hard: the mailbox or the domain does not exist, or no longer accepts mail
    ("5.1.6", 551, "User has moved; please try <b@c.example>", "hard", "mailbox-moved"),
    ("5.0.0", 550, "Domain nomail.example does not accept mail (nullmx)", "hard", "not-accepting"),
    ("5.4.1", 550, "Recipient address rejected: Access denied. AS(201806281)", "hard", "bad-mailbox"),
    (None, None, "all relevant MX records point to non-existent hosts", "hard", "bad-domain"),
    ("5.0.0", 550, "Invalid Recipient - https://community.mimecast.example/docs", "hard", "bad-mailbox"),
    # a 4xx "user unknown" given up on is not proof the address is dead
    ("4.1.1", 450, "user unknown", "soft", "transient"),
])
def test_hard_means_the_address_does_not_exist(status, code, text, klass, reason):
    assert classify.classify(status, code, text, "failed") == classify.Verdict(klass, reason)
    assert (klass == "hard") == (reason in classify.HARD_REASONS)


def test_own_domains():
    own = verp.own_domains("bounce.platform.example", "kb-bounces", ["rp.customer.example"])
    assert own("kb-bounces.kibamail.com") and own("KB-Bounces.kibamail.com.")
    assert own("bounce.platform.example") and own("rp.customer.example")
    assert not own("mg.other-esp.example") and not own("kb-bounces.com")
    assert verp.own_domains()("kb-bounces.kbmta.net")
