"""Burn CoolKey Phone Home data onto smart-card tokens and verify it as ESC would.

Layers, each importing only those above it in this list (``errors`` and ``log`` serve all):

- ``transport``, ``pcsc`` and ``t0``: command APDU bytes in, response data and status word
  out; PC/SC readers (the only module importing pyscard) and T=0's GET RESPONSE rules.
- ``iso7816`` and ``gp``: APDU encoding, status words, GlobalPlatform secure channels and
  key diversification; ``keysource``: where a card's keys come from; ``trace``.
- ``coolkey`` and ``tokeninfo``: the CoolKey applet and the card-manager commands it needs.
- ``phonehome``: the Enterprise Security Client's Phone Home flow; ``profile``: issuer
  profiles.
- ``verify``, ``burn``, ``batch``, ``report`` and ``ledger``: one token, then many, with
  their records; ``simulated``: the virtual tokens and local server of a simulated run.
- ``cli``: the only package that prints, configures logging or chooses exit codes.
"""

__version__ = "0.1.0"
