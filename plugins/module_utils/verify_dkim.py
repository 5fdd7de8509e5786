# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""DKIM key records: parse the published TXT, compare it with the signing key, size it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Dict, Optional

try:
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - depends on the controller
    HAS_CRYPTOGRAPHY = False

MIN_KEY_BITS = 2048

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


class DkimKeyError(ValueError):
    """A key or record that cannot be read; the message says what is wrong."""


def parse_tags(record: str) -> Dict[str, str]:
    """A tag=value list (RFC 6376 3.2) as a dict; whitespace around tags and values ignored."""
    tags = {}
    for part in record.split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise DkimKeyError("the DKIM record has a part without '=': %r" % part)
        name, value = part.split("=", 1)
        tags[name.strip().lower()] = "".join(value.split())
    return tags


def key_text_to_der(text: str) -> bytes:
    """The DER public key from any of: a PEM public key, a DKIM TXT value
    ("v=DKIM1; k=rsa; p=..."), an opendkim-genkey zone snippet, or bare base64."""
    text = text.strip()
    if "-----BEGIN" in text:
        body = "".join(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("-----"))
        return _b64(body)
    quoted = _QUOTED.findall(text)
    if quoted:
        text = "".join(quoted)
    if "p=" in text:
        tags = parse_tags(text)
        return _b64(tags.get("p", ""))
    return _b64("".join(text.split()))


def _b64(value: str) -> bytes:
    if not value:
        raise DkimKeyError("the key is empty (p= with no value means the key was revoked)")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DkimKeyError("the key is not valid base64 (%s)" % exc)


def der_to_b64(der: bytes) -> str:
    return base64.b64encode(der).decode("ascii")


def fingerprint(der: bytes) -> str:
    """A short, comparable name for a key: the start of its SHA-256."""
    return "sha256:" + hashlib.sha256(der).hexdigest()[:16]


def key_bits(der: bytes) -> Optional[int]:
    """The RSA modulus size in bits, or None when it cannot be read here."""
    if not HAS_CRYPTOGRAPHY:
        return None
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError("the key is not a DER SubjectPublicKeyInfo public key (%s)" % exc)
    return getattr(key, "key_size", None)


def dkim_txt_value(der: bytes) -> str:
    """The TXT value that publishes this key."""
    return "v=DKIM1; k=rsa; p=%s" % der_to_b64(der)
