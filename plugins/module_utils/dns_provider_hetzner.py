# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hetzner Cloud DNS provider: zones and record sets through ``hcloud`` (client.zones).

Reads every record set of the zone once (paged), then writes the plan's
changes: deletions first (waited for, so a CNAME can replace other data),
then creations and updates. Every write returns an action; actions are waited
for together, at most 25 per status request. The hcloud client already
retries ``rate_limit_exceeded`` and ``conflict`` with backoff, so no second
retry loop is stacked on top.

Record set names in the API are relative to the zone (``@`` for the apex);
TXT values are quoted strings of at most 255 characters each.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Sequence

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
    from hcloud.zones import ZoneRecord, ZoneRRSet
except ImportError:
    HAS_HCLOUD = False
    HCLOUD_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_HCLOUD = True
    HCLOUD_IMPORT_ERROR = None

ACTION_BATCH = 25
APPLICATION = "kibamail.email_platform"


@dataclass
class HetznerSettings:
    token: str
    endpoint: str = "https://api.hetzner.cloud/v1"
    poll_interval: float = 1.0
    action_timeout: float = 300.0


class HetznerProvider:
    """Read and change one zone in the Hetzner Cloud DNS API."""

    query_types: Sequence[str] = ()

    def __init__(self, settings: HetznerSettings, client: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if client is None:
            if not HAS_HCLOUD:
                raise ProviderError("the hetzner provider needs the Python package hcloud (>= 2.11) on the controller")
            client = Client(token=settings.token, api_endpoint=settings.endpoint, application_name=APPLICATION)
        self.settings = settings
        self.client = client
        self.sleep = sleep
        self._zones: dict = {}

    # ------------------------------------------------------------ errors

    def _error(self, error: Exception, doing: str) -> ProviderError:
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
            "rate_limit_exceeded": "the API rate limit stayed exhausted after the client's retries; run again later",
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
        if zone not in self._zones:
            try:
                self._zones[zone] = self.client.zones.get(zone)
            except Exception as error:  # noqa: BLE001 - mapped below
                if getattr(error, "code", None) == "not_found":
                    raise ProviderError("zone %s does not exist in the Hetzner Cloud project of this token: create "
                                        "it first (for example with hetzner.hcloud.zone) or check hcloud_token" % zone)
                raise self._error(error, "reading zone %s" % zone)
        return self._zones[zone]

    def read(self, zone: str, keys: Iterable[Any] = ()) -> List[RecordSet]:
        """Every record set of the zone, normalised."""
        zone = normalize_name(zone)
        bound = self._zone(zone)
        rrsets = self._call("listing the record sets of %s" % zone, self.client.zones.get_rrset_all, bound)
        result = []
        for rrset in rrsets:
            values = [record.value for record in (rrset.records or [])]
            ttl = rrset.ttl if rrset.ttl is not None else getattr(bound, "ttl", None) or 3600
            if not values:
                continue
            try:
                result.append(record_set(absolute_name(rrset.name, zone), rrset.type, ttl, values))
            except RecordError as error:
                raise ProviderError("zone %s holds a record set the module cannot read: %s" % (zone, error))
        return sorted(result, key=lambda item: item.key)

    # ------------------------------------------------------------ write

    def apply(self, plan: ZonePlan) -> List[int]:
        """Write the plan's changes; returns the ids of the actions waited for."""
        zone = normalize_name(plan.zone)
        bound = self._zone(zone)
        done: List[int] = []
        deletes = [self._delete(bound, change) for change in plan.by_action("delete")]
        done.extend(self.wait(deletes))
        writes: List[Any] = []
        for change in plan.changes:
            if change.action == "create":
                writes.append(self._create(bound, change))
            elif change.action == "update":
                writes.extend(self._update(bound, change))
        done.extend(self.wait(writes))
        return done

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
        """Wait until every action has finished, asking about 25 at a time."""
        pending = [action.id for action in actions if action is not None and action.status == "running"]
        failed = [action for action in actions if action is not None and action.status == "error"]
        self._raise_failed(failed)
        deadline = time.monotonic() + self.settings.action_timeout
        while pending:
            # Ask first: most actions are done by the time the request that started them returns,
            # so a sleep before the first look only adds latency.
            still: List[int] = []
            for start in range(0, len(pending), ACTION_BATCH):
                batch = pending[start:start + ACTION_BATCH]
                response = self._call("waiting for actions", self.client.request, method="GET", url="/actions",
                                      params={"id": batch})
                states = response.get("actions", [])
                self._raise_failed([_Action(item) for item in states if item.get("status") == "error"])
                still.extend(item["id"] for item in states if item.get("status") == "running")
            pending = still
            if not pending:
                break
            if time.monotonic() > deadline:
                raise ProviderError("actions %s still running after %gs; look at the zone in the Hetzner console "
                                    "and run again" % (pending, self.settings.action_timeout))
            self.sleep(self.settings.poll_interval)
        return [action.id for action in actions if action is not None]

    @staticmethod
    def _raise_failed(failed: Sequence[Any]) -> None:
        if not failed:
            return
        details = "; ".join("action %s (%s): %s" % (a.id, a.command, (a.error or {}).get("message", "failed"))
                            for a in failed)
        raise ProviderError("the Hetzner Cloud API reports failed actions: %s" % details)


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
