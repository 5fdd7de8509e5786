# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports: the table shows problems with their fixes, JSON round-trips, HTML escapes what it shows."""

from __future__ import annotations

import json

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_report import (
    render_html,
    render_table,
    summary_line,
    to_json,
    write_file,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import failure, ok, warning

RESULTS = [
    ok("platform", "spf_record", "spf.kbmta.net", "one record"),
    failure("ip", "ptr", "192.0.2.3", "no PTR", "set the PTR of 192.0.2.3 to us-mta1.kbmta.net"),
    warning("customer", "dmarc", "shop.example", "p=none <script>", "raise the policy"),
] + [ok("ip", "ptr", "192.0.2.%d" % i, "fine") for i in range(10, 20)]


def test_table_lists_problems_with_fixes_and_counts_ok():
    table = render_table(RESULTS)
    lines = table.splitlines()
    assert lines[-1] == "FAILED: 13 checks, 1 failures, 1 warnings, 11 ok"
    assert any(line.startswith("FAIL  ptr") and "192.0.2.3" in line for line in lines)
    assert any("fix: set the PTR of 192.0.2.3 to us-mta1.kbmta.net" in line for line in lines)
    assert any(line.startswith("OK    ptr") and "10 subjects" in line for line in lines)
    assert table.index("== Platform DNS") < table.index("== Sending IPs") < table.index("== Customer domains")
    assert "192.0.2.15" in render_table(RESULTS, show_ok=True) and "192.0.2.15" not in table


def test_table_caps_repeated_problems():
    many = [failure("ip", "helo", "192.0.2.%d" % i, "SPF fails", "fix SPF") for i in range(30)]
    table = render_table(many, per_check=5)
    assert table.count("FAIL  helo                     192.0.2.") == 5
    assert "FAIL  helo                     ... and 25 more (all of them in the JSON and HTML reports)" in table


def test_json_round_trips():
    document = json.loads(to_json(RESULTS, {"platform": "kbmta.net"}))
    assert document["summary"] == {"ok": 11, "warning": 1, "failure": 1, "total": 13}
    assert document["results"][0]["category"] == "platform"
    assert {"check", "subject", "status", "reason", "fix", "category"} == set(document["results"][1])


def test_html_escapes_and_puts_problems_first(tmp_path):
    page = render_html(RESULTS, {"platform": "kbmta.net", "nameserver": "127.0.0.1 port 53"})
    assert "<script>" not in page and "p=none &lt;script&gt;" in page
    assert page.index("192.0.2.3") < page.index("192.0.2.10")
    assert 'class="verdict v-failure"' in page
    write_file(str(tmp_path / "deep" / "v.html"), page)
    assert (tmp_path / "deep" / "v.html").read_text() == page
    assert summary_line(RESULTS[:1]) == "PASSED: 1 checks, 0 failures, 0 warnings, 1 ok"
