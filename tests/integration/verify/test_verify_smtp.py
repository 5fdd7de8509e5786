# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The SMTP checks against real SMTP servers on loopback (aiosmtpd with TLS), good and bad."""

from __future__ import annotations

import pytest
from bind import free_port
from verify_support import NAME

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import FAILURE, OK, WARNING
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_smtp import (
    SmtpSettings,
    SmtpTarget,
    parse_lb_stats,
    probe,
)


def results_of(port, pki, trust=True, **target):
    target.setdefault("server_names", [NAME])
    settings = SmtpSettings(helo="verify.kbmta.test", ca_path=pki["ca"] if trust else None)
    results = probe(SmtpTarget(address="127.0.0.1", port=port, timeout=5, **target), settings)
    return {r.check: r for r in results}


def test_good_server(smtp_server, pki):
    port, handler = smtp_server()
    found = results_of(port, pki, auth="required")
    assert {k: r.status for k, r in found.items()} == {
        "smtp_connect": OK, "smtp_auth": OK, "smtp_starttls": OK, "tls_certificate": OK, "smtp_auth_tls": OK, "open_relay": OK}
    assert "554" in found["open_relay"].reason and NAME in found["tls_certificate"].reason
    assert "issued by kbmta test CA for %s; " % NAME in found["tls_certificate"].reason and "days left" in found["tls_certificate"].reason
    assert handler.data_seen == 0


def test_open_relay_is_a_failure_and_nothing_is_sent(smtp_server, pki):
    port, handler = smtp_server(open_relay=True)
    found = results_of(port, pki)
    assert found["open_relay"].status == FAILURE and "OPEN RELAY" in found["open_relay"].reason
    assert "reject_unauth_destination" in found["open_relay"].fix
    assert handler.data_seen == 0


def test_auth_before_tls(smtp_server, pki):
    port, _handler = smtp_server(auth_before_tls=True)
    found = results_of(port, pki)
    assert found["smtp_auth"].status == FAILURE and "smtpd_tls_auth_only" in found["smtp_auth"].fix


@pytest.mark.parametrize("cert, trust, status, text", [
    ("wrong", True, FAILURE, "does not name smtp.kbmta.test"),
    ("expired", True, FAILURE, "expired on"),
    ("good", False, FAILURE, "not trusted"),
])
def test_certificate_problems(smtp_server, pki, cert, trust, status, text):
    port, _handler = smtp_server(cert=cert)
    found = results_of(port, pki, trust=trust)
    assert found["tls_certificate"].status == status and text in found["tls_certificate"].reason
    assert found["open_relay"].status == OK  # the probe carried on after the TLS problem


def test_untrusted_is_a_warning_when_chain_not_required(smtp_server, pki):
    port, _handler = smtp_server()
    results = probe(SmtpTarget(address="127.0.0.1", port=port, server_names=[NAME], timeout=5),
                    SmtpSettings(verify_chain=False))
    assert {r.check: r.status for r in results}["tls_certificate"] == WARNING


def test_no_starttls_and_auth_missing(smtp_server, pki):
    port, _handler = smtp_server(tls=False)
    found = results_of(port, pki, auth="required")
    assert found["smtp_starttls"].status == FAILURE


def test_implicit_tls(smtp_server, pki):
    port, _handler = smtp_server(implicit=True)
    found = results_of(port, pki, tls="implicit")
    assert found["tls_certificate"].status == OK and found["smtp_connect"].status == OK


def test_closed_port():
    port = free_port()
    results = probe(SmtpTarget(address="127.0.0.1", port=port, timeout=2), SmtpSettings())
    assert [(r.check, r.status) for r in results] == [("smtp_connect", FAILURE)]
    assert "open TCP port %d" % port in results[0].fix


def test_haproxy_stats():
    csv_text = ("# pxname,svname,qcur,status,check_status\n"
                "smtp_in,FRONTEND,,OPEN,\n"
                "mta_pool,us-mta1,0,UP,L7OK\n"
                "mta_pool,us-mta2,0,DOWN,L7STS\n"
                "mta_pool,BACKEND,0,UP,\n")
    result = parse_lb_stats("lb-transactional", csv_text)[0]
    assert result.status == FAILURE and "mta_pool/us-mta2 DOWN" in result.reason and "(up: 1)" in result.reason
    healthy = parse_lb_stats("lb", csv_text.replace("DOWN", "UP"))[0]
    assert healthy.status == OK and "2 backends up" in healthy.reason
