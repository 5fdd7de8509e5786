# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Containment of the running lab (scripts/lab.sh up).

No lab message may reach a real mail server:
- lab hosts resolve names only through the lab's stock recursive resolver
  (kb-resolver), which knows only the lab's zones (static stubs to the lab's
  authoritative server, which does not recurse) and no root but the lab's,
  so no outside name resolves inside the lab;
- SMTP (25, 465, 587) leaving the lab's networks is dropped on the host by a
  rule in Docker's DOCKER-USER chain.

Each negative check has a positive control beside it (a lab name resolves,
port 80 of the same outside address is reachable), so a check cannot pass
because the lab is simply broken. Skipped when the lab is not up.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

ROOT = Path(__file__).resolve().parents[3]
LAB_JSON = ROOT / ".lab" / "lab.json"
# The host's Debian mirror: an address outside the lab that containers reach
# through NAT (HTTP), and that no lab message must reach over SMTP.
OUTSIDE_ADDRESS = "203.0.113.80"
OUTSIDE_NAMES = ["deb.debian.org", "gmail.com", "example.com"]
RULE_COMMENT = "kibamail-lab-smtp-egress"
# A lab container without on-link routes to the pools, so that traffic to the
# outside address really leaves through the docker gateway.
PROBE_HOST = "lb-transactional"

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    print("failed:", type(exc).__name__, exc)
else:
    print("connected")
"""

RESOLVE = """
import socket, sys
try:
    print(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 25, socket.AF_INET)}))
except socket.gaierror as exc:
    print("unresolved", exc.errno)
"""


def load_lab() -> Optional[Dict[str, object]]:
    if not LAB_JSON.is_file() or shutil.which("docker") is None:
        return None
    lab = json.loads(LAB_JSON.read_text(encoding="utf-8"))
    probe = subprocess.run(
        ["docker", "container", "inspect", "-f", "{{ .State.Running }}", PROBE_HOST, "kb-ns"],
        capture_output=True, text=True, check=False,
    )
    if probe.returncode != 0 or probe.stdout.split() != ["true", "true"]:
        return None
    return lab


LAB = load_lab()
pytestmark = pytest.mark.skipif(LAB is None, reason="the lab is not up (scripts/lab.sh up)")


def in_container(host: str, script: str, *args: str, timeout: float = 30) -> str:
    proc = subprocess.run(
        ["docker", "exec", host, "python3", "-c", script, *args],
        capture_output=True, text=True, check=True, timeout=timeout,
    )
    return proc.stdout.strip()


def dns_server() -> Dict[str, object]:
    """The server every lab host resolves through: the lab's stock recursive resolver."""
    assert LAB is not None
    return LAB["resolver"]  # type: ignore[return-value]


def auth_server() -> Dict[str, object]:
    """The lab's authoritative server (kb-ns): recursion off."""
    assert LAB is not None
    return LAB["dns"]  # type: ignore[return-value]


def rule_packets() -> Optional[int]:
    """Packets the lab's SMTP egress rule has matched, or None without the rule."""
    listing = subprocess.run(
        ["iptables", "-L", "DOCKER-USER", "-n", "-v", "-x"],
        capture_output=True, text=True, check=True,
    ).stdout
    for line in listing.splitlines():
        if RULE_COMMENT in line:
            fields = line.split()
            assert "REJECT" in fields or "DROP" in fields, line
            return int(fields[0])
    return None


def test_lab_hosts_use_only_docker_dns_forwarding_to_the_lab_server() -> None:
    conf = subprocess.run(["docker", "exec", PROBE_HOST, "cat", "/etc/resolv.conf"],
                          capture_output=True, text=True, check=True).stdout
    servers = re.findall(r"^nameserver\s+(\S+)", conf, re.MULTILINE)
    # Docker's embedded resolver on user networks forwards to --dns only.
    assert servers in (["127.0.0.11"], [dns_server()["address"]]), conf
    inspect = subprocess.run(["docker", "container", "inspect", "-f", "{{ json .HostConfig.Dns }}", PROBE_HOST],
                             capture_output=True, text=True, check=True).stdout
    assert json.loads(inspect) == [dns_server()["address"]]


def test_a_lab_name_resolves_inside_the_lab() -> None:
    answer = in_container(PROBE_HOST, RESOLVE, "mx.recipient.example")
    assert answer == "['198.51.100.25']"


@pytest.mark.parametrize("name", OUTSIDE_NAMES)
def test_an_outside_name_does_not_resolve_inside_the_lab(name: str) -> None:
    answer = in_container(PROBE_HOST, RESOLVE, name)
    assert answer.startswith("unresolved"), f"{name} resolved inside the lab: {answer}"


@pytest.mark.parametrize("name", OUTSIDE_NAMES)
def test_the_lab_dns_server_refuses_recursion(name: str) -> None:
    query = dns.message.make_query(name, dns.rdatatype.A)
    response = dns.query.udp(query, str(auth_server()["address"]), port=int(auth_server()["port"]), timeout=5)
    assert response.rcode() == dns.rcode.REFUSED
    assert not response.answer


def test_the_lab_dns_server_answers_for_its_zones() -> None:
    query = dns.message.make_query("recipient.example", dns.rdatatype.MX)
    response = dns.query.udp(query, str(auth_server()["address"]), port=int(auth_server()["port"]), timeout=5)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert [r.to_text() for rrset in response.answer for r in rrset] == ["10 mx.recipient.example."]


@pytest.mark.parametrize("name", OUTSIDE_NAMES)
def test_the_lab_resolver_resolves_no_outside_name(name: str) -> None:
    # Its root hints name the lab's authoritative server, which serves no root.
    query = dns.message.make_query(name, dns.rdatatype.A)
    response = dns.query.udp(query, str(dns_server()["address"]), port=int(dns_server()["port"]), timeout=10)
    assert response.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NXDOMAIN)
    assert not response.answer


def test_the_lab_resolver_recurses_for_the_lab_zones() -> None:
    # Positive control: the same resolver answers a lab name, not authoritatively (it recursed).
    query = dns.message.make_query("recipient.example", dns.rdatatype.MX)
    response = dns.query.udp(query, str(dns_server()["address"]), port=int(dns_server()["port"]), timeout=10)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.RA and not response.flags & dns.flags.AA
    assert [r.to_text() for rrset in response.answer for r in rrset] == ["10 mx.recipient.example."]


def test_the_outside_address_is_reachable_on_a_non_smtp_port() -> None:
    # Positive control: the address is routable from the lab (HTTP to the mirror).
    assert in_container(PROBE_HOST, CONNECT, OUTSIDE_ADDRESS, "80", "10") == "connected"


@pytest.mark.skipif(shutil.which("iptables") is None, reason="iptables is not installed")
@pytest.mark.parametrize("port", ["25", "465", "587"])
def test_smtp_leaving_the_lab_is_blocked_by_the_host_rule(port: str) -> None:
    before = rule_packets()
    assert before is not None, "no DOCKER-USER rule for SMTP egress: run scripts/egress-guard.sh apply"
    outcome = in_container(PROBE_HOST, CONNECT, OUTSIDE_ADDRESS, port, "5")
    assert outcome != "connected", f"SMTP port {port} of {OUTSIDE_ADDRESS} is reachable from the lab"
    after = rule_packets()
    assert after is not None and after > before, "the connection failed, but not because of the egress rule"


def lab_hosts() -> List[str]:
    return sorted(LAB["hosts"]) if LAB else []  # type: ignore[arg-type]


@pytest.mark.parametrize("host", lab_hosts())
def test_every_lab_container_points_at_the_lab_dns(host: str) -> None:
    inspect = subprocess.run(["docker", "container", "inspect", "-f", "{{ json .HostConfig.Dns }}", host],
                             capture_output=True, text=True, check=True).stdout
    assert json.loads(inspect) == [dns_server()["address"]]
