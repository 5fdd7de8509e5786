#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations
DOCUMENTATION = r"""
module: robot_server_order
short_description: Order a Hetzner dedicated server for an inventory host, once
version_added: 0.2.0
author:
  - Kibamail platform team (@kibamail)
description:
  - Orders one dedicated server for the inventory host O(name) through Robot's server ordering, a standard
    product (C(POST /order/server/transaction)) or, with O(market=true), a server of the auction
    (C(POST /order/server_market/transaction)), unless the account already has a server for the host.
  - The host's server is the one whose C(server_name) is O(name) (C(GET /server)), or the one an order for the
    host delivered. Orders carry the marker C([kibamail:NAME]) in their C(comment), and the transaction list
    (C(GET /order/server/transaction) or C(GET /order/server_market/transaction)) shows it back. An order for
    the host still in process means no new order; the module waits for it.
  - Once delivered, the server is named O(name) (C(POST /server/{server_number}) with C(server_name)) so later
    runs find it by name even when the transaction is no longer listed. That rename is a change.
  - Before an order it reads the product (C(GET /order/server/product/{id}) or
    C(GET /order/server_market/product/{id})) and refuses an unknown product, location or distribution.
  - Ordering costs money; see O(test), O(confirm_order) and O(validate_with_api).
  - Returns RV(server_number) and RV(server_ip), which the inventory needs as C(robot_server_number) and the
    host's address (C(ansible_host), C(mta_address) or C(lb_address)).
extends_documentation_fragment:
  - kibamail.email_platform.robot
  - kibamail.email_platform.robot.actiongroup_robot
  - kibamail.email_platform.robot.order
attributes:
  check_mode:
    support: full
    description: Reads servers and transactions; sends no order (not even a dry run) and renames nothing.
  diff_mode:
    support: partial
    description: Shows the server name a rename sets, and the server a real order adds.
options:
  name:
    description:
      - The inventory host the server is for, for example V(us-mta1). Becomes the server's C(server_name).
    type: str
    required: true
  product_id:
    description:
      - Standard product (for example V(AX42)), or the numeric id of an auction server with O(market=true).
    type: str
    required: true
  market:
    description:
      - Order from the server auction (C(/order/server_market)) instead of the standard products.
    type: bool
    default: false
  location:
    description:
      - Data centre location of a standard product, for example V(FSN1). Required by Robot for standard products.
    type: str
  dist:
    description:
      - Operating system to install, as the product lists it, for example V(Debian 12 base).
    type: str
  lang:
    description:
      - Language of the installed system.
    type: str
  authorized_keys:
    description:
      - Fingerprints of Robot SSH keys to install. Robot wants these or O(password).
    type: list
    elements: str
    default: []
  password:
    description:
      - Root password of the installed system, when no O(authorized_keys) are given.
    type: str
  addons:
    description:
      - Product addons to order with the server (for example V(primary_ipv4)).
    type: list
    elements: str
    default: []
  comment:
    description:
      - Text of the order comment; the module appends the marker C([kibamail:NAME]).
      - Hetzner processes orders that carry a comment by hand, so delivery may take longer than without one.
    type: str
    default: Kibamail sending platform
  set_server_name:
    description:
      - Name the delivered server O(name) in Robot.
    type: bool
    default: true
notes:
  - Read servers back into an inventory with the C(community.hrobot.robot) inventory plugin.
seealso:
  - module: kibamail.email_platform.robot_order
"""

EXAMPLES = r"""
- name: Check that us-mta1 can be ordered (dry run)
  kibamail.email_platform.robot_server_order:
    name: us-mta1
    product_id: AX42
    location: FSN1
    dist: Debian 12 base
    authorized_keys: ["{{ robot_ssh_key_fingerprint }}"]

- name: Order it for real and wait for delivery (a re-run orders nothing)
  kibamail.email_platform.robot_server_order:
    name: us-mta1
    product_id: AX42
    location: FSN1
    dist: Debian 12 base
    authorized_keys: ["{{ robot_ssh_key_fingerprint }}"]
    test: false
    confirm_order: true
    wait_timeout: 7200
  register: us_mta1_server

- name: Say what goes into the inventory
  ansible.builtin.debug:
    msg: "us-mta1: robot_server_number {{ us_mta1_server.server_number }}, address {{ us_mta1_server.server_ip }}"
"""

RETURN = r"""
outcome:
  description: >-
    What happened: V(exists) (a server is named O(name)), V(delivered) (an order for the host was delivered,
    or was in process and has been waited for), V(pending) (an order is in process and O(wait=false) or check mode),
    V(dry_run), V(ordered), in check mode V(would_order) / V(would_dry_run); on failure V(unknown) (the answer
    to the order was lost: it may have been placed) or V(failed) (Robot cancelled the order).
  returned: always
  type: str
  sample: exists
server_number:
  description: Robot's number of the host's server (the inventory's C(robot_server_number)).
  returned: when the server exists
  type: int
  sample: 2101
server_ip:
  description: Main IPv4 address of the host's server.
  returned: when the server exists
  type: str
  sample: 203.0.113.40
server:
  description: The server as C(GET /server) lists it (C(server_number), C(server_ip), C(server_name), C(product), C(dc)).
  returned: when the server exists
  type: dict
request:
  description: The order form sent (or that would be sent), marker included, password masked.
  returned: when an order is due
  type: dict
transaction:
  description: The order transaction as Robot returned it (the last poll when waiting).
  returned: when an order was sent or found
  type: dict
"""

from typing import Any, Dict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import (
    ROBOT_ARGUMENT_SPEC,
    client_from_params,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.robot_orders import (
    ORDER_ARGUMENT_SPEC,
    ServerOrder,
    ensure_server,
    run_order,
)


def main() -> None:
    spec: Dict[str, Any] = dict(
        name=dict(type="str", required=True),
        product_id=dict(type="str", required=True),
        market=dict(type="bool", default=False),
        location=dict(type="str"),
        dist=dict(type="str"),
        lang=dict(type="str"),
        authorized_keys=dict(type="list", elements="str", default=[], no_log=False),
        password=dict(type="str", no_log=True),
        addons=dict(type="list", elements="str", default=[]),
        comment=dict(type="str", default="Kibamail sending platform"),
        set_server_name=dict(type="bool", default=True),
    )
    spec.update(ORDER_ARGUMENT_SPEC)
    spec.update(ROBOT_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=[("authorized_keys", "password")])
    p = module.params
    order = ServerOrder(name=p["name"], product_id=p["product_id"], market=p["market"], location=p["location"],
                        dist=p["dist"], lang=p["lang"], authorized_keys=list(p["authorized_keys"]),
                        password=p["password"], addons=list(p["addons"]), comment=p["comment"],
                        set_server_name=p["set_server_name"])
    run_order(module, client_from_params(p, progress=module.log), ensure_server, order)


if __name__ == "__main__":
    main()
