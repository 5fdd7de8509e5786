# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A role called without a required input stops at argument validation,
before any task, with a message that names the input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from ansible_env import ROOT, ansible_env


def required_inputs() -> dict[tuple[str, str], list[str]]:
    """(role, entry point) -> its required options, from every argument spec."""
    cases = {}
    for spec_file in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        role = spec_file.parents[1].name
        for entry_point, spec in yaml.safe_load(spec_file.read_text())["argument_specs"].items():
            names = sorted(n for n, o in (spec.get("options") or {}).items() if o.get("required"))
            if names:
                cases[(role, entry_point)] = names
    return cases


def test_every_required_input_is_enforced(tmp_path: Path):
    cases = required_inputs()
    assert ("mta", "main") in cases and ("bounce_inbound", "main") in cases and ("postfix", "fragment") in cases
    tasks = []
    for (role, entry_point), _names in cases.items():
        tasks.append({
            "name": "%s %s" % (role, entry_point),
            "block": [{"ansible.builtin.include_role": {"name": "kibamail.email_platform." + role, "tasks_from": entry_point}},
                      {"ansible.builtin.set_fact": {"kb_accepted": True}}],
            "rescue": [{"ansible.builtin.set_fact": {
                "kb_refusals": "{{ kb_refusals | default({}) | combine({'%s %s': ansible_failed_result.msg | default('')}) }}"
                % (role, entry_point)}}],
        })
    tasks.append({"ansible.builtin.copy": {"content": "{{ {'accepted': kb_accepted | default(false), 'refusals': kb_refusals} | to_json }}",
                                           "dest": str(tmp_path / "result.json"), "mode": "0644"}})
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}, "tasks": tasks}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play), encoding="utf-8")
    res = subprocess.run(["ansible-playbook", "-i", "localhost,", str(tmp_path / "play.yml")], cwd=ROOT, env=ansible_env(),
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["accepted"] is False, "a role ran without its required inputs"
    for (role, entry_point), names in cases.items():
        msg = result["refusals"]["%s %s" % (role, entry_point)]
        assert "missing required arguments" in msg, (role, entry_point, msg)
        for name in names:
            assert name in msg, (role, entry_point, name, msg)
