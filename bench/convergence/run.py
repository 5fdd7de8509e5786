# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Convergence: wall time of site.yml on the lab, first run and no-change re-run.

Each round builds a fresh lab (scripts/lab.sh down + infra), times the first
site.yml run, then times KB_BENCH_RERUNS no-change re-runs. Prints a markdown
section with the medians. KB_BENCH_ROUNDS (default 1) sets the number of
fresh labs: each one costs a full first convergence. KB_BENCH_KEEP_LAB=1
leaves the last lab running.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("KB_BENCH_ROUNDS", "1"))
RERUNS = int(os.environ.get("KB_BENCH_RERUNS", "3"))
KEEP_LAB = os.environ.get("KB_BENCH_KEEP_LAB") == "1"  # leave the last lab up for other work
SITE = ["ansible-playbook", "site.yml", "-i", "inventories/lab"]


def sh(*cmd: str) -> None:
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=sys.stderr)


def timed_site() -> tuple:
    env = dict(os.environ, ANSIBLE_VAULT_PASSWORD_FILE=str(ROOT / "inventories/lab.vault-password.lab-only"),
               KB_LAB_DIR=str(ROOT / ".lab"), ANSIBLE_NOCOLOR="1")
    argv = list(SITE)
    forced = ROOT / ".lab" / "site-extra-vars.yml"   # what scripts/lab.sh forces on this machine
    if forced.exists():
        argv += ["-e", "@%s" % forced]
    start = time.monotonic()
    res = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if res.returncode != 0:
        sys.stderr.write(res.stdout[-4000:])
        raise SystemExit("site.yml failed")
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", res.stdout.split("PLAY RECAP")[-1]))
    log = ROOT / ".lab" / ("bench-convergence-%d.log" % time.time())
    log.write_text(res.stdout)
    if changed:
        sys.stderr.write("%s: changed=%d in %s\n" % (log.name, changed, ", ".join(changed_tasks(res.stdout))))
    return elapsed, changed


def changed_tasks(output: str) -> list:
    """Names of the tasks that reported changed (for the stderr report of a re-run that changed)."""
    names, task = [], None
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed:") and task and task not in names:
            names.append(task)
    return names


def main() -> None:
    first, rerun, first_changed, rerun_changed = [], [], [], []
    for _round in range(ROUNDS):
        sh("scripts/lab.sh", "down")
        sh("scripts/lab.sh", "infra")
        t, c = timed_site()
        first.append(t)
        first_changed.append(c)
        for _rerun in range(RERUNS):
            t, c = timed_site()
            rerun.append(t)
            rerun_changed.append(c)
    if not KEEP_LAB:
        sh("scripts/lab.sh", "down")
    print("## Convergence: site.yml on the lab\n")
    print("Command: `%s` (bench/convergence/run.py, %d fresh lab(s), %d no-change re-runs each)\n" % (
        " ".join(SITE), ROUNDS, RERUNS))
    print("| run | median wall time | runs | changed tasks (all hosts) |")
    print("|---|---|---|---|")
    print("| first convergence (6 hosts) | %.1f s | %d | %s |" % (statistics.median(first), len(first), first_changed))
    print("| no-change re-run | %.1f s | %d | %s |" % (statistics.median(rerun), len(rerun), rerun_changed))
    print("\nA no-change re-run costs %.0f%% of a first convergence." % (100 * statistics.median(rerun) / statistics.median(first)))


if __name__ == "__main__":
    main()
