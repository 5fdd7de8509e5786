#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: robot_order
short_description: Order an additional subnet for a Hetzner dedicated server, explicitly
version_added: 0.1.0
author:
  - Kibamail platform team (@kibamail)
description:
  - Orders a server addon (an additional subnet such as C(subnet_ipv4_29)) through
    C(POST /order/server_addon/transaction).
  - Ordering costs money and Robot allows only 20 orders a day, so the module is explicit
    about it. By default it sends a dry run (C(test=true)), which validates the order and buys nothing.
    A real order needs both O(test=false) and O(confirm_order=true).
  - It never orders in check mode; it then only reports what it would do.
  - It is idempotent. When Robot already has O(subnet), or an order of the same product for the
    same server is still in process, it places no new order (it waits for the pending one instead).
  - After a real order it waits, up to O(wait_timeout), for the transaction to become C(ready).
extends_documentation_fragment:
  - kibamail.email_platform.robot
  - kibamail.email_platform.robot.actiongroup_robot
attributes:
  check_mode:
    support: full
    description: Reads existing subnets and pending orders; never sends an order, not even a dry run.
  diff_mode:
    support: none
    description: Orders have no before/after text.
options:
  server_number:
    description:
      - Number of the dedicated server the subnet is ordered for (it is routed to its main IP first).
    type: int
    required: true
  product_id:
    description:
      - Addon product, as listed by C(GET /order/server_addon/{server_number}/product), for example V(subnet_ipv4_29).
    type: str
    required: true
  reason:
    description:
      - Why the addresses are needed. Mandatory for IP addresses and subnets; Hetzner and RIPE read it.
    type: str
    required: true
  gateway:
    description:
      - Gateway address for the subnet, when the product allows choosing it.
    type: str
  subnet:
    description:
      - The subnet the pool should have, for example V(192.0.2.0/24).
      - When Robot already has it, nothing is ordered.
    type: str
  test:
    description:
      - Send the order as a dry run (C(test=true)). Nothing is bought.
    type: bool
    default: true
  confirm_order:
    description:
      - Must be V(true) together with O(test=false) to place a real, paid order.
    type: bool
    default: false
  wait:
    description:
      - Wait for a real (or pending) order to become C(ready).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the transaction to become C(ready).
    type: int
    default: 1800
  poll_interval:
    description:
      - Seconds between two polls of the transaction.
    type: int
    default: 30
notes:
  - Hetzner normally wants a RIPE justification for a /24 and may not offer it through the API at all;
    the dry run tells whether the product can be ordered for the server.
  - Ordering servers is not supported by this module.
"""

EXAMPLES = r"""
- name: Check that a /29 can be ordered (dry run, nothing bought)
  kibamail.email_platform.robot_order:
    server_number: 321
    product_id: subnet_ipv4_29
    reason: Sending IPs of the transactional pool
    subnet: "{{ platform_plan.pools.transactional.subnet }}"

- name: Really order it
  kibamail.email_platform.robot_order:
    server_number: 321
    product_id: subnet_ipv4_29
    reason: Sending IPs of the transactional pool
    test: false
    confirm_order: true
"""

RETURN = r"""
outcome:
  description: >-
    What happened: V(exists) (Robot has O(subnet)), V(pending) (an order was already in process),
    V(dry_run), V(ordered), or in check mode V(would_order) / V(would_dry_run).
  returned: always
  type: str
  sample: dry_run
transaction:
  description: The order transaction as Robot returned it (the last poll when waiting).
  returned: when an order was sent or found pending
  type: dict
subnet:
  description: The existing or newly delivered subnet (same shape as robot_subnet_info's subnets).
  returned: when known
  type: dict
"""

import time
from typing import Any, Dict, Optional

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import (
    PENDING_STATUS,
    ROBOT_ARGUMENT_SPEC,
    RobotClient,
    RobotError,
    addon_products,
    client_from_params,
    normalize_subnet,
    pending_addon_orders,
    transaction_of,
)


def existing_subnet(client: RobotClient, wanted: Optional[str]) -> Optional[Dict[str, Any]]:
    if not wanted:
        return None
    ip, _sep, mask = wanted.partition("/")
    answer = client.request("GET", "/subnet/" + ip, absent_codes=("NOT_FOUND", "SUBNET_NOT_FOUND"))
    if answer is None:
        return None
    subnet = normalize_subnet(answer)
    if mask and subnet["mask"] != int(mask):
        return None
    return subnet


def wait_ready(module: AnsibleModule, client: RobotClient, transaction: Dict[str, Any]) -> Dict[str, Any]:
    deadline = time.monotonic() + module.params["wait_timeout"]
    while transaction.get("status") == PENDING_STATUS:
        if time.monotonic() >= deadline:
            module.fail_json(
                msg="Order {0} is still '{1}' after {2}s; run again later: the pending order is found and not repeated".format(
                    transaction.get("id"), PENDING_STATUS, module.params["wait_timeout"]),
                changed=True, transaction=transaction)
        time.sleep(max(1, module.params["poll_interval"]))
        transaction = transaction_of(client.request("GET", "/order/server_addon/transaction/{0}".format(transaction["id"])))
    if transaction.get("status") != "ready":
        module.fail_json(msg="Order {0} ended with status '{1}'".format(transaction.get("id"), transaction.get("status")),
                         changed=True, transaction=transaction)
    return transaction


def delivered_subnet(client: RobotClient, transaction: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    for resource in transaction.get("resources") or []:
        if isinstance(resource, dict) and resource.get("type") == "subnet" and resource.get("id"):
            answer = client.request("GET", "/subnet/{0}".format(resource["id"]), absent_codes=("NOT_FOUND", "SUBNET_NOT_FOUND"))
            if answer is not None:
                return normalize_subnet(answer)
    return None


def run(module: AnsibleModule, client: RobotClient) -> Dict[str, Any]:
    p = module.params
    found = existing_subnet(client, p["subnet"])
    if found is not None:
        return dict(changed=False, outcome="exists", subnet=found)
    pending = pending_addon_orders(client, p["server_number"], p["product_id"])
    if pending:
        transaction = pending[0]
        if p["wait"] and not module.check_mode:
            transaction = wait_ready(module, client, transaction)
        return dict(changed=False, outcome="pending", transaction=transaction,
                    subnet=delivered_subnet(client, transaction) if transaction.get("status") == "ready" else None)
    real = not p["test"]
    if real and not p["confirm_order"]:
        module.fail_json(msg="test=false places a real, paid order: set confirm_order=true as well to place it")
    if module.check_mode:
        return dict(changed=real, outcome="would_order" if real else "would_dry_run")
    products = [product.get("id") for product in addon_products(client, p["server_number"])]
    if p["product_id"] not in products:
        module.fail_json(msg="Product '{0}' cannot be ordered for server {1}; orderable addons: {2}".format(
            p["product_id"], p["server_number"], ", ".join(str(x) for x in products) or "none"))
    form: Dict[str, Any] = dict(server_number=p["server_number"], product_id=p["product_id"], reason=p["reason"], test=not real)
    if p["gateway"]:
        form["gateway"] = p["gateway"]
    transaction = transaction_of(client.request("POST", "/order/server_addon/transaction", form=form, repeatable=False))
    if not real:
        return dict(changed=False, outcome="dry_run", transaction=transaction)
    if p["wait"]:
        transaction = wait_ready(module, client, transaction)
        return dict(changed=True, outcome="ordered", transaction=transaction, subnet=delivered_subnet(client, transaction))
    return dict(changed=True, outcome="ordered", transaction=transaction)


def main() -> None:
    spec: Dict[str, Any] = dict(
        server_number=dict(type="int", required=True),
        product_id=dict(type="str", required=True),
        reason=dict(type="str", required=True),
        gateway=dict(type="str"),
        subnet=dict(type="str"),
        test=dict(type="bool", default=True),
        confirm_order=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
        poll_interval=dict(type="int", default=30),
    )
    spec.update(ROBOT_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    client = client_from_params(module.params, progress=module.log)
    try:
        result = run(module, client)
    except RobotError as exc:
        module.fail_json(msg=str(exc), error_code=exc.code)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
