# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The log_shipping role's rsyslog fragments, rendered as Ansible renders them: which lines go,
where, behind which queue; and what a collector accepts. (rsyslogd -N1 checks them on the host,
the lab test that lines arrive.)"""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml
from ansible.plugins.filter.core import FilterModule

ROLE = Path(__file__).resolve().parents[3] / "roles" / "log_shipping"


def render(template: str, **overrides) -> str:
    values = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    values.update(overrides)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")), trim_blocks=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update(FilterModule().filters())
    return env.get_template(template).render(ansible_managed="Managed by Ansible (test render)", **values)


def test_forwarding_with_the_defaults_takes_the_platform_programs_and_queues():
    text = render("forward.conf.j2", log_shipping_target="198.51.100.40", log_shipping_port=10514)
    assert 'if $programname == ["postfix", "opendkim", "dovecot", "haproxy", "kb-bounce"] then {' in text
    assert 'target="198.51.100.40" port="10514" protocol="tcp"' in text
    assert 'TCP_Framing="octet-counted"' in text
    # The whole tag (postfix/kb-192-0-2-10/smtp[1234]:) and an RFC 3339 time stamp.
    assert "%TIMESTAMP:::date-rfc3339% %HOSTNAME% %syslogtag%" in text
    for setting in ('queue.type="LinkedList"', 'queue.filename="kibamail-forward"', 'queue.maxDiskSpace="1g"',
                    'queue.saveOnShutdown="on"', 'action.resumeRetryCount="-1"'):
        assert setting in text
    assert text.count("{") == text.count("}")


def test_forwarding_everything_without_a_queue():
    text = render("forward.conf.j2", log_shipping_target="logs.example.net", log_shipping_programs=[], log_shipping_queue=False)
    assert "$programname" not in text
    assert "queue." not in text and 'action.resumeRetryCount="0"' in text
    assert text.count("{") == text.count("}")


def test_collector_accepts_only_the_allowed_senders_and_files_by_address():
    text = render("receive.conf.j2", log_shipping_receive_port=10514, log_shipping_receive_allowed=["198.51.100.0/26", "192.0.2.7"])
    assert "$AllowedSender TCP, 127.0.0.1, 198.51.100.0/26, 192.0.2.7" in text
    assert 'input(type="imtcp" port="10514" ruleset="kibamail-receive")' in text
    # The file is named by the connection's address, never by a name the sender claims.
    assert "/var/log/kibamail-remote/%FROMHOST-IP%.log" in text and "%HOSTNAME%.log" not in text
