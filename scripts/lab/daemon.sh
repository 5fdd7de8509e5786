# shellcheck shell=bash
# Sourced by scripts/setup-host.sh and scripts/lab.sh.
#
# Daemons these scripts start outlive them: they must not keep the file
# descriptors the script inherited. A caller's `flock FILE cmd` holds its lock
# on such a descriptor (fd 3), and a daemon that keeps it keeps the lock taken
# for as long as it runs (a lab's stand-ins did: every later `flock` on the
# lab lock waited for good).
#   (without_inherited_fds setsid nohup cmd args >log 2>&1 </dev/null) &
without_inherited_fds() {
  local fd
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
  exec "$@"
}
