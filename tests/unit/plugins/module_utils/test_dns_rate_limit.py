# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Hetzner Cloud rate limit: the stand-in's token bucket, and the provider under a small one."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest

from ansible_collections.kibamail.email_platform.plugins.module_utils import dns_records as R
from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_provider_hetzner import (
    HetznerProvider,
    HetznerSettings,
    rate_limit_delay,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_zones import reconcile_many

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "standins"))
import cloud_dns_api  # noqa: E402
from cloud_dns_api import CloudDnsStandin  # noqa: E402

TOKEN = "rate-token"
ZONES = ["c%d.example" % index for index in range(1, 9)]


@pytest.fixture
def servers():
    started = []

    def start(**options: Any) -> CloudDnsStandin:
        server = CloudDnsStandin(TOKEN, action_polls=0, **options).start()
        for zone in ZONES:
            server.state.add_zone(zone)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def get(server: CloudDnsStandin, path: str = "/zones", token: str = TOKEN) -> Tuple[int, Dict[str, str], Any]:
    request = urllib.request.Request(server.url + path, headers={"Authorization": "Bearer %s" % token})
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310 - loopback stand-in
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def statuses(server: CloudDnsStandin, count: int) -> list:
    return [get(server)[0] for attempt in range(count)]


# ------------------------------------------------------------ the stand-in


def test_defaults_are_hetzners_and_every_answer_says_where_the_budget_stands(servers):
    server = servers()
    before = time.time()
    answers = [get(server), get(server, "/zones/nope.example"), get(server, token="wrong")]
    assert [answer[0] for answer in answers] == [200, 404, 401]
    assert [answer[1]["RateLimit-Limit"] for answer in answers] == ["3600"] * 3
    # every request counts, authenticated or not; one request comes back per second
    assert [answer[1]["RateLimit-Remaining"] for answer in answers] == ["3599", "3598", "3597"]
    reset = int(answers[-1][1]["RateLimit-Reset"])
    assert before + 2 <= reset <= time.time() + 4


def test_an_empty_bucket_answers_429_with_hetzners_error_body(servers):
    server = servers(rate_limit=2, rate_refill=0.5)
    assert statuses(server, 2) == [200, 200]
    status, headers, body = get(server)
    assert status == 429
    assert body == {"error": {"code": "rate_limit_exceeded", "message": "limit of 2 requests per hour reached",
                              "details": {}}}
    assert headers["RateLimit-Limit"] == "2" and headers["RateLimit-Remaining"] == "0"
    assert time.time() + 3 <= int(headers["RateLimit-Reset"]) <= time.time() + 5  # 2 requests at 0.5/s
    assert "Retry-After" not in headers  # Hetzner documents none
    assert server.state.rate_limited == 1


class Clock:
    """The stand-in's monotonic clock, moved by the test only (a loaded machine's pauses between
    requests would refill the bucket on a real clock); everything else is the real time module."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_the_bucket_refills_gradually_up_to_its_limit(servers, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(cloud_dns_api, "time", clock)
    server = servers(rate_limit=3, rate_refill=20)
    assert statuses(server, 4) == [200, 200, 200, 429]
    clock.now += 0.08  # 1.6 requests come back
    assert statuses(server, 2) == [200, 429]
    clock.now += 0.5  # ten would come back; the bucket holds three
    assert statuses(server, 4) == [200, 200, 200, 429]


def test_without_refill_the_bucket_never_resets(servers):
    server = servers(rate_limit=1, rate_refill=0)
    assert get(server)[0] == 200
    status, headers = get(server)[:2]
    assert status == 429 and int(headers["RateLimit-Reset"]) > time.time() + 300 * 24 * 3600


# ------------------------------------------------------------ the client


@pytest.mark.parametrize("headers,delay", [
    ({"RateLimit-Limit": "3600", "RateLimit-Remaining": "0", "RateLimit-Reset": "4600"}, 1.0),  # Hetzner: 1/s
    ({"RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "1002"}, 0.2),
    ({"RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "1002", "Retry-After": "7"}, 7.0),
    ({}, 1.0),  # a 429 that says nothing: Hetzner's refill of one request per second
])
def test_the_wait_after_a_429_is_what_the_headers_say(headers, delay):
    assert rate_limit_delay(headers, 1000.0) == pytest.approx(delay)


def records(zone: str) -> list:
    return [{"name": "%s.%s" % (name, zone), "type": "A", "ttl": 300, "values": ["192.0.2.%d" % (index + 10)]}
            for index, name in enumerate(("smtp", "mx1", "mx2"))]


def job(server: CloudDnsStandin, concurrency: int, rate_limit_wait: float) -> list:
    """Eight zones of four new record sets each (three and the ownership record): 8 reads, 32 writes."""
    settings = HetznerSettings(TOKEN, server.url, poll_interval=0, rate_limit_wait=rate_limit_wait)
    requests = [R.ZoneRequest(zone, records(zone)) for zone in ZONES]
    return reconcile_many(lambda: HetznerProvider(settings), requests, False, concurrency)


def test_a_job_larger_than_the_bucket_completes_by_waiting_as_the_headers_say(servers):
    server = servers(rate_limit=10, rate_refill=5)
    started = time.monotonic()
    results = job(server, concurrency=4, rate_limit_wait=30)
    elapsed = time.monotonic() - started
    assert [result["failed"] for result in results] == [False] * len(ZONES)
    assert all(result["summary"]["create"] == 4 for result in results)
    served = len(server.requests) - server.state.rate_limited
    assert served == 40 and server.state.rate_limited >= 1
    assert all(len(zone.rrsets) == 6 for zone in server.state.zones.values())
    # 10 at once, then 30 more at 5 per second. The 4 threads wait independently, so several may wake
    # for the same free request (about 3 refusals per request here), but never spin: each waits as told.
    assert 5 <= elapsed < 15
    assert server.state.rate_limited < 4 * 30
    print("40 requests on a bucket of 10 refilled 5/s, 4 threads: %.1f s, %d x 429"
          % (elapsed, server.state.rate_limited))


def test_an_exhausted_budget_fails_the_zones_it_reaches_clearly_and_the_others_keep_their_results(servers):
    server = servers(rate_limit=10, rate_refill=0)
    started = time.monotonic()
    results = job(server, concurrency=1, rate_limit_wait=30)
    assert time.monotonic() - started < 5  # the headers say no request comes free in time: no waiting
    assert [result["failed"] for result in results] == [False, False] + [True] * 6
    assert all(result["changed"] and result["summary"]["create"] == 4 for result in results[:2])
    for result in results[2:]:
        assert result["changed"] is False
        assert "rate limit was reached" in result["msg"] and "run again later" in result["msg"]
        assert "nothing was written to it" in result["msg"]
    assert server.state.rate_limited == 6  # one refused read per failed zone, never retried
