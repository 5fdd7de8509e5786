#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: robot_order
short_description: Order a pool's additional subnet for a Hetzner dedicated server, once
version_added: 0.1.0
author:
  - Kibamail platform team (@kibamail)
description:
  - Orders a server addon (an additional subnet such as C(subnet_ipv4_24)) for a pool of the platform through
    C(POST /order/server_addon/transaction), unless the account already has the pool's subnet or an order for it.
  - Robot chooses the subnet's address; the order names only the product. So the module decides from what the
    account has and what it ordered, never from the address it would like. The pool's need is met by
    (1) a subnet at O(subnet), (2) a subnet that an order for the pool delivered (the transaction list keeps
    delivered orders for 30 days), or (3) a subnet of the product's size routed to O(server_number) or to a
    vSwitch that server is in, unless listed in O(exclude_subnets).
    An order for the pool still in process means no new order either; the module waits for it.
  - Orders carry the marker C([kibamail:POOL]) at the end of their C(reason); that is how (2) and pending
    orders are recognised.
  - It reads C(GET /subnet), C(GET /vswitch) and C(GET /vswitch/{id}) (only when a subnet is on a vSwitch),
    C(GET /order/server_addon/transaction) and C(GET /order/server_addon/{server_number}/product), and writes
    only C(POST /order/server_addon/transaction) (once at most), then polls C(GET /order/server_addon/transaction/{id}).
  - Ordering costs money and Robot allows only 20 orders a day; see O(test), O(confirm_order) and O(validate_with_api).
  - The delivered address is usually not the inventory's placeholder. The module returns it (RV(subnet)) and
    warns when it differs from O(subnet); write it into C(platform_pools.<pool>.subnet).
extends_documentation_fragment:
  - kibamail.email_platform.robot
  - kibamail.email_platform.robot.actiongroup_robot
  - kibamail.email_platform.robot.order
attributes:
  check_mode:
    support: full
    description: Reads what the account has and ordered; never sends an order, not even a dry run.
  diff_mode:
    support: none
    description: Orders have no before/after text; RV(outcome) and RV(request) say what would be ordered.
options:
  pool:
    description:
      - Name of the pool the subnet is for (a key of C(platform_pools)). It goes into the order's marker.
    type: str
    required: true
  server_number:
    description:
      - Number of the dedicated server the subnet is ordered for (it is routed to its main IP first).
    type: int
    required: true
  product_id:
    description:
      - Addon product, as listed by C(GET /order/server_addon/{server_number}/product), for example V(subnet_ipv4_24).
    type: str
    required: true
  reason:
    description:
      - Why the addresses are needed. Mandatory for IP addresses and subnets; Hetzner and RIPE read it.
      - The module appends the marker C([kibamail:POOL]).
    type: str
    required: true
  gateway:
    description:
      - Gateway address for the subnet, when the product allows choosing it.
    type: str
  subnet:
    description:
      - The pool's subnet as the inventory has it, for example V(192.0.2.0/24), when it is known.
      - Robot assigns the address, so this only helps to find an existing subnet; it is never sent.
    type: str
  exclude_subnets:
    description:
      - Subnets that belong to other pools (their C(platform_pools.<pool>.subnet)); never taken as this pool's.
    type: list
    elements: str
    default: []
notes:
  - Hetzner normally wants a RIPE justification for a /24 and may not offer it through the API at all;
    the dry run tells whether the product can be ordered for the server.
  - Dedicated servers are ordered with M(kibamail.email_platform.robot_server_order).
seealso:
  - module: kibamail.email_platform.robot_subnet_info
  - module: kibamail.email_platform.robot_server_order
"""

EXAMPLES = r"""
- name: Check that the transactional /24 can be ordered (dry run, nothing sent to the order endpoint)
  kibamail.email_platform.robot_order:
    pool: transactional
    server_number: 321
    product_id: subnet_ipv4_24
    reason: Sending IPs of the transactional mail pool
    subnet: "{{ platform_plan.pools.transactional.subnet }}"

- name: Really order it (runs again safely; a second run orders nothing)
  kibamail.email_platform.robot_order:
    pool: transactional
    server_number: 321
    product_id: subnet_ipv4_24
    reason: Sending IPs of the transactional mail pool
    test: false
    confirm_order: true
  register: transactional_order

- name: Say where the delivered subnet goes
  ansible.builtin.debug:
    msg: "Set platform_pools.transactional.subnet to {{ transactional_order.subnet.cidr }}"
"""

RETURN = r"""
outcome:
  description: >-
    What happened: V(exists) (the account has the pool's subnet), V(pending) (an order for the pool was
    in process; waited for unless O(wait=false)), V(dry_run), V(ordered), in check mode V(would_order) /
    V(would_dry_run); on failure V(unknown) (the answer to the order was lost: it may have been placed)
    or V(failed) (Robot cancelled the order).
  returned: always
  type: str
  sample: exists
request:
  description: The form the order sends (or would send), marker included.
  returned: when an order is due
  type: dict
  sample: {server_number: 321, product_id: subnet_ipv4_24, reason: "Sending IPs [kibamail:transactional]", test: true}
transaction:
  description: The order transaction as Robot returned it (the last poll when waiting).
  returned: when an order was sent or found pending
  type: dict
subnet:
  description: The pool's subnet in Robot (same shape as robot_subnet_info's subnets).
  returned: when known
  type: dict
inventory_matches:
  description: Whether RV(subnet) is the O(subnet) the inventory holds. When false, write the C(cidr) of RV(subnet) into the inventory.
  returned: when RV(subnet) is returned
  type: bool
"""

from typing import Any, Dict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import (
    ROBOT_ARGUMENT_SPEC,
    client_from_params,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.robot_orders import (
    ORDER_ARGUMENT_SPEC,
    SubnetOrder,
    ensure_subnet,
    run_order,
)


def main() -> None:
    spec: Dict[str, Any] = dict(
        pool=dict(type="str", required=True),
        server_number=dict(type="int", required=True),
        product_id=dict(type="str", required=True),
        reason=dict(type="str", required=True),
        gateway=dict(type="str"),
        subnet=dict(type="str"),
        exclude_subnets=dict(type="list", elements="str", default=[]),
    )
    spec.update(ORDER_ARGUMENT_SPEC)
    spec.update(ROBOT_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    order = SubnetOrder(pool=p["pool"], server_number=p["server_number"], product_id=p["product_id"],
                        reason=p["reason"], subnet=p["subnet"] or None, exclude=list(p["exclude_subnets"]),
                        gateway=p["gateway"])
    run_order(module, client_from_params(p, progress=module.log), ensure_subnet, order)


if __name__ == "__main__":
    main()
