# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""platform_verify: arguments in, results, reports and the task's verdict out (DNS from a fake resolver)."""

from __future__ import annotations

import base64
import json

import pytest
from ansible.module_utils.testing import patch_module_args
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.kibamail.email_platform.plugins.module_utils import verify_dns, verify_spf
from ansible_collections.kibamail.email_platform.plugins.modules import platform_verify

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
PEM = KEY.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
B64 = base64.b64encode(KEY.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
SPF = "v=spf1 ip4:192.0.2.0/24 -all"

PLAN = {
    "domain": "kbmta.net", "spf_domain": "spf.kbmta.net", "bounce_domain": "kb-bounces.kbmta.net",
    "pools": {"transactional": {"subnet": "192.0.2.0/24"}},
    "mtas": {"us-mta1": {"pool": "transactional", "fqdn": "us-mta1.kbmta.net", "address": "203.0.113.21",
                         "sending_ips": [{"ip": "192.0.2.2", "ptr": "us-mta1.kbmta.net", "helo": "us-mta1.kbmta.net"}]}},
    "load_balancers": {"lb-transactional": {"pool": "transactional", "fqdn": "smtp.kbmta.net", "address": "203.0.113.10"}},
    "customers": {"shop.example": {
        "pool": "transactional", "dkim_name": "kb1._domainkey.shop.example", "return_path": "kb-bounces.shop.example",
        "return_path_target": "kb-bounces.kbmta.net", "dmarc_name": "_dmarc.shop.example",
        "dmarc_value": "v=DMARC1; p=reject; adkim=r; aspf=r", "zone_managed": True}},
    "zones": {
        "kbmta.net": [
            {"name": "spf.kbmta.net", "type": "TXT", "values": [SPF]},
            {"name": "kb-bounces.kbmta.net", "type": "TXT", "values": ["v=spf1 include:spf.kbmta.net -all"]},
            {"name": "kb-bounces.kbmta.net", "type": "MX", "values": ["10 us-mta1.kbmta.net."]},
            {"name": "smtp.kbmta.net", "type": "A", "values": ["203.0.113.10"]},
            {"name": "us-mta1.kbmta.net", "type": "A", "values": ["192.0.2.2"]},
            {"name": "us-mta1.kbmta.net", "type": "TXT", "values": ["v=spf1 include:spf.kbmta.net -all"]},
        ],
        "shop.example": [
            {"name": "kb-bounces.shop.example", "type": "CNAME", "values": ["kb-bounces.kbmta.net."]},
            {"name": "_dmarc.shop.example", "type": "TXT", "values": ["v=DMARC1; p=reject; adkim=r; aspf=r"]},
        ],
    },
}


def records(dkim=B64):
    found = {(rr["name"], rr["type"]): rr["values"] for rrs in PLAN["zones"].values() for rr in rrs}
    found[("2.2.0.192.in-addr.arpa", "PTR")] = ["us-mta1.kbmta.net."]
    found[("kb1._domainkey.shop.example", "TXT")] = ["v=DKIM1; k=rsa; p=" + dkim]
    return found


def run(monkeypatch, capsys, args, published=None):
    asked = []

    def resolver(nameserver=None, port=53, timeout=3.0):
        asked.append((nameserver, port, timeout))
        fake = verify_dns.StaticResolver(published if published is not None else records())
        fake.description = "fake"
        return fake

    monkeypatch.setattr(verify_dns, "DnsPythonResolver", resolver)
    # delegation off: its check asks name servers directly (tests/unit/plugins/module_utils/test_verify_delegation.py)
    full = {"plan": PLAN, "dkim_public_keys": {"shop.example": PEM}, "checks": ["platform", "ip", "customer"], "delegation": False}
    full.update(args)
    with patch_module_args(full):
        with pytest.raises(SystemExit):
            platform_verify.main()
    return json.loads(capsys.readouterr().out), asked


def test_healthy_platform_exits_unchanged_and_writes_reports(monkeypatch, capsys, tmp_path):
    out, asked = run(monkeypatch, capsys, {
        "nameserver": "127.0.0.1", "nameserver_port": 5353, "report_json": str(tmp_path / "r" / "v.json"),
        "report_html": str(tmp_path / "v.html"), "report_text": str(tmp_path / "v.txt"), "_ansible_check_mode": True})
    assert asked == [("127.0.0.1", 5353, 3.0)]
    assert out.get("failed") is not True and out["changed"] is False
    assert out["summary"]["failure"] == 0 and out["failures"] == []
    assert {(r["check"], r["subject"]) for r in out["results"]} >= {("ptr", "192.0.2.2"), ("dkim", "shop.example")}
    report = json.loads((tmp_path / "r" / "v.json").read_text())
    assert report["summary"] == out["summary"] and report["meta"]["nameserver"] == "fake"
    assert "PASSED" in (tmp_path / "v.html").read_text() and (tmp_path / "v.txt").read_text() == out["table"] + "\n"


def test_a_failure_fails_the_task_after_writing_the_report(monkeypatch, capsys, tmp_path):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    wrong = base64.b64encode(other.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    out, _asked = run(monkeypatch, capsys, {"report_json": str(tmp_path / "v.json")}, records(dkim=wrong))
    assert out["failed"] is True and out["changed"] is False
    assert "1 failures" in out["msg"] and "dkim shop.example" in out["msg"]
    assert [f["check"] for f in out["failures"]] == ["dkim"] and B64 in out["failures"][0]["fix"]
    assert json.loads((tmp_path / "v.json").read_text())["summary"]["failure"] == 1


def test_fail_on_failure_false_reports_without_failing(monkeypatch, capsys):
    published = records()
    del published[("2.2.0.192.in-addr.arpa", "PTR")]
    out, _asked = run(monkeypatch, capsys, {"fail_on_failure": False}, published)
    assert out.get("failed") is not True
    assert [(f["check"], f["subject"]) for f in out["failures"]] == [("ptr", "192.0.2.2")]


@pytest.mark.parametrize("args, min_days", [({}, 14), ({"tls_min_days": 30}, 30)])
def test_tls_min_days_reaches_the_host_checks(monkeypatch, capsys, args, min_days):
    seen = []
    monkeypatch.setattr(platform_verify, "run_host_checks", lambda targets, settings, lb_stats, workers: seen.append(settings) or [])
    out, _asked = run(monkeypatch, capsys, dict(args, checks=["host"]))
    assert out.get("failed") is not True and [s.min_days for s in seen] == [min_days]


def test_negative_tls_min_days_is_refused(monkeypatch, capsys):
    out, _asked = run(monkeypatch, capsys, {"tls_min_days": -1})
    assert out["failed"] is True and "tls_min_days must be 0 or more" in out["msg"]


def test_plan_without_its_keys_is_refused(monkeypatch, capsys):
    out, asked = run(monkeypatch, capsys, {"plan": {"domain": "kbmta.net"}})
    assert out["failed"] is True and "plan lacks spf_domain, bounce_domain, mtas, customers" in out["msg"]
    assert asked == []


def test_missing_pyspf_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setattr(verify_spf, "HAS_PYSPF", False)
    out, _asked = run(monkeypatch, capsys, {})
    assert out["failed"] is True and "pyspf" in out["msg"]


def test_unreachable_name_server_fails_fast(monkeypatch, capsys):
    class Down(verify_dns.StaticResolver):
        def lookup(self, name, rdtype):
            self.asked = getattr(self, "asked", 0) + 1
            return verify_dns.Answer(name=name, rdtype=rdtype, status=verify_dns.ERROR, error="timed out asking 192.0.2.53 port 53")

    servers = []

    def resolver(nameserver=None, port=53, timeout=3.0):
        servers.append(Down({}))
        servers[-1].description = "192.0.2.53 port 53"
        return servers[-1]

    monkeypatch.setattr(verify_dns, "DnsPythonResolver", resolver)
    with patch_module_args({"plan": PLAN, "nameserver": "192.0.2.53"}):
        with pytest.raises(SystemExit):
            platform_verify.main()
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] is True and out["msg"].startswith("no DNS check can run: the name server does not answer (timed out")
    assert servers[0].asked == 1
