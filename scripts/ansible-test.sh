#!/usr/bin/env bash
# Run ansible-test on a copy of the checkout laid out as
# ansible_collections/kibamail/email_platform (ansible-test requires that path),
# with an offline stand-in for the get-pip bootstrap it would download.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Outside the checkout (ansible-test would otherwise list files through the
# checkout's git, which ignores the copy). tests/output of the copy is kept
# between runs: it holds the sanity venvs. One run at a time (flock).
work="${KB_ANSIBLE_TEST_DIR:-$HOME/.cache/kibamail-ansible-test}"
dest="$work/ansible_collections/kibamail/email_platform"
mkdir -p "$dest"
exec 9>"$work/.lock"
flock 9
rsync -a --delete \
  --exclude .git --exclude .venv --exclude .collections --exclude .build --exclude .lab \
  --exclude .cache --exclude tests/output --exclude '__pycache__' --exclude .pytest_cache \
  --exclude .hypothesis --exclude '*.tar.gz' --exclude bench/results --exclude /tests/output \
  "$root/" "$dest/"

cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
pipver=$("$root/.venv/bin/python" - <<'PY'
import importlib.util, pathlib, re
spec = importlib.util.find_spec("ansible_test")
text = (pathlib.Path(spec.origin).parent / "_util/target/setup/requirements.py").read_text()
m = re.search(r"PIP_VERSION\s*=\s*'([^']+)'|pip_version\s*=\s*'([^']+)'", text)
print((m.group(1) or m.group(2)) if m else "24.2")
PY
)
stub="$cache/get_pip_${pipver//./_}.py"
cat >"$stub" <<'PY'
"""Offline stand-in for get-pip.py: bootstrap pip from ensurepip, then
install what get-pip was asked for (pip itself, from the package index)."""
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
# get-pip's own flags mean nothing to pip install.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
PY
cd "$dest"
"$root/.venv/bin/ansible-test" "$@"
