#!/usr/bin/env bash
# Prepare a Debian 12 host (as root) for the lab and the tests:
# Debian packages, a running Docker daemon, and the lab's egress guard.
# Safe to run again: every step checks before it acts.
set -euo pipefail

# chromium: headless, for the browser test of the verify report (tests/integration/verify/test_report_browser.py)
# python3-milter: the unit test of the MTA sender milter runs it under /usr/bin/python3
# prometheus, prometheus-alertmanager, mtail: promtool, amtool and mtail for the unit tests of the monitoring (tests/unit/monitoring)
# rsyslog: rsyslogd -N1 checks the rsyslog fragments in the unit tests of log_shipping and rsyslog_journal
PACKAGES=(docker.io debootstrap bind9 bind9-utils iptables rsync swaks openssl apt-cacher-ng python3-venv chromium python3-milter pebble prometheus prometheus-alertmanager mtail rsyslog)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# named from bind9 is only used on loopback by the tests; never as a host service.
# pebble (the ACME test CA) likewise: tests/integration/acme starts it on loopback.
# prometheus, prometheus-alertmanager, mtail, rsyslog: only their tools (promtool, amtool, mtail --one_shot,
# rsyslogd -N1) are used here.
if [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus prometheus-alertmanager prometheus-node-exporter mtail rsyslog >/dev/null 2>&1 || true
fi

# Daemons started here must not keep our inherited descriptors (a caller's lock).
# shellcheck source=scripts/lab/daemon.sh
. "$(dirname "$0")/lab/daemon.sh"

if ! docker info >/dev/null 2>&1; then
  echo "setup-host: starting dockerd"
  mkdir -p /var/log
  (without_inherited_fds nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null) &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "setup-host: dockerd did not start, see /var/log/dockerd.log" >&2; exit 1; }
fi

# Containers install Debian packages through this caching proxy on the
# docker gateway (images detect it): they need no outside name resolution,
# and repeated installs (molecule scenarios, the lab) come from the cache.
acng_works() {
  # A real fetch through the cache, not only an open port.
  python3 - <<'PY'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": "http://127.0.0.1:3142"}))
try:
    with opener.open("http://deb.debian.org/debian/dists/bookworm/Release", timeout=20) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}
# The cache sends Debian requests to the mirrors in backends_debian; its
# packaged default (ftp.debian.org) may not resolve here: use the mirror this
# host itself uses.
mirror=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
want="${mirror%/}/"
if [ "$(cat /etc/apt-cacher-ng/backends_debian 2>/dev/null)" != "$want" ]; then
  echo "$want" >/etc/apt-cacher-ng/backends_debian
  pkill -f '/usr/sbin/apt-cacher-ng -c /etc/apt-cacher-ng ' 2>/dev/null || true
  sleep 1
fi
if ! acng_works; then
  echo "setup-host: (re)starting apt-cacher-ng"
  pkill -f 'apt-cacher-ng -c /etc/apt-cacher-ng ForeGround=0' 2>/dev/null || true
  if [ -f /run/apt-cacher-ng/pid ]; then kill "$(cat /run/apt-cacher-ng/pid)" 2>/dev/null || true; fi
  mkdir -p /var/cache/apt-cacher-ng /var/log/apt-cacher-ng /run/apt-cacher-ng
  chown -R apt-cacher-ng: /var/cache/apt-cacher-ng /var/log/apt-cacher-ng /run/apt-cacher-ng 2>/dev/null || true
  # In the foreground, sent to the background by us: its own daemon mode
  # was seen answering 503 for every host on this kind of machine.
  (without_inherited_fds setsid nohup /usr/sbin/apt-cacher-ng -c /etc/apt-cacher-ng ForeGround=1 PidFile=/run/apt-cacher-ng/pid \
    SocketPath=/run/apt-cacher-ng/socket >/var/log/apt-cacher-ng/foreground.log 2>&1 < /dev/null) &
  for _ in $(seq 1 30); do acng_works && break; sleep 1; done
  acng_works || { echo "setup-host: the apt cache on port 3142 cannot fetch from the Debian mirror" >&2; exit 1; }
fi

# Containment: no SMTP may leave the machine from any container, whatever
# network it is on. Traffic between containers on one bridge never crosses
# FORWARD, so the rule only bites on traffic routed out of the host.
"$(dirname "$0")/egress-guard.sh" apply
echo "setup-host: ok"
