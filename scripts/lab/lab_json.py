# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write .lab/lab.json, the machine-readable description of the running lab.

Each host's addresses are read from the running container (eth0), so the
sending addresses the MTA role adds show up once site.yml has run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import yaml

ZONES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "playbooks", "vars", "lab_zones.yml")


def spread_domains() -> List[str]:
    with open(ZONES_FILE, encoding="utf-8") as handle:
        return list(yaml.safe_load(handle)["lab_spread_domains"])


@dataclass
class LabHost:
    name: str
    address: str
    role: str
    container: str
    addresses: List[str] = field(default_factory=list)
    running: bool = False


def container_addresses(container: str) -> Optional[List[str]]:
    """IPv4 addresses on eth0 of a running container, or None when it is not running."""
    proc = subprocess.run(
        ["docker", "exec", container, "ip", "-4", "-o", "addr", "show", "dev", "eth0"],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        return None
    found = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            found.append(parts[parts.index("inet") + 1])
    return found


def parse_host(spec: str) -> LabHost:
    name, address, role = spec.split("=", 2)
    return LabHost(name=name, address=address, role=role, container=name)


def describe(args: argparse.Namespace) -> Dict[str, object]:
    hosts = [parse_host(spec) for spec in args.host]
    for host in hosts:
        found = container_addresses(host.container)
        host.running = found is not None
        host.addresses = found or []
    dns_address, dns_port = args.dns.rsplit(":", 1)
    resolver_address, resolver_port = args.resolver.rsplit(":", 1)
    receiver = next((h for h in hosts if h.role == "receiver"), None)
    return {
        "version": 1,
        "network": {
            "name": args.network,
            "subnet": args.subnet,
            "gateway": args.gateway,
            "bridge": args.bridge,
        },
        "hosts": {h.name: asdict(h) for h in hosts},
        # The stock recursive resolver every lab host (and every check of what a
        # receiver sees) resolves through.
        "resolver": {
            "host": "kb-resolver",
            "address": resolver_address,
            "port": int(resolver_port),
        },
        "dns": {
            "host": "kb-ns",
            "address": dns_address,
            "port": int(dns_port),
            "zones": [
                "kbmta.net", "kibamail.com", "shop.example", "recipient.example",
                "100.51.198.in-addr.arpa", "2.0.192.in-addr.arpa", "113.0.203.in-addr.arpa",
                # DNS blocklists (an IP list and a domain list) holding their RFC 5782 test entries.
                "bl.example", "dbl.example",
            ],
            "tsig": {
                "name": args.tsig_name,
                "algorithm": args.tsig_algorithm,
                "key_file": os.path.abspath(args.tsig_file),
            },
        },
        "receiver": {
            "host": receiver.name if receiver else None,
            "address": receiver.address if receiver else None,
            "domain": "recipient.example",
            "mx": "mx.recipient.example",
            # More domains the receiver accepts, all with it as MX (playbooks/vars/lab_zones.yml):
            # Postfix paces each destination domain on its own.
            "spread_domains": spread_domains(),
            "store_dir": args.receiver_dir,
            "stored_as": "<id>.eml (the message as received) and <id>.json (envelope, peer, HELO)",
            # playbooks/lab_infra.yml: recipients with this local-part prefix get their 250
            # slow_seconds after the message is stored (deliveries in flight for tests)
            "slow_prefix": "slow-",
            "slow_seconds": 4,
        },
        "webhook": {
            "host": receiver.name if receiver else None,
            "url": "http://%s:8025/bounces" % (receiver.address if receiver else "127.0.0.1"),
            "store": "/var/lib/lab-webhook/bounces.jsonl",
            "get": "GET on the URL returns every recorded delivery as a JSON list",
        },
        "submission": {
            "transactional": {"host": "smtp.kbmta.net", "address": "198.51.100.10", "ports": [25, 465, 587]},
            "marketing": {"host": "smtp-mkg.kbmta.net", "address": "198.51.100.11", "ports": [25, 465, 587]},
        },
        "standins": {
            "robot": {
                "url": args.robot_url,
                "log": os.path.join(args.standin_dir, "robot_api.log"),
                "dns_update": args.dns,
            },
            "cloud_dns": {
                "url": args.cloud_dns_url,
                "log": os.path.join(args.standin_dir, "cloud_dns_api.log"),
            },
        },
        # Debian's pebble: the MTAs' certificates come from it (DNS-01 through the lab DNS);
        # a client that verifies trusts root_pem only.
        "acme": {
            "directory": args.acme_directory,
            "root_pem": os.path.abspath(args.acme_root),
            "log": os.path.join(args.standin_dir, "pebble.log"),
            "cert_dir": os.path.join(args.standin_dir, "acme"),
        },
        "inventory": "inventories/lab",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--network", required=True)
    parser.add_argument("--subnet", required=True)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--bridge", required=True)
    parser.add_argument("--dns", required=True, help="ADDRESS:PORT of the lab DNS server")
    parser.add_argument("--resolver", required=True, help="ADDRESS:PORT of the lab's recursive resolver")
    parser.add_argument("--tsig-file", required=True)
    parser.add_argument("--tsig-name", required=True)
    parser.add_argument("--tsig-algorithm", required=True)
    parser.add_argument("--robot-url", required=True)
    parser.add_argument("--cloud-dns-url", required=True)
    parser.add_argument("--standin-dir", required=True)
    parser.add_argument("--acme-directory", required=True, help="directory URL of the lab's ACME CA (pebble)")
    parser.add_argument("--acme-root", required=True, help="PEM of the root the ACME CA issues from")
    parser.add_argument("--receiver-dir", default="/var/lib/lab-receiver")
    parser.add_argument("--host", action="append", default=[], help="NAME=ADDRESS=ROLE")
    args = parser.parse_args()
    data = describe(args)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
