"""Burn CoolKey Phone Home data onto smart-card tokens and verify it as ESC would.

Layers, each importing only those before it:

- ``transport``: command APDU bytes in, response data and status word out.
- ``iso7816`` and ``gp``: APDU encoding, status words, GlobalPlatform secure channels.
- ``coolkey``: the CoolKey applet and the card manager commands it relies on.
- ``phonehome``: the Enterprise Security Client's Phone Home flow.
- ``burn`` and ``batch``: one token, then many, with reports.
- ``cli``: the only module that prints, configures logging or chooses exit codes.
"""

__version__ = "0.1.0"
