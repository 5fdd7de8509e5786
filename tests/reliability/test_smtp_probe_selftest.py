# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe the lab relay tests rely on, against an SMTP server on 127.0.0.1 whose answers we
choose: it must see an accepted RCPT as accepted, a refused one as refused, and a missing server
as no banner, or the lab tests could pass for the wrong reason."""

from __future__ import annotations

import socket
from typing import Any, Iterator, List

import pytest
from aiosmtpd.controller import Controller

from smtp_probe import codes, probe


class Handler:
    """Accepts recipients at recipient.example, refuses the rest; records PROXY peers."""

    def __init__(self) -> None:
        self.proxied: List[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: Any) -> str:
        if address.endswith("@recipient.example"):
            envelope.rcpt_tos.append(address)
            return "250 OK"
        return "554 5.7.1 Relay access denied"

    async def handle_PROXY(self, server: Any, session: Any, envelope: Any, proxy_data: Any) -> bool:  # noqa: N802
        self.proxied.append(str(proxy_data.src_addr))
        return True

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        return "250 stored"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=[False, True], ids=["plain", "proxy"])
def server(request: pytest.FixtureRequest) -> Iterator[Any]:
    handler = Handler()
    kwargs = {"proxy_protocol_timeout": 5} if request.param else {}
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    controller.proxied = request.param
    controller.kb_handler = handler
    yield controller
    controller.stop()


def test_probe_tells_accepted_from_refused(server: Any) -> None:
    base = {"host": "127.0.0.1", "port": server.port, "mail_from": "a@kibamail.com"}
    if server.proxied:
        base["proxy"] = "203.0.113.99"
    accepted = probe(dict(base, rcpt_to=["x@recipient.example"]))
    refused = probe(dict(base, rcpt_to=["x@outside.example"]))
    assert accepted["banner"] == 220 and codes(accepted, "rcpt") == [250], accepted
    assert refused["banner"] == 220 and codes(refused, "rcpt") == [554], refused
    if server.proxied:
        assert server.kb_handler.proxied == ["203.0.113.99", "203.0.113.99"]


def test_probe_sends_data_only_when_asked_and_accepted(server: Any) -> None:
    base = {"host": "127.0.0.1", "port": server.port, "mail_from": "a@kibamail.com",
            "proxy": "203.0.113.99" if server.proxied else None}
    sent = probe(dict(base, rcpt_to=["x@recipient.example"], data="Subject: t\r\n\r\nbody\r\n"))
    assert codes(sent, "data") == [250]
    kept = probe(dict(base, rcpt_to=["x@outside.example"], data="Subject: t\r\n\r\nbody\r\n"))
    assert codes(kept, "data") == [] and codes(kept, "rset") == [250]


def test_probe_reports_a_missing_server() -> None:
    result = probe({"host": "127.0.0.1", "port": free_port(), "timeout": 3, "mail_from": "", "rcpt_to": ["x@y.example"]})
    assert result["banner"] is None and "Connection refused" in str(result["error"])
    assert codes(result, "rcpt") == []


def test_probe_sees_auth_refused_before_tls(server: Any) -> None:
    result = probe({"host": "127.0.0.1", "port": server.port, "try_auth_before_tls": True, "mail_from": "a@b.example",
                    "rcpt_to": [], "proxy": "203.0.113.99" if server.proxied else None})
    assert result["auth_advertised_before_tls"] is False
    assert [c // 100 for c in codes(result, "auth-before-tls")] == [5], result
