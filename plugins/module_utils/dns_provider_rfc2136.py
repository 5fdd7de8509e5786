# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RFC 2136 provider: read a zone by AXFR or queries, write by TSIG-signed UPDATE.

Works with any authoritative server that speaks RFC 2136 and RFC 8945 (BIND,
Knot, PowerDNS). All changes of a run go into one UPDATE message (split only if
it would not fit into one TCP message), with prerequisites that the record sets
are still as they were read, so a concurrent edit makes the update fail
instead of being overwritten.
"""

from __future__ import annotations

import binascii
import traceback
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_records import (
    Change,
    ProviderError,
    RecordSet,
    ZonePlan,
    join_txt,
    normalize_name,
    record_set,
    txt_presentation,
)

DNSPYTHON_IMPORT_ERROR: Optional[str]
try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdataclass
    import dns.rdataset
    import dns.rdatatype
    import dns.tsig
    import dns.update
    import dns.xfr
except ImportError:
    HAS_DNSPYTHON = False
    DNSPYTHON_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_DNSPYTHON = True
    DNSPYTHON_IMPORT_ERROR = None

TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5")
QUERY_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "NS", "PTR")
MAX_TCP_MESSAGE = 65535


@dataclass
class Rfc2136Settings:
    server: str
    port: int = 53
    tsig_key_name: Optional[str] = None
    tsig_key_secret: Optional[str] = None
    tsig_algorithm: str = "hmac-sha256"
    transport: str = "tcp"
    timeout: float = 10.0
    read_method: str = "axfr"

    @property
    def where(self) -> str:
        return "%s port %d" % (self.server, self.port)


class Rfc2136Provider:
    """Read and change one zone on an RFC 2136 server."""

    def __init__(self, settings: Rfc2136Settings) -> None:
        if not HAS_DNSPYTHON:
            raise ProviderError("the rfc2136 provider needs the Python package dnspython on the controller")
        self.settings = settings
        self.key = self._make_key()

    @property
    def query_types(self) -> Tuple[str, ...]:
        """Types to ask for when reading by query; empty when reading by AXFR."""
        return QUERY_TYPES if self.settings.read_method == "query" else ()

    # ------------------------------------------------------------ helpers

    def _make_key(self) -> Optional["dns.tsig.Key"]:
        settings = self.settings
        if not settings.tsig_key_name and not settings.tsig_key_secret:
            return None
        if not settings.tsig_key_name or not settings.tsig_key_secret:
            raise ProviderError("tsig_key_name and tsig_key_secret go together: give both or neither")
        if settings.tsig_algorithm not in TSIG_ALGORITHMS:
            raise ProviderError("tsig_algorithm %r is not one of %s" % (settings.tsig_algorithm, ", ".join(TSIG_ALGORITHMS)))
        try:
            return dns.tsig.Key(settings.tsig_key_name, settings.tsig_key_secret, settings.tsig_algorithm)
        except (binascii.Error, ValueError):
            raise ProviderError("tsig_key_secret is not valid base64: copy the secret from the key's "
                                "'secret' line in the server configuration")

    def _sign(self, message: "dns.message.Message") -> None:
        if self.key is not None:
            message.use_tsig(self.key)

    def _send(self, message: "dns.message.Message", transport: Optional[str] = None) -> "dns.message.Message":
        settings = self.settings
        transport = transport or settings.transport
        try:
            if transport == "udp":
                response = dns.query.udp(message, settings.server, port=settings.port, timeout=settings.timeout)
            else:
                response = dns.query.tcp(message, settings.server, port=settings.port, timeout=settings.timeout)
        except dns.exception.Timeout:
            raise ProviderError("no answer from the DNS server at %s within %gs over %s: check dns_server and "
                                "dns_port, and that the server runs and is reachable"
                                % (settings.where, settings.timeout, transport))
        except dns.tsig.PeerError as error:
            raise self._tsig_error(error)
        except dns.tsig.BadSignature as error:
            raise self._tsig_error(error)
        except (ConnectionError, OSError) as error:
            raise ProviderError("cannot talk to the DNS server at %s over %s: %s; check dns_server and dns_port"
                                % (settings.where, transport, error))
        except EOFError:
            raise ProviderError("the DNS server at %s closed the connection without answering; it may refuse "
                                "this client or the key (send over udp to see the server's answer)" % settings.where)
        return response

    def _tsig_error(self, error: Exception) -> ProviderError:
        return ProviderError(
            "the DNS server at %s rejected the TSIG signature (%s: %s): make dns_tsig_key_name, "
            "dns_tsig_key_secret and dns_tsig_algorithm match the key in the server's configuration"
            % (self.settings.where, type(error).__name__, error or "bad key"))

    def _check_rcode(self, response: "dns.message.Message", doing: str, zone: str) -> None:
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        hints = {
            "NOTAUTH": "the server is not authoritative for %s or did not accept the TSIG key; check the key "
                       "and that the server is a primary for the zone" % zone,
            "REFUSED": "the server refused; allow this key to update %s (allow-update or update-policy in BIND); "
                       "BIND also refuses an update that leaves an NS, MX or SRV target inside the zone "
                       "without an A or AAAA record, so publish (or keep) those addresses too" % zone,
            "NOTZONE": "a name is outside zone %s" % zone,
            "NXRRSET": "a record set changed on the server since it was read; run again",
            "YXRRSET": "a record set appeared on the server since it was read; run again",
            "SERVFAIL": "the server failed; look at its log (BIND 9.18.28 and later refuse a record set of more "
                        "than max-records-per-type records, 100 by default)",
        }
        raise ProviderError("%s at %s failed with %s: %s" % (doing, self.settings.where, text,
                                                             hints.get(text, "see the server's log")))

    # ------------------------------------------------------------ read

    def read(self, zone: str, keys: Iterable[Tuple[str, str]] = ()) -> List[RecordSet]:
        """Every record set of the zone (AXFR) or those of ``keys`` (queries)."""
        zone = normalize_name(zone)
        if self.settings.read_method == "query":
            return self._read_by_query(zone, keys)
        return self._read_by_axfr(zone)

    def _read_by_axfr(self, zone: str) -> List[RecordSet]:
        settings = self.settings
        try:
            rrsets: List[RecordSet] = []
            for message in dns.query.xfr(settings.server, zone + ".", port=settings.port, keyring=self.key,
                                         lifetime=settings.timeout, relativize=False):
                self._check_rcode(message, "zone transfer of %s" % zone, zone)
                for rrset in message.answer:
                    rrsets.append(_to_record_set(rrset.name, rrset))
        except dns.xfr.TransferError as error:
            raise ProviderError("zone transfer of %s from %s was refused (%s): check that the server is a primary "
                                "for %s, allow transfers with this key (allow-transfer in BIND) or set read_method=query"
                                % (zone, settings.where, dns.rcode.to_text(error.rcode), zone))
        except dns.exception.Timeout:
            raise ProviderError("no answer from the DNS server at %s within %gs: check dns_server and dns_port, "
                                "and that the server runs and is reachable" % (settings.where, settings.timeout))
        except dns.tsig.PeerError as error:
            raise self._tsig_error(error)
        except dns.tsig.BadSignature as error:
            raise self._tsig_error(error)
        except (ConnectionError, OSError) as error:
            raise ProviderError("cannot talk to the DNS server at %s over tcp: %s; check dns_server and dns_port"
                                % (settings.where, error))
        except EOFError:
            raise ProviderError("the DNS server at %s closed the connection during the zone transfer of %s; "
                                "it may refuse the key or transfers" % (settings.where, zone))
        return _merge(rrsets)

    def _read_by_query(self, zone: str, keys: Iterable[Tuple[str, str]]) -> List[RecordSet]:
        soa = self._query(zone, "SOA")
        self._check_rcode(soa, "SOA query for %s" % zone, zone)
        if not soa.flags & dns.flags.AA or not soa.answer:
            raise ProviderError("the DNS server at %s is not authoritative for %s: point dns_server at the "
                                "zone's primary" % (self.settings.where, zone))
        rrsets: List[RecordSet] = []
        for name, rtype in sorted(set(keys)):
            response = self._query(name, rtype)
            if response.rcode() == dns.rcode.NXDOMAIN:
                continue
            self._check_rcode(response, "query for %s %s" % (name, rtype), zone)
            for answer in response.answer:
                if answer.name == dns.name.from_text(name) and dns.rdatatype.to_text(answer.rdtype) == rtype:
                    rrsets.append(_to_record_set(answer.name, answer))
        return _merge(rrsets)

    def _query(self, name: str, rtype: str) -> "dns.message.Message":
        query = dns.message.make_query(name + ".", rtype)
        query.flags &= ~dns.flags.RD
        self._sign(query)
        return self._send(query)

    # ------------------------------------------------------------ write

    def apply(self, plan: ZonePlan) -> int:
        """Send the plan's changes; returns the number of UPDATE messages sent."""
        if not plan.changes:
            return 0
        batches = self._batches(plan.zone, plan.changes)
        for batch in batches:
            response = self._send(batch)
            self._check_rcode(response, "update of zone %s" % plan.zone, plan.zone)
        return len(batches)

    def _batches(self, zone: str, changes: Sequence[Change]) -> List["dns.update.UpdateMessage"]:
        message = self._update_message(zone, changes)
        if len(changes) == 1 or _fits(message):
            return [message]
        middle = len(changes) // 2
        return self._batches(zone, changes[:middle]) + self._batches(zone, changes[middle:])

    def _update_message(self, zone: str, changes: Sequence[Change]) -> "dns.update.UpdateMessage":
        update = dns.update.UpdateMessage(zone + ".")
        for change in changes:
            name = dns.name.from_text(change.key[0] + ".")
            rtype = change.key[1]
            if change.action == "create":
                update.absent(name, rtype)
            else:
                update.present(name, rtype)
        for change in changes:
            if change.action == "delete":
                update.delete(dns.name.from_text(change.key[0] + "."), change.key[1])
        for change in changes:
            if change.action in ("create", "update") and change.after is not None:
                update.replace(dns.name.from_text(change.key[0] + "."), _to_rdataset(change.after))
        self._sign(update)
        return update


def _fits(message: "dns.message.Message") -> bool:
    """Whether the message fits one DNS message over TCP (dnspython raises TooBig past 65,535 bytes)."""
    try:
        return len(message.to_wire()) <= MAX_TCP_MESSAGE
    except dns.exception.TooBig:
        return False


def _to_rdataset(rrset: RecordSet) -> "dns.rdataset.Rdataset":
    texts = [txt_presentation(value) if rrset.type == "TXT" else value for value in rrset.values]
    return dns.rdataset.from_text_list(dns.rdataclass.IN, rrset.type, rrset.ttl, texts)


def _to_record_set(name: "dns.name.Name", rdataset: "dns.rdataset.Rdataset") -> RecordSet:
    rtype = dns.rdatatype.to_text(rdataset.rdtype)
    if rtype == "TXT":
        values = [join_txt(rdata.strings) for rdata in rdataset]
    else:
        values = [rdata.to_text(origin=None, relativize=False) for rdata in rdataset]
    return record_set(name.to_text(), rtype, rdataset.ttl, values)


def _merge(rrsets: Iterable[RecordSet]) -> List[RecordSet]:
    """Join record sets of the same name and type (AXFR repeats SOA at the end)."""
    merged = {}
    for rrset in rrsets:
        if rrset.key in merged:
            old = merged[rrset.key]
            values = tuple(sorted(set(old.values) | set(rrset.values)))
            merged[rrset.key] = RecordSet(old.name, old.type, old.ttl, values)
        else:
            merged[rrset.key] = rrset
    return [merged[key] for key in sorted(merged)]
