# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start and enable a role's systemd units in one pass (the managed_units module).

One ``systemctl show`` reads every unit's state; only the units that are not as wanted get a
``systemctl enable`` or ``start`` (in the order given, so a unit can be started after the ones it needs).
On a converged host that is one command instead of one module run per unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

SHOWN = ("Id", "LoadState", "ActiveState", "UnitFileState")
# Unit file states systemd starts at boot without an `enable` of ours (or that `enable` cannot change).
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated", "transient")
RUNNING_STATES = ("active", "activating", "reloading")


class ManagedUnitsError(Exception):
    """A unit that cannot be brought to the wanted state; the message says which and why."""

    def __init__(self, message: str, done: Optional[List[str]] = None) -> None:
        super().__init__(message)
        self.done = done or []


@dataclass
class Outcome:
    actions: List[str] = field(default_factory=list)   # "enable x.service", "start x.service"


def unit_id(name: str) -> str:
    """systemctl's name for a unit given with or without its suffix."""
    return name if "." in name.rsplit("@", 1)[-1] else name + ".service"


def parse_show(text: str) -> List[Dict[str, str]]:
    """The blocks of `systemctl show -p ...`, one dict per unit, in the order asked."""
    blocks: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _sep, value = line.partition("=")
        current[key] = value
    if current:
        blocks.append(current)
    return blocks


def wanted_actions(unit: dict, state: Dict[str, str]) -> List[str]:
    actions = []
    if unit.get("enabled") and state.get("UnitFileState", "") not in ENABLED_STATES:
        actions.append("enable")
    if unit.get("state") == "started" and state.get("ActiveState", "") not in RUNNING_STATES:
        actions.append("start")
    return actions


def converge(units: List[dict], check_mode: bool, daemon_reload: bool, run: Callable) -> Outcome:
    """run(argv) -> (rc, stdout, stderr). Raises ManagedUnitsError with what was done before a failure."""
    outcome = Outcome()
    if daemon_reload and not check_mode:
        rc, _out, err = run(["systemctl", "daemon-reload"])
        if rc != 0:
            raise ManagedUnitsError("systemctl daemon-reload failed: %s" % err.strip())
    ids = [unit_id(u["name"]) for u in units]
    rc, out, err = run(["systemctl", "show", "--property=" + ",".join(SHOWN), "--"] + ids)
    states = parse_show(out) if rc == 0 else []
    if rc != 0 or len(states) != len(ids):
        raise ManagedUnitsError("systemctl show %s failed (exit %d): %s" % (" ".join(ids), rc, err.strip()))
    for unit, name, state in zip(units, ids, states):
        if state.get("LoadState") == "not-found":
            if check_mode:   # a package or unit file an earlier task would have installed
                outcome.actions += ["%s %s" % (a, name) for a in wanted_actions(unit, {})]
                continue
            raise ManagedUnitsError("unit %s not found: install its package or unit file first" % name,
                                    outcome.actions)
        for action in wanted_actions(unit, state):
            outcome.actions.append("%s %s" % (action, name))
            if check_mode:
                continue
            rc, out, err = run(["systemctl", action, "--", name])
            if rc != 0:
                outcome.actions.pop()
                raise ManagedUnitsError("systemctl %s %s failed (exit %d): %s; see journalctl -u %s" % (
                    action, name, rc, (err or out).strip(), name), outcome.actions)
    return outcome
