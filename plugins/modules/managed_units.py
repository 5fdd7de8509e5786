#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: managed_units
short_description: Start and enable a set of systemd units in one module run
version_added: 0.2.0
author:
  - Kibamail platform team (@kibamail)
description:
  - Reads the state of every unit in O(units) with one C(systemctl show), then enables and starts, in the
    order given, only the units that are not yet as wanted. On a converged host the whole set costs one
    command, where M(ansible.builtin.systemd_service) costs one module run per unit.
  - A unit that is not installed fails the task, naming it, after the units before it were handled; the
    result lists in RV(actions) what was done. A C(systemctl start) that fails names the unit and points
    to its journal.
  - Stopping, restarting and reloading stay with M(ansible.builtin.systemd_service) (handlers).
attributes:
  check_mode:
    support: full
    description: Reports what would be enabled or started; a unit not installed yet (its package would be) is
      reported as to be enabled and started.
  diff_mode:
    support: none
    description: The result lists the actions taken; there is no file to compare.
options:
  units:
    description: The units, in the order they are to be handled.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Unit name; without a suffix it is a C(.service).
        type: str
        required: true
      state:
        description: V(started) starts the unit when it is not active; V(unchanged) leaves it as it is.
        type: str
        choices: [started, unchanged]
        default: started
      enabled:
        description:
          - V(true) enables the unit unless systemd already starts it at boot (enabled, static, indirect, ...).
          - V(false) leaves the unit file state as it is (this module never disables).
        type: bool
        default: true
  daemon_reload:
    description: Run C(systemctl daemon-reload) first (a unit file changed in this run). Not counted as a change.
    type: bool
    default: false
notes:
  - Needs systemd on the managed host.
seealso:
  - module: ansible.builtin.systemd_service
"""

EXAMPLES = r"""
- name: Start and enable the MTA services
  kibamail.email_platform.managed_units:
    units:
      - {name: kibamail-mta-firewall}
      - {name: opendkim}
      - {name: postfix@-, enabled: false}
    daemon_reload: "{{ mta_files is changed }}"
"""

RETURN = r"""
actions:
  description: What was done (or would be done in check mode), one C(enable) or C(start) and the unit each.
  returned: always
  type: list
  elements: str
  sample: [start opendkim.service]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kibamail.email_platform.plugins.module_utils.managed_units import (
    ManagedUnitsError,
    converge,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                state=dict(type="str", choices=["started", "unchanged"], default="started"),
                enabled=dict(type="bool", default=True),
            )),
            daemon_reload=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        outcome = converge(module.params["units"], module.check_mode, module.params["daemon_reload"],
                           module.run_command)
    except ManagedUnitsError as exc:
        module.fail_json(msg=str(exc), changed=bool(exc.done), actions=exc.done)
    module.exit_json(changed=bool(outcome.actions), actions=outcome.actions)


if __name__ == "__main__":
    main()
