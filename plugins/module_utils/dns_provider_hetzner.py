# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hetzner Cloud DNS provider: zones and record sets through ``hcloud`` (client.zones).

Reads every record set of the zone in one request (100 per page, the API's
most), addressing the zone by name so no request looks the zone up first; the
zone itself is read only when a record set that matters inherits its TTL.
Then writes the plan's changes: deletions first (waited for, so a CNAME can
replace other data), then creations and updates, one request per record set
(two for an update of both values and TTL). Every write returns an action;
actions are waited for together, at most 25 per status request, across zones
when many zones are reconciled at once (``start()`` and ``settle()``).

Rate limit: the project's budget is 3600 requests per hour, refilled by one
request per second, and every response says where it stands (``RateLimit-Limit``,
``RateLimit-Remaining``, ``RateLimit-Reset``). The hcloud client would retry a 429
five times on a blind backoff (about 30 s at most) and ignore these headers, so
the provider answers 429s below it, in the HTTP session: it waits for as long as
the headers say the next request takes to come free (``Retry-After`` first, if
ever sent), for at most ``rate_limit_wait`` seconds in all per request, and then
fails that request (and so its zone) saying the limit was reached and to run
again. hcloud then never sees a 429, so no two retry loops are stacked; it still
retries ``conflict`` with backoff.

Record set names in the API are relative to the zone (``@`` for the apex);
TXT values are quoted strings of at most 255 characters each.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_records import (
    Change,
    ProviderError,
    RecordError,
    RecordSet,
    ZonePlan,
    absolute_name,
    normalize_name,
    normalize_txt,
    record_set,
    relative_name,
    txt_presentation,
)

HCLOUD_IMPORT_ERROR: Optional[str]
try:
    from hcloud import Client
    from hcloud.zones import Zone, ZoneRecord, ZoneRRSet
    from requests.adapters import HTTPAdapter
except ImportError:
    HTTPAdapter = object
    HAS_HCLOUD = False
    HCLOUD_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_HCLOUD = True
    HCLOUD_IMPORT_ERROR = None

ACTION_BATCH = 25
RRSET_PAGE = 100
# Record sets at the apex whose TTL the API may leave unset (the zone's applies) and that
# the module only keeps: it never deletes them, so their TTL matters only when asked for.
APEX_KEPT_TYPES = ("SOA", "NS")
APPLICATION = "kibamail.email_platform"
# Hetzner refills the budget by one request per second: the wait when a 429 says nothing more.
RATE_LIMIT_DEFAULT_DELAY = 1.0
RATE_LIMIT_MIN_DELAY = 0.05


@dataclass
class HetznerSettings:
    token: str
    endpoint: str = "https://api.hetzner.cloud/v1"
    poll_interval: float = 1.0
    action_timeout: float = 300.0
    rate_limit_wait: float = 60.0  # seconds one request may wait in all for the rate limit to let it through


class RateLimitReached(Exception):
    """The rate limit kept a request out for longer than ``rate_limit_wait``."""


def rate_limit_delay(headers: Any, now: float) -> float:
    """Seconds until the API takes one more request, from a 429's headers.

    ``RateLimit-Reset`` is when the budget is full again; it refills evenly, so with
    ``Remaining`` of ``Limit`` left, one request comes free every
    ``(Reset - now) / (Limit - Remaining)`` seconds (one second at Hetzner's 3600/h).
    """
    retry_after = _number(headers.get("Retry-After"))
    if retry_after is not None:
        return max(retry_after, RATE_LIMIT_MIN_DELAY)
    limit, remaining, reset = (_number(headers.get("RateLimit-%s" % name)) for name in ("Limit", "Remaining", "Reset"))
    if limit is None or remaining is None or reset is None:
        return RATE_LIMIT_DEFAULT_DELAY
    if remaining >= limit:
        return RATE_LIMIT_MIN_DELAY
    return max((reset - now) / (limit - remaining), RATE_LIMIT_MIN_DELAY)


def _number(text: Optional[str]) -> Optional[float]:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


class RateLimitAdapter(HTTPAdapter):  # type: ignore[misc,valid-type]
    """Sends a request again after a 429, when the headers say it will be taken, within a bounded wait."""

    def __init__(self, max_wait: float, sleep: Callable[[float], None]) -> None:
        super().__init__()
        self.max_wait = max_wait
        self.sleep = sleep

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:  # pylint: disable=arguments-differ
        waited = 0.0
        while True:
            response = super().send(request, *args, **kwargs)
            if response.status_code != 429:
                return response
            delay = rate_limit_delay(response.headers, time.time())
            if waited + delay > self.max_wait:
                limit = response.headers.get("RateLimit-Limit")
                response.close()
                raise RateLimitReached(
                    "the Hetzner Cloud API rate limit was reached (%s requests per hour for the project, shared by "
                    "every client of it) and no request came free within %gs (the next in %gs): run again later; "
                    "the zones that were done keep their results" % (limit or "a number of", self.max_wait, delay))
            self.sleep(delay)
            waited += delay


class HetznerProvider:
    """Read and change one zone in the Hetzner Cloud DNS API."""

    query_types: Sequence[str] = ()

    def __init__(self, settings: HetznerSettings, client: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if client is None:
            if not HAS_HCLOUD:
                raise ProviderError("the hetzner provider needs the Python package hcloud (>= 2.11) on the controller")
            client = Client(token=settings.token, api_endpoint=settings.endpoint, application_name=APPLICATION)
            session = getattr(getattr(client, "_client", None), "_session", None)
            # hcloud offers no hook for its session; without one (another hcloud), its own backoff applies.
            if session is not None:
                adapter = RateLimitAdapter(settings.rate_limit_wait, sleep)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
        self.settings = settings
        self.client = client
        self.sleep = sleep
        self._zone_ttls: Dict[str, int] = {}

    # ------------------------------------------------------------ errors

    def _error(self, error: Exception, doing: str) -> ProviderError:
        if isinstance(error, RateLimitReached):
            return ProviderError("%s failed: %s" % (doing, error))
        code = getattr(error, "code", None)
        message = getattr(error, "message", None) or str(error)
        hints = {
            "unauthorized": "the API refused the token: set hcloud_token (or HCLOUD_TOKEN) to a token of the "
                            "project that holds the zone",
            "forbidden": "the token may not do this: give it read and write permission",
            "not_found": "it does not exist in this project",
            "protected": "the record set is protected against changes: lift the protection or leave it out",
            "invalid_input": "the API refused the input",
            "uniqueness_error": "it already exists; run again so the module reads it first",
            "rate_limit_exceeded": "the API rate limit was reached; run again later",
        }
        if code is None:
            return ProviderError("%s failed: cannot reach the Hetzner Cloud API at %s (%s): check hcloud_endpoint "
                                 "and the network" % (doing, self.settings.endpoint, message))
        return ProviderError("%s failed: %s (%s): %s" % (doing, message, code, hints.get(str(code), "see the message")))

    def _call(self, doing: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ProviderError:
            raise
        except Exception as error:  # noqa: BLE001 - APIException, requests errors: all mapped to a message
            raise self._error(error, doing)

    # ------------------------------------------------------------ read

    def _zone(self, zone: str) -> Any:
        """A reference to the zone by name: the API takes the name wherever it takes the ID."""
        return Zone(name=zone)

    def _zone_ttl(self, zone: str) -> int:
        """The zone's default TTL (one request, made once per zone and only when needed)."""
        if zone not in self._zone_ttls:
            try:
                self._zone_ttls[zone] = getattr(self.client.zones.get(zone), "ttl", None) or 3600
            except Exception as error:  # noqa: BLE001 - mapped below
                raise self._zone_error(error, zone, "reading zone %s" % zone)
        return self._zone_ttls[zone]

    def _zone_error(self, error: Exception, zone: str, doing: str) -> ProviderError:
        if getattr(error, "code", None) == "not_found":
            return ProviderError("zone %s does not exist in the Hetzner Cloud project of this token: create "
                                 "it first (for example with hetzner.hcloud.zone) or check hcloud_token" % zone)
        return self._error(error, doing)

    def _list_rrsets(self, zone: str) -> List[Any]:
        rrsets: List[Any] = []
        page: Optional[int] = 1
        while page:
            try:
                result = self.client.zones.get_rrset_list(self._zone(zone), page=page, per_page=RRSET_PAGE)
            except Exception as error:  # noqa: BLE001 - mapped below
                raise self._zone_error(error, zone, "listing the record sets of %s" % zone)
            rrsets.extend(result.rrsets)
            pagination = getattr(result.meta, "pagination", None) if result.meta else None
            page = getattr(pagination, "next_page", None)
        return rrsets

    def read(self, zone: str, keys: Iterable[Any] = ()) -> List[RecordSet]:
        """Every record set of the zone, normalised.

        A record set without a TTL of its own takes the zone's; the zone is read for it only
        when such a record set is one the module may change (not the apex SOA or NS, unless
        ``keys`` asks for them), so a zone usually costs one request.
        """
        zone = normalize_name(zone)
        wanted = set(keys)
        rrsets = [rrset for rrset in self._list_rrsets(zone) if rrset.records]
        result = []
        for rrset in rrsets:
            name = absolute_name(rrset.name, zone)
            ttl = rrset.ttl
            if ttl is None:
                kept = name == zone and rrset.type in APEX_KEPT_TYPES and (name, rrset.type) not in wanted
                ttl = 3600 if kept else self._zone_ttl(zone)
            try:
                result.append(record_set(name, rrset.type, ttl, [record.value for record in rrset.records]))
            except RecordError as error:
                raise ProviderError("zone %s holds a record set the module cannot read: %s" % (zone, error))
        return sorted(result, key=lambda item: item.key)

    # ------------------------------------------------------------ write

    def apply(self, plan: ZonePlan) -> List[int]:
        """Write the plan's changes and wait for them; returns the ids of the actions waited for."""
        return self.wait(self.start(plan))

    def start(self, plan: ZonePlan) -> List[Any]:
        """Send the plan's writes; returns the actions still running, for ``wait()`` or ``settle()``.

        Deletions are waited for here when creations or updates follow, so that a CNAME can
        replace the data it must not sit beside.
        """
        bound = self._zone(normalize_name(plan.zone))
        pending = [self._delete(bound, change) for change in plan.by_action("delete")]
        if pending and len(pending) < len(plan.changes):
            self.wait(pending)
            pending = []
        for change in plan.changes:
            if change.action == "create":
                pending.append(self._create(bound, change))
            elif change.action == "update":
                pending.extend(self._update(bound, change))
        return pending

    def _rrset_ref(self, bound: Any, change: Change) -> Any:
        return ZoneRRSet(zone=bound, name=relative_name(change.key[0], bound.name or change.key[0]),
                         type=change.key[1])

    def _delete(self, bound: Any, change: Change) -> Any:
        ref = self._rrset_ref(bound, change)
        response = self._call("deleting %s %s" % change.key, self.client.zones.delete_rrset, ref)
        return response.action

    def _create(self, bound: Any, change: Change) -> Any:
        after = _after(change)
        response = self._call(
            "creating %s %s" % change.key, self.client.zones.create_rrset, bound,
            name=relative_name(after.name, bound.name), type=after.type, ttl=after.ttl,
            records=api_records(after))
        return response.action

    def _update(self, bound: Any, change: Change) -> List[Any]:
        after = _after(change)
        ref = self._rrset_ref(bound, change)
        actions = []
        if change.values_changed:
            actions.append(self._call("setting the records of %s %s" % change.key,
                                      self.client.zones.set_rrset_records, ref, api_records(after)))
        if change.ttl_changed:
            actions.append(self._call("changing the TTL of %s %s" % change.key,
                                      self.client.zones.change_rrset_ttl, ref, after.ttl))
        return actions

    # ------------------------------------------------------------ actions

    def wait(self, actions: Sequence[Any]) -> List[int]:
        """Wait until every action has finished, asking about 25 at a time; returns their ids."""
        failures = self.settle({"": actions})
        if failures:
            raise ProviderError(failures[""])
        return [action.id for action in actions if action is not None]

    def settle(self, actions_by_zone: Dict[str, Sequence[Any]]) -> Dict[str, str]:
        """Wait for the actions of many zones together, 25 per status request.

        Returns what went wrong per zone (failed actions, or actions still running at the
        deadline); a zone whose actions all succeeded is not in the result.
        """
        owner = {action.id: zone for zone, actions in actions_by_zone.items() for action in actions
                 if action is not None}
        failed: Dict[str, List[Any]] = {}
        pending: List[int] = []
        for zone, actions in actions_by_zone.items():
            for action in actions:
                if action is not None and action.status == "error":
                    failed.setdefault(zone, []).append(action)
                elif action is not None and action.status == "running":
                    pending.append(action.id)
        deadline = time.monotonic() + self.settings.action_timeout
        while pending:
            # Ask first: most actions are done by the time the request that started them returns,
            # so a sleep before the first look only adds latency.
            still: List[int] = []
            for start in range(0, len(pending), ACTION_BATCH):
                batch = pending[start:start + ACTION_BATCH]
                response = self._call("waiting for actions", self.client.request, method="GET", url="/actions",
                                      params={"id": batch})
                for item in response.get("actions", []):
                    if item.get("status") == "error":
                        failed.setdefault(owner[item["id"]], []).append(_Action(item))
                    elif item.get("status") == "running":
                        still.append(item["id"])
            pending = still
            if not pending:
                break
            if time.monotonic() > deadline:
                break
            self.sleep(self.settings.poll_interval)
        problems = {zone: "the Hetzner Cloud API reports failed actions: %s" % "; ".join(
            "action %s (%s): %s" % (a.id, a.command, (a.error or {}).get("message", "failed")) for a in actions)
            for zone, actions in failed.items()}
        for zone in sorted(set(owner[ident] for ident in pending)):
            late = [ident for ident in pending if owner[ident] == zone]
            problems[zone] = "; ".join(filter(None, [problems.get(zone), "actions %s still running after %gs; look at "
                                                     "the zone in the Hetzner console and run again"
                                                     % (late, self.settings.action_timeout)]))
        return problems


class _Action:
    """An action as a plain JSON object from the actions endpoint."""

    def __init__(self, data: dict) -> None:
        self.id = data.get("id")
        self.command = data.get("command")
        self.status = data.get("status")
        self.error = data.get("error")


def _after(change: Change) -> RecordSet:
    if change.after is None:
        raise ProviderError("%s %s: a create or update needs the record set after it" % change.key)
    return change.after


def api_value(rtype: str, value: str) -> str:
    """A normalised value in the form the API stores (TXT quoted and split)."""
    if rtype == "TXT":
        return txt_presentation(normalize_txt(value))
    return value


def api_records(rrset: RecordSet) -> List[Any]:
    return [ZoneRecord(value=api_value(rrset.type, value)) for value in rrset.values]
