# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dns_zone with zones (many zones in one task) over RFC 2136 against a real BIND on loopback."""

from __future__ import annotations

from pathlib import Path

import dns.rcode
import pytest

HERE = Path(__file__).resolve().parent
SERVED = ["kbmta.net", "kibamail.com", "example.test"]  # the zones conftest's BIND serves


def zone_records(zone):
    return [{"name": "_dmarc", "type": "TXT", "values": ["v=DMARC1; p=none"]},
            {"name": "kb-bounces", "type": "CNAME", "values": ["kb-bounces.kbmta.net."]},
            {"name": "mx", "type": "A", "values": ["192.0.2.25"]},
            {"name": "@", "type": "MX", "values": ["10 mx.%s." % zone]}]


@pytest.fixture
def zones_run(bind, tmp_path, playbook_runner):
    """Run zone.yml with zones (one dns_zone task for every zone) against the loopback BIND."""

    def run(zones, args=None, **options):
        settings = {"zones": zones, "provider": "rfc2136", "server": "127.0.0.1", "port": bind.port,
                    "tsig_key_name": bind.key_name, "tsig_key_secret": bind.key_secret}
        settings.update(options)
        return playbook_runner(HERE / "zone.yml", {"dns_zone_args": settings}, tmp_path, args=args)

    return run


def result_of(run):
    (result,) = run.task("Reconcile the zone")
    return result


def published(bind, name, rtype):
    response = bind.query(name, rtype)
    return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


def test_converge_then_reconverge_unchanged(bind, zones_run):
    zones = [{"zone": zone, "records": zone_records(zone)} for zone in SERVED]
    first = result_of(zones_run(zones, concurrency=2))
    assert first["changed"] is True
    assert [(z["zone"], z["changed"], z["summary"]["create"]) for z in first["zones"]] == [
        (zone, True, 5) for zone in SERVED]
    for zone in SERVED:
        assert published(bind, "mx." + zone, "A") and published(bind, zone, "MX")

    again = result_of(zones_run(zones, concurrency=2))
    assert again["changed"] is False
    assert [z["changed"] for z in again["zones"]] == [False] * 3
    assert again["summary"]["unchanged"] == 15

    zones[1]["records"][0]["values"] = ["v=DMARC1; p=reject"]
    third = result_of(zones_run(zones))
    assert [z["changed"] for z in third["zones"]] == [False, True, False]


def test_check_mode_and_diff_per_zone(bind, zones_run):
    zones = [{"zone": zone, "records": zone_records(zone)} for zone in SERVED[:2]]
    result = result_of(zones_run(zones, args=["--check", "--diff"]))
    assert result["changed"] is True
    assert [len(z["diff"]) for z in result["zones"]] == [5, 5]
    assert "_dmarc.kibamail.com. 3600 IN TXT" in result["zones"][1]["diff"][0]["after"]
    assert not published(bind, "mx.kbmta.net", "A")


def test_bad_input_fails_before_anything_is_written(bind, zones_run):
    zones = [{"zone": zone, "records": zone_records(zone)} for zone in SERVED]
    zones[2]["records"].append({"name": "www", "type": "A", "values": ["192.0.2.300"]})
    run = zones_run(zones)
    assert run.rc != 0
    result = result_of(run)
    assert result["msg"].startswith("1 of 3 zones cannot be published as given, so nothing was written: "
                                    "zone example.test: A value '192.0.2.300' is not an IP address")
    assert not published(bind, "mx.kbmta.net", "A")


def test_a_zone_the_server_does_not_serve_fails_alone(bind, zones_run):
    names = ["kbmta.net", "not-served.test", "kibamail.com"]
    run = zones_run([{"zone": zone, "records": zone_records(zone)} for zone in names])
    assert run.rc != 0
    result = result_of(run)
    assert result["changed"] is True
    assert result["msg"].startswith("1 of 3 zones failed: zone not-served.test: zone transfer of not-served.test")
    assert "The other 2 zones were reconciled (2 changed)" in result["msg"]
    failed = result["zones"][1]
    assert failed["failed"] is True and failed["changed"] is False
    assert failed["msg"].endswith("nothing was written to it")
    assert published(bind, "mx.kbmta.net", "A") and published(bind, "mx.kibamail.com", "A")
