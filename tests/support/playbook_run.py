# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One ansible-playbook run whose output came from the ``ansible.posix.json`` callback, parsed."""

from __future__ import annotations

import json
import subprocess
from typing import Any, Dict, List


class PlaybookRun:
    """The return code, the raw output and the parsed JSON of one run."""

    def __init__(self, process: subprocess.CompletedProcess) -> None:
        self.rc = process.returncode
        self.stdout = process.stdout
        self.stderr = process.stderr
        try:
            self.data = json.loads(process.stdout)
        except ValueError:
            raise AssertionError("ansible-playbook printed no JSON (rc %d): %s %s"
                                 % (process.returncode, process.stdout[-3000:], process.stderr[-3000:]))

    @property
    def stats(self) -> Dict[str, Any]:
        return self.data["stats"]["localhost"]

    def task(self, name: str, host: str = "localhost") -> List[Dict[str, Any]]:
        """Results on ``host`` of every task named ``name`` (a role's task with or without its
        ``role : `` prefix), loop items flattened."""
        found = []
        for play in self.data["plays"]:
            for task in play["tasks"]:
                title = task["task"]["name"]
                if (title == name or title.endswith(" : " + name)) and host in task["hosts"]:
                    result = task["hosts"][host]
                    found.extend(result.get("results", [result]))
        return found
