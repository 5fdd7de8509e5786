#!/usr/bin/env bash
# The lab: the whole platform in local containers on this machine.
#
#   scripts/lab.sh up       network, containers, lab DNS and receiver, Hetzner
#                           stand-ins, .lab/lab.json; then site.yml twice (the
#                           second run must report changed=0) and the demo
#   scripts/lab.sh infra    only the infrastructure part of `up` (no site.yml)
#   scripts/lab.sh site     site.yml twice against the running lab
#   scripts/lab.sh verify   the demo and checks against the running lab
#   scripts/lab.sh status   what is running
#   scripts/lab.sh down     remove everything the lab created
#
# `make lab` runs `make setup` first (packages, dockerd, images, venv).
# Addresses are fixed (see docs/lab.md); nothing here talks to anything but
# loopback and the lab's own containers.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lab/daemon.sh
. scripts/lab/daemon.sh
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$root/.collections"
export PYTHONPATH="$root/.collections${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

LAB_DIR="$root/.lab"
NETWORK=kb-lab
BRIDGE=br-kb-lab # must start with br- : the egress guard lets only br-* bridges carry SMTP
SUBNET=198.51.100.0/26
GATEWAY=198.51.100.1
IMAGE=local/debian-systemd:12
LABEL=kibamail.lab=1
DNS_IP=198.51.100.53
# The lab's stock recursive resolver: every container resolves through it,
# as a receiver resolves through its own (docs/lab.md).
RESOLVER_IP=198.51.100.54
ROBOT_PORT=8780
CLOUD_DNS_PORT=8781
# Debian's pebble, a real ACME CA: the MTAs' certificates (playbooks/tls.yml).
PEBBLE_PORT=14000
PEBBLE_MANAGEMENT_PORT=15000
TSIG_NAME=kb-lab
TSIG_ALGORITHM=hmac-sha256
TSIG_FILE="$LAB_DIR/tsig.key"
VAULT_PASSWORD_FILE="$root/inventories/lab.vault-password.lab-only"
export ANSIBLE_VAULT_PASSWORD_FILE="$VAULT_PASSWORD_FILE"

# name address role
HOSTS=(
  "kb-ns 198.51.100.53 dns"
  "kb-resolver 198.51.100.54 resolver"
  "kb-mx 198.51.100.25 receiver"
  "lb-transactional 198.51.100.10 lb_transactional"
  "lb-marketing 198.51.100.11 lb_marketing"
  "us-mta1 198.51.100.21 mta_transactional"
  "us-mta2 198.51.100.22 mta_transactional"
  "eu-mta1 198.51.100.31 mta_marketing"
  "eu-mta2 198.51.100.32 mta_marketing"
  "kb-mon 198.51.100.40 monitoring"
)
# Prometheus and Alertmanager on kb-mon (inventories/lab/group_vars/monitoring.yml).
MONITORING_URL=http://198.51.100.40:9090
ALERTMANAGER_URL=http://198.51.100.40:9093

say() { printf 'lab: %s\n' "$*"; }
die() { printf 'lab: ERROR: %s\n' "$*" >&2; exit 1; }

# Everything a playbook or tool may need to find the lab.
export_lab_env() {
  export KB_LAB_DIR="$LAB_DIR"
  export KB_LAB_JSON="$LAB_DIR/lab.json"
  export KB_LAB_DNS_SERVER="$DNS_IP"
  export KB_LAB_DNS_PORT=53
  export KB_LAB_RESOLVER="$RESOLVER_IP"
  export KB_LAB_TSIG_KEY_FILE="$TSIG_FILE"
  export KB_LAB_TSIG_KEY_NAME="$TSIG_NAME"
  export KB_LAB_TSIG_ALGORITHM="$TSIG_ALGORITHM"
  if [ -f "$TSIG_FILE" ]; then
    KB_LAB_TSIG_SECRET=$(sed -n 's/.*secret "\([^"]*\)".*/\1/p' "$TSIG_FILE")
    export KB_LAB_TSIG_SECRET
  fi
  export KB_ROBOT_URL="http://127.0.0.1:$ROBOT_PORT"
  export KB_CLOUD_DNS_URL="http://127.0.0.1:$CLOUD_DNS_PORT"
}

# --- preconditions -----------------------------------------------------------
preflight() {
  command -v docker >/dev/null || die "docker is not installed: run 'make setup' (or scripts/setup-host.sh) first"
  docker info >/dev/null 2>&1 || die "the Docker daemon is not running: run 'make setup' (it starts dockerd)"
  docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE is missing: run 'make setup' (scripts/build-images.sh builds it)"
  [ -x "$root/.venv/bin/ansible-playbook" ] || die "the venv is missing: run 'make setup'"
  [ -e "$root/.collections/ansible_collections/kibamail/email_platform" ] || die "the collection link is missing: run 'make collection'"
  (exec 3<>/dev/tcp/127.0.0.1/3142) 2>/dev/null \
    || die "the apt proxy (apt-cacher-ng, port 3142) is not running: run scripts/setup-host.sh"
  # Containers install packages through the proxy: it must reach the mirror.
  local proxy=${KB_LAB_APT_PROXY:-http://127.0.0.1:3142} code
  proxy=${proxy/198.51.100.1/127.0.0.1}
  code=$(python - "$proxy" <<'PY'
import sys
import urllib.error
import urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": sys.argv[1]}))
try:
    print(opener.open("http://deb.debian.org/debian/dists/bookworm/Release", timeout=20).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError as exc:
    print("no answer (%s)" % exc)
PY
)
  [ "$code" = 200 ] || die "the apt proxy $proxy answers $code for the Debian mirror; if apt-cacher-ng maps deb.debian.org to ftp.debian.org, write 'http://deb.debian.org/debian/' into /etc/apt-cacher-ng/backends_debian and restart apt-cacher-ng (or set KB_LAB_APT_PROXY to a working proxy reachable from the lab, e.g. http://$GATEWAY:3143)"
}

# SMTP must never leave the machine: the DOCKER-USER rule of egress-guard.sh.
ensure_guard() {
  if ! "$root/scripts/egress-guard.sh" check 2>/dev/null; then
    say "adding the SMTP egress guard (DOCKER-USER)"
    "$root/scripts/egress-guard.sh" apply
  fi
}

# --- network and containers ----------------------------------------------------
ensure_network() {
  if ! docker network inspect "$NETWORK" >/dev/null 2>&1; then
    say "creating network $NETWORK ($SUBNET, bridge $BRIDGE)"
    docker network create --driver bridge --subnet "$SUBNET" --gateway "$GATEWAY" \
      --opt com.docker.network.bridge.name="$BRIDGE" --label "$LABEL" "$NETWORK" >/dev/null
  fi
  local subnet
  subnet=$(docker network inspect -f '{{ range .IPAM.Config }}{{ .Subnet }}{{ end }}' "$NETWORK")
  [ "$subnet" = "$SUBNET" ] || die "network $NETWORK exists with subnet $subnet, not $SUBNET: run 'scripts/lab.sh down' first"
  # The MTAs hold sending addresses of 192.0.2.0/24, where this host also has
  # its own address: the host must not answer ARP for them on the lab bridge.
  sysctl -qw "net.ipv4.conf.$BRIDGE.arp_ignore=1"
  sysctl -qw "net.ipv4.conf.$BRIDGE.arp_announce=2"
}

ensure_container() {
  local name=$1 ip=$2 role=$3
  if docker container inspect "$name" >/dev/null 2>&1; then
    local dns
    dns=$(docker container inspect -f '{{ json .HostConfig.Dns }}' "$name")
    [ "$dns" = "[\"$RESOLVER_IP\"]" ] \
      || die "container $name resolves through $dns, not the lab resolver $RESOLVER_IP (a lab from before the resolver): run 'scripts/lab.sh down' first"
    [ "$(docker container inspect -f '{{ .State.Running }}' "$name")" = true ] || docker start "$name" >/dev/null
    return
  fi
  say "starting container $name ($ip)"
  docker run -d --name "$name" --hostname "$name" \
    --network "$NETWORK" --ip "$ip" --dns "$RESOLVER_IP" --dns-search . \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN \
    --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
    --label "$LABEL" --label "kibamail.lab.role=$role" \
    "$IMAGE" /lib/systemd/systemd >/dev/null
  if [ -n "${KB_LAB_APT_PROXY:-}" ]; then
    # An explicit proxy for the mirror wins over the image's auto-detection.
    docker exec "$name" sh -c "echo 'Acquire::http::Proxy::deb.debian.org \"$KB_LAB_APT_PROXY\";' >/etc/apt/apt.conf.d/00kb-lab-proxy"
  fi
}

wait_systemd() {
  local name=$1 state
  for _ in $(seq 1 60); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running | degraded) return 0 ;; esac
    sleep 0.5
  done
  die "systemd in $name did not come up (state: ${state:-unknown}); see 'docker logs $name'"
}

# --- TSIG key ----------------------------------------------------------------
ensure_tsig() {
  mkdir -p "$LAB_DIR"
  chmod 0700 "$LAB_DIR"
  if [ ! -s "$TSIG_FILE" ]; then
    say "generating TSIG key $TSIG_NAME ($TSIG_ALGORITHM) in $TSIG_FILE"
    (umask 077 && tsig-keygen -a "$TSIG_ALGORITHM" "$TSIG_NAME" >"$TSIG_FILE")
  fi
  # The bare secret, for inventories/lab (dns_tsig_key_secret).
  (umask 077 && sed -n 's/.*secret "\([^"]*\)".*/\1/p' "$TSIG_FILE" >"$LAB_DIR/tsig.secret")
}

# The value of an expression over inventories/lab (vault included).
lab_var() {
  local out
  out=$(ANSIBLE_DEPRECATION_WARNINGS=false ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 \
    ansible kb-ns -i "$root/inventories/lab" -m ansible.builtin.debug \
    -a "msg=KB-LAB-VALUE<{{ $1 }}>KB-LAB-VALUE" -o 2>/dev/null) || die "cannot read $1 from inventories/lab"
  [[ $out == *"KB-LAB-VALUE<"*">KB-LAB-VALUE"* ]] || die "cannot read $1 from inventories/lab: $out"
  out=${out#*KB-LAB-VALUE<}
  out=${out%%>KB-LAB-VALUE*}
  printf '%s' "$out"
}

# --- stand-ins -----------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_standin() {
  local name=$1 port=$2 script=$3
  shift 3
  local pidf="$LAB_DIR/$name.pid" log="$LAB_DIR/$name.log"
  [ -f "$script" ] || die "stand-in $script is missing (not merged yet?): the lab needs it"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    return
  fi
  port_open "$port" && die "port 127.0.0.1:$port is taken by another process: stop it or run 'scripts/lab.sh down'"
  say "starting stand-in $name on 127.0.0.1:$port"
  # A session of its own: the stand-in outlives the caller (molecule runs
  # this script from an Ansible task, whose process group is cleaned up).
  # Without the caller's descriptors: a `flock` lock on the lab must end with the caller.
  (without_inherited_fds setsid nohup python "$script" "$@" >"$log" 2>&1 </dev/null) &
  echo $! >"$pidf"
  for _ in $(seq 1 40); do
    port_open "$port" && return
    kill -0 "$(cat "$pidf")" 2>/dev/null || break
    sleep 0.25
  done
  tail -n 20 "$log" >&2 || true
  die "stand-in $name did not start listening on port $port (log: $log)"
}

stop_standin() {
  local name=$1 pidf="$LAB_DIR/$1.pid"
  [ -f "$pidf" ] || return 0
  local pid
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping stand-in $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidf"
}

start_standins() {
  local robot_user robot_password hcloud_token
  robot_user=$(lab_var robot_user)
  robot_password=$(lab_var robot_password)
  hcloud_token=$(lab_var hcloud_token)
  # Robot: the lab's servers and the two pool subnets; every rDNS write
  # becomes a real PTR in the lab DNS (TSIG-signed update).
  start_standin robot_api "$ROBOT_PORT" tests/standins/robot_api.py \
    --listen "127.0.0.1:$ROBOT_PORT" --state "$LAB_DIR/robot_state.json" \
    --seed-json "$root/scripts/lab/robot_seed.json" \
    --user "$robot_user" --password "$robot_password" \
    --dns-update "$DNS_IP:53" --tsig-key-file "$TSIG_FILE"
  start_standin cloud_dns_api "$CLOUD_DNS_PORT" tests/standins/cloud_dns_api.py \
    --listen "127.0.0.1:$CLOUD_DNS_PORT" --token "$hcloud_token" \
    --zone kbmta.net --zone kibamail.com
  # pebble: its DNS-01 checks ask the lab's authoritative server, where
  # playbooks/tls.yml publishes the challenges; root.pem is what clients trust.
  [ -x /usr/bin/pebble ] || die "/usr/bin/pebble is missing: run 'make setup' (scripts/setup-host.sh installs pebble)"
  start_standin pebble "$PEBBLE_PORT" tests/standins/pebble_ca.py \
    --dir "$LAB_DIR/pebble" --listen "127.0.0.1:$PEBBLE_PORT" \
    --management "127.0.0.1:$PEBBLE_MANAGEMENT_PORT" --dns "$DNS_IP:53"
  for _ in $(seq 1 40); do [ -s "$LAB_DIR/pebble/root.pem" ] && return; sleep 0.25; done
  die "pebble did not hand out its root (log: $LAB_DIR/pebble.log)"
}

# --- playbooks -----------------------------------------------------------------
write_lab_json() {
  local args=()
  for h in "${HOSTS[@]}"; do
    # shellcheck disable=SC2086
    set -- $h
    args+=(--host "$1=$2=$3")
  done
  python "$root/scripts/lab/lab_json.py" --out "$LAB_DIR/lab.json" \
    --network "$NETWORK" --subnet "$SUBNET" --gateway "$GATEWAY" --bridge "$BRIDGE" \
    --dns "$DNS_IP:53" --resolver "$RESOLVER_IP:53" --tsig-file "$TSIG_FILE" --tsig-name "$TSIG_NAME" --tsig-algorithm "$TSIG_ALGORITHM" \
    --robot-url "http://127.0.0.1:$ROBOT_PORT" --cloud-dns-url "http://127.0.0.1:$CLOUD_DNS_PORT" \
    --acme-directory "https://127.0.0.1:$PEBBLE_PORT/dir" --acme-root "$LAB_DIR/pebble/root.pem" \
    --standin-dir "$LAB_DIR" "${args[@]}"
}

# Settings this machine forces on the lab, passed to site.yml as extra vars
# (.lab/site-extra-vars.yml; molecule/platform loads the same file). HAProxy
# needs about two file descriptors per connection: on a host whose open-files
# limit is below what haproxy_maxconn needs, its reload fails.
write_site_extra_vars() {
  local limit maxconn=20000
  limit=$(docker exec lb-transactional sh -c 'ulimit -Hn')
  if [ "$limit" != unlimited ] && [ "$limit" -lt $((2 * maxconn + 200)) ]; then
    maxconn=$(((limit - 200) / 2))
    say "open-files limit here is $limit: haproxy_maxconn $maxconn for the lab"
    printf -- '---\n# Written by scripts/lab.sh for this machine (open files %s).\nhaproxy_maxconn: %s\n' \
      "$limit" "$maxconn" >"$LAB_DIR/site-extra-vars.yml"
  else
    printf -- '---\n{}\n' >"$LAB_DIR/site-extra-vars.yml"
  fi
}

run_infra_playbook() {
  say "configuring the lab DNS (kb-ns), its resolver (kb-resolver) and the receiving server (kb-mx)"
  export_lab_env
  ansible-playbook -i "$root/inventories/lab" "$root/playbooks/lab_infra.yml" >"$LAB_DIR/lab_infra.log" 2>&1 \
    || { tail -n 40 "$LAB_DIR/lab_infra.log" >&2; die "playbooks/lab_infra.yml failed (log: $LAB_DIR/lab_infra.log)"; }
}

# Parse the PLAY RECAP of a log: print "host changed" lines.
recap_changes() {
  sed -n '/^PLAY RECAP/,$p' "$1" | awk '/ok=/{h=$1; for(i=1;i<=NF;i++) if ($i ~ /^changed=/) {split($i,a,"="); print h, a[2]}}'
}

run_site() {
  [ -f "$root/site.yml" ] || die "site.yml is missing (not merged yet?): the lab converges the platform with it"
  [ -d "$root/inventories/lab" ] || die "inventories/lab is missing"
  export_lab_env
  local run log
  for run in 1 2; do
    log="$LAB_DIR/site-run$run.log"
    say "ansible-playbook site.yml -i inventories/lab (run $run, log $log)"
    if ! ansible-playbook "$root/site.yml" -i "$root/inventories/lab" -e "@$LAB_DIR/site-extra-vars.yml" >"$log" 2>&1; then
      tail -n 60 "$log" >&2
      die "site.yml run $run failed (log: $log)"
    fi
    sed -n '/^PLAY RECAP/,$p' "$log"
  done
  local bad
  bad=$(recap_changes "$LAB_DIR/site-run2.log" | awk '$2 != 0')
  [ -n "$(recap_changes "$LAB_DIR/site-run2.log")" ] || die "no PLAY RECAP in $LAB_DIR/site-run2.log"
  if [ -n "$bad" ]; then
    grep -E '^(changed|TASK)' "$LAB_DIR/site-run2.log" | grep -B1 '^changed' >&2 || true
    die "the second run of site.yml changed something (not idempotent): $bad"
  fi
  say "second run of site.yml: changed=0 on every host"
}

# --- subcommands -----------------------------------------------------------------
cmd_infra() {
  preflight
  ensure_guard
  ensure_tsig
  ensure_network
  for h in "${HOSTS[@]}"; do
    # shellcheck disable=SC2086
    ensure_container $h
  done
  for h in "${HOSTS[@]}"; do wait_systemd "${h%% *}"; done
  run_infra_playbook
  write_site_extra_vars
  write_lab_json
  start_standins
  say "infrastructure up; description in $LAB_DIR/lab.json"
}

cmd_verify() {
  [ -f "$LAB_DIR/lab.json" ] || die "the lab is not up ($LAB_DIR/lab.json missing): run 'scripts/lab.sh up'"
  export_lab_env
  write_lab_json
  local rc=0
  say "containment: no outside names, no SMTP leaving the lab"
  python -m pytest -q -p no:cacheprovider "$root/tests/integration/lab" || rc=1
  if [ -f "$root/playbooks/verify.yml" ]; then
    say "ansible-playbook playbooks/verify.yml -i inventories/lab (report in $LAB_DIR/verify-report)"
    # The MTAs' certificates come from the lab's pebble: the checks trust
    # its root only (verify_tls_ca_path in inventories/lab), as a customer's
    # client trusts its CA store.
    ansible-playbook "$root/playbooks/verify.yml" -i "$root/inventories/lab" \
      -e "verify_report_dir=$LAB_DIR/verify-report" || rc=1
  fi
  say "demo: a message through smtp.kbmta.net, as the receiver sees it"
  KB_LAB_SUPPORT_PASSWORD=$(lab_var "vault_sasl_passwords['support@kibamail.com']")
  KB_LAB_SUPPORT_PASSWORD="$KB_LAB_SUPPORT_PASSWORD" python "$root/scripts/lab/demo.py" --lab "$LAB_DIR/lab.json" || rc=1
  [ "$rc" -eq 0 ] || die "verification failed (see above)"
  say "verification passed"
}

cmd_up() {
  local start
  start=$(date +%s)
  cmd_infra
  run_site
  write_lab_json
  cmd_verify
  say "lab up and verified in $(($(date +%s) - start)) s"
}

cmd_status() {
  if docker network inspect "$NETWORK" >/dev/null 2>&1; then echo "network $NETWORK: $SUBNET"; else echo "network $NETWORK: absent"; fi
  docker ps -a --filter "label=$LABEL" --format '{{ .Names }}\t{{ .Status }}' | sort
  local name pidf
  for name in robot_api cloud_dns_api pebble; do
    pidf="$LAB_DIR/$name.pid"
    if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
      echo "stand-in $name: running (pid $(cat "$pidf"))"
    else
      echo "stand-in $name: stopped"
    fi
  done
  if [ -f "$LAB_DIR/lab.json" ]; then echo "description: $LAB_DIR/lab.json"; fi
  if docker container inspect kb-mon >/dev/null 2>&1; then
    echo "monitoring: Prometheus $MONITORING_URL, Alertmanager $ALERTMANAGER_URL"
  fi
}

cmd_down() {
  stop_standin robot_api
  stop_standin cloud_dns_api
  stop_standin pebble
  local ids
  ids=$(docker ps -aq --filter "label=$LABEL")
  if [ -n "$ids" ]; then
    say "removing containers: $(docker ps -a --filter "label=$LABEL" --format '{{ .Names }}' | sort | tr '\n' ' ')"
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null
  fi
  if docker network inspect "$NETWORK" >/dev/null 2>&1; then
    say "removing network $NETWORK"
    docker network rm "$NETWORK" >/dev/null
  fi
  rm -rf "$LAB_DIR"
  say "down: nothing of the lab is left"
}

case "${1:-}" in
  up) cmd_up ;;
  infra) cmd_infra ;;
  site) cmd_infra && run_site ;;
  verify) cmd_verify ;;
  status) cmd_status ;;
  down) cmd_down ;;
  *) echo "usage: $0 up|infra|site|verify|status|down" >&2; exit 2 ;;
esac
