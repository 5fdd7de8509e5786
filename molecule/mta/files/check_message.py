# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a receiver would check about one stored message: the DKIM signature
(dkimpy, keys from the scenario's DNS server), the PTR of the connecting IP
and the envelope sender. Prints one JSON object."""
from __future__ import annotations

import argparse
import email
import json
from typing import Dict

import dkim
import spf
import dns.message
import dns.query
import dns.rdatatype
import dns.resolver
import dns.reversename


def query(server: str, name: str, rdtype: str) -> list:
    request = dns.message.make_query(name, rdtype)
    response = dns.query.udp(request, server, timeout=5)
    out = []
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.from_text(rdtype):
            out.extend(rrset)
    return out


def spf_lookup(server: str, name: str, qtype: str) -> list:
    """pyspf's DNS hook: [((name, qtype), value)], CNAMEs followed."""
    asked = name
    for _hop in range(8):
        response = dns.query.udp(dns.message.make_query(name, qtype), server, timeout=5)
        wanted = [r for r in response.answer if r.rdtype == dns.rdatatype.from_text(qtype)]
        if wanted:
            return [((asked, qtype), spf_value(qtype, rdata)) for rdata in wanted[0]]
        cnames = [r for r in response.answer if r.rdtype == dns.rdatatype.CNAME]
        if not cnames:
            return []
        name = cnames[-1][0].target.to_text(True)
    return []


def spf_value(qtype: str, rdata) -> object:
    if qtype in ("A", "AAAA"):
        return rdata.address
    if qtype == "MX":
        return (rdata.preference, rdata.exchange)
    if qtype == "PTR":
        return rdata.target.to_text(True)
    return rdata.strings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eml", required=True)
    parser.add_argument("--meta", required=True)
    parser.add_argument("--dns", required=True)
    args = parser.parse_args()
    with open(args.eml, "rb") as handle:
        raw = handle.read()
    with open(args.meta, encoding="utf-8") as handle:
        meta = json.load(handle)

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        records = query(args.dns, name, "TXT")
        return b"".join(b"".join(r.strings) for r in records[:1]) if records else None

    result: Dict[str, object] = {"meta": meta}
    result["dkim_valid"] = bool(dkim.verify(raw, dnsfunc=dnsfunc))
    msg = email.message_from_bytes(raw)
    sig = msg.get("DKIM-Signature", "")
    tags = dict(part.strip().split("=", 1) for part in sig.replace("\r\n", "").replace("\n", "").split(";") if "=" in part)
    result["dkim_d"] = tags.get("d", "").strip()
    result["dkim_s"] = tags.get("s", "").strip()
    ptr = query(args.dns, dns.reversename.from_address(meta["peer_ip"]).to_text(), "PTR")
    result["ptr"] = [r.target.to_text().rstrip(".") for r in ptr]
    forward = query(args.dns, result["ptr"][0], "A") if result["ptr"] else []
    result["ptr_forward"] = [r.address for r in forward]
    result["from_header"] = msg.get("From", "")
    # SPF as the receiver evaluates it, against the scenario's DNS only.
    # The authoritative-only server does not follow a CNAME into another
    # zone (a recursive resolver would), so the lookup chases it here.
    spf.DNSLookup = lambda name, qtype, strict=True, timeout=30: spf_lookup(args.dns, name, qtype)
    result["spf"] = spf.check2(i=meta["peer_ip"], s=meta["mail_from"], h=meta["helo"])[0]
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
