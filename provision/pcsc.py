"""Card readers through PC/SC (pcscd and pyscard): the only module that imports pyscard.

:func:`open_readers` picks readers by glob patterns on their names and gives one
:class:`PcscReader` each; a reader waits for a card, connects to it exclusively (nobody else
may talk to a token while its secure channel is open) and hands out a transport. A card that
negotiated T=0 is wrapped in :class:`~provision.t0.T0Transport`, so nothing above this layer
sees 61xx or 6Cxx. :func:`list_readers` says what every reader holds.

Every PC/SC failure becomes a :class:`~provision.errors.TransportError` that names the reader
and says what to do. A card pulled out mid-command first shows as a failed transaction and
only later, once pcscd has polled the reader, as a removed card; a failed transaction is
therefore checked against the reader's state before it is reported, so removal is always a
:class:`~provision.errors.CardRemovedError`.

pcsc-lite serialises the calls made on one context, so a blocking wait on one context would
hold up commands on it: every reader has its own context, and one thread per reader can run
its card without waiting for the others.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from functools import cache
from typing import Any

from .errors import (
    CardRemovedError,
    NoCardError,
    NoReaderError,
    PcscServiceError,
    ReaderBusyError,
    TransportError,
)
from .log import TRAFFIC
from .t0 import T0Transport
from .transport import Reader, Transport, split_response

logger = logging.getLogger(__name__)

# PC/SC return codes (PC/SC Workgroup Part 5 §5; pcsc-lite pcsclite.h), as unsigned 32 bits.
SCARD_S_SUCCESS = 0x00000000
SCARD_E_CANCELLED = 0x80100002
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_UNKNOWN_READER = 0x80100009
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_SHARING_VIOLATION = 0x8010000B
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_PROTO_MISMATCH = 0x8010000F
SCARD_F_COMM_ERROR = 0x80100013
SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_E_READER_UNAVAILABLE = 0x80100017
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_SERVICE_STOPPED = 0x8010001E
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_E_COMM_DATA_LOST = 0x8010002F
SCARD_W_UNSUPPORTED_CARD = 0x80100065
SCARD_W_UNRESPONSIVE_CARD = 0x80100066
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_W_RESET_CARD = 0x80100068
SCARD_W_REMOVED_CARD = 0x80100069

SCARD_SCOPE_USER = 0
SCARD_SHARE_EXCLUSIVE = 1
SCARD_PROTOCOL_T0 = 0x0001
SCARD_PROTOCOL_T1 = 0x0002
SCARD_PROTOCOL_ANY = SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1
SCARD_RESET_CARD = 1

# Reader states (Part 5 §3.1.3, SCARD_READERSTATE.dwEventState); pcsc-lite keeps an event
# counter in the upper 16 bits, which is handed back unchanged.
SCARD_STATE_UNAWARE = 0x0000
SCARD_STATE_CHANGED = 0x0002
SCARD_STATE_UNKNOWN = 0x0004
SCARD_STATE_UNAVAILABLE = 0x0008
SCARD_STATE_EMPTY = 0x0010
SCARD_STATE_PRESENT = 0x0020
SCARD_STATE_EXCLUSIVE = 0x0080
SCARD_STATE_INUSE = 0x0100
SCARD_STATE_MUTE = 0x0200

# Failures that may mean the card has just left; pcscd polls readers a few times a second,
# so a removal shows within this many seconds.
_MAYBE_REMOVED = frozenset(
    {SCARD_E_NOT_TRANSACTED, SCARD_F_COMM_ERROR, SCARD_E_COMM_DATA_LOST, SCARD_W_UNPOWERED_CARD}
)
REMOVAL_SETTLE = 1.5
MAX_WAIT_MS = 0x7FFFFFFE

PROTOCOL_NAMES = {SCARD_PROTOCOL_T0: "T=0", SCARD_PROTOCOL_T1: "T=1"}


@cache
def _scard() -> Any:
    """pyscard's PC/SC module, imported on first use so the tool runs without it."""
    try:
        from smartcard import scard
    except ImportError:
        raise PcscServiceError(
            "PC/SC readers need pyscard, which is not installed: pip install "
            "'phonehome-provision[pcsc]' (it builds with gcc, swig and libpcsclite-dev)"
        ) from None
    return scard


def _code(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


def _message(hresult: int) -> str:
    try:
        return str(_scard().SCardGetErrorMessage(hresult)).rstrip(".")
    except Exception:
        return "PC/SC error"


def pcsc_error(hresult: int, reader: str | None, doing: str) -> TransportError:
    """The project's error for a PC/SC return code, with a message that says what to do."""
    code = _code(hresult)
    where = f"reader {reader!r}" if reader else "PC/SC"
    if code in (SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED):
        return PcscServiceError(
            "the PC/SC service (pcscd) is not running: start it (systemctl start pcscd, or "
            "pcscd -f as root) and try again"
        )
    if code == SCARD_E_NO_READERS_AVAILABLE:
        return NoReaderError("pcscd sees no card reader: connect one and try again")
    if code in (SCARD_E_UNKNOWN_READER, SCARD_E_READER_UNAVAILABLE):
        return NoReaderError(f"{where} is gone or unavailable: reconnect it and try again")
    if code == SCARD_E_SHARING_VIOLATION:
        return ReaderBusyError(
            f"the card in {where} is in use by another program (ESC, a browser, another "
            "PC/SC client): close that program and try again"
        )
    if code == SCARD_E_NO_SMARTCARD:
        return NoCardError(f"no card in {where}: insert a token")
    if code == SCARD_W_REMOVED_CARD:
        return CardRemovedError(f"the card was removed from {where}")
    if code in (SCARD_W_UNRESPONSIVE_CARD, SCARD_W_UNSUPPORTED_CARD, SCARD_E_PROTO_MISMATCH):
        return TransportError(
            f"the card in {where} does not answer as a smart card should ({_message(code)}): "
            "take it out, check it, and insert it again"
        )
    if code == SCARD_W_RESET_CARD:
        return TransportError(f"the card in {where} was reset by another program")
    return TransportError(f"{doing} {where} failed: {_message(code)} ({code:08X})")


def _check(hresult: int, reader: str | None, doing: str) -> None:
    if _code(hresult) != SCARD_S_SUCCESS:
        raise pcsc_error(hresult, reader, doing)


def _wait_ms(timeout: float) -> int:
    if math.isinf(timeout):
        return MAX_WAIT_MS
    return max(0, min(int(timeout * 1000), MAX_WAIT_MS))


class CardState(StrEnum):
    """What a reader holds, as ``provision readers`` reports it."""

    EMPTY = "empty"
    PRESENT = "card present"
    IN_USE = "card in use by another program"
    MUTE = "card not answering"
    UNAVAILABLE = "reader unavailable"


@dataclass(frozen=True, slots=True)
class ReaderInfo:
    name: str
    state: CardState
    atr: bytes = b""


def card_state(event: int) -> CardState:
    if event & (SCARD_STATE_UNAVAILABLE | SCARD_STATE_UNKNOWN):
        return CardState.UNAVAILABLE
    if not event & SCARD_STATE_PRESENT:
        return CardState.EMPTY
    if event & SCARD_STATE_MUTE:
        return CardState.MUTE
    if event & (SCARD_STATE_EXCLUSIVE | SCARD_STATE_INUSE):
        return CardState.IN_USE
    return CardState.PRESENT


class _Context:
    """One PC/SC context (one connection to pcscd)."""

    def __init__(self) -> None:
        hresult, self._handle = _scard().SCardEstablishContext(SCARD_SCOPE_USER)
        _check(hresult, None, "connecting to")

    def close(self) -> None:
        if self._handle is not None:
            _scard().SCardReleaseContext(self._handle)
            self._handle = None

    def cancel(self) -> None:
        """End a wait in another thread on this context now (it returns as if timed out)."""
        handle = self._handle
        if handle is not None:
            hresult = _scard().SCardCancel(handle)
            if _code(hresult) != SCARD_S_SUCCESS:
                logger.debug("cancelling a wait failed: %s", _message(hresult))

    def reader_names(self) -> list[str]:
        hresult, names = _scard().SCardListReaders(self._handle, [])
        if _code(hresult) == SCARD_E_NO_READERS_AVAILABLE:
            return []
        _check(hresult, None, "listing the readers of")
        return sorted(str(name) for name in names)

    def states(
        self, readers: Sequence[str], known: Sequence[int], timeout: float
    ) -> list[tuple[int, bytes]] | None:
        """Each reader's (state, ATR) once one differs from ``known``; None on timeout."""
        request = list(zip(readers, known, strict=True))
        hresult, states = _scard().SCardGetStatusChange(self._handle, _wait_ms(timeout), request)
        if _code(hresult) in (SCARD_E_TIMEOUT, SCARD_E_CANCELLED):
            return None
        _check(hresult, readers[0] if len(readers) == 1 else None, "watching")
        return [(int(event) & ~SCARD_STATE_CHANGED, bytes(atr)) for _, event, atr in states]

    def wait_for(
        self, reader: str, wanted: int, timeout: float, *, wakeable: bool = False
    ) -> int | None:
        """Wait until the reader's state has one of the ``wanted`` bits; the state, or None.

        A ``wakeable`` wait also ends, with None, when :meth:`cancel` is called; any other
        wait goes on until its timeout.
        """
        deadline = time.monotonic() + timeout
        known = SCARD_STATE_UNAWARE
        while True:
            states = self.states([reader], [known], max(0.0, deadline - time.monotonic()))
            if states is None:
                if wakeable or time.monotonic() >= deadline:
                    return None
                continue  # cancelled: that was meant for the batch's waits, not this one
            known = states[0][0]
            if known & wanted:
                return known
            if time.monotonic() >= deadline:
                return None

    def connect(self, reader: str) -> PcscTransport:
        hresult, card, protocol = _scard().SCardConnect(
            self._handle, reader, SCARD_SHARE_EXCLUSIVE, SCARD_PROTOCOL_ANY
        )
        _check(hresult, reader, "connecting to the card in")
        return PcscTransport(self, reader, card, int(protocol))


class PcscTransport:
    """An exclusive connection to the card in one reader."""

    def __init__(self, context: _Context, reader: str, card: Any, protocol: int) -> None:
        self._context = context
        self._reader = reader
        self._card = card
        self._protocol = protocol
        self._atr = self._read_atr()
        self.apdu_count = 0
        logger.debug(
            "%s: connected (%s), ATR %s", reader, self.protocol_name, self._atr.hex().upper()
        )

    @property
    def reader(self) -> str:
        return self._reader

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def protocol(self) -> int:
        return self._protocol

    @property
    def protocol_name(self) -> str:
        return PROTOCOL_NAMES.get(self._protocol, f"protocol {self._protocol}")

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        scard = _scard()
        pci = scard.SCARD_PCI_T0 if self._protocol == SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
        traffic = logger.isEnabledFor(TRAFFIC)
        if traffic:
            logger.log(TRAFFIC, "%s > %s", self._reader, apdu.hex().upper())
        hresult, response = scard.SCardTransmit(self._live_card(), pci, list(apdu))
        if _code(hresult) != SCARD_S_SUCCESS:
            raise self._failure(hresult, "sending a command to the card in")
        raw = bytes(response)
        if traffic:
            logger.log(TRAFFIC, "%s < %s", self._reader, raw.hex().upper())
        self.apdu_count += 1
        if len(raw) < 2:
            # vpcd reports a card that hung up mid-command as an empty answer, not an error.
            if self._card_left():
                raise CardRemovedError(f"the card was removed from reader {self._reader!r}")
            raise TransportError(f"the card in {self._reader!r} answered without a status word")
        return split_response(raw)

    def reset(self) -> None:
        # XXX: the T=0 layer is chosen at connect; a card that switched protocol on a warm
        # reset would keep the layer of the first one.
        hresult, protocol = _scard().SCardReconnect(
            self._live_card(), SCARD_SHARE_EXCLUSIVE, SCARD_PROTOCOL_ANY, SCARD_RESET_CARD
        )
        if _code(hresult) != SCARD_S_SUCCESS:
            raise self._failure(hresult, "resetting the card in")
        self._protocol = int(protocol)
        self._atr = self._read_atr()
        logger.debug("%s: card reset", self._reader)

    def close(self) -> None:
        """Release the card, reset: no session of ours outlives the connection."""
        if self._card is None:
            return
        card, self._card = self._card, None
        hresult = _scard().SCardDisconnect(card, SCARD_RESET_CARD)
        if _code(hresult) != SCARD_S_SUCCESS:
            logger.debug("%s: disconnect: %s", self._reader, _message(hresult))

    def _live_card(self) -> Any:
        if self._card is None:
            raise TransportError(f"the connection to the card in {self._reader!r} is closed")
        return self._card

    def _read_atr(self) -> bytes:
        hresult, _, _, _, atr = _scard().SCardStatus(self._live_card())
        if _code(hresult) != SCARD_S_SUCCESS:
            raise self._failure(hresult, "reading the ATR of the card in")
        return bytes(atr)

    def _failure(self, hresult: int, doing: str) -> TransportError:
        code = _code(hresult)
        if code in (SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD) or (
            code in _MAYBE_REMOVED and self._card_left()
        ):
            return CardRemovedError(f"the card was removed from reader {self._reader!r}")
        return pcsc_error(hresult, self._reader, doing)

    def _card_left(self) -> bool:
        try:
            state = self._context.wait_for(
                self._reader, SCARD_STATE_EMPTY | SCARD_STATE_UNAVAILABLE, REMOVAL_SETTLE
            )
        except TransportError:
            return False
        return state is not None


class PcscReader:
    """One PC/SC reader a batch can wait on (the :class:`~provision.transport.Reader` API)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._context = _Context()

    def __repr__(self) -> str:
        return f"PcscReader({self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    def connect(self) -> Transport:
        """Connect to the card in the reader now; NoCardError if there is none."""
        raw = self._context.connect(self._name)
        return T0Transport(raw) if raw.protocol == SCARD_PROTOCOL_T0 else raw

    def wait_for_card(self, timeout: float) -> Transport | None:
        state = self._context.wait_for(self._name, SCARD_STATE_PRESENT, timeout, wakeable=True)
        if state is None:
            return None
        if state & SCARD_STATE_MUTE:
            raise TransportError(
                f"the card in reader {self._name!r} does not answer (no ATR): take it out, "
                "check it, and insert it again"
            )
        return self.connect()

    def wait_for_removal(self, timeout: float) -> bool:
        wanted = SCARD_STATE_EMPTY | SCARD_STATE_UNAVAILABLE
        return self._context.wait_for(self._name, wanted, timeout, wakeable=True) is not None

    def wake(self) -> None:
        """End a wait for a card or its removal in another thread now (a batch stopping)."""
        self._context.cancel()

    def close(self) -> None:
        self._context.close()


def list_readers() -> list[ReaderInfo]:
    """Every reader pcscd knows, with what it holds; an empty list when there are none."""
    context = _Context()
    try:
        names = context.reader_names()
        if not names:
            return []
        states = context.states(names, [SCARD_STATE_UNAWARE] * len(names), 0) or []
    finally:
        context.close()
    return [
        ReaderInfo(name, card_state(event), atr)
        for name, (event, atr) in zip(names, states, strict=True)
    ]


def match_readers(names: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The names matching any of the glob ``patterns``; every pattern must match one."""
    names = list(names)
    if not patterns:
        raise NoReaderError("no reader pattern given")
    for pattern in patterns:
        if not any(fnmatchcase(name, pattern) for name in names):
            known = ", ".join(repr(name) for name in names) or "none"
            raise NoReaderError(
                f"no reader matches {pattern!r} (readers: {known}); 'provision readers' "
                "lists them, and a pattern may use * and ?"
            )
    return [name for name in names if any(fnmatchcase(name, p) for p in patterns)]


def open_readers(patterns: Sequence[str]) -> list[Reader]:
    """One reader for every reader name matching one of the glob ``patterns``."""
    # XXX: the Reader protocol has no close(): a reader's PC/SC context lives until its
    # caller calls PcscReader.close() or the process ends.
    context = _Context()
    try:
        names = context.reader_names()
    finally:
        context.close()
    if not names:
        raise NoReaderError("pcscd sees no card reader: connect one and try again")
    readers: list[Reader] = [PcscReader(name) for name in match_readers(names, patterns)]
    logger.debug("readers: %s", ", ".join(reader.name for reader in readers))
    return readers
