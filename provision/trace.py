"""An APDU trace for support: the exchange with each card as the tool sent and received it.

:class:`ApduTrace` wraps readers and transports and writes one line per command and per
response, in hex, with the time and the reader, above the T=0 layer. It records only what the
secure channel put on the link: challenges, cryptograms and MACs (they are not keys) and the
cipher text of encrypted commands: never a key, and never the plain text of an encrypted
command, which exists only inside the secure channel code and never reaches a transport.

A trace file is appended to, like the report; each run starts with a header line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self, TextIO

from . import __version__
from .errors import ConfigError
from .transport import Reader, Transport

FORMAT = "provision APDU trace 1"


class ApduTrace:
    """One trace file, shared by the transports of a run (one thread per reader)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file: TextIO = path.open("a", encoding="ascii")
        except OSError as exc:
            raise ConfigError(f"cannot write the trace file {path}: {exc.strerror}") from None
        self._lock = threading.Lock()
        self._write(f"# {FORMAT}, provision {__version__}")

    def transport(self, transport: Transport) -> Transport:
        """``transport`` with its exchange recorded."""
        return _TracedTransport(transport, self)

    def readers(self, readers: Sequence[Reader]) -> list[Reader]:
        """``readers`` whose cards' exchanges are recorded."""
        return [_TracedReader(reader, self) for reader in readers]

    def record(self, reader: str, direction: str, data: bytes) -> None:
        self._write(f"{reader} {direction} {data.hex().upper()}")

    def note(self, reader: str, text: str) -> None:
        self._write(f"{reader} # {text}")

    def _write(self, text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._lock:
            self._file.write(f"{stamp} {text}\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def open_trace(path: Path | None) -> Iterator[ApduTrace | None]:
    """The trace for ``--trace FILE``, closed at the end of the run; None without one."""
    if path is None:
        yield None
        return
    trace = ApduTrace(path)
    try:
        yield trace
    finally:
        trace.close()


class _TracedTransport:
    def __init__(self, inner: Transport, trace: ApduTrace) -> None:
        self._inner = inner
        self._trace = trace
        trace.note(inner.reader, f"card connected, ATR {inner.atr.hex().upper()}")

    @property
    def reader(self) -> str:
        return self._inner.reader

    @property
    def atr(self) -> bytes:
        return self._inner.atr

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        self._trace.record(self.reader, ">", apdu)
        data, sw = self._inner.transmit(apdu)
        self._trace.record(self.reader, "<", data + sw.to_bytes(2, "big"))
        return data, sw

    def reset(self) -> None:
        self._inner.reset()
        self._trace.note(self.reader, f"card reset, ATR {self._inner.atr.hex().upper()}")

    def close(self) -> None:
        self._trace.note(self.reader, "card released")
        self._inner.close()


class _TracedReader:
    def __init__(self, inner: Reader, trace: ApduTrace) -> None:
        self._inner = inner
        self._trace = trace
        wake = getattr(inner, "wake", None)
        if callable(wake):
            self.wake = wake  # a reader a batch can wake (PC/SC) stays one when traced

    @property
    def name(self) -> str:
        return self._inner.name

    def wait_for_card(self, timeout: float) -> Transport | None:
        transport = self._inner.wait_for_card(timeout)
        return None if transport is None else self._trace.transport(transport)

    def wait_for_removal(self, timeout: float) -> bool:
        return self._inner.wait_for_removal(timeout)

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()
