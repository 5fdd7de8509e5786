# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures: a fresh loopback BIND per test, and a runner for the small playbooks of this folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from ansible_env import ansible_env  # tests/support is on pythonpath (pytest.ini)
from bind import LoopbackBind
from lab_inventory import lab_customer_domains
from playbook_run import PlaybookRun

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

ZONES = ["kbmta.net", "example.test"] + lab_customer_domains()


@pytest.fixture
def bind(tmp_path):
    server = LoopbackBind(tmp_path / "bind", {zone: None for zone in ZONES}).start()
    yield server
    server.stop()


def run_playbook(playbook: Path, extra: Dict[str, Any], tmp_path: Path, inventory: Optional[str] = None,
                 args: Optional[List[str]] = None) -> PlaybookRun:
    extra_file = tmp_path / ("extra-%d.json" % len(list(tmp_path.glob("extra-*.json"))))
    extra_file.write_text(json.dumps(extra))
    command = ["ansible-playbook", str(playbook), "-e", "@%s" % extra_file]
    command += ["-i", inventory] if inventory else ["-i", "localhost,", "-c", "local"]
    command += args or []
    process = subprocess.run(command, capture_output=True, text=True, check=False, cwd=str(ROOT), timeout=300,
                             env=ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}))
    return PlaybookRun(process)


@pytest.fixture(scope="session")
def playbook_runner():
    """``run_playbook`` for test modules (they must not import conftest by name)."""
    return run_playbook


@pytest.fixture
def zone_run(bind, tmp_path):
    """Run zone.yml (one dns_zone task) against the loopback BIND."""

    def run(records: List[Dict[str, Any]], args: Optional[List[str]] = None, **options: Any) -> PlaybookRun:
        settings = {"zone": "example.test", "records": records, "provider": "rfc2136", "server": "127.0.0.1",
                    "port": bind.port, "tsig_key_name": bind.key_name, "tsig_key_secret": bind.key_secret}
        settings.update(options)
        return run_playbook(HERE / "zone.yml", {"dns_zone_args": settings}, tmp_path, args=args)

    return run
