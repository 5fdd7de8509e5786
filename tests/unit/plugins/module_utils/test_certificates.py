# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificates_due's reading of certificates on disk: every reason a certificate is due, in the order
the ACME role gives them, against certificates made here with cryptography."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import List

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.kibamail.email_platform.plugins.module_utils.certificates import (
    CertificateError,
    inspect_all,
)

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.timezone.utc)
CA_URL = "https://ca.example/dir"
ITEM = {"name": "us-mta1", "names": ["US-MTA1.kbmta.net."]}


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write(directory: Path, names: List[str] = ("us-mta1.kbmta.net",), days: int = 90, key=None,
          ca: str = CA_URL, issuer: str = "Test Intermediate") -> ec.EllipticCurvePrivateKey:
    key = key or ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    chain = cert.public_bytes(serialization.Encoding.PEM) * 2      # the full chain: the host's first
    (directory / "us-mta1.pem").write_bytes(chain)
    (directory / "us-mta1.key").write_bytes(key_pem(key))
    (directory / "us-mta1.ca").write_text(ca + "\n")
    return key


def state(directory: Path, renew_days: int = 30) -> dict:
    return inspect_all(str(directory), [ITEM], CA_URL, renew_days, NOW)["us-mta1"]


def test_a_good_certificate_is_not_due(tmp_path):
    write(tmp_path)
    assert state(tmp_path) == {"names": ["us-mta1.kbmta.net"], "days_left": 90, "issuer": "Test Intermediate",
                               "due": False, "reason": ""}


def test_no_certificate_yet(tmp_path):
    assert state(tmp_path / "not-made-yet") == {"names": ["us-mta1.kbmta.net"], "days_left": None, "issuer": None,
                                                "due": True, "reason": "no certificate yet"}


def test_a_missing_key(tmp_path):
    write(tmp_path)
    (tmp_path / "us-mta1.key").unlink()
    assert state(tmp_path)["reason"] == "its key is missing"


def test_a_key_of_another_certificate(tmp_path):
    write(tmp_path)
    (tmp_path / "us-mta1.key").write_bytes(key_pem(ec.generate_private_key(ec.SECP256R1())))
    assert state(tmp_path)["reason"] == "it does not match its key"


def test_other_names(tmp_path):
    write(tmp_path, names=["us-mta1.kbmta.net", "old.kbmta.net"])
    assert state(tmp_path)["reason"] == "it carries old.kbmta.net, us-mta1.kbmta.net, not us-mta1.kbmta.net"


def test_another_ca_or_none_recorded(tmp_path):
    write(tmp_path, ca="https://other.example/dir")
    assert state(tmp_path)["reason"] == "it came from https://other.example/dir, not %s" % CA_URL
    (tmp_path / "us-mta1.ca").unlink()
    assert state(tmp_path)["reason"] == "it came from an unknown CA, not %s" % CA_URL


@pytest.mark.parametrize("days, due", [(31, False), (29, True)])
def test_renewal_window(tmp_path, days, due):
    write(tmp_path, days=days)
    result = state(tmp_path)
    assert result["due"] is due
    assert result["reason"] == ("%d days left, fewer than 30" % days if due else "")


def test_a_file_that_is_not_a_certificate_is_named(tmp_path):
    write(tmp_path)
    (tmp_path / "us-mta1.pem").write_text("not a certificate\n")
    with pytest.raises(CertificateError, match="us-mta1.pem is not a PEM certificate"):
        state(tmp_path)
