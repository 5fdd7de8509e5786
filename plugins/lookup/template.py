# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: template
short_description: Render a template file, sharing the task's variables instead of copying them
version_added: 0.1.0
description:
  - Renders each template file as P(ansible.builtin.template#lookup) does (same search path, the same
    C(ansible_managed) and C(template_*) variables, the same options), and returns the rendered strings.
  - The difference is what it costs. For every template, P(ansible.builtin.template#lookup) makes a deep
    copy of every variable of the host (on a lab MTA 24 to 74 ms each, a fifth of a no-change
    C(site.yml) run's CPU); this lookup gives the template a shallow copy instead, so the template sees
    the same values and the task's variables stay as they were.
  - A template must not modify the variables it reads (for example with C(list.append)); the roles of this
    collection do not.
options:
  _terms:
    description: Template files, found like those of P(ansible.builtin.template#lookup) (the role's
      C(templates/) first).
    type: list
    elements: str
    required: true
  template_vars:
    description: Variables added for these templates only.
    type: dict
    default: {}
  variable_start_string:
    description: The string that opens a print statement.
    type: str
    default: "{{"
  variable_end_string:
    description: The string that closes a print statement.
    type: str
    default: "}}"
  comment_start_string:
    description: The string that opens a comment.
    type: str
    default: "{#"
  comment_end_string:
    description: The string that closes a comment.
    type: str
    default: "#}"
  trim_blocks:
    description: Remove the first newline after a block tag, as P(ansible.builtin.template#lookup) does.
    type: bool
    default: true
seealso:
  - plugin: ansible.builtin.template
    plugin_type: lookup
author:
  - Kibamail platform engineering (@kibamail)
"""

EXAMPLES = r"""
- name: Write OpenDKIM's configuration
  kibamail.email_platform.managed_files:
    files:
      - dest: /etc/opendkim.conf
        content: "{{ lookup('kibamail.email_platform.template', 'opendkim.conf.j2') }}"
        mode: "0644"
"""

RETURN = r"""
_raw:
  description: The rendered text of each template, in the order given.
  type: list
  elements: str
"""

from typing import Any, Dict, List, Optional

from ansible.plugins.lookup.template import LookupModule as BuiltinTemplateLookup


class SharedVariables(dict):
    """The task's variables as the built-in lookup receives them: where it asks for a deep copy (to add the
    template's own variables without touching the task's), it gets a new dict of the same values."""

    def __deepcopy__(self, memo: Dict[int, Any]) -> Dict[str, Any]:
        return dict(self)


class LookupModule(BuiltinTemplateLookup):
    """ansible.builtin.template's rendering, given variables that copy shallowly."""

    def run(self, terms: List[str], variables: Optional[Dict[str, Any]] = None, **kwargs: Any) -> List[Any]:
        return super().run(terms, variables=SharedVariables(variables or {}), **kwargs)
