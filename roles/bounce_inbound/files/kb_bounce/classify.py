# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bounce taxonomy: turn a status and a diagnostic into a class.

Classes: ``hard`` (stop sending to this address), ``soft`` (the address may
be fine; retry later or fix the cause), ``delay`` (a warning: the message is
not delivered yet and the reporting MTA keeps trying; not a bounce) and
``complaint`` (the recipient reported the message).  Each event also gets a ``reason``; docs/bounces.md
lists them.  The enhanced status code (RFC 3463) decides first; the SMTP
reply code and then the diagnostic text decide when it is missing or vague.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

HARD = "hard"
SOFT = "soft"
DELAY = "delay"
COMPLAINT = "complaint"

ENHANCED_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
SMTP_CODE_RE = re.compile(r"(?<![\d.])([245][0-5]\d)(?=[ \-:]|$)")

# Enhanced codes whose meaning overrides the class of their first digit.
SOFT_PERMANENT = {
    "5.2.2": "mailbox-full",
    "5.2.3": "message-too-large",
    "5.3.4": "message-too-large",
    "5.2.0": "mailbox-unavailable",
    # 5.1.7 / 5.1.8: the *sender's* address (our return path) was refused, not the recipient's.
    "5.1.7": "sender-rejected",
    "5.1.8": "sender-rejected",
    # Delivery time expired: the destination was unreachable for days; the address may be fine.
    "5.4.7": "expired",
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
    (re.compile(r"(over ?quota|quota exceeded|exceeded (its|the|his|her|their)? ?quota|mailbox (is )?full|"
                r"mailbox size limit exceeded|full mailbox|insufficient (disk |storage )?space|"
                r"exceeded storage|storage (allocation|limit|quota) exceeded|quotaexceeded|"
                r"not enough (storage|space) in (the )?mailbox)", re.I),
     SOFT, "mailbox-full"),
    (re.compile(r"(message (is )?too (large|big)|size exceeds|exceeds (the )?(maximum )?(message )?size)", re.I),
     SOFT, "message-too-large"),
    # About our return path, not the recipient: before the "address rejected" / "domain not found" rules.
    (re.compile(r"(sender address rejected|sender verif(y|ication) failed|sender (domain|address) "
                r"(not found|unknown|must exist|does not exist)|unroutable sender)", re.I),
     SOFT, "sender-rejected"),
    (re.compile(r"(spam|blocked|blacklist|block ?list|listed at|reputation|rejected for policy|poor reputation)", re.I),
     SOFT, "spam-block"),
    (re.compile(r"(spf|dkim|dmarc)[^.]{0,40}(fail|reject)", re.I), SOFT, "auth-failure"),
    (re.compile(r"(host or domain name not found|domain (does not|doesn't) exist|no mx|unrouteable|"
                r"unroutable|name service error|domain not found|null mx)", re.I), HARD, "bad-domain"),
    (re.compile(r"(account (has been |is )?(disabled|suspended|closed|deactivated|inactive|expired)|"
                r"mailbox (has been |is )?(disabled|inactive|suspended|closed|deactivated)|"
                r"(user|recipient) (account )?(is )?(disabled|suspended|inactive))", re.I),
     HARD, "mailbox-disabled"),
    (re.compile(r"(user unknown|unknown user|no such (user|mailbox|recipient|person|account|address)|"
                r"(user|mailbox|address|account|recipient) (does not|doesn't|no longer) exists?|"
                r"not a valid (mailbox|recipient|address|user)|invalid (mailbox|recipient|address|user)|"
                r"(mailbox|recipient|user|address) not found|no mailbox (here|by that name)|"
                r"(recipient|mailbox|address|user) (is )?unknown|"
                r"unknown (recipient|local part|address|mailbox|account)|"
                r"doesn't have an? [\w.-]+ account|address rejected|mailbox unavailable|"
                r"unknown or illegal alias|recipientnotfound|not listed in (the )?(domino directory|"
                r"public (name and )?address book|names\.nsf)|not our customer)", re.I),
     HARD, "bad-mailbox"),
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
    """The first failure (4.x.x / 5.x.x) enhanced status code in a text, else the first 2.x.x, else None.

    Session transcripts quote the greetings and 250 replies before the one
    that failed; the failure is what the notice is about.
    """
    match = _first_failure(ENHANCED_RE, text)
    if match is None:
        return None
    return "%s.%s.%s" % (match.group(1), int(match.group(2)), int(match.group(3)))


def find_smtp_code(text: str) -> Optional[int]:
    """The first failure (4xx / 5xx) SMTP reply code in a text, else the first 2xx, else None."""
    match = _first_failure(SMTP_CODE_RE, text)
    return int(match.group(1)) if match else None


def _first_failure(pattern: "re.Pattern[str]", text: str) -> Optional["re.Match[str]"]:
    first = None
    for match in pattern.finditer(text or ""):
        if match.group(1)[0] in "45":
            return match
        first = first or match
    return first


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
        return Verdict(DELAY, "delayed")
    text_verdict = by_text(diagnostic)
    if status and status[0] == "4":
        return Verdict(SOFT, DETAIL_REASONS.get(status, "transient"))
    if status and status[0] == "5" and not status.startswith("5.0."):
        return _permanent(status, text_verdict)
    if smtp_code is not None and 400 <= smtp_code < 500:
        return Verdict(SOFT, text_verdict.reason if text_verdict and text_verdict.klass == SOFT else "transient")
    if text_verdict is not None:
        return text_verdict
    return Verdict(HARD, "other")


def _permanent(status: str, text_verdict: Optional[Verdict]) -> Verdict:
    if text_verdict is not None and text_verdict.reason == "sender-rejected":
        return text_verdict
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
        if text_verdict is not None and text_verdict.reason != "transient":
            return text_verdict
        return Verdict(SOFT, reason)
    return Verdict(HARD, reason)
