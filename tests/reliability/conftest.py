# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reliability and security suite: shared fixtures, the ``lab`` marker and the figures.

Two kinds of tests live here:

- tests without a marker need nothing but this checkout (stand-ins and
  webhooks on 127.0.0.1, the bounce processor imported from its role);
- tests marked ``lab`` need the running lab (``scripts/lab.sh up``). They are
  skipped unless ``KB_LAB_TESTS=1``; with ``KB_LAB_TESTS=1`` and no lab
  they fail, so a CI stage that meant to test the lab cannot pass without it.

Every test may record figures (messages sent, faults injected, inputs tried)
with the ``figures`` fixture; they are printed at the end of the run and
written as JSON to ``$KB_RELIABILITY_FIGURES`` (default
``.cache/reliability/figures.json``), from where docs/reliability.md quotes them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from reliability_support import FIGURES, ROOT, Lab, container_running  # noqa: E402

LAB_ENV = "KB_LAB_TESTS"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "lab: needs the running lab (scripts/lab.sh up); runs only with KB_LAB_TESTS=1, and then "
                   "fails when the lab is down")
    config.addinivalue_line(
        "markers", "site_run: runs site.yml against the lab (minutes); the platform scenario runs it first, "
                   "as its idempotence run, and the other lab tests after it")


def lab_tests_enabled() -> bool:
    return os.environ.get(LAB_ENV) == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    if lab_tests_enabled():
        return
    skip = pytest.mark.skip(reason="needs the running lab: set %s=1 (scripts/lab.sh up first)" % LAB_ENV)
    for item in items:
        if item.get_closest_marker("lab") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for test in sorted(FIGURES):
        values = ", ".join("%s=%s" % (k, FIGURES[test][k]) for k in sorted(FIGURES[test]))
        terminalreporter.write_line("%s: %s" % (test, values))
    target = Path(os.environ.get("KB_RELIABILITY_FIGURES", str(ROOT / ".cache" / "reliability" / "figures.json")))
    target.parent.mkdir(parents=True, exist_ok=True)
    previous: Dict[str, Any] = {}
    if target.exists():
        try:
            previous = json.loads(target.read_text())
        except ValueError:
            previous = {}
    previous.update(FIGURES)
    target.write_text(json.dumps(previous, indent=1, sort_keys=True) + "\n")
    terminalreporter.write_line("figures written to %s" % target)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Dict[str, Any]:
    """A dict the test fills with its figures (printed and saved at the end of the run)."""
    record: Dict[str, Any] = {}
    FIGURES[request.node.name] = record
    return record


@pytest.fixture(scope="session")
def lab() -> Lab:
    """The running lab. Fails (does not skip) when it is not up: the test asked for it."""
    directory = Path(os.environ.get("KB_LAB_DIR", str(ROOT / ".lab")))
    description = directory / "lab.json"
    if not description.exists():
        pytest.fail("the lab is not up: %s is missing; run scripts/lab.sh up first" % description)
    data = json.loads(description.read_text())
    down = [name for name, host in data["hosts"].items() if not container_running(host.get("container") or name)]
    if down:
        pytest.fail("the lab is not fully up: containers %s are not running; run scripts/lab.sh up" % ", ".join(down))
    return Lab(data, directory)
