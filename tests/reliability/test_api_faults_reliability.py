# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The API appliers under faults: rate limits, 500s, 503s and slow answers from the Robot and
Cloud DNS stand-ins (on 127.0.0.1). Each run completes or fails with a message that says what
happened and what to do; a re-run converges; no record is ever written twice (counted in the
stand-ins' request logs). Modules run through ansible-playbook, as an operator runs them."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from reliability_support import ROOT, PlaybookRun, run_playbook

from cloud_dns_api import CloudDnsState, Handler as CloudHandler  # noqa: E402 (tests/standins on sys.path)
from robot_api import FaultRule, RateLimiter, RobotStandin  # noqa: E402

ROBOT_USER = "kb-reliability"
ROBOT_PASSWORD = "robot-password-for-tests"
HCLOUD_TOKEN = "hcloud-token-for-tests"
RDNS_PLAYBOOK = ROOT / "tests" / "integration" / "robot" / "rdns.yml"
SUBNETS_PLAYBOOK = ROOT / "tests" / "integration" / "robot" / "subnets.yml"
ZONE_PLAYBOOK = ROOT / "tests" / "integration" / "dns" / "zone.yml"
WRITES = ("PUT", "POST", "DELETE")


# ---------------------------------------------------------------- Robot


def robot_seed() -> Dict[str, Any]:
    return {
        "servers": [{"server_ip": "203.0.113.21", "server_number": 101, "server_name": "us-mta1"},
                    {"server_ip": "203.0.113.22", "server_number": 102, "server_name": "us-mta2"}],
        "subnets": [{"ip": "192.0.2.0", "mask": 24, "gateway": "192.0.2.1", "server_ip": "203.0.113.21",
                     "server_number": 101, "failover": False, "locked": False}],
        "products": {"101": [{"id": "subnet_ipv4_29", "name": "Additional subnet /29"}]},
        "order_pool": [{"ip": "203.0.113.64", "mask": 29, "gateway": "203.0.113.65"}],
        "order_ready_after": 1.0,
    }


def ptr_map(count: int) -> Dict[str, str]:
    """PTRs of the first count addresses of the transactional /24, split between two MTAs."""
    return {"192.0.2.%d" % n: ("us-mta1" if n % 2 else "us-mta2") + ".kbmta.net" for n in range(2, 2 + count)}


@pytest.fixture
def robot(tmp_path: Path) -> Iterator[RobotStandin]:
    server = RobotStandin(ROBOT_USER, ROBOT_PASSWORD, state=robot_seed(),
                          state_file=str(tmp_path / "robot-state.json")).start()
    yield server
    server.stop()


def run_rdns(robot: RobotStandin, tmp_path: Path, wanted: Dict[str, str], **extra: Any) -> PlaybookRun:
    variables = {"robot_url": robot.url, "robot_user": ROBOT_USER, "robot_password": ROBOT_PASSWORD,
                 "ptr_map": wanted}
    variables.update(extra)
    vars_file = tmp_path / ("rdns-vars-%d.json" % len(list(tmp_path.glob("rdns-vars-*.json"))))
    vars_file.write_text(json.dumps(variables))
    return run_playbook(["-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + _python(),
                         "-e", "@%s" % vars_file, str(RDNS_PLAYBOOK)])


def run_subnets(robot: RobotStandin, tmp_path: Path, **extra: Any) -> PlaybookRun:
    variables = {"robot_url": robot.url, "robot_user": ROBOT_USER, "robot_password": ROBOT_PASSWORD}
    variables.update(extra)
    vars_file = tmp_path / ("subnet-vars-%d.json" % len(list(tmp_path.glob("subnet-vars-*.json"))))
    vars_file.write_text(json.dumps(variables))
    return run_playbook(["-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + _python(),
                         "-e", "@%s" % vars_file, str(SUBNETS_PLAYBOOK)])


def _python() -> str:
    return str(ROOT / ".venv" / "bin" / "python")


def robot_writes(robot: RobotStandin, since: int = 0) -> List[Dict[str, Any]]:
    """Successful writes in the stand-in's request log (index since onwards)."""
    return [e for e in list(robot.log)[since:] if e["method"] in WRITES and 200 <= e["status"] < 300]


def test_robot_maintenance_mid_run_then_rerun_writes_each_ptr_once(robot: RobotStandin, tmp_path: Path,
                                                                   figures: Dict[str, Any]) -> None:
    wanted = ptr_map(40)
    # Maintenance starts after 15 calls and lasts: the run must stop, say so, and keep what it wrote.
    robot.faults.append(FaultRule(path="/rdns", status=503, code="MAINTENANCE", skip=15, count=10000))
    first = run_rdns(robot, tmp_path, wanted)
    assert first.rc != 0
    failed = first.task("Reconcile")
    assert failed["failed"] is True
    assert "503 MAINTENANCE" in failed["msg"], failed["msg"]
    written = robot.snapshot()["rdns"]
    assert 0 < len(written) < len(wanted) and all(wanted[ip] == ptr for ip, ptr in written.items())

    # Maintenance over: the re-run writes only what is missing.
    robot.faults.clear()
    mark = len(robot.log)
    second = run_rdns(robot, tmp_path, wanted)
    assert second.rc == 0, second.stdout[-3000:]
    assert second.task("Reconcile")["changed"] is True
    assert robot.snapshot()["rdns"] == wanted
    assert {e["path"][len("/rdns/"):] for e in robot_writes(robot, mark)} == set(wanted) - set(written)

    # Across both runs, every PTR was written exactly once.
    per_ip = Counter(e["path"] for e in robot_writes(robot))
    assert len(per_ip) == len(wanted) and set(per_ip.values()) == {1}

    # And a third run writes nothing.
    mark = len(robot.log)
    third = run_rdns(robot, tmp_path, wanted)
    assert third.rc == 0 and third.task("Reconcile")["changed"] is False
    assert robot_writes(robot, mark) == []
    figures.update(ptrs=len(wanted), fault="503 MAINTENANCE from call 16 on", first_run="failed clearly",
                   written_before_fault=len(written), duplicate_writes=0)


def test_robot_rate_limits_500s_503s_and_slow_answers_in_one_run(robot: RobotStandin, tmp_path: Path,
                                                                 figures: Dict[str, Any]) -> None:
    wanted = ptr_map(60)
    robot.rdns_limit = RateLimiter(limit=20, interval=5.0)
    robot.faults.extend([
        FaultRule(method="GET", path="/rdns", status=503, code="MAINTENANCE", count=1),
        FaultRule(method="PUT", path="/rdns", status=500, code="INTERNAL_ERROR", skip=5, count=2),
        FaultRule(method="PUT", path="/rdns", status=503, code="MAINTENANCE", skip=20, count=1),
        FaultRule(method="PUT", path="/rdns", status=403, code="RATE_LIMIT_EXCEEDED", skip=30, count=1),
        FaultRule(method="PUT", path="/rdns", status=0, delay=1.5, skip=40, count=2),
    ])
    started = time.monotonic()
    run = run_rdns(robot, tmp_path, wanted, rate_limit_timeout=120)
    assert run.rc == 0, run.stdout[-3000:]
    result = run.task("Reconcile")
    assert result["changed"] is True and result["summary"]["create"] == len(wanted)
    assert robot.snapshot()["rdns"] == wanted
    log = list(robot.log)
    faults_seen = Counter((e["status"], e["code"]) for e in log if e["status"] >= 400 and e["code"] != "NOT_FOUND")
    assert faults_seen[(500, "INTERNAL_ERROR")] == 2 and faults_seen[(503, "MAINTENANCE")] == 2
    assert faults_seen[(403, "RATE_LIMIT_EXCEEDED")] >= 2
    per_ip = Counter(e["path"] for e in robot_writes(robot))
    assert len(per_ip) == len(wanted) and set(per_ip.values()) == {1}

    mark = len(robot.log)
    again = run_rdns(robot, tmp_path, wanted, rate_limit_timeout=120)
    assert again.rc == 0 and again.task("Reconcile")["changed"] is False
    assert robot_writes(robot, mark) == []
    figures.update(ptrs=len(wanted), faults_injected=sum(faults_seen.values()) + 2,
                   fault_kinds="%s + 2 slow answers (1.5 s)" % dict(sorted(
                       ("%d %s" % k, v) for k, v in faults_seen.items())),
                   seconds=round(time.monotonic() - started, 1), duplicate_writes=0)


def test_robot_wrong_password_fails_at_once_and_says_what_to_fix(robot: RobotStandin, tmp_path: Path) -> None:
    variables = {"robot_password": "not-the-password"}
    run = run_rdns(robot, tmp_path, ptr_map(3), **variables)
    assert run.rc != 0
    msg = run.task("Reconcile")["msg"]
    assert "401" in msg and "password" in msg.lower(), msg
    assert len(robot.log) == 1 and robot_writes(robot) == []


def test_robot_subnet_info_rides_out_a_503_and_a_slow_answer(robot: RobotStandin, tmp_path: Path) -> None:
    robot.faults.extend([FaultRule(method="GET", path="/subnet", status=503, code="MAINTENANCE", count=1),
                         FaultRule(method="GET", path="/subnet", status=0, delay=1.5, count=1)])
    run = run_subnets(robot, tmp_path)
    assert run.rc == 0, run.stdout[-3000:]
    result = run.task("Subnets")
    assert result["changed"] is False and "192.0.2.0/24" in json.dumps(result)
    assert [e["status"] for e in robot.log if e["path"].startswith("/subnet")][:2] == [503, 200]


def test_robot_subnet_info_lasting_500_fails_clearly(robot: RobotStandin, tmp_path: Path) -> None:
    robot.faults.append(FaultRule(method="GET", path="/subnet", status=500, code="INTERNAL_ERROR", count=100))
    run = run_subnets(robot, tmp_path)
    assert run.rc != 0
    msg = run.task("Subnets")["msg"]
    assert "500" in msg and "INTERNAL_ERROR" in msg and "Traceback" not in msg, msg


def test_robot_order_is_never_repeated_after_a_server_error(robot: RobotStandin, tmp_path: Path,
                                                            figures: Dict[str, Any]) -> None:
    order = {"order": True, "order_test": False, "order_confirm": True, "order_subnet": "203.0.113.64/29"}
    robot.faults.append(FaultRule(method="POST", path="/order/server_addon/transaction", status=503,
                                  code="MAINTENANCE", count=1))
    first = run_subnets(robot, tmp_path, **order)
    assert first.rc != 0
    msg = first.task("Order")["msg"]
    assert "503" in msg and "Traceback" not in msg, msg
    posts = [e for e in robot.log if e["method"] == "POST"]
    assert len(posts) == 1, "an order was retried: %s" % posts
    assert robot.snapshot()["transactions"] == []

    second = run_subnets(robot, tmp_path, **order)
    assert second.rc == 0, second.stdout[-3000:]
    assert second.task("Order")["outcome"] == "ordered"
    third = run_subnets(robot, tmp_path, **order)
    assert third.rc == 0 and third.task("Order")["outcome"] == "exists" and third.task("Order")["changed"] is False
    assert len(robot.snapshot()["transactions"]) == 1
    assert len([e for e in robot.log if e["method"] == "POST" and e["status"] < 300]) == 1
    figures.update(fault="503 on the order", order_attempts_in_failed_run=1, orders_placed=1)


# ---------------------------------------------------------------- Cloud DNS


@dataclass
class CloudFault:
    """Answer the matching requests (method, path prefix) with a status, or only delay them (status 0)."""

    method: str
    path: str
    status: int
    code: str = ""
    count: int = 1
    skip: int = 0
    delay: float = 0.0
    json_body: bool = True


class FaultyCloudDns:
    """The Cloud DNS stand-in behind a fault injector: faults are answered before the stand-in sees the
    request, so the stand-in's request log holds only requests that reached it."""

    def __init__(self) -> None:
        self.state = CloudDnsState(HCLOUD_TOKEN, action_polls=0)
        self.state.add_zone("kbmta.net")
        self.faults: List[CloudFault] = []
        self.injected: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class FaultHandler(CloudHandler):
            state = outer.state

            def _handle(self, method: str) -> None:
                fault = outer.take(method, self.path)
                if fault is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.status:
                        length = int(self.headers.get("Content-Length") or 0)
                        if length:
                            self.rfile.read(length)
                        body = ({"error": {"code": fault.code, "message": "injected %d" % fault.status,
                                           "details": {}}} if fault.json_body else None)
                        with outer.lock:
                            outer.injected.append({"method": method, "path": self.path, "status": fault.status})
                        self._send(fault.status, body)
                        return
                super()._handle(method)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), FaultHandler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/v1" % self.httpd.server_address[1]

    def take(self, method: str, path: str) -> Optional[CloudFault]:
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and fault.method in ("", method) and path.startswith(fault.path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.count -= 1
                    return fault
        return None

    def writes(self, since: int = 0) -> List[Dict[str, Any]]:
        return [r for r in self.state.requests[since:] if r["method"] in WRITES]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def cloud() -> Iterator[FaultyCloudDns]:
    server = FaultyCloudDns()
    yield server
    server.stop()


DKIM = "v=DKIM1; k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" * 9
ZONE_RECORDS = [
    {"name": "smtp.kbmta.net", "type": "A", "values": ["192.0.2.10"]},
    {"name": "us-mta1.kbmta.net", "type": "A", "values": ["192.0.2.21"]},
    {"name": "us-mta2.kbmta.net", "type": "A", "values": ["192.0.2.22"]},
    {"name": "kb-bounces.kbmta.net", "type": "MX", "values": ["10 us-mta1.kbmta.net.", "10 us-mta2.kbmta.net."]},
    {"name": "spf.kbmta.net", "type": "TXT", "values": ["v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all"]},
    {"name": "kb1._domainkey.kbmta.net", "type": "TXT", "values": [DKIM]},
    {"name": "www.kbmta.net", "type": "CNAME", "values": ["smtp.kbmta.net."]},
]


def run_zone(cloud: FaultyCloudDns, tmp_path: Path) -> PlaybookRun:
    settings = {"zone": "kbmta.net", "provider": "hetzner", "hcloud_token": HCLOUD_TOKEN,
                "hcloud_endpoint": cloud.url, "records": ZONE_RECORDS}
    vars_file = tmp_path / ("zone-vars-%d.json" % len(list(tmp_path.glob("zone-vars-*.json"))))
    vars_file.write_text(json.dumps({"dns_zone_args": settings}))
    return run_playbook(["-i", "localhost,", "-c", "local", "-e", "@%s" % vars_file, str(ZONE_PLAYBOOK)])


def zone_values(cloud: FaultyCloudDns) -> Dict[str, List[str]]:
    zone = cloud.state.zone("kbmta.net")
    return {"%s/%s" % key: sorted(r["value"] for r in rrset["records"]) for key, rrset in zone.rrsets.items()}


def created_rrsets(requests: List[Dict[str, Any]]) -> Counter:
    """name/type of every record set creation (POST .../rrsets) in a request log."""
    return Counter("%s/%s" % (r["body"]["name"], r["body"]["type"]) for r in requests
                   if r["method"] == "POST" and r["path"].endswith("/rrsets"))


def test_cloud_dns_rate_limits_and_slow_answers_are_waited_out(cloud: FaultyCloudDns, tmp_path: Path,
                                                               figures: Dict[str, Any]) -> None:
    cloud.faults.extend([
        CloudFault("GET", "/v1/zones", 429, "rate_limit_exceeded", count=2),
        CloudFault("POST", "/v1/zones/", 429, "rate_limit_exceeded", skip=2, count=1),
        CloudFault("GET", "/v1/zones/", 0, delay=2.0, count=2),
        CloudFault("POST", "/v1/zones/", 0, delay=1.5, skip=4, count=1),
    ])
    started = time.monotonic()
    first = run_zone(cloud, tmp_path)
    assert first.rc == 0, first.stdout[-3000:]
    assert first.task("Reconcile the zone")["changed"] is True
    assert len(cloud.injected) == 3
    created = created_rrsets(cloud.state.requests)
    wanted = {"%s/%s" % (r["name"].replace(".kbmta.net", ""), r["type"]) for r in ZONE_RECORDS}
    assert wanted <= set(created) and set(created.values()) == {1}

    mark = len(cloud.state.requests)
    again = run_zone(cloud, tmp_path)
    assert again.rc == 0 and again.task("Reconcile the zone")["changed"] is False
    assert cloud.writes(mark) == []
    figures.update(record_sets=len(ZONE_RECORDS), faults_injected="3 x 429 + 3 slow answers (1.5-2 s)",
                   seconds=round(time.monotonic() - started, 1), duplicate_writes=0)


@pytest.mark.parametrize("status, code, json_body", [(500, "server_error", True), (503, "maintenance", True),
                                                     (503, "", False)])
def test_cloud_dns_server_error_mid_run_fails_clearly_and_rerun_converges(
        cloud: FaultyCloudDns, tmp_path: Path, figures: Dict[str, Any], status: int, code: str,
        json_body: bool) -> None:
    # The third record set creation fails; the client does not retry 500/503 on writes.
    cloud.faults.append(CloudFault("POST", "/v1/zones/", status, code, skip=2, count=1, json_body=json_body))
    first = run_zone(cloud, tmp_path)
    assert first.rc != 0
    msg = first.task("Reconcile the zone")["msg"]
    assert str(code or status) in msg and "failed" in msg, msg
    assert "Traceback" not in msg
    partial = created_rrsets(cloud.state.requests)
    assert 0 < sum(partial.values()) < len(ZONE_RECORDS)

    second = run_zone(cloud, tmp_path)
    assert second.rc == 0, second.stdout[-3000:]
    assert second.task("Reconcile the zone")["changed"] is True
    values = zone_values(cloud)
    assert values["spf/TXT"] == ['"v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all"']
    assert values["kb-bounces/MX"] == ["10 us-mta1.kbmta.net.", "10 us-mta2.kbmta.net."]
    created = created_rrsets(cloud.state.requests)
    assert set(created.values()) == {1}, "a record set was created twice: %s" % created

    mark = len(cloud.state.requests)
    third = run_zone(cloud, tmp_path)
    assert third.rc == 0 and third.task("Reconcile the zone")["changed"] is False
    assert cloud.writes(mark) == []
    figures.update(fault="%d %s on the 3rd write" % (status, code or "(no JSON body)"), message=msg[:160],
                   record_sets_before_fault=sum(partial.values()), duplicate_writes=0)


def test_cloud_dns_lasting_outage_fails_before_writing(cloud: FaultyCloudDns, tmp_path: Path) -> None:
    cloud.faults.append(CloudFault("", "/v1/", 503, "maintenance", count=10000))
    run = run_zone(cloud, tmp_path)
    assert run.rc != 0
    msg = run.task("Reconcile the zone")["msg"]
    assert "maintenance" in msg and "kbmta.net" in msg, msg
    assert cloud.state.requests == [] and zone_values(cloud).keys() == {"@/SOA", "@/NS"}
