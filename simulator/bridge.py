"""Serve virtual tokens to pcscd through vsmartcard's vpcd driver.

vpcd listens on one TCP port per reader slot; a card is whatever connects to that port
(globalplatform.md §3.3). Every message either way is a 2-byte big-endian length and a
payload. From vpcd, a 1-byte payload is a control code (``00`` power off, ``01`` power on,
``02`` reset, ``04`` get ATR, answered with the ATR alone) and anything longer a command
APDU, answered with one response APDU. So here

- inserting a card opens a connection to its reader's port, removing it closes it. vpcd
  notices a closed connection only when it next polls the slot, a few times a second, and a
  new connection in between would hide the removal from pcscd altogether; so removal sends
  FIN, answers nothing more, and ends once vpcd has hung up too, and a card inserted into
  the same slot waits for that. When vpcd finds the card gone in the middle of a command or
  a reset rather than in its presence poll, pcscd marks the reader empty without its poll
  thread knowing; a card connected before that thread's next poll would look to it as if it
  had never left, and would never be powered up. So a card inserted into a slot waits one
  poll period after the last one left, as a hand swapping cards would anyway;
- power off, power on and reset end the card's session (selection, secure channel), while
  its persistent state stays; GET ATR, which pcscd sends to poll for presence, changes
  nothing;
- ``TCP_QUICKACK`` is set again after every receive: without it the driver's Nagle delay
  meets this side's delayed ACK and every APDU costs about 48 ms (§4.1).

:class:`Bridge` is the Python API tests use; ``token-sim serve`` puts a control socket in
front of it. Cards can be inserted, removed and swapped while pcscd runs, and a card can be
pulled out at a chosen command (:class:`PullAt`) to try what a host does when a token
leaves mid-burn.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from provision.iso7816 import SW

from .card import VirtualToken
from .image import save
from .latency import DelayedCard, Latency
from .readerconf import ReaderConf, VirtualReader
from .status import status_bytes
from .t0 import T0Card

logger = logging.getLogger(__name__)

CTRL_POWER_OFF = 0x00
CTRL_POWER_ON = 0x01
CTRL_RESET = 0x02
CTRL_GET_ATR = 0x04
CONTROL_EVENTS = {CTRL_POWER_OFF: "power off", CTRL_POWER_ON: "power on", CTRL_RESET: "reset"}

DEFAULT_HOST = "127.0.0.1"
CONNECT_TIMEOUT = 5.0
# pcscd polls a vpcd slot every 0.4 s (pcsc-lite PCSCLITE_STATUS_POLL_RATE); past this
# timeout, a removal is forced through.
HANG_UP_TIMEOUT = 3.0
POLL_PERIOD = 0.5


class BridgeError(Exception):
    """A card cannot be inserted or removed; the message says why."""


class ServedCard(Protocol):
    def power_on(self) -> bytes: ...

    def process(self, apdu: bytes) -> bytes: ...


class When(StrEnum):
    """When a :class:`PullAt` takes the card out, relative to the command it matches."""

    BEFORE = "before"  # as the command arrives: the card never runs it
    DURING = "during"  # the card runs it, the answer is lost
    AFTER = "after"  # the answer goes out, then the card leaves


@dataclass(frozen=True, slots=True)
class PullAt:
    """Pull the card out at the ``nth`` command that ``match`` accepts."""

    match: Callable[[bytes], bool]
    when: When = When.AFTER
    nth: int = 1

    @classmethod
    def ins(cls, cla: int, ins: int, when: When = When.AFTER, nth: int = 1) -> PullAt:
        """At the ``nth`` command with this CLA and INS."""
        return cls(lambda apdu: apdu[:2] == bytes((cla, ins)), when, nth)


@dataclass(frozen=True, slots=True)
class WireRecord:
    """One exchange over a card's connection: an APDU and its answer, or a control event.

    ``response`` is None when the card left before answering. GET ATR polls are not kept.
    """

    event: str
    command: bytes = b""
    response: bytes | None = None


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How a token is served: through a T=0 interface, and how slowly."""

    t0: bool = False
    latency: Latency = field(default_factory=Latency)
    pull: PullAt | None = None


class _Connection:
    """One card in one reader slot: a socket to vpcd and the thread that answers it."""

    def __init__(
        self,
        reader: VirtualReader,
        token: VirtualToken,
        options: ServeOptions,
        on_pulled: Callable[[_Connection], None],
        *,
        quickack: bool = True,
    ) -> None:
        self.reader = reader
        self.token = token
        self.options = options
        self.wire: list[WireRecord] = []
        self.lock = threading.Lock()
        self._on_pulled = on_pulled
        self._quickack = quickack
        self._card = self._stack(token, options)
        self._atr = self._card.power_on()
        self._matches = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._leaving = False
        self._hung_up_at = 0.0

    @staticmethod
    def _stack(token: VirtualToken, options: ServeOptions) -> ServedCard:
        card: ServedCard = T0Card(token) if options.t0 else token
        if not options.latency.zero:
            card = DelayedCard(card, options.latency, lambda: token.nv_writes)
        return card

    def start(self, host: str, timeout: float) -> None:
        self._sock = _connect(host, self.reader, timeout)
        self._thread = threading.Thread(
            target=self._serve, name=f"vpcd {self.reader.name}", daemon=True
        )
        self._thread.start()

    def hang_up(self) -> None:
        """Start the removal: FIN to vpcd; nothing is answered from now on."""
        self._leaving = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)

    def wait_closed(self, timeout: float = HANG_UP_TIMEOUT) -> None:
        """Wait until vpcd has closed its end (so pcscd has seen the card go); then close."""
        thread, sock = self._thread, self._sock
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive() and sock is not None:
                logger.debug("%s: vpcd did not hang up; closing", self.reader.name)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                thread.join(timeout)
        if sock is not None:
            sock.close()

    def _serve(self) -> None:
        assert self._sock is not None
        sock = self._sock
        try:
            while (frame := _recv_frame(sock, self._quickack)) is not None:
                if not self._leaving:
                    self._handle(sock, frame)
        except OSError as e:
            logger.debug("%s: connection ended: %s", self.reader.name, e)
        self._hung_up_at = time.monotonic()
        logger.debug("%s: card out", self.reader.name)

    def settle(self) -> None:
        """Once out, wait until pcscd's poll thread has seen the slot empty (see above)."""
        delay = self._hung_up_at + POLL_PERIOD - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _handle(self, sock: socket.socket, frame: bytes) -> None:
        if len(frame) == 1:
            self._control(sock, frame[0])
            return

        pull = self._pull_for(frame)
        if pull is When.BEFORE:
            self._pull(WireRecord("apdu", frame))
            return
        with self.lock:
            response = self._process(frame)
        if pull is When.DURING:
            self._pull(WireRecord("apdu", frame))
            return
        self.wire.append(WireRecord("apdu", frame, response))
        _send_frame(sock, response)
        if pull is When.AFTER:
            self._pull(None)

    def _control(self, sock: socket.socket, code: int) -> None:
        if code == CTRL_GET_ATR:
            _send_frame(sock, self._atr)
            return
        if code in CONTROL_EVENTS:
            # Power and reset end the session; persistent state survives (§4.1).
            with self.lock:
                self._atr = self._card.power_on()
            self.wire.append(WireRecord(CONTROL_EVENTS[code]))
            return
        logger.warning("%s: unknown vpcd control code %02X", self.reader.name, code)

    def _process(self, apdu: bytes) -> bytes:
        try:
            return self._card.process(apdu)
        except Exception:
            logger.exception("%s: simulator fault", self.reader.name)
            return status_bytes(SW.NO_PRECISE_DIAGNOSIS)

    def _pull_for(self, apdu: bytes) -> When | None:
        pull = self.options.pull
        if pull is None or not pull.match(apdu):
            return None
        self._matches += 1
        return pull.when if self._matches == pull.nth else None

    def _pull(self, record: WireRecord | None) -> None:
        if record is not None:
            self.wire.append(record)
        logger.debug("%s: card pulled out", self.reader.name)
        self._on_pulled(self)
        self.hang_up()
        assert self._sock is not None
        # This thread drains the connection until vpcd hangs up; bounded, whatever happens.
        self._sock.settimeout(HANG_UP_TIMEOUT)


class Bridge:
    """Virtual tokens in vpcd reader slots; every method is safe to call from any thread."""

    def __init__(
        self,
        readers: Sequence[VirtualReader],
        *,
        host: str = DEFAULT_HOST,
        connect_timeout: float = CONNECT_TIMEOUT,
        quickack: bool = True,
    ) -> None:
        """``quickack`` False is only there to measure what TCP_QUICKACK saves."""
        self.readers = tuple(readers)
        self._quickack = quickack
        self._host = host
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._slots: dict[int, _Connection] = {}
        self._last: dict[int, _Connection] = {}

    @classmethod
    def from_conf(cls, conf: ReaderConf, **kwargs: object) -> Bridge:
        return cls(conf.readers, **kwargs)  # type: ignore[arg-type]

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reader(self, key: int | str) -> VirtualReader:
        """A reader by index (also as a string) or by its name as pcscd shows it."""
        for reader in self.readers:
            if key in (reader.index, reader.name) or key == str(reader.index):
                return reader
        raise BridgeError(f"no virtual reader {key!r} (readers 0 to {len(self.readers) - 1})")

    def insert(
        self,
        key: int | str,
        token: VirtualToken,
        options: ServeOptions | None = None,
    ) -> None:
        """Put ``token`` into a reader: connect to its vpcd port.

        If the reader's last card is still on its way out, this waits until pcscd has seen
        it go, so that the new card is a new insertion.
        """
        reader = self.reader(key)
        connection = _Connection(
            reader, token, options or ServeOptions(), self._pulled, quickack=self._quickack
        )
        with self._lock:
            if reader.index in self._slots:
                raise BridgeError(f"{reader.name} already holds a card: remove it first")
            previous = self._last.get(reader.index)
            self._slots[reader.index] = connection
            self._last[reader.index] = connection
        try:
            if previous is not None:
                previous.wait_closed()
                previous.settle()
            connection.start(self._host, self._connect_timeout)
        except BridgeError:
            with self._lock:
                self._slots.pop(reader.index, None)
            raise
        logger.info("%s: card %s in", reader.name, token.cuid.hex().upper())

    def remove(self, key: int | str, *, wait: bool = True) -> VirtualToken | None:
        """Take the card out of a reader; its token, or None if the reader was empty.

        With ``wait`` (the default) this returns once vpcd has hung up, which is when
        pcscd reports the reader empty.
        """
        reader = self.reader(key)
        with self._lock:
            connection = self._slots.pop(reader.index, None)
        if connection is None:
            return None
        connection.hang_up()
        if wait:
            connection.wait_closed()
        logger.info("%s: card %s out", reader.name, connection.token.cuid.hex().upper())
        return connection.token

    def swap(
        self, key: int | str, token: VirtualToken, options: ServeOptions | None = None
    ) -> VirtualToken | None:
        """Remove whatever card a reader holds and insert ``token``; the old token."""
        old = self.remove(key)
        self.insert(key, token, options)
        return old

    def token(self, key: int | str) -> VirtualToken | None:
        """The token in a reader now, if any."""
        with self._lock:
            connection = self._slots.get(self.reader(key).index)
        return connection.token if connection is not None else None

    def wire(self, key: int | str) -> list[WireRecord]:
        """What went over the connection of the card inserted last into a reader."""
        with self._lock:
            connection = self._last.get(self.reader(key).index)
        return list(connection.wire) if connection is not None else []

    def save(self, key: int | str, path: str | os.PathLike[str]) -> VirtualToken:
        """Write the image of the token in a reader, between two of its commands."""
        reader = self.reader(key)
        with self._lock:
            connection = self._slots.get(reader.index)
        if connection is None:
            raise BridgeError(f"{reader.name} holds no card")
        with connection.lock:
            save(connection.token, path)
        return connection.token

    def occupied(self) -> dict[int, VirtualToken]:
        with self._lock:
            return {index: c.token for index, c in self._slots.items()}

    def close(self) -> None:
        """Remove every card, all at once, and wait until they are out."""
        with self._lock:
            self._slots = {}
            connections = list(self._last.values())
        for connection in connections:
            connection.hang_up()
        for connection in connections:
            connection.wait_closed()

    def _pulled(self, connection: _Connection) -> None:
        with self._lock:
            if self._slots.get(connection.reader.index) is connection:
                del self._slots[connection.reader.index]


def _connect(host: str, reader: VirtualReader, timeout: float) -> socket.socket:
    # vpcd may still be starting: retry a refused connection until the deadline.
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((host, reader.port), timeout=timeout)
            break
        except ConnectionRefusedError:
            if time.monotonic() >= deadline:
                raise BridgeError(
                    f"nothing listens on {host}:{reader.port} for {reader.name}: is pcscd "
                    "running with this reader configuration?"
                ) from None
            time.sleep(0.05)
        except OSError as e:
            raise BridgeError(f"cannot reach vpcd for {reader.name}: {e}") from None
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_frame(sock: socket.socket, quickack: bool) -> bytes | None:
    header = _recv_exact(sock, 2, quickack)
    if header is None:
        return None
    return _recv_exact(sock, int.from_bytes(header, "big"), quickack)


def _recv_exact(sock: socket.socket, size: int, quickack: bool) -> bytes | None:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = sock.recv(size - len(buffer))
        if quickack:
            _quickack(sock)
        if not chunk:
            return None
        buffer += chunk
    return bytes(buffer)


def _quickack(sock: socket.socket) -> None:
    # Linux turns delayed ACK back on after a while, so this is set after every receive.
    with contextlib.suppress(OSError):  # the socket is closing
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(len(payload).to_bytes(2, "big") + payload)
