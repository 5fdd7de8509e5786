# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The plan through Ansible: the action plugin reads each real inventory,
shows the plan, refuses placeholders and bad input before anything runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def run_playbook(*args, cwd=ROOT):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    return subprocess.run(["ansible-playbook", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("env", ["lab", "staging", "production"])
def test_plan_playbook_shows_every_inventory(env, tmp_path):
    out = tmp_path / "plan.json"
    res = run_playbook("-i", "inventories/%s" % env, "playbooks/plan.yml", "-e", "plan_output_file=%s" % out)
    assert res.returncode == 0, res.stdout + res.stderr
    plan = json.loads(out.read_text())
    assert set(plan["pools"]) == {"transactional", "marketing"}
    assert plan["spf_domain"].startswith("spf.") and plan["bounce_domain"].startswith("kb-bounces.")
    assert "kibamail.com" in plan["customers"]
    assert ("PLACEHOLDERS LEFT" in res.stdout) == (env != "lab")


def test_lab_plan_holds_the_seed_checklist(tmp_path):
    out = tmp_path / "plan.json"
    assert run_playbook("-i", "inventories/lab", "playbooks/plan.yml", "-e", "plan_output_file=%s" % out).returncode == 0
    plan = json.loads(out.read_text())
    names = {(r["name"], r["type"]) for r in plan["zones"]["kbmta.net"]}
    for name, rtype in [("spf.kbmta.net", "TXT"), ("kb-bounces.kbmta.net", "TXT"), ("kb-bounces.kbmta.net", "MX"),
                        ("smtp.kbmta.net", "A"), ("smtp-mkg.kbmta.net", "A"), ("us-mta1.kbmta.net", "A"),
                        ("us-mta2.kbmta.net", "A"), ("eu-mta1.kbmta.net", "A"), ("eu-mta2.kbmta.net", "A")]:
        assert (name, rtype) in names
    assert {m: plan["mtas"][m]["pool"] for m in plan["mtas"]} == {
        "us-mta1": "transactional", "us-mta2": "transactional", "eu-mta1": "marketing", "eu-mta2": "marketing"}
    assert len(plan["ptr_map"]) == 2 * 253


@pytest.mark.parametrize("env", ["staging", "production"])
def test_changing_playbooks_refuse_placeholders(env):
    res = run_playbook("-i", "inventories/%s" % env, "playbooks/_plan.yml")
    assert res.returncode != 0
    assert "still has placeholders, so nothing will be changed" in res.stdout


BAD_INVENTORIES = {
    "overlapping pools": ("platform_pools", {"transactional": {"subnet": "192.0.2.0/24"}, "marketing": {"subnet": "192.0.2.0/25"}},
                          "overlap"),
    "pool without MTA": ("platform_pools", {"transactional": {"subnet": "192.0.2.0/24"}, "marketing": {"subnet": "203.0.113.0/24"},
                                            "bulk": {"subnet": "198.51.100.128/25", "profile": "marketing"}},
                         "pool bulk has no MTA"),
    "invalid domain": ("platform_domain", "kbmta_net", "not a valid fully qualified domain name"),
    "customer twice": ("platform_customers", [{"domain": "kibamail.com"}, {"domain": "kibamail.com"}], "listed twice"),
}


@pytest.mark.parametrize("case", sorted(BAD_INVENTORIES))
def test_bad_inventory_fails_before_any_change(case, tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventories" / "lab", inv)
    var, value, message = BAD_INVENTORIES[case]
    extra = tmp_path / "bad.json"
    extra.write_text(json.dumps({var: value}))
    # site.yml itself: the plan is the first play, so nothing after it may run.
    res = run_playbook("-i", str(inv), "site.yml", "-e", "@%s" % extra)
    assert res.returncode != 0
    assert "The inventory cannot be planned" in res.stdout and message in res.stdout, res.stdout[-3000:]
    assert "PLAY [" in res.stdout and res.stdout.count("PLAY [") == 1, "a play after the plan ran"


FACT_PLAYBOOK = """---
- name: The plan with fact={fact}
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Compute the plan
      kibamail.email_platform.platform_plan:
        fact: {fact}
      register: computed

    - name: Show what the host holds
      ansible.builtin.debug:
        msg: "fact={{{{ platform_plan is defined }}}} returned={{{{ computed.plan.mtas | length }}}}"
"""


@pytest.mark.parametrize("fact, as_fact", [("true", True), ("false", False)])
def test_the_plan_is_a_fact_unless_fact_is_false(fact, as_fact, tmp_path):
    playbook = tmp_path / "fact.yml"
    playbook.write_text(FACT_PLAYBOOK.format(fact=fact))
    res = run_playbook("-i", str(ROOT / "inventories" / "lab"), str(playbook))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "fact=%s returned=4" % as_fact in res.stdout


def test_a_fact_that_is_not_a_boolean_is_refused(tmp_path):
    playbook = tmp_path / "fact.yml"
    playbook.write_text(FACT_PLAYBOOK.format(fact="sometimes"))
    res = run_playbook("-i", str(ROOT / "inventories" / "lab"), str(playbook))
    assert res.returncode != 0
    assert "fact must be true or false, not 'sometimes'" in res.stdout
