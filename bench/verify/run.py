# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verify benchmark for scripts/bench.sh: a markdown section with medians.

Customer-domain checks (DKIM, return path and its SPF, DMARC) of thousands of
domains against a BIND on loopback, at two sizes and two worker counts; every
run must report exactly the deliberately broken domains.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_verify import measure  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000", help="comma-separated domain counts")
    parser.add_argument("--workers", default="8,32", help="comma-separated worker counts")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell; the table shows medians")
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    workers = [int(v) for v in args.workers.split(",")]
    print("## Verify: customer-domain checks against a loopback BIND\n")
    print("`python bench/verify/run.py --sizes %s --workers %s --runs %d`: the lab's plan (two /24 pools) with N "
          "customer domains, every hundredth with its return-path CNAME removed; six checks per domain, three DNS "
          "queries per domain, SPF by pyspf. Every run must fail exactly the broken domains.\n"
          % (args.sizes, args.workers, args.runs))
    print("| domains | workers | checks | seconds (median) | domains / second (median) | broken found |")
    print("|---|---|---|---|---|---|")
    wrong = False
    for size in sizes:
        for count in workers:
            runs = [measure(size, count) for _run in range(args.runs)]
            wrong = wrong or not all(r["ok"] for r in runs)
            print("| %d | %d | %d | %.2f | %.0f | %s |" % (
                size, count, runs[0]["checks"], statistics.median(r["seconds"] for r in runs),
                statistics.median(r["domains_per_second"] for r in runs),
                "%d of %d" % (runs[0]["failing_domains"], runs[0]["broken"]) if all(r["ok"] for r in runs) else "WRONG"))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
