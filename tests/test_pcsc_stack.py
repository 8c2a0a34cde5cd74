"""The whole stack a factory uses: pyscard → pcscd → vpcd → the simulator, 16 readers.

Needs the session's pcscd (``tests/pcscd.py``); skipped where pcscd or vpcd is missing.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from provision import coolkey, pcsc
from provision.burn import BurnPlan, Outcome
from provision.errors import NoCardError, NoReaderError, ReaderBusyError
from provision.pcsc import PcscReader
from provision.t0 import T0Transport
from simulator.bridge import ServeOptions
from simulator.card import CARD_MANAGER_AID
from simulator.cli import make_token
from simulator.coolkey import COOLKEY_AID
from simulator.t0 import T0_ATR
from tests.pcscd import URL, PcscStack, burn

pytestmark = pytest.mark.pcscd

H = bytes.fromhex
ISSUER_INFO = URL.encode().ljust(224, b"\x00")


def test_pcscd_lists_the_sixteen_virtual_readers_empty(pcscd: PcscStack) -> None:
    found = pcsc.list_readers()

    assert [info.name for info in found] == pcscd.names
    assert {info.state for info in found} == {pcsc.CardState.EMPTY}


def test_sixteen_tokens_burn_and_verify_in_parallel(
    pcscd: PcscStack, example_plan: BurnPlan
) -> None:
    tokens = [make_token() for _ in pcscd.names]
    for index, token in enumerate(tokens):
        pcscd.insert(index, token, ServeOptions(t0=index % 2 == 1))
    readers = pcsc.open_readers(["CoolKey Sim *"])
    for reader in readers:
        assert isinstance(reader, PcscReader)
        pcscd.track(reader)

    with ThreadPoolExecutor(len(readers)) as pool:
        results = list(pool.map(lambda reader: burn(reader, example_plan), readers))

    assert [reader.name for reader in readers] == pcscd.names
    for token, name, result in zip(tokens, pcscd.names, results, strict=True):
        assert result.outcome is Outcome.VERIFIED, f"{name}: {result.reason}"
        assert result.reader == name
        assert result.token_id == token.cuid.hex()  # each reader saw its own card
        assert token.issuer_info == ISSUER_INFO
    assert len({result.token_id for result in results}) == 16


def _apdus(pcscd: PcscStack, index: int) -> list[tuple[bytes, bytes]]:
    return [
        (record.command, record.response or b"")
        for record in pcscd.bridge.wire(index)
        if record.event == "apdu"
    ]


def test_a_t0_token_sees_exactly_the_t0_dialogue(pcscd: PcscStack, example_plan: BurnPlan) -> None:
    token = make_token()
    pcscd.insert(5, token, ServeOptions(t0=True))
    reader = pcscd.reader(5)
    transport = reader.wait_for_card(5)
    assert isinstance(transport, T0Transport)
    assert transport.atr == T0_ATR
    transport.close()

    result = burn(reader, example_plan)

    assert result.outcome is Outcome.VERIFIED, result.reason
    wire = _apdus(pcscd, 5)
    # The burn: identify, read, open the channel, write. Under T=0 INITIALIZE UPDATE goes
    # without its Le and is answered 611C (28 bytes, GPC 2.3.1 E.5.1.4), which a plain GET
    # RESPONSE fetches; SET ISSUER INFO carries 224 bytes padded to 232, encrypted, and the
    # 8-byte C-MAC: Lc F0.
    shapes = [
        (command[:5].hex().upper(), len(command), response[-2:].hex().upper(), len(response))
        for command, response in wire[:8]
    ]
    assert shapes == [
        ("00A4040008", 5 + 8, "9000", 2),
        ("80CA9F7F2D", 5, "9000", 45 + 2),
        ("00A4040007", 5 + 7, "9000", 2),
        ("B0F60000E0", 5, "9000", 224 + 2),
        ("8050000008", 5 + 8, "611C", 2),
        ("00C000001C", 5, "9000", 28 + 2),
        ("8482030010", 5 + 16, "9000", 2),
        ("84F40000F0", 5 + 240, "9000", 2),
    ]
    assert wire[0][0] == H("00A4040008") + CARD_MANAGER_AID
    assert wire[2][0] == H("00A4040007") + COOLKEY_AID
    # Then the verification after a reset: select the applet, read the URL back.
    assert wire[8:] == [(wire[2][0], H("9000")), (H("B0F60000E0"), ISSUER_INFO + H("9000"))]
    for (_, response), (following, _) in itertools.pairwise(wire):
        if response[-2] == 0x61:
            assert following == H("00C00000") + response[-1:]
    assert all(not _has_lc_and_le(command) for command, _ in wire)


def _has_lc_and_le(command: bytes) -> bool:
    return len(command) > 5 and len(command) == 5 + command[4] + 1


def test_a_swapped_card_is_a_new_card(pcscd: PcscStack) -> None:
    first, second = make_token(), make_token()
    pcscd.insert(2, first)
    reader = pcscd.reader(2)

    transport = reader.wait_for_card(5)
    assert transport is not None
    assert coolkey.read_cuid(transport, CARD_MANAGER_AID).value == first.cuid
    transport.close()

    assert pcscd.bridge.swap(2, second) is first
    transport = reader.wait_for_card(5)
    assert transport is not None
    assert coolkey.read_cuid(transport, CARD_MANAGER_AID).value == second.cuid
    transport.close()


def test_removal_and_reinsertion_are_seen(pcscd: PcscStack) -> None:
    token = make_token()
    pcscd.insert(4, token)
    reader = pcscd.reader(4)
    transport = reader.wait_for_card(5)
    assert transport is not None
    transport.close()
    assert not reader.wait_for_removal(0.1)

    pcscd.bridge.remove(4)

    assert reader.wait_for_removal(5)
    assert reader.wait_for_card(0.1) is None
    pcscd.insert(4, token)
    transport = reader.wait_for_card(5)
    assert transport is not None
    transport.close()


def test_an_exclusive_connection_keeps_others_out(pcscd: PcscStack) -> None:
    pcscd.insert(6, make_token())
    holder = pcscd.reader(6).wait_for_card(5)
    assert holder is not None

    with pytest.raises(ReaderBusyError, match="in use by another program"):
        pcscd.reader(6).connect()
    assert pcsc.list_readers()[6].state is pcsc.CardState.IN_USE
    holder.close()


def test_an_empty_reader(pcscd: PcscStack) -> None:
    reader = pcscd.reader(7)

    assert reader.wait_for_card(0.05) is None
    with pytest.raises(NoCardError, match=f"no card in reader '{pcscd.name(7)}'"):
        reader.connect()


def test_patterns_pick_readers(pcscd: PcscStack) -> None:
    readers = pcsc.open_readers(["CoolKey Sim 3 *", "CoolKey Sim 7 00 01"])
    for reader in readers:
        assert isinstance(reader, PcscReader)
        pcscd.track(reader)

    assert [r.name for r in readers] == [pcscd.name(6), pcscd.name(7), pcscd.name(15)]
    with pytest.raises(NoReaderError, match=r"no reader matches 'Omnikey\*'"):
        pcsc.open_readers(["Omnikey*"])
