#!/usr/bin/env bash
# Build the container images the lab and the molecule scenarios use, locally
# (no registry can be reached): a debootstrapped Debian 12 base, then a
# systemd test image on top of it. Skips any image that already exists.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BASE=local/debian:12
SYSTEMD=local/debian-systemd:12

mirror() {
  # The first Debian mirror this host itself uses.
  local src
  src=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1 || true)
  [ -n "$src" ] || src=$(grep -h -m1 -E '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true)
  echo "${src:-http://deb.debian.org/debian}"
}

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  m=$(mirror)
  root=$(mktemp -d /tmp/kb-rootfs.XXXXXX)
  echo "build-images: debootstrap bookworm from $m"
  debootstrap --variant=minbase bookworm "$root" "$m" >/tmp/kb-debootstrap.log 2>&1 \
    || { tail -20 /tmp/kb-debootstrap.log >&2; exit 1; }
  cat >"$root/etc/apt/sources.list" <<SRC
deb $m bookworm main
deb $m bookworm-updates main
SRC
  tar -C "$root" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$root"
fi

# Rebuild when the image's sources change (their hash is kept as a label).
want=$(cd "$here/images/debian-systemd" && cat ./* | sha256sum | cut -c1-16)
have=$(docker image inspect -f '{{ index .Config.Labels "kibamail.source-hash" }}' "$SYSTEMD" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "build-images: $SYSTEMD"
  docker build -q --label "kibamail.source-hash=$want" -t "$SYSTEMD" "$here/images/debian-systemd" >/dev/null
fi
echo "build-images: ok ($BASE, $SYSTEMD)"
