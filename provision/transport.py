"""The transport interface: command APDU bytes in, response data and status word out.

Everything above this module speaks to a card only through :class:`Transport`. The
in-process transport here drives any object that behaves like a card (the simulator's
virtual tokens do); the PC/SC transport lives in its own module, the only one that
imports pyscard.
"""

from __future__ import annotations

import logging
from typing import Protocol

from .errors import ProtocolError
from .log import TRAFFIC

logger = logging.getLogger(__name__)


class Card(Protocol):
    """What the in-process transport needs of a card."""

    def power_on(self) -> bytes:
        """Power the card up (or reset it) and return its ATR."""
        ...

    def process(self, apdu: bytes) -> bytes:
        """Handle one command APDU and return the response APDU (data ‖ SW1 SW2)."""
        ...


class Transport(Protocol):
    """A connection to one card in one reader."""

    @property
    def reader(self) -> str:
        """A name for the reader, for reports and messages."""
        ...

    @property
    def atr(self) -> bytes:
        """The ATR of the last power-up or reset."""
        ...

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Send one command APDU; return the response data and status word."""
        ...

    def reset(self) -> None:
        """Reset the card (warm reset): its session state and selection are lost."""
        ...

    def close(self) -> None:
        """Release the card."""
        ...


class InProcessTransport:
    """A transport to a card object living in this process."""

    def __init__(self, card: Card, reader: str = "in-process") -> None:
        self._card = card
        self._reader = reader
        self._atr = card.power_on()
        self.apdu_count = 0

    @property
    def reader(self) -> str:
        return self._reader

    @property
    def atr(self) -> bytes:
        return self._atr

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        traffic = logger.isEnabledFor(TRAFFIC)
        if traffic:
            logger.log(TRAFFIC, "%s > %s", self._reader, apdu.hex().upper())
        response = self._card.process(apdu)
        if traffic:
            logger.log(TRAFFIC, "%s < %s", self._reader, response.hex().upper())
        self.apdu_count += 1
        return split_response(response)

    def reset(self) -> None:
        logger.debug("%s: card reset", self._reader)
        self._atr = self._card.power_on()

    def close(self) -> None:
        pass


class Reader(Protocol):
    """A card reader a batch can wait on: cards come and go, one at a time."""

    @property
    def name(self) -> str: ...

    def wait_for_card(self, timeout: float) -> Transport | None:
        """Wait up to ``timeout`` seconds for a card; connect to it, or return None."""
        ...

    def wait_for_removal(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the card to leave; True once it has."""
        ...


def split_response(raw: bytes) -> tuple[bytes, int]:
    """Split a response APDU into its data and status word."""
    if len(raw) < 2:
        raise ProtocolError(f"the card answered {len(raw)} bytes, without a status word")
    return bytes(raw[:-2]), (raw[-2] << 8) | raw[-1]
