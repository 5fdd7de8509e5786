# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the Python environment galaxy-importer lints the collection in.

Galaxy imports a collection with ansible-core, ansible-lint and nothing else:
the collection's dependencies are not installed and ansible-lint runs
offline, so every module of a dependency is `syntax-check[unknown-module]`.
Our development venv is the opposite: the `ansible` package puts about a
hundred collections on sys.path, so a dependency missing from galaxy.yml
would go unnoticed.

This makes ENV_DIR, a venv that sees every Python package of the running one
except its collections, plus exactly the collections galaxy.yml `dependencies`
declares (linked from the running environment, their versions checked
against galaxy.yml). Run galaxy-importer with ENV_DIR/bin first on PATH.

    python scripts/importer_env.py ENV_DIR
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements

ROOT = Path(__file__).resolve().parents[1]
# Entry points ansible-lint and galaxy-importer start.
TOOLS = ("ansible", "ansible-config", "ansible-doc", "ansible-galaxy", "ansible-inventory", "ansible-lint", "ansible-playbook")


def fail(msg: str) -> None:
    sys.exit("importer_env: " + msg)


def link_dependencies(site: Path, view: Path) -> list[str]:
    """Link each galaxy.yml dependency into view/ansible_collections; one line per dependency."""
    deps = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8")).get("dependencies") or {}
    lines = []
    for fqcn, spec in sorted(deps.items()):
        namespace, name = fqcn.split(".")
        source = site / "ansible_collections" / namespace / name
        manifest = source / "MANIFEST.json"
        if not manifest.is_file():
            fail("galaxy.yml depends on %s, which is not installed in %s (pip install -r requirements-dev.txt)" % (fqcn, site))
        version = json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"]
        if not meets_requirements(version, str(spec)):
            fail("%s %s is installed but galaxy.yml asks for %s" % (fqcn, version, spec))
        target = view / "ansible_collections" / namespace
        target.mkdir(parents=True, exist_ok=True)
        (target / name).symlink_to(source)
        lines.append("%s %s (galaxy.yml: %s)" % (fqcn, version, spec))
    return lines


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: importer_env.py ENV_DIR")
    env_dir = Path(sys.argv[1]).resolve()
    shutil.rmtree(env_dir, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    site = Path(sysconfig.get_paths()["purelib"])
    view = env_dir / "view"
    view.mkdir()
    for entry in site.iterdir():
        if entry.name != "ansible_collections" and not entry.name.endswith(".pth"):
            (view / entry.name).symlink_to(entry)
    lines = link_dependencies(site, view)
    env_site = Path(subprocess.run([str(env_dir / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True).stdout.strip())
    (env_site / "kibamail-importer-view.pth").write_text(str(view) + "\n", encoding="utf-8")
    bin_dir = Path(sys.executable).parent
    for tool in TOOLS:
        body = (bin_dir / tool).read_text(encoding="utf-8").split("\n", 1)[1]
        script = env_dir / "bin" / tool
        script.write_text("#!%s\n%s" % (env_dir / "bin" / "python", body), encoding="utf-8")
        os.chmod(script, 0o755)
    print("importer environment %s with the collections galaxy.yml declares:" % env_dir)
    for line in lines:
        print("  " + line)


if __name__ == "__main__":
    main()
