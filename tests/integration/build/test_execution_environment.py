# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""execution-environment.yml through ansible-builder create: the build
context holds the tested collection tarball, the Containerfile installs it
(galaxy stage) and copies it into the final stage, and ansible-builder's own
introspection of the installed tarball yields the Python (requirements.txt)
and system (bindep.txt) packages the final stage installs."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
TARBALL = "kibamail-email_platform.tar.gz"

pytestmark = pytest.mark.skipif(shutil.which("ansible-builder") is None, reason="ansible-builder (requirements-dev.txt) missing")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def context(collection_tarball, tmp_path_factory) -> Path:
    # The definition and the tarball where scripts/build-ee.sh puts it, in a
    # directory of their own.
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(ROOT / "execution-environment.yml", work)
    (work / ".build" / "ee").mkdir(parents=True)
    shutil.copy(collection_tarball, work / ".build" / "ee" / TARBALL)
    res = subprocess.run(["ansible-builder", "create", "-f", str(work / "execution-environment.yml"), "-c", str(work / "context"),
                          "--output-filename", "Containerfile"], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return work / "context"


def stages(containerfile: str) -> dict[str, str]:
    """Stage name -> its instructions."""
    parts = re.split(r"^FROM \S+ AS (\w+)$", containerfile, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_the_context_holds_the_tested_tarball(context, collection_tarball):
    assert sha256(context / "_build" / "collection" / TARBALL) == sha256(collection_tarball)
    reqs = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert {"name": "collection/" + TARBALL, "type": "file"} in reqs["collections"]


def test_the_containerfile_installs_the_collection_and_copies_it_to_the_final_stage(context):
    text = (context / "Containerfile").read_text()
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    base = definition["images"]["base_image"]["name"]
    assert 'ARG EE_BASE_IMAGE="%s"' % base in text
    assert not re.search(r"fedora:(3\d|40|41)\b", base), "end-of-life base image: %s" % base
    by_stage = stages(text)
    assert set(by_stage) == {"base", "galaxy", "builder", "final"}
    assert "COPY _build /build" in by_stage["galaxy"]
    assert re.search(r"ansible-galaxy collection install .*-r requirements.yml --collections-path \"/usr/share/ansible/collections\"",
                     by_stage["galaxy"])
    assert "COPY --from=galaxy /usr/share/ansible /usr/share/ansible" in by_stage["builder"]
    assert "introspect.py introspect" in by_stage["builder"]
    final = by_stage["final"]
    assert "COPY --from=galaxy /usr/share/ansible /usr/share/ansible" in final
    assert "COPY --from=builder /output/ /output/" in final and "/output/scripts/install-from-bindep" in final


def test_introspection_of_the_installed_tarball_yields_our_dependencies(context, tmp_path):
    # What the builder stage does, on the tarball installed as the galaxy stage installs it.
    res = subprocess.run(["ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", str(tmp_path),
                          str(context / "_build" / "collection" / TARBALL)], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    res = subprocess.run([sys.executable, str(context / "_build" / "scripts" / "introspect.py"), "introspect",
                          "--write-pip", str(pip_out), "--write-bindep", str(bindep_out), str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    wanted_pip = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    wanted_bindep = [line for line in (ROOT / "bindep.txt").read_text().splitlines() if line and not line.startswith("#")]
    got_pip, got_bindep = pip_out.read_text(), bindep_out.read_text()
    for line in wanted_pip:
        assert line.split(">")[0].split("=")[0] in got_pip, (line, got_pip)
    for line in wanted_bindep:
        assert line.split()[0] in got_bindep, (line, got_bindep)
    assert json.dumps(got_pip)  # readable in the failure message above
