# -*- coding: utf-8 -*-
# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The old import path of the loopback BIND of the verification tests, kept for bench/verify/bench_verify.py.

Everything lives in tests/support/bind.py now; new code imports it from there
(``from bind import LoopbackBind``). ``LoopbackBind(records, zones)`` here is
``bind.LoopbackBind.for_records(records, zones)``.
"""

from __future__ import annotations

import os
import sys

_SUPPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support")
if _SUPPORT not in sys.path:
    sys.path.insert(0, _SUPPORT)

import bind  # noqa: E402
from bind import NAMED, Records, free_port, platform_records, zones_for  # noqa: E402

__all__ = ["NAMED", "LoopbackBind", "free_port", "platform_records", "zones_for"]


def LoopbackBind(records: Records, zones: list) -> bind.LoopbackBind:  # noqa: N802 - the old class name
    """An unstarted server for these records; ``with`` starts it and removes its files after."""
    return bind.LoopbackBind.for_records(records, zones)
