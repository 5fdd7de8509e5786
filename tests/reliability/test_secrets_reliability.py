# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets stay out of verbose output, without the lab.

playbooks/dkim_keys.yml runs on the controller only, so a -vvv run of it
against the lab inventory (keys written to a temporary directory) shows what
a verbose site.yml would print of its first secret-handling play. The lab
suite (test_lab_security_reliability.py) checks the whole site.yml.
"""

from __future__ import annotations

from pathlib import Path

from reliability_support import VAULT_PASSWORD_FILE, lab_secrets, run_playbook


def test_dkim_keys_playbook_prints_no_secret_at_vvv(tmp_path: Path, figures) -> None:
    args = ["-i", "inventories/lab", "playbooks/dkim_keys.yml", "-vvv",
            "--vault-password-file", str(VAULT_PASSWORD_FILE)]
    run = run_playbook(args, json_output=False, timeout=600, env_extra={"KB_LAB_DIR": str(tmp_path)})
    output = run.stdout + run.stderr
    assert run.rc == 0, output[-4000:]
    # The run made the keys it checks for: the secrets include their PEM lines.
    secrets = lab_secrets(tmp_path)
    assert any(name.endswith(".key line 1") for name in secrets), sorted(secrets)
    leaked = sorted(name for name, value in secrets.items() if value in output)
    assert not leaked, "secrets printed by dkim_keys.yml -vvv: %s" % leaked
    assert "logins" not in output, "customer logins (with their passwords) printed"
    figures.update(secrets_checked=len(secrets), output_bytes=len(output), leaked=0)
