#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: robot_rdns
short_description: Reconcile many reverse DNS (PTR) entries on Hetzner Robot at once
version_added: 0.1.0
author:
  - Kibamail platform team (@kibamail)
description:
  - Sets the PTR of many addresses in one task, from an IP to PTR map (such as the plan's C(ptr_map))
    or from a subnet and a naming template.
  - Before anything is written, every wanted name must be a host name Robot accepts (RFC 1123, ASCII),
    and every address whose PTR is to be created must belong to the account (one C(GET /ip) and one
    C(GET /subnet), only when something is to be created). A wrong name or address fails the task,
    naming each value, and nothing is written.
  - Reads all current PTRs with one C(GET /rdns) call (or one per server IP in O(server_ips)),
    then writes only the differences. An absent PTR is created with C(PUT), an existing one is
    updated with C(POST).
  - A write is never sent blind a second time. After a conflict (409), a lost answer (timeout, dropped
    connection) or a server error, the PTR is read back with C(GET /rdns/{ip}) first; if it already has
    the wanted value, the write counts as done.
  - Robot allows about 500 rDNS calls an hour. On HTTP 403 C(RATE_LIMIT_EXCEEDED) the module waits until
    the oldest of its own requests leaves the window the API names (C(interval)), or the whole interval
    when none of its requests is in it, then paces its requests to C(max_request) per window. The waits
    are bounded by O(rate_limit_timeout); a wait that would overrun it fails at once, and a new run
    resumes with the next missing entry (it reads first, so nothing is written twice).
  - With O(max_writes), one task writes at most that many changes and returns the rest in RV(remaining),
    so a playbook can loop over batches, each its own task result (see C(playbooks/network.yml)).
extends_documentation_fragment:
  - kibamail.email_platform.robot
  - kibamail.email_platform.robot.actiongroup_robot
attributes:
  check_mode:
    support: full
    description: Reads the current PTRs and reports the writes it would make.
  diff_mode:
    support: full
    description: One line per changed address, before and after.
options:
  ptr_map:
    description:
      - Wanted PTR per address, for example the plan's C(platform_plan.ptr_map).
      - Names are compared case-insensitively and without a trailing dot.
    type: dict
  subnet:
    description:
      - An IPv4 subnet whose addresses are all named with O(ptr_template).
    type: str
  ptr_template:
    description:
      - Python format string naming each address of O(subnet).
      - Fields are C({ip}) (V(192.0.2.7)), C({ip_dashed}) (V(192-0-2-7)), C({index}) (offset in the subnet),
        C({last_octet}) and C({subnet}) (V(192-0-2-0-24)).
    type: str
  skip_network_and_broadcast:
    description:
      - With O(subnet), leave out the first and the last address of the subnet.
    type: bool
    default: true
  exclude:
    description:
      - Addresses this task leaves alone, with O(subnet) or O(ptr_map) - they get no PTR from it,
        and O(purge) never deletes theirs.
    type: list
    elements: str
    default: []
  server_ips:
    description:
      - Read current PTRs with one C(GET /rdns?server_ip=) call per server IP given here.
      - Empty (the default) reads every PTR of the account with a single C(GET /rdns).
      - Every address to name must be routed to one of these servers, otherwise its PTR cannot be seen
        and the task fails before writing (subnets on a vSwitch need the default, an empty list).
    type: list
    elements: str
    default: []
  purge:
    description:
      - Delete PTRs inside O(purge_scope) that are not wanted.
      - Hetzner's own default names (C(*.clients.your-server.de)) are never deleted.
    type: bool
    default: false
  purge_scope:
    description:
      - Subnets whose PTRs this task manages, used by O(purge).
      - Defaults to O(subnet) when that is given; required with O(purge=true) and O(ptr_map).
    type: list
    elements: str
  max_writes:
    description:
      - Write at most this many changes (in address order), return the others in RV(remaining), and succeed.
      - V(0) (the default) writes them all. Ignored in check mode, which reports every pending change.
    type: int
    default: 0
  progress_file:
    description:
      - A file on the managed host to which one line per write and per rate-limit wait is appended,
        so a long run can be followed with C(tail -f). Progress also goes to the system log.
    type: path
notes:
  - The writes happen in address order; after a rate limit, a lost connection or an interruption,
    run the same task again. Errors that do not go away (a name Robot refuses, an address outside the
    account, wrong credentials) say so and what to change instead.
seealso:
  - module: kibamail.email_platform.robot_subnet_info
  - module: community.hrobot.reverse_dns
"""

EXAMPLES = r"""
- name: Set the PTR of every sending IP of the plan
  kibamail.email_platform.robot_rdns:
    robot_user: "{{ robot_user }}"
    robot_password: "{{ robot_password }}"
    ptr_map: "{{ platform_plan.ptr_map }}"
    rate_limit_timeout: 7200

- name: Set the PTRs in batches of 50, each batch its own task result
  kibamail.email_platform.robot_rdns:
    ptr_map: "{{ platform_plan.ptr_map }}"
    max_writes: 50
  register: batch
  until: batch.remaining | length == 0
  retries: 20
  delay: 0

- name: Name a whole /24 from a template and remove stray PTRs in it
  kibamail.email_platform.robot_rdns:
    subnet: 198.51.100.0/24
    ptr_template: "mta-{ip_dashed}.kbmta.net"
    purge: true
"""

RETURN = r"""
changes:
  description: The writes made (or, in check mode, the writes that would be made), in address order.
  returned: always
  type: list
  elements: dict
  sample:
    - {ip: 192.0.2.10, action: create, before: null, after: us-mta1.kbmta.net}
summary:
  description: Counts of this run.
  returned: always
  type: dict
  contains:
    wanted: {description: Addresses with a wanted PTR., type: int, returned: always}
    create: {description: PTRs created (or to create)., type: int, returned: always}
    update: {description: PTRs updated (or to update)., type: int, returned: always}
    delete: {description: PTRs deleted (or to delete)., type: int, returned: always}
    unchanged: {description: Wanted PTRs already right., type: int, returned: always}
    remaining: {description: Number of changes in RV(remaining)., type: int, returned: always}
    api_calls: {description: "HTTP requests sent, retries included.", type: int, returned: always}
    rate_limit_waited: {description: Seconds spent waiting on rate limits., type: float, returned: always}
rate_limit_waits:
  description: One entry per wait on a rate limit, with the request and the seconds waited.
  returned: when something was to be written
  type: list
  elements: dict
  sample: [{request: PUT /rdns/192.0.2.77, seconds: 60}]
remaining:
  description:
    - Changes not written - left for the next batch (O(max_writes)) or, on failure, not reached.
    - Empty in check mode, where RV(changes) lists every pending change.
  returned: always
  type: list
  elements: dict
"""

import time
from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kibamail.email_platform.plugins.module_utils.robot import (
    ROBOT_ARGUMENT_SPEC,
    RobotError,
    client_from_params,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.robot_rdns import (
    PtrChange,
    RdnsInputError,
    RdnsSession,
    WantedPtrs,
    diff_text,
    failure_message,
    plan_changes,
    reachability_error,
    wanted_from_params,
)


def argument_spec() -> Dict[str, Any]:
    spec: Dict[str, Any] = dict(
        ptr_map=dict(type="dict"),
        subnet=dict(type="str"),
        ptr_template=dict(type="str"),
        skip_network_and_broadcast=dict(type="bool", default=True),
        exclude=dict(type="list", elements="str", default=[]),
        server_ips=dict(type="list", elements="str", default=[]),
        purge=dict(type="bool", default=False),
        purge_scope=dict(type="list", elements="str"),
        max_writes=dict(type="int", default=0),
        progress_file=dict(type="path"),
    )
    spec.update(ROBOT_ARGUMENT_SPEC)
    return spec


class Progress:
    """Progress lines to the system log and, optionally, to a file."""

    def __init__(self, module: AnsibleModule, path: str) -> None:
        self.module = module
        self.path = path

    def __call__(self, text: str) -> None:
        self.module.log("robot_rdns: " + text)
        if self.path:
            with open(self.path, "a") as handle:
                handle.write("{0} {1}\n".format(time.strftime("%Y-%m-%dT%H:%M:%S"), text))


def summary(wanted: WantedPtrs, planned: List[PtrChange], done: List[PtrChange], remaining: List[PtrChange],
            session: RdnsSession) -> Dict[str, Any]:
    counts = {action: sum(1 for c in done if c.action == action) for action in ("create", "update", "delete")}
    planned_wanted = sum(1 for c in planned if c.action != "delete")
    return dict(wanted=len(wanted.desired), unchanged=len(wanted.desired) - planned_wanted, remaining=len(remaining),
                api_calls=session.client.calls, rate_limit_waited=round(session.waited, 1), **counts)


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[("ptr_map", "subnet")],
        required_one_of=[("ptr_map", "subnet")],
        required_together=[("subnet", "ptr_template")],
    )
    params = module.params
    try:
        wanted = wanted_from_params(params)
    except RdnsInputError as exc:
        module.fail_json(msg=str(exc))

    progress = Progress(module, params["progress_file"])
    # The session waits out rate limits itself (no longer than the window needs): the client fails at once.
    client = client_from_params(dict(params, rate_limit_timeout=0), progress=progress)
    session = RdnsSession(client, params["rate_limit_timeout"], progress=progress)
    try:
        current = session.read_current(params["server_ips"])
        planned = plan_changes(wanted.desired, current, wanted.purge_scope, keep=wanted.keep)
        problem = None
        if any(c.action == "create" for c in planned):
            problem = reachability_error(planned, session.read_account(), params["server_ips"])
    except RobotError as exc:
        module.fail_json(msg="Reading the current PTRs and the account's addresses failed: {0}".format(exc),
                         error_code=exc.code)
    if problem:
        module.fail_json(msg=problem, changes=[], remaining=[c.as_dict() for c in planned])

    batch = planned if module.check_mode or params["max_writes"] <= 0 else planned[:params["max_writes"]]
    later = planned[len(batch):]
    result: Dict[str, Any] = dict(changed=bool(batch), changes=[c.as_dict() for c in batch])
    if module._diff:
        result["diff"] = diff_text(batch, current, wanted.desired)
    if module.check_mode or not batch:
        module.exit_json(remaining=[], summary=summary(wanted, planned, batch, [], session), **result)

    progress("{0} PTR writes to make{1}".format(len(batch), ", {0} left for later runs".format(len(later)) if later else ""))
    done: List[PtrChange] = []
    for number, change in enumerate(batch, start=1):
        try:
            how = session.write(change)
        except RobotError as exc:
            remaining = planned[len(done):]
            module.fail_json(
                msg=failure_message(len(done), len(batch), change, exc), changed=bool(done),
                changes=[c.as_dict() for c in done], remaining=[c.as_dict() for c in remaining],
                summary=summary(wanted, planned, done, remaining, session), error_code=exc.code,
                rate_limit_waits=session.waits)
        done.append(change)
        progress("{0}/{1} {2} {3} {4} -> {5}".format(number, len(batch), how, change.ip, change.before, change.after))
    module.exit_json(remaining=[c.as_dict() for c in later], summary=summary(wanted, planned, done, later, session),
                     rate_limit_waits=session.waits, **result)


if __name__ == "__main__":
    main()
