# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names a receiver can resolve, asked as a receiver asks (needs the running lab).

Every query goes through the lab's stock recursive resolver (kb-resolver: Debian's BIND with
Debian's default options, so at most 100 records of one type at a name), never the
authoritative server. The expectations come from the inventory (the pools' subnets and
gateways) and from what the receiver stored, not from the plan code under test:

- every usable address of both pools has one PTR, whose name resolves back to that address
  (forward-confirmed reverse DNS) and lies under the name of an MTA of that pool;
- the HELO of a message delivered to the receiver is its sending IP's PTR name;
- the MX hosts of the bounce domain resolve, and port 25 answers on every address;
- a bounce the receiver sends to a VERP address (MX found through the same resolver)
  reaches the bounce processor.
"""

from __future__ import annotations

import ipaddress
import json
import smtplib
import socket
import ssl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import Any, Dict, List, Tuple

import dns.exception
import dns.rdatatype
import dns.resolver
import dns.reversename
import pytest
import yaml

from reliability_support import ROOT, Lab, lab_resolver, docker, lab_vault, python_in

pytestmark = pytest.mark.lab

SENDER = "support@kibamail.com"
CUSTOMER = "kibamail.com"


def resolver(lab: Lab) -> dns.resolver.Resolver:
    return lab_resolver(lab.data)


def lookup(res: dns.resolver.Resolver, name: str, rdtype: str) -> List[str]:
    """The values of (name, type), or a short text for what went wrong (SERVFAIL included)."""
    try:
        return [r.to_text() for r in res.resolve(name, rdtype)]
    except dns.resolver.NoNameservers as exc:     # SERVFAIL from the resolver
        return ["<SERVFAIL: %s>" % exc]
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout:
        return ["<timeout>"]


def inventory_pools() -> Dict[str, Dict[str, Any]]:
    text = (ROOT / "inventories" / "lab" / "group_vars" / "all" / "platform.yml").read_text()
    return dict(yaml.safe_load(text)["platform_pools"])


def mta_names(lab: Lab, pool: str) -> List[str]:
    return ["%s.kbmta.net" % h for h in lab.hosts_with_role("mta_%s" % pool)]


def test_every_sending_ip_of_both_pools_is_forward_confirmed(lab: Lab, figures: Dict[str, Any]) -> None:
    res = resolver(lab)
    problems: List[str] = []
    checked = 0
    for pool, conf in sorted(inventory_pools().items()):
        net = ipaddress.ip_network(conf["subnet"])
        gateway = ipaddress.ip_address(conf.get("gateway", net.network_address + 1))
        parents = mta_names(lab, pool)
        addresses = [str(a) for a in net.hosts() if a != gateway]

        def confirm(ip: str, parents: List[str] = parents) -> Tuple[str, str]:
            names = [n.rstrip(".") for n in lookup(res, dns.reversename.from_address(ip).to_text(), "PTR")]
            if len(names) != 1 or names[0].startswith("<"):
                return ip, "PTR is %s" % (names or "missing")
            forward = lookup(res, names[0], "A")
            if ip not in forward:
                return ip, "PTR %s, whose A is %s" % (names[0], forward[:3])
            if not any(names[0].endswith("." + p) for p in parents):
                return ip, "PTR %s is under none of %s" % (names[0], parents)
            return ip, ""

        with ThreadPoolExecutor(max_workers=16) as pool_exec:
            for ip, problem in pool_exec.map(confirm, addresses):
                checked += 1
                if problem:
                    problems.append("%s: %s" % (ip, problem))
    figures.update(sending_ips_checked=checked, not_confirmed=len(problems))
    assert checked == 506
    assert not problems, "%d of %d sending IPs not forward-confirmed through the stock resolver, e.g. %s" % (
        len(problems), checked, problems[:5])


def test_each_mta_name_answers_the_address_it_receives_on(lab: Lab) -> None:
    res = resolver(lab)
    for host in lab.hosts_with_role("mta_transactional") + lab.hosts_with_role("mta_marketing"):
        assert lookup(res, "%s.kbmta.net" % host, "A") == [lab.address(host)]


def submit(lab: Lab, recipient: str, tag: str) -> str:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = recipient
    msg["Subject"] = "names %s" % tag
    msg["Message-ID"] = "<names-%s@%s>" % (tag, CUSTOMER)
    msg.set_content("HELO and PTR of the sending IP.\n")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE      # the lab's certificates are self-signed (issue 22)
    with smtplib.SMTP(lab.data["submission"]["transactional"]["address"], 587, timeout=30) as client:
        client.starttls(context=context)
        client.login(SENDER, str(lab_vault()["vault_sasl_passwords"][SENDER]))
        client.send_message(msg)
    return str(msg["Message-ID"])


FIND_META = r'''
import json, os, sys
store, wanted = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(store)):
    if name.endswith(".eml") and wanted in open(os.path.join(store, name), "rb").read().decode("utf-8", "replace"):
        meta = os.path.join(store, name[:-4] + ".json")
        print(open(meta).read() if os.path.exists(meta) else "{}")
        break
'''


def test_the_helo_of_delivered_mail_is_its_sending_ips_ptr(lab: Lab, figures: Dict[str, Any]) -> None:
    tag = uuid.uuid4().hex[:12]
    message_id = submit(lab, "names-%s@%s" % (tag, lab.data["receiver"]["domain"]), tag)
    receiver = lab.data["receiver"]
    meta: Dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not meta:
        out = python_in(lab.container(receiver["host"]), FIND_META, [receiver["store_dir"], message_id])
        meta = json.loads(out.stdout.decode() or "{}") if out.returncode == 0 and out.stdout.strip() else {}
        if not meta:
            time.sleep(2)
    assert meta, "%s did not reach the receiver" % message_id
    ip, helo = str(meta.get("peer_ip") or ""), str(meta.get("helo") or "")
    res = resolver(lab)
    ptr = [n.rstrip(".") for n in lookup(res, dns.reversename.from_address(ip).to_text(), "PTR")]
    figures.update(peer=ip, helo=helo, ptr=ptr)
    assert ptr == [helo], "HELO %s from %s, whose PTR through the stock resolver is %s" % (helo, ip, ptr)
    assert ip in lookup(res, helo, "A")


def smtp_banner(address: str) -> str:
    with socket.create_connection((address, 25), timeout=10) as conn:
        return conn.recv(512).decode("ascii", "replace")


def test_the_bounce_mx_resolves_to_addresses_where_port_25_answers(lab: Lab, figures: Dict[str, Any]) -> None:
    res = resolver(lab)
    mx = sorted(v.split()[1].rstrip(".") for v in lookup(res, "kb-bounces.kbmta.net", "MX"))
    assert mx == sorted(mta_names(lab, "transactional") + mta_names(lab, "marketing"))
    answered = {}
    for host in mx:
        addresses = lookup(res, host, "A")
        assert addresses and not any(a.startswith("<") for a in addresses), "%s: %s" % (host, addresses)
        for address in addresses:
            answered[address] = smtp_banner(address)
            assert answered[address].startswith("220 "), (host, address, answered[address])
    figures.update(mx_hosts=len(mx), addresses=len(answered))


SEND_DSN = r'''
import smtplib, sys
address, recipient, body = sys.argv[1], sys.argv[2], sys.argv[3]
with smtplib.SMTP(address, 25, local_hostname="mx.recipient.example", timeout=30) as client:
    client.sendmail("", [recipient], body.encode())
print("sent")
'''


def dsn(final_recipient: str, verp: str, message_id: str) -> str:
    return "\r\n".join([
        "From: Mail Delivery System <MAILER-DAEMON@mx.recipient.example>",
        "To: %s" % verp,
        "Subject: Undelivered Mail Returned to Sender",
        "Message-ID: <dsn-%s@mx.recipient.example>" % uuid.uuid4().hex[:12],
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"',
        "",
        "--b1",
        "Content-Type: text/plain",
        "",
        "The mail system could not deliver your message to %s." % final_recipient,
        "",
        "--b1",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; mx.recipient.example",
        "",
        "Final-Recipient: rfc822; %s" % final_recipient,
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 <%s>: Recipient address rejected: User unknown" % final_recipient,
        "",
        "--b1",
        "Content-Type: text/rfc822-headers",
        "",
        "From: %s" % SENDER,
        "To: %s" % final_recipient,
        "Message-ID: %s" % message_id,
        "",
        "--b1--",
        "",
    ])


def test_a_bounce_from_the_receiver_to_a_verp_address_reaches_the_processor(lab: Lab) -> None:
    tag = uuid.uuid4().hex[:12]
    final = "gone-%s@recipient.example" % tag
    verp = "bounces+gone-%s=recipient.example@kb-bounces.%s" % (tag, CUSTOMER)
    res = resolver(lab)
    # The return path is a CNAME to the bounce domain: its MX is found through it, as a receiver does.
    hosts = sorted(v.split()[1].rstrip(".") for v in lookup(res, "kb-bounces.%s" % CUSTOMER, "MX"))
    assert hosts, "no MX for kb-bounces.%s through the stock resolver" % CUSTOMER
    address = lookup(res, hosts[0], "A")[0]
    proc = python_in(lab.container(lab.data["receiver"]["host"]), SEND_DSN, [address, verp, dsn(final, verp, "<names-%s@%s>" % (tag, CUSTOMER))], timeout=60)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-1000:]
    mta = next(h for h in lab.data["hosts"] if lab.address(h) == address)
    deadline = time.monotonic() + 60
    listing = ""
    while time.monotonic() < deadline:
        listing = docker("exec", mta, "kb-bounce", "list", "--json", "--limit", "200").stdout.decode()
        if final in listing:
            break
        time.sleep(2)
    assert final in listing, "no kb-bounce event for %s on %s (%s)" % (final, mta, listing[-500:])
