# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports: the table shows problems with their fixes, JSON round-trips; the HTML page leads with a summary and
the problems, one fix per group of subjects, addresses in numeric order, and escapes what it shows."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_report import (
    DASHED_MARK,
    SUBJECT_MARK,
    generalize,
    group_results,
    order_results,
    render_html,
    render_table,
    subject_key,
    subject_ranges,
    summary_line,
    to_json,
    write_file,
)
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import FAILURE, OK, WARNING, failure, ok, warning

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


# --------------------------------------------------------------------------
# order, ranges, groups

def test_subjects_sort_addresses_numerically_and_names_naturally():
    subjects = ["us-mta10.kbmta.net", "192.0.2.10", "2001:db8::2", "192.0.2.9", "198.51.100.1", "192.0.2.100",
                "us-mta2.kbmta.net", "lb 198.51.100.10:587", "lb 198.51.100.10:25", "2001:db8::10"]
    assert sorted(subjects, key=subject_key) == [
        "192.0.2.9", "192.0.2.10", "192.0.2.100", "198.51.100.1", "2001:db8::2", "2001:db8::10",
        "lb 198.51.100.10:25", "lb 198.51.100.10:587", "us-mta2.kbmta.net", "us-mta10.kbmta.net"]


def test_json_and_table_list_addresses_in_numeric_order():
    results = [ok("ip", "ptr", "192.0.2.%d" % i, "fine") for i in (10, 9, 100, 2)]
    document = json.loads(to_json(results, {}))
    assert [r["subject"] for r in document["results"]] == ["192.0.2.2", "192.0.2.9", "192.0.2.10", "192.0.2.100"]
    table = render_table(results, show_ok=True)
    assert table.index("192.0.2.9\n") < table.index("192.0.2.10\n") < table.index("192.0.2.100\n")
    assert [r.subject for r in order_results(results)] == [r["subject"] for r in document["results"]]


def test_consecutive_addresses_make_one_range():
    subjects = ["192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.9", "192.0.2.255", "192.0.3.0",
                "2001:db8::1", "2001:db8::2", "smtp.kbmta.net", "smtp-mkg.kbmta.net"]
    assert subject_ranges(subjects) == [
        ("192.0.2.2", "192.0.2.4"), ("192.0.2.9", "192.0.2.9"), ("192.0.2.255", "192.0.3.0"),
        ("2001:db8::1", "2001:db8::2"), ("smtp.kbmta.net", "smtp.kbmta.net"), ("smtp-mkg.kbmta.net", "smtp-mkg.kbmta.net")]
    assert subject_ranges(["203.0.113.255", "2001:db8::"]) == [("203.0.113.255", "203.0.113.255"), ("2001:db8::", "2001:db8::")]


def test_generalize_replaces_whole_subjects_only():
    s, d = SUBJECT_MARK, DASHED_MARK
    assert generalize("set the PTR of 192.0.2.1 to 192-0-2-1.us-mta1.kbmta.net", "192.0.2.1") == \
        "set the PTR of %s to %s.us-mta1.kbmta.net" % (s, d)
    assert generalize("add 192.0.2.10 and 10.192.0.2.1 and 192.0.2.1/32", "192.0.2.1") == "add 192.0.2.10 and 10.192.0.2.1 and %s/32" % s
    assert generalize("publish kb-bounces.shop.example CNAME; not my-shop.example or shop.example.org; shop.example.", "shop.example") == \
        "publish kb-bounces.%s CNAME; not my-shop.example or shop.example.org; %s." % (s, s)
    assert generalize("no subject here", "") == "no subject here"
    assert "\x00" not in generalize("a\x00b", "x")


def ptr_failure(ip, mta):
    return failure("ip", "ptr", ip, "%s (MTA %s) has no PTR record" % (ip, mta),
                   "set the reverse DNS (PTR) of %s to %s.kbmta.net (playbooks/network.yml)" % (ip, mta))


PROBLEMS = ([ptr_failure("192.0.2.%d" % i, "us-mta2") for i in (12, 9, 10, 11, 40)]
            + [ptr_failure("192.0.2.%d" % i, "us-mta1") for i in (3, 2)]
            + [failure("ip", "ptr", "192.0.2.50", "the PTR of 192.0.2.50 is mail.example.net",
                       "set the reverse DNS (PTR) of 192.0.2.50 to us-mta2.kbmta.net (playbooks/network.yml)")]
            + [warning("platform", "mta_a", "us-mta%d.kbmta.net" % i, "%d records" % (100 + i), "give each IP a name") for i in (1, 2)]
            + [ok("ip", "ptr", "192.0.2.%d" % i, "PTR 192.0.2.%d -> us-mta1.kbmta.net" % i) for i in range(60, 70)])


def test_a_repeated_fix_makes_one_group_with_its_subjects():
    groups = group_results(PROBLEMS)
    shape = [(g.category, g.check, g.status, g.subjects) for g in groups]
    assert shape == [
        ("platform", "mta_a", WARNING, ["us-mta1.kbmta.net", "us-mta2.kbmta.net"]),
        ("ip", "ptr", FAILURE, ["192.0.2.2", "192.0.2.3"]),
        ("ip", "ptr", FAILURE, ["192.0.2.9", "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.40", "192.0.2.50"]),
        ("ip", "ptr", OK, ["192.0.2.%d" % i for i in range(60, 70)]),
    ]
    us1, us2 = groups[1], groups[2]
    assert us1.fix == "set the reverse DNS (PTR) of %s to us-mta1.kbmta.net (playbooks/network.yml)" % SUBJECT_MARK
    assert us1.reason == "%s (MTA us-mta1) has no PTR record" % SUBJECT_MARK
    assert us2.reason == "", "192.0.2.50 has a wrong PTR, the others none: the reasons differ"
    assert groups[0].fix == "give each IP a name" and groups[0].reason == ""


# --------------------------------------------------------------------------
# the HTML page

VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "source"}


class PageShape(HTMLParser):
    """Every element closed in order, ids, links and external references."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.ids, self.links, self.external = [], [], [], [], []
        self.text = []
        self.open_details = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if "href" in attrs:
            self.links.append(attrs["href"])
        if tag in ("script", "link", "img", "iframe", "object", "embed") or "src" in attrs:
            self.external.append((tag, attrs))
        if tag == "details" and "open" in attrs:
            self.open_details += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes %s" % (tag, self.stack[-1:] or "nothing"))
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def shape_of(page):
    parser = PageShape()
    parser.feed(page)
    parser.close()
    return parser


META = {"platform": "kbmta.net", "nameserver": "127.0.0.1 port 53"}


def test_html_leads_with_the_summary_then_failures_warnings_and_collapsed_passing_checks():
    page = render_html(PROBLEMS + RESULTS, META)
    order = [page.index(marker) for marker in (
        'id="verdict"', 'id="summary"', 'id="failures"', 'id="warnings"', 'id="passing"')]
    assert order == sorted(order)
    assert page.index("192.0.2.2") > page.index('id="failures"') and page.index("192.0.2.60") > page.index('id="passing"')
    assert "FAILED: 33 checks, 9 failures, 3 warnings, 21 ok" in page
    # counts per category and status, each non-zero count a link to where those results are
    assert re.search(r'<tr data-category="ip"><th scope="row">Sending IPs</th><td class="s-failure"><a href="#failures-ip">9</a></td>'
                     r'<td class="zero">0</td><td class="s-ok"><a href="#passing-ip">20</a></td><td>29</td></tr>', page)
    assert '<tr class="total"><th scope="row">All</th><td>9</td><td>3</td><td>21</td><td>33</td></tr>' in page
    shape = shape_of(page)
    assert shape.open_details == 0
    assert '<details class="category" id="passing-ip"><summary>Sending IPs: 20 OK in 1 check</summary>' in page


def test_html_shows_a_repeated_fix_once_with_the_addresses_in_ranges():
    page = render_html(PROBLEMS, META)
    fix = "set the reverse DNS (PTR) of <var>each address</var> to us-mta2.kbmta.net (playbooks/network.yml)"
    assert page.count(fix) == 1
    assert '<dd class="subjects">192.0.2.9&#8211;192.0.2.12, 192.0.2.40, 192.0.2.50</dd>' in page
    assert "set the reverse DNS (PTR) of 192.0.2.9 to" not in page
    assert '<article class="group g-failure" id="failures-ip" data-status="failure" data-category="ip" data-check="ptr" data-count="2">' in page
    assert 'data-count="6"' in page and page.count('data-status="failure"') == 2
    # reasons that differ are listed subject by subject, in numeric order
    rows = re.findall(r'<tr class="r r-failure"><td>([^<]+)</td>', page)
    assert rows == ["192.0.2.9", "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.40", "192.0.2.50"]
    # a group of one shows its own fix, not a placeholder
    single = render_html([ptr_failure("192.0.2.7", "us-mta1")], META)
    assert "set the reverse DNS (PTR) of 192.0.2.7 to us-mta1.kbmta.net" in single and "<var>" not in single


def test_html_is_well_formed_self_contained_and_escapes_every_value():
    hostile = '<script>alert(1)</script>"\'&'
    results = PROBLEMS + [
        failure("ip", "ptr", "192.0.2.77", "seen " + hostile, "fix " + hostile),
        failure("ip", "ptr", "192.0.2.78", "seen " + hostile, "fix " + hostile),
        warning(hostile, "check" + hostile, "subject" + hostile, "reason" + hostile, "fix" + hostile),
        ok(hostile, hostile, hostile, hostile),
    ]
    page = render_html(results, {"platform": hostile, "note": hostile})
    shape = shape_of(page)
    assert shape.errors == [] and shape.stack == [], shape.errors
    assert shape.external == [] and "url(" not in page and "@import" not in page and "<script" not in page
    assert len(shape.ids) == len(set(shape.ids))
    assert all(link.startswith("#") and link[1:] in shape.ids for link in shape.links), shape.links
    text = "".join(shape.text)
    assert "fix " + hostile in text and "Platform verification: " + hostile in text
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
