# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Both streams carry real mail, and only as the login's own domains (needs the running lab).

- kibamail.com's transactional login sends through smtp.kbmta.net and its marketing login
  through smtp-mkg.kbmta.net; each message leaves from an address of its own pool, with the
  HELO its PTR names (through the lab's stock resolver), DKIM-signed as kibamail.com;
- a login is refused (535) on the other stream's load balancer;
- a header From or Sender outside the login's domains, a look-alike domain, a display-name
  trick, two From addresses and no From are refused at the end of DATA with 5.7.x; the
  positive control beside them is delivered.
"""

from __future__ import annotations

import ipaddress
import json
import smtplib
import ssl
import time
import uuid
from typing import Any, Dict, List, Optional

import dns.resolver
import dns.reversename
import pytest
import yaml

from reliability_support import ROOT, Lab, lab_resolver, docker, lab_vault, python_in

pytestmark = pytest.mark.lab

LOGINS = {"transactional": "support@kibamail.com", "marketing": "news@kibamail.com"}


def pools() -> Dict[str, Any]:
    text = (ROOT / "inventories" / "lab" / "group_vars" / "all" / "platform.yml").read_text()
    return dict(yaml.safe_load(text)["platform_pools"])


def connect(lab: Lab, pool: str, login: str) -> smtplib.SMTP:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE      # the lab's certificates are self-signed (issue 22)
    client = smtplib.SMTP(lab.data["submission"][pool]["address"], 587, timeout=30)
    client.starttls(context=context)
    client.login(login, str(lab_vault()["vault_sasl_passwords"][login]))
    return client


def raw(headers: List[str], body: str = "A test of the lab's streams.") -> bytes:
    return ("\r\n".join(headers + ["", body, ""])).encode()


def send(lab: Lab, pool: str, login: str, headers: List[str], recipient: str) -> Optional[smtplib.SMTPResponseException]:
    """None when accepted; the refusal otherwise."""
    with connect(lab, pool, login) as client:
        try:
            client.sendmail(login, [recipient], raw(headers))
        except smtplib.SMTPDataError as exc:
            return exc
    return None


FIND = r'''
import json, os, sys
store, wanted = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(store)):
    if name.endswith(".eml"):
        data = open(os.path.join(store, name), "rb").read().decode("utf-8", "replace")
        if wanted in data:
            meta = os.path.join(store, name[:-4] + ".json")
            print(json.dumps({"eml": data, "meta": json.load(open(meta)) if os.path.exists(meta) else {}}))
            break
'''


def stored(lab: Lab, needle: str, seconds: float = 90) -> Optional[Dict[str, Any]]:
    receiver = lab.data["receiver"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out = python_in(lab.container(receiver["host"]), FIND, [receiver["store_dir"], needle])
        if out.returncode == 0 and out.stdout.strip():
            return dict(json.loads(out.stdout.decode()))
        time.sleep(2)
    return None


def resolver(lab: Lab) -> dns.resolver.Resolver:
    return lab_resolver(lab.data)


@pytest.mark.parametrize("pool", sorted(LOGINS))
def test_each_stream_sends_from_its_own_pool_signed(lab: Lab, pool: str, figures: Dict[str, Any]) -> None:
    tag = uuid.uuid4().hex[:12]
    login = LOGINS[pool]
    recipient = "stream-%s@%s" % (tag, lab.data["receiver"]["domain"])
    refused = send(lab, pool, login, ["From: Kibamail <%s>" % login, "To: %s" % recipient,
                                      "Subject: stream %s %s" % (pool, tag), "Message-ID: <stream-%s@kibamail.com>" % tag],
                   recipient)
    assert refused is None, refused
    found = stored(lab, "stream-%s@kibamail.com" % tag)
    assert found, "the %s message never reached the receiver" % pool
    ip, helo = str(found["meta"].get("peer_ip")), str(found["meta"].get("helo"))
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(pools()[pool]["subnet"]), (pool, ip)
    ptr = [r.to_text().rstrip(".") for r in resolver(lab).resolve(dns.reversename.from_address(ip), "PTR")]
    assert ptr == [helo], (ip, helo, ptr)
    assert "DKIM-Signature:" in found["eml"] and "d=kibamail.com" in found["eml"].replace("\r\n", "").replace("\n", "")
    figures.update(pool=pool, peer=ip, helo=helo)


@pytest.mark.parametrize("pool,other", [("transactional", "marketing"), ("marketing", "transactional")])
def test_a_login_is_refused_on_the_other_streams_load_balancer(lab: Lab, pool: str, other: str) -> None:
    with pytest.raises(smtplib.SMTPAuthenticationError) as err:
        connect(lab, other, LOGINS[pool]).quit()
    assert err.value.smtp_code == 535


SPOOFS = {
    "foreign From": ["From: ceo@bank.example"],
    "look-alike domain": ["From: support@kibamai1.com"],
    "subdomain trick": ["From: support@kibamail.com.bank.example"],
    "display-name trick": ['From: "support@kibamail.com" <x@bank.example>'],
    "two From addresses": ["From: support@kibamail.com, ceo@bank.example"],
    "no From": [],
    "foreign Sender": ["From: support@kibamail.com", "Sender: x@bank.example"],
}


@pytest.mark.parametrize("case", sorted(SPOOFS))
def test_a_header_from_outside_the_logins_domains_is_refused(lab: Lab, case: str) -> None:
    tag = uuid.uuid4().hex[:12]
    recipient = "spoof-%s@%s" % (tag, lab.data["receiver"]["domain"])
    headers = SPOOFS[case] + ["To: %s" % recipient, "Subject: %s" % case, "Message-ID: <spoof-%s@kibamail.com>" % tag]
    refused = send(lab, "transactional", LOGINS["transactional"], headers, recipient)
    assert refused is not None, "%s was accepted" % case
    assert refused.smtp_code == 550 and refused.smtp_error.decode().startswith("5.7."), refused
    assert stored(lab, "spoof-%s@kibamail.com" % tag, seconds=5) is None


def test_the_positive_control_with_display_name_and_sender_is_delivered(lab: Lab) -> None:
    tag = uuid.uuid4().hex[:12]
    recipient = "control-%s@%s" % (tag, lab.data["receiver"]["domain"])
    headers = ['From: "Kibamail Support" <support@kibamail.com>', "Sender: support@kibamail.com",
               "To: %s" % recipient, "Subject: control", "Message-ID: <control-%s@kibamail.com>" % tag]
    assert send(lab, "transactional", LOGINS["transactional"], headers, recipient) is None
    assert stored(lab, "control-%s@kibamail.com" % tag), "the positive control never arrived"


def test_the_sender_milter_runs_on_every_mta(lab: Lab) -> None:
    # (Bounces on port 25 pass no milter: test_lab_names_reliability sends one through.)
    for host in lab.hosts_with_role("mta_transactional") + lab.hosts_with_role("mta_marketing"):
        state = docker("exec", host, "systemctl", "is-active", "kibamail-sender-milter", check=False).stdout.decode().strip()
        assert state == "active", (host, state)
