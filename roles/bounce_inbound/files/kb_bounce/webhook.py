# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hand stored events to the webhook: signed JSON, retries with exponential backoff.

Each event is POSTed on its own.  Headers:

- ``Idempotency-Key``: the event id (the same on every retry; receivers dedupe on it)
- ``X-Kb-Timestamp``: Unix time of this attempt
- ``X-Kb-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<body>`` with the shared secret

Delivery is at least once: an event is marked delivered only after a 2xx.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from kb_bounce import __version__
from kb_bounce.store import Store, StoredEvent

# (url, body, headers, timeout) -> (status or None, error text)
Sender = Callable[[str, bytes, Dict[str, str], float], Tuple[Optional[int], str]]


@dataclass
class Outcome:
    """Counts of one delivery pass."""

    delivered: int = 0
    failed: int = 0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for a body."""
    message = str(timestamp).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    try:
        expected = sign(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, signature)


def backoff(attempts: int, initial: float, maximum: float) -> float:
    """Seconds to wait after the n-th failed attempt: initial * 2^(n-1), capped."""
    exponent = max(0, min(attempts - 1, 40))
    return min(maximum, initial * (2 ** exponent))


def http_post(url: str, body: bytes, headers: Dict[str, str], timeout: float) -> Tuple[Optional[int], str]:
    """POST with urllib; returns (status, error); status None when no answer came."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec: URL from the operator's config
            response.read(65536)
            return response.status, ""
    except urllib.error.HTTPError as exc:
        return exc.code, "HTTP %d %s" % (exc.code, exc.reason)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, "no answer from %s: %s" % (url, reason)


def request_for(event: StoredEvent, secret: str, now: float) -> Tuple[bytes, Dict[str, str]]:
    """The body and headers of one attempt."""
    body = json.dumps(event.payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    timestamp = int(now)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "kb-bounce/%s" % __version__,
        "Idempotency-Key": event.id,
        "X-Kb-Event-Id": event.id,
        "X-Kb-Timestamp": str(timestamp),
        "X-Kb-Signature": sign(secret, timestamp, body),
    }
    return body, headers


def deliver_one(store: Store, event: StoredEvent, url: str, secret: str, timeout: float, initial: float,
                maximum: float, sender: Sender = http_post, clock: Callable[[], float] = time.time) -> bool:
    """Try one event once; record the result; True when delivered."""
    body, headers = request_for(event, secret, clock())
    status, error = sender(url, body, headers, timeout)
    now = clock()
    if status is not None and 200 <= status < 300:
        store.mark_delivered(event.id, now)
        return True
    store.mark_failed(event.id, error or "HTTP %s" % status, now + backoff(event.attempts + 1, initial, maximum))
    return False


def deliver_due(store: Store, url: str, secret: str, timeout: float, initial: float, maximum: float,
                batch: int = 100, sender: Sender = http_post, clock: Callable[[], float] = time.time) -> Outcome:
    """One pass over the due events."""
    outcome = Outcome()
    for event in store.due(clock(), batch):
        if deliver_one(store, event, url, secret, timeout, initial, maximum, sender, clock):
            outcome.delivered += 1
        else:
            outcome.failed += 1
    return outcome
