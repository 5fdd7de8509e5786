# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The environment for ansible-playbook run from this checkout, whatever the caller's environment.

Used by the tests and the benchmarks that run playbooks in a subprocess: the
checkout's venv first on PATH, its ansible.cfg and collection path, no colour,
no warnings about localhost or unparsed inventories, and none of the caller's
Hetzner credentials (a test must never reach a real API by accident).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = ("ROBOT_WS_USER", "ROBOT_WS_PASSWORD", "ROBOT_WS_URL", "HCLOUD_TOKEN", "HCLOUD_ENDPOINT")


def ansible_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """os.environ with the checkout's Ansible settings, then ``extra`` on top."""
    env = dict(os.environ)
    env.update({
        "PATH": "%s:%s" % (ROOT / ".venv" / "bin", env.get("PATH", "")),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    })
    for key in CREDENTIALS:
        env.pop(key, None)
    env.update(extra or {})
    return env
