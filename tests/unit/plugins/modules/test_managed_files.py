# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""managed_files: converge, re-converge unchanged, check mode, diff, secrets, validation and bad input."""

from __future__ import annotations

import json
import os
import stat
from typing import Any, Dict

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.kibamail.email_platform.plugins.modules import managed_files

SECRET = "-----BEGIN PRIVATE KEY-----\nMIIBVwIBADANBgkqhkiG9w0BAQEFAASCAT0wggE5AgEAAkEAq7\n-----END PRIVATE KEY-----\n"


def run(capsys, args: Dict[str, Any], check: bool = False, diff: bool = False) -> Dict[str, Any]:
    full = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(full):
        with pytest.raises(SystemExit):
            managed_files.main()
    return json.loads(capsys.readouterr().out)


def mode_of(path) -> str:
    return "%04o" % stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def tree(tmp_path):
    return {
        "directories": [{"path": str(tmp_path / "etc" / "app"), "mode": "0750"},
                        {"path": str(tmp_path / "etc" / "app" / "keys"), "mode": "0700"}],
        "files": [
            {"dest": str(tmp_path / "etc" / "app" / "app.conf"), "content": "listen = 25\n", "mode": "0644",
             "tag": "restart"},
            {"dest": str(tmp_path / "etc" / "app" / "table"), "content": "a b\n", "mode": "0640", "tag": "reload"},
            {"dest": str(tmp_path / "etc" / "app" / "keys" / "k.key"), "content": SECRET, "mode": "0600",
             "secret": True, "tag": "reload"},
        ],
    }


def test_first_run_writes_everything_and_the_second_changes_nothing(tmp_path, capsys, tree):
    first = run(capsys, tree)
    assert first["changed"] is True
    assert first["changed_paths"] == [d["path"] for d in tree["directories"]] + [f["dest"] for f in tree["files"]]
    assert first["changed_tags"] == ["restart", "reload"]
    assert (tmp_path / "etc" / "app" / "app.conf").read_text() == "listen = 25\n"
    assert [mode_of(tmp_path / "etc" / "app"), mode_of(tmp_path / "etc" / "app" / "keys" / "k.key")] == [
        "0750", "0600"]
    second = run(capsys, tree)
    assert second["changed"] is False and second["changed_paths"] == [] and second["changed_tags"] == []


def test_only_what_differs_is_changed_and_tagged(tmp_path, capsys, tree):
    run(capsys, tree)
    table = tmp_path / "etc" / "app" / "table"
    inode = table.stat().st_ino
    os.chmod(tmp_path / "etc" / "app" / "app.conf", 0o600)
    tree["files"][1]["content"] = "a c\n"
    result = run(capsys, tree, diff=True)
    assert result["changed_paths"] == [tree["files"][0]["dest"], tree["files"][1]["dest"]]
    assert result["changed_tags"] == ["restart", "reload"]
    assert table.read_text() == "a c\n" and table.stat().st_ino != inode  # replaced by a rename
    assert mode_of(tmp_path / "etc" / "app" / "app.conf") == "0644"
    mode_diff, content_diff = result["diff"]
    assert (mode_diff["before"], mode_diff["after"]) == ("listen = 25\nmode: 0600\n", "listen = 25\nmode: 0644\n")
    assert (content_diff["before"], content_diff["after"]) == ("a b\n", "a c\n")


def test_check_mode_reports_and_writes_nothing(tmp_path, capsys, tree):
    result = run(capsys, tree, check=True, diff=True)
    assert result["changed"] is True and len(result["changed_paths"]) == 5
    assert not (tmp_path / "etc").exists()
    run(capsys, tree)
    tree["files"][0]["content"] = "listen = 587\n"
    again = run(capsys, tree, check=True)
    assert again["changed_paths"] == [tree["files"][0]["dest"]]
    assert (tmp_path / "etc" / "app" / "app.conf").read_text() == "listen = 25\n"


def test_a_secret_never_appears_in_the_result(capsys, tree):
    result = run(capsys, tree, diff=True)
    text = json.dumps(result)
    assert "MIIBVwIBADANBgkqhkiG9w0BAQEFAASCAT0wggE5AgEAAkEAq7" not in text
    key_diff = result["diff"][-1]
    assert key_diff["after"] == "(secret content)\n"
    tree["files"][2]["content"] = SECRET.replace("q7", "r8")
    changed = run(capsys, tree, diff=True)
    assert changed["diff"][-1]["after"] == "(secret content, changed)\n"
    assert "MIIBVwIBADANBgkqhkiG9w0BAQEFAASCAT0wggE5AgEAAkEAr8" not in json.dumps(changed)


def test_a_file_that_fails_validation_is_not_installed_and_what_changed_is_reported(tmp_path, capsys, tree):
    run(capsys, tree)
    tree["files"][1]["content"] = "broken\n"
    tree["files"][0]["content"] = "listen = 2525\n"
    tree["files"][1]["validate"] = "/bin/sh -c 'grep -q \" \" \"$1\" || { echo no space in $1 >&2; exit 3; }' x %s"
    result = run(capsys, tree)
    assert result["failed"] is True
    assert "file %s" % tree["files"][1]["dest"] in result["msg"] and "exited 3" in result["msg"]
    assert "no space" in result["msg"] and "left as it was" in result["msg"]
    assert result["changed"] is True and result["changed_paths"] == [tree["files"][0]["dest"]]
    assert (tmp_path / "etc" / "app" / "table").read_text() == "a b\n"
    assert sorted(os.listdir(tmp_path / "etc" / "app")) == ["app.conf", "keys", "table"]  # no temporary left


@pytest.mark.parametrize("change, message", [
    (lambda t: t["files"].append(dict(t["files"][0])), "named twice"),
    (lambda t: t["files"][0].update(dest="etc/app.conf"), "must be absolute"),
    (lambda t: t["files"][0].update(owner="no-such-user-kb"), "no user 'no-such-user-kb'"),
    (lambda t: t["directories"][0].update(group="no-such-group-kb"), "no group 'no-such-group-kb'"),
    (lambda t: t["files"][1].update(mode="rw-r--r--"), "not an octal mode"),
    (lambda t: t["files"][1].update(validate="/usr/bin/true"), "must contain %s"),
    (lambda t: t["directories"].pop(), "does not exist: add it to directories"),
])
def test_bad_input_fails_before_anything_is_written(tmp_path, capsys, tree, change, message):
    change(tree)
    result = run(capsys, tree)
    assert result["failed"] is True and message in result["msg"]
    assert result["changed"] is False and not (tmp_path / "etc").exists()


def test_owner_and_group_by_number_are_applied_and_compared(tmp_path, capsys, tree):
    uid, gid = os.getuid(), os.getgid()
    for entry in tree["files"]:
        entry.update(owner=str(uid), group=str(gid))
    run(capsys, tree)
    assert run(capsys, tree)["changed"] is False
    if uid == 0:  # only root can give a file away
        tree["files"][0]["owner"] = "65534"
        result = run(capsys, tree, diff=True)
        assert result["changed_paths"] == [tree["files"][0]["dest"]]
        assert os.stat(tree["files"][0]["dest"]).st_uid == 65534
        assert result["diff"][0]["after"].endswith("owner: 65534\n")


def test_check_mode_on_a_fresh_host_reports_what_a_package_would_bring(tmp_path, capsys, tree):
    # Check mode before the package that creates the user and the directory is installed: reported, not refused.
    tree["directories"].pop()
    tree["files"][2]["owner"] = "no-such-user-kb"
    result = run(capsys, tree, check=True, diff=True)
    assert "failed" not in result and result["changed_paths"][-1] == tree["files"][2]["dest"]
    assert "owner no-such-user-kb (not on the host yet)" in result["diff"][-1]["after"]
    refused = run(capsys, tree)
    assert refused["failed"] is True and "does not exist: add it to directories" in refused["msg"]


def test_something_of_another_kind_in_the_way_fails_and_is_left_alone(tmp_path, capsys, tree):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "app").write_text("a file where the directory goes\n")
    result = run(capsys, tree)
    assert result["failed"] is True and "is not a directory is in the way" in result["msg"]
    assert (tmp_path / "etc" / "app").read_text() == "a file where the directory goes\n"
