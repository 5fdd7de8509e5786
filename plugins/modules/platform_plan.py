# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: platform_plan
short_description: Compute the email platform's plan from the inventory
version_added: 0.1.0
description:
  - Turns the inventory's description of the platform (pools, MTAs, load balancers, customers) into every
    derived fact the other playbooks apply, computed once, on the controller, without any I/O.
  - The plan holds the sending IPs of each MTA (a pool's usable addresses split among its MTAs by
    rendezvous hashing, or explicit lists), the PTR and HELO name of each sending IP, the record sets of
    the platform zone and of the customers' zones, the load balancers' backends, and the customers'
    DKIM, return-path and DMARC names. See C(docs/model.md) for both shapes.
  - Bad input fails before anything is changed, with a message that says what to change.
  - Secrets (SASL passwords, keys, API credentials) never enter the plan.
  - This is an action plugin; it runs on the controller whatever host the task targets. It returns the plan
    (C(plan)) and, unless O(fact=false), the fact C(platform_plan) for every host of the play (with
    C(run_once)). Playbooks with many tasks per host should set O(fact=false) and give the plan to the hosts
    with M(ansible.builtin.set_fact) and C(run_once), as C(playbooks/_plan.yml) does, because Ansible copies
    each host's facts in full for every task of that host (a fifth of a no-change C(site.yml) run's work with
    the plan as a fact), while a variable set with M(ansible.builtin.set_fact) is not copied.
options:
  spec:
    description:
      - The platform description to plan, in the shape C(build_plan) takes (domain, pools, customers,
        groups, hosts). When omitted, it is read from the inventory variables C(platform_domain),
        C(platform_spf_label), C(platform_bounce_label), C(platform_ttl), C(platform_ptr_template),
        C(platform_pools), C(platform_customers), C(platform_lab), the inventory groups and the hosts'
        C(mta_address), C(mta_fqdn), C(mta_sending_ips), C(lb_address) and C(ansible_host).
    type: dict
  fact:
    description:
      - Also return the plan as the fact C(platform_plan), as earlier versions did.
      - Set V(false) in playbooks with many tasks per host and give the plan with M(ansible.builtin.set_fact)
        instead (see the description).
    type: bool
    default: true
  allow_placeholders:
    description:
      - Return the plan even when the inventory still holds placeholder values (documentation or benchmark
        addresses outside a lab, or the text C(CHANGEME)). Only for showing a plan; playbooks that change
        anything leave this off so they refuse to run.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: The plan is computed the same way in check mode; nothing is ever changed.
  diff_mode:
    support: none
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  platform:
    platforms: all
extends_documentation_fragment:
  - action_common_attributes
  - action_common_attributes.flow
author:
  - Kibamail platform engineering (@kibamail)
"""

EXAMPLES = r"""
- name: Compute the plan once, for every host of the play as the fact platform_plan
  kibamail.email_platform.platform_plan:
  run_once: true

- name: Compute the plan once (not as a fact)
  kibamail.email_platform.platform_plan:
    fact: false
  run_once: true
  register: platform_plan_computed

- name: Give every host of the play the same plan
  ansible.builtin.set_fact:
    platform_plan: "{{ platform_plan_computed.plan }}"
  run_once: true

- name: Show the plan of an inventory that still has placeholders
  kibamail.email_platform.platform_plan:
    allow_placeholders: true
  run_once: true
"""

RETURN = r"""
ansible_facts:
  description: The fact C(platform_plan), the same plan as RV(plan).
  returned: unless O(fact=false)
  type: dict
  contains:
    platform_plan:
      description: The plan.
      type: dict
      returned: unless O(fact=false)
plan:
  description: The plan (domain, spf_domain, bounce_domain, ttl, pools, mtas, load_balancers, ptr_map, customers,
    bounce_domains, zones, placeholders, warnings); docs/model.md describes it.
  returned: success
  type: dict
summary:
  description: The plan in lines a person reads at a glance.
  returned: success
  type: list
  elements: str
"""
