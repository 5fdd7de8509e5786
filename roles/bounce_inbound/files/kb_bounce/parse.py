# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse delivery status notifications and complaints into events.

Standard forms: multipart/report with message/delivery-status (RFC 3464)
or message/feedback-report (ARF, RFC 5965).  Non-standard forms (qmail,
old Exim, Yahoo-style and Exchange texts without a machine-readable part)
are read from their human-readable text.  Auto-replies are recognised and
produce no event.  Anything else is "unparseable" and goes to quarantine.
"""
from __future__ import annotations

import base64
import binascii
import email
import email.message
import email.parser
import email.policy
import quopri
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence

from kb_bounce import classify, verp

REPORT = "report"
IGNORED = "ignored"
UNPARSEABLE = "unparseable"

MAX_TEXT = 256 * 1024
MAX_DIAGNOSTIC = 1000
MAX_PARTS = 200
MAX_FAILED_RECIPIENTS = 100

# Local part and domain may be internationalised (RFC 6531/6532): \w is Unicode-aware.
ADDRESS_RE = re.compile(r"<?([\w!#$%&'*+/=?^`{|}~.\-]{1,128}@[\w\-]{1,63}(?:\.[\w\-]{1,63})+)>?")
RCPT_TO_RE = re.compile(r"\bRCPT TO:\s*<([^<>\s]{3,256})>", re.I)
XTEXT_UTF8_RE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
BOUNCE_SUBJECT_RE = re.compile(
    r"(undeliver|undelivered|delivery status notification|mail delivery (failed|failure|subsystem|status)|"
    r"returned mail|failure notice|delivery failure|delivery has failed|non[- ]?delivery|"
    r"could not be delivered|message not delivered|delivery problem|warning: message .* delayed|"
    r"mail delivery delayed|delayed mail|nondeliverable|\bmail failure\b|could not send message for past|"
    r"delivery (delayed|failed)|failed delivery)", re.I)
DAEMON_RE = re.compile(r"(mailer-daemon|postmaster|mail delivery (subsystem|system)|mdaemon|mail administrator)", re.I)
AUTOREPLY_SUBJECT_RE = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheitsnotiz|"
    r"r[ée]ponse automatique|vacation|away from (my|the) (desk|office)|auto:)", re.I)
ORIGINAL_MARKERS_RE = re.compile(
    r"^(-+ ?(this is a copy of|below this line is a copy|original message|forwarded message|"
    r"undelivered message|original headers)|content-type: message/rfc822|"
    r"--- (below|the header)|original message headers:|possibly truncated original message follows)", re.I | re.M)
DELAY_RE = re.compile(r"(this is a warning only|has not yet been delivered|will (keep )?(retry|trying)|"
                      r"still being retried|delivery attempts will continue|will be retried)", re.I)
DAEMON_LOCALS = ("mailer-daemon", "postmaster", "double-bounce", "noreply", "no-reply")
# Challenge-response systems ("verify you are a person to get your message delivered"): not a bounce.
CHALLENGE_RE = re.compile(
    r"(list of approved senders|approved senders list|not on (my|the) (list of )?(approved|allowed) senders|"
    r"(confirm|verify|prove) (that )?you are (a )?(human|person|real|not a (machine|robot))|"
    r"challenge[- ]response|sender verification (request|required)|"
    r"(click|follow) (on )?the link below to (verify|confirm|release|deliver))", re.I)
# Headers of the notice itself that may carry the VERP address it was sent to.
VERP_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


@dataclass
class Event:
    """One bounce or complaint about one recipient."""

    type: str
    klass: str
    reason: str
    recipient: str
    recipient_source: str
    action: str = "failed"
    status: Optional[str] = None
    smtp_code: Optional[int] = None
    diagnostic: str = ""
    return_path: Optional[str] = None
    return_path_domain: Optional[str] = None
    reporting_mta: Optional[str] = None
    remote_mta: Optional[str] = None
    original_message_id: Optional[str] = None
    original_subject: Optional[str] = None
    feedback_type: Optional[str] = None
    user_agent: Optional[str] = None
    source_ip: Optional[str] = None
    arrival_date: Optional[str] = None


@dataclass
class ParseResult:
    """What a message turned out to be."""

    kind: str
    events: List[Event] = field(default_factory=list)
    reason: str = ""
    subject: str = ""
    sender: str = ""


@dataclass
class RecipientBlock:
    """The per-recipient fields of a DSN (RFC 3464 section 2.3)."""

    final_recipient: Optional[str]
    original_recipient: Optional[str]
    action: str
    status: Optional[str]
    diagnostic: str
    remote_mta: Optional[str]


@dataclass
class Original:
    """What is known about the message that bounced."""

    message_id: Optional[str] = None
    subject: Optional[str] = None
    return_path: Optional[verp.ReturnPath] = None
    to: Optional[str] = None


def text_of(value: object, limit: int = MAX_TEXT) -> str:
    """A header or payload as printable text (bad bytes become U+FFFD)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        text = value[:limit].decode("utf-8", "replace")
    else:
        text = str(value)[:limit]
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def one_line(value: object, limit: int = MAX_DIAGNOSTIC) -> str:
    """Collapse whitespace and cut to a length."""
    return " ".join(text_of(value, limit * 4).split())[:limit]


def header(msg: email.message.Message, name: str) -> str:
    """A header value as one clean line ("" when absent or broken)."""
    try:
        return one_line(msg.get(name, ""))
    except Exception:  # pylint: disable=broad-except
        return ""


def iter_parts(msg: email.message.Message, depth: int = 0) -> Iterator[email.message.Message]:
    """Every part of the top-level message, not descending into attached messages."""
    yield msg
    if depth > 20 or not msg.is_multipart() or msg.get_content_type() in ("message/rfc822", "message/global"):
        return
    payload = msg.get_payload()
    if not isinstance(payload, list):
        return
    for part in payload[:MAX_PARTS]:
        if isinstance(part, email.message.Message):
            yield from iter_parts(part, depth + 1)


def decoded_text(part: email.message.Message) -> str:
    """The decoded text of a leaf part."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # pylint: disable=broad-except
        payload = None
    if payload is None:
        raw = part.get_payload()
        return text_of(raw) if isinstance(raw, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload[:MAX_TEXT].decode(charset, "replace")
    except LookupError:
        return payload[:MAX_TEXT].decode("utf-8", "replace")


def field_blocks(part: email.message.Message) -> List[Dict[str, str]]:
    """The header-like field blocks of a message/delivery-status or feedback-report part."""
    encoding = header(part, "Content-Transfer-Encoding").lower()
    if encoding in ("base64", "quoted-printable"):
        # Not allowed for message/delivery-status, but seen; required reading for
        # message/global-delivery-status (RFC 6533 allows any encoding).
        return parse_fields(_decode_transfer(_raw_body(part), encoding))
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for sub in payload:
            if isinstance(sub, email.message.Message):
                blocks.append({k.lower(): one_line(v) for k, v in sub.items()})
                body = sub.get_payload()
                if isinstance(body, str) and ":" in body:
                    blocks.extend(parse_fields(body))
        return [b for b in blocks if b]
    return parse_fields(decoded_text(part))


def _raw_body(part: email.message.Message) -> str:
    """The undecoded body of a message/* part, put back together from what the parser made of it."""
    payload = part.get_payload()
    if isinstance(payload, str):
        return payload
    chunks = []
    for sub in payload if isinstance(payload, list) else []:
        if not isinstance(sub, email.message.Message):
            continue
        lines = ["%s: %s" % (name, text_of(value)) for name, value in sub.raw_items()]
        body = sub.get_payload()
        if isinstance(body, str):
            lines.append(body)
        chunks.append("\n".join(lines))
    return "\n\n".join(chunks)


def _decode_transfer(text: str, encoding: str) -> str:
    data = text.encode("utf-8", "surrogateescape")[:MAX_TEXT * 2]
    try:
        decoded = base64.b64decode(data) if encoding == "base64" else quopri.decodestring(data)
    except (binascii.Error, ValueError):
        return text
    return decoded[:MAX_TEXT].decode("utf-8", "replace")


def parse_fields(text: str) -> List[Dict[str, str]]:
    """Parse blank-line separated blocks of ``Name: value`` fields."""
    blocks: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    last = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
            continue
        if line[0] in " \t" and last is not None:
            current[last] = one_line(current[last] + " " + line)
            continue
        name, sep, value = line.partition(":")
        if sep and name and " " not in name.strip():
            last = name.strip().lower()
            current[last] = one_line(value)
    if current:
        blocks.append(current)
    return blocks


def strip_type(value: str) -> Optional[str]:
    """``rfc822; <a@b>`` -> ``a@b``."""
    if not value:
        return None
    kind, sep, rest = value.partition(";")
    address = (rest if sep else value).strip().strip("<>").strip()
    if sep and kind.strip().lower() == "utf-8":
        address = XTEXT_UTF8_RE.sub(lambda m: _chr(m.group(1)), address)  # RFC 6533 utf-8-addr-xtext
    match = ADDRESS_RE.search(address)
    if match is None or match.group(1).upper().startswith(("IMCEAEX-", "IMCEAINVALID-")):
        return None  # Exchange-internal (X.500 encapsulated) names are no mail address
    return match.group(1)


def _chr(hexdigits: str) -> str:
    try:
        return chr(int(hexdigits, 16))
    except (ValueError, OverflowError):
        return "\ufffd"


def recipient_blocks(blocks: List[Dict[str, str]]) -> List[RecipientBlock]:
    """The per-recipient blocks of a DSN."""
    result = []
    for block in blocks:
        if not ("final-recipient" in block or "original-recipient" in block):
            continue
        diagnostic = block.get("diagnostic-code", "")
        kind, sep, rest = diagnostic.partition(";")
        if sep and len(kind) < 20:
            diagnostic = rest.strip()
        result.append(RecipientBlock(
            final_recipient=strip_type(block.get("final-recipient", "")),
            original_recipient=strip_type(block.get("original-recipient", "")),
            action=block.get("action", "failed").split()[0].lower() if block.get("action") else "failed",
            status=classify.find_enhanced(block.get("status", "")),
            diagnostic=diagnostic,
            remote_mta=_after_semicolon(block.get("remote-mta", "")),
        ))
    return result


def _after_semicolon(value: str) -> Optional[str]:
    if not value:
        return None
    return value.partition(";")[2].strip() or value.strip()


OwnDomain = Callable[[str], bool]


def original_of(msg: email.message.Message, is_own: Optional[OwnDomain] = None) -> Original:
    """Find the attached original message (or its headers)."""
    for part in iter_parts(msg):
        ctype = part.get_content_type()
        headers = None
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
                headers = payload[0]
            elif isinstance(payload, str):
                headers = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(payload)
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers"):
            headers = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(decoded_text(part))
        if headers is not None:
            return _original_from_headers(headers, is_own or verp.own_domains())
    return Original()


def _original_from_headers(headers: email.message.Message, is_own: OwnDomain) -> Original:
    return_path = None
    for name in ("Return-Path", "X-Original-Return-Path"):
        value = header(headers, name)
        if value:
            return_path = verp.decode(value)
            if return_path is not None and not is_own(return_path.domain):
                return_path = None  # another sender's VERP (the same scheme is common)
            if return_path:
                break
    to = strip_type(header(headers, "To"))
    return Original(
        message_id=header(headers, "Message-ID") or None,
        subject=header(headers, "Subject") or None,
        return_path=return_path,
        to=to,
    )


def verp_of_headers(msg: email.message.Message, is_own: OwnDomain) -> Optional[verp.ReturnPath]:
    """A VERP address the notice itself is addressed to (when Postfix's envelope is not known)."""
    for name in VERP_HEADERS:
        try:
            values = msg.get_all(name) or []
        except Exception:  # pylint: disable=broad-except
            continue
        for value in values[:20]:
            for match in ADDRESS_RE.finditer(one_line(value)):
                found = verp.decode(match.group(1))
                if found is not None and is_own(found.domain):
                    return found
    return None


def is_challenge(text: str) -> bool:
    """A challenge-response request: asks a person to verify, reports no SMTP failure."""
    if not CHALLENGE_RE.search(text):
        return False
    status, code = classify.find_enhanced(text), classify.find_smtp_code(text)
    return not ((status and status[0] in "45") or (code and code >= 400))


def is_autoreply(msg: email.message.Message) -> bool:
    """An out-of-office or other automatic answer (RFC 3834 and common habits)."""
    auto = header(msg, "Auto-Submitted").lower()
    if header(msg, "X-Autoreply") or header(msg, "X-Autorespond") or header(msg, "X-Autoresponder"):
        return True
    if header(msg, "Precedence").lower() in ("auto_reply", "auto-reply"):
        return True
    if AUTOREPLY_SUBJECT_RE.search(header(msg, "Subject")):
        return True
    return auto.startswith("auto-replied") and not looks_like_bounce(msg)


def looks_like_bounce(msg: email.message.Message) -> bool:
    """Sender or subject of a delivery failure notice."""
    return bool(DAEMON_RE.search(header(msg, "From")) or BOUNCE_SUBJECT_RE.search(header(msg, "Subject")))


def parse(raw: bytes, envelope_recipient: Optional[str] = None, is_own: Optional[OwnDomain] = None) -> ParseResult:
    """Parse one message delivered to a bounce address.

    ``envelope_recipient`` is the address Postfix delivered it to (trusted: Postfix
    accepts only our domains). ``is_own`` tells our return-path domains from
    others' for VERP addresses found inside the message (default: the
    ``kb-bounces.`` label, :func:`verp.own_domains`).
    """
    is_own = is_own or verp.own_domains()
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as exc:  # pylint: disable=broad-except
        return ParseResult(kind=UNPARSEABLE, reason="not a parseable message: %s" % exc)
    envelope = verp.decode(envelope_recipient) if envelope_recipient else None
    if envelope is None:
        envelope = verp_of_headers(msg, is_own)
    result = _parse_message(msg, envelope, is_own)
    result.subject = header(msg, "Subject")[:200]
    result.sender = header(msg, "From")[:200]
    return result


def _parse_message(msg: email.message.Message, envelope: Optional[verp.ReturnPath], is_own: OwnDomain,
                   depth: int = 0) -> ParseResult:
    parts = list(iter_parts(msg))
    by_type: Dict[str, email.message.Message] = {}
    for part in parts:
        by_type.setdefault(part.get_content_type(), part)
    original = original_of(msg, is_own)
    feedback = [p for p in parts if p.get_content_type() == "message/feedback-report"]
    if feedback:
        return _complaints(msg, feedback, original, envelope)
    status_part = by_type.get("message/delivery-status") or by_type.get("message/global-delivery-status")
    if status_part is not None:
        result = _dsn(field_blocks(status_part), original, envelope)
        if result.kind != UNPARSEABLE:
            return result
    else:
        nested = _nested_complaints(parts, envelope, is_own, depth)
        if nested is not None:
            return nested
    provider = _provider_complaint(msg, parts, original, envelope)
    if provider is not None:
        return provider
    if is_autoreply(msg):
        return ParseResult(kind=IGNORED, reason="automatic reply")
    text = human_text(parts)
    if is_challenge(text):
        return ParseResult(kind=IGNORED, reason="challenge-response request")
    embedded = [b for b in parse_fields(text) if "final-recipient" in b or "original-recipient" in b]
    if embedded:
        result = _dsn([{}] + embedded, original, envelope)
        if result.events:
            return result
    if not looks_like_bounce(msg):
        return ParseResult(kind=UNPARSEABLE, reason="neither a delivery report, a complaint nor an automatic reply")
    return _text_bounce(text, original, envelope, failed_recipients(msg), notice_addresses(msg))


def _attached_messages(parts: List[email.message.Message]) -> Iterator[email.message.Message]:
    for part in parts:
        if part.get_content_type() not in ("message/rfc822", "message/global"):
            continue
        payload = part.get_payload()
        for inner in payload if isinstance(payload, list) else []:
            if isinstance(inner, email.message.Message):
                yield inner


def _nested_complaints(parts: List[email.message.Message], envelope: Optional[verp.ReturnPath],
                       is_own: OwnDomain, depth: int) -> Optional[ParseResult]:
    """Complaint reports sent as attached messages (a digest of ARF reports): one event per report."""
    if depth > 2:
        return None
    events: List[Event] = []
    for inner in list(_attached_messages(parts))[:MAX_PARTS]:
        if not any(p.get_content_type() == "message/feedback-report" for p in iter_parts(inner)):
            continue
        result = _parse_message(inner, None, is_own, depth + 1)
        events.extend(result.events)
    if not events:
        return None
    if envelope is not None and len(events) == 1 and events[0].return_path is None:
        events[0].return_path, events[0].return_path_domain = envelope.address, envelope.domain
    return ParseResult(kind=REPORT, events=events)


JMRP_HEADER = "X-HmXmrOriginalRecipient"
JMRP_SUBJECT_RE = re.compile(r"^\s*complaint about message from", re.I)


def _provider_complaint(msg: email.message.Message, parts: List[email.message.Message], original: Original,
                        envelope: Optional[verp.ReturnPath]) -> Optional[ParseResult]:
    """Complaints without a message/feedback-report part.

    Outlook.com / Hotmail reports (JMRP) name the complaining recipient in
    ``X-HmXmrOriginalRecipient`` (on the report or on the returned copy);
    Apple Mail's unsubscribe button sends a message marked
    ``X-Apple-Unsubscribe: true`` (with ``Auto-Submitted: auto-replied``, but
    it is the recipient's own request, not an automatic reply).
    """
    if header(msg, "X-Apple-Unsubscribe").lower() == "true":
        if envelope is not None:
            recipient, source = envelope.recipient, "return-path"
        else:
            recipient, source = strip_type(header(msg, "From")), "from"
        if not recipient:
            return None
        return ParseResult(kind=REPORT, events=[_complaint_event(
            "unsubscribe", recipient, source, envelope, original, header(msg, "Subject"), {})])
    named = strip_type(header(msg, JMRP_HEADER))
    if not named:
        for inner in _attached_messages(parts):
            named = strip_type(header(inner, JMRP_HEADER))
            if named:
                break
    if not named and not (JMRP_SUBJECT_RE.search(header(msg, "Subject")) and original.message_id):
        return None
    if original.return_path is not None:
        recipient, source, return_path = original.return_path.recipient, "return-path", original.return_path
    elif named:
        recipient, source, return_path = named, "arf", None
    elif envelope is not None:
        recipient, source, return_path = envelope.recipient, "return-path", envelope
    elif original.to:
        recipient, source, return_path = original.to, "original-to", None
    else:
        return None
    return ParseResult(kind=REPORT, events=[_complaint_event(
        "abuse", recipient, source, return_path, original, header(msg, "Subject"), {})])


def failed_recipients(msg: email.message.Message) -> List[str]:
    """Addresses in ``X-Failed-Recipients`` (Exim and others name the failed recipients there)."""
    found: List[str] = []
    for value in msg.get_all("X-Failed-Recipients") or []:
        for address in re.split(r"[,\s]+", text_of(value, 4000)):
            address = address.strip("<>").lower()
            if ADDRESS_RE.fullmatch(address) and address not in found:
                found.append(address)
    return found[:MAX_FAILED_RECIPIENTS]


def human_text(parts: List[email.message.Message]) -> str:
    """The readable text of a notice, up to the copy of the original message."""
    texts = []
    for part in parts:
        ctype = part.get_content_type()
        if part.is_multipart() or part.get_content_maintype() == "message":
            continue
        if ctype == "text/plain" or (part.get_content_maintype() == "multipart" and not part.is_multipart()):
            texts.append(decoded_text(part))
        elif ctype == "text/html" and not texts:
            texts.append(re.sub(r"<[^>]{0,2000}>", " ", decoded_text(part)))
    text = "\n".join(texts)[:MAX_TEXT]
    marker = ORIGINAL_MARKERS_RE.search(text)
    return text[:marker.start()] if marker else text


def _dsn(blocks: List[Dict[str, str]], original: Original, envelope: Optional[verp.ReturnPath]) -> ParseResult:
    per_message = blocks[0] if blocks and "final-recipient" not in blocks[0] else {}
    reporting = _after_semicolon(per_message.get("reporting-mta", ""))
    arrival = per_message.get("arrival-date") or None
    everyone = recipient_blocks(blocks)
    reports = [r for r in everyone if r.action in ("failed", "delayed")]
    if everyone and not reports:
        return ParseResult(kind=IGNORED, reason="delivery report without a failed or delayed recipient")
    if not reports:
        return ParseResult(kind=UNPARSEABLE, reason="delivery report without a failed or delayed recipient")
    return_path = envelope or original.return_path
    if return_path is not None:
        chosen = [r for r in reports if _matches(r, return_path.recipient)] or reports[:1]
        pairs = [(chosen[0], return_path.recipient, "return-path")]
    else:
        # Original-Recipient is the address as we gave it (RFC 3464 2.3.1); Final-Recipient may be
        # the result of aliasing or forwarding on the receiving side.
        pairs = [(r, r.original_recipient or r.final_recipient, "dsn") for r in reports]
    events = []
    for block, recipient, source in pairs:
        if not recipient:
            continue
        events.append(_bounce_event(block, recipient, source, return_path, original, reporting, arrival))
    if not events:
        return ParseResult(kind=UNPARSEABLE, reason="delivery report without a recipient address")
    return ParseResult(kind=REPORT, events=events)


def _matches(block: RecipientBlock, recipient: str) -> bool:
    wanted = recipient.lower()
    return any(a and a.lower() == wanted for a in (block.final_recipient, block.original_recipient))


def _bounce_event(block: RecipientBlock, recipient: str, source: str, return_path: Optional[verp.ReturnPath],
                  original: Original, reporting: Optional[str], arrival: Optional[str]) -> Event:
    status = _best_status(block.status, block.diagnostic)
    code = classify.find_smtp_code(block.diagnostic)
    verdict = classify.classify(status, code, block.diagnostic, block.action)
    return Event(
        type=_event_type(verdict), klass=verdict.klass, reason=verdict.reason, recipient=recipient,
        recipient_source=source, action=block.action, status=status, smtp_code=code,
        diagnostic=one_line(block.diagnostic), return_path=return_path.address if return_path else None,
        return_path_domain=return_path.domain if return_path else None, reporting_mta=reporting,
        remote_mta=block.remote_mta, original_message_id=original.message_id,
        original_subject=original.subject, arrival_date=arrival,
    )


def _event_type(verdict: classify.Verdict) -> str:
    return "delay" if verdict.klass == classify.DELAY else "bounce"


def _best_status(status: Optional[str], diagnostic: str) -> Optional[str]:
    """The status of one recipient: the remote's own code in the diagnostic when it is more precise.

    The DSN's ``Status`` is the reporting MTA's summary (often ``5.0.0``, or a
    subject without detail like ``5.1.0``); the code in the diagnostic is what
    the receiving server said.  The diagnostic wins when it is of the same class
    (4 or 5) and refines the Status (``5.0.0`` -> ``5.7.1``, ``5.1.0`` -> ``5.1.1``).
    """
    from_text = classify.find_enhanced(diagnostic)
    if status is None:
        return from_text
    if from_text is None or from_text == status or from_text[0] != status[0] or from_text.endswith(".0.0"):
        return status
    subject, detail = status.split(".")[1:]
    if subject == "0" or (detail == "0" and from_text.split(".")[1] == subject):
        return from_text  # 5.0.0 -> 5.7.1, 5.1.0 -> 5.1.1, 4.0.0 -> 4.2.2
    return status


def _complaints(msg: email.message.Message, reports: List[email.message.Message], original: Original,
                envelope: Optional[verp.ReturnPath]) -> ParseResult:
    """One complaint event per ARF report part (RFC 5965)."""
    events = []
    for part in reports[:MAX_FAILED_RECIPIENTS]:
        fields: Dict[str, str] = {}
        for block in field_blocks(part):
            for key, value in block.items():
                fields.setdefault(key, value)
        named = strip_type(fields.get("original-rcpt-to", ""))
        if len(reports) > 1 and named:
            # Several reports share one returned copy: each report names its own recipient.
            recipient, source = named, "arf"
            return_path = envelope if envelope and envelope.recipient.lower() == named.lower() else None
        elif original.return_path is not None:
            recipient, source, return_path = original.return_path.recipient, "return-path", original.return_path
        elif named:
            recipient, source = named, "arf"
            return_path = envelope if envelope and envelope.recipient.lower() == named.lower() else None
        elif envelope is not None:
            recipient, source, return_path = envelope.recipient, "return-path", envelope
        elif original.to:
            recipient, source, return_path = original.to, "original-to", None
        else:
            continue
        feedback_type = (fields.get("feedback-type") or "abuse").split()[0].lower()
        events.append(_complaint_event(feedback_type, recipient, source, return_path, original,
                                       header(msg, "Subject"), fields))
    if not events:
        return ParseResult(kind=UNPARSEABLE, reason="complaint without a recipient")
    return ParseResult(kind=REPORT, events=events)


def _complaint_event(feedback_type: str, recipient: str, source: str, return_path: Optional[verp.ReturnPath],
                     original: Original, subject: str, fields: Dict[str, str]) -> Event:
    return Event(
        type="complaint", klass=classify.COMPLAINT, reason=feedback_type, recipient=recipient,
        recipient_source=source, action="complained", diagnostic=one_line(subject),
        return_path=return_path.address if return_path else None,
        return_path_domain=return_path.domain if return_path else None,
        reporting_mta=fields.get("reporting-mta") or None, original_message_id=original.message_id,
        original_subject=original.subject, feedback_type=feedback_type,
        user_agent=fields.get("user-agent") or None, source_ip=fields.get("source-ip") or None,
        arrival_date=fields.get("arrival-date") or fields.get("received-date") or None,
    )


def notice_addresses(msg: email.message.Message) -> List[str]:
    """The addresses of the notice's own headers (the sender it returns to, the daemon): not recipients."""
    found = []
    for name in ("From", "To", "Cc", "Reply-To", "Sender", "Return-Path"):
        for match in ADDRESS_RE.finditer(header(msg, name)):
            found.append(match.group(1).lower())
    return found


def _text_bounce(text: str, original: Original, envelope: Optional[verp.ReturnPath],
                 failed: Sequence[str] = (), exclude: Sequence[str] = ()) -> ParseResult:
    sections = address_sections(text, exclude)
    return_path = envelope or original.return_path
    if return_path is not None:
        wanted = return_path.recipient.lower()
        body = sections.get(wanted) or (next(iter(sections.values())) if len(sections) == 1 else text)
        targets = [(return_path.recipient, body, "return-path")]
    elif failed:
        # The header names the failed recipients; the text about each, where the notice has it,
        # carries the reason (otherwise the whole notice does).
        targets = [(address, sections.get(address) or text, "x-failed-recipients") for address in failed]
    else:
        targets = [(address, body, "text") for address, body in sections.items()]
    delayed = bool(DELAY_RE.search(text))
    events = []
    for recipient, body, source in targets:
        event = _text_event(recipient, body, source, return_path, original, delayed, text)
        if event is not None:
            events.append(event)
    if not events:
        return ParseResult(kind=UNPARSEABLE, reason="failure notice without a recognisable recipient or status")
    return ParseResult(kind=REPORT, events=events)


def _text_event(recipient: str, body: str, source: str, return_path: Optional[verp.ReturnPath],
                original: Original, delayed: bool, whole: str = "") -> Optional[Event]:
    status = classify.find_enhanced(body)
    code = classify.find_smtp_code(body)
    if status is None and code is None and classify.reason_of_text(body) is None and whole and whole != body:
        body = whole  # the section names the address only; the notice as a whole says why
        status, code = classify.find_enhanced(body), classify.find_smtp_code(body)
    if status is None and code is None and classify.reason_of_text(body) is None and not FAILURE_RE.search(body):
        return None
    action = "delayed" if delayed and not (status or "").startswith("5") and (code or 0) < 500 else "failed"
    verdict = classify.classify(status, code, body, action)
    return Event(
        type=_event_type(verdict), klass=verdict.klass, reason=verdict.reason, recipient=recipient,
        recipient_source=source,
        action=action, status=status, smtp_code=code, diagnostic=one_line(_diagnostic_line(body)),
        return_path=return_path.address if return_path else None,
        return_path_domain=return_path.domain if return_path else None,
        original_message_id=original.message_id, original_subject=original.subject,
    )


FAILURE_RE = re.compile(r"(could not be delivered|couldn't be delivered|was not delivered|undeliverable|"
                        r"permanent (error|failure)|delivery (has )?failed|failed to deliver|not reach)", re.I)


def _diagnostic_line(body: str) -> str:
    """The most telling lines of a section: those with a status code, else the whole section."""
    lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
    coded = [ln for ln in lines if classify.SMTP_CODE_RE.search(ln) or classify.ENHANCED_RE.search(ln)]
    return " ".join(coded or lines)


# An address a notice line is about: at the start of the line (qmail, Exim, Yahoo, Exchange, Zoho, GMX:
# "addr", "<addr>:", "\"addr\":", "addr on <date>", "addr Invalid Address, ERROR_CODE ..."), or after a
# lead-in that ends in "to" or a colon ("delivering your mail to <addr>.", "Unknown user: addr",
# "Could not be delivered to: <addr>").
_ADDR = r"([\w!#$%&'*+/=?^`{|}~.\-]{1,128}@[\w\-]{1,63}(?:\.[\w\-]{1,63})+)"
LEADING_ADDRESS_RE = re.compile(r"^[\s\"'<]*" + _ADDR)
LEAD_IN_ADDRESS_RE = re.compile(r"(?:\bto|:)\s*[\"'<]?" + _ADDR, re.I)
NOT_RECIPIENT_LEAD_RE = re.compile(
    r"^\s*(?:[<>-]{2,3}\s*)?(from|mail from|reply-to|sender|return-path|envelope-from|message-id|in-reply-to|"
    r"references)\s*:", re.I)


def address_sections(text: str, exclude: Sequence[str] = ()) -> Dict[str, str]:
    """Split a notice into the text about each recipient address."""
    skip = {a.lower() for a in exclude}
    sections: Dict[str, List[str]] = {}
    current: Optional[str] = None
    for line in text.splitlines():
        stripped = line.strip()
        address = _line_address(stripped, skip)
        if address is not None:
            current = address
            sections.setdefault(current, []).append(stripped)
            continue
        if current is not None:
            sections[current].append(line)
    if not sections and "@" in text:
        # No line is about an address; any address in the text that is not the notice's own.
        for match in ADDRESS_RE.finditer(text[:64 * 1024]):
            address = match.group(1).lower()
            if _recipient_like(address, skip) and address not in sections:
                sections[address] = [text]
            if len(sections) >= MAX_FAILED_RECIPIENTS:
                break
    return {address: "\n".join(lines) for address, lines in sections.items()}


def _recipient_like(address: str, skip: set) -> bool:
    local = address.split("@")[0]
    return address not in skip and local not in DAEMON_LOCALS and not local.startswith(("mailer-daemon", "postmaster"))


def _line_address(line: str, skip: set) -> Optional[str]:
    rcpt = RCPT_TO_RE.search(line)
    if rcpt and ADDRESS_RE.fullmatch(rcpt.group(1)):
        # A session transcript (MDaemon, Courier, Exim, Sendmail): the reply that follows is about it.
        address = rcpt.group(1).lower()
        return address if _recipient_like(address, skip) else None
    if NOT_RECIPIENT_LEAD_RE.match(line):
        return None
    match = LEADING_ADDRESS_RE.match(line)
    if match:
        address = match.group(1).lower()
        if _recipient_like(address, skip):
            return address
    for match in LEAD_IN_ADDRESS_RE.finditer(line):
        address = match.group(1).lower()
        if _recipient_like(address, skip):
            return address
    return None
