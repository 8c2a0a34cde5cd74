"""The PC/SC layer against a scripted stand-in for pyscard: every error becomes ours.

Return codes and state bits are the PC/SC values (pcsc-lite ``pcsclite.h``), written here as
literals so that a wrong constant in ``provision/pcsc.py`` would show. Runs without pcscd;
``test_pcsc_stack.py`` does the same against the real thing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from provision import pcsc
from provision.errors import (
    CardRemovedError,
    NoCardError,
    NoReaderError,
    PcscServiceError,
    ReaderBusyError,
    TransportError,
)
from provision.t0 import T0Transport

NO_SERVICE = 0x8010001D
NO_READERS = 0x8010002E
TIMEOUT = 0x8010000A
SHARING_VIOLATION = 0x8010000B
NO_SMARTCARD = 0x8010000C
NOT_TRANSACTED = 0x80100016
REMOVED_CARD = 0x80100069
UNKNOWN_READER = 0x80100009

EMPTY, PRESENT, EXCLUSIVE, INUSE, MUTE, UNAVAILABLE = 0x10, 0x20, 0x80, 0x100, 0x200, 0x08
T0, T1 = 1, 2
ATR = bytes.fromhex("3B9A138131FE45436F6F6C4B657953696DAD")


class FakeScard:
    """Just enough of ``smartcard.scard`` for the layer, answering from a script."""

    SCARD_PCI_T0 = "pci-t0"
    SCARD_PCI_T1 = "pci-t1"

    def __init__(self, readers: list[str] | None = None) -> None:
        self.establish = 0
        self.readers = readers if readers is not None else ["Reader A 00 00", "Reader B 00 00"]
        self.states: dict[str, list[int]] = {}  # successive states a reader reports
        self.connect_result = (0, T1)
        self.transmit_results: list[tuple[int, list[int]]] = []
        self.reconnect_result = 0
        self.sent: list[tuple[str, bytes]] = []
        self.disconnected: list[int] = []
        self.released = 0

    def SCardEstablishContext(self, scope: int) -> tuple[int, Any]:
        return self.establish, "context"

    def SCardReleaseContext(self, context: Any) -> int:
        self.released += 1
        return 0

    def SCardListReaders(self, context: Any, groups: list[str]) -> tuple[int, list[str]]:
        return (NO_READERS, []) if not self.readers else (0, list(self.readers))

    def SCardGetStatusChange(
        self, context: Any, timeout: int, request: list[tuple[str, int]]
    ) -> tuple[int, list[tuple[str, int, list[int]]]]:
        answers = []
        for name, known in request:
            if name not in self.readers:
                return UNKNOWN_READER, []
            queue = self.states.get(name, [EMPTY])
            state = queue[0]
            if known and state == (known & 0xFFFF) and len(queue) == 1:
                return TIMEOUT, []
            if len(queue) > 1 and known:
                queue.pop(0)
                state = queue[0]
            answers.append((name, state | 0x2, list(ATR) if state & PRESENT else []))
        return 0, answers

    def SCardConnect(
        self, context: Any, reader: str, share: int, protocols: int
    ) -> tuple[int, Any, int]:
        assert share == 1  # SCARD_SHARE_EXCLUSIVE
        assert protocols == 3  # T=0 | T=1
        hresult, protocol = self.connect_result
        return hresult, f"card:{reader}", protocol

    def SCardStatus(self, card: Any) -> tuple[int, str, int, int, list[int]]:
        return 0, card, PRESENT, self.connect_result[1], list(ATR)

    def SCardTransmit(self, card: Any, pci: str, apdu: list[int]) -> tuple[int, list[int]]:
        self.sent.append((pci, bytes(apdu)))
        return self.transmit_results.pop(0)

    def SCardReconnect(self, card: Any, share: int, protocols: int, init: int) -> tuple[int, int]:
        assert init == 1  # SCARD_RESET_CARD
        return self.reconnect_result, self.connect_result[1]

    def SCardDisconnect(self, card: Any, disposition: int) -> int:
        self.disconnected.append(disposition)
        return 0

    def SCardGetErrorMessage(self, hresult: int) -> str:
        return f"error {hresult:08X}."


@pytest.fixture
def scard(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeScard]:
    fake = FakeScard()
    monkeypatch.setattr(pcsc, "_scard", lambda: fake)
    monkeypatch.setattr(pcsc, "REMOVAL_SETTLE", 0.05)
    yield fake


def _reader(scard: FakeScard, name: str = "Reader A 00 00") -> pcsc.PcscReader:
    scard.states[name] = [PRESENT]
    return pcsc.PcscReader(name)


def test_no_pcscd_says_to_start_it(scard: FakeScard) -> None:
    scard.establish = NO_SERVICE

    with pytest.raises(PcscServiceError, match=r"pcscd\) is not running: start it"):
        pcsc.list_readers()
    with pytest.raises(PcscServiceError):
        pcsc.open_readers(["*"])


def test_no_pyscard_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smartcard", None)
    pcsc._scard.cache_clear()
    try:
        with pytest.raises(PcscServiceError, match=r"pip install 'phonehome-provision\[pcsc\]'"):
            pcsc.list_readers()
    finally:
        pcsc._scard.cache_clear()


def test_no_readers(scard: FakeScard) -> None:
    scard.readers = []

    assert pcsc.list_readers() == []
    with pytest.raises(NoReaderError, match="sees no card reader"):
        pcsc.open_readers(["*"])


def test_patterns_pick_readers_and_every_pattern_must_match(scard: FakeScard) -> None:
    scard.readers = ["Sim 1 00 00", "Sim 0 00 01", "Sim 0 00 00", "Gemalto PC Twin 00 00"]

    readers = pcsc.open_readers(["Sim 0*", "Sim 0 00 0?", "Gem*"])

    assert [r.name for r in readers] == ["Gemalto PC Twin 00 00", "Sim 0 00 00", "Sim 0 00 01"]
    with pytest.raises(NoReaderError) as raised:
        pcsc.open_readers(["Sim*", "Omnikey*"])
    message = str(raised.value)
    assert "no reader matches 'Omnikey*'" in message
    assert "'Sim 1 00 00'" in message
    assert "provision readers" in message


def test_list_readers_reports_each_state(scard: FakeScard) -> None:
    scard.readers = ["A", "B", "C", "D", "E"]
    scard.states = {
        "A": [EMPTY],
        "B": [PRESENT],
        "C": [PRESENT | EXCLUSIVE],
        "D": [PRESENT | MUTE],
        "E": [UNAVAILABLE],
    }

    found = {info.name: (info.state, info.atr) for info in pcsc.list_readers()}

    assert found == {
        "A": (pcsc.CardState.EMPTY, b""),
        "B": (pcsc.CardState.PRESENT, ATR),
        "C": (pcsc.CardState.IN_USE, ATR),
        "D": (pcsc.CardState.MUTE, ATR),
        "E": (pcsc.CardState.UNAVAILABLE, b""),
    }
    assert scard.released == 1


def test_wait_for_card_times_out_then_connects(scard: FakeScard) -> None:
    reader = pcsc.PcscReader("Reader A 00 00")
    assert reader.wait_for_card(0.01) is None

    scard.states["Reader A 00 00"] = [EMPTY, PRESENT]
    transport = reader.wait_for_card(1)

    assert isinstance(transport, pcsc.PcscTransport)
    assert transport.atr == ATR
    assert transport.reader == "Reader A 00 00"


def test_a_t0_card_gets_the_t0_layer(scard: FakeScard) -> None:
    scard.connect_result = (0, T0)
    scard.transmit_results = [(0, [0x61, 0x02]), (0, [0xAA, 0xBB, 0x90, 0x00])]

    transport = _reader(scard).wait_for_card(0)

    assert isinstance(transport, T0Transport)
    assert transport.transmit(bytes.fromhex("80CA9F7F00")) == (b"\xaa\xbb", 0x9000)
    assert scard.sent == [
        ("pci-t0", bytes.fromhex("80CA9F7F00")),
        ("pci-t0", bytes.fromhex("00C0000002")),
    ]


def test_mute_card_is_reported(scard: FakeScard) -> None:
    scard.states["Reader A 00 00"] = [PRESENT | MUTE]

    with pytest.raises(TransportError, match="does not answer"):
        pcsc.PcscReader("Reader A 00 00").wait_for_card(0)


def test_sharing_violation_names_the_reader_and_what_to_do(scard: FakeScard) -> None:
    scard.connect_result = (SHARING_VIOLATION, T1)

    with pytest.raises(ReaderBusyError) as raised:
        _reader(scard).wait_for_card(0)
    assert "'Reader A 00 00' is in use by another program" in str(raised.value)


def test_no_card_at_connect(scard: FakeScard) -> None:
    scard.connect_result = (NO_SMARTCARD, T1)

    with pytest.raises(NoCardError, match="no card in reader 'Reader A 00 00'"):
        _reader(scard).connect()


def test_removed_card_during_a_command(scard: FakeScard) -> None:
    transport = _reader(scard).connect()
    scard.transmit_results = [(REMOVED_CARD, [])]

    with pytest.raises(CardRemovedError, match="removed from reader 'Reader A 00 00'"):
        transport.transmit(bytes.fromhex("00A4040000"))


def test_failed_transaction_then_empty_reader_is_a_removal(scard: FakeScard) -> None:
    transport = _reader(scard).connect()
    scard.states["Reader A 00 00"] = [PRESENT, EMPTY]
    scard.transmit_results = [(NOT_TRANSACTED, [])]

    with pytest.raises(CardRemovedError):
        transport.transmit(bytes.fromhex("00A4040000"))


def test_failed_transaction_with_the_card_still_there_is_not(scard: FakeScard) -> None:
    transport = _reader(scard).connect()
    scard.transmit_results = [(NOT_TRANSACTED, [])]

    with pytest.raises(TransportError) as raised:
        transport.transmit(bytes.fromhex("00A4040000"))
    assert not isinstance(raised.value, CardRemovedError)
    assert "80100016" in str(raised.value)


def test_reset_and_close(scard: FakeScard) -> None:
    transport = _reader(scard).connect()
    transport.reset()
    transport.close()
    transport.close()

    assert scard.disconnected == [1]  # once, with SCARD_RESET_CARD
    with pytest.raises(TransportError, match="closed"):
        transport.transmit(bytes.fromhex("00A4040000"))


def test_reset_of_a_removed_card(scard: FakeScard) -> None:
    transport = _reader(scard).connect()
    scard.reconnect_result = NO_SMARTCARD

    with pytest.raises(CardRemovedError):
        transport.reset()


def test_a_response_without_status_word(scard: FakeScard) -> None:
    transport = _reader(scard).connect()
    scard.transmit_results = [(0, [0x90])]

    with pytest.raises(TransportError, match="without a status word"):
        transport.transmit(bytes.fromhex("00A4040000"))


def test_wait_for_removal(scard: FakeScard) -> None:
    reader = _reader(scard)
    assert not reader.wait_for_removal(0.01)

    scard.states["Reader A 00 00"] = [PRESENT, EMPTY]
    assert reader.wait_for_removal(1)


def test_unknown_reader_is_gone(scard: FakeScard) -> None:
    with pytest.raises(NoReaderError, match="'Nowhere' is gone"):
        pcsc.PcscReader("Nowhere").wait_for_card(0)
