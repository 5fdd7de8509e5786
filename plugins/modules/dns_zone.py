#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dns_zone
short_description: Reconcile the record sets of one DNS zone, or of many zones in one task
version_added: 0.1.0
description:
  - Reads the zone once, compares it with O(records), and writes only the difference.
  - With O(zones) instead of O(zone), reconciles many zones in one task, each exactly as one zone is, up to
    O(concurrency) zones at a time. The result then lists every zone's own C(changed), changes and diff;
    the task is changed when any zone changed. Bad input in any zone fails the task before anything is
    written. A zone that fails while talking to the provider fails the task without stopping the other
    zones, and every zone's result says what was written.
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
    description: One diff per changed record set, in zone-file lines; with O(zones), also per zone in RV(zones).
  action_group:
    support: full
    membership:
      - kibamail.email_platform.dns
    description: Use C(group/kibamail.email_platform.dns) in O(ignore:module_defaults) to set the provider settings once.
options:
  zone:
    description:
      - Name of the zone, with or without the trailing dot.
      - Exactly one of O(zone) and O(zones) is required.
    type: str
  records: &records
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
  zones:
    description:
      - Many zones to reconcile in this one task, instead of O(zone) and O(records).
      - Each entry names a zone and its record sets; O(ttl), O(prune), O(managed_names), O(ownership_record) and
        O(protected_types) given on the task apply to every entry that does not give its own.
      - A zone may appear only once.
    type: list
    elements: dict
    version_added: 0.2.0
    suboptions:
      zone:
        description:
          - Name of the zone, with or without the trailing dot.
        type: str
        required: true
      records: *records
      ttl:
        description:
          - TTL of this zone's record sets that do not give one. Defaults to O(ttl).
        type: int
      prune:
        description:
          - Prune policy of this zone. Defaults to O(prune).
        type: str
        choices: [none, managed, all]
      managed_names:
        description:
          - Owner names this module owns in this zone. Defaults to O(managed_names).
        type: list
        elements: str
      ownership_record:
        description:
          - Ownership record of this zone. Defaults to O(ownership_record).
        type: str
      protected_types:
        description:
          - Record types never deleted in this zone. Defaults to O(protected_types).
        type: list
        elements: str
  concurrency:
    description:
      - With O(zones), how many zones are read and written at the same time.
      - Defaults to V(8) for O(provider=rfc2136), under BIND's default of 10 concurrent zone transfers
        (C(transfers-out)), and to V(4) for O(provider=hetzner). The Hetzner Cloud API counts requests per hour
        (3600 per project, one more each second); more requests in flight spend that budget no faster than the
        module needs it, since it sends the fewest requests the API allows. When the API answers
        C(rate_limit_exceeded), the hcloud client retries with exponential backoff.
    type: int
    version_added: 0.2.0
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

- name: Publish a thousand customer zones in one task, eight zones at a time
  kibamail.email_platform.dns_zone:
    provider: rfc2136
    server: 192.0.2.53
    tsig_key_name: kbmta-update
    tsig_key_secret: "{{ vault_dns_tsig_secret }}"
    concurrency: 8
    zones:
      - zone: customer0001.example
        records:
          - {name: _dmarc, type: TXT, values: ["v=DMARC1; p=none"]}
      - zone: customer0002.example
        prune: none
        records:
          - {name: kb-bounces, type: CNAME, values: [kb-bounces.kbmta.net.]}
  register: published

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
  returned: success, with O(zone)
  type: str
  sample: kbmta.net
changes:
  description: One entry per record set that was (or in check mode would be) created, updated or deleted.
  returned: success, with O(zone)
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
  description:
    - How many record sets are created, updated, deleted, unchanged, and kept although not listed.
    - With O(zones), the sums over all zones, and how many zones there are, changed and failed.
  returned: always
  type: dict
  sample: {create: 1, update: 0, delete: 0, unchanged: 7, kept: 3}
kept:
  description: Record sets in the zone that are not in O(records) and that O(prune) did not allow to delete.
  returned: success, with O(zone)
  type: list
  elements: dict
  sample: [{name: kbmta.net, type: NS}, {name: kbmta.net, type: SOA}]
zones:
  description:
    - With O(zones), one result per zone in the order given, also when some zones failed.
    - Each has C(zone), C(changed), C(failed), and, unless the zone failed before it was read, C(changes), C(summary)
      and C(kept) as for one zone, and C(diff) in diff mode.
    - A failed zone has C(msg), which names the zone and says whether anything was written to it. C(changed) is
      V(false) when nothing was; when writing had started it is V(true), and some of the C(changes) may be applied.
  returned: with O(zones), after the input was accepted
  type: list
  elements: dict
  version_added: 0.2.0
  sample:
    - zone: customer0001.example
      changed: true
      failed: false
      changes:
        - {name: _dmarc.customer0001.example, type: TXT, action: create, before: null,
           after: {name: _dmarc.customer0001.example, type: TXT, ttl: 3600, values: ["v=DMARC1; p=none"]}}
      summary: {create: 2, update: 0, delete: 0, unchanged: 0, kept: 2}
      kept: [{name: customer0001.example, type: NS}, {name: customer0001.example, type: SOA}]
    - zone: customer0002.example
      changed: false
      failed: true
      msg: "zone customer0002.example: zone transfer of customer0002.example from 192.0.2.53 port 53 was refused
        (NOTAUTH): ...; nothing was written to it"
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_records import (
    ProviderError,
    RecordError,
    ZoneRequest,
    reconcile,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_zones import (
    failure_message,
    reconcile_many,
    summarize,
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

# Options that shape one zone's reconciliation; with zones, the task's values are each entry's defaults.
ZONE_OPTIONS = ("ttl", "prune", "managed_names", "ownership_record", "protected_types")
DEFAULT_CONCURRENCY = {"rfc2136": 8, "hetzner": 4}


def records_spec() -> dict:
    return dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True),
        type=dict(type="str", required=True),
        ttl=dict(type="int"),
        values=dict(type="list", elements="str", required=True),
    ))


def argument_spec() -> dict:
    return dict(
        zone=dict(type="str"),
        records=records_spec(),
        zones=dict(type="list", elements="dict", options=dict(
            zone=dict(type="str", required=True),
            records=records_spec(),
            ttl=dict(type="int"),
            prune=dict(type="str", choices=["none", "managed", "all"]),
            managed_names=dict(type="list", elements="str"),
            ownership_record=dict(type="str"),
            protected_types=dict(type="list", elements="str"),
        )),
        concurrency=dict(type="int"),
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


def zone_request(entry: dict, defaults: dict) -> ZoneRequest:
    """A zone's request from its entry, the task's values filling what the entry leaves out."""
    value = {key: defaults[key] if entry.get(key) is None else entry[key] for key in ZONE_OPTIONS}
    return ZoneRequest(
        zone=entry["zone"], records=entry["records"], prune=value["prune"], managed_names=value["managed_names"],
        protected_types=value["protected_types"], ownership_record=value["ownership_record"],
        default_ttl=value["ttl"])


def run_one(module: AnsibleModule) -> None:
    params = module.params
    try:
        provider = make_provider(module)
        result = reconcile(provider, zone_request(params, params), module.check_mode)
    except (RecordError, ProviderError) as error:
        module.fail_json(msg="zone %s: %s" % (params["zone"], error))
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


def run_many(module: AnsibleModule) -> None:
    params = module.params
    concurrency = params["concurrency"]
    if concurrency is None:
        concurrency = DEFAULT_CONCURRENCY[params["provider"]]
    if concurrency < 1:
        module.fail_json(msg="concurrency must be at least 1, not %d" % concurrency)
    make_provider(module)  # fails here, once, if the provider's library is missing
    requests = [zone_request(entry, params) for entry in params["zones"]]
    try:
        results = reconcile_many(lambda: make_provider(module), requests, module.check_mode, concurrency)
    except (RecordError, ProviderError) as error:
        module.fail_json(msg=str(error))
    diff = []
    for result in results:
        zone_diff = result.pop("diff", [])
        if module._diff:
            result["diff"] = zone_diff
            diff.extend(zone_diff)
    output = dict(changed=any(result["changed"] for result in results), zones=results, summary=summarize(results))
    if module._diff:
        output["diff"] = diff
    message = failure_message(results)
    if message:
        module.fail_json(msg=message, **output)
    module.exit_json(**output)


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("provider", "rfc2136", ["server"]), ("provider", "hetzner", ["hcloud_token"])],
        required_together=[("tsig_key_name", "tsig_key_secret")],
        required_one_of=[("zone", "zones")],
        mutually_exclusive=[("zone", "zones"), ("records", "zones")],
        supports_check_mode=True,
    )
    if module.params["zones"] is None:
        run_one(module)
    else:
        run_many(module)


if __name__ == "__main__":
    main()
