# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print, as JSON, the messages of a Maildir whose Subject starts with a tag.

Usage: python3 maildir_report.py TAG DIRECTORY
Each entry: {"subject": ..., "received": [Received header values, top first]}.
"""
from __future__ import annotations

import email
import json
import os
import sys
from email import policy
from typing import Dict, List


def tagged(tag: str, directory: str) -> List[Dict[str, object]]:
    found: List[Dict[str, object]] = []
    if not os.path.isdir(directory):
        return found
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as handle:
            msg = email.message_from_binary_file(handle, policy=policy.default)
        subject = str(msg.get("Subject", ""))
        if subject.split(" ", maxsplit=1)[0] == tag:
            received = [" ".join(str(value).split()) for value in msg.get_all("Received", [])]
            found.append({"subject": subject, "received": received})
    return found


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: maildir_report.py TAG DIRECTORY\n")
        return 2
    print(json.dumps(tagged(argv[0], argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
