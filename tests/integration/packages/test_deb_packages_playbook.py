# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""deb_packages through ansible-playbook against a real dpkg and apt (a local/debian-systemd:12 container without
network, its only source a flat repository with one package built in it): check mode, converge (lists
fetched, package installed), re-converge unchanged with one query, a bad name and an unknown package."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from container_playbook import changed, docker, need_image, playbook  # tests/support is on pythonpath (pytest.ini)

HERE = Path(__file__).resolve().parent
IMAGE = "local/debian-systemd:12"   # Debian 12 with python3
# A package built in the container, published in a flat repository that is apt's only source.
REPOSITORY = r"""
set -e
mkdir -p /tmp/build/kb-test-pkg/DEBIAN /tmp/build/kb-test-pkg/usr/share/kb-test-pkg /srv/repo
printf 'Package: kb-test-pkg\nVersion: 1.0\nArchitecture: all\n%s\nDescription: deb_packages test package\n' \
  'Maintainer: Kibamail platform team <platform@kibamail.com>' > /tmp/build/kb-test-pkg/DEBIAN/control
echo test > /tmp/build/kb-test-pkg/usr/share/kb-test-pkg/test
dpkg-deb -b /tmp/build/kb-test-pkg /srv/repo/kb-test-pkg_1.0_all.deb >/dev/null
cd /srv/repo && f=kb-test-pkg_1.0_all.deb
{ dpkg-deb -f $f; echo "Filename: ./$f"; echo "Size: $(stat -c %s $f)"; echo "SHA256: $(sha256sum $f | cut -d' ' -f1)"; echo; } > Packages
mkdir -p /etc/apt/unused && find /etc/apt/sources.list /etc/apt/sources.list.d -maxdepth 1 -type f -exec mv {} /etc/apt/unused/ \;
echo 'deb [trusted=yes] file:/srv/repo ./' > /etc/apt/sources.list.d/kb-test.list
rm -rf /var/lib/apt/lists/*_Packages*
"""


@pytest.fixture(scope="module")
def container():
    need_image(IMAGE)
    name = "kb-packages-test-%s" % uuid.uuid4().hex[:8]
    started = docker("run", "-d", "--rm", "--name", name, "--network", "none", "--entrypoint", "sleep", IMAGE,
                     "infinity")
    assert started.returncode == 0, started.stderr
    try:
        prepared = docker("exec", name, "bash", "-c", REPOSITORY)
        assert prepared.returncode == 0, prepared.stdout + prepared.stderr
        yield name
    finally:
        docker("rm", "-f", name)


def status(container: str, package: str) -> str:
    return docker("exec", container, "dpkg-query", "-W", "-f=${db:Status-Abbrev}", package).stdout.strip()


def run_playbook(container: str, *args: str):
    return playbook(container, HERE / "packages.yml", *args)


def test_check_mode_then_converge_then_unchanged(container):
    check = run_playbook(container, "--check", "--diff")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "installed=kb-test-pkg cache_updated=False" in check.stdout
    assert "-kb-test-pkg: not installed" in check.stdout and "+kb-test-pkg: installed" in check.stdout
    assert status(container, "kb-test-pkg") == ""
    first = run_playbook(container)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "installed=kb-test-pkg cache_updated=True" in first.stdout     # the lists were never fetched
    assert status(container, "kb-test-pkg") == "ii"
    second = run_playbook(container)
    assert second.returncode == 0 and changed(second) == 0, second.stdout
    assert "installed= cache_updated=False" in second.stdout


def test_a_bad_name_fails_before_anything_runs(container):
    run = run_playbook(container, "-e", '{"test_packages": ["kb-test-pkg=1.0"]}')
    assert run.returncode != 0
    assert "not a Debian package name: kb-test-pkg=1.0" in run.stdout


def test_an_unknown_package_fails_naming_it(container):
    run = run_playbook(container, "-e", '{"test_packages": ["kb-no-such-package"]}')
    assert run.returncode != 0
    assert "apt-get install kb-no-such-package failed (exit 100)" in run.stdout
    assert "Unable to locate package kb-no-such-package" in run.stdout
