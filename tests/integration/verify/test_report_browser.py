# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The HTML status page in a real browser: Debian's Chromium, headless, at 1280x800.

The results are the lab's size and come from the collection's own code: the plan of the lab's
spec (two /24 pools, 506 sending IPs), the DNS checks run over the records a healthy platform
publishes with a few broken (four PTRs missing, one PTR wrong, one return-path CNAME missing),
HAProxy statistics with one backend down read by the real parser, and the SMTP results a lab
run gives (certificates from the lab's own CA: warnings), with one open relay. That is about
1,600 results, failures among them.

Chromium, driven over the DevTools protocol on a pipe, opens the page (it is written to
tests/output/verify-report/report.html) in a 1280x800 viewport, takes a screenshot (report.png
beside it) and evaluates a probe in the page that reports where the failures are in the DOM. The
first failure and its fix must be within the first viewport height, every failure must be shown,
grouped by fix, and the passing checks must be collapsed.
The same probe on the same results laid out as one plain table in check order (the way the page
used to look) finds the first failure far below the fold: the assertion can fail.
"""

from __future__ import annotations

import base64
import html
import ipaddress
import json
import os
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.kibamail.email_platform.plugins.module_utils.plan import build_plan
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_checks import DnsOptions, run_dns_checks
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import StaticResolver
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_report import order_results, render_html
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import FAILURE, OK, failure, ok, warning
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_smtp import parse_lb_stats, plan_smtp_targets
from bind import platform_records
from lab_spec import lab_spec
from verify_support import b64, rsa_key

ROOT = Path(__file__).resolve().parents[3]
OUTPUT = ROOT / "tests" / "output" / "verify-report"
WIDTH, HEIGHT = 1280, 800

# Run in the page once it has loaded; returns where things are (CSS pixels from the page's top).
PROBE = """(function () {
  var all = function (s) { return Array.prototype.slice.call(document.querySelectorAll(s)); };
  // checkVisibility: false inside a closed <details> (its content is content-visibility: hidden)
  var shown = function (e) { return e.checkVisibility(); };
  var failures = all('[data-status="failure"]');
  var first = failures[0];
  var fix = first ? first.querySelector('.fix') : null;
  var okRows = all('tr.r-ok');
  return {
    width: window.innerWidth,
    height: window.innerHeight,
    failure_top: first ? first.getBoundingClientRect().top + window.scrollY : -1,
    failure_fix_bottom: fix ? fix.getBoundingClientRect().bottom + window.scrollY : -1,
    failure_items: failures.length,
    failure_items_shown: failures.filter(shown).length,
    failure_subjects: failures.reduce(function (n, e) { return n + Number(e.getAttribute('data-count')); }, 0),
    ok_rows: okRows.length,
    ok_rows_shown: okRows.filter(shown).length,
    verdict: (document.getElementById('verdict') || {}).textContent || ''
  };
})()"""


def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed, and CI must run this test: scripts/setup-host.sh installs it")
    pytest.skip("chromium is not installed here: run scripts/setup-host.sh (it installs Debian's chromium) to run this test")


def lab_results():
    plan = build_plan(lab_spec())
    keys = {domain: b64(rsa_key()) for domain in plan["customers"]}
    records = platform_records(plan, keys)
    ips = sorted(plan["ptr_map"], key=ipaddress.ip_address)
    for ip in ips[100:104]:
        del records[(ipaddress.ip_address(ip).reverse_pointer, "PTR")]
    records[(ipaddress.ip_address(ips[300]).reverse_pointer, "PTR")] = ["mail.example.net."]
    del records[(plan["customers"]["shop.example"]["return_path"], "CNAME")]
    results = run_dns_checks(plan, StaticResolver(records), DnsOptions(
        dkim_public_keys=keys, dnsbl_zones=[], categories=["platform", "ip", "customer"], workers=4))
    relay_open = "us-mta2"
    for target in plan_smtp_targets(plan):
        subject = target.subject
        results.append(ok("host", "smtp_connect", subject, "port %d open; greeting 220 ESMTP Postfix" % target.port))
        results.append(ok("host", "smtp_auth", subject, "no AUTH before TLS"))
        if target.tls == "starttls":
            results.append(ok("host", "smtp_starttls", subject, "STARTTLS works (TLSv1.3, TLS_AES_256_GCM_SHA384)"))
        results.append(warning("host", "tls_certificate", subject, "the certificate (for %s) is not trusted: self-signed "
                               "certificate in certificate chain" % ", ".join(target.server_names),
                               "use a certificate from a public CA (or give ca_path the CA that signed it)"))
        results.append(ok("host", "smtp_auth_tls", subject, "AUTH PLAIN LOGIN after TLS" if target.auth == "required" else "no AUTH after TLS"))
        if subject.startswith(relay_open):
            results.append(failure("host", "open_relay", subject, "OPEN RELAY: an unauthenticated client got 250 2.1.5 Ok for "
                                   "relay-test@relay-test.invalid", "refuse relaying for unauthenticated clients"))
        else:
            results.append(ok("host", "open_relay", subject, "relay refused: 554 5.7.1 Relay access denied"))
    for lb in sorted(plan["load_balancers"]):
        rows = "".join("smtp_%s,%s,UP\n" % (lb, mta) for mta in sorted(plan["mtas"]))
        if lb == "lb-marketing":
            rows = rows.replace("eu-mta2,UP", "eu-mta2,DOWN")
        results += parse_lb_stats(lb, "# pxname,svname,status\n" + rows)
    return order_results(results)


def flat_page(results) -> str:
    """The same results as one plain table in check order: the layout this page replaced."""
    rows = "\n".join('<tr class="r r-%s"%s><td>%s</td><td>%s</td><td>%s</td><td class="fix">%s</td></tr>' % (
        r.status, ' data-status="failure" data-count="1"' if r.status == FAILURE else "", html.escape(r.check),
        html.escape(r.subject), html.escape(r.reason), html.escape(r.fix)) for r in results)
    return '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>flat</title></head><body><table>%s</table></body></html>' % rows


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe).

    Chromium reads commands from its file descriptor 3 and writes answers and events to 4, each
    message JSON ended by a NUL byte. No network, no port, no client library."""

    def __init__(self, binary: str, profile: Path, timeout: float = 120.0) -> None:
        self.timeout = timeout
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()

        def child_fds():
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        command = [
            binary, "--headless", "--remote-debugging-pipe",
            # CI runs the tests as root, and Chromium does not start as root with its sandbox on
            # ("Running as root without --no-sandbox is not supported"). The pages are local files
            # this test wrote, loaded with no network, so the sandbox would guard nothing here.
            "--no-sandbox",
            "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
            "--disable-background-networking", "--hide-scrollbars", "--user-data-dir=%s" % profile,
            "about:blank",
        ]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     # after child_fds, descriptors 3 and 4 are the pipes: keep them open
                                     preexec_fn=child_fds, pass_fds=(3, 4))  # pylint: disable=subprocess-popen-preexec-fn
        os.close(to_child)
        os.close(from_child)
        self._buffer = b""
        self._next_id = 0
        self.events = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _w, _x = select.select([self._in], [], [], max(0.0, left))
            chunk = os.read(self._in, 1 << 20) if ready else b""
            if not chunk:
                raise AssertionError("chromium stopped answering (%s): %s" % (
                    "timeout" if not ready else "pipe closed", self.proc.stderr.read().decode(errors="replace")[-2000:]
                    if self.proc.poll() is not None else "still running"))
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: bool = False, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._next_id:
                assert "error" not in answer, "%s: %s" % (method, answer["error"])
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._message(deadline))

    def open(self, page: Path, width: int, height: int) -> None:
        """Load a page in a viewport of width x height CSS pixels and wait for its load event."""
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.call("Page.enable", session=True)
        self.events = []
        self.call("Page.navigate", session=True, url=page.as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        answer = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in answer, answer["exceptionDetails"]
        return answer["result"]["value"]

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png")["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._out)
        os.close(self._in)
        self.proc.stderr.close()


def png_size(path: Path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path
    return struct.unpack(">II", head[16:24])


def test_failures_are_above_the_fold_in_chromium(tmp_path):
    binary = chromium()
    results = lab_results()
    failures = [r for r in results if r.status == FAILURE]
    assert len(results) > 1500 and 5 <= len(failures) <= 12 and sum(r.check == "ptr" for r in results) == 506
    page = render_html(results, {"platform": "kbmta.net", "nameserver": "198.51.100.53 port 53", "checks": "platform, ip, customer, host"})
    OUTPUT.mkdir(parents=True, exist_ok=True)
    report = OUTPUT / "report.html"
    report.write_text(page, encoding="utf-8")

    (tmp_path / "flat.html").write_text(flat_page(results), encoding="utf-8")
    browser = Browser(binary, tmp_path / "profile")
    try:
        browser.open(report, WIDTH, HEIGHT)
        seen = browser.evaluate(PROBE)
        screenshot = OUTPUT / "report.png"
        browser.screenshot(screenshot)
        browser.open(tmp_path / "flat.html", WIDTH, HEIGHT)
        flat = browser.evaluate(PROBE)
    finally:
        browser.close()

    assert png_size(screenshot) == (WIDTH, HEIGHT)
    assert (seen["width"], seen["height"]) == (WIDTH, HEIGHT), seen
    assert seen["verdict"].startswith("FAILED: %d checks, %d failures" % (len(results), len(failures))), seen
    assert 0 < seen["failure_top"] < seen["failure_fix_bottom"] <= HEIGHT, "the first failure and its fix must be above the fold: %s" % seen
    assert seen["failure_items"] == seen["failure_items_shown"] < len(failures), "grouped, every group shown: %s" % seen
    assert seen["failure_subjects"] == len(failures), seen
    assert seen["ok_rows"] == sum(r.status == OK for r in results) and seen["ok_rows_shown"] == 0, "passing checks collapsed: %s" % seen

    # Negative control: the same probe on the plain table in check order finds the failures below the fold.
    assert flat["failure_subjects"] == len(failures), flat
    assert flat["failure_top"] > 5 * HEIGHT and flat["ok_rows_shown"] == flat["ok_rows"] > 1400, flat
