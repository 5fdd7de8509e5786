# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""file_entries: one managed_files entry per item of a list (docs in file_entries.yml)."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible.errors import AnsibleFilterError


def file_entries(items: List[Dict[str, Any]], dest: str, content: str, strip: bool = True,
                 **attributes: Any) -> List[Dict[str, Any]]:
    """Entries for kibamail.email_platform.managed_files: dest from a format string, content from a key."""
    entries = []
    for item in items:
        try:
            path = dest.format(**item)
            text = item[content]
        except (KeyError, IndexError, AttributeError, TypeError) as exc:
            keys = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise AnsibleFilterError("file_entries: every item needs the keys named in dest (%s) and content (%s): "
                                     "%s is missing one (%s)" % (dest, content, keys, exc)) from None
        entries.append(dict(attributes, dest=path, content=str(text).strip() + "\n" if strip else str(text)))
    return entries


class FilterModule:
    """kibamail.email_platform filters that build managed_files entries."""

    def filters(self) -> Dict[str, Any]:
        return {"file_entries": file_entries}
