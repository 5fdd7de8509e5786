#!/usr/bin/env bash
# Run the quality gates.
#
#   scripts/test.sh                 every stage (what `make test` and CI run)
#   scripts/test.sh STAGE...        only those stages
#
# Stages: yamllint ansible-lint sanity units integration build (the static
# stages) and one stage per molecule scenario, molecule-<scenario>; `molecule`
# stands for all of them (MOLECULE_SCENARIOS="a b" narrows the list).
#
# The stages run in two lanes at once (the CI machine has 2 cores): lane 1
# takes the molecule scenarios, longest first; lane 2 takes the static stages
# in order, then helps with the scenarios that are left. KB_TEST_LANES=1 runs
# everything in one lane, in order. Each stage has its own log
# (.cache/test-logs/<stage>.log) and its own PASS/FAIL line; the exit code is
# non-zero when any stage failed. At the end a timing table (stage, lane,
# start offset, seconds, result) is printed and written to
# .cache/test-logs/timing.txt.
#
# Stages that run side by side do not share anything they write: every
# molecule scenario has its own containers, docker network and subnet
# (haproxy .64/27, mta .96/27, bounce .128/27, verify .160/27 of
# 198.51.100.0/24; the lab of the platform scenario is kb-* on kb-lab,
# .0/26); the integration tests listen on free ports only; ansible-test
# works on its own copy under ~/.cache (with a lock); the integration stage
# leaves the lab's tests alone (tests/integration/lab and the `lab` marker
# run inside the platform scenario, against the lab it brings up).
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

STATIC=(yamllint ansible-lint sanity units integration build)
# Longest first, so the last scenario to finish is a short one (figures of
# the last CI runs: platform ~1400 s, the others 140-250 s).
MOLECULE_ORDER=(platform mta haproxy bounce_inbound verify)

molecule_scenarios() {
  local s known=() all=()
  if [ -n "${MOLECULE_SCENARIOS:-}" ]; then
    # shellcheck disable=SC2206
    all=(${MOLECULE_SCENARIOS})
  else
    for s in molecule/*/molecule.yml; do all+=("$(basename "$(dirname "$s")")"); done
  fi
  for s in "${MOLECULE_ORDER[@]}"; do
    [[ " ${all[*]} " == *" $s "* ]] && known+=("$s")
  done
  for s in "${all[@]}"; do
    [[ " ${known[*]} " == *" $s "* ]] || known+=("$s")
  done
  printf '%s\n' "${known[@]}"
}

stage_yamllint() { yamllint --strict .; }
stage_ansible-lint() { ansible-lint --offline --profile production; }
stage_sanity() { scripts/ansible-test.sh sanity --venv --python 3.11; }
stage_units() { python -m pytest -q -p no:cacheprovider tests/unit; }
stage_integration() {
  local dirs=(tests/integration)
  [ -d tests/reliability ] && dirs+=(tests/reliability)
  # The lab's own tests run in the platform scenario; here they would meet a
  # lab that another lane is bringing up.
  env -u KB_LAB_TESTS python -m pytest -q -p no:cacheprovider --durations=15 --ignore=tests/integration/lab "${dirs[@]}"
}
stage_build() { scripts/build-collection.sh; }
# Molecule's step lines ("<scenario> ➜ converge: Executing") get the seconds
# since the stage began, so a stage's time splits into its steps (printed
# with the stage's result). pipefail keeps molecule's exit status.
stage_molecule() {
  local begin=$SECONDS line
  molecule test -s "$1" 2>&1 | while IFS= read -r line; do
    case $line in
      *"➜"*) printf '[%5ss] %s\n' "$((SECONDS - begin))" "$line" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done
}
molecule_steps() {   # the stamped "Executing" lines of a scenario's log, colours removed
  grep -a -E '^\[ *[0-9]+s\].*Executing' "$1" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/   | step /' || true
}

# --- which stages --------------------------------------------------------------
static=(); scenarios=()
add_scenario() {
  [ -f "molecule/$1/molecule.yml" ] || { echo "no molecule scenario '$1' (molecule/$1/molecule.yml)" >&2; exit 2; }
  [[ " ${scenarios[*]} " == *" $1 "* ]] || scenarios+=("$1")
}
if [ "$#" -eq 0 ]; then
  set -- "${STATIC[@]}" molecule
fi
for arg in "$@"; do
  case "$arg" in
    molecule) while read -r s; do add_scenario "$s"; done < <(molecule_scenarios) ;;
    molecule-*) add_scenario "${arg#molecule-}" ;;
    *)
      if [[ " ${STATIC[*]} " == *" $arg "* ]]; then
        [[ " ${static[*]} " == *" $arg "* ]] || static+=("$arg")
      else
        echo "unknown stage '$arg'; stages: ${STATIC[*]} molecule molecule-<scenario>" >&2
        exit 2
      fi ;;
  esac
done

# --- the queue -------------------------------------------------------------------
# Two lists of stage files; a lane takes the first stage of its own list,
# else of the other one (under a lock), so neither lane idles while work is left.
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/kb-test.XXXXXX")
trap 'rm -rf "$run_dir"' EXIT
mkdir -p "$run_dir/molecule" "$run_dir/static"
i=0
for s in "${scenarios[@]}"; do i=$((i + 1)); : >"$run_dir/molecule/$(printf '%02d' "$i")-molecule-$s"; done
for s in "${static[@]}"; do i=$((i + 1)); : >"$run_dir/static/$(printf '%02d' "$i")-$s"; done
: >"$run_dir/results"
t0=$(date +%s)

take() {   # take <own list> <other list>: print the next stage, or nothing
  (
    flock 8
    local f
    for list in "$@"; do
      f=$(find "$run_dir/$list" -type f -printf '%f\n' | sort | head -n 1)
      if [ -n "$f" ]; then rm -f "$run_dir/$list/$f"; echo "${f#*-}"; exit 0; fi
    done
  ) 8>"$run_dir/queue.lock"
}

report() {   # one block per stage; the lock keeps the lanes' blocks apart
  (
    flock 9
    for line in "$@"; do [ -z "$line" ] || printf '%s\n' "$line"; done
  ) 9>"$run_dir/print.lock"
}

run_stage() {   # run_stage <stage> <lane>
  local s=$1 lane=$2 start rc dur steps
  start=$(date +%s)
  report "== $s: running in lane $lane (log: .cache/test-logs/$s.log)"
  if [[ $s == molecule-* ]]; then
    stage_molecule "${s#molecule-}" >"$logs/$s.log" 2>&1; rc=$?
  else
    "stage_$s" >"$logs/$s.log" 2>&1; rc=$?
  fi
  # pytest exits 5 when a folder holds no test yet: that is a failure of ours,
  # not a pass; keep it visible.
  dur=$(( $(date +%s) - start ))
  steps=""
  [[ $s != molecule-* ]] || steps=$(molecule_steps "$logs/$s.log")
  if [ "$rc" -eq 0 ]; then
    report "PASS $s (${dur}s)" "$steps" "$(tail -n 3 "$logs/$s.log" | sed 's/^/   | /')"
    echo "$s $lane $((start - t0)) $dur PASS" >>"$run_dir/results"
  else
    report "FAIL $s (${dur}s, exit $rc)" "$steps" "$(tail -n 60 "$logs/$s.log" | sed 's/^/   | /')"
    echo "$s $lane $((start - t0)) $dur FAIL" >>"$run_dir/results"
  fi
}

lane() {   # lane <number> <own list> <other list>
  local n=$1 s
  shift
  while s=$(take "$@") && [ -n "$s" ]; do run_stage "$s" "$n"; done
}

lanes=${KB_TEST_LANES:-2}
if [ "$lanes" = 1 ]; then
  lane 1 static molecule
else
  lane 1 molecule static &
  lane1=$!
  lane 2 static molecule &
  lane2=$!
  trap 'kill "$lane1" "$lane2" 2>/dev/null; rm -rf "$run_dir"; exit 130' INT TERM
  wait "$lane1" "$lane2"
fi

# --- the timing table ------------------------------------------------------------
wall=$(( $(date +%s) - t0 ))
{
  printf '%-26s %4s %8s %8s  %s\n' stage lane start seconds result
  sort -n -k3 "$run_dir/results" | while read -r s l st d r; do
    printf '%-26s %4s %7ss %7ss  %s\n' "$s" "$l" "$st" "$d" "$r"
  done
  sum=$(awk '{t += $4} END {print t + 0}' "$run_dir/results")
  printf 'wall clock %ss for %ss of stages (%s lane(s))\n' "$wall" "$sum" "$lanes"
} >"$logs/timing.txt"
echo
cat "$logs/timing.txt"
expected=$(( ${#scenarios[@]} + ${#static[@]} ))
ran=$(wc -l <"$run_dir/results")
[ "$ran" -eq "$expected" ] || echo "FAIL: $((expected - ran)) stage(s) did not run"
passed=$(grep -c ' PASS$' "$run_dir/results")
failed_names=$(awk '$5 == "FAIL" {print $1}' "$run_dir/results" | tr '\n' ' ')
failed=$(grep -c ' FAIL$' "$run_dir/results")
echo "stages: ${passed} passed, ${failed} failed${failed_names:+ (${failed_names% })}"
[ "$failed" -eq 0 ] && [ "$ran" -eq "$expected" ]
