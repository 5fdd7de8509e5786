# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Provider settings shared by the DNS modules (rfc2136 and hetzner)."""

    DOCUMENTATION = r"""
options:
  provider:
    description:
      - Where the zone lives.
      - V(rfc2136) sends TSIG-signed dynamic updates (RFC 2136) to an authoritative server such as BIND, Knot or PowerDNS.
      - V(hetzner) uses the Hetzner Cloud DNS API (zones and record sets) through the C(hcloud) Python package.
    type: str
    required: true
    choices: [rfc2136, hetzner]
  server:
    description:
      - Address of the primary server for O(provider=rfc2136).
      - Required when O(provider=rfc2136).
    type: str
  port:
    description:
      - Port of the primary server for O(provider=rfc2136).
    type: int
    default: 53
  tsig_key_name:
    description:
      - Name of the TSIG key that signs updates and zone transfers (O(provider=rfc2136)).
      - Leave unset, together with O(tsig_key_secret), only for a server that accepts unsigned updates.
    type: str
  tsig_key_secret:
    description:
      - Base64 secret of the TSIG key (O(provider=rfc2136)).
    type: str
  tsig_algorithm:
    description:
      - Algorithm of the TSIG key (O(provider=rfc2136)).
    type: str
    default: hmac-sha256
    choices: [hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1, hmac-md5]
  transport:
    description:
      - How updates and queries travel (O(provider=rfc2136)). Zone transfers always use TCP.
    type: str
    default: tcp
    choices: [tcp, udp]
  read_method:
    description:
      - How the current state of the zone is read (O(provider=rfc2136)).
      - V(axfr) transfers the whole zone once (the key must be allowed to transfer it).
      - V(query) asks for each record set the module may touch; use it when transfers are not allowed.
        With V(query), O(prune=all) sees only those names.
    type: str
    default: axfr
    choices: [axfr, query]
  timeout:
    description:
      - Seconds to wait for each answer of the DNS server (O(provider=rfc2136)).
    type: float
    default: 10
  hcloud_token:
    description:
      - API token of the Hetzner Cloud project that holds the zone (O(provider=hetzner)).
      - If not set, the environment variable E(HCLOUD_TOKEN) is used.
    type: str
  hcloud_endpoint:
    description:
      - Base URL of the Hetzner Cloud API (O(provider=hetzner)).
      - If not set, the environment variable E(HCLOUD_ENDPOINT) is used, then the public endpoint.
    type: str
    default: https://api.hetzner.cloud/v1
"""
