# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""managed_units against a stand-in systemctl that answers as systemd 252 does: one read on a converged
host, only what differs enabled or started (in order), check mode, a missing unit, a failed start."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.kibamail.email_platform.plugins.modules import managed_units


class FakeSystemd:
    """Units as systemctl show reports them; records every command."""

    def __init__(self, units: Dict[str, Dict[str, str]]) -> None:
        self.units = units
        self.commands: List[List[str]] = []
        self.failing_start = ""

    def __call__(self, _module, argv, **_kwargs):
        self.commands.append(list(argv))
        if argv[1] == "show":
            blocks = []
            for name in argv[argv.index("--") + 1:]:
                unit = self.units.get(name)
                state = unit or {"LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""}
                blocks.append("Id=%s\nLoadState=%s\nActiveState=%s\nUnitFileState=%s\n" % (
                    name, state.get("LoadState", "loaded"), state["ActiveState"], state["UnitFileState"]))
            return 0, "\n".join(blocks), ""
        if argv[1] == "start":
            if argv[-1] == self.failing_start:
                return 1, "", "Job for %s failed because the control process exited with error code." % argv[-1]
            self.units[argv[-1]]["ActiveState"] = "active"
        if argv[1] == "enable":
            self.units[argv[-1]]["UnitFileState"] = "enabled"
        return 0, "", ""


@pytest.fixture
def systemd(monkeypatch):
    fake = FakeSystemd({
        "opendkim.service": {"ActiveState": "inactive", "UnitFileState": "disabled"},
        "postfix@-.service": {"ActiveState": "inactive", "UnitFileState": "static"},
        "kb-bounce-metrics.timer": {"ActiveState": "active", "UnitFileState": "enabled"},
    })

    def run_command(module, argv, **kwargs):   # a method: the stand-in answers for the module
        return fake(module, argv, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    return fake


def run(capsys, args: Dict[str, Any], check: bool = False) -> Dict[str, Any]:
    with patch_module_args(dict(args, _ansible_check_mode=check)):
        with pytest.raises(SystemExit):
            managed_units.main()
    return json.loads(capsys.readouterr().out)


UNITS = [{"name": "opendkim"}, {"name": "postfix@-", "enabled": False}, {"name": "kb-bounce-metrics.timer"}]


def test_enables_and_starts_what_differs_in_order_then_reads_once(systemd, capsys):
    first = run(capsys, {"units": UNITS})
    assert first["changed"] is True
    assert first["actions"] == ["enable opendkim.service", "start opendkim.service", "start postfix@-.service"]
    assert [c[1] for c in systemd.commands] == ["show", "enable", "start", "start"]
    systemd.commands.clear()
    second = run(capsys, {"units": UNITS})
    assert second["changed"] is False and second["actions"] == []
    assert [c[1] for c in systemd.commands] == ["show"]


def test_check_mode_reports_and_changes_nothing(systemd, capsys):
    result = run(capsys, {"units": UNITS + [{"name": "not-installed-yet"}]}, check=True)
    assert result["changed"] is True
    assert result["actions"][-2:] == ["enable not-installed-yet.service", "start not-installed-yet.service"]
    assert [c[1] for c in systemd.commands] == ["show"]
    assert systemd.units["opendkim.service"]["ActiveState"] == "inactive"


def test_a_missing_unit_fails_naming_it_after_the_ones_before(systemd, capsys):
    result = run(capsys, {"units": [{"name": "opendkim"}, {"name": "mtail"}]})
    assert result["failed"] is True and "unit mtail.service not found" in result["msg"]
    assert result["changed"] is True and result["actions"] == ["enable opendkim.service", "start opendkim.service"]


def test_a_failed_start_names_the_unit_and_its_journal(systemd, capsys):
    systemd.failing_start = "opendkim.service"
    result = run(capsys, {"units": UNITS})
    assert result["failed"] is True
    assert "systemctl start opendkim.service failed (exit 1)" in result["msg"] and "journalctl -u opendkim.service" \
        in result["msg"]
    assert result["actions"] == ["enable opendkim.service"]


def test_daemon_reload_first_when_asked(systemd, capsys):
    run(capsys, {"units": UNITS, "daemon_reload": True})
    assert systemd.commands[0] == ["systemctl", "daemon-reload"]
