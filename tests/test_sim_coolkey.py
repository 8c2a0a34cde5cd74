"""The CoolKey applet at APDU level: what ESC's libraries send, and the secure writes."""

from __future__ import annotations

import pytest

from provision.gp.keys import Scp, StaticKeys
from provision.iso7816 import split_response
from simulator.card import CardModel, VirtualToken
from tests.simhost import Host

CUID = bytes.fromhex("40906145C76224192D2B")
TEST_KEY = bytes(range(0x40, 0x50))
COOLKEY_AID = bytes.fromhex("627601FF000000")
SELECT_COOLKEY = bytes.fromhex("00A4040007") + COOLKEY_AID
GET_ISSUER_INFO = bytes.fromhex("B0F60000E0")
INS_SET_ISSUER_INFO = 0xF4
INS_SET_LIFE_CYCLE = 0xF0

URL = b"http://server.example.com:7888/cgi-bin/home/index.cgi"
ISSUER_INFO = URL + bytes(224 - len(URL))

SCP02 = CardModel()
SCP03 = CardModel.for_protocol(Scp.SCP03, 0x70)


def keys_for(model: CardModel) -> StaticKeys:
    return StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=model.protocol == Scp.SCP03)


@pytest.fixture
def token() -> VirtualToken:
    token = VirtualToken.blank(CUID)
    token.power_on()
    assert token.process(SELECT_COOLKEY) == b"\x90\x00"
    return token


def opened(model: CardModel, level: int) -> tuple[VirtualToken, Host]:
    token = VirtualToken.blank(CUID, model=model)
    token.process(SELECT_COOLKEY)
    host = Host(token, keys_for(model), level)
    host.open()
    return token, host


def test_detection_dialogue_of_a_blank_token() -> None:
    """esc-phone-home.md §8: what coolkey's PKCS#11 module sends after power-on."""
    token = VirtualToken.blank(CUID)
    token.power_on()

    assert token.process(bytes.fromhex("00A4040007627601FF000000")) == b"\x90\x00"
    assert token.process(bytes.fromhex("B0F2000004")) == bytes.fromhex("070001019000")
    assert token.process(bytes.fromhex("00A4040000"))[-2:] == b"\x90\x00"
    cplc = token.process(bytes.fromhex("80CA9F7F2D"))
    assert len(cplc) == 47 and cplc[:3] == bytes.fromhex("9F7F2A") and cplc[-2:] == b"\x90\x00"


def test_select_coolkey_never_returns_fci() -> None:
    token = VirtualToken.blank(CUID)

    # TPS adds Le 00; the applet still answers the bare status word.
    assert token.process(SELECT_COOLKEY + b"\x00") == b"\x90\x00"
    assert token.selected_aid == COOLKEY_AID


def test_blank_issuer_info_is_224_zero_bytes(token: VirtualToken) -> None:
    assert token.process(GET_ISSUER_INFO) == bytes(224) + b"\x90\x00"


@pytest.mark.parametrize("apdu", ["B0F6000000", "B0F60000DF", "B0F60000", "B0F6000001AA"])
def test_get_issuer_info_wants_le_e0(token: VirtualToken, apdu: str) -> None:
    assert token.process(bytes.fromhex(apdu)) == b"\x67\x00"


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [("B0F2000001", "07"), ("B0F2000004", "07000101"), ("B0F20000", "07000101")],
)
def test_get_life_cycle(token: VirtualToken, apdu: str, expected: str) -> None:
    assert token.process(bytes.fromhex(apdu)) == bytes.fromhex(expected + "9000")


def test_get_status_is_16_bytes(token: VirtualToken) -> None:
    data, status = split_response(token.process(bytes.fromhex("B03C000010")))

    assert status == 0x9000 and len(data) == 16
    assert data[:2] == b"\x01\x01"  # CardEdge protocol 1.1


@pytest.mark.parametrize(("apdu", "expected"), [("B03C010010", 0x9C10), ("B03C000110", 0x9C11)])
def test_get_status_checks_p1_p2(token: VirtualToken, apdu: str, expected: int) -> None:
    assert token.process(bytes.fromhex(apdu)) == expected.to_bytes(2, "big")


def test_get_build_id(token: VirtualToken) -> None:
    data, status = split_response(token.process(bytes.fromhex("B070000004")))

    assert status == 0x9000 and len(data) == 4
    assert token.process(bytes.fromhex("B070000002")) == b"\x67\x00"


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("B0990000", 0x6D00),  # unknown CardEdge INS
        ("B0F40000E0" + "00" * 224, 0x6D00),  # SET ISSUER INFO exists only under CLA 84
        ("00CA9F7F2D", 0x9000),  # CLA 00: CardEdge.process just returns
        ("80CA9F7F2D", 0x6D00),  # CLA 80 is only INITIALIZE UPDATE
        ("C0F60000E0", 0x6E00),
        ("84F40000E8" + "00" * 232, 0x6982),  # no secure channel
        ("84F00F0008" + "00" * 8, 0x6982),
        ("8482030010" + "00" * 16, 0x6985),  # no INITIALIZE UPDATE before
    ],
)
def test_applet_status_words(token: VirtualToken, apdu: str, expected: int) -> None:
    assert token.process(bytes.fromhex(apdu)) == expected.to_bytes(2, "big")


@pytest.mark.parametrize("model", [SCP02, SCP03], ids=["scp02", "scp03"])
@pytest.mark.parametrize("level", [0x01, 0x03])
def test_set_issuer_info_in_a_secure_channel(model: CardModel, level: int) -> None:
    token, host = opened(model, level)
    writes = token.nv_writes

    assert host.send(host.wrap(INS_SET_ISSUER_INFO, data=ISSUER_INFO)) == (b"", 0x9000)

    assert token.issuer_info == ISSUER_INFO
    assert token.nv_writes == writes + 1
    assert token.process(GET_ISSUER_INFO) == ISSUER_INFO + b"\x90\x00"


def test_set_issuer_info_wire_length_matches_the_reference() -> None:
    # esc-phone-home.md §4.4: Lc F0 under SCP02 level 03, F8 under SCP03
    for model, lc in ((SCP02, 0xF0), (SCP03, 0xF8)):
        token, host = opened(model, 0x03)
        apdu = host.wrap(INS_SET_ISSUER_INFO, data=ISSUER_INFO)
        assert apdu[4] == lc
        assert token.process(apdu) == b"\x90\x00"


@pytest.mark.parametrize("size", [0, 223, 225])
def test_set_issuer_info_wants_224_bytes(size: int) -> None:
    token, host = opened(SCP02, 0x03)

    assert host.send(host.wrap(INS_SET_ISSUER_INFO, data=bytes(size)))[1] == 0x6700
    assert token.issuer_info == bytes(224) and token.nv_writes == 1  # the counter only


def test_set_issuer_info_with_a_bad_mac_writes_nothing() -> None:
    token, host = opened(SCP03, 0x03)
    bad = bytearray(host.wrap(INS_SET_ISSUER_INFO, data=ISSUER_INFO))
    bad[-3] ^= 0x01

    assert token.process(bytes(bad)) == b"\x69\x82"
    assert token.issuer_info == bytes(224)
    assert token.card_manager.channel is None


def test_unknown_secure_ins_keeps_the_channel() -> None:
    _, host = opened(SCP02, 0x03)

    assert host.send(host.wrap(0xF6, data=b""))[1] == 0x6D00
    assert host.send(host.wrap(INS_SET_ISSUER_INFO, data=ISSUER_INFO))[1] == 0x9000


def test_set_life_cycle() -> None:
    token, host = opened(SCP02, 0x03)

    assert host.send(host.wrap(INS_SET_LIFE_CYCLE, p1=0x0F))[1] == 0x9000
    assert token.life_cycle == 0x0F
    assert token.process(bytes.fromhex("B0F2000001")) == b"\x0f\x90\x00"


@pytest.mark.parametrize(
    ("p1", "data", "expected"), [(0x0F, b"\x00", 0x6700), (0x03, b"", 0x9C0F)]
)
def test_set_life_cycle_errors(p1: int, data: bytes, expected: int) -> None:
    token, host = opened(SCP03, 0x01)

    assert host.send(host.wrap(INS_SET_LIFE_CYCLE, p1=p1, data=data))[1] == expected
    assert token.life_cycle == 0x07


def test_commands_seen_counts_every_apdu(token: VirtualToken) -> None:
    token.process(GET_ISSUER_INFO)
    token.process(GET_ISSUER_INFO)
    token.process(b"\xb0")

    assert token.commands_seen[(0xB0, 0xF6)] == 2
    assert token.commands_seen[(0x00, 0xA4)] == 1
    assert (0x84, 0x82) not in token.commands_seen
