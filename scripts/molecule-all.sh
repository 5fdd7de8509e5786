#!/usr/bin/env bash
# Run every molecule scenario under molecule/, one after another (2 cores:
# never in parallel). MOLECULE_SCENARIOS="a b" narrows the list.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
scenarios=${MOLECULE_SCENARIOS:-$(for d in molecule/*/molecule.yml; do basename "$(dirname "$d")"; done)}
rc=0
for s in $scenarios; do
  start=$(date +%s)
  if molecule test -s "$s" >".cache/test-logs/molecule-$s.log" 2>&1; then
    echo "molecule $s: PASS ($(( $(date +%s) - start ))s)"
  else
    echo "molecule $s: FAIL ($(( $(date +%s) - start ))s), last lines:"
    tail -n 80 ".cache/test-logs/molecule-$s.log"
    rc=1
  fi
done
exit $rc
