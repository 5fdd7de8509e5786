# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How fast the customer-domain checks run: thousands of domains against a BIND on loopback.

Builds a plan with --domains customers (lab pools: two /24s, four MTAs), publishes
every record in a real BIND on 127.0.0.1 with a share of them broken, runs the
checks concurrently, checks that exactly the broken domains fail, and prints
domains/second. Run from the repository root:

    .venv/bin/python bench/verify/bench_verify.py --domains 5000 --workers 32
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, ".collections"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from bind import LoopbackBind, platform_records, zones_for  # noqa: E402
from lab_spec import lab_spec  # noqa: E402

from ansible_collections.kibamail.email_platform.plugins.module_utils.plan import build_plan  # noqa: E402
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_checks import DnsOptions, run_dns_checks  # noqa: E402
from ansible_collections.kibamail.email_platform.plugins.module_utils.verify_dns import DnsPythonResolver  # noqa: E402

PARENT = "bench.test"


def spec(domains: int) -> dict:
    return lab_spec(customers=[{"domain": "c%05d.%s" % (i, PARENT), "pool": ("transactional", "marketing")[i % 2],
                                "zone_managed": True, "dmarc_policy": "reject"} for i in range(domains)])


def measure(domains: int, workers: int, broken_every: int = 100) -> dict:
    """One timed run of the customer checks; ``ok`` says whether exactly the broken domains failed."""
    plan = build_plan(spec(domains))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b64 = base64.b64encode(der).decode()
    records = platform_records(plan, {d: b64 for d in plan["customers"]})
    broken = sorted(plan["customers"])[::broken_every] if broken_every else []
    for domain in broken:
        del records[(plan["customers"][domain]["return_path"], "CNAME")]

    started = time.monotonic()
    with LoopbackBind.for_records(records, zones_for(records, ["kbmta.net", PARENT])) as server:
        bind_seconds = time.monotonic() - started
        resolver = DnsPythonResolver("127.0.0.1", server.port, timeout=2.0)
        options = DnsOptions(dkim_public_keys={d: b64 for d in plan["customers"]}, categories=("customer",), workers=workers)
        started = time.monotonic()
        results = run_dns_checks(plan, resolver, options)
        seconds = time.monotonic() - started

    failing = sorted({r.subject for r in results if r.status == "failure"})
    return {"domains": domains, "workers": workers, "checks": len(results), "seconds": round(seconds, 2),
            "domains_per_second": round(domains / seconds, 1), "broken": len(broken), "failing_domains": len(failing),
            "bind_start_seconds": round(bind_seconds, 2), "ok": failing == broken}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--broken-every", type=int, default=100, help="break the return-path CNAME of every Nth domain")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    numbers = measure(args.domains, args.workers, args.broken_every)
    print("verify bench: %(domains)d customer domains, %(checks)d checks, %(workers)d workers: %(seconds).2f s, "
          "%(domains_per_second).1f domains/second (BIND loaded in %(bind_start_seconds).2f s)" % numbers)
    if not numbers["ok"]:
        print("WRONG: expected exactly the %(broken)d broken domains to fail, got %(failing_domains)d" % numbers)
        return 1
    print("the %d deliberately broken domains, and only they, failed" % numbers["broken"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(numbers, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
