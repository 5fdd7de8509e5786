# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Acceptance: playbooks/dns.yml with the lab inventory's plan, against a real BIND on loopback
(and once against the Cloud DNS API stand-in)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import dns.rcode
import pytest
from lab_inventory import lab_customer_domains  # tests/support is on pythonpath (pytest.ini)

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = str(ROOT / "inventories" / "lab")
DNS_PLAYBOOK = ROOT / "playbooks" / "dns.yml"


def normalize(rtype, texts):
    """Compare DNS answers with plan values: TXT joined, names lower case."""
    if rtype == "TXT":
        return sorted(texts)
    return sorted(t.lower() for t in texts)


def answer_values(bind, name, rtype):
    response = bind.query(name, rtype)
    if response.rcode() != dns.rcode.NOERROR or not response.answer:
        return None, None
    rrset = response.answer[0]
    if rtype == "TXT":
        return rrset.ttl, [b"".join(r.strings).decode() for r in rrset]
    return rrset.ttl, [r.to_text() for r in rrset]


@pytest.fixture(scope="module")
def plan(tmp_path_factory, playbook_runner):
    out = tmp_path_factory.mktemp("plan") / "plan.json"
    run = playbook_runner(ROOT / "playbooks" / "plan.yml", {"plan_output_file": str(out)}, out.parent,
                          inventory=INVENTORY)
    assert run.rc == 0, run.stderr
    return json.loads(out.read_text())


@pytest.fixture
def dkim_dir(tmp_path):
    """A DKIM public key for every customer of the lab inventory (selector kb1)."""
    directory = tmp_path / "dkim"
    directory.mkdir()
    key = tmp_path / "kb1.key"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    for domain in lab_customer_domains():
        subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(directory / ("%s.kb1.pub" % domain))],
                       check=True, capture_output=True)
    return directory


PUBLISH = "Publish the record sets of each managed zone"


def zone_results(run):
    """The per-zone results of the one task that publishes every managed zone."""
    (task,) = run.task(PUBLISH)
    return task["zones"]


def rfc2136_vars(bind, dkim_dir):
    return {"dns_provider": "rfc2136", "dns_server": "127.0.0.1", "dns_port": bind.port,
            "dns_tsig_key_name": bind.key_name, "dns_tsig_key_secret": bind.key_secret,
            "dns_tsig_algorithm": "hmac-sha256", "platform_dkim_key_dir": str(dkim_dir)}


def test_dns_playbook_publishes_the_plan_and_is_idempotent(bind, plan, dkim_dir, tmp_path, playbook_runner):
    extra = rfc2136_vars(bind, dkim_dir)
    first = playbook_runner(DNS_PLAYBOOK, extra, tmp_path, inventory=INVENTORY)
    assert first.rc == 0, first.task(PUBLISH)
    assert first.stats["changed"] >= 1
    domains = lab_customer_domains()
    assert [z["zone"] for z in zone_results(first)] == ["kbmta.net"] + sorted(domains)
    assert all(z["changed"] for z in zone_results(first))
    (shown,) = first.task("Show what changed in the platform zone")
    assert shown["msg"].startswith("kbmta.net: {")
    (customers,) = first.task("Show what changed in the customer zones")
    assert customers["msg"][0] == "%d customer zones reconciled, %d changed" % (len(domains), len(domains))
    assert any(line.startswith("kibamail.com: {") for line in customers["msg"][1:])

    for rrset in plan["zones"]["kbmta.net"] + [r for domain in domains for r in plan["zones"][domain]]:
        ttl, values = answer_values(bind, rrset["name"], rrset["type"])
        assert values is not None, "%s %s not published" % (rrset["name"], rrset["type"])
        assert ttl == rrset["ttl"]
        assert normalize(rrset["type"], values) == normalize(rrset["type"], rrset["values"])

    customer = plan["customers"]["kibamail.com"]
    ttl, dkim = answer_values(bind, customer["dkim_name"], "TXT")
    assert len(dkim) == 1 and dkim[0].startswith("v=DKIM1; k=rsa; p=MII")
    pem = (dkim_dir / "kibamail.com.kb1.pub").read_text()
    body = "".join(line for line in pem.splitlines() if "-----" not in line)
    assert dkim[0].endswith("p=" + body)

    second = playbook_runner(DNS_PLAYBOOK, extra, tmp_path, inventory=INVENTORY)
    assert second.rc == 0
    assert second.stats["changed"] == 0
    summaries = [z["summary"] for z in zone_results(second)]
    assert len(summaries) == 1 + len(domains) and all(s["create"] == s["update"] == s["delete"] == 0 for s in summaries)
    (customers,) = second.task("Show what changed in the customer zones")
    assert customers["msg"] == ["%d customer zones reconciled, 0 changed" % len(domains)]


def test_missing_dkim_key_is_skipped_with_a_warning(bind, tmp_path, playbook_runner):
    empty = tmp_path / "no-keys"
    empty.mkdir()
    run = playbook_runner(DNS_PLAYBOOK, rfc2136_vars(bind, empty), tmp_path, inventory=INVENTORY)
    assert run.rc == 0
    warnings = run.task("Warn about DKIM keys that do not exist yet")
    assert len(warnings) == len(lab_customer_domains())   # one per customer of the lab inventory
    assert any("WARNING: no DKIM public key at %s/kibamail.com.kb1.pub" % empty in w["msg"] for w in warnings)
    assert answer_values(bind, "kb1._domainkey.kibamail.com", "TXT") == (None, None)
    assert answer_values(bind, "_dmarc.kibamail.com", "TXT")[1] is not None


def test_unmanaged_customer_zone_gets_zone_file_lines(bind, plan, dkim_dir, tmp_path, playbook_runner):
    customers = [{"domain": "kibamail.com", "pool": "transactional", "dkim_selector": "kb1",
                  "return_path_label": "kb-bounces", "zone_managed": False, "dmarc_policy": "none",
                  "logins": [{"username": "support@kibamail.com", "password": "unused",
                              "senders": ["support@kibamail.com"]}]}]
    extra = dict(rfc2136_vars(bind, dkim_dir), platform_customers=customers)
    run = playbook_runner(DNS_PLAYBOOK, extra, tmp_path, inventory=INVENTORY)
    assert run.rc == 0, run.stderr
    (shown,) = run.task("Show the records each unmanaged customer zone must hold")
    lines = shown["msg"]
    assert lines[0] == "Zone kibamail.com is not managed by the platform. Add these records to it:"
    assert "kb-bounces.kibamail.com. %d IN CNAME kb-bounces.kbmta.net." % plan["ttl"] in lines
    assert any(line.startswith('kb1._domainkey.kibamail.com. %d IN TXT "v=DKIM1; k=rsa; p=' % plan["ttl"])
               and '" "' in line for line in lines)
    assert answer_values(bind, "_dmarc.kibamail.com", "TXT") == (None, None)
    assert [z["zone"] for z in zone_results(run)] == ["kbmta.net"]


@pytest.fixture
def cloud_api(tmp_path):
    from bind import free_port
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "standins" / "cloud_dns_api.py"),
                                "--listen", "127.0.0.1:%d" % port, "--token", "lab-token",
                                "--zone", "kbmta.net"] + ["--zone=%s" % zone for zone in lab_customer_domains()],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert "listening" in process.stdout.readline()
    yield "http://127.0.0.1:%d" % port
    process.terminate()
    process.wait(timeout=10)


def test_dns_playbook_with_the_hetzner_provider(cloud_api, plan, dkim_dir, tmp_path, playbook_runner):
    extra = {"dns_provider": "hetzner", "hcloud_token": "lab-token", "hcloud_endpoint": cloud_api + "/v1",
             "platform_dkim_key_dir": str(dkim_dir)}
    first = playbook_runner(DNS_PLAYBOOK, extra, tmp_path, inventory=INVENTORY)
    assert first.rc == 0, [(z.get("zone"), z.get("msg")) for task in first.task(PUBLISH) for z in task.get("zones", [])]
    second = playbook_runner(DNS_PLAYBOOK, extra, tmp_path, inventory=INVENTORY)
    assert second.rc == 0 and second.stats["changed"] == 0
    with urllib.request.urlopen(cloud_api + "/_standin/requests") as response:
        log = json.load(response)["requests"]
    created = {(r["body"]["name"], r["body"]["type"]) for r in log if r["method"] == "POST"
               and r["path"].endswith("/rrsets")}
    for rrset in plan["zones"]["kbmta.net"]:
        relative = rrset["name"][: -len(".kbmta.net")] if rrset["name"] != "kbmta.net" else "@"
        assert (relative, rrset["type"]) in created
    assert ("kb1._domainkey", "TXT") in created


def test_dns_playbook_in_check_mode_publishes_nothing(bind, plan, dkim_dir, tmp_path, playbook_runner):
    run = playbook_runner(DNS_PLAYBOOK, rfc2136_vars(bind, dkim_dir), tmp_path, inventory=INVENTORY,
                          args=["--check", "--diff"])
    assert run.rc == 0
    results = zone_results(run)
    assert len(results) == 1 + len(lab_customer_domains()) and all(r["changed"] for r in results)
    assert sum(len(r["diff"]) for r in results) >= len(plan["zones"]["kbmta.net"])
    assert answer_values(bind, "spf.kbmta.net", "TXT") == (None, None)


def test_dkim_key_dir_through_a_link_finds_the_keys(bind, dkim_dir, tmp_path, playbook_runner):
    link = tmp_path / "dkim-link"
    link.symlink_to(dkim_dir)
    extra = rfc2136_vars(bind, dkim_dir)
    extra["platform_dkim_key_dir"] = "%s/./dkim-link" % tmp_path
    run = playbook_runner(DNS_PLAYBOOK, extra, tmp_path, inventory=INVENTORY)
    assert run.rc == 0, run.stderr
    assert run.task("Warn about DKIM keys that do not exist yet") == []
    ttl, dkim = answer_values(bind, "kb1._domainkey.kibamail.com", "TXT")
    assert dkim[0].startswith("v=DKIM1; k=rsa; p=MII")
