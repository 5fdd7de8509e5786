# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rsyslog_journal role's drop-ins, rendered as Ansible renders them: rsyslog reads the journal
with a state file and without imjournal's own rate limit, journald forwards nothing and keeps its
rate limits; the role's check of the fragment accepts it and refuses a broken one (where rsyslogd
is installed; the lab test counts the lines of a burst)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import FilterModule

ROLE = Path(__file__).resolve().parents[3] / "roles" / "rsyslog_journal"
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text(encoding="utf-8"))


def render(template: str) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")), trim_blocks=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(FilterModule().filters())
    return env.get_template(template).render(ansible_managed="Managed by Ansible (test render)", **VARS)


def settings(text: str) -> str:
    """The text without comments."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_rsyslog_reads_the_journal_from_a_saved_cursor_without_a_rate_limit():
    text = settings(render("journal.conf.j2"))
    assert 'module(load="imjournal"' in text
    assert 'StateFile="/var/spool/rsyslog/imjournal.state"' in text
    assert 'IgnorePreviousMessages="on"' in text
    assert 'Ratelimit.Interval="0"' in text
    # The kernel's lines come from imklog already.
    assert 'if $inputname == "imjournal" and $!_TRANSPORT == "kernel" then stop' in text
    assert text.count("(") == text.count(")")


def test_journald_forwards_nothing_and_keeps_its_rate_limit():
    text = settings(render("journald.conf.j2"))
    assert [line for line in text.splitlines() if line.strip()] == ["[Journal]", "ForwardToSyslog=no"]


def test_drop_ins_name_each_other():
    assert VARS["_rsyslog_journal_journald_dropin"].rsplit("/", 1)[1] in render("journal.conf.j2")
    assert VARS["_rsyslog_journal_rsyslog_dropin"].rsplit("/", 1)[1] in render("journald.conf.j2")


@pytest.mark.skipif(shutil.which("rsyslogd", path="/usr/sbin:/sbin:/usr/bin") is None,
                    reason="rsyslogd is missing (Debian's rsyslog)")
@pytest.mark.parametrize("broken", [False, True])
def test_the_fragment_check(tmp_path, broken):
    fragment = tmp_path / "05-kibamail-journal.conf"
    fragment.write_text(render("journal.conf.j2") + ('module(load="imjournal")\nif then\n' if broken else ""),
                        encoding="utf-8")
    argv = shlex.split(VARS["_rsyslog_journal_check"].replace("%s", shlex.quote(str(fragment))))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode != 0) == broken, proc.stdout + proc.stderr
