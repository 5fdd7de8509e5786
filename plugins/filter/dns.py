# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for DNS publishing: dkim_txt and zone_file_lines (docs in dkim_txt.yml, zone_file_lines.yml)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Dict, List, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.kibamail.email_platform.plugins.module_utils.dns_records import (
    RecordError,
    record_set,
    zone_file_lines as _zone_file_lines,
)

_PEM = re.compile(r"-----BEGIN (?:RSA )?PUBLIC KEY-----(.*?)-----END (?:RSA )?PUBLIC KEY-----", re.S)


def dkim_txt(pem: Any, key_type: str = "rsa") -> str:
    """The DKIM TXT value (RFC 6376) of a PEM public key."""
    if not isinstance(pem, str) or not pem.strip():
        raise AnsibleFilterError("dkim_txt: expected the PEM text of a public key, got %r" % (pem,))
    if key_type not in ("rsa", "ed25519"):
        raise AnsibleFilterError("dkim_txt: key_type must be rsa or ed25519, not %r" % (key_type,))
    if "PRIVATE KEY" in pem:
        raise AnsibleFilterError("dkim_txt: this is a private key; give the public key (the .pub file)")
    match = _PEM.search(pem)
    if match is None:
        raise AnsibleFilterError("dkim_txt: no '-----BEGIN PUBLIC KEY-----' block found in the input")
    body = "".join(match.group(1).split())
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise AnsibleFilterError("dkim_txt: the PEM block is not valid base64")
    if not der or der[0] != 0x30:
        raise AnsibleFilterError("dkim_txt: the PEM block does not hold a DER public key")
    return "v=DKIM1; k=%s; p=%s" % (key_type, base64.b64encode(der).decode("ascii"))


def zone_file_lines(records: Any, ttl: int = 3600) -> List[str]:
    """Zone-file lines for record sets shaped like the plan's ``zones`` entries."""
    if not isinstance(records, Sequence) or isinstance(records, (str, bytes)):
        raise AnsibleFilterError("zone_file_lines: expected a list of record sets, got %r" % (type(records).__name__,))
    rrsets = []
    for index, item in enumerate(records):
        if not isinstance(item, dict) or not {"name", "type", "values"} <= set(item):
            raise AnsibleFilterError("zone_file_lines: item %d needs name, type and values" % index)
        values = item["values"]
        if isinstance(values, str):
            values = [values]
        try:
            rrsets.append(record_set(item["name"], item["type"], item.get("ttl") or ttl, [str(v) for v in values]))
        except RecordError as error:
            raise AnsibleFilterError("zone_file_lines: item %d: %s" % (index, error))
    return _zone_file_lines(rrsets)


class FilterModule:
    """DNS filters of kibamail.email_platform."""

    def filters(self) -> Dict[str, Any]:
        return {"dkim_txt": dkim_txt, "zone_file_lines": zone_file_lines}
