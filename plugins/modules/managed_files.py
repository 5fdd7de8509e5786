#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: managed_files
short_description: Converge a set of directories and files in one module run
version_added: 0.1.0
author:
  - Kibamail platform team (@kibamail)
description:
  - Creates the O(directories) and writes the O(files) of a role in one module run, and sets owner, group
    and mode where they differ. On a converged host the whole set costs one module run, where
    M(ansible.builtin.template) and M(ansible.builtin.copy) cost two per file (a stat, then the file module).
  - The content comes from the controller, for example C(lookup('ansible.builtin.template', 'x.j2')) or
    C(lookup('ansible.builtin.file', 'x.py')); only files whose content or attributes differ are touched.
  - Every input is checked before anything is written (absolute paths, a file named once, owners and groups
    that exist on the host, octal modes, a parent directory that exists or is in O(directories)); bad input
    fails the task and nothing is changed.
  - A file is written atomically, a temporary file in the same directory with its owner, group and mode set,
    checked with O(files[].validate) when given, then renamed over the old one. A file that fails its check
    is not installed; the task fails, names the file and the check's output, and lists in RV(changed_paths)
    what it had already changed.
  - RV(changed_tags) lists the O(files[].tag) of every changed file, so each handler can run only for the
    files it needs (a reload for one file, a restart for another). The task notifies a topic that all of them
    listen to, and each handler's C(when) looks for its tag (see the examples).
attributes:
  check_mode:
    support: full
    description: Reports every directory and file that would change; nothing is written and nothing validated.
  diff_mode:
    support: full
    description: One diff per changed path; the content of O(files[].secret) files is never shown.
options:
  directories:
    description:
      - Directories to create (with their parents) and whose owner, group and mode to set, in this order,
        before any file is written.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the directory.
        type: path
        required: true
      owner:
        description: User name or number; unset keeps the owner (root for a new directory).
        type: str
      group:
        description: Group name or number; unset keeps the group (root for a new directory).
        type: str
      mode:
        description: Octal mode as a string, such as V("0755"); unset keeps the mode (0755 for a new directory).
        type: str
  files:
    description:
      - Files to write, in this order.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Absolute path of the file.
        type: path
        required: true
      content:
        description: The whole content of the file (text, written as UTF-8).
        type: str
        required: true
      owner:
        description: User name or number; unset keeps the owner (root for a new file).
        type: str
      group:
        description: Group name or number; unset keeps the group (root for a new file).
        type: str
      mode:
        description: Octal mode as a string, such as V("0644"); unset keeps the mode (0644 for a new file).
        type: str
      validate:
        description:
          - Command that checks the new file before it replaces the old one; C(%s) is the new file's path.
          - Run without a shell. The file is installed only when the command exits 0.
        type: str
      secret:
        description:
          - The content is a secret (a private key, a password map) - it never appears in the task's
            result, diff or log. Use C(no_log) on the task as well.
        type: bool
        default: false
      tag:
        description:
          - A name for what to do when this file changes (for example V(reload_postfix)); every tag of a
            changed file is in RV(changed_tags).
        type: str
notes:
  - Files are compared by content, so a converged host is read, never written. A file not listed is
    left alone (nothing is removed).
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Write OpenDKIM's configuration
  kibamail.email_platform.managed_files:
    directories:
      - {path: /etc/opendkim/keys, owner: opendkim, group: opendkim, mode: "0700"}
    files:
      - dest: /etc/opendkim/key.table
        content: "{{ lookup('ansible.builtin.template', 'key.table.j2') }}"
        group: opendkim
        mode: "0640"
        tag: reload
      - dest: /etc/opendkim.conf
        content: "{{ lookup('ansible.builtin.template', 'opendkim.conf.j2') }}"
        mode: "0644"
        validate: /usr/sbin/opendkim -n -x %s
        tag: restart
  register: opendkim_files
  notify: OpenDKIM files changed

# In the role's handlers: each listens to the topic and runs for its tag only.
# - name: Reload opendkim
#   ansible.builtin.systemd_service:
#     name: opendkim
#     state: reloaded
#   listen: OpenDKIM files changed
#   when: "'reload' in opendkim_files.changed_tags"
#
# - name: Restart opendkim
#   ansible.builtin.systemd_service:
#     name: opendkim
#     state: restarted
#   listen: OpenDKIM files changed
#   when: "'restart' in opendkim_files.changed_tags"
"""

RETURN = r"""
changed_paths:
  description: Directories and files that changed (or would change in check mode), in the order given.
  returned: always
  type: list
  elements: str
  sample: [/etc/opendkim/key.table]
changed_tags:
  description: The tags of the changed files, each once, in the order first met.
  returned: always
  type: list
  elements: str
  sample: [reload]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kibamail.email_platform.plugins.module_utils.managed_files import (
    ManagedFilesError,
    converge,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            directories=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True),
                owner=dict(type="str"),
                group=dict(type="str"),
                mode=dict(type="str"),
            )),
            files=dict(type="list", elements="dict", default=[], options=dict(
                dest=dict(type="path", required=True),
                content=dict(type="str", required=True),
                owner=dict(type="str"),
                group=dict(type="str"),
                mode=dict(type="str"),
                validate=dict(type="str"),
                secret=dict(type="bool", default=False),
                tag=dict(type="str"),
            )),
        ),
        supports_check_mode=True,
    )
    for entry in module.params["files"]:
        if entry["secret"]:
            # Masked wherever it would appear in the result (the invocation's arguments too).
            module.no_log_values.add(entry["content"])
    try:
        outcome = converge(module.params["directories"], module.params["files"], module.check_mode,
                           runner=module.run_command)
    except ManagedFilesError as exc:
        done = exc.outcome
        module.fail_json(msg=str(exc), changed=bool(done.changed_paths), changed_paths=done.changed_paths,
                         changed_tags=done.changed_tags)
    result = dict(changed=bool(outcome.changed_paths), changed_paths=outcome.changed_paths,
                  changed_tags=outcome.changed_tags)
    if module._diff:
        result["diff"] = outcome.diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
