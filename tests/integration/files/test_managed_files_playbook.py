# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""managed_files through ansible-playbook: converge, re-converge unchanged, notify a handler from a tag,
check and diff mode, a secret kept out of the output, bad input refused before anything is written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


def playbook(root_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    argv = ["ansible-playbook", "-i", "localhost,", str(HERE / "files.yml"), "-e", "root_dir=%s" % root_dir,
            "-e", "ansible_python_interpreter=%s" % sys.executable, *args]
    return subprocess.run(argv, cwd=HERE, env=env, capture_output=True, text=True, timeout=300, check=False)


def recap(run: subprocess.CompletedProcess) -> dict:
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", run.stdout)
    assert match, run.stdout + run.stderr
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def test_converges_reconverges_unchanged_and_notifies_from_a_tag(tmp_path):
    first = playbook(tmp_path, "-v")
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap(first)["changed"] == 3  # the files, both handlers (both tags changed)
    assert (tmp_path / "etc" / "app.conf").read_text() == "#\n# Ansible managed\n#\nlisten = 25\n"
    assert (tmp_path / "restarted").exists() and (tmp_path / "reloaded").exists()
    assert "s3cret-managed-files-value" not in first.stdout + first.stderr
    (tmp_path / "restarted").unlink()
    (tmp_path / "reloaded").unlink()
    second = playbook(tmp_path)
    assert second.returncode == 0 and recap(second)["changed"] == 0
    assert not (tmp_path / "restarted").exists() and not (tmp_path / "reloaded").exists()
    # Only the configuration (tag restart) changes: its handler runs, the key's (tag reload) does not.
    third = playbook(tmp_path, "-e", "listen_port=587")
    assert third.returncode == 0 and recap(third)["changed"] == 2, third.stdout
    assert (tmp_path / "restarted").exists() and not (tmp_path / "reloaded").exists()


def test_check_and_diff_show_the_change_and_write_nothing(tmp_path):
    assert playbook(tmp_path).returncode == 0
    check = playbook(tmp_path, "--check", "--diff", "-e", "listen_port=587", "-e", "secret_value=other-secret-value")
    assert check.returncode == 0, check.stdout
    assert "-listen = 25" in check.stdout and "+listen = 587" in check.stdout
    assert "(secret content, changed)" in check.stdout
    assert "other-secret-value" not in check.stdout and "s3cret-managed-files-value" not in check.stdout
    assert "listen = 25" in (tmp_path / "etc" / "app.conf").read_text()


def test_bad_input_and_a_failed_validation_change_nothing_and_say_what_to_fix(tmp_path):
    bad = playbook(tmp_path, "-e", "bad_owner=no-such-user-kb")
    assert bad.returncode != 0 and "no user 'no-such-user-kb' on this host" in bad.stdout
    assert not (tmp_path / "etc").exists()
    assert playbook(tmp_path).returncode == 0
    failed = playbook(tmp_path, "-e", "listen_port=587", "-e", "validate_cmd='/bin/grep -q nothing-here %s'")
    assert failed.returncode != 0
    assert "validation failed: /bin/grep -q nothing-here %s exited 1" in failed.stdout
    assert "listen = 25" in (tmp_path / "etc" / "app.conf").read_text()
