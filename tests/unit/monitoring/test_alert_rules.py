# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role's alert rules, rendered with its defaults: promtool accepts them, and
promtool's unit tests (roles/monitoring/tests/promtool) fire and clear every alert."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring_support import PROMTOOL_TESTS, render, role_defaults

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is missing: Debian's prometheus package provides it (scripts/setup-host.sh installs it)")
TEST_FILES = sorted(PROMTOOL_TESTS.glob("*.test.yml"))


@pytest.fixture(name="rules_dir")
def fixture_rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "kibamail-rules.yml").write_text(render("kibamail-rules.yml.j2", role_defaults()), encoding="utf-8")
    for test in TEST_FILES:
        shutil.copy(test, tmp_path / test.name)
    return tmp_path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL] + list(args), cwd=str(cwd), capture_output=True, text=True, timeout=300, check=False)


def test_rules_pass_promtool_check(rules_dir):
    proc = promtool("check", "rules", "kibamail-rules.yml", cwd=rules_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("test_file", [t.name for t in TEST_FILES])
def test_promtool_unit_tests(rules_dir, test_file):
    proc = promtool("test", "rules", test_file, cwd=rules_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_tested(rules_dir):
    """Each alert of the rules appears in a promtool test, firing (exp_alerts given) and not firing."""
    rules = yaml.safe_load((rules_dir / "kibamail-rules.yml").read_text(encoding="utf-8"))
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    firing, quiet = set(), set()
    for test_file in TEST_FILES:
        for case in yaml.safe_load(test_file.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
            # A case where one series fires and another does not is a not-firing check too.
            if any(check.get("exp_alerts") for check in case.get("alert_rule_test", [])):
                quiet.update(c["alertname"] for c in case["alert_rule_test"])
    assert alerts - firing == set(), "alerts never seen firing in a promtool test"
    assert alerts - quiet == set(), "alerts never seen quiet in a promtool test"


def test_thresholds_follow_the_role_inputs(tmp_path):
    """A threshold set on the role is the one in the rules (complaint rate, backend-down time)."""
    overrides = {"monitoring_alert_complaint_rate_critical": 0.005, "monitoring_alert_backend_down_for": "15s"}
    text = render("kibamail-rules.yml.j2", role_defaults(overrides))
    rules = yaml.safe_load(text)
    by_name = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            by_name.setdefault(rule.get("alert"), []).append(rule)
    critical = [r for r in by_name["KbComplaintRateHigh"] if r["labels"]["severity"] == "critical"]
    assert "> 0.005" in critical[0]["expr"]
    assert by_name["KbBackendDown"][0]["for"] == "15s"
    (tmp_path / "r.yml").write_text(text, encoding="utf-8")
    proc = promtool("check", "rules", "r.yml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
