#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: platform_verify
short_description: Check the sending platform the way receivers and deliverability tools do
version_added: "0.1.0"
description:
  - Reads DNS (SPF, bounce domain, load balancer and MTA names, PTR and forward-confirmed reverse DNS, HELO names,
    DNS blocklists, customers' DKIM keys, return-path CNAMEs and DMARC) and talks SMTP to the hosts (greeting,
    STARTTLS, certificate issuer, names and days to expiry, AUTH only after TLS, relaying refused), and reads HAProxy statistics.
  - Every check reports C(ok), C(warning) or C(failure) with the reason and, when not OK, the change that fixes it.
  - Expectations come from the plan computed by M(kibamail.email_platform.platform_plan); nothing is recomputed.
  - Read-only. It changes nothing anywhere, so C(changed) is always false. The reports it is asked to write are
    written on the host the module runs on (normally the controller, C(localhost)), in check mode too.
  - Runs SPF through pyspf, the reference SPF evaluator, pointed at the same name server as every other lookup.
  - The relay test never sends DATA, and its recipient is in the reserved C(.invalid) top-level domain.
author:
  - Kibamail platform team (@kibamail)
requirements:
  - dnspython >= 2.6
  - pyspf >= 2.0.14
  - cryptography (for DKIM key sizes and certificates)
attributes:
  check_mode:
    support: full
    description: The module only reads, so check mode runs every check as usual.
  diff_mode:
    support: none
    description: Read-only; there is never anything to diff.
options:
  plan:
    description:
      - The platform plan (the return value C(plan) of M(kibamail.email_platform.platform_plan), shaped as docs/model.md says).
      - Read are C(spf_domain), C(bounce_domain), C(mtas), C(load_balancers), C(pools), C(customers) and C(zones).
    type: dict
    required: true
  dkim_public_keys:
    description:
      - The public key the MTAs sign each customer domain with, by domain.
      - A PEM public key, a DKIM TXT value (C(v=DKIM1; k=rsa; p=...)), an opendkim-genkey zone snippet or bare base64.
      - A domain without a key gets a warning instead of the comparison.
    type: dict
    default: {}
  nameserver:
    description:
      - Address of the DNS server to ask. Default is the system resolver (/etc/resolv.conf).
      - A server that does not answer at all fails the task at once, before any check runs.
    type: str
  nameserver_port:
    description: Port of O(nameserver).
    type: int
    default: 53
  delegation:
    description:
      - Check the delegation of the plan's domain (group C(platform)). The parent zone's NS for it (the registrar's
        setting) must equal the zone's own NS records, and every one of its name servers must answer for it with
        authority. The parent's and the zone's servers are asked directly, without recursion.
      - When the resolver knows no parent zone (a lab), the delegation is a warning saying it was not checked.
    type: bool
    default: true
  delegation_port:
    description:
      - Port of the direct questions to name servers that O(delegation) asks. Default is O(nameserver_port).
    type: int
  dns_timeout:
    description: Seconds to wait for one DNS answer (it is asked twice).
    type: float
    default: 3.0
  dnsbl_zones:
    description:
      - DNS blocklist zones to look every sending IP up in, for example C(zen.spamhaus.org).
      - A zone that does not answer its RFC 5782 test entry C(127.0.0.2) is skipped with a warning.
    type: list
    elements: str
    default: []
  dnsbl_domain_zones:
    description:
      - Domain blocklist zones (RFC 5782 name lists, for example C(dbl.spamhaus.org)) to look the platform's domain
        and its bounce domains up in (the platform's bounce domain and each customer's return-path domain),
        as C(kb-bounces.kbmta.net.dbl.spamhaus.org).
      - A zone that does not answer its RFC 5782 test entry C(test) is skipped with a warning.
    type: list
    elements: str
    default: []
  checks:
    description:
      - Which groups of checks to run.
      - V(blocklist) runs only the blocklist lookups (O(dnsbl_zones), O(dnsbl_domain_zones)), which V(ip) and
        V(platform) include, for a frequent scheduled run that exports them (O(report_metrics)).
    type: list
    elements: str
    choices: [platform, ip, customer, host, blocklist]
    default: [platform, ip, customer, host]
  smtp_targets:
    description: SMTP listeners to talk to (group C(host)).
    type: list
    elements: dict
    default: []
    suboptions:
      address:
        description: Address or name to connect to.
        type: str
        required: true
      port:
        description: TCP port.
        type: int
        default: 25
      name:
        description: How the report names this listener. Default C(address:port).
        type: str
      tls:
        description: C(starttls) (ports 25, 587), C(implicit) (port 465) or C(none) (no TLS expected).
        type: str
        choices: [starttls, implicit, none]
        default: starttls
      server_names:
        description: Names the certificate must cover, for example C(smtp.kbmta.net).
        type: list
        elements: str
        default: []
      auth:
        description: Whether AUTH must be offered after TLS (V(required)), must not be (V(forbidden)), or either (V(any)).
        type: str
        choices: [required, forbidden, any]
        default: any
      relay_test:
        description: Try to relay to C(relay-test@relay-test.invalid) without logging in; it must be refused.
        type: bool
        default: true
      timeout:
        description: Seconds for the connection and each reply.
        type: float
        default: 10.0
  probe_plan_hosts:
    description:
      - Also probe the listeners the plan implies, in addition to O(smtp_targets).
      - Each load balancer's address on O(lb_ports) (certificate for its name; AUTH required on 465 and 587;
        implicit TLS on 465) and each MTA's main address on O(mta_ports) (certificate for its name).
    type: bool
    default: false
  lb_ports:
    description: Ports of each load balancer that O(probe_plan_hosts) probes.
    type: list
    elements: int
    default: [25, 465, 587]
  mta_ports:
    description: Ports of each MTA's main address that O(probe_plan_hosts) probes.
    type: list
    elements: int
    default: [25]
  smtp_helo:
    description: The name the probes greet with.
    type: str
    default: verify.kbmta.invalid
  tls_ca_path:
    description: A CA bundle to trust for the hosts' certificates. Default is the system's.
    type: path
  tls_verify_chain:
    description: When true an untrusted certificate is a failure; when false, a warning.
    type: bool
    default: true
  tls_min_days:
    description:
      - A certificate with fewer days left than this is a failure (renew it); with fewer than twice as many, a warning.
      - Every C(tls_certificate) result names the certificate's issuer, its names and the days left.
      - Keep it below the ACME renewal margin (C(platform_acme_renew_days), 30 by default) so that a renewal
        which stopped working is reported before the certificate expires. V(0) fails only expired certificates.
    type: int
    default: 14
  lb_stats:
    description: HAProxy statistics in CSV (a stats URL ending in C(;csv)); every backend server must be up.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: How the report names this load balancer.
        type: str
        required: true
      url:
        description: The URL of the CSV statistics.
        type: str
        required: true
  workers:
    description: How many checks run at the same time.
    type: int
    default: 32
  report_json:
    description: Write the JSON report here.
    type: path
  report_html:
    description:
      - Write the HTML status page here. It is one self-contained file (no script, nothing loaded from elsewhere).
      - It leads with the verdict and the counts per category and status, then the failures and the warnings,
        each fix shown once with the addresses or names it applies to, then the passing checks collapsed per category.
    type: path
  report_text:
    description: Write the terminal table here.
    type: path
  report_metrics:
    description:
      - Write the blocklist answers and the result counts here, in the Prometheus text format, for node exporter's
        textfile collector (a C(.prom) file). Written atomically (a new file renamed over the old one).
      - C(kb_blocklist_listed{subject,kind,zone}) is 1 for a listed subject and 0 for a clear one;
        C(kb_blocklist_zone_usable{zone,kind}), C(kb_blocklist_lookup_failures{zone}),
        C(kb_blocklist_last_check_timestamp_seconds) and C(kb_verify_results{category,check,status}) come with it.
    type: path
  show_ok:
    description: List every OK result in the table, not one line per check.
    type: bool
    default: false
  fail_on_failure:
    description: Fail the task when any check fails (the reports are written first).
    type: bool
    default: true
notes:
  - Run it on the controller (C(localhost)); the checks look at the platform from outside, as a receiver does.
seealso:
  - module: kibamail.email_platform.platform_plan
"""

EXAMPLES = r"""
- name: Verify the platform against the lab's DNS server
  kibamail.email_platform.platform_verify:
    plan: "{{ platform_plan }}"
    nameserver: 198.51.100.53
    dkim_public_keys:
      kibamail.com: "{{ lookup('ansible.builtin.file', 'keys/kibamail.com.kb1.pub') }}"
    dnsbl_zones: [bl.lab.test]
    smtp_targets:
      - address: smtp.kbmta.net
        port: 587
        server_names: [smtp.kbmta.net]
        auth: required
    report_json: /var/tmp/verify.json
    report_html: /var/tmp/verify.html

- name: The blocklists alone, as figures for node exporter's textfile collector
  kibamail.email_platform.platform_verify:
    plan: "{{ platform_plan }}"
    checks: [blocklist]
    dnsbl_zones: [zen.spamhaus.org]
    dnsbl_domain_zones: [dbl.spamhaus.org]
    report_metrics: /var/tmp/kb_verify.prom
    fail_on_failure: false

- name: Only the customer domains, never failing the play
  kibamail.email_platform.platform_verify:
    plan: "{{ platform_plan }}"
    checks: [customer]
    fail_on_failure: false
  register: verify
"""

RETURN = r"""
results:
  description: Every check, sorted by category, check and subject (addresses in numeric order, names in natural order).
  returned: always
  type: list
  elements: dict
  contains:
    category:
      description: platform, ip, customer or host.
      type: str
    check:
      description: The check's name, for example C(spf_covers_sending_ips), C(ptr), C(dkim), C(open_relay).
      type: str
    subject:
      description: What was checked (a name, an IP, a customer domain, a listener).
      type: str
    status:
      description: ok, warning or failure.
      type: str
    reason:
      description: What was seen.
      type: str
    fix:
      description: The change that fixes it (empty when OK).
      type: str
  sample:
    - category: ip
      check: ptr
      subject: 192.0.2.3
      status: failure
      reason: 192.0.2.3 (MTA us-mta1) has no PTR record
      fix: set the reverse DNS (PTR) of 192.0.2.3 to us-mta1.kbmta.net
summary:
  description: How many checks ended in each status.
  returned: always
  type: dict
  sample: {ok: 120, warning: 2, failure: 1, total: 123}
failures:
  description: The results whose status is failure.
  returned: always
  type: list
  elements: dict
table:
  description: The report as a text table (problems in full, OK results one line per check).
  returned: always
  type: str
"""

import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kibamail.email_platform.plugins.module_utils import verify_dns, verify_spf
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_blocklist import exposition
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_checks import DnsOptions, preflight, run_dns_checks
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_delegation import DnsPythonQuerier
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_report import (
    order_results,
    render_html,
    render_table,
    summary_line,
    to_json,
    write_file,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import FAILURE, summarize
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_smtp import (
    SmtpSettings,
    SmtpTarget,
    plan_smtp_targets,
    run_host_checks,
)

CHECK_GROUPS = ["platform", "ip", "customer", "host", "blocklist"]
DNS_GROUPS = {"platform", "ip", "customer", "blocklist"}
PLAN_KEYS = ("spf_domain", "bounce_domain", "mtas", "customers")


def argument_spec():
    return dict(
        plan=dict(type="dict", required=True),
        dkim_public_keys=dict(type="dict", default={}),
        nameserver=dict(type="str"),
        nameserver_port=dict(type="int", default=53),
        dns_timeout=dict(type="float", default=3.0),
        dnsbl_zones=dict(type="list", elements="str", default=[]),
        dnsbl_domain_zones=dict(type="list", elements="str", default=[]),
        checks=dict(type="list", elements="str", choices=CHECK_GROUPS, default=CHECK_GROUPS[:4]),
        smtp_targets=dict(type="list", elements="dict", default=[], options=dict(
            address=dict(type="str", required=True),
            port=dict(type="int", default=25),
            name=dict(type="str"),
            tls=dict(type="str", choices=["starttls", "implicit", "none"], default="starttls"),
            server_names=dict(type="list", elements="str", default=[]),
            auth=dict(type="str", choices=["required", "forbidden", "any"], default="any"),
            relay_test=dict(type="bool", default=True),
            timeout=dict(type="float", default=10.0),
        )),
        probe_plan_hosts=dict(type="bool", default=False),
        lb_ports=dict(type="list", elements="int", default=[25, 465, 587]),
        mta_ports=dict(type="list", elements="int", default=[25]),
        smtp_helo=dict(type="str", default="verify.kbmta.invalid"),
        delegation=dict(type="bool", default=True),
        delegation_port=dict(type="int"),
        tls_ca_path=dict(type="path"),
        tls_verify_chain=dict(type="bool", default=True),
        tls_min_days=dict(type="int", default=14),
        lb_stats=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            url=dict(type="str", required=True),
        )),
        workers=dict(type="int", default=32),
        report_json=dict(type="path"),
        report_html=dict(type="path"),
        report_text=dict(type="path"),
        report_metrics=dict(type="path"),
        show_ok=dict(type="bool", default=False),
        fail_on_failure=dict(type="bool", default=True),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if not verify_dns.HAS_DNSPYTHON:
        module.fail_json(msg=missing_required_lib("dnspython"), exception=str(verify_dns.DNSPYTHON_IMPORT_ERROR))
    if not verify_spf.HAS_PYSPF:
        module.fail_json(msg=missing_required_lib("pyspf"), exception=str(verify_spf.PYSPF_IMPORT_ERROR))
    plan = params["plan"]
    missing = [key for key in PLAN_KEYS if key not in plan]
    if missing:
        module.fail_json(msg="plan lacks %s: pass the plan computed by kibamail.email_platform.platform_plan (its return value plan)" % (
            ", ".join(missing)))
    if params["workers"] < 1:
        module.fail_json(msg="workers must be at least 1, got %d" % params["workers"])
    if params["tls_min_days"] < 0:
        module.fail_json(msg="tls_min_days must be 0 or more, got %d" % params["tls_min_days"])

    try:
        resolver = verify_dns.DnsPythonResolver(params["nameserver"], params["nameserver_port"], params["dns_timeout"])
        options = DnsOptions(dkim_public_keys={k.lower().rstrip("."): v for k, v in params["dkim_public_keys"].items()},
                             dnsbl_zones=params["dnsbl_zones"], dnsbl_domain_zones=params["dnsbl_domain_zones"],
                             categories=params["checks"], workers=params["workers"],
                             querier=DnsPythonQuerier(params["delegation_port"] or params["nameserver_port"], params["dns_timeout"])
                             if params["delegation"] else None)
        results = []
        if set(params["checks"]) & DNS_GROUPS:
            problem = preflight(resolver, plan)
            if problem:
                module.fail_json(msg="no DNS check can run: %s" % problem)
            results = run_dns_checks(plan, resolver, options)
        if "host" in params["checks"]:
            targets = [SmtpTarget(**t) for t in params["smtp_targets"]]
            if params["probe_plan_hosts"]:
                targets += plan_smtp_targets(plan, params["lb_ports"], params["mta_ports"])
            settings = SmtpSettings(helo=params["smtp_helo"], ca_path=params["tls_ca_path"], verify_chain=params["tls_verify_chain"],
                                    min_days=params["tls_min_days"])
            results += run_host_checks(targets, settings, [(s["name"], s["url"]) for s in params["lb_stats"]], params["workers"])
    except Exception as exc:  # an unexpected bug must still say where it happened
        module.fail_json(msg="verification stopped: %s" % exc, exception=traceback.format_exc())

    results = order_results(results)
    meta = {"platform": plan.get("domain", ""), "nameserver": resolver.description, "checks": ", ".join(params["checks"])}
    table = render_table(results, show_ok=params["show_ok"])
    try:
        if params["report_json"]:
            write_file(params["report_json"], to_json(results, meta))
        if params["report_html"]:
            write_file(params["report_html"], render_html(results, meta))
        if params["report_text"]:
            write_file(params["report_text"], table + "\n")
        if params["report_metrics"]:
            write_file(params["report_metrics"], exposition(options.listings, options.blocklist_zones, results, time.time()))
    except OSError as exc:
        module.fail_json(msg="cannot write a report: %s; choose a writable path" % exc)

    dicts = [r.to_dict() for r in results]
    failures = [d for d in dicts if d["status"] == FAILURE]
    output = dict(changed=False, results=dicts, summary=summarize(results), failures=failures, table=table)
    if failures and params["fail_on_failure"]:
        names = sorted({"%s %s" % (f["check"], f["subject"]) for f in failures})
        shown = "; ".join(names[:10]) + ("; and %d more" % (len(names) - 10) if len(names) > 10 else "")
        module.fail_json(msg="%s: %s (see the table or the reports for reasons and fixes)" % (summary_line(results), shown), **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
