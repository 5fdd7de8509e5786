# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Helpers the verification tests share: the lab's spec, DKIM keys and their encodings, names.

A module of its own (not conftest) so the test modules import it by a name no other
folder uses: with several folders on one pytest command line, ``conftest`` may be
another folder's. The fixtures stay in conftest.py.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

NAME = "smtp.kbmta.test"   # the name the loopback SMTP server's certificate carries
DNSBL_ZONE = "bl.kbmta.test"


def rsa_key(bits=2048):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.public_key()


def pem(public_key) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def b64(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()
