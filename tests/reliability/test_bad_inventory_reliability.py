# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad inventory: every class of invalid input that the plan tests do not already try
(tests/unit/plugins/module_utils/test_plan.py, tests/integration/plan/) stops site.yml in its
first play, before any change, with a message that says what to fix.

Each case is a copy of the lab inventory with one mistake, run through site.yml. As a
guard, the runs are in check mode with every host's connection and API pointed at nothing,
so even a mistake the plan let through could not touch the lab or the stand-ins.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

import pytest
import yaml

from reliability_support import ROOT, run_playbook

HostsEdit = Callable[[Dict[str, Any]], None]


def _hosts(inventory: Dict[str, Any], group: str) -> Dict[str, Any]:
    """The hosts mapping of a group in the lab's hosts.yml, wherever it is nested."""
    stack = [inventory["all"]]
    while stack:
        node = stack.pop()
        for name, child in (node.get("children") or {}).items():
            if name == group:
                return child["hosts"]
            if child:
                stack.append(child)
    raise KeyError(group)


def pin(mta: str, ips: Any) -> HostsEdit:
    def edit(inventory: Dict[str, Any]) -> None:
        group = "mta_transactional" if mta.startswith("us-") else "mta_marketing"
        _hosts(inventory, group)[mta]["mta_sending_ips"] = ips
    return edit


def drop_lb_address(inventory: Dict[str, Any]) -> None:
    del _hosts(inventory, "lb_marketing")["lb-marketing"]["lb_address"]


def both_pinned(inventory: Dict[str, Any]) -> None:
    pin("us-mta1", ["192.0.2.50"])(inventory)
    pin("us-mta2", ["192.0.2.50"])(inventory)


POOLS = {
    "transactional": {"subnet": "192.0.2.0/24", "mta_group": "mta_transactional", "lb_group": "lb_transactional",
                      "lb_label": "smtp"},
    "marketing": {"subnet": "203.0.113.0/24", "profile": "marketing", "mta_group": "mta_marketing",
                  "lb_group": "lb_marketing", "lb_label": "smtp-mkg"},
}


def pools(**changes: Dict[str, Any]) -> Dict[str, Any]:
    result = json.loads(json.dumps(POOLS))
    for name, settings in changes.items():
        result[name].update(settings)
        for key in [k for k, v in settings.items() if v is None]:
            del result[name][key]
    return result


def customer(**changes: Any) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"domain": "kibamail.com", "pool": "transactional",
                             "logins": [{"username": "support@kibamail.com", "senders": ["support@kibamail.com"]}]}
    entry.update(changes)
    return entry


# class -> (extra vars, hosts.yml edit or None, text the message must hold)
CASES: Dict[str, Tuple[Dict[str, Any], Any, str]] = {
    "spf label with a dot": ({"platform_spf_label": "spf.mail"}, None, "must be a single DNS label"),
    "bounce label empty": ({"platform_bounce_label": ""}, None, "must be a single DNS label"),
    "pools not a mapping": ({"platform_pools": ["192.0.2.0/24"]}, None, "platform_pools must map each pool name"),
    "pool without subnet": ({"platform_pools": pools(marketing={"subnet": None})}, None,
                            "platform_pools.marketing has no 'subnet'"),
    "pool subnet IPv6": ({"platform_pools": pools(marketing={"subnet": "2001:db8::/64"})}, None,
                         "only IPv4 sending subnets are supported"),
    "pool subnet too small": ({"platform_pools": pools(marketing={"subnet": "203.0.113.0/31"})}, None,
                              "too small to send from"),
    "pool gateway not an address": ({"platform_pools": pools(transactional={"gateway": "gw.kbmta.net"})}, None,
                                    "is not an IPv4 address"),
    "reserved outside the pool": ({"platform_pools": pools(transactional={"reserved": ["198.51.100.9"]})}, None,
                                  "reserved lists 198.51.100.9 outside the subnet"),
    "unknown pool profile": ({"platform_pools": pools(marketing={"profile": "bulk"})}, None,
                             "profile must be one of"),
    "customers not a list": ({"platform_customers": "kibamail.com"}, None, "platform_customers"),
    "customer without domain": ({"platform_customers": [{"pool": "transactional"}]}, None, "must be a mapping with a 'domain'"),
    "customer domain not a name": ({"platform_customers": [customer(domain="kibamail")]}, None,
                                   "is not a valid fully qualified domain name"),
    "customer inside the platform domain": ({"platform_customers": [customer(domain="mail.kbmta.net")]}, None,
                                            "customers bring their own domain"),
    "login without username": ({"platform_customers": [customer(logins=[{"senders": ["a@kibamail.com"]}])]}, None,
                               "needs a username"),
    "login twice": ({"platform_customers": [customer(logins=[{"username": "a@kibamail.com"},
                                                             {"username": "a@kibamail.com"}])]}, None,
                    "login a@kibamail.com of kibamail.com is listed twice"),
    "mta_address not an address": ({"mta_address": "us-mta1.kbmta.net"}, None, "is not an IPv4 address"),
    # Without lb_address the plan falls back to ansible_host, which in the lab is the container name.
    "load balancer without lb_address": ({}, drop_lb_address, "lb_address of lb-marketing 'lb-marketing' is not an IPv4"),
    "sending range reversed": ({}, pin("us-mta1", ["192.0.2.20-192.0.2.10"]), "ends before it starts"),
    "sending address pinned twice": ({}, both_pinned, "192.0.2.50 is pinned to both us-mta1 and us-mta2"),
    "pool too small for its MTAs": ({"platform_pools": pools(marketing={"subnet": "203.0.113.0/30"})}, None,
                                    "gets no sending address"),
    "load balancer name equals a PTR name": (
        {"platform_pools": pools(marketing={"lb_label": "eu-mta1"})}, None,
        "is both a load balancer name and a PTR name"),
}

# Known defects: the case runs and must fail until the defect is fixed (strict xfail).
KNOWN_DEFECTS: Dict[str, str] = {}

# Nothing may be reachable, whatever a broken plan would let through: no host can be
# connected to (ssh to port 9), and every API points at a closed port.
GUARD = {
    "ansible_connection": "ansible.builtin.ssh",
    "ansible_port": 9,
    "robot_url": "http://127.0.0.1:9",
    "hcloud_endpoint": "http://127.0.0.1:9/v1",
    "dns_server": "127.0.0.1",
    "dns_port": 9,
    "platform_dkim_key_dir": "/nonexistent/kb-reliability",
}


@pytest.mark.parametrize("case", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[name])) if name in KNOWN_DEFECTS
    else name for name in sorted(CASES)])
def test_bad_inventory_class_stops_site_yml_before_any_change(case: str, tmp_path: Path,
                                                              figures: Dict[str, Any]) -> None:
    variables, edit, message = CASES[case]
    inventory = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventories" / "lab", inventory)
    if edit is not None:
        hosts_file = inventory / "hosts.yml"
        data = yaml.safe_load(hosts_file.read_text())
        edit(data)
        hosts_file.write_text(yaml.safe_dump(data, sort_keys=False))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(dict(GUARD, **variables)))
    run = run_playbook(["-i", str(inventory), "site.yml", "--check", "-e", "@%s" % extra,
                        "--vault-password-file", str(ROOT / "inventories" / "lab.vault-password.lab-only")],
                       json_output=False, timeout=300)
    out = run.stdout
    assert run.rc != 0, out[-3000:]
    assert "The inventory cannot be planned" in out, out[-3000:]
    assert message in out, "expected %r in: %s" % (message, out[-3000:])
    assert out.count("PLAY [") == 1, "a play after the plan ran: %s" % out[-3000:]
    assert "Traceback" not in out + run.stderr
    figures.update(refused_with=message)
