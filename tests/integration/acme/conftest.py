# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures: one loopback BIND and one pebble for the module, and a runner for playbooks/tls.yml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Optional

import pytest
from ansible_env import ansible_env  # tests/support is on pythonpath (pytest.ini)
from bind import LoopbackBind
from playbook_run import PlaybookRun

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pebble_support import LoopbackPebble  # noqa: E402  (puts tests/standins on sys.path)
from pebble_ca import PEBBLE  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = str(ROOT / "inventories" / "lab")
TLS_PLAYBOOK = ROOT / "playbooks" / "tls.yml"

if not os.access(PEBBLE, os.X_OK):
    pytest.skip("%s is missing: install Debian's pebble (scripts/setup-host.sh, apt-get install -y pebble)" % PEBBLE,
                allow_module_level=True)


@pytest.fixture(scope="module")
def bind(tmp_path_factory):
    server = LoopbackBind(tmp_path_factory.mktemp("bind"), {"kbmta.net": None}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pebble(bind):
    server = LoopbackPebble(bind.port).start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def pebble_root(pebble, tmp_path_factory):
    path = tmp_path_factory.mktemp("root") / "pebble-root.pem"
    path.write_text(pebble.root())
    return path


@pytest.fixture
def tls_run(bind, pebble, tmp_path):
    """Run playbooks/tls.yml on the lab inventory against the loopback pebble and BIND."""

    def run(cert_dir: Path, args: Optional[List[str]] = None, **overrides: Any) -> PlaybookRun:
        extra = {
            "platform_acme_directory": pebble.directory,
            "platform_acme_cert_dir": str(cert_dir),
            "platform_acme_ca_bundle": pebble.ca_bundle,
            "platform_acme_account_email": "postmaster@kbmta.net",
            "dns_provider": "rfc2136", "dns_server": "127.0.0.1", "dns_port": bind.port,
            "dns_tsig_key_name": bind.key_name, "dns_tsig_key_secret": bind.key_secret,
            "dns_tsig_algorithm": "hmac-sha256",
        }
        extra.update(overrides)
        extra_file = tmp_path / ("extra-%d.json" % len(list(tmp_path.glob("extra-*.json"))))
        extra_file.write_text(json.dumps(extra))
        command = ["ansible-playbook", str(TLS_PLAYBOOK), "-i", INVENTORY, "-e", "@%s" % extra_file] + (args or [])
        process = subprocess.run(command, capture_output=True, text=True, check=False, cwd=str(ROOT), timeout=600,
                                 env=ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}))
        return PlaybookRun(process)

    return run
