#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: certificates_due
short_description: Say which of a set of ACME certificates on disk are due for issuance
version_added: 0.2.0
author:
  - Kibamail platform team (@kibamail)
description:
  - Reads, for each entry of O(certificates), C(<dir>/<name>.pem) (the full chain, the host's certificate
    first), C(<dir>/<name>.key) and C(<dir>/<name>.ca) (the directory URL the certificate came from), all in
    one module run, and says whether the certificate is due and why. Nothing is written and no CA is contacted.
  - A certificate is due when it is missing, its key is missing or does not match it, it carries other DNS
    names than the entry's O(certificates[].names), it came from another directory than O(directory), or it
    is no longer valid O(renew_days) days from now.
  - The kibamail.email_platform.acme_certificates role runs it before it issues anything.
  - A file that is there but is not a PEM certificate or an unencrypted PEM key fails the task, naming it.
attributes:
  check_mode:
    support: full
    description: It only reads; check mode runs it as usual.
  diff_mode:
    support: none
    description: Nothing is changed.
options:
  dir:
    description: Directory of the certificates, keys and CA records.
    type: path
    required: true
  directory:
    description: Directory URL of the ACME CA the certificates must come from.
    type: str
    required: true
  renew_days:
    description: A certificate that is not valid any more this many days from now is due.
    type: int
    default: 30
  certificates:
    description: The certificates.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: File name of the certificate and its key, without suffix.
        type: str
        required: true
      names:
        description: DNS names the certificate must carry (compared without case and trailing dot).
        type: list
        elements: str
        required: true
requirements:
  - cryptography (on the host that runs it; the controller for the role)
"""

EXAMPLES = r"""
- name: Which certificates are due
  kibamail.email_platform.certificates_due:
    dir: /srv/acme
    directory: https://acme-v02.api.letsencrypt.org/directory
    certificates:
      - {name: us-mta1, names: [us-mta1.kbmta.net]}
  register: due
"""

RETURN = r"""
state:
  description: Per certificate name, its wanted names, days left (null without a certificate), issuer common
    name, whether it is due and why (empty when not due).
  returned: always
  type: dict
  sample: {us-mta1: {names: [us-mta1.kbmta.net], days_left: 89, issuer: Pebble Intermediate CA, due: false, reason: ""}}
due:
  description: The certificates that are due, in the order given, with their names, reason and days left.
  returned: always
  type: list
  elements: dict
  sample: [{name: us-mta2, names: [us-mta2.kbmta.net], reason: no certificate yet, days_left: null}]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kibamail.email_platform.plugins.module_utils.certificates import (
    HAS_CRYPTOGRAPHY,
    CertificateError,
    inspect_all,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            directory=dict(type="str", required=True),
            renew_days=dict(type="int", default=30),
            certificates=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                names=dict(type="list", elements="str", required=True),
            )),
        ),
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"))
    params = module.params
    try:
        state = inspect_all(params["dir"], params["certificates"], params["directory"], params["renew_days"])
    except CertificateError as exc:
        module.fail_json(msg=str(exc))
    due = [{"name": c["name"], "names": state[c["name"]]["names"], "reason": state[c["name"]]["reason"],
            "days_left": state[c["name"]]["days_left"]} for c in params["certificates"] if state[c["name"]]["due"]]
    module.exit_json(changed=False, state=state, due=due)


if __name__ == "__main__":
    main()
