"""The T=0 mode of a virtual token: what a card's T=0 layer makes of the commands it gets.

Under T=0 a command travels as a TPDU whose header holds one length byte, P3, which is either
Lc or Le, never both (ISO/IEC 7816-3 §10.3.2, §12.2). So a T=0 card

- answers a command that brought data (Lc) and produced a response with ``61xx``
  (ISO/IEC 7816-3 §12.2.4), and hands the response out through GET RESPONSE
  (``00 C0 00 00 xx``, ISO/IEC 7816-4 §11.5.6), in pieces if asked for fewer bytes;
- answers a command whose Le (P3, where 00 means 256) is not the exact length of its
  response with ``6Cxx``, xx being that length (ISO/IEC 7816-3 §12.2.2), without the data;
- cannot receive Lc and Le together: an APDU that has both is no T=0 TPDU and gets ``6700``.

:class:`T0Card` wraps any card object with ``power_on()`` and ``process()`` and does exactly
that around it; the card inside never sees GET RESPONSE.
"""

from __future__ import annotations

import logging
from typing import Protocol

from provision.iso7816 import CLA_ISO, INS_GET_RESPONSE, SW, CommandApdu, split_response

from .status import status_bytes

logger = logging.getLogger(__name__)

SW1_MORE_DATA = 0x61
SW1_WRONG_LE = 0x6C

# TS 3B, T0 1A (TA1 follows, 10 historical bytes), TA1 13 (Fi 372, Di 4), historical bytes
# "CoolKeySim". With no TD1 the card offers T=0 only, and a T=0-only ATR has no TCK
# (ISO/IEC 7816-3 §8.2.5).
T0_ATR = bytes.fromhex("3B1A13") + b"CoolKeySim"


class InnerCard(Protocol):
    def power_on(self) -> bytes: ...

    def process(self, apdu: bytes) -> bytes: ...


class T0Card:
    """A card seen through a T=0 interface: ``61xx``, ``6Cxx`` and GET RESPONSE."""

    def __init__(self, card: InnerCard, atr: bytes = T0_ATR) -> None:
        self._card = card
        self._atr = atr
        self._pending = b""
        self._pending_sw: int = SW.OK

    @property
    def atr(self) -> bytes:
        return self._atr

    def power_on(self) -> bytes:
        self._card.power_on()
        self._pending = b""
        return self._atr

    def process(self, apdu: bytes) -> bytes:
        try:
            command = CommandApdu.decode(bytes(apdu))
        except ValueError:
            return self._card.process(apdu)
        if command.cla == CLA_ISO and command.ins == INS_GET_RESPONSE:
            return self._get_response(command)

        # Any other command ends what an earlier one left for GET RESPONSE.
        self._pending = b""
        if command.data and command.le is not None:
            logger.debug("T=0: an APDU with both Lc and Le is not a TPDU")
            return status_bytes(SW.WRONG_LENGTH)

        data, sw = split_response(self._card.process(apdu))
        if sw != SW.OK or not data:
            # A T=0 card sends data only after a procedure byte, never with an error.
            return status_bytes(sw)
        if command.le is None:
            return self._hold(data, sw)
        if len(data) != command.le:
            return status_bytes((SW1_WRONG_LE << 8) | (len(data) & 0xFF))
        return data + status_bytes(sw)

    def _hold(self, data: bytes, sw: int) -> bytes:
        self._pending, self._pending_sw = data, sw
        return status_bytes((SW1_MORE_DATA << 8) | (min(len(data), 256) & 0xFF))

    def _get_response(self, command: CommandApdu) -> bytes:
        if command.p1 or command.p2:
            return status_bytes(SW.INCORRECT_P1_P2)
        if command.data or not self._pending:
            self._pending = b""
            return status_bytes(SW.CONDITIONS_NOT_SATISFIED)

        # P3 = 00 asks for 256 bytes; in T=0 P3 is never "as many as there are".
        wanted = command.le or 256
        if wanted > len(self._pending):
            return status_bytes((SW1_WRONG_LE << 8) | (len(self._pending) & 0xFF))
        chunk, self._pending = self._pending[:wanted], self._pending[wanted:]
        if self._pending:
            more = (SW1_MORE_DATA << 8) | (min(len(self._pending), 256) & 0xFF)
            return chunk + status_bytes(more)
        return chunk + status_bytes(self._pending_sw)
