# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mail is not lost and not doubled when an MTA goes away (needs the running lab).

Failover, for each stream: 1,000 messages through its load balancer (587, STARTTLS, AUTH as
support@kibamail.com through smtp.kbmta.net, news@kibamail.com through smtp-mkg.kbmta.net) while
one MTA of the pool is stopped mid-run and started again; every Message-ID must reach the lab
receiver exactly once. The messages go to the receiver's domains in turn (lab.json
receiver.spread_domains, all with kb-mx as MX), as a real campaign reaches many domains: Postfix
paces each destination domain on its own (the marketing profile waits 1 s between deliveries to
one destination). The delivery deadline still allows for one domain's pace for every message.

Restart: with delivery deferred, mail waits in both transactional MTAs' queues; the containers
are restarted; once delivery is allowed again every message arrives, once.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import ssl
import threading
import time
import uuid
from collections import Counter
from email.message import EmailMessage
from typing import Any, Dict, List, Tuple

import pytest

from reliability_support import Lab, container_running, docker, lab_vault, receiver_copies, receiver_message_ids

pytestmark = pytest.mark.lab

SENDER = "support@kibamail.com"
# 1,000 by default; KB_FAILOVER_MESSAGES_<POOL> (for example _MARKETING) sets another count for one pool.
FAILOVER_MESSAGES = 1000
SENDERS = 4                       # parallel client connections
RESTART_MESSAGES = 20
DELIVERY_DEADLINE = 600           # seconds for everything to reach the receiver, beyond the pool's pacing


# Each stream's login (docs/model.md, streams): it may send only through its own pool.
STREAM_LOGINS = {"transactional": SENDER, "marketing": "news@kibamail.com"}


def password(sender: str = SENDER) -> str:
    return str(lab_vault()["vault_sasl_passwords"][sender])


def message(tag: str, number: int, recipient: str, sender: str = SENDER) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = "reliability %s #%d" % (tag, number)
    msg["Message-ID"] = "<%s-%05d@kibamail.com>" % (tag, number)
    msg.set_content("Message %d of the reliability run %s.\n" % (number, tag))
    return msg


class Submitter:
    """One client connection that submits messages, reconnecting and retrying after any failure,
    the way a sending application does. A message counts as sent when DATA got 250."""

    def __init__(self, lab: Lab, secret: str, pool: str = "transactional", sender: str = SENDER) -> None:
        self.address = lab.data["submission"][pool]["address"]
        self.secret = secret
        self.sender = sender
        self.client: Any = None
        self.retries = 0
        self.errors: List[str] = []

    def _connect(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE      # the lab's certificates are self-signed
        client = smtplib.SMTP(self.address, 587, timeout=30)
        client.starttls(context=context)
        client.login(self.sender, self.secret)
        self.client = client

    def send(self, msg: EmailMessage, deadline: float) -> None:
        while True:
            try:
                if self.client is None:
                    self._connect()
                self.client.send_message(msg)
                return
            except (OSError, smtplib.SMTPException) as exc:
                self.retries += 1
                self.errors.append("%s: %s" % (type(exc).__name__, exc))
                self.close()
                if time.monotonic() > deadline:
                    raise AssertionError("could not submit %s: %s" % (msg["Message-ID"], self.errors[-5:]))
                time.sleep(0.5)

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self.client = None


def failover_messages(pool: str) -> int:
    return int(os.environ.get("KB_FAILOVER_MESSAGES_%s" % pool.upper(), FAILOVER_MESSAGES))


def pacing_seconds(lab: Lab, mtas: List[str]) -> float:
    """The longest pause the pool's MTAs keep between deliveries to one destination (the marketing
    profile paces at 1 s): every test message goes to one domain, so in the worst case one MTA
    delivers all of them one pause apart, and the delivery deadline must allow for that."""
    longest = 0.0
    for mta in mtas:
        out = docker("exec", lab.container(mta), "postconf", "-h", "default_destination_rate_delay").stdout.decode().strip()
        match = re.fullmatch(r"(\d+)([smh]?)", out)
        assert match, "%s: unexpected default_destination_rate_delay %r" % (mta, out)
        longest = max(longest, int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)])
    return longest


def wait_for_ids(lab: Lab, tag: str, expected: int, seconds: float) -> List[str]:
    receiver = lab.data["receiver"]
    deadline = time.monotonic() + seconds
    found: List[str] = []
    while time.monotonic() < deadline:
        found = receiver_message_ids(lab.container(receiver["host"]), receiver["store_dir"], tag)
        if len(found) >= expected:
            time.sleep(5)            # anything doubled arrives late: look once more
            return receiver_message_ids(lab.container(receiver["host"]), receiver["store_dir"], tag)
        time.sleep(3)
    return found


class Gate:
    """How many messages the senders may take so far. The test opens it step by step, so the
    fault lands at a known point of the run however fast the platform accepts mail."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.allowed = 0
        self.taken = 0
        self.sent = 0

    def open_to(self, allowed: int) -> None:
        with self.cond:
            self.allowed = allowed
            self.cond.notify_all()

    def take(self) -> None:
        with self.cond:
            while self.taken >= self.allowed:
                self.cond.wait()
            self.taken += 1

    def done(self) -> None:
        with self.cond:
            self.sent += 1
            self.cond.notify_all()

    def wait_sent(self, count: int, threads: List[threading.Thread]) -> int:
        with self.cond:
            while self.sent < count and any(t.is_alive() for t in threads):
                self.cond.wait(0.2)
            return self.sent


# A Postfix process that logs "fatal:" or "panic:" exited; the master starts another one only after
# service_throttle_time, and a listener whose every process dies that way stays down. Once, right
# after a first converge, the 465 smtpd died at its first client for want of Dovecot's auth socket
# ("no SASL authentication mechanisms") and the load balancer's resets kept it dying for minutes.
POSTFIX_DIED = re.compile(r"^.* (postfix(?:/[\w.-]+)+)\[\d+\]: (?:fatal|panic): (.*)$", re.MULTILINE)


# Marked site_run: the platform scenario runs it right after its converge, before any test stops,
# kills or refills something on purpose.
@pytest.mark.site_run
def test_no_postfix_process_died_while_the_lab_converged(lab: Lab, figures: Dict[str, Any]) -> None:
    mtas = lab.hosts_with_role("mta_transactional") + lab.hosts_with_role("mta_marketing")
    assert mtas, "no MTA in the lab description"
    died: Dict[str, List[str]] = {}
    lines = 0
    for mta in mtas:
        # The mail facility (2): every Postfix, OpenDKIM and Dovecot line since the container started.
        journal = docker("exec", lab.container(mta), "journalctl", "-q", "--no-pager", "-o", "short",
                         "SYSLOG_FACILITY=2").stdout.decode()
        lines += journal.count("\n")
        found = ["%s: %s" % match for match in POSTFIX_DIED.findall(journal)]
        if found:
            died[mta] = found
    assert lines > 0, "no mail log lines in the MTAs' journals"
    assert not died, "Postfix processes died on the MTAs: %s" % json.dumps(died, indent=1)
    figures.update(mtas=len(mtas), mail_log_lines=lines)


@pytest.mark.parametrize("pool", sorted(STREAM_LOGINS))
def test_failover_1000_messages_one_mta_stopped_mid_run(lab: Lab, figures: Dict[str, Any], pool: str) -> None:
    """A third goes before the stop; a sixth while the MTA is stopping; a sixth once it is down;
    the last third while it starts again. Every message must arrive once. Both streams: the
    transactional login through smtp.kbmta.net, the marketing login through smtp-mkg.kbmta.net."""
    total = failover_messages(pool)
    mtas = lab.hosts_with_role("mta_%s" % pool)
    assert len(mtas) >= 2, "the failover test needs two %s MTAs, lab.json lists %s" % (pool, mtas)
    victim = lab.container(mtas[-1])
    sender = STREAM_LOGINS[pool]
    tag = "rel-failover-%s-%s" % (pool[:3], uuid.uuid4().hex[:10])
    secret = password(sender)
    gate = Gate()
    submitters = [Submitter(lab, secret, pool, sender) for _index in range(SENDERS)]
    deadline = time.monotonic() + 900
    failures: List[str] = []

    def work(index: int) -> None:
        try:
            for number in range(index, total, SENDERS):
                gate.take()
                submitters[index].send(message(tag, number, lab.spread_recipient("failover", number), sender),
                                       deadline)
                gate.done()
        except AssertionError as exc:
            failures.append(str(exc))
        finally:
            submitters[index].close()

    def in_background(*args: str) -> threading.Thread:
        thread = threading.Thread(target=docker, args=args, kwargs={"timeout": 180})
        thread.start()
        return thread

    third, sixth = total // 3, total // 6
    threads = [threading.Thread(target=work, args=(i,)) for i in range(SENDERS)]
    started = time.monotonic()
    stopped_at = down_from = restarted_at = -1
    try:
        for thread in threads:
            thread.start()
        gate.open_to(third)
        stopped_at = gate.wait_sent(third, threads)
        stopping = in_background("stop", "-t", "90", victim)
        gate.open_to(third + sixth)              # in flight while the MTA shuts down
        stopping.join()
        gate.wait_sent(third + sixth, threads)
        assert not container_running(victim), "%s still runs after docker stop" % victim
        down_from = gate.sent
        gate.open_to(2 * third)                  # sent while the MTA is down
        gate.wait_sent(2 * third, threads)
        restarted_at = gate.sent
        starting = in_background("start", victim)
        gate.open_to(total)          # in flight while it comes back
        starting.join()
    finally:
        gate.open_to(total)
        docker("start", victim, timeout=120)
        for thread in threads:
            thread.join(timeout=900)
    submit_seconds = time.monotonic() - started
    assert not failures, failures
    assert gate.sent == total
    assert 0 < stopped_at < down_from < restarted_at < total, "the MTA was not stopped mid-run"

    ids = wait_for_ids(lab, tag, total, DELIVERY_DEADLINE + total * pacing_seconds(lab, mtas))
    counts = Counter(ids)
    wanted = {"<%s-%05d@kibamail.com>" % (tag, n) for n in range(total)}
    missing = sorted(wanted - set(counts))
    doubled = sorted(i for i, c in counts.items() if c > 1)
    assert not missing, "%d messages never arrived, for example %s" % (len(missing), missing[:5])
    if doubled:
        receiver = lab.data["receiver"]
        copies = receiver_copies(lab.container(receiver["host"]), receiver["store_dir"], doubled[:5])
        raise AssertionError("%d messages arrived more than once; the copies of the first %d, newest Received "
                             "first: %s" % (len(doubled), len(copies), json.dumps(copies, indent=1)))
    assert set(counts) == wanted
    figures.update(messages=total, pacing_seconds=pacing_seconds(lab, mtas), connections=SENDERS, mta_stopped=victim,
                   stopped_after=stopped_at, sent_while_down=restarted_at - down_from, started_after=restarted_at,
                   client_retries=sum(s.retries for s in submitters), submit_seconds=round(submit_seconds, 1),
                   delivered_once=len(counts), missing=0, doubled=0)


# ---------------------------------------------------------------- an orderly stop drains

IN_FLIGHT_MESSAGES = 8
DRAIN_FLAG = "/run/kibamail-postfix-drain/draining"


def mta_of(submitter: Submitter, lab: Lab) -> str:
    """The lab host whose MTA answered this session's EHLO (its first line is the MTA's name)."""
    name = submitter.client.ehlo_resp.decode().splitlines()[0].strip().split(".")[0]
    assert name in lab.hosts_with_role("mta_transactional"), "EHLO came from %r" % name
    return name


def test_orderly_stop_drains_sessions_and_deliveries(lab: Lab, figures: Dict[str, Any]) -> None:
    """An MTA stopped with deliveries in flight and a client session open: the stop waits for the
    deliveries (the receiver answers 250 seconds after storing, so a stop that kills them makes the
    MTA send them again after its restart), and the open session gets 421 at its next message, so
    the client sends that message elsewhere, once. Every message must arrive exactly once."""
    receiver = lab.data["receiver"]
    prefix = receiver.get("slow_prefix")
    assert prefix, "lab.json names no slow recipient prefix (receiver.slow_prefix)"
    tag = "rel-drain-%s" % uuid.uuid4().hex[:10]
    recipient = "%sdrain@%s" % (prefix, receiver["domain"])
    store = (lab.container(receiver["host"]), receiver["store_dir"])
    secret = password()
    session = Submitter(lab, secret)
    session.send(message(tag, 0, recipient), time.monotonic() + 60)
    victim = lab.container(mta_of(session, lab))
    for number in range(1, IN_FLIGHT_MESSAGES):
        session.send(message(tag, number, recipient), time.monotonic() + 60)
    deadline = time.monotonic() + 30
    while len(receiver_message_ids(*store, tag)) < IN_FLIGHT_MESSAGES and time.monotonic() < deadline:
        time.sleep(0.2)
    in_flight = int(postfix_in(victim, "count", wait=0) or 0)
    assert in_flight > 0, "no delivery of %s was in flight (is the receiver slow for %s*?)" % (victim, prefix)

    started = time.monotonic()
    stopping = threading.Thread(target=docker, args=("stop", "-t", "90", victim), kwargs={"timeout": 180})
    stopping.start()
    last = message(tag, IN_FLIGHT_MESSAGES, recipient)
    try:
        deadline = time.monotonic() + 20
        while docker("exec", victim, "test", "-e", DRAIN_FLAG, check=False).returncode != 0:
            assert time.monotonic() < deadline, "%s did not start draining (no %s)" % (victim, DRAIN_FLAG)
            assert stopping.is_alive(), "%s stopped without draining" % victim
            time.sleep(0.1)
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            session.client.send_message(last)
        assert refused.value.smtp_code == 421, "the open session got %s, not 421" % refused.value
        session.close()
        elsewhere = Submitter(lab, secret)
        try:
            elsewhere.send(last, time.monotonic() + 60)
            other = mta_of(elsewhere, lab)
        finally:
            elsewhere.close()
        stopping.join()
        stop_seconds = time.monotonic() - started
    finally:
        stopping.join()
        docker("start", victim, timeout=120)
    assert other != victim
    deadline = time.monotonic() + 120
    while int(postfix_in(victim, "count") or 0) and time.monotonic() < deadline:
        time.sleep(1)
    ids = wait_for_ids(lab, tag, IN_FLIGHT_MESSAGES + 1, DELIVERY_DEADLINE)
    time.sleep(2 * float(receiver.get("slow_seconds", 4)))     # a second copy would come this late
    counts = Counter(receiver_message_ids(*store, tag))
    assert len(ids) >= IN_FLIGHT_MESSAGES + 1
    doubled = sorted(i for i, c in counts.items() if c > 1)
    assert not doubled, "sent twice: %s" % json.dumps(receiver_copies(*store, doubled[:3]), indent=1)
    assert len(counts) == IN_FLIGHT_MESSAGES + 1, counts
    figures.update(mta_stopped=victim, deliveries_in_flight_at_stop=in_flight, stop_seconds=round(stop_seconds, 1),
                   open_session_reply=421, resent_through=other, delivered_once=len(counts), doubled=0)


# ---------------------------------------------------------------- restart with a queue

DEFER = r'''
import os, subprocess, sys
action = sys.argv[1]
main = "/etc/postfix/main.cf"
if action == "hold":
    subprocess.run(["cp", "-p", main, main + ".kb-reliability"], check=True)
    services = subprocess.run(["postconf", "-M"], capture_output=True, text=True, check=True).stdout
    names = sorted({f[0] for f in (line.split() for line in services.splitlines()) if len(f) > 1 and f[1] == "unix"})
    transports = [n for n in names if n.startswith("kb-")] + ["smtp", "relay"]
    subprocess.run(["postconf", "-e", "defer_transports=" + " ".join(transports)], check=True)
    subprocess.run(["postfix", "reload"], check=True)
elif action == "release":
    if os.path.exists(main + ".kb-reliability"):
        os.replace(main + ".kb-reliability", main)
    subprocess.run(["postfix", "reload"], check=True)
    subprocess.run(["postqueue", "-f"], check=True)
elif action == "count":
    out = subprocess.run(["postqueue", "-j"], capture_output=True, text=True, check=True).stdout
    print(len([line for line in out.splitlines() if line.strip()]))
'''


def postfix_in(container: str, action: str, wait: float = 90) -> str:
    """Run an action; after a restart Postfix may need a moment, so retry until wait runs out."""
    deadline = time.monotonic() + wait
    while True:
        proc = docker("exec", "-i", container, "python3", "-c", DEFER, action, timeout=120, check=False)
        if proc.returncode == 0:
            return proc.stdout.decode().strip()
        if time.monotonic() > deadline:
            raise AssertionError("%s on %s failed: %s" % (action, container, proc.stderr.decode()[-2000:]))
        time.sleep(2)


def test_restarted_mtas_deliver_their_queue(lab: Lab, figures: Dict[str, Any]) -> None:
    mtas = [lab.container(m) for m in lab.hosts_with_role("mta_transactional")]
    tag = "rel-restart-%s" % uuid.uuid4().hex[:10]
    recipient = "restart@%s" % lab.data["receiver"]["domain"]
    queued: List[Tuple[str, int]] = []
    held: List[str] = []
    try:
        for mta in mtas:
            postfix_in(mta, "hold", wait=0)
            held.append(mta)
        submitter = Submitter(lab, password())
        try:
            for number in range(RESTART_MESSAGES):
                submitter.send(message(tag, number, recipient), time.monotonic() + 120)
        finally:
            submitter.close()
        time.sleep(3)
        queued = [(mta, int(postfix_in(mta, "count") or 0)) for mta in mtas]
        assert sum(n for _m, n in queued) >= RESTART_MESSAGES, "mail did not wait in the queues: %s" % queued
        assert receiver_message_ids(lab.container(lab.data["receiver"]["host"]),
                                    lab.data["receiver"]["store_dir"], tag) == []
        for mta in mtas:
            docker("restart", "-t", "20", mta, timeout=180)
        assert [(mta, int(postfix_in(mta, "count") or 0)) for mta in mtas] == queued, "the queue changed across restart"
    finally:
        for mta in held:
            postfix_in(mta, "release")
    ids = wait_for_ids(lab, tag, RESTART_MESSAGES, DELIVERY_DEADLINE)
    counts = Counter(ids)
    assert len(counts) == RESTART_MESSAGES and set(counts.values()) == {1}, counts
    figures.update(messages=RESTART_MESSAGES, queued_per_mta=dict(queued), restarted=mtas, delivered_once=len(counts))
