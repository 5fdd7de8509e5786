# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: kb_bounce (roles/bounce_inbound/files) against flufl.bounce 6.0.0.

Both read the same corpus (tests/bounce_corpus, with expectations.yml).
Accuracy per bounce or delay event: the recipient found, and hard/soft right
(flufl's permanent/temporary sets; a delay counts as temporary). kb_bounce is measured twice: with the
VERP envelope recipient Postfix passes it, and without (what flufl sees).
Non-bounces (auto-replies, human mail, garbage) must yield no address.
Speed: messages parsed per second over the whole corpus, median of runs.

    python bench/bounce/run.py            # 5 runs
    python bench/bounce/run.py --runs 9
"""
from __future__ import annotations

import argparse
import base64
import email
import logging
import email.policy
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Set, Tuple

import yaml
from flufl.bounce import all_failures

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "bounce_corpus")
sys.path.insert(0, os.path.join(ROOT, "roles", "bounce_inbound", "files"))

from kb_bounce import parse  # noqa: E402  pylint: disable=wrong-import-position


def load() -> List[Tuple[dict, bytes]]:
    with open(os.path.join(CORPUS, "expectations.yml"), encoding="utf-8") as handle:
        cases = yaml.safe_load(handle)["messages"]
    out = []
    for case in cases:
        with open(os.path.join(CORPUS, case["file"]), "rb") as handle:
            raw = handle.read()
        out.append((case, base64.b64decode(raw) if case["file"].endswith(".b64") else raw))
    return out


def flufl_result(raw: bytes) -> Tuple[Set[str], Set[str]]:
    """(temporary, permanent) addresses, lower case; flufl may raise on hostile input."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        temporary, permanent = all_failures(msg)
    except Exception:  # pylint: disable=broad-except
        return set(), set()

    def norm(items) -> Set[str]:
        return {(i.decode("utf-8", "replace") if isinstance(i, bytes) else str(i)).lower() for i in items}

    return norm(temporary), norm(permanent)


def kb_result(raw: bytes, envelope) -> Tuple[Set[str], Set[str]]:
    result = parse.parse(raw, envelope)
    temporary = {e.recipient.lower() for e in result.events if e.klass in ("soft", "delay")}
    permanent = {e.recipient.lower() for e in result.events if e.type == "bounce" and e.klass == "hard"}
    return temporary, permanent


def score(cases, tool: Callable[[dict, bytes], Tuple[Set[str], Set[str]]]) -> Dict[str, int]:
    counts = {"events": 0, "found": 0, "class": 0, "quiet": 0, "non_bounces": 0}
    for case, raw in cases:
        temporary, permanent = tool(case, raw)
        bounces = [e for e in case.get("events") or [] if e["type"] in ("bounce", "delay")]
        if case["kind"] != "report":
            counts["non_bounces"] += 1
            counts["quiet"] += int(not temporary and not permanent)
        for event in bounces:
            rcpt = event["recipient"].lower()
            counts["events"] += 1
            counts["found"] += int(rcpt in temporary | permanent)
            wanted = permanent if event["class"] == "hard" else temporary
            counts["class"] += int(rcpt in wanted)
    return counts


def speed(cases, tool, runs: int) -> float:
    rates: List[float] = []
    while len(rates) < runs:
        start = time.perf_counter()
        for case, raw in cases:
            tool(case, raw)
        rates.append(len(cases) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # flufl logs tracebacks of its detectors on hostile input
    cases = load()
    tools = {
        "kb_bounce, with VERP envelope": lambda c, r: kb_result(r, c["envelope"]),
        "kb_bounce, message only": lambda c, r: kb_result(r, None),
        "flufl.bounce 6.0.0 all_failures": lambda c, r: flufl_result(r),
    }
    print("## Bounce parsing (`bench/bounce/run.py`)")
    print()
    print("Corpus: %d messages of `tests/bounce_corpus` (%d bounce and delay events; complaints are not scored, "
          "flufl has no ARF)." % (len(cases), score(cases, tools["kb_bounce, message only"])["events"]))
    print("`python bench/bounce/run.py --runs %d`; speed is the median of %d passes over the whole corpus."
          % (args.runs, args.runs))
    print()
    print("Caveat: the corpus was written alongside kb_bounce, so it favours the forms kb_bounce was built for;")
    print("read the flufl column as 'what a generic parser does on our traffic', not as a verdict on flufl.")
    print()
    print("| parser | recipient found | hard/soft right | non-bounces left alone | messages/s |")
    print("|---|---|---|---|---|")
    for name, tool in tools.items():
        c = score(cases, tool)
        print("| %s | %d/%d | %d/%d | %d/%d | %.0f |" % (
            name, c["found"], c["events"], c["class"], c["events"], c["quiet"], c["non_bounces"],
            speed(cases, tool, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
