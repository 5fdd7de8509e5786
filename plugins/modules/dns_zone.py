#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dns_zone
short_description: Reconcile the record sets of one DNS zone
version_added: 0.1.0
description:
  - Reads the zone once, compares it with O(records), and writes only the difference.
  - Record sets are compared after normalisation, so order, case, trailing dots and the way a long
    TXT value is cut into 255-byte strings never cause a change.
  - Record sets not listed in O(records) are deleted only as O(prune) allows; SOA and DNSSEC records are never
    deleted and the types in O(protected_types) (NS by default) are never deleted.
  - A CNAME that would share its name with other data is refused before anything is written.
  - Check mode computes and reports the same changes without writing. Diff mode shows each changed
    record set before and after, as zone-file lines.
author:
  - Kibamail platform team (@kibamail)
extends_documentation_fragment:
  - kibamail.email_platform.dns
attributes:
  check_mode:
    support: full
    description: Reports the changes it would make and makes none.
  diff_mode:
    support: full
    description: One diff per changed record set, in zone-file lines.
  action_group:
    support: full
    membership:
      - kibamail.email_platform.dns
    description: Use C(group/kibamail.email_platform.dns) in O(ignore:module_defaults) to set the provider settings once.
options:
  zone:
    description:
      - Name of the zone, with or without the trailing dot.
    type: str
    required: true
  records:
    description:
      - The record sets the zone must hold.
      - Each entry is one record set, that is every value of one name and type. A name and type may appear only once.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Owner name, absolute (V(spf.kbmta.net)), relative to the zone (V(spf)) or V(@) for the apex.
          - Compared without regard to case or a trailing dot.
        type: str
        required: true
      type:
        description:
          - Record type, for example V(A), V(MX), V(TXT), V(CNAME).
        type: str
        required: true
      ttl:
        description:
          - Time to live in seconds. Defaults to O(ttl).
        type: int
      values:
        description:
          - The values in zone-file form; domain-name targets are absolute, with or without the trailing dot.
          - TXT values are the plain text however long; the module cuts them into strings of at most 255 bytes
            on write and joins them before comparing. A value given in quoted zone-file form (V("a" "b")) is joined first.
        type: list
        elements: str
        required: true
  ttl:
    description:
      - TTL of record sets that do not give one.
    type: int
    default: 3600
  prune:
    description:
      - Which record sets that are in the zone but not in O(records) are deleted.
      - V(none) deletes nothing.
      - V(managed) deletes those listed in O(managed_names) or in the ownership record (see O(ownership_record)),
        that is record sets an earlier run of this module wrote and that are no longer wanted.
      - V(all) deletes every record set not in O(records), except SOA and the types in O(protected_types).
    type: str
    default: managed
    choices: [none, managed, all]
  managed_names:
    description:
      - Owner names whose record sets this module owns. With O(prune=managed), record sets at these names that are
        not in O(records) are deleted.
    type: list
    elements: str
    default: []
  ownership_record:
    description:
      - Name (relative to the zone) of a TXT record set in which the module lists every record set it writes,
        one V(<name> <TYPE>) value each. With O(prune=managed) it is how the module knows what it owns.
      - Set to an empty string to keep no such record; then only O(managed_names) marks ownership.
    type: str
    default: _kibamail-owned
  protected_types:
    description:
      - Record types never deleted by pruning. SOA and the DNSSEC types a signer maintains (DNSKEY, CDS, CDNSKEY,
        RRSIG, NSEC, NSEC3, NSEC3PARAM) are always protected.
      - Remove V(NS) from the list only to manage the zone's delegation records yourself.
    type: list
    elements: str
    default: [SOA, NS]
requirements:
  - dnspython >= 2.0 (O(provider=rfc2136))
  - hcloud >= 2.11 (O(provider=hetzner))
notes:
  - The module runs where the task runs; run it on the controller (C(connection=local)).
  - BIND refuses an MX or SRV record whose target inside the zone has no address record; publish the targets'
    A or AAAA records in the same task.
seealso:
  - module: community.general.nsupdate
  - module: hetzner.hcloud.zone_rrset
"""

EXAMPLES = r"""
- name: Publish the platform's records over RFC 2136
  kibamail.email_platform.dns_zone:
    zone: kbmta.net
    provider: rfc2136
    server: 127.0.0.1
    port: 5353
    tsig_key_name: kbmta-update
    tsig_key_secret: "{{ vault_dns_tsig_secret }}"
    records:
      - {name: us-mta1.kbmta.net, type: A, ttl: 3600, values: [192.0.2.2]}
      - {name: kb-bounces.kbmta.net, type: MX, values: ["10 us-mta1.kbmta.net."]}
      - {name: spf.kbmta.net, type: TXT, values: ["v=spf1 ip4:192.0.2.0/24 -all"]}

- name: The same zone on Hetzner Cloud DNS, deleting record sets the module wrote earlier and no longer wants
  kibamail.email_platform.dns_zone:
    zone: kbmta.net
    provider: hetzner
    hcloud_token: "{{ vault_hcloud_token }}"
    prune: managed
    records: "{{ platform_plan.zones['kbmta.net'] }}"

- name: Set the provider once for several zones
  module_defaults:
    group/kibamail.email_platform.dns:
      provider: rfc2136
      server: 192.0.2.53
      tsig_key_name: kbmta-update
      tsig_key_secret: "{{ vault_dns_tsig_secret }}"
  block:
    - name: Publish a customer zone
      kibamail.email_platform.dns_zone:
        zone: kibamail.com
        records: "{{ platform_plan.zones['kibamail.com'] }}"
"""

RETURN = r"""
zone:
  description: The zone, normalised.
  returned: success
  type: str
  sample: kbmta.net
changes:
  description: One entry per record set that was (or in check mode would be) created, updated or deleted.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Owner name.
      type: str
      sample: spf.kbmta.net
    type:
      description: Record type.
      type: str
      sample: TXT
    action:
      description: V(create), V(update) or V(delete).
      type: str
      sample: update
    before:
      description: The record set before (V(null) for a create), with C(name), C(type), C(ttl) and C(values).
      type: dict
    after:
      description: The record set after (V(null) for a delete).
      type: dict
  sample:
    - name: spf.kbmta.net
      type: TXT
      action: update
      before: {name: spf.kbmta.net, type: TXT, ttl: 3600, values: ["v=spf1 -all"]}
      after: {name: spf.kbmta.net, type: TXT, ttl: 3600, values: ["v=spf1 ip4:192.0.2.0/24 -all"]}
summary:
  description: How many record sets are created, updated, deleted, unchanged, and kept although not listed.
  returned: success
  type: dict
  sample: {create: 1, update: 0, delete: 0, unchanged: 7, kept: 3}
kept:
  description: Record sets in the zone that are not in O(records) and that O(prune) did not allow to delete.
  returned: success
  type: list
  elements: dict
  sample: [{name: kbmta.net, type: NS}, {name: kbmta.net, type: SOA}]
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_records import (
    ProviderError,
    RecordError,
    ZoneRequest,
    reconcile,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_provider_rfc2136 import (
    DNSPYTHON_IMPORT_ERROR,
    HAS_DNSPYTHON,
    TSIG_ALGORITHMS,
    Rfc2136Provider,
    Rfc2136Settings,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_provider_hetzner import (
    HAS_HCLOUD,
    HCLOUD_IMPORT_ERROR,
    HetznerProvider,
    HetznerSettings,
)


def argument_spec() -> dict:
    return dict(
        zone=dict(type="str", required=True),
        records=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            type=dict(type="str", required=True),
            ttl=dict(type="int"),
            values=dict(type="list", elements="str", required=True),
        )),
        ttl=dict(type="int", default=3600),
        prune=dict(type="str", default="managed", choices=["none", "managed", "all"]),
        managed_names=dict(type="list", elements="str", default=[]),
        ownership_record=dict(type="str", default="_kibamail-owned"),
        protected_types=dict(type="list", elements="str", default=["SOA", "NS"]),
        provider=dict(type="str", required=True, choices=["rfc2136", "hetzner"]),
        server=dict(type="str"),
        port=dict(type="int", default=53),
        tsig_key_name=dict(type="str", no_log=False),
        tsig_key_secret=dict(type="str", no_log=True),
        tsig_algorithm=dict(type="str", default="hmac-sha256", choices=list(TSIG_ALGORITHMS)),
        transport=dict(type="str", default="tcp", choices=["tcp", "udp"]),
        read_method=dict(type="str", default="axfr", choices=["axfr", "query"]),
        timeout=dict(type="float", default=10),
        hcloud_token=dict(type="str", no_log=True, fallback=(env_fallback, ["HCLOUD_TOKEN"])),
        hcloud_endpoint=dict(type="str", default="https://api.hetzner.cloud/v1",
                             fallback=(env_fallback, ["HCLOUD_ENDPOINT"])),
    )


def make_provider(module: AnsibleModule):
    params = module.params
    if params["provider"] == "rfc2136":
        if not HAS_DNSPYTHON:
            module.fail_json(msg=missing_required_lib("dnspython"), exception=DNSPYTHON_IMPORT_ERROR)
        return Rfc2136Provider(Rfc2136Settings(
            server=params["server"], port=params["port"], tsig_key_name=params["tsig_key_name"],
            tsig_key_secret=params["tsig_key_secret"], tsig_algorithm=params["tsig_algorithm"],
            transport=params["transport"], timeout=params["timeout"], read_method=params["read_method"]))
    if not HAS_HCLOUD:
        module.fail_json(msg=missing_required_lib("hcloud"), exception=HCLOUD_IMPORT_ERROR)
    return HetznerProvider(HetznerSettings(token=params["hcloud_token"], endpoint=params["hcloud_endpoint"]))


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("provider", "rfc2136", ["server"]), ("provider", "hetzner", ["hcloud_token"])],
        required_together=[("tsig_key_name", "tsig_key_secret")],
        supports_check_mode=True,
    )
    params = module.params
    request = ZoneRequest(
        zone=params["zone"], records=params["records"], prune=params["prune"],
        managed_names=params["managed_names"], protected_types=params["protected_types"],
        ownership_record=params["ownership_record"], default_ttl=params["ttl"])
    try:
        provider = make_provider(module)
        result = reconcile(provider, request, module.check_mode)
    except (RecordError, ProviderError) as error:
        module.fail_json(msg="zone %s: %s" % (params["zone"], error))
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
