# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module's integration test against a throwaway container: docker, one ansible-playbook run over the
community.docker.docker connection, and the changed count of its PLAY RECAP."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_env import ansible_env


def docker(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def need_image(image: str) -> None:
    """Skip the test where docker or the locally built image is missing."""
    if shutil.which("docker") is None or docker("image", "inspect", image).returncode != 0:
        pytest.skip("needs docker and the image %s (make setup)" % image)


def playbook(container: str, path: Path, *args: str) -> subprocess.CompletedProcess:
    """ansible-playbook PATH against the container alone, with the default callback's text output."""
    argv = ["ansible-playbook", "-i", "%s," % container, "-c", "community.docker.docker",
            "-e", "ansible_python_interpreter=/usr/bin/python3", str(path), *args]
    return subprocess.run(argv, cwd=path.parent, env=ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default"}),
                          capture_output=True, text=True, timeout=300, check=False)


def changed(run: subprocess.CompletedProcess) -> int:
    """The changed count of the run's PLAY RECAP."""
    match = re.search(r":\s+ok=\d+\s+changed=(\d+)", run.stdout)
    assert match, run.stdout + run.stderr
    return int(match.group(1))
