# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import base64
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kibamail.email_platform.plugins.filter.dns import FilterModule, dkim_txt, zone_file_lines


@pytest.fixture(scope="module")
def rsa_public_pem(tmp_path_factory):
    key = tmp_path_factory.mktemp("dkim") / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    return subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout"], check=True, capture_output=True,
                          text=True).stdout


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"dkim_txt", "zone_file_lines"}


def test_dkim_txt_carries_the_whole_der_key(rsa_public_pem):
    value = dkim_txt(rsa_public_pem)
    assert value.startswith("v=DKIM1; k=rsa; p=")
    der = base64.b64decode(value.split("p=", 1)[1])
    body = "".join(line for line in rsa_public_pem.splitlines() if "-----" not in line)
    assert der == base64.b64decode(body)
    assert len(value) > 255  # a 2048-bit key needs more than one TXT string


def test_dkim_txt_refuses_private_keys_and_garbage(rsa_public_pem):
    with pytest.raises(AnsibleFilterError, match="private key"):
        dkim_txt("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(AnsibleFilterError, match="no '-----BEGIN PUBLIC KEY-----'"):
        dkim_txt("hello")
    with pytest.raises(AnsibleFilterError, match="not valid base64"):
        dkim_txt("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n")
    with pytest.raises(AnsibleFilterError, match="key_type"):
        dkim_txt(rsa_public_pem, key_type="dsa")


def test_zone_file_lines_quote_and_split_txt(rsa_public_pem):
    dkim = dkim_txt(rsa_public_pem)
    lines = zone_file_lines([
        {"name": "kb-bounces.example.com", "type": "CNAME", "ttl": 300, "values": ["kb-bounces.kbmta.net"]},
        {"name": "kb1._domainkey.example.com", "type": "TXT", "values": [dkim]},
    ], ttl=600)
    assert lines[0] == "kb-bounces.example.com. 300 IN CNAME kb-bounces.kbmta.net."
    assert lines[1].startswith('kb1._domainkey.example.com. 600 IN TXT "v=DKIM1; k=rsa; p=')
    strings = lines[1].split(" IN TXT ", 1)[1].split('" "')
    assert len(strings) == 2
    assert "".join(s.strip('"') for s in strings) == dkim


def test_zone_file_lines_refuses_bad_input():
    with pytest.raises(AnsibleFilterError, match="list of record sets"):
        zone_file_lines("x")
    with pytest.raises(AnsibleFilterError, match="needs name, type and values"):
        zone_file_lines([{"name": "a"}])
    with pytest.raises(AnsibleFilterError, match="item 0: A value"):
        zone_file_lines([{"name": "a.example", "type": "A", "values": ["x"]}])
