# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stand-in as the lab runs it: its command line, a state file, and --dns-update to a real BIND."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dns.rcode
import dns.rdatatype
import pytest

from bind import LoopbackBind, free_port
from robot_support import PASSWORD, ROOT, USER

REVERSE_ZONE = "2.0.192.in-addr.arpa"


@pytest.fixture
def bind(tmp_path: Path):
    server = LoopbackBind(tmp_path / "bind", zones={REVERSE_ZONE: None}).start()
    yield server
    server.stop()


def start_cli(tmp_path: Path, bind: LoopbackBind) -> tuple:
    key_file = tmp_path / "tsig.key"
    key_file.write_text('key "{0}" {{\n  algorithm {1};\n  secret "{2}";\n}};\n'.format(
        bind.key_name, bind.algorithm, bind.key_secret))
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"subnets": [{"ip": "192.0.2.0", "mask": 24, "gateway": "192.0.2.1",
                                             "server_ip": None, "server_number": None}]}))
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "standins" / "robot_api.py"),
                             "--listen", "127.0.0.1:{0}".format(port), "--state", str(tmp_path / "state.json"),
                             "--seed-json", str(seed), "--user", USER, "--password", PASSWORD,
                             "--dns-update", "127.0.0.1:{0}".format(bind.port), "--tsig-key-file", str(key_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = "http://127.0.0.1:{0}".format(port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/_admin/state", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("stand-in did not start: {0}".format(proc.communicate()[0]))


def test_ptr_writes_become_real_dns_updates(tmp_path, bind, playbook) -> None:
    proc, url = start_cli(tmp_path, bind)
    try:
        wanted = {"192.0.2.2": "us-mta1.kbmta.net", "192.0.2.3": "us-mta2.kbmta.net"}
        run = playbook("rdns.yml", {"ptr_map": wanted, "robot_url": url})
        assert run.rc == 0, run.stdout[-3000:]
        for ip, name in wanted.items():
            answer = bind.query(ip.split(".")[3] + "." + REVERSE_ZONE, "PTR")
            assert answer.rcode() == dns.rcode.NOERROR
            assert [r.to_text() for rrset in answer.answer for r in rrset if rrset.rdtype == dns.rdatatype.PTR] == [name + "."]
        # changed name, then a purge: the DNS follows
        run = playbook("rdns.yml", {"ptr_map": {"192.0.2.2": "renamed.kbmta.net"}, "robot_url": url, "purge": True,
                                    "purge_scope": ["192.0.2.0/24"]})
        assert run.rc == 0, run.stdout[-3000:]
        assert bind.query("2." + REVERSE_ZONE, "PTR").answer[0][0].to_text() == "renamed.kbmta.net."
        assert bind.query("3." + REVERSE_ZONE, "PTR").rcode() == dns.rcode.NXDOMAIN
        state = json.loads((tmp_path / "state.json").read_text())
        assert state["rdns"] == {"192.0.2.2": "renamed.kbmta.net"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_refused_dns_update_is_a_server_error_and_nothing_is_stored(tmp_path, bind, playbook) -> None:
    bind.key_secret = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmc="  # the stand-in gets a wrong key
    proc, url = start_cli(tmp_path, bind)
    try:
        run = playbook("rdns.yml", {"ptr_map": {"192.0.2.2": "us-mta1.kbmta.net"}, "robot_url": url})
        assert run.rc != 0
        assert "500 INTERNAL_ERROR" in run.result("Reconcile")["msg"]
        assert json.loads((tmp_path / "state.json").read_text())["rdns"] == {}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
