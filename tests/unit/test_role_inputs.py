# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Role inputs as the argument specs say: a required input has no default
(else the spec never catches it missing), and every role asks for the
ansible-core version the collection requires (meta/runtime.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())


def load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


@pytest.mark.parametrize("role", ROLES)
def test_required_inputs_have_no_default(role):
    specs = load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    defaults = load(ROOT / "roles" / role / "defaults" / "main.yml") or {}
    wrong = []
    for entry_point, spec in specs.items():
        for name, option in (spec.get("options") or {}).items():
            if option.get("required") and ("default" in option or name in defaults):
                wrong.append("%s (%s): required, but has a default: drop it from defaults/main.yml" % (name, entry_point))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("role", sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "main.yml").is_file()))
def test_min_ansible_version_is_the_collections(role):
    requires = load(ROOT / "meta" / "runtime.yml")["requires_ansible"]
    assert requires.startswith(">="), requires
    minimum = ".".join(requires[2:].split(".")[:2])
    galaxy_info = load(ROOT / "roles" / role / "meta" / "main.yml")["galaxy_info"]
    assert str(galaxy_info["min_ansible_version"]) == minimum, (
        "roles/%s/meta/main.yml: min_ansible_version %s, meta/runtime.yml requires_ansible %s"
        % (role, galaxy_info["min_ansible_version"], requires))
