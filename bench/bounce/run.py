# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounce engines side by side on tests/bounce_corpus: accuracy and speed.

    python bench/bounce/run.py [--passes N] [--baseline GIT_REF] [--out bench/bounce/results.md]

Engines:
  kb_bounce   the project's parser, through ``kb-bounce ingest``'s own code path
              (parse, SQLite write, quarantine) in this process
  sisimai     Debian's libsisimai-perl behind one long-running Perl worker
              (bench/bounce/sisimai_worker.pl; no interpreter per message), its
              results written to the same SQLite store
  flufl       flufl.bounce 6 (``all_failures``: permanent -> hard, temporary -> soft)
  baseline    kb_bounce as it is at GIT_REF (default: main), for the before/after

Every engine sees the message alone (no envelope recipient, no VERP): what a
notice says by itself.  The labels are tests/bounce_corpus/expectations.yml,
written by what each notice means.  A message an engine finds nothing in is
quarantined (kb_bounce's own quarantine directory), as ingest would.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import email
import email.policy
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "bounce_corpus")
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sisimai_worker.pl")

# One engine result per message: a list of (recipient, class, status).
Found = List[Tuple[str, str, Optional[str]]]


def load_corpus() -> List[Tuple[dict, bytes]]:
    with open(os.path.join(CORPUS, "expectations.yml"), encoding="utf-8") as handle:
        cases = yaml.safe_load(handle)["messages"]
    out = []
    for case in cases:
        with open(os.path.join(CORPUS, case["file"]), "rb") as handle:
            raw = handle.read()
        out.append((case, base64.b64decode(raw) if case["file"].endswith(".b64") else raw))
    return out


def _settings(tmp: str) -> str:
    quarantine = os.path.join(tmp, "quarantine")
    os.makedirs(quarantine, exist_ok=True)
    path = os.path.join(tmp, "config.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"database": os.path.join(tmp, "events.sqlite3"), "quarantine_dir": quarantine,
                   "webhook_url": "http://127.0.0.1:9/unused", "webhook_secret": "bench",
                   "platform_bounce_domain": "kb-bounces.kbmta.net"}, handle)
    return path


def _import_kb(files_dir: str):
    if files_dir not in sys.path:
        sys.path.insert(0, files_dir)
    from kb_bounce import cli, config as configmod, parse, store  # pylint: disable=import-outside-toplevel
    return cli, configmod, parse, store


class KbBounce:
    """The project's parser, called the way ``kb-bounce ingest`` calls it."""

    name = "kb_bounce"

    def __init__(self, files_dir: str, tmp: str) -> None:
        self.cli, configmod, self.parse_mod, self.store = _import_kb(files_dir)
        self.config = configmod.load(_settings(tmp))

    def analyse(self, raw: bytes) -> Found:
        result = self.parse_mod.parse(raw, None, None)
        return [(e.recipient.lower(), e.klass, e.status) for e in result.events]

    def ingest(self, raw: bytes) -> None:
        self.cli.ingest(raw, None, self.config)

    def close(self) -> None:
        pass


class _StoreWriter:
    """Write another engine's findings the way ingest does: events, or the message to quarantine."""

    def __init__(self, files_dir: str, tmp: str) -> None:
        configmod, self.store = _import_kb(files_dir)[1::2]
        self.config = configmod.load(_settings(tmp))

    def write(self, raw: bytes, found: Found, engine: str) -> None:
        sha = hashlib.sha256(raw).hexdigest()
        db = self.store.Store(self.config.database)
        try:
            if not found:
                path = self.store.quarantine(self.config.quarantine_dir, sha, raw, "%s found nothing" % engine)
                db.add_message(sha, None, "unparseable", "%s found nothing" % engine, [], quarantine_file=path)
                return
            payloads = [{"type": "complaint" if k == "complaint" else "delay" if k == "delay" else "bounce",
                         "class": k, "recipient": r, "status": s, "engine": engine} for r, k, s in found]
            db.add_message(sha, None, "report", "%d event(s)" % len(payloads), payloads)
        finally:
            db.close()


class Sisimai:
    """libsisimai-perl through one long-running worker process."""

    name = "sisimai"

    def __init__(self, files_dir: str, tmp: str) -> None:
        self.writer = _StoreWriter(files_dir, tmp)
        self.proc = subprocess.Popen(["perl", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    @staticmethod
    def available() -> Optional[str]:
        probe = subprocess.run(["perl", "-MSisimai", "-e", "print Sisimai->version"], capture_output=True,
                               text=True, check=False)
        return probe.stdout.strip() if probe.returncode == 0 else None

    def analyse(self, raw: bytes) -> Found:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"%d\n" % len(raw) + raw)
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        found: Found = []
        for event in answer.get("events") or []:
            reason = event.get("reason") or ""
            if reason in ("vacation", "delivered"):
                continue
            if reason == "feedback":
                klass = "complaint"
            elif event.get("action") == "delayed":
                klass = "delay"
            else:
                klass = "hard" if str(event.get("softbounce")) == "0" else "soft"
            status = event.get("status") or None
            found.append((str(event.get("recipient") or "").lower(), klass,
                          None if klass == "complaint" else status))
        return found

    def ingest(self, raw: bytes) -> None:
        self.writer.write(raw, self.analyse(raw), self.name)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Flufl:
    """flufl.bounce: addresses only (permanent or temporary), no status, no complaints."""

    name = "flufl.bounce"

    def __init__(self, files_dir: str, tmp: str) -> None:
        from flufl.bounce import all_failures  # pylint: disable=import-outside-toplevel
        self.all_failures = all_failures
        self.writer = _StoreWriter(files_dir, tmp)

    def analyse(self, raw: bytes) -> Found:
        try:
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            temporary, permanent = self.all_failures(msg)
        except Exception:  # pylint: disable=broad-except
            return []

        def text(address):
            return (address.decode("utf-8", "replace") if isinstance(address, bytes) else str(address)).lower()
        found = [(text(a), "hard", None) for a in sorted(permanent)]
        found += [(text(a), "soft", None) for a in sorted(temporary) if a not in permanent]
        return found

    def ingest(self, raw: bytes) -> None:
        self.writer.write(raw, self.analyse(raw), self.name)

    def close(self) -> None:
        pass


def score(engine, corpus) -> Dict[str, object]:
    expected = found = class_right = status_total = status_right = 0
    complaints = complaints_found = extra = unread = 0
    misses: List[str] = []
    for case, raw in corpus:
        events = case.get("events") or []
        got = engine.analyse(raw)
        by_rcpt: Dict[str, Tuple[str, Optional[str]]] = {}
        for rcpt, klass, status in got:
            by_rcpt.setdefault(rcpt, (klass, status))
        wanted = {e["recipient"].lower() for e in events}
        extra += len([r for r in by_rcpt if r not in wanted])
        if events and not got:
            unread += 1
        for event in events:
            expected += 1
            complaints += event["class"] == "complaint"
            hit = by_rcpt.get(event["recipient"].lower())
            if hit is None:
                misses.append("%s: %s not found" % (case["file"], event["recipient"]))
                continue
            found += 1
            complaints_found += event["class"] == "complaint"
            if hit[0] == event["class"]:
                class_right += 1
            else:
                misses.append("%s: %s %s, expected %s" % (case["file"], event["recipient"], hit[0], event["class"]))
            if event["status"]:
                status_total += 1
                status_right += hit[1] == event["status"]
    return {"expected": expected, "found": found, "class_right": class_right, "status_total": status_total,
            "status_right": status_right, "complaints": complaints, "complaints_found": complaints_found,
            "extra": extra, "unread": unread, "misses": misses}


def speed(engine, corpus, passes: int, store: bool = True) -> float:
    """Messages per second through the engine (and the SQLite store: distinct messages every pass)."""
    count = 0
    sink = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stderr(sink):
        for number in range(passes):
            for _case, raw in corpus:
                raw = b"X-Kb-Bench-Pass: %d\n" % number + raw
                if store:
                    engine.ingest(raw)
                else:
                    engine.analyse(raw)
                count += 1
    return count / (time.perf_counter() - started)


def run_engine(factory: Callable, files_dir: str, corpus, passes: int, tmp_root: Optional[str] = None,
               ) -> Dict[str, object]:
    tmp = tempfile.mkdtemp(prefix="kb-bounce-bench-", dir=tmp_root)
    try:
        engine = factory(files_dir, tmp)
        try:
            result = score(engine, corpus)
            result["parse_per_s"] = speed(engine, corpus, passes, store=False)
            result["msgs_per_s"] = speed(engine, corpus, passes)
        finally:
            engine.close()
        result["engine"] = engine.name
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def baseline(ref: str, passes: int, tmp_root: Optional[str]) -> Optional[Dict[str, object]]:
    """kb_bounce as it is at a git ref, run in a child process (its own copy of the package)."""
    tmp = tempfile.mkdtemp(prefix="kb-bounce-baseline-")
    try:
        archive = subprocess.run(["git", "-C", ROOT, "archive", ref, "roles/bounce_inbound/files"],
                                 capture_output=True, check=False)
        if archive.returncode != 0:
            print("baseline %s: git archive failed: %s" % (ref, archive.stderr.decode().strip()), file=sys.stderr)
            return None
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        child = subprocess.run([sys.executable, __file__, "--child", os.path.join(tmp, "roles/bounce_inbound/files"),
                                "--passes", str(passes)] + (["--tmp", tmp_root] if tmp_root else []), capture_output=True, text=True, check=False)
        if child.returncode != 0:
            print("baseline %s failed: %s" % (ref, child.stderr[-2000:]), file=sys.stderr)
            return None
        result = json.loads(child.stdout)
        result["engine"] = "kb_bounce@%s" % ref
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pct(num: int, den: int) -> str:
    return "%.1f %%" % (100.0 * num / den) if den else "-"


def table(results: List[Dict[str, object]], corpus_size: int, store_dir: str) -> str:
    lines = [
        "| engine | recipients found | class agreement (over found) | status agreement | complaints found "
        "| extra recipients | reports read as nothing | msgs/s parse only | msgs/s incl. SQLite |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append("| %s | %s (%d/%d) | %s (%d/%d) | %s (%d/%d) | %d/%d | %d | %d | %.0f | %.0f |" % (
            r["engine"], pct(r["found"], r["expected"]), r["found"], r["expected"],
            pct(r["class_right"], r["found"]), r["class_right"], r["found"],
            pct(r["status_right"], r["status_total"]), r["status_right"], r["status_total"],
            r["complaints_found"], r["complaints"], r["extra"], r["unread"], r["parse_per_s"], r["msgs_per_s"]))
    lines.append("")
    lines.append("%d messages, message alone (no envelope, no VERP); status agreement over the found recipients "
                 "whose label has a status; the SQLite store (WAL, synchronous=FULL, one transaction per message, as "
                 "ingest does) and the quarantine under %s." % (corpus_size, store_dir))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--passes", type=int, default=5, help="corpus passes for the speed figure")
    parser.add_argument("--baseline", default="main", help="git ref of the kb_bounce to compare ('' for none)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "bounce", "results.md"))
    parser.add_argument("--misses", action="store_true", help="print every disagreement")
    parser.add_argument("--tmp", help="directory for the store and quarantine (default: the system's temp dir; "
                        "/dev/shm takes the disk's fsync out of the figure)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)  # its detectors log their own crashes
    corpus = load_corpus()
    files = os.path.join(ROOT, "roles", "bounce_inbound", "files")
    if args.child:
        print(json.dumps(run_engine(KbBounce, args.child, corpus, args.passes, args.tmp)))
        return 0
    results = [run_engine(KbBounce, files, corpus, args.passes, args.tmp)]
    version = Sisimai.available()
    if version:
        results.append(run_engine(Sisimai, files, corpus, args.passes, args.tmp))
        results[-1]["engine"] = "sisimai %s (worker)" % version
    else:
        print("sisimai: not installed (apt-get install libsisimai-perl); row left out", file=sys.stderr)
    try:
        results.append(run_engine(Flufl, files, corpus, args.passes, args.tmp))
    except ImportError:
        print("flufl.bounce: not installed (requirements-dev.txt); row left out", file=sys.stderr)
    if args.baseline:
        before = baseline(args.baseline, args.passes, args.tmp)
        if before:
            results.append(before)
    text = table(results, len(corpus), args.tmp or tempfile.gettempdir())
    print(text)
    if args.misses:
        for r in results:
            print("\n## %s" % r["engine"])
            print("\n".join(r["misses"]))
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write("# bench/bounce results\n\nWritten by `python bench/bounce/run.py`.\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
