# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render the monitoring roles' templates as Ansible would (monitoring with its defaults)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import jinja2
import yaml
from ansible.plugins.filter.core import FilterModule

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "monitoring"
EXPORTERS_ROLE = ROOT / "roles" / "metrics_exporters"
PROMTOOL_TESTS = ROLE / "tests" / "promtool"


def role_defaults(overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    values.update(overrides or {})
    return values


def render(template: str, values: Dict[str, Any], role: Path = ROLE) -> str:
    """A role template rendered with Ansible's template options (trim_blocks) and core filters."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(role / "templates")), trim_blocks=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(FilterModule().filters())
    return env.get_template(template).render(ansible_managed="Managed by Ansible (test render)", **values)
