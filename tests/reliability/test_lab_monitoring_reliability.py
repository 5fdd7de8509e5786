# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's real Prometheus on kb-mon (needs the running lab).

- every target the plan gives (node, postfix and mtail on each MTA; node and HAProxy on each
  load balancer) is up, and the exporter ports answer only kb-mon;
- messages through each pool grow that pool's sent counters by exactly their number;
- Postfix stopped on us-mta2: the load balancer marks it DOWN and KbBackendDown (and KbMtaDown)
  fire within their `for:` (15 s in the lab) plus a scrape and an evaluation, reach
  Alertmanager, and clear after Postfix starts again.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from email.message import EmailMessage
from typing import Any, Dict, List, Set, Tuple

import pytest

from reliability_support import Lab, docker, lab_vault, python_in

pytestmark = pytest.mark.lab

PROMETHEUS = "http://198.51.100.40:9090"
ALERTMANAGER = "http://198.51.100.40:9093"
LOGINS = {"transactional": "support@kibamail.com", "marketing": "news@kibamail.com"}
MESSAGES = int(os.environ.get("KB_MONITORING_MESSAGES", "100"))
ALERT_FOR = 15          # monitoring_alert_*_for in inventories/lab/group_vars/monitoring.yml
INTERVAL = 5            # scrape and evaluation interval there
STOPPED_MTA = "us-mta2"


def api(path: str, **params: str) -> Any:
    url = PROMETHEUS + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def query(expr: str) -> Dict[Tuple[Tuple[str, str], ...], float]:
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in api("/api/v1/query", query=expr)["result"]}


def wait_until(what: str, check, seconds: float, step: float = 1.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.0f s" % (what, seconds))
        time.sleep(step)


def expected_targets(lab: Lab) -> Set[Tuple[str, str]]:
    wanted = {("prometheus", "kb-mon")}
    for role in ("mta_transactional", "mta_marketing"):
        wanted.update((job, mta) for mta in lab.hosts_with_role(role) for job in ("node", "postfix", "mtail"))
    for role in ("lb_transactional", "lb_marketing"):
        wanted.update((job, lb) for lb in lab.hosts_with_role(role) for job in ("node", "haproxy"))
    return wanted


def test_every_target_is_up(lab: Lab, figures: Dict[str, Any]) -> None:
    wanted = expected_targets(lab)

    def health() -> Dict[Tuple[str, str], str]:
        return {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in api("/api/v1/targets")["activeTargets"]}

    seen: Dict[Tuple[str, str], str] = {}

    def all_up() -> bool:
        seen.clear()
        seen.update(health())
        return set(seen) == wanted and set(seen.values()) == {"up"}

    try:
        wait_until("every target up", all_up, 60, 2)
    finally:
        figures["targets"] = {"%s/%s" % k: v for k, v in sorted(seen.items())}
    assert set(seen) == wanted


CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("connected")
except OSError as exc:
    print("failed", type(exc).__name__)
"""


@pytest.mark.parametrize("port", [9100, 9154, 3903])
def test_exporters_answer_only_the_monitoring_host(lab: Lab, port: int) -> None:
    mta = lab.address("us-mta1")
    assert python_in("kb-mon", CONNECT, [mta, str(port)]).stdout.decode().strip() == "connected"
    # The host and another lab container are refused (dropped) by the exporters' nftables table.
    assert python_in("lb-transactional", CONNECT, [mta, str(port)]).stdout.decode().strip() != "connected"
    with pytest.raises(OSError):
        socket.create_connection((mta, port), timeout=3).close()


def submit(lab: Lab, pool: str, count: int, tag: str, errors: List[str]) -> None:
    sender = LOGINS[pool]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with smtplib.SMTP(lab.data["submission"][pool]["address"], 587, timeout=30) as client:
            client.starttls(context=context)
            client.login(sender, str(lab_vault()["vault_sasl_passwords"][sender]))
            for number in range(count):
                msg = EmailMessage()
                msg["From"], msg["To"] = sender, lab.spread_recipient("monitoring-%s" % tag, number)
                msg["Subject"] = "monitoring %s #%d" % (tag, number)
                msg["Message-ID"] = "<%s-%05d@kibamail.com>" % (tag, number)
                msg.set_content("Counted by the monitoring test.\n")
                client.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        errors.append("%s: %s: %s" % (pool, type(exc).__name__, exc))


SENT = 'sum by (pool) (kb_postfix_deliveries_total{job="mtail",status="sent",transport=~"kb-.*"})'


def sent_by_pool() -> Dict[str, float]:
    return {dict(k)["pool"]: v for k, v in query(SENT).items()}


def test_sent_counters_grow_per_pool(lab: Lab, figures: Dict[str, Any]) -> None:
    before = sent_by_pool()
    tag = "mon%d" % int(time.time())
    errors: List[str] = []
    threads = [threading.Thread(target=submit, args=(lab, pool, MESSAGES, "%s-%s" % (tag, pool), errors)) for pool in LOGINS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    # The marketing profile paces deliveries to one destination (1 s apart).
    wait_until("%d more sent per pool" % MESSAGES,
               lambda: all(sent_by_pool().get(p, 0) - before.get(p, 0) >= MESSAGES for p in LOGINS),
               MESSAGES * 1.5 + 120, 3)
    time.sleep(3 * INTERVAL)   # one more scrape: nothing counted twice
    after = sent_by_pool()
    grown = {p: after.get(p, 0) - before.get(p, 0) for p in LOGINS}
    figures["messages_per_pool"] = MESSAGES
    figures["sent_counter_growth"] = grown
    assert grown == {p: MESSAGES for p in LOGINS}


def firing(alertname: str, **labels: str) -> List[Dict[str, Any]]:
    return [a for a in api("/api/v1/alerts")["alerts"]
            if a["labels"].get("alertname") == alertname and a["state"] == "firing"
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def in_alertmanager(alertname: str, **labels: str) -> List[Dict[str, Any]]:
    with urllib.request.urlopen(ALERTMANAGER + "/api/v2/alerts", timeout=10) as response:
        alerts = json.load(response)
    return [a for a in alerts if a["labels"].get("alertname") == alertname
            and all(a["labels"].get(k) == v for k, v in labels.items())]


def test_backend_down_alert_fires_and_clears(lab: Lab, figures: Dict[str, Any]) -> None:
    container = lab.container(STOPPED_MTA)
    assert not firing("KbBackendDown"), "an MTA is already down before the test"
    # Detection: HAProxy's check (about 4 s), a scrape, the `for:`, an evaluation; plus slack for
    # this machine's load.
    budget = 4 + INTERVAL + ALERT_FOR + INTERVAL + 20
    stopped_at = None
    try:
        docker("exec", container, "systemctl", "stop", "postfix", timeout=180)
        stopped_at = time.monotonic()
        alerts = wait_until("KbBackendDown for %s" % STOPPED_MTA,
                            lambda: firing("KbBackendDown", server=STOPPED_MTA, pool="transactional"), budget)
        fired_after = time.monotonic() - stopped_at
        assert not firing("KbBackendDown", server="us-mta1"), "the running MTA is reported down too"
        wait_until("KbMtaDown for %s" % STOPPED_MTA, lambda: firing("KbMtaDown", instance=STOPPED_MTA), budget)
        wait_until("KbBackendDown in Alertmanager", lambda: in_alertmanager("KbBackendDown", server=STOPPED_MTA), 30)
        figures["backend_down_fired_after_s"] = round(fired_after, 1)
        figures["backend_down_alerts"] = sorted(a["labels"]["proxy"] for a in alerts)
        for alert in alerts:
            assert alert["labels"]["instance"] == "lb-transactional"
            assert alert["labels"]["severity"] == "critical"
    finally:
        docker("exec", container, "systemctl", "start", "postfix", timeout=180)
    started_at = time.monotonic()
    wait_until("KbBackendDown cleared", lambda: not firing("KbBackendDown", server=STOPPED_MTA)
               and not firing("KbMtaDown", instance=STOPPED_MTA), 90, 2)
    figures["backend_down_cleared_after_s"] = round(time.monotonic() - started_at, 1)
