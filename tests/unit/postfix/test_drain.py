# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kibamail-postfix-drain (roles/postfix/files): what it reads from Postfix and the kernel, and
the policy service's conversation."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "postfix" / "files" / "kibamail_postfix_drain.py"


def _load():
    loader = importlib.machinery.SourceFileLoader("kibamail_postfix_drain", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


drain = _load()

POSTCONF_M = """\
pickup     unix  n       -       n       60      1       pickup
cleanup    unix  n       -       n       -       0       cleanup
smtp       inet  n       -       n       -       -       smtpd
2525       inet  n       -       n       -       -       smtpd -o syslog_name=postfix/proxy-smtp
127.0.0.1:2587 inet n    -       n       -       -       smtpd
[::1]:2465 inet  n       -       n       -       -       smtpd
kb-drain   unix  -       n       n       -       0       spawn user=nobody argv=/x policy
nosuchservice-kb inet n  -       n       -       -       smtpd
"""


def test_listener_ports_are_the_inet_services_by_number_or_name():
    assert drain.listener_ports(POSTCONF_M) == [25, 2465, 2525, 2587]


# /proc/net/tcp: sl local rem st ... (ports in hex: 0x09DD = 2525, 0x0019 = 25)
PROC_NET = [
    "0: 1500A8C6:09DD 0100A8C6:D431 01 00000000:00000000 00:00000000 00000000 0 0 1 1 0 20 4 30 10 -1",
    "1: 1500A8C6:09DD 0100A8C6:D432 01 00000000:00000000 00:00000000 00000000 0 0 1 1 0 20 4 30 10 -1",
    "2: 00000000:09DD 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1 0 20 4 30 10 -1",
    "3: 1500A8C6:0019 0100A8C6:D433 08 00000000:00000000 00:00000000 00000000 0 0 1 1 0 20 4 30 10 -1",
    "4: 7A0200C0:E001 1900A8C6:0019 01 00000000:00000000 00:00000000 00000000 0 0 1 1 0 20 4 30 10 -1",
    "5: 0000000000000000FFFF00001500A8C6:0019 0000000000000000FFFF00000100A8C6:D434 01 0:0 0 0",
    "garbage",
]


def test_established_counts_only_established_connections_to_the_listeners():
    # two established on 2525 and one on 25 (IPv6 form); the listening socket, a CLOSE_WAIT and
    # an outbound delivery to someone else's port 25 do not count
    assert drain.established_on([25, 2525], PROC_NET) == 3
    assert drain.established_on([2587], PROC_NET) == 0


def test_queue_in_flight_counts_incoming_and_active_not_deferred_or_hold():
    lines = [json.dumps({"queue_name": name, "queue_id": str(i)})
             for i, name in enumerate(["active", "incoming", "deferred", "hold", "active", "maildrop"])]
    assert drain.queue_in_flight("\n".join(lines + ["", "not json"])) == 4


def test_nft_ruleset_resets_new_connections_to_the_ports_only():
    rules = drain.nft_ruleset([25, 2525])
    assert "tcp dport { 25, 2525 }" in rules
    assert "tcp flags & (fin | syn | rst | ack) == syn reject with tcp reset" in rules
    assert "policy accept" in rules


REQUEST = "request=smtpd_access_policy\nprotocol_state=DATA\nsasl_username=support@kibamail.com\n\n"


@pytest.mark.parametrize("draining, action", [(False, "DUNNO"), (True, drain.DRAINING_REPLY)])
def test_policy_answers_each_request_once(tmp_path, draining, action):
    flag = tmp_path / "draining"
    if draining:
        flag.write_text("1\n")
    out = io.StringIO()
    drain.policy(io.StringIO(REQUEST + REQUEST + "\n"), out, flag=str(flag))
    assert out.getvalue() == ("action=%s\n\n" % action) * 2
    assert not draining or action.startswith("421 ")


def test_policy_sees_the_flag_raised_between_requests(tmp_path):
    flag = tmp_path / "draining"

    class Requests(io.StringIO):
        """Raises the flag once the first request has been read."""

        def __iter__(self):
            for number, line in enumerate(REQUEST.splitlines(keepends=True) * 2):
                if number == len(REQUEST.splitlines()):
                    flag.write_text("1\n")
                yield line

    out = io.StringIO()
    drain.policy(Requests(), out, flag=str(flag))
    assert out.getvalue() == "action=DUNNO\n\naction=%s\n\n" % drain.DRAINING_REPLY


def test_drain_does_nothing_when_postfix_is_not_running(monkeypatch):
    calls = []
    monkeypatch.setattr(drain, "run", lambda argv, stdin=None: calls.append(argv) or
                        type("P", (), {"returncode": 1, "stdout": "", "stderr": ""})())
    assert drain.drain(1, 1) == 0
    assert calls == [["postfix", "status"]]
