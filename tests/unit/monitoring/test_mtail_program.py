# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mtail program of roles/metrics_exporters over a mail log as rsyslog writes it: delivery
outcomes per transport (whatever its syslog_name) and DSN, and per customer from the queue
manager's sender line; a retried message counts once per attempt, a bounce (empty sender) for
no customer; every customer's series exist at 0 from the first line read, so Prometheus'
increase() counts a customer's first delivery too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import pytest

from monitoring_support import EXPORTERS_ROLE, render

MTAIL = shutil.which("mtail")
pytestmark = pytest.mark.skipif(MTAIL is None, reason="mtail is missing: scripts/setup-host.sh installs Debian's mtail")

CUSTOMERS = {"kb-bounces.kibamail.com": "kibamail.com", "rp.other.example": "other.example"}
STAMP = "2026-12-06T22:30:14.798896+00:00 us-mta1 "
RELAY = "relay=mx.recipient.example[198.51.100.25]:25, delay=0.5, delays=0.1/0.1/0.2/0.1"
LOG = [
    "postfix/qmgr[100]: AAA111: from=<bounces@kb-bounces.kibamail.com>, size=300, nrcpt=1 (queue active)",
    "postfix/kb-192-0-2-10/smtp[200]: AAA111: to=<a@recipient.example>, %s, dsn=4.7.0, status=deferred (try later)" % RELAY,
    "postfix/qmgr[100]: AAA111: from=<bounces@kb-bounces.kibamail.com>, size=300, nrcpt=1 (queue active)",
    "postfix/kb-192-0-2-10/smtp[200]: AAA111: to=<a@recipient.example>, %s, dsn=2.0.0, status=sent (250 ok)" % RELAY,
    "postfix/qmgr[100]: AAA111: removed",
    "postfix/qmgr[100]: BBB222: from=<bounces@RP.other.example>, size=300, nrcpt=2 (queue active)",
    "postfix/kb-192-0-2-11/smtp[201]: BBB222: to=<b@recipient.example>, %s, dsn=5.1.1, status=bounced (user unknown)" % RELAY,
    "postfix/kb-192-0-2-11/smtp[201]: BBB222: to=<c@recipient.example>, %s, dsn=2.0.0, status=sent (250 ok)" % RELAY,
    "postfix/qmgr[100]: BBB222: removed",
    "postfix/qmgr[100]: CCC333: from=<>, size=300, nrcpt=1 (queue active)",
    "postfix/smtp[202]: CCC333: to=<d@recipient.example>, %s, dsn=2.0.0, status=sent (250 ok)" % RELAY,
    "postfix/qmgr[100]: CCC333: removed",
    "postfix/kb-192-0-2-10/smtp[200]: connect to mx.recipient.example[198.51.100.25]:25: Connection refused",
]
CONNECT = "postfix/smtpd[300]: connect from lb1.example[192.0.2.1]"


def counters(tmp_path: Path, log_lines: Sequence[str] = tuple(LOG),
             customers: Optional[Dict[str, str]] = None) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    progs = tmp_path / "progs"
    progs.mkdir()
    (progs / "kibamail-postfix.mtail").write_text(
        render("kibamail-postfix.mtail.j2", {"metrics_exporters_customers": CUSTOMERS if customers is None else customers}, EXPORTERS_ROLE), encoding="utf-8")
    log = tmp_path / "mail.log"
    log.write_text("".join(STAMP + line + "\n" for line in log_lines), encoding="utf-8")
    proc = subprocess.run([MTAIL, "--one_shot", "--one_shot_format", "prometheus", "--emit_prog_label=false",
                           "--logtostderr", "--progs", str(progs), "--logs", str(log)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("kb_"):
            continue
        series, value = line.rsplit(" ", 1)
        name, labels = series.split("{", 1) if "{" in series else (series, "")
        pairs = tuple(sorted(tuple(p.split("=", 1)) for p in labels.rstrip("}").replace('"', "").split(",") if p))
        found[(name, pairs)] = float(value)
    return found


def test_deliveries_per_transport_status_and_dsn(tmp_path):
    found = {labels: v for (name, labels), v in counters(tmp_path).items() if name == "kb_postfix_deliveries_total"}
    assert found == {
        (("dsn", "4.7.0"), ("status", "deferred"), ("transport", "kb-192-0-2-10")): 1,
        (("dsn", "2.0.0"), ("status", "sent"), ("transport", "kb-192-0-2-10")): 1,
        (("dsn", "5.1.1"), ("status", "bounced"), ("transport", "kb-192-0-2-11")): 1,
        (("dsn", "2.0.0"), ("status", "sent"), ("transport", "kb-192-0-2-11")): 1,
        (("dsn", "2.0.0"), ("status", "sent"), ("transport", "smtp")): 1,
    }


def test_deliveries_per_customer(tmp_path):
    found = {labels: v for (name, labels), v in counters(tmp_path).items() if name == "kb_postfix_customer_deliveries_total"}
    assert found == {
        (("customer", "kibamail.com"), ("status", "bounced")): 0,
        (("customer", "kibamail.com"), ("status", "deferred")): 1,
        (("customer", "kibamail.com"), ("status", "expired")): 0,
        (("customer", "kibamail.com"), ("status", "sent")): 1,
        (("customer", "other.example"), ("status", "bounced")): 1,
        (("customer", "other.example"), ("status", "deferred")): 0,
        (("customer", "other.example"), ("status", "expired")): 0,
        (("customer", "other.example"), ("status", "sent")): 1,
    }


def test_customer_series_exist_at_zero_from_the_first_line(tmp_path):
    """A line that is no delivery (a health check's connect) is enough: every configured customer's
    series are there at 0 before its first delivery, once per customer even when two return-path
    domains name the same one; the helper gauge is hidden."""
    customers = dict(CUSTOMERS, **{"rp2.other.example": "other.example"})
    found = counters(tmp_path, (CONNECT,), customers)
    assert found == {
        ("kb_postfix_customer_deliveries_total", (("customer", customer), ("status", status))): 0
        for customer in ("kibamail.com", "other.example") for status in ("sent", "deferred", "bounced", "expired")
    }


def test_no_customers_no_customer_series(tmp_path):
    found = counters(tmp_path, (CONNECT,), {})
    assert not [key for key in found if key[0] == "kb_postfix_customer_deliveries_total"]
