"""Talking to a T=0 card: 61xx, 6Cxx and GET RESPONSE, done below everything else.

Under T=0 a command header carries one length byte, so a command with data cannot also ask
for a response (ISO/IEC 7816-3 §12.2). The rules, applied by :class:`T0Transport` to every
command so that the layers above see T=1-like answers:

- a case-4 command goes out as case 3, without Le; the card answers ``61xx`` and the data
  is fetched with GET RESPONSE, Le = xx (§12.2.5);
- ``61xx`` means xx more bytes wait: GET RESPONSE with Le = xx, the pieces joined
  (00 standing for 256, ISO/IEC 7816-4 §5.1.3);
- ``6Cxx`` means the Le was wrong: the same command again with Le = xx (§12.2.2).

Secure messaging changes two things (GPC 2.3.1 §10.2, E.4.4; Amd D §6.2.4). GET RESPONSE
carries no MAC and is never wrapped: it fetches an answer and is not a command of the
session, so it goes out plain with CLA 00. And a ``6Cxx`` answer to a wrapped command is an
error, not a cue to resend: the card has checked the C-MAC and moved its chain on, so the
same bytes again would fail, and a command re-wrapped by the host would be a new command.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from .errors import ProtocolError
from .iso7816 import (
    CLA_ISO,
    INS_GET_RESPONSE,
    MAX_SHORT_LE,
    SW1_MORE_DATA,
    SW1_WRONG_LE,
    CommandApdu,
)
from .log import TRAFFIC
from .transport import Transport

logger = logging.getLogger(__name__)

# Far more than any CoolKey or GlobalPlatform answer needs (the longest is 256 bytes); a card
# that keeps saying 61xx past this is broken, and the loop must end.
MAX_GET_RESPONSES = 64


def secure_messaging(cla: int) -> bool:
    """Whether a class byte says the command is protected (ISO/IEC 7816-4 §5.4.1).

    First interindustry classes (and the GlobalPlatform ones built on them, 80-8F) flag it
    in b4-b3; further interindustry classes (40-7F, and C0-FF in GPC 2.3.1 §11.1.4) in b6.
    """
    if cla & 0x40:
        return bool(cla & 0x20)
    return bool(cla & 0x0C)


class T0Transport:
    """A transport to a T=0 card: the 61xx / 6Cxx handling, around any transport."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner

    @property
    def reader(self) -> str:
        return self._inner.reader

    @property
    def atr(self) -> bytes:
        return self._inner.atr

    def reset(self) -> None:
        self._inner.reset()

    def close(self) -> None:
        self._inner.close()

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        try:
            command = CommandApdu.decode(apdu)
        except ValueError:
            # Not a short APDU this layer understands; the card will say what it thinks.
            return self._inner.transmit(apdu)

        if command.data and command.le is not None:
            command = replace(command, le=None)
        data, sw = self._inner.transmit(command.encode())

        if sw >> 8 == SW1_WRONG_LE:
            if secure_messaging(command.cla):
                raise ProtocolError(
                    f"the card answered {sw:04X} (wrong Le) to a secure-messaging command "
                    f"{command.cla:02X} {command.ins:02X}; it cannot be resent, as the "
                    "card's MAC chain has already moved on"
                )
            if command.data:
                raise ProtocolError(
                    f"the card answered {sw:04X} (wrong Le) to {command.cla:02X} "
                    f"{command.ins:02X}, which sends data and so has no Le under T=0"
                )
            retry = replace(command, le=sw & 0xFF or MAX_SHORT_LE)
            logger.log(TRAFFIC, "%s: T=0 resend with Le %02X", self.reader, sw & 0xFF)
            data, sw = self._inner.transmit(retry.encode())
            if sw >> 8 == SW1_WRONG_LE:
                raise ProtocolError(f"the card answered {sw:04X} again to the corrected Le")

        if sw >> 8 == SW1_MORE_DATA:
            return self._collect(data, sw)
        return data, sw

    def _collect(self, data: bytes, sw: int) -> tuple[bytes, int]:
        """GET RESPONSE until the card has handed out everything."""
        pieces = [data]
        for _ in range(MAX_GET_RESPONSES):
            # XXX: only the basic logical channel: GET RESPONSE always goes out with CLA 00.
            get = CommandApdu(CLA_ISO, INS_GET_RESPONSE, 0x00, 0x00, le=sw & 0xFF or MAX_SHORT_LE)
            data, sw = self._inner.transmit(get.encode())
            if sw >> 8 == SW1_WRONG_LE:
                # The card has fewer bytes than it announced: ask again for what it has.
                get = replace(get, le=sw & 0xFF or MAX_SHORT_LE)
                data, sw = self._inner.transmit(get.encode())
            pieces.append(data)
            if sw >> 8 != SW1_MORE_DATA:
                return b"".join(pieces), sw
        raise ProtocolError(
            f"the card still had data after {MAX_GET_RESPONSES} GET RESPONSE commands"
        )
