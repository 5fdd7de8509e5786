# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Verification results for people and programs: a terminal table, JSON, an HTML status page."""

from __future__ import annotations

import html
import json
import os
import tempfile
import textwrap
from typing import Dict, List, Sequence

from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_result import (
    CATEGORIES,
    FAILURE,
    OK,
    WARNING,
    CheckResult,
    sort_results,
    summarize,
)

MARK = {OK: "OK", WARNING: "WARN", FAILURE: "FAIL"}
CATEGORY_TITLES = {
    "platform": "Platform DNS",
    "ip": "Sending IPs",
    "customer": "Customer domains",
    "host": "Hosts (SMTP, TLS, load balancers)",
}


def summary_line(results: Sequence[CheckResult]) -> str:
    counts = summarize(results)
    verdict = "FAILED" if counts[FAILURE] else ("PASSED with warnings" if counts[WARNING] else "PASSED")
    return "%s: %d checks, %d failures, %d warnings, %d ok" % (verdict, counts["total"], counts[FAILURE], counts[WARNING], counts[OK])


def render_table(results: Sequence[CheckResult], show_ok: bool = False, width: int = 120, per_check: int = 8) -> str:
    """Failures and warnings in full with their fix; OK results one line per check unless ``show_ok``.

    Without ``show_ok`` at most ``per_check`` problems of one check and status are shown in full (a subnet
    missing from SPF fails hundreds of IPs alike); the rest are counted. The JSON and HTML reports list all."""
    results = sort_results(results)
    lines: List[str] = []
    wrap = max(40, width - 46)
    for category in CATEGORIES + tuple(sorted({r.category for r in results} - set(CATEGORIES))):
        found = [r for r in results if r.category == category]
        if not found:
            continue
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
    results = sort_results(results)
    document = {"meta": meta, "summary": summarize(results), "results": [r.to_dict() for r in results]}
    return json.dumps(document, indent=2, sort_keys=True)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#1d2330}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
.verdict{padding:.6em 1em;border-radius:6px;font-weight:600;display:inline-block}
.v-failure{background:#fde2e1;color:#8a1c12}.v-warning{background:#fff4d6;color:#7a5600}.v-ok{background:#e3f6e8;color:#145c2c}
table{border-collapse:collapse;width:100%;margin-top:.5em}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e4e7ec;vertical-align:top;font-size:.92em}
th{background:#f4f6f9}
.s{font-weight:700;white-space:nowrap}.s-failure{color:#b42318}.s-warning{color:#a15c07}.s-ok{color:#067647}
.fix{color:#344054}code{font-size:.95em}
"""


def render_html(results: Sequence[CheckResult], meta: Dict[str, object]) -> str:
    """One self-contained page: verdict, then each category with problems first."""
    results = sort_results(results)
    counts = summarize(results)
    worst = FAILURE if counts[FAILURE] else (WARNING if counts[WARNING] else OK)
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>%s</title>" % esc("Platform verification: %s" % meta.get("platform", "")),
        "<style>%s</style></head><body>" % _STYLE,
        "<h1>%s</h1>" % esc("Platform verification: %s" % meta.get("platform", "")),
        '<p class="verdict v-%s">%s</p>' % (worst, esc(summary_line(results))),
        "<p>%s</p>" % esc(", ".join("%s: %s" % (k, v) for k, v in sorted(meta.items()) if k != "platform")),
    ]
    order = {FAILURE: 0, WARNING: 1, OK: 2}
    for category in CATEGORIES + tuple(sorted({r.category for r in results} - set(CATEGORIES))):
        found = sorted((r for r in results if r.category == category), key=lambda r: (order[r.status], r.check, r.subject))
        if not found:
            continue
        c = summarize(found)
        parts.append("<h2>%s <small>(%d failures, %d warnings, %d ok)</small></h2>" % (
            esc(CATEGORY_TITLES.get(category, category)), c[FAILURE], c[WARNING], c[OK]))
        parts.append("<table><tr><th>Status</th><th>Check</th><th>Subject</th><th>Reason</th><th>Fix</th></tr>")
        for r in found:
            parts.append('<tr><td class="s s-%s">%s</td><td><code>%s</code></td><td>%s</td><td>%s</td><td class="fix">%s</td></tr>' % (
                r.status, MARK[r.status], esc(r.check), esc(r.subject), esc(r.reason), esc(r.fix)))
        parts.append("</table>")
    parts.append("</body></html>")
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
