# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""deb_packages against a stand-in dpkg-query and apt-get that answer as Debian 12's do: one query on a
converged host, lists refreshed only when something is missing and they are old, only the missing
packages installed, check and diff mode, bad names, a package apt cannot find."""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.kibamail.email_platform.plugins.module_utils import deb_packages as utils
from ansible_collections.kibamail.email_platform.plugins.modules import deb_packages


class FakeDebian:
    """dpkg's database and apt's lists; records every command and its environment."""

    def __init__(self, installed: List[str], available: List[str], lists_age: float) -> None:
        self.status = {name: "ii " for name in installed}
        self.status["removed-pkg"] = "rc "          # removed, its configuration kept: not installed
        self.available = set(available) | set(installed)
        self.lists_mtime = 1_000_000.0 - lists_age
        self.lists_present = True
        self.commands: List[List[str]] = []
        self.environments: List[Dict[str, str]] = []

    def __call__(self, argv, environ_update=None, **_kwargs):
        self.commands.append(list(argv))
        self.environments.append(dict(environ_update or {}))
        if argv[0] == "dpkg-query":
            names = argv[argv.index("--") + 1:]
            out = "".join("%s\t%s\n" % (n, self.status[n]) for n in names if n in self.status)
            unknown = [n for n in names if n not in self.status]
            err = "".join("dpkg-query: no packages found matching %s\n" % n for n in unknown)
            return (1 if unknown else 0), out, err
        if argv[:2] == ["apt-get", "update"]:
            self.lists_mtime = 1_000_000.0
            self.lists_present = True
            return 0, "Reading package lists...\n", ""
        if argv[:2] == ["apt-get", "install"]:
            names = [a for a in argv[2:] if not a.startswith("-") and "::" not in a and "=" not in a]
            missing = [n for n in names if n not in self.available]
            if missing:
                return 100, "", "E: Unable to locate package %s\n" % missing[0]
            for name in names:
                self.status[name] = "ii "
            return 0, "Setting up %s ...\n" % names[-1], ""
        raise AssertionError("unexpected command %s" % argv)

    def mtime(self, path):
        return self.lists_mtime


@pytest.fixture
def debian(monkeypatch):
    fake = FakeDebian(installed=["postfix", "nftables"], available=["postfix-pcre", "mtail"], lists_age=7200)

    def run_command(module, argv, **kwargs):   # a method: the stand-in answers for the module
        return fake(argv, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(utils, "mtime", fake.mtime)
    monkeypatch.setattr(utils, "now", lambda: 1_000_000.0)
    monkeypatch.setattr(utils, "lists_present", lambda: fake.lists_present)
    return fake


def run(capsys, args: Dict[str, Any], check: bool = False, diff: bool = False) -> Dict[str, Any]:
    with patch_module_args(dict(args, _ansible_check_mode=check, _ansible_diff=diff)):
        with pytest.raises(SystemExit):
            deb_packages.main()
    return json.loads(capsys.readouterr().out)


def test_installed_packages_cost_one_query_and_nothing_else(debian, capsys):
    result = run(capsys, {"name": ["postfix", "nftables"]})
    assert result["changed"] is False and result["installed"] == [] and result["cache_updated"] is False
    assert [c[0] for c in debian.commands] == ["dpkg-query"]     # old lists, but nothing to install: no update


def test_installs_only_the_missing_after_refreshing_old_lists_then_is_unchanged(debian, capsys):
    first = run(capsys, {"name": ["postfix", "postfix-pcre", "mtail"], "install_recommends": False})
    assert first["changed"] is True and first["installed"] == ["postfix-pcre", "mtail"]
    assert first["cache_updated"] is True
    install = [c for c in debian.commands if c[:2] == ["apt-get", "install"]]
    assert len(install) == 1 and install[0][-2:] == ["postfix-pcre", "mtail"] and "postfix" not in install[0]
    assert "--no-install-recommends" in install[0] and "Dpkg::Options::=--force-confold" in install[0]
    assert debian.environments[debian.commands.index(install[0])]["DEBIAN_FRONTEND"] == "noninteractive"
    debian.commands.clear()
    second = run(capsys, {"name": ["postfix", "postfix-pcre", "mtail"], "install_recommends": False})
    assert second["changed"] is False and [c[0] for c in debian.commands] == ["dpkg-query"]


def test_fresh_lists_are_used_as_they_are(debian, capsys):
    debian.lists_mtime = 1_000_000.0 - 60
    result = run(capsys, {"name": ["mtail"]})
    assert result["changed"] is True and result["cache_updated"] is False
    assert ["apt-get", "update"] not in [c[:2] for c in debian.commands]
    assert not any("recommends" in a for a in debian.commands[-2])        # unset: apt's configuration decides


def test_lists_never_fetched_are_fetched_whatever_the_stamp_says(debian, capsys):
    debian.lists_mtime = 1_000_000.0 - 60       # an image built a minute ago, its lists removed
    debian.lists_present = False
    result = run(capsys, {"name": ["mtail"]})
    assert result["changed"] is True and result["cache_updated"] is True
    assert [c[:2] for c in debian.commands].index(["apt-get", "update"]) < \
        [c[:2] for c in debian.commands].index(["apt-get", "install"])


def test_a_removed_package_with_its_configuration_left_counts_as_missing(debian, capsys):
    debian.available.add("removed-pkg")
    result = run(capsys, {"name": ["removed-pkg"]})
    assert result["installed"] == ["removed-pkg"] and debian.status["removed-pkg"] == "ii "


def test_check_and_diff_mode_report_and_install_nothing(debian, capsys):
    result = run(capsys, {"name": ["postfix", "mtail"]}, check=True, diff=True)
    assert result["changed"] is True and result["installed"] == ["mtail"]
    assert result["diff"] == {"before": "postfix: installed\nmtail: not installed\n",
                              "after": "postfix: installed\nmtail: installed\n"}
    assert [c[0] for c in debian.commands] == ["dpkg-query"] and debian.status.get("mtail") is None


def test_a_package_apt_cannot_find_fails_naming_it(debian, capsys):
    result = run(capsys, {"name": ["postfix", "no-such-package"]})
    assert result["failed"] is True and result["changed"] is False
    assert "apt-get install no-such-package failed (exit 100)" in result["msg"]
    assert "still not installed: no-such-package" in result["msg"]
    assert "Unable to locate package no-such-package" in result["msg"]


@pytest.mark.parametrize("name", ["Postfix", "postfix=3.7.11-0+deb12u1", "postfix:amd64", "-y", "a"])
def test_bad_names_fail_before_any_command(debian, capsys, name):
    result = run(capsys, {"name": ["nftables", name]})
    assert result["failed"] is True and "not a Debian package name: %s" % name in result["msg"]
    assert debian.commands == []
