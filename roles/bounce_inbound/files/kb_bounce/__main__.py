# Copyright: Contributors to the kibamail.email_platform project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Allow ``python3 -m kb_bounce``."""
from __future__ import annotations

import sys

from kb_bounce.cli import main

sys.exit(main())
