#!/usr/bin/env bash
# Drop SMTP (25, 465, 587) that containers try to send out of this machine.
# Usage: egress-guard.sh apply|remove|check
set -euo pipefail
action=${1:-apply}
CHAIN=DOCKER-USER
COMMENT=kibamail-lab-smtp-egress

iptables -N "$CHAIN" 2>/dev/null || true
rule() { echo -p tcp -m multiport --dports 25,465,587 ! -o "br-+" -m comment --comment "$COMMENT" -j REJECT --reject-with tcp-reset; }
case "$action" in
  apply)
    # shellcheck disable=SC2046
    iptables -C "$CHAIN" $(rule) 2>/dev/null || iptables -I "$CHAIN" 1 $(rule)
    ;;
  remove)
    # shellcheck disable=SC2046
    while iptables -C "$CHAIN" $(rule) 2>/dev/null; do iptables -D "$CHAIN" $(rule); done
    ;;
  check)
    # shellcheck disable=SC2046
    iptables -C "$CHAIN" $(rule)
    ;;
  *) echo "usage: $0 apply|remove|check" >&2; exit 2 ;;
esac
