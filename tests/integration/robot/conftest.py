# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures: the Robot stand-in on 127.0.0.1 (free port) and a runner for the playbooks of this folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))   # robot_support
sys.path.insert(0, str(HERE.parents[1] / "standins"))

from robot_api import RobotStandin  # noqa: E402
from robot_support import PASSWORD, ROOT, USER, seed  # noqa: E402


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: Dict[str, Dict[str, Any]]   # task name -> result on localhost

    def result(self, task: str) -> Dict[str, Any]:
        return self.results[task]


@pytest.fixture
def standin(tmp_path: Path):
    server = RobotStandin(USER, PASSWORD, state=seed(), state_file=str(tmp_path / "robot-state.json")).start()
    yield server
    server.stop()


def _parse(stdout: str) -> Dict[str, Dict[str, Any]]:
    start = stdout.find("{")
    data = json.loads(stdout[start:]) if start >= 0 else {"plays": []}
    results: Dict[str, Dict[str, Any]] = {}
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            host_result = task.get("hosts", {}).get("localhost")
            if host_result is not None:
                results[task["task"]["name"]] = host_result
    return results


@pytest.fixture
def playbook(standin: RobotStandin, tmp_path: Path):
    def run(name: str, extra: Optional[Dict[str, Any]] = None, check: bool = False, password: str = PASSWORD,
            inventory: str = "localhost,", args: Optional[List[str]] = None) -> PlaybookRun:
        variables = {"robot_url": standin.url, "robot_user": USER, "robot_password": password,
                     "ansible_python_interpreter": sys.executable}
        variables.update(extra or {})
        vars_file = tmp_path / "vars.json"
        vars_file.write_text(json.dumps(variables))
        env = dict(os.environ)
        env.update({
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_NOCOLOR": "1",
        })
        for key in ("ROBOT_WS_USER", "ROBOT_WS_PASSWORD", "ROBOT_WS_URL"):
            env.pop(key, None)
        playbook_path = name if name.startswith("/") else str(HERE / name)
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, "-c", "local",
               "-e", "@" + str(vars_file), playbook_path] + (args or [])
        if check:
            cmd.append("--check")
        proc = subprocess.run(cmd, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=600, check=False)
        return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, _parse(proc.stdout))

    return run
