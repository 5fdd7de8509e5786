# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install Debian packages only when one is missing (the deb_packages module).

One ``dpkg-query`` says which of the packages are installed; on a converged host that is all. Only when
one is missing are the package lists refreshed (when older than the allowed age) and the missing ones
installed with ``apt-get``, as Debian's tools do it unattended. ansible.builtin.apt loads the whole
package cache for that question, and with ``cache_valid_time`` refreshes the lists whenever they are old,
even when everything is installed.
"""

from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Tuple

# Debian Policy 5.6.1: lower case letters, digits, + - and ., at least two characters, starting alphanumeric.
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
STATUS_FORMAT = "${Package}\t${db:Status-Abbrev}\n"
# Debian's apt touches this stamp after every successful `apt-get update` (/etc/apt/apt.conf.d/15update-stamp);
# the lists directory's own time is the fallback.
UPDATE_STAMP = "/var/lib/apt/periodic/update-success-stamp"
LISTS_DIR = "/var/lib/apt/lists"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "APT_LISTCHANGES_FRONTEND": "none"}
# Keep the configuration files the administrator changed, take the package's new ones otherwise (no prompt),
# and wait for another apt run's lock instead of failing at once.
APT_OPTIONS = ["-y", "-q", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
               "-o", "DPkg::Lock::Timeout=120"]

Run = Callable[..., Tuple[int, str, str]]


class DebPackagesError(Exception):
    """What failed and what to do about it; ``changed`` says whether the host was already modified."""

    def __init__(self, message: str, changed: bool = False) -> None:
        super().__init__(message)
        self.changed = changed


@dataclass
class Outcome:
    missing: List[str] = field(default_factory=list)      # not installed before this run
    cache_updated: bool = False


def bad_names(names: Iterable[str]) -> List[str]:
    return [name for name in names if not PACKAGE_NAME.match(name)]


def installed(names: List[str], run: Run) -> Dict[str, bool]:
    """Whether each package is installed ("ii" in dpkg's database), from one dpkg-query."""
    # dpkg-query exits 1 when a name is unknown to dpkg and still prints the others: its output decides.
    _rc, out, _err = run(["dpkg-query", "-W", "-f=" + STATUS_FORMAT, "--"] + names)
    states = {}
    for line in out.splitlines():
        package, _sep, status = line.partition("\t")
        states[package.split(":", 1)[0]] = status.startswith("ii")
    return {name: states.get(name, False) for name in names}


def mtime(path: str) -> float:
    return os.stat(path).st_mtime


def lists_present() -> bool:
    """Whether any package list was fetched (an image may keep the stamp and drop the lists)."""
    return bool(glob.glob(os.path.join(LISTS_DIR, "*_Packages*")))


def now() -> float:
    return time.time()


def lists_age() -> Optional[float]:
    """Seconds since the package lists were last refreshed; None when they never were."""
    if not lists_present():
        return None
    for path in (UPDATE_STAMP, LISTS_DIR):
        try:
            return now() - mtime(path)
        except OSError:
            continue
    return None


def install_argv(names: List[str], install_recommends: Optional[bool]) -> List[str]:
    recommends = {True: ["--install-recommends"], False: ["--no-install-recommends"], None: []}[install_recommends]
    return ["apt-get", "install"] + APT_OPTIONS + recommends + names


def converge(names: List[str], install_recommends: Optional[bool], cache_valid_time: int, check_mode: bool,
             run: Run) -> Outcome:
    wrong = bad_names(names)
    if wrong:
        raise DebPackagesError("not a Debian package name: %s (lower case letters, digits, '+', '-' and '.'; "
                               "version pins and architectures are not supported here, use ansible.builtin.apt)"
                               % ", ".join(wrong))
    wanted = list(dict.fromkeys(names))
    outcome = Outcome(missing=[name for name, ok in installed(wanted, run).items() if not ok])
    if not outcome.missing or check_mode:
        return outcome
    age = lists_age()
    if age is None or age > cache_valid_time:
        rc, out, err = run(["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=120"], environ_update=APT_ENV)
        if rc != 0:
            raise DebPackagesError("apt-get update failed (exit %d), nothing installed: %s" % (
                rc, (err or out).strip()[-2000:]))
        outcome.cache_updated = True
    rc, out, err = run(install_argv(outcome.missing, install_recommends), environ_update=APT_ENV)
    still = [name for name, ok in installed(outcome.missing, run).items() if not ok]
    if rc != 0 or still:
        raise DebPackagesError("apt-get install %s failed (exit %d)%s: %s" % (
            " ".join(outcome.missing), rc, "; still not installed: " + ", ".join(still) if still else "",
            (err or out).strip()[-2000:]), changed=len(still) < len(outcome.missing))
    return outcome


def diff(names: List[str], missing: List[str]) -> Dict[str, str]:
    wanted = list(dict.fromkeys(names))
    return {"before": "".join("%s: %s\n" % (n, "not installed" if n in missing else "installed") for n in wanted),
            "after": "".join("%s: installed\n" % n for n in wanted)}
