#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: deb_packages
short_description: Install Debian packages, with one dpkg query when they already are
version_added: 0.2.0
author:
  - Kibamail platform team (@kibamail)
description:
  - Asks C(dpkg-query) once which of O(name) are installed. When all are, that is the whole run, and nothing
    else is read or fetched (no package cache loaded, no package list refreshed). M(ansible.builtin.apt)
    loads the whole package cache for the same answer, and with C(cache_valid_time) refreshes the lists
    whenever they are older than that, even when nothing is to be installed.
  - When some are missing, refreshes the package lists first if they are older than O(cache_valid_time) (or
    were never fetched), then installs only the missing ones with C(apt-get install), unattended
    (C(DEBIAN_FRONTEND=noninteractive); changed configuration files are kept, C(--force-confold)), waiting up
    to two minutes for another apt run's lock. Then it checks that every one is installed.
  - Names are checked before anything runs; a failed C(apt-get) names the packages and shows the end of its
    output.
  - Only installs. Removing packages, pinning versions and upgrades stay with M(ansible.builtin.apt).
attributes:
  check_mode:
    support: full
    description: Reports the packages that would be installed; nothing is fetched or installed.
  diff_mode:
    support: full
    description: Each package, installed or not, before and after.
options:
  name:
    description: Debian package names (no version pins, no architecture qualifiers).
    type: list
    elements: str
    required: true
  install_recommends:
    description:
      - V(false) installs without the packages' recommendations (C(--no-install-recommends)), V(true) with them.
      - Unset, apt's own configuration decides (Debian's default installs them).
    type: bool
  cache_valid_time:
    description: Age in seconds up to which the package lists are used as they are when something must be
      installed; older lists are refreshed first (C(apt-get update)).
    type: int
    default: 3600
notes:
  - Needs C(dpkg-query) and C(apt-get) (Debian and its derivatives).
seealso:
  - module: ansible.builtin.apt
"""

EXAMPLES = r"""
- name: Install Postfix and its maps
  kibamail.email_platform.deb_packages:
    name: [postfix, postfix-pcre]
    install_recommends: false
  register: postfix_install
"""

RETURN = r"""
installed:
  description: The packages that were not installed before this run (and are now, or would be in check mode).
  returned: always
  type: list
  elements: str
  sample: [postfix-pcre]
cache_updated:
  description: Whether the package lists were refreshed in this run.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kibamail.email_platform.plugins.module_utils.deb_packages import (
    DebPackagesError,
    converge,
    diff,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="list", elements="str", required=True),
            install_recommends=dict(type="bool"),
            cache_valid_time=dict(type="int", default=3600),
        ),
        supports_check_mode=True,
    )
    names = module.params["name"]
    if not names:
        module.fail_json(msg="name: give at least one package")
    try:
        outcome = converge(names, module.params["install_recommends"], module.params["cache_valid_time"],
                           module.check_mode, module.run_command)
    except DebPackagesError as exc:
        module.fail_json(msg=str(exc), changed=exc.changed)
    result = dict(changed=bool(outcome.missing), installed=outcome.missing, cache_updated=outcome.cache_updated)
    if module._diff:
        result["diff"] = diff(names, outcome.missing)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
