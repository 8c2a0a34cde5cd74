"""Logging vocabulary shared by the library modules.

The library only emits records; handlers and levels are the CLI's business. Raw APDUs are
logged at ``TRAFFIC``, below DEBUG, so that ``-v`` alone never shows them.
"""

from __future__ import annotations

import logging

TRAFFIC = 5
logging.addLevelName(TRAFFIC, "TRAFFIC")
