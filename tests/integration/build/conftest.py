# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The collection as users get it: one tarball of `ansible-galaxy collection
build`, built once per session (or the one scripts/build-collection.sh just
built and imported, named by KB_COLLECTION_TARBALL)."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def collection_tarball(tmp_path_factory) -> Path:
    given = os.environ.get("KB_COLLECTION_TARBALL")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(out), str(ROOT)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    (tarball,) = out.glob("kibamail-email_platform-*.tar.gz")
    return tarball


@pytest.fixture(scope="session")
def collection_files(collection_tarball) -> dict[str, bytes]:
    """Every regular file of the tarball: path -> content."""
    files = {}
    with tarfile.open(collection_tarball) as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                files[member.name] = handle.read()
    return files
