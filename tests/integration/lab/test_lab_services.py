# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The running lab matches its description (.lab/lab.json) and its services
behave: the DNS server is authoritative for the lab zones and takes updates
signed with the lab's TSIG key only; the receiver accepts its domain and
refuses others; the webhook recorder and the stand-ins answer; the Robot
stand-in's PTRs are the DNS server's PTRs. Skipped when the lab is not up.
"""
from __future__ import annotations

import json
import re
import smtplib
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.tsig
import dns.update
import pytest

ROOT = Path(__file__).resolve().parents[3]
LAB_JSON = ROOT / ".lab" / "lab.json"


def load_lab() -> Optional[Dict[str, Any]]:
    if not LAB_JSON.is_file():
        return None
    lab = json.loads(LAB_JSON.read_text(encoding="utf-8"))
    probe = subprocess.run(["docker", "container", "inspect", "-f", "{{ .State.Running }}", "kb-ns", "kb-mx"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0 or probe.stdout.split() != ["true", "true"]:
        return None
    return lab


LAB = load_lab()
pytestmark = pytest.mark.skipif(LAB is None, reason="the lab is not up (scripts/lab.sh up)")


def lab() -> Dict[str, Any]:
    assert LAB is not None
    return LAB


def dns_address() -> str:
    return str(lab()["dns"]["address"])


def dns_port() -> int:
    return int(lab()["dns"]["port"])


def tsig_key() -> dns.tsig.Key:
    text = Path(lab()["dns"]["tsig"]["key_file"]).read_text(encoding="utf-8")
    name = re.search(r'key\s+"([^"]+)"', text)
    algorithm = re.search(r"algorithm\s+([A-Za-z0-9-]+)\s*;", text)
    secret = re.search(r'secret\s+"([^"]+)"', text)
    assert name and algorithm and secret, "the TSIG key file is not in BIND format"
    assert name.group(1) == lab()["dns"]["tsig"]["name"]
    return dns.tsig.Key(name.group(1), secret.group(1), algorithm.group(1))


def resolver() -> dns.resolver.Resolver:
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [dns_address()]
    res.port = dns_port()
    res.lifetime = 5
    return res


def test_every_host_has_its_described_address() -> None:
    for name, host in lab()["hosts"].items():
        assert host["running"], "%s is not running" % name
        assert any(a.split("/")[0] == host["address"] for a in host["addresses"]), (name, host["addresses"])


@pytest.mark.parametrize("zone", [
    "kbmta.net", "kibamail.com", "recipient.example",
    "100.51.198.in-addr.arpa", "2.0.192.in-addr.arpa", "113.0.203.in-addr.arpa",
])
def test_the_dns_server_is_authoritative_for_each_lab_zone(zone: str) -> None:
    assert zone in lab()["dns"]["zones"]
    response = dns.query.udp(dns.message.make_query(zone, dns.rdatatype.SOA), dns_address(), port=dns_port(), timeout=5)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert response.answer and response.answer[0].rdtype == dns.rdatatype.SOA


def test_a_signed_update_is_applied_and_an_unsigned_one_refused() -> None:
    name = "_lab-selftest.kbmta.net."
    unsigned = dns.update.UpdateMessage("kbmta.net")
    unsigned.replace(name, 60, "TXT", '"unsigned"')
    answer = dns.query.udp(unsigned, dns_address(), port=dns_port(), timeout=5)
    assert answer.rcode() == dns.rcode.REFUSED

    signed = dns.update.UpdateMessage("kbmta.net", keyring=tsig_key())
    signed.replace(name, 60, "TXT", '"signed"')
    assert dns.query.tcp(signed, dns_address(), port=dns_port(), timeout=5).rcode() == dns.rcode.NOERROR
    try:
        texts = [b"".join(r.strings) for r in resolver().resolve(name, "TXT")]
        assert texts == [b"signed"]
    finally:
        cleanup = dns.update.UpdateMessage("kbmta.net", keyring=tsig_key())
        cleanup.delete(name)
        dns.query.tcp(cleanup, dns_address(), port=dns_port(), timeout=5)
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver().resolve(name, "TXT")


def test_the_receiver_accepts_its_domain_and_refuses_others() -> None:
    receiver = lab()["receiver"]
    mx = [r.to_text() for r in resolver().resolve(receiver["domain"], "MX")]
    assert mx == ["10 %s." % receiver["mx"]]
    # The demo's bounce target: MX is the receiver, which refuses the domain.
    gone = [r.to_text() for r in resolver().resolve("gone." + receiver["domain"], "MX")]
    assert gone == ["10 %s." % receiver["mx"]]
    with smtplib.SMTP(receiver["address"], 25, local_hostname="lab-selftest.kibamail.test", timeout=15) as client:
        client.ehlo()
        assert client.mail("selftest@kibamail.com")[0] == 250
        assert client.rcpt("someone@" + receiver["domain"])[0] == 250
        code, _text = client.rcpt("someone@gone." + receiver["domain"])
        assert code == 550
        client.rset()


def test_the_webhook_recorder_answers() -> None:
    with urllib.request.urlopen(lab()["webhook"]["url"], timeout=10) as answer:
        assert isinstance(json.loads(answer.read().decode("utf-8")), list)


@pytest.mark.parametrize("standin", ["robot", "cloud_dns"])
def test_the_stand_ins_answer_on_loopback(standin: str) -> None:
    url = lab()["standins"][standin]["url"]
    assert url.startswith("http://127.0.0.1:")
    try:
        urllib.request.urlopen(url + "/", timeout=10).close()
    except urllib.error.HTTPError as exc:  # any HTTP answer means it is up (it wants credentials)
        assert 400 <= exc.code < 500


def robot_ptr(ip: str) -> Optional[str]:
    # Read-only conversation with the stand-in's test control endpoint.
    with urllib.request.urlopen(lab()["standins"]["robot"]["url"] + "/_admin/state", timeout=10) as answer:
        state = json.loads(answer.read().decode("utf-8"))
    return (state.get("rdns") or {}).get(ip)


@pytest.mark.parametrize("ip", ["192.0.2.10", "192.0.2.200", "203.0.113.10", "203.0.113.200"])
def test_robot_rdns_writes_are_the_lab_dns_ptrs(ip: str) -> None:
    ptr = robot_ptr(ip)
    if ptr is None:
        pytest.skip("no PTR for %s in the Robot stand-in yet (site.yml has not run)" % ip)
    names = [r.to_text().rstrip(".") for r in resolver().resolve(dns.reversename.from_address(ip), "PTR")]
    assert names == [ptr.rstrip(".")]
