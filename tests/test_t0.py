"""T=0: the host's 61xx / 6Cxx handling, the simulator's T=0 card, and the two together.

The expected dialogues are written out by hand from ISO/IEC 7816-3 §12.2 (case 4 goes as
case 3 and is answered 61xx; 6Cxx asks for the same command with Le = SW2) and 7816-4
§11.5.6 (GET RESPONSE ``00 C0 00 00 Le``), with the secure-messaging rules of GPC 2.3.1
(GET RESPONSE is sent plain; a wrapped command answered 6Cxx is not resent).
"""

from __future__ import annotations

import pytest

from provision.errors import ProtocolError
from provision.t0 import MAX_GET_RESPONSES, T0Transport, secure_messaging
from provision.transport import InProcessTransport
from simulator.card import VirtualToken
from simulator.t0 import T0_ATR, T0Card
from tests.scripted import ScriptedTransport

H = bytes.fromhex
CHALLENGE = H("0102030405060708")
OK = H("9000")


def _t0(script: list[tuple[bytes, bytes]]) -> tuple[T0Transport, ScriptedTransport]:
    wire = ScriptedTransport(script)
    return T0Transport(wire), wire


# -- the host side, byte by byte ----------------------------------------------------------


def test_case_4_goes_without_le_and_the_answer_is_fetched() -> None:
    answer = bytes(range(28))
    t0, wire = _t0(
        [
            (H("8050000008") + CHALLENGE, H("611C")),
            (H("00C000001C"), answer + OK),
        ]
    )

    data, sw = t0.transmit(H("8050000008") + CHALLENGE + H("00"))

    assert (data, sw) == (answer, 0x9000)
    assert wire.done


def test_6cxx_resends_the_same_command_with_le_from_sw2() -> None:
    cplc = H("9F7F2A") + bytes(42)
    t0, wire = _t0([(H("80CA9F7F00"), H("6C2D")), (H("80CA9F7F2D"), cplc + OK)])

    assert t0.transmit(H("80CA9F7F00")) == (cplc, 0x9000)
    assert wire.done


def test_61xx_chains_are_joined_and_00_means_256() -> None:
    first, rest = bytes(range(256)), bytes(16)
    t0, wire = _t0(
        [
            (H("B0F60000"), H("6100")),
            (H("00C0000000"), first + H("6110")),
            (H("00C0000010"), rest + OK),
        ]
    )

    data, sw = t0.transmit(H("B0F60000"))

    assert data == first + rest
    assert sw == 0x9000
    assert wire.done


def test_get_response_answered_6cxx_is_asked_again() -> None:
    t0, wire = _t0(
        [
            (H("8050000008") + CHALLENGE, H("6120")),
            (H("00C0000020"), H("6C18")),
            (H("00C0000018"), bytes(24) + OK),
        ]
    )

    assert t0.transmit(H("8050000008") + CHALLENGE) == (bytes(24), 0x9000)
    assert wire.done


def test_wrapped_case_4_goes_without_le_and_get_response_is_plain() -> None:
    mac = H("1122334455667788")
    cplc = H("9F7F2A") + bytes(42)
    t0, wire = _t0([(H("84CA9F7F08") + mac, H("612D")), (H("00C000002D"), cplc + OK)])

    assert t0.transmit(H("84CA9F7F08") + mac + H("2D")) == (cplc, 0x9000)
    assert wire.done


def test_wrapped_command_answered_6cxx_is_an_error_not_a_resend() -> None:
    command = H("84F4000008") + H("1122334455667788")
    t0, wire = _t0([(command, H("6C10"))])

    with pytest.raises(ProtocolError, match="cannot be resent"):
        t0.transmit(command)
    assert wire.sent == [command]


def test_plain_command_with_data_answered_6cxx_is_an_error() -> None:
    t0, wire = _t0([(H("80500000") + H("08") + CHALLENGE, H("6C1C"))])

    with pytest.raises(ProtocolError, match="no Le under T=0"):
        t0.transmit(H("80500000") + H("08") + CHALLENGE)
    assert len(wire.sent) == 1


def test_a_second_6cxx_is_an_error() -> None:
    t0, _ = _t0([(H("80CA9F7F00"), H("6C2D")), (H("80CA9F7F2D"), H("6C2E"))])

    with pytest.raises(ProtocolError, match="again"):
        t0.transmit(H("80CA9F7F00"))


def test_endless_61xx_ends_in_an_error() -> None:
    script = [(H("80CA9F7F00"), H("6101"))]
    script += [(H("00C0000001"), H("00") + H("6101"))] * MAX_GET_RESPONSES
    t0, wire = _t0(script)

    with pytest.raises(ProtocolError, match="GET RESPONSE"):
        t0.transmit(H("80CA9F7F00"))
    assert wire.done


def test_other_status_words_pass_through_untouched() -> None:
    t0, wire = _t0([(H("00A4040007627601FF000000"), H("6A82"))])

    assert t0.transmit(H("00A4040007627601FF000000")) == (b"", 0x6A82)
    assert wire.done


@pytest.mark.parametrize(
    ("cla", "protected"),
    [
        (0x00, False),
        (0x04, True),  # ISO 7816-4 Table 2: b4-b3 = 01, proprietary secure messaging
        (0x0C, True),  # b4-b3 = 11, secure messaging with an authenticated header
        (0x80, False),  # GlobalPlatform, plain
        (0x84, True),  # GlobalPlatform, secure messaging (GPC 2.3.1 §11.1.4)
        (0xB0, False),  # CoolKey applet, plain
        (0x40, False),  # further interindustry class, no secure messaging
        (0x60, True),  # further interindustry class, b6 = secure messaging
        (0xC0, False),
        (0xE0, True),
    ],
)
def test_secure_messaging_is_read_from_the_class_byte(cla: int, protected: bool) -> None:
    assert secure_messaging(cla) is protected


# -- the simulator's T=0 card --------------------------------------------------------------


def _card() -> tuple[T0Card, VirtualToken]:
    token = VirtualToken.blank(H("40906145C76224192D2B"))
    card = T0Card(token)
    card.power_on()
    return card, token


def test_t0_atr_offers_t0_only() -> None:
    # ISO 7816-3 §8.2.2-8.2.3: T0's high nibble says which of TA1..TD1 follow; without TD1
    # the card offers T=0 alone, and then no TCK follows the historical bytes.
    assert T0_ATR[0] == 0x3B
    assert T0_ATR[1] >> 4 == 0x1  # TA1 only
    assert T0_ATR[1] & 0x0F == len(T0_ATR) - 3  # the rest are historical bytes
    assert T0Card(VirtualToken.blank()).power_on() == T0_ATR


def test_t0_card_answers_61xx_then_gives_the_data_in_pieces() -> None:
    card, token = _card()

    assert card.process(H("8050000008") + CHALLENGE) == H("611C")
    first = card.process(H("00C0000010"))
    rest = card.process(H("00C000000C"))

    assert first[-2:] == H("610C")
    assert rest[-2:] == OK
    response = first[:-2] + rest[:-2]
    assert len(response) == 28
    assert response[:10] == token.kdd  # GPC 2.3.1 E.5.1.4: KDD first, then kvn, SCP 02
    assert response[11] == 0x02


def test_t0_card_wants_the_exact_le() -> None:
    card, _ = _card()

    assert card.process(H("80CA9F7F00")) == H("6C2D")  # P3 00 asks for 256 bytes
    answer = card.process(H("80CA9F7F2D"))
    assert answer[:3] == H("9F7F2A")
    assert answer[-2:] == OK
    assert len(answer) == 45 + 2


def test_t0_card_refuses_lc_and_le_together() -> None:
    card, token = _card()

    assert card.process(H("8050000008") + CHALLENGE + H("00")) == H("6700")
    assert token.commands_seen.total() == 0  # the card behind never saw it


def test_get_response_with_nothing_waiting_or_too_long() -> None:
    card, _ = _card()

    assert card.process(H("00C0000010")) == H("6985")
    assert card.process(H("8050000008") + CHALLENGE) == H("611C")
    assert card.process(H("00C0000020")) == H("6C1C")


def test_any_other_command_or_a_reset_drops_the_waiting_answer() -> None:
    card, _ = _card()

    card.process(H("8050000008") + CHALLENGE)
    card.process(H("00A4040008A000000003000000"))
    assert card.process(H("00C000001C")) == H("6985")

    card.process(H("8050000008") + CHALLENGE)
    card.power_on()
    assert card.process(H("00C000001C")) == H("6985")


def test_t0_card_sends_errors_without_data() -> None:
    card, _ = _card()

    assert card.process(H("00A4040007A0000000FFFFFF")) == H("6A82")


# -- together ------------------------------------------------------------------------------


class _Wire(InProcessTransport):
    """An in-process transport that keeps every (command, response) pair."""

    def __init__(self, card: T0Card) -> None:
        super().__init__(card)
        self.exchanges: list[tuple[bytes, bytes]] = []

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        data, sw = super().transmit(apdu)
        self.exchanges.append((apdu, data + sw.to_bytes(2, "big")))
        return data, sw


def test_host_and_t0_card_exchange_exactly_the_t0_dialogue() -> None:
    card, token = _card()
    wire = _Wire(card)
    t0 = T0Transport(wire)

    data, sw = t0.transmit(H("8050000008") + CHALLENGE + H("00"))
    cplc, sw2 = t0.transmit(H("80CA9F7F00"))

    assert [command for command, _ in wire.exchanges] == [
        H("8050000008") + CHALLENGE,
        H("00C000001C"),
        H("80CA9F7F00"),
        H("80CA9F7F2D"),
    ]
    assert [response[-2:] for _, response in wire.exchanges] == [H("611C"), OK, H("6C2D"), OK]
    assert (sw, sw2) == (0x9000, 0x9000)
    assert data[:10] == token.kdd
    assert cplc[:3] == H("9F7F2A")
