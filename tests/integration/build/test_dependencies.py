# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Declared dependencies are exactly the ones the shipped content uses:
collections (galaxy.yml `dependencies`, requirements.yml) and Python
packages of the controller (requirements.txt)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
OWN = "kibamail.email_platform"
# A module, filter or lookup called by FQCN in a role, a playbook or a template.
FQCN = re.compile(r"\b([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*\b")
# Collections and plugins' own imports of other collections.
COLLECTION_IMPORT = re.compile(r"^\s*(?:from|import)\s+ansible_collections\.([a-z0-9_]+)\.([a-z0-9_]+)\b", re.MULTILINE)
# Third-party imports in plugins/, by the PyPI name that provides them.
PYPI_NAME = {"hcloud": "hcloud", "dns": "dnspython", "spf": "pyspf", "cryptography": "cryptography",
             "requests": "requests"}
PY_IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)
# Python packages ansible-core needs for what our templates and playbooks call.
CONTENT_NEEDS = {
    # password_hash (roles/mta/templates/dovecot-passwd.j2): passlib, as the
    # crypt module it falls back to is gone from Python 3.13.
    "password_hash(": "passlib",
    # community.crypto's modules on the controller (playbooks/dkim_keys.yml).
    "community.crypto.": "cryptography",
}
NOT_COLLECTIONS = {"ansible.builtin", "ansible.legacy", "ansible.module_utils", "ansible.plugins", "ansible.errors",
                   "ansible.utils.display", "ansible.parsing", "ansible.release", "ansible.cfg"}
STDLIB_OR_ANSIBLE = {"ansible", "ansible_collections", "__future__"}


def shipped(collection_files, *suffixes):
    return {p: c.decode("utf-8", "replace") for p, c in collection_files.items() if p.endswith(suffixes)}


def used_collections(collection_files) -> set[str]:
    used = set()
    for path, text in shipped(collection_files, ".yml", ".yaml", ".j2").items():
        if path.startswith(("roles/", "playbooks/")) or path == "site.yml":
            for ns, name in FQCN.findall(text):
                fqcn = "%s.%s" % (ns, name)
                if ns in {"ansible", "community", "hetzner", "kibamail"} and fqcn not in NOT_COLLECTIONS:
                    used.add(fqcn)
    for text in shipped(collection_files, ".py").values():
        used.update("%s.%s" % m for m in COLLECTION_IMPORT.findall(text))
    return used - {OWN}


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~\[; ]", line)[0].lower())
    return names


def test_galaxy_yml_declares_exactly_the_collections_the_content_uses(collection_files):
    declared = set(yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"])
    used = used_collections(collection_files)
    assert used <= declared, "used but not in galaxy.yml dependencies: %s" % sorted(used - declared)
    assert declared <= used, "in galaxy.yml dependencies but not used: %s" % sorted(declared - used)


def test_requirements_yml_names_the_same_collections():
    declared = set(yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"])
    listed = {c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    assert listed == declared


def test_requirements_txt_declares_exactly_the_python_packages_used(collection_files):
    used = set()
    for path, text in shipped(collection_files, ".py").items():
        if path.startswith("plugins/"):
            for module in PY_IMPORT.findall(text):
                if module in PYPI_NAME:
                    used.add(PYPI_NAME[module])
    everything = "\n".join(shipped(collection_files, ".yml", ".j2").values())
    used.update(package for marker, package in CONTENT_NEEDS.items() if marker in everything)
    declared = requirement_names(ROOT / "requirements.txt")
    assert used <= declared, "used but not in requirements.txt: %s" % sorted(used - declared)
    assert declared <= used, "in requirements.txt but not used: %s" % sorted(declared - used)


def test_every_third_party_import_of_the_plugins_is_known(collection_files):
    # A new import must be added to PYPI_NAME (and requirements.txt), or is stdlib.
    import sys
    unknown = set()
    for path, text in shipped(collection_files, ".py").items():
        if path.startswith("plugins/"):
            for module in PY_IMPORT.findall(text):
                if module not in PYPI_NAME and module not in STDLIB_OR_ANSIBLE and module not in sys.stdlib_module_names:
                    unknown.add("%s (%s)" % (module, path))
    assert not unknown, "imports not in requirements.txt: %s" % sorted(unknown)
