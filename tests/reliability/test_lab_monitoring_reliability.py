# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's real Prometheus on kb-mon (needs the running lab).

- every target the plan gives (node, postfix and mtail on each MTA; node and HAProxy on each
  load balancer) is up, and the exporter ports answer only kb-mon;
- messages through each pool grow that pool's sent counters by exactly their number;
- Postfix stopped on us-mta2: the load balancer marks it DOWN and KbBackendDown (and KbMtaDown)
  fire within their `for:` (15 s in the lab) plus a scrape and an evaluation, reach
  Alertmanager, and clear after Postfix starts again;
- a sending IP listed on the lab's blocklist (a dynamic update of bl.example): a run of
  playbooks/verify.yml hands the figures to kb-mon's node exporter, kb_blocklist_listed is 1 for
  that IP only and KbBlocklisted fires for it alone; delisted, the next run clears it;
- log shipping: a Postfix line of each MTA and an HAProxy line of each load balancer reach the
  collector on kb-mon;
- the webhook down while one customer sends 1,000 messages and gets 30 complaints (ARF reports at
  the bounce MX) and another sends too: KbComplaintRateHigh fires for the first customer only,
  KbWebhookBacklogOld fires; the webhook back, the backlog drains and that alert clears. Each
  customer's series exist beforehand (at 0), and the sent counters grow by exactly the messages sent;
- a burst of mail log lines on an MTA: every line the journal has is in /var/log/mail.log, once
  (rsyslog reads the journal itself; journald forwards nothing).
"""

from __future__ import annotations

import ipaddress
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

from reliability_support import Lab, docker, lab_vault, python_in, run_lab_playbooks

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
    # kb-mon's own node exporter carries the blocklist figures.
    wanted = {("prometheus", "kb-mon"), ("node", "kb-mon")}
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


def submit(lab: Lab, pool: str, count: int, tag: str, errors: List[str], sender: str = "") -> None:
    """count messages in one SMTP session through the pool's load balancer (port 587)."""
    sender = sender or LOGINS[pool]
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
                msg["Message-ID"] = "<%s-%05d@%s>" % (tag, number, sender.split("@")[1])
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


# ---------------------------------------------------------------- blocklists

BLOCKLIST = "bl.example"     # the lab's IP blocklist (playbooks/vars/lab_zones.yml)


def blocklist_update(lab: Lab, ip: str, listed: bool) -> None:
    """List (or delist) ip on the lab's blocklist by a TSIG-signed update of kb-ns, then make the
    lab's resolver forget what it cached of the zone (its negative answers last 300 s)."""
    import dns.query  # pylint: disable=import-outside-toplevel
    import dns.tsigkeyring  # pylint: disable=import-outside-toplevel
    import dns.update  # pylint: disable=import-outside-toplevel

    tsig = lab.data["dns"]["tsig"]
    secret = (lab.directory / "tsig.secret").read_text().strip()
    update = dns.update.UpdateMessage(BLOCKLIST, keyring=dns.tsigkeyring.from_text({tsig["name"]: secret}),
                                      keyname=tsig["name"], keyalgorithm=tsig["algorithm"])
    name = "%s.%s." % (".".join(reversed(ip.split("."))), BLOCKLIST)
    if listed:
        update.replace(name, 60, "A", "127.0.0.2")
        update.replace(name, 60, "TXT", '"listed by the lab blocklist test"')
    else:
        update.delete(name)
    response = dns.query.tcp(update, lab.data["dns"]["address"], port=int(lab.data["dns"].get("port", 53)), timeout=10)
    assert response.rcode() == 0, response
    docker("exec", lab.container("kb-resolver"), "rndc", "flushtree", BLOCKLIST)


def run_blocklist_checks(lab: Lab, tmp_path) -> float:
    """The scheduled run of docs/operations.md: playbooks/verify.yml with the blocklist checks only."""
    started = time.monotonic()
    extra = {"verify_checks": ["blocklist"], "verify_fail_on_failure": False, "verify_report_dir": str(tmp_path)}
    run = run_lab_playbooks(lab, ["playbooks/verify.yml", "-e", json.dumps(extra)], timeout=600)
    assert run.rc == 0, run.plain()[-3000:]
    return time.monotonic() - started


def listed_subjects() -> Dict[str, float]:
    return {dict(k)["subject"]: v for k, v in query('kb_blocklist_listed{instance="kb-mon",zone="%s"}' % BLOCKLIST).items()}


def test_blocklisted_ip_reaches_prometheus_and_fires_for_that_ip_only(lab: Lab, figures: Dict[str, Any], tmp_path) -> None:
    if not listed_subjects():   # no run since the lab came up: one first, to know the subjects
        run_blocklist_checks(lab, tmp_path)
        wait_until("blocklist figures on kb-mon", listed_subjects, 30)
    subjects = listed_subjects()
    ips = sorted((s for s in subjects if ":" not in s and s[0].isdigit()), key=ipaddress.ip_address)
    assert len(ips) > 100 and "kb-bounces.kbmta.net" not in ips
    listed_ip = ips[0]
    assert not firing("KbBlocklisted"), "a listing before the test"
    try:
        blocklist_update(lab, listed_ip, True)
        figures["verify_blocklist_run_s"] = round(run_blocklist_checks(lab, tmp_path), 1)
        wait_until("kb_blocklist_listed 1 for %s" % listed_ip, lambda: listed_subjects().get(listed_ip) == 1, 30)
        assert [s for s, v in listed_subjects().items() if v == 1] == [listed_ip]
        alerts = wait_until("KbBlocklisted for %s" % listed_ip, lambda: firing("KbBlocklisted"), 3 * INTERVAL + 10)
        assert [a["labels"]["subject"] for a in alerts] == [listed_ip]
        assert alerts[0]["labels"]["zone"] == BLOCKLIST and alerts[0]["labels"]["severity"] == "critical"
        figures["blocklisted_subjects"] = len(subjects)
    finally:
        blocklist_update(lab, listed_ip, False)
        run_blocklist_checks(lab, tmp_path)
    wait_until("KbBlocklisted cleared", lambda: listed_subjects().get(listed_ip) == 0 and not firing("KbBlocklisted"),
               3 * INTERVAL + 10)
    assert query("time() - kb_blocklist_last_check_timestamp_seconds") and not firing("KbBlocklistCheckStale")


# ---------------------------------------------------------------- log shipping

COLLECTED = "/var/log/kibamail-remote"     # log_shipping_receive_dir on kb-mon


def collected(lab: Lab, host: str, pattern: str) -> str:
    """The newest line from host's file on the collector matching the extended regular expression."""
    path = "%s/%s.log" % (COLLECTED, lab.address(host))
    proc = docker("exec", lab.container("kb-mon"), "sh", "-c", "grep -E -- \"$1\" \"$2\" | tail -n 1", "-", pattern, path, check=False)
    return proc.stdout.decode("utf-8", "replace").strip()


def test_platform_logs_reach_the_collector(lab: Lab, figures: Dict[str, Any]) -> None:
    lbs = lab.hosts_with_role("lb_transactional") + lab.hosts_with_role("lb_marketing")
    mtas = lab.hosts_with_role("mta_transactional") + lab.hosts_with_role("mta_marketing")
    # One short session through each load balancer: HAProxy logs it when it ends (option tcplog).
    for lb in lbs:
        with smtplib.SMTP(lab.address(lb), 25, timeout=30) as client:
            client.ehlo("logs-test.recipient.example")
    found: Dict[str, str] = {}

    def arrived() -> bool:
        for mta in mtas:
            found[mta] = found.get(mta) or collected(lab, mta, " %s postfix(/[^ ]+)?/[a-z]+\\[[0-9]+\\]: " % mta)
        for lb in lbs:
            found[lb] = found.get(lb) or collected(lab, lb, " %s haproxy\\[[0-9]+\\]: .*ft_" % lb)
        return all(found.get(h) for h in mtas + lbs)

    try:
        wait_until("a Postfix line of each MTA and an HAProxy line of each load balancer on kb-mon", arrived, 60, 2)
    finally:
        figures["collected_lines"] = {h: (found.get(h) or "")[:160] for h in mtas + lbs}


# ---------------------------------------------------------------- complaints and the webhook

COMPLAINER, OTHER_CUSTOMER = "kibamail.com", "shop.example"
COMPLAINT_MESSAGES, COMPLAINTS, OTHER_MESSAGES = 1000, 30, 150
WEBHOOK_UNIT = "lab-webhook-recorder.service"   # the lab's bounce webhook on kb-mx (playbooks/lab_infra.yml)
BOUNCE_MX = "us-mta1"                           # any MTA is the bounce MX


def arf(index: int, tag: str) -> Tuple[str, bytes]:
    """An RFC 5965 abuse report about a message of COMPLAINER: (envelope recipient, message)."""
    local = "fbl-%s-%03d" % (tag, index)
    verp = "bounces+%s=recipient.example@kb-bounces.%s" % (local, COMPLAINER)
    text = "\r\n".join([
        "From: Feedback Loop <fbl@recipient.example>",
        "To: <%s>" % verp,
        "Subject: FW: complaint %s" % local,
        "Message-ID: <arf-%s@recipient.example>" % local,
        "Date: Mon, 07 Dec 2026 01:00:00 +0000",
        "MIME-Version: 1.0",
        'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"',
        "",
        "--arf",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        "This is an email abuse report.",
        "",
        "--arf",
        "Content-Type: message/feedback-report",
        "",
        "Feedback-Type: abuse",
        "User-Agent: lab-fbl/1.0",
        "Version: 1",
        "Original-Mail-From: <%s>" % verp,
        "Original-Rcpt-To: <%s@recipient.example>" % local,
        "Reported-Domain: %s" % COMPLAINER,
        "",
        "--arf",
        "Content-Type: message/rfc822",
        "",
        "Return-Path: <%s>" % verp,
        "From: %s" % LOGINS["transactional"],
        "To: %s@recipient.example" % local,
        "Subject: monitoring complaints",
        "Message-ID: <%s@%s>" % (local, COMPLAINER),
        "",
        "The message complained about.",
        "",
        "--arf--",
        "",
    ])
    return verp, text.encode("ascii")


def complain(lab: Lab, tag: str, numbers: range) -> None:
    """ARF reports to the bounce MX (port 25, empty sender), in one session."""
    with smtplib.SMTP(lab.address(BOUNCE_MX), 25, timeout=60) as client:
        client.ehlo("fbl.recipient.example")
        for index in numbers:
            verp, raw = arf(index, tag)
            client.sendmail("", [verp], raw)


def customer_sent(customer: str) -> float:
    values = query('sum(kb_postfix_customer_deliveries_total{customer="%s",status="sent"})' % customer)
    return sum(values.values())


def customer_series(customer: str) -> Set[Tuple[str, str]]:
    """(MTA, status) of the customer's delivery series Prometheus has."""
    values = query('kb_postfix_customer_deliveries_total{customer="%s"}' % customer)
    return {(dict(k)["instance"], dict(k)["status"]) for k in values}


def test_complaints_fire_for_one_customer_and_a_webhook_outage_fires_the_backlog_alert(lab: Lab, figures: Dict[str, Any]) -> None:
    receiver = lab.container(lab.data["receiver"]["host"])
    tag = "cmp%d" % int(time.time())
    events = 'sum(kb_bounce_events_total{instance="%s",class="complaint",customer="%s"})' % (BOUNCE_MX, COMPLAINER)
    complaints_before = sum(query(events).values())
    # No warm-up: every customer's delivery series exist at 0 on every transactional MTA from mtail's
    # start, and its complaint series on the bounce MX from kb-bounce's first figures, so increase()
    # counts the first message and the first complaint of the test too.
    mtas = lab.hosts_with_role("mta_transactional")
    for customer in (COMPLAINER, OTHER_CUSTOMER):
        assert customer_series(customer) >= {(m, s) for m in mtas for s in ("sent", "deferred", "bounced", "expired")}
    assert query('kb_bounce_events_total{instance="%s",class="complaint",customer="%s",reason="abuse"}' % (BOUNCE_MX, COMPLAINER))
    before = {c: customer_sent(c) for c in (COMPLAINER, OTHER_CUSTOMER)}
    assert not firing("KbWebhookBacklogOld"), "a backlog before the test"
    started = time.monotonic()
    errors: List[str] = []
    senders = [threading.Thread(target=submit, args=(lab, "transactional", COMPLAINT_MESSAGES, tag + "-a", errors)),
               threading.Thread(target=submit, args=(lab, "transactional", OTHER_MESSAGES, tag + "-b", errors),
                                kwargs={"sender": "orders@%s" % OTHER_CUSTOMER})]
    docker("exec", receiver, "systemctl", "stop", WEBHOOK_UNIT)
    try:
        for thread in senders:
            thread.start()
        complain(lab, tag, range(COMPLAINTS))
        for thread in senders:
            thread.join()
        assert not errors, errors
        figures["messages_submitted_s"] = round(time.monotonic() - started, 1)
        # Backlog: older than 1 minute (lab threshold), plus figures, scrape and evaluation.
        backlog = wait_until("KbWebhookBacklogOld on %s" % BOUNCE_MX, lambda: firing("KbWebhookBacklogOld", instance=BOUNCE_MX),
                             60 + 4 * INTERVAL + 30)
        figures["backlog_alert_after_s"] = round(time.monotonic() - started, 1)
        assert backlog[0]["labels"]["severity"] == "critical"
        # Both customers' messages delivered and counted (the rate's base), then the rate alert (for:
        # 15 s in the lab). mtail counts from /var/log/mail.log, which rsyslog writes from the journal
        # (roles/rsyslog_journal): every message is counted, once.
        counts = ((COMPLAINER, COMPLAINT_MESSAGES), (OTHER_CUSTOMER, OTHER_MESSAGES))
        wait_until("the messages counted", lambda: all(customer_sent(c) - before[c] >= n for c, n in counts), 90, 2)
        time.sleep(2 * INTERVAL)   # a late line would show as more than sent
        assert {c: customer_sent(c) - before[c] for c in before} == dict(counts)
        alerts = wait_until("KbComplaintRateHigh for %s" % COMPLAINER,
                            lambda: {a["labels"]["severity"] for a in firing("KbComplaintRateHigh", customer=COMPLAINER)}
                            >= {"warning", "critical"}, 15 + 4 * INTERVAL + 30)
        figures["complaint_alert_after_s"] = round(time.monotonic() - started, 1)
        assert alerts
        assert {a["labels"]["customer"] for a in firing("KbComplaintRateHigh")} == {COMPLAINER}
        rates = {dict(k)["customer"]: v for k, v in query("kb:customer_complaint_rate:ratio1d").items()}
        messages = {dict(k)["customer"]: v for k, v in query("kb:customer_messages:increase1d").items()}
        figures["complaint_rate"] = {c: round(v, 4) for c, v in rates.items()}
        figures["counted_messages"] = {c: round(v) for c, v in messages.items()}
        figures["sent_counter_growth"] = {c: customer_sent(c) - before[c] for c in before}
        assert messages.get(OTHER_CUSTOMER, 0) > 0, "%s's messages are not counted: %s" % (OTHER_CUSTOMER, messages)
        assert rates.get(OTHER_CUSTOMER, 0) == 0
    finally:
        docker("exec", receiver, "systemctl", "start", WEBHOOK_UNIT)
    back = time.monotonic()
    wait_until("the backlog drained and KbWebhookBacklogOld cleared",
               lambda: query('kb_bounce_webhook_backlog_events{instance="%s"} == 0' % BOUNCE_MX)
               and not firing("KbWebhookBacklogOld"), 60, 2)
    figures["backlog_cleared_after_s"] = round(time.monotonic() - back, 1)
    figures["complaints_counted"] = sum(query(events).values()) - complaints_before
    assert figures["complaints_counted"] == COMPLAINTS, "kb-bounce counted %s complaints" % figures["complaints_counted"]
    figures["test_s"] = round(time.monotonic() - started, 1)


# ---------------------------------------------------------------- mail log from the journal

BURST = int(os.environ.get("KB_MONITORING_LOG_BURST", "20000"))


def test_a_burst_of_mail_log_lines_loses_none_and_doubles_none(lab: Lab, figures: Dict[str, Any]) -> None:
    """logger writes BURST numbered mail lines at once on an MTA: the journal and /var/log/mail.log
    have the same lines, each once, and journald forwarded nothing to syslog."""
    mta = lab.container("us-mta1")
    tag = "kb-burst-%d" % int(time.time())
    docker("exec", mta, "sh", "-c", 'seq 1 "$1" | logger -p mail.info -t "$2"', "-", str(BURST), tag, timeout=300)

    def in_mail_log() -> List[str]:
        out = docker("exec", mta, "grep", "-F", " %s[" % tag, "/var/log/mail.log", check=False).stdout
        return [line.split(": ", 1)[1] for line in out.decode().splitlines()]

    lines: List[str] = []

    def all_written() -> bool:
        lines[:] = in_mail_log()
        return len(lines) >= BURST

    try:
        wait_until("%d lines of %s in mail.log" % (BURST, tag), all_written, 120, 2)
        time.sleep(2)
        lines[:] = in_mail_log()
    finally:
        journal = docker("exec", mta, "journalctl", "-t", tag, "-o", "cat", check=False).stdout.decode().splitlines()
        figures["log_burst"] = {"sent": BURST, "journal": len(journal), "mail_log": len(lines),
                                "mail_log_distinct": len(set(lines))}
    assert len(journal) == BURST
    assert sorted(lines, key=int) == [str(n) for n in range(1, BURST + 1)]
    assert docker("exec", mta, "systemd-analyze", "cat-config", "systemd/journald.conf").stdout.decode().count(
        "ForwardToSyslog=no") >= 1
