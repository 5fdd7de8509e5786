#!/usr/bin/env bash
# Build the collection tarball and run galaxy-importer on it (offline).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/.build/dist"
rm -rf "$out"; mkdir -p "$out"
ansible-galaxy collection build --force --output-path "$out" "$root"
tarball=$(ls "$out"/kibamail-email_platform-*.tar.gz)
cfg="$out/galaxy-importer.cfg"
cat >"$cfg" <<CFG
[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = False
RUN_FLAKE8 = False
CHECK_CHANGELOG = True
CFG
GALAXY_IMPORTER_CONFIG="$cfg" python -m galaxy_importer.main "$tarball" >"$out/importer.log" 2>&1 || {
  cat "$out/importer.log"; exit 1; }
tail -n 20 "$out/importer.log"
if grep -E '^(ERROR|.*\bERROR\b)' "$out/importer.log"; then
  echo "galaxy-importer reported errors" >&2; exit 1
fi
echo "built and imported: $(basename "$tarball")"
