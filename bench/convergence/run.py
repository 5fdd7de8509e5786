# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Convergence: wall time of site.yml on the lab, first run and no-change re-run.

Each round builds a fresh lab (scripts/lab.sh down + infra), times the first
site.yml run, then times KB_BENCH_RERUNS no-change re-runs. Prints a markdown
section with the medians, the wall time of each play and the slowest tasks
(ansible.posix.profile_tasks) of the first run and of the median re-run.

KB_BENCH_ROUNDS (default 1) sets the number of fresh labs: each one costs a
full first convergence. KB_BENCH_KEEP_LAB=1 leaves the last lab running.
KB_BENCH_REUSE_LAB=1 builds no lab: it times only the no-change re-runs
against the lab that is up (scripts/lab.sh up), and leaves it up.
KB_BENCH_TOP (default 15) is the number of slowest tasks shown.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("KB_BENCH_ROUNDS", "1"))
RERUNS = int(os.environ.get("KB_BENCH_RERUNS", "3"))
KEEP_LAB = os.environ.get("KB_BENCH_KEEP_LAB") == "1"  # leave the last lab up for other work
REUSE_LAB = os.environ.get("KB_BENCH_REUSE_LAB") == "1"  # time re-runs against the lab that is up
TOP = int(os.environ.get("KB_BENCH_TOP", "15"))
SITE = ["ansible-playbook", "site.yml", "-i", "inventories/lab"]

# profile_tasks prints, as each task starts, the time since the previous
# task started and since the run started: "(0:00:01.234)       0:01:02.345".
TASK_START = re.compile(r"\((\d+):(\d\d):(\d\d\.\d+)\)\s+(\d+):(\d\d):(\d\d\.\d+)")
# ... and at the end one line per task, slowest first: "name ---- 12.34s".
SUMMARY_LINE = re.compile(r"^(.*?)\s-{3,}\s+(\d+\.\d+)s$")


def sh(*cmd: str) -> None:
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=sys.stderr)


def seconds(h: str, m: str, s: str) -> float:
    return int(h) * 3600 + int(m) * 60 + float(s)


def timed_site() -> dict:
    env = dict(os.environ, ANSIBLE_VAULT_PASSWORD_FILE=str(ROOT / "inventories/lab.vault-password.lab-only"),
               KB_LAB_DIR=str(ROOT / ".lab"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
               PROFILE_TASKS_TASK_OUTPUT_LIMIT="all")
    argv = list(SITE)
    forced = ROOT / ".lab" / "site-extra-vars.yml"   # what scripts/lab.sh forces on this machine
    if forced.exists():
        argv += ["-e", "@%s" % forced]
    start = time.monotonic()
    res = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    log = ROOT / ".lab" / ("bench-convergence-%d.log" % time.time())
    log.write_text(res.stdout)
    if res.returncode != 0:
        sys.stderr.write(res.stdout[-4000:])
        raise SystemExit("site.yml failed (log %s)" % log)
    recap = res.stdout.split("PLAY RECAP")[-1]
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", recap))
    if changed:
        sys.stderr.write("%s: changed=%d in %s\n" % (log.name, changed, ", ".join(changed_tasks(res.stdout))))
    return {"wall": elapsed, "changed": changed, "log": log.name,
            "plays": play_times(res.stdout), "tasks": slowest_tasks(recap)}


def changed_tasks(output: str) -> list:
    """Names of the tasks that reported changed (for the stderr report of a re-run that changed)."""
    names, task = [], None
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed:") and task and task not in names:
            names.append(task)
    return names


def play_times(output: str) -> "OrderedDict[str, list]":
    """Play name -> [seconds, tasks], from profile_tasks' running clock.

    A play's time runs from its first task's start to the next play's first
    task (or to the end of the run); plays of the same name add up.
    """
    marks, play = [], None   # (play, clock at task start)
    for line in output.splitlines():
        if line.startswith("PLAY [") and not line.startswith("PLAY RECAP"):
            play = line.split("[", 1)[1].rsplit("]", 1)[0]
        m = TASK_START.search(line)
        if m and play:
            marks.append((play, seconds(*m.group(4, 5, 6))))
    end = None
    for line in reversed(output.splitlines()):
        m = TASK_START.search(line)
        if m:
            end = seconds(*m.group(4, 5, 6))
            break
    plays: "OrderedDict[str, list]" = OrderedDict()
    for i, (name, clock) in enumerate(marks):
        nxt = marks[i + 1][1] if i + 1 < len(marks) else (end or clock)
        row = plays.setdefault(name, [0.0, 0])
        row[0] += max(nxt - clock, 0.0)
        row[1] += 1
    return plays


def slowest_tasks(recap: str) -> list:
    rows = []
    for line in recap.splitlines():
        m = SUMMARY_LINE.match(line.strip())
        if m:
            rows.append((m.group(1).strip(), float(m.group(2))))
    return rows


def print_profile(title: str, run: dict) -> None:
    print("\n### %s: %.1f s, changed=%d (%s)\n" % (title, run["wall"], run["changed"], run["log"]))
    print("| play | task starts (all hosts) | seconds |")
    print("|---|---:|---:|")
    for name, (secs, tasks) in run["plays"].items():
        print("| %s | %d | %.1f |" % (name, tasks, secs))
    tasks = run["tasks"]
    print("\n%d tasks in the profile, %.1f s in all; the %d slowest:\n" % (
        len(tasks), sum(t for _n, t in tasks), min(TOP, len(tasks))))
    print("| task | seconds |")
    print("|---|---:|")
    for name, secs in tasks[:TOP]:
        print("| %s | %.2f |" % (name.replace("|", "/"), secs))


def median_run(runs: list) -> dict:
    ordered = sorted(runs, key=lambda r: r["wall"])
    return ordered[(len(ordered) - 1) // 2]


def main() -> None:
    first, rerun = [], []
    for _round in range(0 if REUSE_LAB else ROUNDS):
        sh("scripts/lab.sh", "down")
        sh("scripts/lab.sh", "infra")
        first.append(timed_site())
        for _rerun in range(RERUNS):
            rerun.append(timed_site())
    if REUSE_LAB:
        for _rerun in range(RERUNS):
            rerun.append(timed_site())
    elif not KEEP_LAB:
        sh("scripts/lab.sh", "down")
    print("## Convergence: site.yml on the lab\n")
    print("Command: `%s` (bench/convergence/run.py, %s, %d no-change re-runs each; "
          "profile by ansible.posix.profile_tasks)\n" % (
              " ".join(SITE), "the lab that was up" if REUSE_LAB else "%d fresh lab(s)" % ROUNDS, RERUNS))
    print("| run | median wall time | runs | changed tasks (all hosts) |")
    print("|---|---|---|---|")
    if first:
        print("| first convergence (6 hosts) | %.1f s | %d | %s |" % (
            statistics.median(r["wall"] for r in first), len(first), [r["changed"] for r in first]))
    print("| no-change re-run | %.1f s | %d | %s |" % (
        statistics.median(r["wall"] for r in rerun), len(rerun), [r["changed"] for r in rerun]))
    if first:
        print("\nA no-change re-run costs %.0f%% of a first convergence." % (
            100 * statistics.median(r["wall"] for r in rerun) / statistics.median(r["wall"] for r in first)))
        print_profile("First convergence (median)", median_run(first))
    print_profile("No-change re-run (median)", median_run(rerun))


if __name__ == "__main__":
    main()
