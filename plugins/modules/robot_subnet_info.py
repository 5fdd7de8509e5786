#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: robot_subnet_info
short_description: List the subnets of a Hetzner Robot account
version_added: 0.1.0
author:
  - Kibamail platform team (@kibamail)
description:
  - Lists the additional subnets of the Robot account, optionally only those routed to one server,
    and matches them to the pools of the platform plan.
  - Robot answers an empty list with 404 C(NOT_FOUND); this module reports it as an empty list.
  - Subnets without a server IP are routed to a vSwitch; the module finds which one with C(GET /vswitch).
extends_documentation_fragment:
  - kibamail.email_platform.robot
  - kibamail.email_platform.robot.actiongroup_robot
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Reads only.
options:
  server_ip:
    description:
      - Only subnets routed to the server with this main IP (C(GET /subnet?server_ip=)).
    type: str
  pools:
    description:
      - Pools of the plan (C(platform_plan.pools)), each a dict with at least C(subnet).
      - When given, RV(subnets) holds only the pools' subnets and RV(pools) maps each pool to its subnet.
    type: dict
  resolve_vswitch:
    description:
      - Find the vSwitch of subnets that have no server IP (one extra call per vSwitch).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Subnets of the plan's pools
  kibamail.email_platform.robot_subnet_info:
    pools: "{{ platform_plan.pools }}"
  register: robot_subnets

- name: Fail when a pool has no subnet yet
  ansible.builtin.assert:
    that: robot_subnets.missing_pools | length == 0
    fail_msg: "No Robot subnet for {{ robot_subnets.missing_pools | join(', ') }}"
"""

RETURN = r"""
subnets:
  description: Subnets, sorted by address.
  returned: always
  type: list
  elements: dict
  contains:
    ip: {description: First address of the subnet., type: str, returned: always, sample: 192.0.2.0}
    mask: {description: Prefix length as an integer., type: int, returned: always, sample: 24}
    cidr: {description: Address and prefix length., type: str, returned: always, sample: 192.0.2.0/24}
    gateway: {description: Gateway address of the subnet., type: str, returned: always}
    server_ip: {description: "Main IP of the server the subnet is routed to, or null.", type: str, returned: always}
    server_number: {description: "Number of that server, or null.", type: int, returned: always}
    failover: {description: Whether this is a failover subnet., type: bool, returned: always}
    locked: {description: Whether the subnet is locked., type: bool, returned: always}
    routing_target:
      description: Where the subnet is routed; C(type) is V(server), V(vswitch) or V(unknown).
      type: dict
      returned: always
      sample: {type: vswitch, server_ip: null, server_number: null, vswitch_id: 4321}
pools:
  description: Pool name to its subnet (null when Robot has no such subnet). Only with O(pools).
  returned: when O(pools) is set
  type: dict
missing_pools:
  description: Names of the pools whose subnet Robot does not have.
  returned: when O(pools) is set
  type: list
  elements: str
"""

from typing import Any, Dict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import (
    ROBOT_ARGUMENT_SPEC,
    RobotError,
    client_from_params,
    list_subnets,
    match_pools,
)


def main() -> None:
    spec: Dict[str, Any] = dict(
        server_ip=dict(type="str"),
        pools=dict(type="dict"),
        resolve_vswitch=dict(type="bool", default=True),
    )
    spec.update(ROBOT_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    client = client_from_params(module.params, progress=module.log)
    try:
        subnets = list_subnets(client, module.params["server_ip"], module.params["resolve_vswitch"])
    except RobotError as exc:
        module.fail_json(msg=str(exc), error_code=exc.code)
    result: Dict[str, Any] = dict(changed=False, subnets=subnets)
    pools = module.params["pools"]
    if pools is not None:
        try:
            matched = match_pools(subnets, pools)
        except ValueError as exc:
            module.fail_json(msg="pools: every pool needs a 'subnet' like 192.0.2.0/24: {0}".format(exc))
        result["pools"] = matched
        result["missing_pools"] = [name for name, subnet in matched.items() if subnet is None]
        result["subnets"] = [s for s in matched.values() if s is not None]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
