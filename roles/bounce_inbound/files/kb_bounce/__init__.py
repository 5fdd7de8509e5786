# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kb-bounce: Kibamail's bounce and complaint processor.

Postfix pipes every message for a bounce domain into ``kb-bounce ingest``;
the message is parsed into events (hard bounce, soft bounce, complaint),
stored in SQLite, and ``kb-bounce deliver`` hands them to a webhook.
"""
from __future__ import annotations

__version__ = "1.0.0"
