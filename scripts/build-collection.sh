#!/usr/bin/env bash
# Build the collection tarball, check what it holds (tests/integration/build:
# nothing secret or lab-only, dependencies as declared, the execution
# environment definition) and import it with galaxy-importer, lint on, in an
# environment like Galaxy's: ansible-core, ansible-lint and only the
# collections galaxy.yml declares (scripts/importer_env.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.build/dist"
rm -rf "$out"; mkdir -p "$out"
ansible-galaxy collection build --force --output-path "$out" "$root"
tarball=$(ls "$out"/kibamail-email_platform-*.tar.gz)

KB_COLLECTION_TARBALL="$tarball" python -m pytest -q -p no:cacheprovider "$root/tests/integration/build"

python "$root/scripts/importer_env.py" "$out/importer-env"
cfg="$out/galaxy-importer.cfg"
cat >"$cfg" <<CFG
[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = True
OFFLINE_ANSIBLE_LINT = True
RUN_FLAKE8 = False
CHECK_CHANGELOG = True
CFG
# From $out: the importer writes importer_result.json into its working directory.
(cd "$out" && PATH="$out/importer-env/bin:$PATH" VIRTUAL_ENV="$out/importer-env" GALAXY_IMPORTER_CONFIG="$cfg" \
  "$out/importer-env/bin/python" -m galaxy_importer.main "$tarball") >"$out/importer.log" 2>&1 || {
  cat "$out/importer.log"; exit 1; }
tail -n 5 "$out/importer.log"
# ansible-lint's findings come back as WARNING lines (rule violations) and
# ERROR lines (playbooks it could not load): both fail the build.
if grep -E '\bERROR\b|^WARNING: .*(\[[a-z-]+(\[[a-z-]+\])?\]|violation)' "$out/importer.log"; then
  echo "galaxy-importer reported errors or lint findings (log: $out/importer.log)" >&2; exit 1
fi
echo "built, checked and imported: $(basename "$tarball")"
