# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The processor's figures in the Prometheus text exposition format (version 0.0.4).

``kb-bounce metrics --output FILE`` writes them for node exporter's textfile
collector. Every figure is read from the store and the directories on each
run, so the counters are totals since the store was created (a restored store
may move them back: Prometheus' rate() treats that as a counter reset).

Labels are bounded: ``customer`` is a configured customer domain (or ``none``
for the platform's own bounce domain, ``other`` for one not configured when a
customer map is set), ``class`` one of classify.CLASSES, ``reason`` one of the
classifier's reasons (docs/bounces.md) or ``other``: never text of a message.

Every configured customer has its event series from the first run, at 0 for
each class and each reason that class can carry (:data:`CLASS_REASONS`):
Prometheus' increase() counts from a series' first sample, so a series that
appeared with a customer's first complaint would not count that complaint.
"""
from __future__ import annotations

import math
import os
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Tuple

from kb_bounce import backup, classify, config as configmod, parse
from kb_bounce.store import Store

NO_CUSTOMER = "none"
OTHER = "other"

Labels = Tuple[Tuple[str, str], ...]


@dataclass
class Family:
    """One metric: its name, type, help text and samples (labels, value)."""

    name: str
    kind: str
    help: str
    samples: List[Tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> "Family":
        """Append a sample; labels in the order given."""
        self.samples.append((tuple(labels.items()), value))
        return self


def escape_label_value(value: str) -> str:
    """Label values escape backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text escapes backslash and line feed (a double quote stays)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, NaN and infinities as Prometheus spells them."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2 ** 53:
        return "%d" % value
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The exposition text: HELP and TYPE once per family, then its samples, sorted by labels."""
    lines: List[str] = []
    for family in families:
        lines.append("# HELP %s %s" % (family.name, escape_help(family.help)))
        lines.append("# TYPE %s %s" % (family.name, family.kind))
        for labels, value in sorted(family.samples):
            text = ",".join('%s="%s"' % (k, escape_label_value(v)) for k, v in labels)
            lines.append("%s%s %s" % (family.name, "{%s}" % text if text else "", format_value(value)))
    return "\n".join(lines) + "\n"


# The reasons the classifier gives each class (classify.classify): a hard bounce only a hard
# reason, a delay only "delayed", a soft bounce any other bounce reason, a complaint its own list.
CLASS_REASONS = {
    classify.HARD: classify.HARD_REASONS,
    classify.SOFT: classify.BOUNCE_REASONS - classify.HARD_REASONS - {"delayed"},
    classify.DELAY: frozenset(("delayed",)),
    classify.COMPLAINT: classify.COMPLAINT_REASONS,
}


def customer_label(domain: Optional[str], config: configmod.Config) -> str:
    """The customer label of an event: bounded by the configured customers when there are any."""
    if not domain:
        return NO_CUSTOMER
    domain = domain.lower()
    if config.customers and domain not in config.customers.values():
        return OTHER
    return domain


def reason_label(klass: str, reason: Optional[str]) -> str:
    """The reason label: a known reason of the classifier, else ``other``."""
    known = classify.COMPLAINT_REASONS if klass == classify.COMPLAINT else classify.BOUNCE_REASONS
    return reason if reason in known else OTHER


def event_family(db: Store, config: configmod.Config) -> Family:
    """kb_bounce_events_total by customer, class and reason."""
    totals: Counter = Counter({(customer, klass, reason): 0
                               for customer in set(config.customers.values())
                               for klass, reasons in CLASS_REASONS.items() for reason in reasons})
    for customer, klass, reason, number in db.event_totals():
        klass = klass if klass in classify.CLASSES else OTHER
        totals[(customer_label(customer, config), klass, reason_label(klass, reason))] += number
    family = Family("kb_bounce_events_total", "counter",
                    "Bounce, delay and complaint events stored (one per recipient and notice), by customer domain, "
                    "class and reason.")
    for (customer, klass, reason), number in totals.items():
        family.add(number, customer=customer, **{"class": klass}, reason=reason)
    return family


def store_families(db: Store, config: configmod.Config, now: float) -> List[Family]:
    """Everything the store tells."""
    messages = Family("kb_bounce_messages_total", "counter",
                      "Messages ingested, by kind: report (gave events), ignored (auto-reply, success-only DSN), "
                      "unparseable (quarantined).")
    totals = db.message_totals()
    for kind in (parse.REPORT, parse.IGNORED, parse.UNPARSEABLE):
        messages.add(totals.get(kind, 0), kind=kind)
    backlog = db.backlog()
    oldest = backlog["oldest_received_at"]
    return [
        event_family(db, config),
        messages,
        Family("kb_bounce_webhook_backlog_events", "gauge",
               "Events not yet delivered to the webhook.").add(backlog["pending"] or 0),
        Family("kb_bounce_webhook_failing_events", "gauge",
               "Undelivered events whose last delivery attempt failed.").add(backlog["failing"] or 0),
        Family("kb_bounce_webhook_oldest_undelivered_age_seconds", "gauge",
               "Age of the oldest undelivered event (0 when none waits).").add(
                   round(max(0.0, now - oldest), 3) if oldest is not None else 0),
        Family("kb_bounce_webhook_last_success_timestamp_seconds", "gauge",
               "Unix time of the last event the webhook accepted (0: never).").add(
                   backlog["last_delivered_at"] or 0),
        # With the newest copy's time, the start of KbBounceBackupStale: a store younger than the
        # alert's age has not missed a copy yet.
        Family("kb_bounce_store_created_timestamp_seconds", "gauge",
               "Unix time the events database was created (for one older than this figure: its oldest "
               "message).").add(round(db.created_at() or 0, 3)),
    ]


def quarantine_family(directory: str) -> List[Family]:
    """Messages kept aside for a person (files in the quarantine directory, whatever put them there)."""
    try:
        number = sum(1 for name in os.listdir(directory) if name.endswith(".eml"))
    except OSError:
        return []
    return [Family("kb_bounce_quarantine_messages", "gauge",
                   "Messages in the quarantine directory waiting for a person.").add(number)]


def backup_families(directory: str) -> List[Family]:
    """The newest copy of the store and how many are kept."""
    if not directory:
        return []
    try:
        copies = backup.copies(directory)
    except OSError:
        copies = []
    return [
        Family("kb_bounce_backup_last_success_timestamp_seconds", "gauge",
               "Unix time of the newest copy of the store in the backup directory (0: none).").add(
                   copies[-1][0] if copies else 0),
        Family("kb_bounce_backup_copies", "gauge", "Copies of the store in the backup directory.").add(len(copies)),
    ]


def collect(config: configmod.Config, backup_dir: str = "", now: Optional[float] = None) -> List[Family]:
    """Every family (the backup ones when backup_dir is given); kb_bounce_store_up: the store was read."""
    now = time.time() if now is None else now
    families: List[Family] = []
    try:
        db = Store(config.database)
        try:
            families.extend(store_families(db, config, now))
        finally:
            db.close()
        up = 1
    except sqlite3.Error:
        families, up = [], 0
    families.append(Family("kb_bounce_store_up", "gauge", "1 when the events database could be read.").add(up))
    families.extend(quarantine_family(config.quarantine_dir))
    families.extend(backup_families(backup_dir))
    families.append(Family("kb_bounce_metrics_generated_timestamp_seconds", "gauge",
                           "Unix time these figures were taken.").add(round(now, 3)))
    return families


def text(config: configmod.Config, backup_dir: str = "", now: Optional[float] = None) -> str:
    """The exposition text of every family."""
    return render(collect(config, backup_dir, now))
