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
