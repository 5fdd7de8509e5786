# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bounce taxonomy: turn a status and a diagnostic into a class.

Classes: ``hard`` (stop sending to this address), ``soft`` (the address may
be fine; retry later or fix the cause) and ``complaint`` (the recipient
reported the message).  Each event also gets a ``reason``; docs/bounces.md
lists them.  The enhanced status code (RFC 3463) decides first; the SMTP
reply code and then the diagnostic text decide when it is missing or vague.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

HARD = "hard"
SOFT = "soft"
COMPLAINT = "complaint"

ENHANCED_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
SMTP_CODE_RE = re.compile(r"(?<![\d.])([245][0-5]\d)(?=[ \-:]|$)")

# Enhanced codes whose meaning overrides the class of their first digit.
SOFT_PERMANENT = {
    "5.2.2": "mailbox-full",
    "5.2.3": "message-too-large",
    "5.3.4": "message-too-large",
    "5.2.0": "mailbox-unavailable",
}
HARD_SUBJECTS = {
    "1": "bad-mailbox",
    "2": "mailbox-disabled",
    "4": "routing",
}
SUBJECT_REASONS = {
    "0": "other",
    "1": "bad-mailbox",
    "2": "mailbox-status",
    "3": "mail-system",
    "4": "routing",
    "5": "protocol",
    "6": "content",
    "7": "policy",
}
DETAIL_REASONS = {
    "5.1.2": "bad-domain",
    "5.4.4": "bad-domain",
    "5.1.6": "mailbox-moved",
    "5.2.1": "mailbox-disabled",
    "4.2.2": "mailbox-full",
    "5.7.1": "policy",
    "5.7.23": "auth-failure",
    "5.7.25": "auth-failure",
    "5.7.26": "auth-failure",
    "5.7.27": "auth-failure",
    "5.7.28": "spam-block",
    "5.7.350": "policy",
    "5.7.606": "spam-block",
    "5.7.708": "spam-block",
}

# Diagnostic text when no usable enhanced code is present: first match wins.
TEXT_RULES = (
    (re.compile(r"(over ?quota|quota exceeded|mailbox (is )?full|insufficient (disk )?space|exceeded storage)", re.I),
     SOFT, "mailbox-full"),
    (re.compile(r"(message (is )?too (large|big)|size exceeds|exceeds (the )?(maximum )?size)", re.I),
     SOFT, "message-too-large"),
    (re.compile(r"(spam|blocked|blacklist|block ?list|listed at|reputation|rejected for policy|poor reputation)", re.I),
     SOFT, "spam-block"),
    (re.compile(r"(spf|dkim|dmarc)[^.]{0,40}(fail|reject)", re.I), SOFT, "auth-failure"),
    (re.compile(r"(host or domain name not found|domain (does not|doesn't) exist|no mx|unrouteable|"
                r"unroutable|name service error|domain not found|null mx)", re.I), HARD, "bad-domain"),
    (re.compile(r"(user unknown|unknown user|no such (user|mailbox|recipient)|user (does not|doesn't) exist|"
                r"(mailbox|address|account|recipient) (does not|doesn't) exist|not a valid (mailbox|recipient)|"
                r"invalid (mailbox|recipient)|mailbox not found|recipient not found|no mailbox here|"
                r"unknown (recipient|local part|address)|doesn't have an? [\w.-]+ account|address rejected|"
                r"mailbox unavailable|user not found|unknown or illegal alias)", re.I),
     HARD, "bad-mailbox"),
    (re.compile(r"(account (has been )?(disabled|suspended|closed|deactivated)|mailbox (is )?(disabled|inactive))", re.I),
     HARD, "mailbox-disabled"),
    (re.compile(r"(temporar|try again|deferr|delayed|timed? ?out|greylist|too many connections|rate limit|"
                r"will retry|still trying)", re.I),
     SOFT, "transient"),
)


@dataclass(frozen=True)
class Verdict:
    """The class and reason of one bounce."""

    klass: str
    reason: str


def find_enhanced(text: str) -> Optional[str]:
    """The first enhanced status code (x.y.z) in a text, if any."""
    match = ENHANCED_RE.search(text or "")
    if match is None:
        return None
    return "%s.%s.%s" % (match.group(1), int(match.group(2)), int(match.group(3)))


def find_smtp_code(text: str) -> Optional[int]:
    """The first SMTP reply code (2xx/4xx/5xx) in a text, if any."""
    match = SMTP_CODE_RE.search(text or "")
    return int(match.group(1)) if match else None


def by_text(diagnostic: str) -> Optional[Verdict]:
    """Classify by the words of the diagnostic alone."""
    for pattern, klass, reason in TEXT_RULES:
        if pattern.search(diagnostic or ""):
            return Verdict(klass, reason)
    return None


def classify(status: Optional[str], smtp_code: Optional[int], diagnostic: str, action: str = "failed") -> Verdict:
    """Classify one failed (or delayed) recipient."""
    action = (action or "failed").lower()
    if action == "delayed":
        return Verdict(SOFT, "delayed")
    text_verdict = by_text(diagnostic)
    if status and status[0] == "4":
        return Verdict(SOFT, DETAIL_REASONS.get(status, "transient"))
    if status and status[0] == "5" and not status.startswith("5.0."):
        return _permanent(status, text_verdict)
    if smtp_code is not None and 400 <= smtp_code < 500:
        return Verdict(SOFT, text_verdict.reason if text_verdict and text_verdict.klass == SOFT else "transient")
    if text_verdict is not None:
        return text_verdict
    if status or (smtp_code is not None and smtp_code >= 500):
        return Verdict(HARD, "other")
    return Verdict(SOFT, "unknown") if action == "delayed" else Verdict(HARD, "other")


def _permanent(status: str, text_verdict: Optional[Verdict]) -> Verdict:
    if status in SOFT_PERMANENT:
        return Verdict(SOFT, SOFT_PERMANENT[status])
    subject = status.split(".")[1]
    if status in DETAIL_REASONS:
        reason = DETAIL_REASONS[status]
    else:
        reason = SUBJECT_REASONS.get(subject, "other")
    if subject == "1" and text_verdict is not None and text_verdict.reason == "bad-domain":
        return text_verdict
    if subject in HARD_SUBJECTS:
        return Verdict(HARD, reason if status in DETAIL_REASONS else HARD_SUBJECTS[subject])
    if subject == "7":
        if text_verdict is not None and text_verdict.reason in ("bad-mailbox", "bad-domain", "mailbox-disabled"):
            return text_verdict
        if text_verdict is not None and text_verdict.klass == SOFT and reason == "policy":
            return Verdict(SOFT, text_verdict.reason)
        return Verdict(SOFT, reason)
    if subject in ("3", "5", "6"):
        if text_verdict is not None and text_verdict.klass == HARD:
            return text_verdict
        return Verdict(SOFT, reason)
    return Verdict(HARD, reason)
