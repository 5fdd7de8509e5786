# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small pieces: key formats, SPF record reading, certificate name matching, the static resolver."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dkim import (
    DkimKeyError,
    key_bits,
    key_text_to_der,
    parse_tags,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import NODATA, NXDOMAIN, OK, StaticResolver
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import FAILURE, WARNING
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import OK as CHECK_OK
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_smtp import (
    RENEW_FIX,
    SmtpSettings,
    SmtpTarget,
    check_certificate,
    name_matches,
    plan_smtp_targets,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_spf import SpfEvaluator, all_qualifier, spf_records

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
DER = KEY.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
B64 = base64.b64encode(DER).decode()


@pytest.mark.parametrize("text", [
    KEY.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
    "v=DKIM1; k=rsa; p=" + B64,
    'kb1._domainkey IN TXT ( "v=DKIM1; h=sha256; k=rsa; "\n  "p=%s" "%s" )  ; ----- DKIM key kb1' % (B64[:200], B64[200:]),
    B64[:100] + "\n" + B64[100:],
])
def test_every_key_format_gives_the_same_key(text):
    assert key_text_to_der(text) == DER
    assert key_bits(DER) == 2048


@pytest.mark.parametrize("text, message", [("v=DKIM1; p=", "revoked"), ("p=!!!notbase64", "not valid base64")])
def test_bad_keys_say_why(text, message):
    with pytest.raises(DkimKeyError, match=message):
        key_text_to_der(text)


def test_tags():
    assert parse_tags("v=DMARC1; p=reject ;rua = mailto:a@b.example;") == {"v": "DMARC1", "p": "reject", "rua": "mailto:a@b.example"}


@pytest.mark.parametrize("record, qualifier", [
    ("v=spf1 ip4:192.0.2.0/24 -all", "-"), ("v=spf1 ~all", "~"), ("v=spf1 all", "+"),
    ("v=spf1 redirect=spf.kbmta.net", "redirect"), ("v=spf1 ip4:192.0.2.1", None)])
def test_all_qualifier(record, qualifier):
    assert all_qualifier(record) == qualifier


def test_spf_records_ignore_other_txt():
    assert spf_records(["google-site-verification=x", "v=spf1 -all", "v=spf10 nope"]) == ["v=spf1 -all"]


def test_certificate_names():
    assert name_matches("smtp.kbmta.net", ["smtp.kbmta.net"])
    assert name_matches("smtp.kbmta.net", ["*.kbmta.net"])
    assert not name_matches("a.smtp.kbmta.net", ["*.kbmta.net"])
    assert not name_matches("smtp-mkg.kbmta.net", ["smtp.kbmta.net"])


NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
PEBBLE = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pebble"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Pebble Intermediate CA 1a2b3c")])
LISTENER = SmtpTarget(address="203.0.113.10", port=587, name="lb-transactional 203.0.113.10:587", server_names=["smtp.kbmta.net"])


def der_certificate(days_left, issuer=PEBBLE, names=("smtp.kbmta.net", "us-mta1.kbmta.net")):
    """A certificate (DER) for ``names`` from ``issuer``, ending ``days_left`` days (and an hour) after NOW."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=30))
               .not_valid_after(NOW + datetime.timedelta(days=days_left, hours=1))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def certificate_result(days_left, chain_error="", **settings):
    return check_certificate(LISTENER, SmtpSettings(**settings), der_certificate(days_left), chain_error, now=NOW)


def test_certificate_reason_names_issuer_names_and_days_left():
    result = certificate_result(60)
    assert result.status == CHECK_OK and result.check == "tls_certificate" and result.fix == ""
    assert result.reason == ("trusted certificate issued by Pebble Intermediate CA 1a2b3c for smtp.kbmta.net, us-mta1.kbmta.net; "
                             "60 days left (until 2026-04-30)")


@pytest.mark.parametrize("issuer, shown", [
    (x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Let's Encrypt")]), "issued by Let's Encrypt for"),
    (x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]), "issued by C=US for"),
])
def test_issuer_without_common_name(issuer, shown):
    der = der_certificate(60, issuer=issuer)
    assert shown in check_certificate(LISTENER, SmtpSettings(), der, "", now=NOW).reason


def test_fewer_days_left_than_the_threshold_fails_with_the_renew_fix():
    result = certificate_result(5)
    assert result.status == FAILURE
    assert "fewer than 14 days" in result.reason and "5 days left (until 2026-03-06)" in result.reason
    assert "Pebble Intermediate CA 1a2b3c" in result.reason and "us-mta1.kbmta.net" in result.reason
    assert result.fix == RENEW_FIX and "playbooks/tls.yml" in result.fix and "platform_acme_renew_days" in result.fix
    # the fix names no listener and no number, so the report shows it once for every listener it applies to
    assert LISTENER.address not in result.fix and "5" not in result.fix


def test_expiry_checks_come_before_trust():
    """An untrusted certificate that is about to expire is reported as about to expire (renewing fixes both with ACME)."""
    result = certificate_result(5, chain_error="self-signed certificate", verify_chain=False)
    assert result.status == FAILURE and result.fix == RENEW_FIX


def test_under_twice_the_threshold_warns():
    result = certificate_result(20)
    assert result.status == WARNING and "fewer than 28 days" in result.reason and "20 days left" in result.reason
    assert result.fix == RENEW_FIX


def test_expired_certificate_fails_and_still_names_issuer():
    result = certificate_result(-3)
    assert result.status == FAILURE and result.fix == RENEW_FIX
    # it ended 2 days and 23 hours before NOW
    assert "expired on 2026-02-26 (2 days ago)" in result.reason and "issued by Pebble Intermediate CA 1a2b3c" in result.reason


def test_tls_min_days_is_honoured():
    assert certificate_result(60, min_days=90).status == FAILURE
    assert "fewer than 90 days" in certificate_result(60, min_days=90).reason
    assert certificate_result(5, min_days=3).status == WARNING
    assert certificate_result(5, min_days=0).status == CHECK_OK


def test_static_resolver_follows_cnames_and_tells_nodata_from_nxdomain():
    fake = StaticResolver({("a.test", "CNAME"): ["b.test."], ("b.test", "TXT"): ["hello"], ("x.b.test", "A"): ["192.0.2.1"]})
    answer = fake.lookup("A.test.", "TXT")
    assert (answer.status, answer.values, answer.canonical_name) == (OK, ("hello",), "b.test")
    assert fake.lookup("b.test", "A").status == NODATA
    assert fake.lookup("c.test", "A").status == NXDOMAIN


def test_spf_evaluation_shared_chain_is_remembered_and_macros_are_not():
    calls = []

    class Counting(StaticResolver):
        def lookup(self, name, rdtype):
            calls.append((name, rdtype))
            return super().lookup(name, rdtype)

    fake = Counting({("a.test", "TXT"): ["v=spf1 include:spf.test -all"], ("b.test", "TXT"): ["v=spf1 include:spf.test -all"],
                     ("spf.test", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all"],
                     ("m.test", "TXT"): ["v=spf1 exists:%{i}.ok.test -all"], ("192.0.2.9.ok.test", "A"): ["127.0.0.2"]})
    spf = SpfEvaluator(fake)
    assert spf.evaluate("192.0.2.9", "a.test").result == "pass"
    before = len(calls)
    assert spf.evaluate("192.0.2.9", "b.test").result == "pass"
    assert len(calls) == before + 1  # only b.test's own TXT: same record, same answer
    assert spf.evaluate("198.51.100.1", "a.test").result == "fail"
    assert spf.evaluate("192.0.2.9", "m.test").result == "pass"
    assert spf.evaluate("192.0.2.8", "m.test").result == "fail"  # macros: evaluated each time


def test_plan_smtp_targets():
    plan = {"load_balancers": {"lb-t": {"fqdn": "smtp.kbmta.net", "address": "203.0.113.10"}},
            "mtas": {"us-mta1": {"fqdn": "us-mta1.kbmta.net", "address": "203.0.113.21"}}}
    targets = plan_smtp_targets(plan)
    assert [(t.address, t.port, t.tls, t.auth, t.server_names) for t in targets] == [
        ("203.0.113.10", 25, "starttls", "any", ["smtp.kbmta.net"]),
        ("203.0.113.10", 465, "implicit", "required", ["smtp.kbmta.net"]),
        ("203.0.113.10", 587, "starttls", "required", ["smtp.kbmta.net"]),
        ("203.0.113.21", 25, "starttls", "any", ["us-mta1.kbmta.net"]),
    ]


def test_caching_resolver_chases_cnames_once_and_answers_the_cname_question():
    from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import Answer, CachingResolver

    class Authoritative:
        """Like BIND with recursion off: a CNAME into another zone comes back without the target's data."""
        follow_cnames = True

        def __init__(self):
            self.asked = []

        def lookup(self, name, rdtype):
            self.asked.append((name, rdtype))
            if name.startswith("kb-bounces.c"):
                return Answer(name=name, rdtype=rdtype, status=NODATA, canonical_name="kb-bounces.kbmta.net",
                              cname="kb-bounces.kbmta.net")
            if name == "kb-bounces.kbmta.net":
                return Answer(name=name, rdtype=rdtype, status=OK, values=("v=spf1 -all",), canonical_name=name)
            return Answer(name=name, rdtype=rdtype, status=NXDOMAIN)

    inner = Authoritative()
    cache = CachingResolver(inner)
    assert inner.follow_cnames is False  # the cache follows chains itself
    for i in range(3):
        answer = cache.lookup("kb-bounces.c%d.test" % i, "TXT")
        assert (answer.status, answer.values, answer.canonical_name) == (OK, ("v=spf1 -all",), "kb-bounces.kbmta.net")
        assert cache.lookup("kb-bounces.c%d.test" % i, "CNAME").values == ("kb-bounces.kbmta.net.",)
    assert inner.asked == [("kb-bounces.c0.test", "TXT"), ("kb-bounces.kbmta.net", "TXT"),
                           ("kb-bounces.c1.test", "TXT"), ("kb-bounces.c2.test", "TXT")]
    assert cache.lookup("gone.test", "TXT").status == NXDOMAIN
    assert cache.lookup("gone.test", "CNAME").status == NXDOMAIN and len(inner.asked) == 5
