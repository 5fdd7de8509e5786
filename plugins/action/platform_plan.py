# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Compute the platform plan on the controller from the inventory (no I/O)."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.kibamail.email_platform.plugins.module_utils.plan import PlanError, build_plan, summarize

# Inventory variable -> key of the plan spec.
PLATFORM_VARS = {
    "platform_domain": "domain",
    "platform_spf_label": "spf_label",
    "platform_bounce_label": "bounce_label",
    "platform_ttl": "ttl",
    "platform_ptr_template": "ptr_template",
    "platform_pools": "pools",
    "platform_lab": "lab",
}
HOST_VARS = ("mta_address", "mta_fqdn", "mta_sending_ips", "lb_address", "ansible_host")
CUSTOMER_KEYS = ("domain", "pool", "dkim_selector", "return_path_label", "zone_managed", "dmarc_policy", "dmarc_rua")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("spec", "allow_placeholders", "fact"))
    _requires_connection = False

    def _template(self, value):
        return self._templar.template(value)

    def _customers(self, raw):
        """Customers without their secrets: passwords never enter the plan."""
        customers = []
        for entry in self._template(raw) if isinstance(raw, str) else raw or []:
            if not isinstance(entry, dict):
                customers.append(entry)
                continue
            customer = {k: self._template(entry[k]) for k in CUSTOMER_KEYS if k in entry}
            logins = []
            for login in self._template(entry.get("logins")) if isinstance(entry.get("logins"), str) else entry.get("logins") or []:
                if isinstance(login, dict):
                    logins.append({k: self._template(login[k]) for k in ("username", "pool", "senders") if k in login})
            customer["logins"] = logins
            customers.append(customer)
        return customers

    def _spec_from_inventory(self, task_vars):
        spec = {}
        for var, key in PLATFORM_VARS.items():
            if var in task_vars:
                spec[key] = self._template(task_vars[var])
        spec["customers"] = self._customers(task_vars.get("platform_customers"))
        groups = task_vars.get("groups", {})
        spec["groups"] = {name: list(members) for name, members in groups.items()}
        hostvars = task_vars.get("hostvars", {})
        wanted = set(groups.get("mta", []))
        pools = spec.get("pools")
        for pool in pools.values() if isinstance(pools, dict) else []:
            if isinstance(pool, dict):
                for key, default in (("mta_group", None), ("lb_group", None)):
                    wanted.update(groups.get(pool.get(key, default) or "", []))
        for name in ("mta_transactional", "mta_marketing", "lb_transactional", "lb_marketing"):
            wanted.update(groups.get(name, []))
        spec["hosts"] = {}
        for host in sorted(wanted):
            hv = hostvars.get(host, {})
            spec["hosts"][host] = {k: self._template(hv[k]) for k in HOST_VARS if k in hv}
        return spec

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        try:
            as_fact = boolean(self._task.args.get("fact", True), strict=True)
        except TypeError:
            raise AnsibleActionFail("fact must be true or false, not %r" % (self._task.args.get("fact"),))
        spec = self._task.args.get("spec")
        if spec is None:
            spec = self._spec_from_inventory(task_vars)
        try:
            plan = build_plan(spec)
        except PlanError as exc:
            raise AnsibleActionFail("The inventory cannot be planned: %s" % exc)
        allow = self._task.args.get("allow_placeholders", False)
        if plan["placeholders"] and not allow:
            raise AnsibleActionFail(
                "The inventory still has placeholders, so nothing will be changed: %s. Replace them with the "
                "real values (or, for a lab on documentation addresses, set platform_lab: true)."
                % "; ".join(plan["placeholders"])
            )
        for warning in plan["warnings"]:
            self._display.warning(warning)
        result.update(changed=False, plan=plan, summary=summarize(plan))
        if as_fact:
            result["ansible_facts"] = {"platform_plan": plan}
        return result
