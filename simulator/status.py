"""How the simulated applications refuse a command: by raising the status word."""

from __future__ import annotations

from provision.iso7816 import sw_name


class StatusError(Exception):
    """The card answers the current command with ``sw`` and no data.

    Handlers raise it; :meth:`simulator.card.VirtualToken.process` turns it into the two
    status bytes. It never leaves the simulator.
    """

    def __init__(self, sw: int, reason: str = "") -> None:
        super().__init__(f"{sw_name(sw)}: {reason}" if reason else sw_name(sw))
        self.sw = sw
        self.reason = reason


def status_bytes(sw: int) -> bytes:
    """SW1 SW2 of a response."""
    return sw.to_bytes(2, "big")
