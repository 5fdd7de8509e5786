# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options shared by every module of the action group C(kibamail.email_platform.robot)."""

    DOCUMENTATION = r"""
options:
  robot_user:
    description:
      - User name of the Robot web-service user (Robot, Settings, Web service and app settings).
      - This is not the Robot account login.
      - If not set, the value of the E(ROBOT_WS_USER) environment variable is used.
    type: str
    required: true
  robot_password:
    description:
      - Password of the Robot web-service user.
      - Three failed logins block the client IP for 10 minutes, so a wrong password fails at once and is never retried.
      - If not set, the value of the E(ROBOT_WS_PASSWORD) environment variable is used.
    type: str
    required: true
  robot_url:
    description:
      - Base URL of the Robot webservice. Change it only to point at a local stand-in for tests.
      - If not set, the value of the E(ROBOT_WS_URL) environment variable is used, then the default.
    type: str
    default: https://robot-ws.your-server.de
  robot_request_timeout:
    description:
      - Seconds to wait for one HTTP answer.
    type: float
    default: 30
  rate_limit_timeout:
    description:
      - Total seconds the module may spend waiting out HTTP 403 C(RATE_LIMIT_EXCEEDED) answers.
      - Each wait lasts the C(interval) the API returns, cut to what is left of this budget.
      - When the budget is spent the module fails and says what it completed; running it again resumes.
      - V(0) fails at the first rate limit answer.
    type: int
    default: 600
  validate_certs:
    description:
      - Whether to validate the TLS certificate of O(robot_url).
    type: bool
    default: true
notes:
  - All modules of this collection that talk to Robot belong to the action group C(kibamail.email_platform.robot),
    so the credentials can be set once with C(module_defaults).
"""

    # The action group attribute, the same for every module of the group.
    ACTIONGROUP_ROBOT = r"""
attributes:
  action_group:
    description: Use C(group/kibamail.email_platform.robot) in C(module_defaults) to set the credentials once.
    support: full
    membership:
      - kibamail.email_platform.robot
"""

    # Options of the ordering modules (robot_order, robot_server_order).
    ORDER = r"""
options:
  test:
    description:
      - A dry run. Nothing is bought.
      - By default the dry run checks the order against the product list (reads only) and returns the
        request it would send, so it uses none of Robot's 20 orders a day.
        With O(validate_with_api=true) it also sends the order with C(test=true), which Robot checks in full.
    type: bool
    default: true
  confirm_order:
    description:
      - Must be V(true) together with O(test=false) to place a real, paid order.
    type: bool
    default: false
  validate_with_api:
    description:
      - With O(test=true), send the order to Robot as C(test=true) (Robot validates it and buys nothing).
      - Robot does not say whether such a dry run counts against the order limit; assume it does.
    type: bool
    default: false
  wait:
    description:
      - Wait for a real order (or one found in process) to be delivered.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for delivery. When they run out the module fails, saying the order is still in
        process; the next run finds it and waits again, it does not order again.
    type: int
    default: 1800
  poll_interval:
    description:
      - Seconds between two polls of the order's transaction.
    type: int
    default: 30
notes:
  - Check mode reads what the account has and ordered and sends no order, not even a dry run.
  - An order is tied to what it is for by a marker C([kibamail:NAME]) that the transaction list shows back;
    a re-run finds delivered and pending orders by it and never orders twice.
  - When the answer to an order is lost (the connection fails after the request was sent), the module
    fails with C(changed=true) and RV(outcome=unknown), saying the order may have been placed.
    Run it again, do not order by hand; the next run finds the order by its marker.
"""
