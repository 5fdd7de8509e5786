# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kibamail.email_platform.template renders as ansible.builtin.template does, without deep-copying the
task's variables and without changing them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.lookup import template as builtin
from ansible.template import Templar

from ansible_collections.kibamail.email_platform.plugins.lookup import template as plugin

NAME = "kibamail.email_platform.template"
BUILTIN = "ansible.builtin.template"
# What the plugin loader does when it loads a lookup by name: its options, from its documentation.
for name, module in ((NAME, plugin), (BUILTIN, builtin)):
    C.config.initialize_plugin_configuration_definitions("lookup", name, yaml.safe_load(module.DOCUMENTATION)["options"])
OURS = (plugin.LookupModule, NAME)
BUILTINS = (builtin.LookupModule, BUILTIN)

TEMPLATE = """{{ ansible_managed | comment }}
listen = {{ port }}
{% for name in names %}
name {{ name }}{{ suffix | default('') }}
{% endfor %}
"""


class NoDeepCopy:
    """A value that fails the test if anything deep-copies it (the built-in lookup does)."""

    def __deepcopy__(self, memo: Dict[int, Any]) -> Any:
        raise AssertionError("the task's variables were deep-copied")


def make(which: Any, variables: Dict[str, Any]) -> Any:
    """The lookup as the plugin loader hands it out (its load name set)."""
    loader = DataLoader()
    lookup = which[0](loader=loader, templar=Templar(loader=loader, variables=variables))
    lookup._load_name = which[1]
    return lookup


def render(which: Any, tmp_path: Path, variables: Dict[str, Any], **kwargs: Any) -> List[str]:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "app.conf.j2").write_text(TEMPLATE)
    return make(which, variables).run(["app.conf.j2"], variables=variables, **kwargs)


def variables_for(tmp_path: Path, **extra: Any) -> Dict[str, Any]:
    return dict({"ansible_search_path": [str(tmp_path)], "port": 25, "names": ["a", "b"]}, **extra)


def test_renders_exactly_as_the_builtin_lookup(tmp_path):
    ours = render(OURS, tmp_path, variables_for(tmp_path), template_vars={"suffix": "!"})
    builtin = render(BUILTINS, tmp_path, variables_for(tmp_path), template_vars={"suffix": "!"})
    assert ours == builtin
    assert ours == ["#\n# Ansible managed\n#\nlisten = 25\nname a!\nname b!\n"]


def test_does_not_deep_copy_the_variables(tmp_path):
    with pytest.raises(AssertionError, match="deep-copied"):
        render(BUILTINS, tmp_path, variables_for(tmp_path, big=NoDeepCopy()))
    assert render(OURS, tmp_path, variables_for(tmp_path, big=NoDeepCopy()))[0].endswith("name b\n")


def test_leaves_the_task_variables_as_they_were(tmp_path):
    variables = variables_for(tmp_path)
    before = {key: (value.copy() if isinstance(value, list) else value) for key, value in variables.items()}
    render(OURS, tmp_path, variables, template_vars={"suffix": "!"})
    assert variables == before  # no template_vars, ansible_managed or template_path left behind


def test_a_missing_template_is_an_error(tmp_path):
    variables = variables_for(tmp_path)
    with pytest.raises(AnsibleError, match="could not be found"):
        make(OURS, variables).run(["no-such.j2"], variables=variables)
