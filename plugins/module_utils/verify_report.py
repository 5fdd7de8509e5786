# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Verification results for people and programs: a terminal table, JSON, an HTML status page.

All three list results in one order: category, check, then subject, with addresses in numeric
order (192.0.2.9 before 192.0.2.10) and names in natural order (us-mta2 before us-mta10).

The HTML page leads with the verdict and a summary (counts per category and status), then the
failures and the warnings with their fixes, then the passing checks collapsed per category.
Problems of one check whose fix is the same once the subject is taken out (the PTR of each of
40 addresses must be set to one name) are shown once, with the addresses or names they apply to.
"""

from __future__ import annotations

import html
import ipaddress
import json
import os
import re
import tempfile
import textwrap
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import (
    CATEGORIES,
    FAILURE,
    OK,
    WARNING,
    CheckResult,
    summarize,
)

MARK = {OK: "OK", WARNING: "WARN", FAILURE: "FAIL"}
CATEGORY_TITLES = {
    "platform": "Platform DNS",
    "ip": "Sending IPs",
    "customer": "Customer domains",
    "host": "Hosts (SMTP, TLS, load balancers)",
}
STATUS_ORDER = {FAILURE: 0, WARNING: 1, OK: 2}

# Where a subject stood in a fix or a reason once it is generalized (see generalize): NUL
# never occurs in a check's text (generalize drops any), so the marks cannot be confused.
SUBJECT_MARK = "\x00s\x00"
DASHED_MARK = "\x00d\x00"


# --------------------------------------------------------------------------
# order

def _natural(text: str) -> tuple:
    """Digit runs compare as numbers: us-mta2 < us-mta10, smtp.kbmta.net:25 < smtp.kbmta.net:465."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text.lower()) if part)


def _address(subject: str):
    try:
        return ipaddress.ip_address(subject)
    except ValueError:
        return None


def subject_key(subject: str) -> tuple:
    """Addresses first, in numeric order (IPv4 before IPv6), then every other subject in natural order."""
    address = _address(subject)
    if address is not None:
        return (0, address.version, int(address), (), subject)
    return (1, 0, 0, _natural(subject), subject)


def category_order(categories: Iterable[str]) -> List[str]:
    """The known categories in their order, then any other in alphabetical order."""
    found = set(categories)
    return [c for c in CATEGORIES if c in found] + sorted(found - set(CATEGORIES))


def _category_index(category: str) -> int:
    return CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES)


def order_results(results: Iterable[CheckResult]) -> List[CheckResult]:
    """A stable order: category, then check, then subject (see subject_key)."""
    return sorted(results, key=lambda r: (_category_index(r.category), r.category, r.check, subject_key(r.subject), r.status))


def subject_ranges(subjects: Sequence[str]) -> List[Tuple[str, str]]:
    """Runs of consecutive addresses as (first, last); any other subject as (subject, subject).

    ``subjects`` in the order of subject_key: 192.0.2.2, 192.0.2.3, 192.0.2.4, 192.0.2.9 gives
    (192.0.2.2, 192.0.2.4), (192.0.2.9, 192.0.2.9)."""
    runs: List[list] = []
    previous = None
    for subject in subjects:
        address = _address(subject)
        if (address is not None and previous is not None and address.version == previous.version
                and int(address) == int(previous) + 1):
            runs[-1][1] = subject
        else:
            runs.append([subject, subject])
        previous = address
    return [(run[0], run[1]) for run in runs]


# --------------------------------------------------------------------------
# groups

def generalize(text: str, subject: str) -> str:
    """``text`` with ``subject`` replaced by SUBJECT_MARK, and an IPv4 subject's dashed form by DASHED_MARK.

    Only whole names and addresses are replaced: for 192.0.2.1 neither 192.0.2.10 nor 10.192.0.2.1 is;
    for shop.example kb-bounces.shop.example is, my-shop.example is not."""
    text = text.replace("\x00", "")
    if not subject:
        return text
    address = _address(subject)
    # A name may follow a dot (kb-bounces.shop.example is about shop.example), an address may not.
    before = r"(?<![\w-])" if address is None else r"(?<![\w.:-])"
    text = re.sub(before + r"%s(?![\w-]|[.:]\w)" % re.escape(subject), SUBJECT_MARK, text)
    if address is not None and address.version == 4:
        text = re.sub(r"(?<![\w-])%s(?![\w-])" % re.escape(subject.replace(".", "-")), DASHED_MARK, text)
    return text


@dataclass(frozen=True)
class Group:
    """Results of one check and status whose fix is the same once each result's subject is taken out."""

    category: str
    check: str
    status: str
    fix: str                          # the shared fix, generalized (SUBJECT_MARK, DASHED_MARK where each subject goes)
    reason: str                       # the shared reason, generalized the same way; empty when the reasons differ
    results: Tuple[CheckResult, ...]  # in the order of subject_key

    @property
    def subjects(self) -> List[str]:
        return [r.subject for r in self.results]


def group_results(results: Iterable[CheckResult]) -> List[Group]:
    """Group results by category, check, status and generalized fix.

    Groups come in category order, then check, then status (failures first), then first subject."""
    buckets: Dict[tuple, List[CheckResult]] = {}
    for r in order_results(results):
        buckets.setdefault((r.category, r.check, r.status, generalize(r.fix, r.subject)), []).append(r)
    groups = []
    for (category, check, status, fix), members in buckets.items():
        reasons = {generalize(r.reason, r.subject) for r in members}
        groups.append(Group(category=category, check=check, status=status, fix=fix,
                            reason=reasons.pop() if len(reasons) == 1 else "", results=tuple(members)))
    return sorted(groups, key=lambda g: (_category_index(g.category), g.category, g.check, STATUS_ORDER[g.status],
                                         subject_key(g.results[0].subject)))


def subject_noun(category: str, subjects: Sequence[str]) -> Tuple[str, str]:
    """What the subjects are called, singular and plural."""
    if subjects and all(_address(s) is not None for s in subjects):
        return "address", "addresses"
    if category == "customer":
        return "domain", "domains"
    return "name", "names"


# --------------------------------------------------------------------------
# text and JSON

def summary_line(results: Sequence[CheckResult]) -> str:
    counts = summarize(results)
    verdict = "FAILED" if counts[FAILURE] else ("PASSED with warnings" if counts[WARNING] else "PASSED")
    return "%s: %d checks, %d failures, %d warnings, %d ok" % (verdict, counts["total"], counts[FAILURE], counts[WARNING], counts[OK])


def render_table(results: Sequence[CheckResult], show_ok: bool = False, width: int = 120, per_check: int = 8) -> str:
    """Failures and warnings in full with their fix; OK results one line per check unless ``show_ok``.

    Without ``show_ok`` at most ``per_check`` problems of one check and status are shown in full (a subnet
    missing from SPF fails hundreds of IPs alike); the rest are counted. The JSON and HTML reports list all."""
    results = order_results(results)
    lines: List[str] = []
    wrap = max(40, width - 46)
    for category in category_order(r.category for r in results):
        found = [r for r in results if r.category == category]
        lines.append("== %s" % CATEGORY_TITLES.get(category, category))
        lines.append("%-5s %-24s %-14s %s" % ("", "CHECK", "", "SUBJECT / REASON"))
        collapsed: Dict[str, int] = {}
        shown: Dict[tuple, int] = {}
        for r in found:
            if r.status == OK and not show_ok:
                collapsed[r.check] = collapsed.get(r.check, 0) + 1
                continue
            key = (r.check, r.status)
            shown[key] = shown.get(key, 0) + 1
            if not show_ok and shown[key] > per_check:
                continue
            lines.append("%-5s %-24s %s" % (MARK[r.status], r.check, r.subject))
            for text in textwrap.wrap(r.reason, wrap) or [""]:
                lines.append("%-30s %s" % ("", text))
            if r.fix:
                for i, text in enumerate(textwrap.wrap(r.fix, wrap - 5)):
                    lines.append("%-30s %s%s" % ("", "fix: " if i == 0 else "     ", text))
        for (check, status), count in sorted(shown.items()):
            if not show_ok and count > per_check:
                lines.append("%-5s %-24s ... and %d more (all of them in the JSON and HTML reports)" % (
                    MARK[status], check, count - per_check))
        for check, count in sorted(collapsed.items()):
            lines.append("%-5s %-24s %d subject%s" % (MARK[OK], check, count, "" if count == 1 else "s"))
    lines.append(summary_line(results))
    return "\n".join(lines)


def to_json(results: Sequence[CheckResult], meta: Dict[str, object]) -> str:
    results = order_results(results)
    document = {"meta": meta, "summary": summarize(results), "results": [r.to_dict() for r in results]}
    return json.dumps(document, indent=2, sort_keys=True)


# --------------------------------------------------------------------------
# HTML

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2em 2em;color:#1d2330;line-height:1.35}
h1{font-size:1.35em;margin:0 0 .4em}h2{font-size:1.1em;margin:1.2em 0 .4em}h3{font-size:1em;margin:0 0 .3em}
.verdict{padding:.4em .9em;border-radius:6px;font-weight:600;display:inline-block;margin:0}
.v-failure{background:#fde2e1;color:#8a1c12}.v-warning{background:#fff4d6;color:#7a5600}.v-ok{background:#e3f6e8;color:#145c2c}
.meta{color:#475467;font-size:.9em;margin:.4em 0}
nav a{margin-right:1.2em}
table{border-collapse:collapse;margin-top:.3em}
th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #e4e7ec;vertical-align:top;font-size:.92em}
thead th{background:#f4f6f9}
table.summary td{text-align:right;min-width:4.5em}table.summary tr.total th,table.summary tr.total td{font-weight:700}
.zero{color:#98a2b3}
.s{font-weight:700;white-space:nowrap}.s-failure{color:#b42318}.s-warning{color:#a15c07}.s-ok{color:#067647}
.group{border:1px solid #e4e7ec;border-left-width:5px;border-radius:4px;padding:.5em .8em;margin:.5em 0}
.g-failure{border-left-color:#d92d20}.g-warning{border-left-color:#f79009}
.group dl{display:grid;grid-template-columns:6.5em 1fr;gap:.15em .6em;margin:.2em 0}
.group dt{font-weight:600;color:#475467}.group dd{margin:0}
.fix{color:#101828}.cat,.count{color:#475467;font-weight:400;margin-left:.5em}
.subjects{max-height:6.2em;overflow:auto;font-family:ui-monospace,monospace;font-size:.9em}
var{font-style:normal;background:#eef4ff;border:1px dashed #84adff;border-radius:3px;padding:0 .25em}
details{margin:.3em 0}summary{cursor:pointer}
details.category{border:1px solid #e4e7ec;border-radius:4px;padding:.4em .8em}
details.category>summary{font-weight:600}
details.check{margin-left:1em}
.none{color:#475467}
code{font-size:.95em}
"""


def _anchor(*parts: str) -> str:
    """An id made of letters, digits, - and _ only (other characters as _xx): the same parts give the same id."""
    return "-".join(re.sub(r"[^A-Za-z0-9_]", lambda m: "_%x" % ord(m.group()), part) for part in parts)


def _text_html(text: str, singular: str) -> str:
    """Escaped text with each subject mark shown as a placeholder."""
    return (html.escape(text)
            .replace(SUBJECT_MARK, "<var>each %s</var>" % singular)
            .replace(DASHED_MARK, "<var>each %s, dashed</var>" % singular))


def _ranges_html(subjects: Sequence[str]) -> str:
    shown = []
    for first, last in subject_ranges(subjects):
        shown.append(html.escape(first) if first == last else "%s&#8211;%s" % (html.escape(first), html.escape(last)))
    return ", ".join(shown)


def _rows_html(results: Sequence[CheckResult]) -> str:
    rows = ['<tr class="r r-%s"><td>%s</td><td>%s</td></tr>' % (r.status, html.escape(r.subject), html.escape(r.reason))
            for r in results]
    return "<table><thead><tr><th>Subject</th><th>Seen</th></tr></thead><tbody>\n%s\n</tbody></table>" % "\n".join(rows)


def _group_html(group: Group, anchor: str) -> str:
    singular, plural = subject_noun(group.category, group.subjects)
    count = len(group.results)
    esc = html.escape
    parts = ['<article class="group g-%s" id="%s" data-status="%s" data-category="%s" data-check="%s" data-count="%d">' % (
        group.status, anchor, group.status, esc(group.category), esc(group.check), count)]
    parts.append('<h3><span class="s s-%s">%s</span> <code>%s</code><span class="cat">%s</span><span class="count">%d %s</span></h3>' % (
        group.status, MARK[group.status], esc(group.check), esc(CATEGORY_TITLES.get(group.category, group.category)),
        count, singular if count == 1 else plural))
    parts.append("<dl>")
    if count == 1:
        r = group.results[0]
        parts.append('<dt>Fix</dt><dd class="fix">%s</dd>' % (esc(r.fix) or "&#8212;"))
        parts.append('<dt>%s</dt><dd class="subjects">%s</dd>' % (singular.capitalize(), esc(r.subject)))
        parts.append("<dt>Seen</dt><dd>%s</dd>" % esc(r.reason))
    else:
        parts.append('<dt>Fix</dt><dd class="fix">%s</dd>' % (_text_html(group.fix, singular) or "&#8212;"))
        parts.append('<dt>%s</dt><dd class="subjects">%s</dd>' % (plural.capitalize(), _ranges_html(group.subjects)))
        if group.reason:
            parts.append("<dt>Seen</dt><dd>%s</dd>" % _text_html(group.reason, singular))
    parts.append("</dl>")
    if count > 1 and not group.reason:
        parts.append("<details><summary>What was seen, %s by %s (%d)</summary>%s</details>" % (
            singular, singular, count, _rows_html(group.results)))
    parts.append("</article>")
    return "\n".join(parts)


def _problems_html(groups: Sequence[Group], status: str, title: str, none: str) -> List[str]:
    found = [g for g in groups if g.status == status]
    total = sum(len(g.results) for g in found)
    section = "failures" if status == FAILURE else "warnings"
    parts = ['<section id="%s">' % section]
    if not found:
        parts.append("<h2>%s</h2>" % title)
        parts.append('<p class="none">%s</p></section>' % none)
        return parts
    parts.append("<h2>%s <small>(%d in %d group%s: one fix each)</small></h2>" % (
        title, total, len(found), "" if len(found) == 1 else "s"))
    seen = set()
    for number, group in enumerate(found, 1):
        anchor = "%s--%d" % (section, number)  # never an _anchor: its parts hold no "-"
        if group.category not in seen:
            seen.add(group.category)
            anchor = _anchor(section, group.category)
        parts.append(_group_html(group, anchor))
    parts.append("</section>")
    return parts


def _summary_html(results: Sequence[CheckResult]) -> List[str]:
    def cell(category: str, status: str, value: int) -> str:
        if not value:
            return '<td class="zero">0</td>'
        section = {OK: "passing", WARNING: "warnings", FAILURE: "failures"}[status]
        return '<td class="s-%s"><a href="#%s">%d</a></td>' % (status, _anchor(section, category), value)

    parts = ['<section id="summary"><h2>Summary</h2>',
             '<table class="summary"><thead><tr><th>Category</th><th>Failures</th><th>Warnings</th><th>OK</th>'
             "<th>Total</th></tr></thead><tbody>"]
    for category in category_order(r.category for r in results):
        c = summarize(r for r in results if r.category == category)
        parts.append('<tr data-category="%s"><th scope="row">%s</th>%s%s%s<td>%d</td></tr>' % (
            html.escape(category), html.escape(CATEGORY_TITLES.get(category, category)),
            cell(category, FAILURE, c[FAILURE]), cell(category, WARNING, c[WARNING]), cell(category, OK, c[OK]), c["total"]))
    c = summarize(results)
    parts.append('<tr class="total"><th scope="row">All</th><td>%d</td><td>%d</td><td>%d</td><td>%d</td></tr>' % (
        c[FAILURE], c[WARNING], c[OK], c["total"]))
    parts.append("</tbody></table></section>")
    return parts


def _passing_html(groups: Sequence[Group]) -> List[str]:
    passing = [g for g in groups if g.status == OK]
    total = sum(len(g.results) for g in passing)
    parts = ['<section id="passing"><h2>Passing checks <small>(%d, collapsed per category)</small></h2>' % total]
    if not passing:
        parts.append('<p class="none">No check passed.</p>')
    for category in category_order(g.category for g in passing):
        mine = [g for g in passing if g.category == category]
        count = sum(len(g.results) for g in mine)
        parts.append('<details class="category" id="%s"><summary>%s: %d OK in %d check%s</summary>' % (
            _anchor("passing", category), html.escape(CATEGORY_TITLES.get(category, category)), count, len(mine),
            "" if len(mine) == 1 else "s"))
        for g in mine:
            singular, plural = subject_noun(category, g.subjects)
            n = len(g.results)
            parts.append('<details class="check"><summary><code>%s</code> %d %s: <span class="subjects">%s</span></summary>%s</details>' % (
                html.escape(g.check), n, singular if n == 1 else plural, _ranges_html(g.subjects), _rows_html(g.results)))
        parts.append("</details>")
    parts.append("</section>")
    return parts


def render_html(results: Sequence[CheckResult], meta: Dict[str, object]) -> str:
    """One self-contained page (no script, no external resource): verdict, summary, problems, passing checks."""
    results = order_results(results)
    counts = summarize(results)
    groups = group_results(results)
    worst = FAILURE if counts[FAILURE] else (WARNING if counts[WARNING] else OK)
    esc = html.escape
    title = esc("Platform verification: %s" % meta.get("platform", ""))
    failure_groups = len([g for g in groups if g.status == FAILURE])
    warning_groups = len([g for g in groups if g.status == WARNING])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title>" % title,
        "<style>%s</style></head><body>" % _STYLE,
        "<header>",
        "<h1>%s</h1>" % title,
        '<p class="verdict v-%s" id="verdict">%s</p>' % (worst, esc(summary_line(results))),
        '<p class="meta">%s</p>' % esc(", ".join("%s: %s" % (k, v) for k, v in sorted(meta.items()) if k != "platform")),
        '<nav><a href="#failures">Failures: %d (%d fixes)</a><a href="#warnings">Warnings: %d (%d fixes)</a>'
        '<a href="#passing">Passing: %d</a><a href="#summary">Summary</a></nav>' % (
            counts[FAILURE], failure_groups, counts[WARNING], warning_groups, counts[OK]),
        "</header>",
        "<main>",
    ]
    parts += _summary_html(results)
    parts += _problems_html(groups, FAILURE, "Failures", "No check failed.")
    parts += _problems_html(groups, WARNING, "Warnings", "No warnings.")
    parts += _passing_html(groups)
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def write_file(path: str, content: str) -> None:
    """Write atomically: a reader never sees half a report."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".verify-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
