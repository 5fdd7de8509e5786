# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The tarball of `ansible-galaxy collection build` holds what users run and
nothing secret or lab-only. galaxy.yml build_ignore keeps things out; these
tests look at the result, so whatever slips past build_ignore fails here."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# Top-level entries users run or read. Anything else (tests, molecule, bench,
# images, scripts, Makefile, keys, ...) is a mistake in build_ignore.
SHIPPED = {
    "MANIFEST.json", "FILES.json", "README.md", "COPYING", "CHANGELOG.rst", "site.yml",
    "requirements.txt", "requirements.yml", "bindep.txt",
    "changelogs", "docs", "inventories", "meta", "playbooks", "plugins", "roles",
}
REQUIRED = {
    "README.md", "COPYING", "site.yml", "requirements.txt", "bindep.txt", "meta/runtime.yml",
    "meta/execution-environment.yml", "changelogs/changelog.yaml", "playbooks/site.yml", "playbooks/plan.yml",
}
# Only the example inventories, with their placeholders: the lab's holds a vault.
INVENTORIES = {"production", "staging"}
LAB_ONLY_ROLES = {"lab_dns", "lab_receiver", "lab_resolver"}

PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
VAULT = re.compile(rb"^\s*\$ANSIBLE_VAULT;\d", re.MULTILINE)
# Names of vault password files (ansible's own examples, ours) and of files
# the repository marks as lab- or test-only.
SECRET_NAMES = ("*vault-pass*", "*vault_pass*", "*vaultpass*", "*.lab-only", "*.test-only", "*.key", "*.pem")


def secrets_in(files: dict[str, bytes]) -> list[str]:
    """Every reason the tarball must not ship, one line per file."""
    found = []
    for path, content in sorted(files.items()):
        parts = path.split("/")
        name = parts[-1].lower()
        if PRIVATE_KEY.search(content):
            found.append("%s: holds a private key (-----BEGIN ... PRIVATE KEY-----)" % path)
        if VAULT.search(content):
            found.append("%s: holds ansible-vault data ($ANSIBLE_VAULT)" % path)
        if any(fnmatch.fnmatch(name, pattern) for pattern in SECRET_NAMES):
            found.append("%s: named like a key or a vault password file" % path)
        if ".lab" in parts or parts[0] == "keys":
            found.append("%s: lab state (.lab/) or generated keys (keys/)" % path)
    return found


def test_the_tarball_holds_what_users_run(collection_files):
    top = {path.split("/")[0] for path in collection_files}
    assert top <= SHIPPED, "not for users, add to galaxy.yml build_ignore: %s" % sorted(top - SHIPPED)
    assert REQUIRED <= set(collection_files), "missing from the tarball: %s" % sorted(REQUIRED - set(collection_files))
    roles = {path.split("/")[1] for path in collection_files if path.startswith("roles/")}
    assert {"haproxy", "postfix", "mta", "mta_transactional", "mta_marketing", "bounce_inbound"} <= roles
    assert not roles & LAB_ONLY_ROLES, "lab-only roles ship: %s" % sorted(roles & LAB_ONLY_ROLES)
    assert not [p for p in collection_files if p.startswith("playbooks/lab_")], "lab playbooks ship"
    inventories = {path.split("/")[1] for path in collection_files if path.startswith("inventories/")}
    assert inventories == INVENTORIES, "inventories other than the examples ship: %s" % sorted(inventories)
    assert any(p.startswith("plugins/modules/") for p in collection_files)


def test_the_tarball_holds_no_secret(collection_files):
    found = secrets_in(collection_files)
    assert not found, "keep these out of the tarball (galaxy.yml build_ignore):\n" + "\n".join(found)


@pytest.mark.parametrize("path, content", [
    ("keys/production/dkim/kibamail.com.kb1.key", b"x"),
    ("roles/mta/files/dkim.txt", b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"),
    ("roles/mta/files/k.txt", b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"),
    ("inventories/production/group_vars/all/main.yml", b"---\nx: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n"),
    ("inventories/lab.vault-password.lab-only", b"lab"),
    ("docs/.lab/lab.json", b"{}"),
])
def test_the_secret_scan_finds(path, content):
    # The scan itself can fail: each of these alone makes it report.
    assert secrets_in({"README.md": b"# kibamail", path: content}) != []


def test_the_scan_passes_code_that_only_names_keys():
    # roles/mta checks that a key variable holds a PEM key; dkim_keys.yml names
    # $ANSIBLE_VAULT_PASSWORD_FILE: names, not secrets.
    assert secrets_in({"roles/mta/tasks/checks.yml": b"- \"'PRIVATE KEY-----' in item.dkim_private_key\"\n",
                       "playbooks/dkim_keys.yml": b"# default $ANSIBLE_VAULT_PASSWORD_FILE\n"}) == []


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize("path", ["keys/production/dkim/kibamail.com.kb1.key", "keys/staging/dkim/kibamail.com.kb1.pub",
                                  "keys/production/other.pem", ".lab/tsig.key"])
def test_generated_secrets_are_git_ignored(path):
    res = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, check=False)
    assert res.returncode == 0, "%s is not git-ignored: add it to .gitignore" % path
