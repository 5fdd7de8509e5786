# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""managed_units through ansible-playbook against a real systemd (a local/debian-systemd:12 container
without network): converge, re-converge unchanged, check mode, a missing unit refused by name."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
IMAGE = "local/debian-systemd:12"


def docker(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def container():
    if shutil.which("docker") is None or docker("image", "inspect", IMAGE).returncode != 0:
        pytest.skip("needs docker and the image %s (make setup)" % IMAGE)
    name = "kb-units-test-%s" % uuid.uuid4().hex[:8]
    started = docker("run", "-d", "--rm", "--name", name, "--network", "none", "--cap-add", "SYS_ADMIN",
                     "--tmpfs", "/run", "--tmpfs", "/run/lock", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
                     IMAGE, "/lib/systemd/systemd")
    assert started.returncode == 0, started.stderr
    try:
        for _attempt in range(60):
            state = docker("exec", name, "systemctl", "is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                break
            subprocess.run(["sleep", "0.5"], check=False)
        yield name
    finally:
        docker("rm", "-f", name)


def playbook(container: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    argv = ["ansible-playbook", "-i", "%s," % container, "-c", "community.docker.docker",
            "-e", "ansible_python_interpreter=/usr/bin/python3", str(HERE / "units.yml"), *args]
    return subprocess.run(argv, cwd=HERE, env=env, capture_output=True, text=True, timeout=300, check=False)


def changed(run: subprocess.CompletedProcess) -> int:
    match = re.search(r":\s+ok=\d+\s+changed=(\d+)", run.stdout)
    assert match, run.stdout + run.stderr
    return int(match.group(1))


def unit_state(container: str, unit: str) -> tuple:
    return (docker("exec", container, "systemctl", "is-active", unit).stdout.strip(),
            docker("exec", container, "systemctl", "is-enabled", unit).stdout.strip())


def test_check_mode_first_then_converge_then_unchanged(container):
    check = playbook(container, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "start kb-test-oneshot.service" in check.stdout          # reported: the unit would be installed
    assert unit_state(container, "kb-test-sleep.service")[0] != "active"
    first = playbook(container)
    assert first.returncode == 0, first.stdout + first.stderr
    for unit in ("enable kb-test-oneshot.service", "start kb-test-oneshot.service",
                 "enable kb-test-sleep.service", "start kb-test-sleep.service"):
        assert unit in first.stdout
    assert unit_state(container, "kb-test-oneshot.service") == ("active", "enabled")
    assert unit_state(container, "kb-test-sleep.service") == ("active", "enabled")
    second = playbook(container)
    assert second.returncode == 0 and changed(second) == 0, second.stdout


def test_a_stopped_unit_is_started_again(container):
    assert docker("exec", container, "systemctl", "stop", "kb-test-sleep.service").returncode == 0
    run = playbook(container)
    assert run.returncode == 0, run.stdout
    assert "start kb-test-sleep.service" in run.stdout and "enable kb-test-sleep" not in run.stdout
    assert unit_state(container, "kb-test-sleep.service") == ("active", "enabled")


def test_a_missing_unit_is_named_and_nothing_else_is_touched(container):
    run = playbook(container, "-e", '{"extra_units": [{"name": "kb-no-such-unit"}]}')
    assert run.returncode != 0
    assert "unit kb-no-such-unit.service not found: install its package or unit file first" in run.stdout
