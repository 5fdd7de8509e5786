#!/usr/bin/env bash
# Run the quality gates. With no argument: every stage, in order, each with a
# PASS/FAIL line and its duration, then a summary line. With arguments: only
# those stages. Logs go to .cache/test-logs/<stage>.log.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$root/.collections"
export ANSIBLE_LINT_SKIP_SCHEMA_UPDATE=1
export PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$root/.collections${PYTHONPATH:+:$PYTHONPATH}"
logs="$root/.cache/test-logs"
mkdir -p "$logs"

ALL=(yamllint ansible-lint sanity units integration build molecule)
stages=("$@")
[ "${#stages[@]}" -gt 0 ] || stages=("${ALL[@]}")

stage_yamllint() { yamllint --strict .; }
stage_ansible-lint() { ansible-lint --offline --profile production; }
stage_sanity() { scripts/ansible-test.sh sanity --venv --python 3.11; }
stage_units() { python -m pytest -q -p no:cacheprovider tests/unit; }
stage_integration() {
  local dirs=(tests/integration)
  [ -d tests/reliability ] && dirs+=(tests/reliability)
  python -m pytest -q -p no:cacheprovider "${dirs[@]}"
}
stage_build() { scripts/build-collection.sh; }
stage_molecule() { scripts/molecule-all.sh; }

passed=0; failed=0; failed_names=()
for s in "${stages[@]}"; do
  start=$(date +%s)
  echo "== $s: running (log: .cache/test-logs/$s.log)"
  if "stage_$s" >"$logs/$s.log" 2>&1; then
    rc=0
  else
    rc=$?
  fi
  # pytest exits 5 when a folder holds no test yet: that is a failure of ours,
  # not a pass; keep it visible.
  dur=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1)); echo "PASS $s (${dur}s)"
    tail -n 3 "$logs/$s.log" | sed 's/^/   | /'
  else
    failed=$((failed + 1)); failed_names+=("$s"); echo "FAIL $s (${dur}s, exit $rc)"
    tail -n 60 "$logs/$s.log" | sed 's/^/   | /'
  fi
done
echo "stages: ${passed} passed, ${failed} failed${failed_names:+ (${failed_names[*]})}"
[ "$failed" -eq 0 ]
