# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""playbooks/verify.yml end to end: a lab-shaped inventory, a loopback BIND, a loopback SMTP server."""

from __future__ import annotations

import json
import os
import subprocess

import yaml
from lab_spec import lab_spec
from verify_support import NAME, b64, pem, rsa_key

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def write_inventory(path, spec, dns_port, key_dir, smtp_port, ca_path):
    """An inventory in the shape of inventories/lab, pointed at loopback servers."""
    groups = spec["groups"]
    hosts = spec["hosts"]

    def group(name):
        return {"hosts": {h: dict(hosts[h]) for h in groups[name]}}

    inventory = {"all": {
        "vars": {
            "platform_lab": True, "platform_domain": spec["domain"], "platform_ttl": spec["ttl"],
            "platform_pools": spec["pools"], "platform_customers": spec["customers"],
            "platform_dkim_key_dir": key_dir,
            "verify_nameserver": "127.0.0.1", "verify_nameserver_port": dns_port,
            "verify_smtp_probe_hosts": False,
            "verify_smtp_targets": [{"address": "127.0.0.1", "port": smtp_port, "name": "loopback submission",
                                     "server_names": [NAME], "timeout": 5}],
            "verify_tls_ca_path": ca_path,
            "ansible_connection": "local",
        },
        "children": {
            "mta": {"children": {"mta_transactional": group("mta_transactional"), "mta_marketing": group("mta_marketing")}},
            "lb_transactional": group("lb_transactional"), "lb_marketing": group("lb_marketing"),
            "bounce_inbound": {"children": {"mta": {}}},
        },
    }}
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(inventory, handle)


def run_playbook(tmp_path, records, serve, dkim_keys, smtp_server, pki):
    server = serve(records)
    smtp_port, handler = smtp_server()
    key_dir = tmp_path / "dkim"
    key_dir.mkdir()
    for domain, key in dkim_keys.items():
        (key_dir / ("%s.kb1.pub" % domain)).write_text(pem(key))
    write_inventory(tmp_path / "inventory.yml", lab_spec(), server.port, str(key_dir), smtp_port, pki["ca"])
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections"), ANSIBLE_NOCOLOR="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "inventory.yml"), os.path.join(ROOT, "playbooks", "verify.yml"),
         "-e", "verify_report_dir=%s" % (tmp_path / "report")],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600, check=False)
    report = json.loads((tmp_path / "report" / "verify.json").read_text()) if (tmp_path / "report" / "verify.json").exists() else None
    assert handler.data_seen == 0
    return proc, report


def test_healthy_lab_passes_and_writes_reports(tmp_path, plan, dkim_keys, healthy, serve, smtp_server, pki):
    proc, report = run_playbook(tmp_path, healthy, serve, dkim_keys, smtp_server, pki)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert report["summary"]["failure"] == 0
    checks = {(r["check"], r["subject"]): r["status"] for r in report["results"]}
    assert checks[("dkim", "kibamail.com")] == "ok"  # the keys were read from platform_dkim_key_dir
    assert checks[("open_relay", "loopback submission")] == "ok"
    assert checks[("tls_certificate", "loopback submission")] == "ok"
    html = (tmp_path / "report" / "verify.html").read_text()
    assert "<title>Platform verification: kbmta.net</title>" in html and "PASSED" in html
    assert "PASSED" in (tmp_path / "report" / "verify.txt").read_text()
    assert "Customer domains" in proc.stdout


def test_wrong_dkim_key_fails_the_play_with_the_fix(tmp_path, plan, dkim_keys, healthy, serve, smtp_server, pki):
    healthy[(plan["customers"]["shop.example"]["dkim_name"], "TXT")] = ["v=DKIM1; k=rsa; p=" + b64(rsa_key())]
    proc, report = run_playbook(tmp_path, healthy, serve, dkim_keys, smtp_server, pki)
    assert proc.returncode != 0
    assert "1 checks failed: dkim shop.example" in proc.stdout
    failed = [r for r in report["results"] if r["status"] == "failure"]
    assert [(r["check"], r["subject"]) for r in failed] == [("dkim", "shop.example")]
    assert b64(dkim_keys["shop.example"]) in failed[0]["fix"] and "ask them to publish it" in failed[0]["fix"]
    assert "FAIL" in (tmp_path / "report" / "verify.txt").read_text()
