# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Acceptance: playbooks/tls.yml (role acme_certificates) with the lab inventory's plan, against a real
pebble on loopback whose DNS-01 checks read a loopback BIND that dns_zone updates with TSIG.

The tests share one certificate directory and run in file order: check mode on a fresh directory,
first issuance, the no-change run, renewal, then failures that must leave the certificates alone.
"""

from __future__ import annotations

import json
import ssl
import stat
import subprocess
from pathlib import Path

import dns.rcode
import pytest

from pebble_support import tls_handshake

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = str(ROOT / "inventories" / "lab")


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    import subprocess
    from ansible_env import ansible_env
    out = tmp_path_factory.mktemp("plan") / "plan.json"
    process = subprocess.run(["ansible-playbook", str(ROOT / "playbooks" / "plan.yml"), "-i", INVENTORY,
                              "-e", "plan_output_file=%s" % out], capture_output=True, text=True, check=False,
                             cwd=str(ROOT), env=ansible_env())
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("acme") / "certs"


def orders(pebble):
    return [r for r in pebble.requests() if r.startswith("POST /order-plz")]


def files(directory: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())} if directory.exists() else {}


def test_check_mode_on_a_fresh_directory_asks_the_ca_nothing_and_writes_nothing(tls_run, pebble, plan, tmp_path):
    before = len(pebble.requests())
    fresh = tmp_path / "fresh"
    run = tls_run(fresh, args=["--check"])
    assert run.rc == 0, run.stdout[-3000:]
    assert len(pebble.requests()) == before
    assert not fresh.exists()
    due = run.task("Report the certificates that are due (check mode issues nothing)")
    assert sorted(item["item"]["name"] for item in due) == sorted(plan["mtas"])
    assert all(item["changed"] and "Would issue" in item["msg"] for item in due)


def test_first_run_issues_a_certificate_per_mta_that_verifies_for_each_name(tls_run, pebble, pebble_root, plan, cert_dir, bind):
    before = len(orders(pebble))
    run = tls_run(cert_dir)
    assert run.rc == 0, run.stdout[-5000:]
    assert run.stats["changed"] > 0
    failed = [item["msg"] for item in run.task("Report the certificates that could not be issued") if "msg" in item]
    assert failed == [], failed
    assert len(orders(pebble)) - before == len(plan["mtas"])
    assert stat.S_IMODE((cert_dir / "account.key").stat().st_mode) == 0o600
    for mta, conf in plan["mtas"].items():
        key, pem = cert_dir / ("%s.key" % mta), cert_dir / ("%s.pem" % mta)
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert pem.read_text().count("BEGIN CERTIFICATE") >= 2, "not a full chain"
        assert conf["tls_names"][0] == conf["fqdn"] and len(conf["tls_names"]) >= 2
        for name in conf["tls_names"]:
            peer = tls_handshake(pem, key, pebble_root, name)
            assert ("DNS", name) in peer["subjectAltName"]
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_handshake(pem, key, pebble_root, "not-on-the-certificate.kbmta.net")
        # the challenge records are gone again
        answer = bind.query("_acme-challenge.%s" % conf["fqdn"], "TXT")
        assert answer.rcode() == dns.rcode.NXDOMAIN or not answer.answer
    assert "PRIVATE KEY" not in run.stdout


def test_a_second_run_changes_nothing_and_talks_to_the_ca_zero_times(tls_run, pebble, cert_dir):
    before_requests, before_files = len(pebble.requests()), files(cert_dir)
    run = tls_run(cert_dir)
    assert run.rc == 0, run.stdout[-3000:]
    assert run.stats["changed"] == 0
    assert len(pebble.requests()) == before_requests
    assert files(cert_dir) == before_files


def test_check_mode_with_valid_certificates_reports_nothing_due(tls_run, pebble, cert_dir):
    before_requests, before_files = len(pebble.requests()), files(cert_dir)
    run = tls_run(cert_dir, args=["--check"])
    assert run.rc == 0 and run.stats["changed"] == 0
    assert len(pebble.requests()) == before_requests
    assert files(cert_dir) == before_files


def test_fewer_days_left_than_renew_days_renews_every_certificate(tls_run, pebble, pebble_root, plan, cert_dir):
    old = files(cert_dir)
    before = len(orders(pebble))
    run = tls_run(cert_dir, platform_acme_renew_days=200)   # pebble issues for 90 days here
    assert run.rc == 0, run.stdout[-3000:]
    assert len(orders(pebble)) - before == len(plan["mtas"])
    reasons = [item["msg"] for item in run.task("Report the certificates that are due (check mode issues nothing)")]
    assert all("fewer than 200" in reason for reason in reasons), reasons
    for mta, conf in plan["mtas"].items():
        pem = cert_dir / ("%s.pem" % mta)
        assert pem.read_bytes() != old[pem.name]
        assert (cert_dir / ("%s.key" % mta)).read_bytes() == old["%s.key" % mta]  # the key is kept
        tls_handshake(pem, cert_dir / ("%s.key" % mta), pebble_root, conf["tls_names"][-1])


def test_an_unreachable_ca_keeps_the_certificates_and_says_why(tls_run, pebble, cert_dir):
    from bind import free_port
    old = files(cert_dir)
    before = len(pebble.requests())
    dead = "https://127.0.0.1:%d/dir" % free_port()
    run = tls_run(cert_dir, platform_acme_directory=dead, platform_acme_renew_days=200)
    assert run.rc == 0, run.stdout[-3000:]
    assert files(cert_dir) == old
    assert len(pebble.requests()) == before
    warnings = [item["msg"] for item in run.task("Report the certificates that could not be issued")]
    assert len(warnings) == 4 and all(dead in w and "valid for" in w and "untouched" in w for w in warnings), warnings

    strict = tls_run(cert_dir, platform_acme_directory=dead, platform_acme_renew_days=200, platform_acme_fail_on_error=True)
    assert strict.rc != 0
    assert files(cert_dir) == old


def test_a_failing_challenge_keeps_the_certificates_and_says_why(tls_run, pebble, cert_dir):
    old = files(cert_dir)
    before = len(orders(pebble))
    # the CA is fine, the DNS update is refused (wrong TSIG secret): the order is made, the challenge fails
    run = tls_run(cert_dir, platform_acme_renew_days=200, dns_tsig_key_secret="d3JvbmcgdHNpZyBzZWNyZXQgd3JvbmcgdHNpZyBzZWNyZXQ=")
    assert run.rc == 0, run.stdout[-3000:]
    assert len(orders(pebble)) - before == 4
    assert files(cert_dir) == old
    warnings = [item["msg"] for item in run.task("Report the certificates that could not be issued")]
    assert len(warnings) == 4 and all("Publish the challenge records" in w for w in warnings), warnings
    assert run.stats.get("rescued", 0) >= 1


def test_the_self_signed_setup_fails_with_the_same_client(pebble_root, plan, tmp_path):
    """Negative control: what every listener presented before ACME (a self-signed pair for the
    MTA's names, as roles/mta makes without a certificate) is refused by the client that
    accepts the issued certificates, for the same name."""
    conf = plan["mtas"][sorted(plan["mtas"])[0]]
    key, pem = tmp_path / "self.key", tmp_path / "self.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825",
                    "-keyout", str(key), "-out", str(pem), "-subj", "/CN=%s" % conf["fqdn"],
                    "-addext", "subjectAltName=" + ",".join("DNS:%s" % n for n in conf["tls_names"])],
                   check=True, capture_output=True)
    with pytest.raises(ssl.SSLCertVerificationError, match="self.signed certificate"):
        tls_handshake(pem, key, pebble_root, conf["tls_names"][0])
