# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which of the ACME role's certificates are due (the certificates_due module).

For each certificate ``<dir>/<name>.pem`` (full chain, the host's certificate first), its key
``<dir>/<name>.key`` and its CA record ``<dir>/<name>.ca`` (the directory URL it came from): due when
it is missing, its key is missing or does not match, it carries other names, it came from another
directory, or it has fewer than ``renew_days`` days left. Only local files are read.
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Dict, List, Optional

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_CRYPTOGRAPHY = False

PEM_END = b"-----END CERTIFICATE-----"


class CertificateError(Exception):
    """A file that is there but cannot be read as what it should be; the message names it."""


def wanted_names(names: List[str]) -> List[str]:
    return [name.lower().rstrip(".") for name in names]


def _public(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _not_after(cert: Any) -> datetime.datetime:
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _not_before(cert: Any) -> datetime.datetime:
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def _read(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _certificate(path: str, data: bytes) -> Any:
    first = data.split(PEM_END, 1)[0] + PEM_END + b"\n"
    try:
        return x509.load_pem_x509_certificate(first)
    except ValueError as exc:
        raise CertificateError("%s is not a PEM certificate (%s): move it away and run again to issue a new one"
                               % (path, exc)) from None


def _key_public(path: str, data: bytes) -> bytes:
    try:
        return _public(serialization.load_pem_private_key(data, password=None).public_key())
    except (ValueError, TypeError) as exc:
        raise CertificateError("%s is not an unencrypted PEM private key (%s)" % (path, type(exc).__name__)) from None


def inspect(directory_dir: str, item: Dict[str, Any], ca_url: str, renew_days: int,
            now: datetime.datetime) -> Dict[str, Any]:
    """The state of one certificate: names wanted, days left, issuer, due and why."""
    base = os.path.join(directory_dir, item["name"])
    wanted = wanted_names(item["names"])
    state: Dict[str, Any] = {"names": wanted, "days_left": None, "issuer": None, "due": True, "reason": ""}
    pem = _read(base + ".pem")
    if pem is None:
        state["reason"] = "no certificate yet"
        return state
    cert = _certificate(base + ".pem", pem)
    state["days_left"] = (_not_after(cert) - now).days
    issuers = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    state["issuer"] = str(issuers[0].value) if issuers else None
    try:
        carried = [n.lower() for n in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        carried = []
    key = _read(base + ".key")
    ca = (_read(base + ".ca") or b"").decode("utf-8", "replace").strip()
    renew_at = now + datetime.timedelta(days=renew_days)
    if key is None:
        state["reason"] = "its key is missing"
    elif _key_public(base + ".key", key) != _public(cert.public_key()):
        state["reason"] = "it does not match its key"
    elif sorted(carried) != sorted(wanted):
        state["reason"] = "it carries %s, not %s" % (", ".join(sorted(carried)), ", ".join(sorted(wanted)))
    elif ca != ca_url:
        state["reason"] = "it came from %s, not %s" % (ca or "an unknown CA", ca_url)
    elif not _not_before(cert) <= renew_at <= _not_after(cert):
        state["reason"] = "%s days left, fewer than %s" % (state["days_left"], renew_days)
    state["due"] = bool(state["reason"])
    return state


def inspect_all(directory_dir: str, items: List[Dict[str, Any]], ca_url: str, renew_days: int,
                now: Optional[datetime.datetime] = None) -> Dict[str, Dict[str, Any]]:
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    return {item["name"]: inspect(directory_dir, item, ca_url, renew_days, moment) for item in items}
