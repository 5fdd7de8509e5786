# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bounce taxonomy: turn a status and a diagnostic into a class and a reason.

Classes: ``hard`` (stop sending to this address), ``soft`` (the address may
be fine; retry later or fix the cause), ``delay`` (a warning: the message is
not delivered yet and the reporting MTA keeps trying; not a bounce) and
``complaint`` (the recipient reported the message).

Only a permanent failure whose reason is that the mailbox or the domain
does not exist, or no longer accepts mail, is hard (:data:`HARD_REASONS`).
Everything else, whatever the first digit of the reply, is soft: a 5xx for
spam, a block list, a rate limit, a full mailbox, a suspended account, a
missing PTR record or a TLS requirement says nothing bad about the address.

The words of the diagnostic decide first (they are the receiving system's
own explanation); then the enhanced status code (RFC 3463); then the SMTP
reply code.  docs/bounces.md lists every reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

HARD = "hard"
SOFT = "soft"
DELAY = "delay"
COMPLAINT = "complaint"

# The reasons that are hard when the failure is permanent (5xx, 5.x.x or a final text notice).
HARD_REASONS = frozenset(("bad-mailbox", "bad-domain", "mailbox-moved", "not-accepting"))

# An enhanced status code: class, subject 0-7, detail. Not inside a version string
# ("v4.6.1"), a dotted number ("4.16.55.1") or a word.
ENHANCED_RE = re.compile(r"(?<![\w.])([245])\.([0-7])\.(\d{1,3})(?![\d.]|[A-Za-z])")
SMTP_CODE_RE = re.compile(r"(?<![\w.])([245][0-5]\d)(?=[ \-:,;)\]]|$)", re.M)
# IPv6 literals and clock times, blanked before looking for codes ("2001:db8:452::25", "07:55:00").
_COLON_GROUPS_RE = re.compile(r"(?i)(?:IPv6:)?[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}")
_IPV4_RE = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")

# Enhanced codes and what they mean (RFC 3463, RFC 7505, RFC 7372, common provider codes).
STATUS_REASONS = {
    "5.1.0": "bad-mailbox", "5.1.1": "bad-mailbox", "5.1.3": "bad-mailbox",
    "5.1.2": "bad-domain", "5.4.4": "bad-domain",
    "5.1.4": "filtered",
    "5.1.6": "mailbox-moved", "5.7.17": "mailbox-moved", "5.7.18": "mailbox-moved",
    "5.1.7": "sender-rejected", "5.1.8": "sender-rejected", "5.7.27": "sender-rejected",
    "5.1.9": "mail-system",
    "5.1.10": "not-accepting", "5.3.2": "not-accepting",
    "5.2.0": "filtered", "5.2.1": "suspended", "5.2.4": "filtered", "5.7.13": "suspended",
    "5.2.2": "mailbox-full", "4.2.2": "mailbox-full",
    "5.2.3": "message-too-large", "5.3.4": "message-too-large", "5.7.16": "message-too-large",
    "5.4.7": "expired", "4.4.7": "expired",
    "5.7.0": "policy", "5.7.1": "policy", "5.7.9": "policy", "5.7.350": "policy",
    "5.7.10": "tls-required", "5.7.11": "tls-required", "4.7.10": "tls-required",
    "5.7.20": "auth-failure", "5.7.21": "auth-failure", "5.7.22": "auth-failure", "5.7.23": "auth-failure",
    "5.7.24": "auth-failure", "5.7.26": "auth-failure", "5.7.509": "auth-failure", "5.7.515": "auth-failure",
    "5.7.25": "blocked", "4.7.25": "blocked", "5.7.606": "blocked", "5.7.708": "blocked", "5.7.511": "blocked",
    "5.7.28": "rate-limited", "4.7.28": "rate-limited",
}
SUBJECT_REASONS = {
    "0": "other", "1": "bad-mailbox", "2": "filtered", "3": "mail-system", "4": "routing",
    "5": "protocol", "6": "content", "7": "policy",
}

_MAILBOX = r"(?:user|mailbox|address|account|recipient|e-?mail account|e-?mail address|addressee)"
# Diagnostic words, first match wins. Order matters: "Sender address rejected: ... not found" is
# about our return path; "mailbox full" beats "does not accept"; explicit non-existence beats
# the generic "blocked"/"spam" words that some rejections append.
TEXT_RULES: Tuple[Tuple["re.Pattern[str]", str], ...] = tuple((re.compile(p, re.I), r) for p, r in (
    (r"(sender address rejected|sender verif(y|ication) failed|sender (domain|address) (not found|unknown|"
     r"must exist|does not exist)|unroutable sender|sender address has null mx|"
     r"rejected by header based anti-spoofing|anti-spoofing policy)", "sender-rejected"),
    (r"(over ?quota|quota exceeded|exceeded (its|the|his|her|their)? ?(storage )?quota|mailbox (is )?full|"
     r"mailbox size limit exceeded|full mailbox|insufficient (disk |storage )?space|mailbox exceeds|"
     r"exceeds (its |the )?(storage )?quota|exceeded storage|storage (allocation|limit|quota) exceeded|"
     r"quotaexceeded|not enough (storage|space) in (the )?mailbox|their mailbox is full|mailbox has exceeded)",
     "mailbox-full"),
    (r"(message (is )?too (large|big)|size exceeds|exceeds (the )?(maximum )?(message )?size|"
     r"message length exceeds)", "message-too-large"),
    (r"(has moved|moved permanently|no forwarding address|mailbox owner has changed)", "mailbox-moved"),
    (r"(null mx|does not accept (e-?)?mail|doesn't accept (e-?)?mail|not accepting (e-?)?mail|"
     r"no longer accepts? (e-?)?mail|accepts no mail)", "not-accepting"),
    (r"(account (has been |is |was )?(disabled|suspended|locked|frozen|inactive|deactivated|on hold)|"
     r"(mailbox|user|recipient) (account )?(has been |is |was )?(disabled|inactive|suspended|locked|"
     r"frozen|deactivated)|account suspended|suspended account|inactive (e-?mail )?(address|account|user)|"
     r"email account that you tried to reach is (disabled|inactive))", "suspended"),
    (r"(host or domain name not found|domain (does not|doesn't) exist|no mx (record )?(for|found)|"
     r"unrouteable|unroutable|name service error|domain not found|couldn't find any host|"
     r"could not find any host|host not found|host unknown|unknown host|no such domain|domain is not valid|"
     r"all relevant mx records point to non-existent hosts|mx records point to non-existent)", "bad-domain"),
    (r"(user unknown|unknown user|no such (user|mailbox|recipient|person|account|address|local user)|"
     + _MAILBOX + r" (does not|doesn't|no longer) exists?|" + _MAILBOX + r" (is )?not exists?|"
     r"not a valid (mailbox|recipient|address|user)|invalid (mailbox|recipient|address|user)|"
     r"(mailbox|recipient|user|address|account) not found|no mailbox (here|by that name)|"
     r"(recipient|mailbox|address|user) (is )?unknown|unknown (recipient|local part|address|mailbox|account)|"
     r"doesn't have an? [\w.-]+ account|unknown or illegal alias|recipientnotfound|"
     r"not listed in (the )?(domino directory|public (name (and|&) )?address book|names\.nsf)|"
     r"not our customer|recipient address rejected: access denied|recipient rejected|"
     r"address (is )?(invalid|not valid|unknown)|bad destination mailbox|"
     r"account that you tried to reach does not exist|mailbox (is )?not available|"
     r"(no|unknown) such (mailbox|user))", "bad-mailbox"),
    (r"(rate limit|rate-limit|ratelimit|too many (messages|connections|recipients|mails|emails)|"
     r"unusual rate|unexpected volume|throttl|slow down|sending (rate|quota)|exceeded (the )?(hourly|daily) "
     r"(limit|quota)|try again later.{0,40}(volume|rate))", "rate-limited"),
    (r"(starttls|must issue a starttls|tls (is )?required|encryption (is )?(required|needed)|requires? tls|"
     r"tls connection required)", "tls-required"),
    (r"((spf|dkim|dmarc)[^.]{0,40}(fail|reject|policy|not pass|alignment)|unauthenticated (mail|email|sender)|"
     r"authentication (check|checks) failed)", "auth-failure"),
    (r"(ptr record|reverse dns|rdns|reverse lookup|no reverse|blacklist|block ?list|blocklist|listed (at|on|in)|"
     r"dnsbl|\brbl\b|spamhaus|reputation|banned sending ip|client host .{0,60}blocked|"
     r"traffic not accepted from this ip|ip (address )?(is )?(blocked|banned|blacklisted)|"
     r"access denied, banned|blocked using|\(\S+:blocked\)|envelope blocked|administrative prohibition)",
     "blocked"),
    (r"(spam|unsolicited|junk|bulk mail|content rejected|message content|virus|malware|phishing)", "spam-block"),
    (r"\bblocked\b", "blocked"),
    (r"(not have permission to post|not allowed to post|you may not have permission|"
     r"policy|not authori[sz]ed|relay(ing)? (access )?denied|relay not permitted|prohibited|"
     r"not permitted|refused|denied)", "policy"),
    (r"(filtered|rejected by (the )?recipient|recipient.{0,20}(filter|rule))", "filtered"),
    (r"(mailbox unavailable|mailbox not available)", "bad-mailbox"),
    (r"(delivery time expired|message expired|retry time(out)? (not reached|exceeded)|too long in queue|"
     r"could not be delivered for \d+ days|expired after)", "expired"),
    (r"(temporar|try again|deferr|delayed|timed? ?out|greylist|too many connections|"
     r"will retry|still trying|connection refused|connection reset|lost connection)", "transient"),
))


@dataclass(frozen=True)
class Verdict:
    """The class and reason of one bounce."""

    klass: str
    reason: str


def _blank_addresses(text: str) -> str:
    text = _COLON_GROUPS_RE.sub(lambda m: " " if m.group(0).count(":") >= 2 else m.group(0), text or "")
    return _IPV4_RE.sub(" ", text)


def find_enhanced(text: str) -> Optional[str]:
    """The first failure (4.x.x / 5.x.x) enhanced status code in a text, else the first 2.x.x, else None.

    Session transcripts quote the greetings and 250 replies before the one
    that failed; the failure is what the notice is about.  IP addresses and
    version strings are not codes.
    """
    match = _first_failure(ENHANCED_RE, _blank_addresses(text))
    if match is None:
        return None
    return "%s.%s.%s" % (match.group(1), int(match.group(2)), int(match.group(3)))


def find_smtp_code(text: str) -> Optional[int]:
    """The first failure (4xx / 5xx) SMTP reply code in a text, else the first 2xx, else None."""
    match = _first_failure(SMTP_CODE_RE, _blank_addresses(text))
    return int(match.group(1)) if match else None


def _first_failure(pattern: "re.Pattern[str]", text: str) -> Optional["re.Match[str]"]:
    first = None
    for match in pattern.finditer(text or ""):
        if match.group(1)[0] in "45":
            return match
        first = first or match
    return first


# The words that explain a failure come first; a longer text (a notice quoting pages) is cut here so that
# a hostile message cannot make the text rules slow.
MAX_REASON_TEXT = 16 * 1024


def reason_of_text(diagnostic: str) -> Optional[str]:
    """The reason the words of a diagnostic give, or None."""
    text = (diagnostic or "")[:MAX_REASON_TEXT]
    for pattern, reason in TEXT_RULES:
        if pattern.search(text):
            return reason
    return None


def by_text(diagnostic: str) -> Optional[Verdict]:
    """Classify a permanent failure by the words of the diagnostic alone."""
    reason = reason_of_text(diagnostic)
    return None if reason is None else Verdict(_class_of(reason), reason)


def _class_of(reason: str) -> str:
    return HARD if reason in HARD_REASONS else SOFT


def reason_of_status(status: str) -> str:
    """The reason an enhanced status code gives by itself."""
    if status in STATUS_REASONS:
        return STATUS_REASONS[status]
    if status[0] == "4":
        return "transient"
    return SUBJECT_REASONS.get(status.split(".")[1], "other")


def classify(status: Optional[str], smtp_code: Optional[int], diagnostic: str, action: str = "failed") -> Verdict:
    """Classify one failed (or delayed) recipient."""
    action = (action or "failed").lower()
    if action == "delayed":
        return Verdict(DELAY, "delayed")
    text_reason = reason_of_text(diagnostic)
    temporary = (status is not None and status[0] == "4") or (
        status is None and smtp_code is not None and 400 <= smtp_code < 500)
    if text_reason == "bad-mailbox" and status and status.startswith(("5.2.2", "4.2.2")):
        text_reason = "mailbox-full"  # "552 5.2.2 mailbox unavailable": the code is the precise part
    reason = text_reason
    if reason is None and status is not None and not status.endswith(".0.0"):
        reason = reason_of_status(status)
    if reason is None:
        reason = "transient" if temporary else "other"
    if temporary:
        # A temporary failure given up on: never hard, whatever the words say.
        return Verdict(SOFT, "transient" if reason in HARD_REASONS or reason == "other" else reason)
    return Verdict(_class_of(reason), reason)


# Every reason a bounce or a delay can carry, and the complaint reasons the platform knows (the
# ARF Feedback-Types registered at IANA, RFC 5965/6591/6650, and Apple's unsubscribe). A complaint's
# reason is the report's own word: the metrics count an unknown one as "other" to keep the label
# set bounded.
BOUNCE_REASONS = frozenset(STATUS_REASONS.values()) | frozenset(SUBJECT_REASONS.values()) | frozenset(
    rule[1] for rule in TEXT_RULES) | frozenset(("transient", "other", "delayed"))
COMPLAINT_REASONS = frozenset(("abuse", "fraud", "virus", "other", "not-spam", "auth-failure", "unsubscribe"))
CLASSES = (HARD, SOFT, DELAY, COMPLAINT)
