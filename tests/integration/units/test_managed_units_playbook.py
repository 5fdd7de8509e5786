# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""managed_units through ansible-playbook against a real systemd (a local/debian-systemd:12 container
without network): converge, re-converge unchanged, check mode, a missing unit refused by name."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from container_playbook import changed, docker, need_image, playbook  # tests/support is on pythonpath (pytest.ini)

HERE = Path(__file__).resolve().parent
IMAGE = "local/debian-systemd:12"


@pytest.fixture(scope="module")
def container():
    need_image(IMAGE)
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
            time.sleep(0.5)
        yield name
    finally:
        docker("rm", "-f", name)


def unit_state(container: str, unit: str) -> tuple:
    return (docker("exec", container, "systemctl", "is-active", unit).stdout.strip(),
            docker("exec", container, "systemctl", "is-enabled", unit).stdout.strip())


def run_playbook(container: str, *args: str):
    return playbook(container, HERE / "units.yml", *args)


def test_check_mode_first_then_converge_then_unchanged(container):
    check = run_playbook(container, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "start kb-test-oneshot.service" in check.stdout          # reported: the unit would be installed
    assert unit_state(container, "kb-test-sleep.service")[0] != "active"
    first = run_playbook(container)
    assert first.returncode == 0, first.stdout + first.stderr
    for unit in ("enable kb-test-oneshot.service", "start kb-test-oneshot.service",
                 "enable kb-test-sleep.service", "start kb-test-sleep.service"):
        assert unit in first.stdout
    assert unit_state(container, "kb-test-oneshot.service") == ("active", "enabled")
    assert unit_state(container, "kb-test-sleep.service") == ("active", "enabled")
    second = run_playbook(container)
    assert second.returncode == 0 and changed(second) == 0, second.stdout


def test_a_stopped_unit_is_started_again(container):
    assert docker("exec", container, "systemctl", "stop", "kb-test-sleep.service").returncode == 0
    run = run_playbook(container)
    assert run.returncode == 0, run.stdout
    assert "start kb-test-sleep.service" in run.stdout and "enable kb-test-sleep" not in run.stdout
    assert unit_state(container, "kb-test-sleep.service") == ("active", "enabled")


def test_a_missing_unit_is_named_and_nothing_else_is_touched(container):
    run = run_playbook(container, "-e", '{"extra_units": [{"name": "kb-no-such-unit"}]}')
    assert run.returncode != 0
    assert "unit kb-no-such-unit.service not found: install its package or unit file first" in run.stdout
