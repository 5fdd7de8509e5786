#!/usr/bin/env bash
# Run every benchmark under bench/<name>/run.py (each prints a markdown
# section with its own command lines and medians) and write them, with the
# machine they ran on, to docs/benchmarks.md. BENCH="rdns dns" narrows the list.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$root/.collections"
export PYTHONPATH="$root/.collections${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p bench/results
names=${BENCH:-$(for f in bench/*/run.py; do basename "$(dirname "$f")"; done)}
out=docs/benchmarks.md
{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "Each figure is measured side by side with its peer in the same run; medians of several runs."
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);"
  echo "Python $(python -c 'import platform; print(platform.python_version())'), ansible-core $(python -c 'import ansible.release; print(ansible.release.__version__)')."
  echo
} >"$out.tmp"
rc=0
for n in $names; do
  echo "bench: $n"
  if ! python "bench/$n/run.py" >"bench/results/$n.md" 2>"bench/results/$n.err"; then
    echo "bench: $n failed, see bench/results/$n.err"; tail -5 "bench/results/$n.err"; rc=1
    printf 'Failed in the last run (see bench/results/%s.err).\n' "$n" >"bench/results/$n.md"
  fi
done
# Every benchmark's latest result (a narrowed run keeps the others' last one).
for f in bench/results/*.md; do
  n=$(basename "$f" .md)
  grep -q '^## ' "$f" || printf '## %s (bench/%s/run.py)\n\n' "$n" "$n" >>"$out.tmp"
  cat "$f" >>"$out.tmp"; echo >>"$out.tmp"
done
mv "$out.tmp" "$out"
echo "bench: wrote $out"
exit $rc
