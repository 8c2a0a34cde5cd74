"""The card manager at APDU level: SELECT, GET DATA, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE,
the failure counter and the lock."""

from __future__ import annotations

import pytest

from provision.gp.keys import Scp, StaticKeys
from provision.iso7816 import split_response
from simulator.card import CardModel, VirtualToken
from tests.simhost import Host

CUID = bytes.fromhex("40906145C76224192D2B")  # esc-phone-home.md §5
TEST_KEY = bytes(range(0x40, 0x50))
SCP02_KEYS = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=False)
SCP03_KEYS = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=True)

ISD_AID = bytes.fromhex("A000000003000000")
COOLKEY_AID = bytes.fromhex("627601FF000000")
SELECT_ISD = bytes.fromhex("00A4040008") + ISD_AID
SELECT_COOLKEY = bytes.fromhex("00A4040007") + COOLKEY_AID
GET_CPLC = bytes.fromhex("80CA9F7F2D")
INITIALIZE_UPDATE = bytes.fromhex("8050000008") + bytes(8)
EXTERNAL_AUTHENTICATE = (0x84, 0x82)


def sw(response: bytes) -> int:
    return split_response(response)[1]


@pytest.fixture
def token() -> VirtualToken:
    token = VirtualToken.blank(CUID)
    token.power_on()
    return token


# SELECT


def test_select_isd_without_le_is_a_bare_9000(token: VirtualToken) -> None:
    assert token.process(SELECT_ISD) == b"\x90\x00"


def test_select_isd_with_le_returns_an_fci_naming_the_aid(token: VirtualToken) -> None:
    data, status = split_response(token.process(SELECT_ISD + b"\x00"))

    assert status == 0x9000
    assert data[0] == 0x6F and data[1] == len(data) - 2
    assert data[2:4] == b"\x84\x08" and data[4:12] == ISD_AID


def test_select_empty_aid_selects_the_isd(token: VirtualToken) -> None:
    token.process(SELECT_COOLKEY)

    assert token.process(bytes.fromhex("00A40400")) == b"\x90\x00"
    assert token.selected_aid == ISD_AID
    assert sw(token.process(GET_CPLC)) == 0x9000


def test_select_by_a_leading_part_of_the_aid(token: VirtualToken) -> None:
    # TPS tries A0000000030000 among its card manager AIDs (esc-phone-home.md §1.1).
    token.process(SELECT_COOLKEY)

    assert token.process(bytes.fromhex("00A4040007A0000000030000")) == b"\x90\x00"
    assert token.selected_aid == ISD_AID


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("00A4040005A000000099", 0x6A82),  # no such application
        ("00A4040003A00000", 0x6A82),  # too short to name one
        ("00A4000002 3F00", 0x6A86),  # by file id
        ("00A4040208" + ISD_AID.hex(), 0x6A86),  # next occurrence
    ],
)
def test_select_errors(token: VirtualToken, apdu: str, expected: int) -> None:
    assert token.process(bytes.fromhex(apdu)) == expected.to_bytes(2, "big")
    assert token.selected_aid == ISD_AID


# GET DATA


@pytest.mark.parametrize("le", ["2D", "00"])
def test_get_data_cplc_is_45_bytes(token: VirtualToken, le: str) -> None:
    response = token.process(bytes.fromhex("80CA9F7F" + le))

    assert len(response) == 47 and response[-2:] == b"\x90\x00"
    assert response[:3] == bytes.fromhex("9F7F2A")


def test_cplc_carries_the_cuid_where_coolkey_reads_it(token: VirtualToken) -> None:
    r = token.process(GET_CPLC)

    # esc-phone-home.md §1.4, offsets into the response R
    assert r[3:5] + r[5:7] + r[19:21] + r[15:19] == CUID
    assert token.cuid == CUID


@pytest.mark.parametrize("apdu", ["80CA9F7F10", "80CA9F7F2E", "80CA9F7F"])
def test_get_data_cplc_with_another_le_gives_6c2d(token: VirtualToken, apdu: str) -> None:
    assert token.process(bytes.fromhex(apdu)) == b"\x6c\x2d"


def test_get_data_unknown_tag(token: VirtualToken) -> None:
    assert token.process(bytes.fromhex("80CA00CF00")) == b"\x6a\x88"


@pytest.mark.parametrize(
    ("model", "scp_oid_tail"),
    [(CardModel(), "0215"), (CardModel.for_protocol(Scp.SCP03, 0x70), "0370")],
)
def test_card_recognition_data_names_the_protocol(model: CardModel, scp_oid_tail: str) -> None:
    token = VirtualToken.blank(CUID, model=model)
    data, status = split_response(token.process(bytes.fromhex("80CA006600")))

    # GPC 2.3.1 H.2: tag 64 holds OID 1.2.840.114283.4.<scp>.<i>
    assert status == 0x9000 and data[0] == 0x66
    assert data.endswith(bytes.fromhex("640B06092A864886FC6B04" + scp_oid_tail))


def test_cplc_is_the_card_managers_not_the_applets(token: VirtualToken) -> None:
    token.process(SELECT_COOLKEY)

    assert token.process(GET_CPLC) == b"\x6d\x00"


# INITIALIZE UPDATE


def test_initialize_update_scp02_layout(token: VirtualToken) -> None:
    data, status = split_response(token.process(INITIALIZE_UPDATE))

    # globalplatform.md §1.1: KDD ‖ kvn ‖ 02 ‖ seq(2) ‖ challenge(6) ‖ cryptogram(8)
    assert status == 0x9000 and len(data) == 28
    assert data[:10] == CUID and data[10:12] == b"\x01\x02" and data[12:14] == b"\x00\x00"


@pytest.mark.parametrize(("i", "length"), [(0x00, 29), (0x10, 32), (0x70, 32)])
def test_initialize_update_scp03_layout(i: int, length: int) -> None:
    token = VirtualToken.blank(CUID, model=CardModel.for_protocol(Scp.SCP03, i))

    data, status = split_response(token.process(INITIALIZE_UPDATE))

    # KDD ‖ kvn ‖ 03 ‖ i ‖ challenge(8) ‖ cryptogram(8) [‖ seq(3) when i has 10]
    assert status == 0x9000 and len(data) == length
    assert data[10:13] == bytes((0x01, 0x03, i))
    if i & 0x10:
        assert data[29:32] == b"\x00\x00\x01"


def test_scp03_pseudo_random_challenge_changes_with_each_initialize_update() -> None:
    token = VirtualToken.blank(CUID, model=CardModel.for_protocol(Scp.SCP03, 0x10))

    first = token.process(INITIALIZE_UPDATE)[13:21]
    second = token.process(INITIALIZE_UPDATE)[13:21]

    assert first != second
    assert token.sequence_counters == {0x01: 2}


def test_key_version_zero_is_the_first_key_set() -> None:
    other = StaticKeys.from_bytes(bytes(16), bytes(16), bytes(16), aes=False)
    token = VirtualToken.blank(CUID, key_sets={0x20: SCP02_KEYS, 0x30: other})

    assert token.process(INITIALIZE_UPDATE)[10] == 0x20
    assert token.process(bytes.fromhex("8050300008") + bytes(8))[10] == 0x30


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("8050020008" + "00" * 8, 0x6A88),  # no key version 02
        ("8050000004" + "00" * 4, 0x6700),  # host challenge not 8 bytes
        ("8050000108" + "00" * 8, 0x6A86),  # P2 is not 00
    ],
)
def test_initialize_update_errors(token: VirtualToken, apdu: str, expected: int) -> None:
    assert token.process(bytes.fromhex(apdu)) == expected.to_bytes(2, "big")
    assert token.card_manager.channel is None


def test_exhausted_sequence_counter_refuses_initialize_update() -> None:
    token = VirtualToken.blank(CUID, model=CardModel.for_protocol(Scp.SCP03, 0x10))
    token.set_sequence_counter(0x01, 0xFFFFFF)

    assert token.process(INITIALIZE_UPDATE) == b"\x69\x85"


# EXTERNAL AUTHENTICATE


def test_channel_opens_with_the_isd_selected(token: VirtualToken) -> None:
    Host(token, SCP02_KEYS).open()

    channel = token.card_manager.channel
    assert channel is not None and channel.authenticated
    assert token.failed_auth_count == 0


def test_external_authenticate_without_initialize_update(token: VirtualToken) -> None:
    assert token.process(bytes.fromhex("8482030010") + bytes(16)) == b"\x69\x85"
    assert token.failed_auth_count == 0


def test_external_authenticate_twice(token: VirtualToken) -> None:
    host = Host(token, SCP02_KEYS)
    host.open()

    assert host.external_authenticate()[1] == 0x6985
    assert token.card_manager.channel is None


def test_a_command_between_the_two_ends_initiation(token: VirtualToken) -> None:
    host = Host(token, SCP02_KEYS)
    host.initialize_update()
    token.process(GET_CPLC)

    assert host.external_authenticate()[1] == 0x6985


@pytest.mark.parametrize("level", [0x00, 0x02, 0x11, 0x13, 0x33])
def test_external_authenticate_with_a_level_the_card_lacks(
    token: VirtualToken, level: int
) -> None:
    host = Host(token, SCP02_KEYS)
    host.initialize_update()

    assert host.external_authenticate(level)[1] == 0x6985
    assert token.failed_auth_count == 0 and token.card_manager.channel is None


def test_external_authenticate_wrong_length(token: VirtualToken) -> None:
    token.process(INITIALIZE_UPDATE)

    assert token.process(bytes.fromhex("8482030008") + bytes(8)) == b"\x67\x00"


def test_bad_host_cryptogram_counts_and_drops_the_channel(token: VirtualToken) -> None:
    host = Host(token, SCP02_KEYS)
    host.initialize_update()
    writes = token.nv_writes

    assert host.external_authenticate(corrupt=True)[1] == 0x6300
    assert token.failed_auth_count == 1 and token.nv_writes == writes + 1
    assert token.card_manager.channel is None
    assert host.external_authenticate()[1] == 0x6985


def test_bad_mac_on_external_authenticate_counts(token: VirtualToken) -> None:
    token.process(INITIALIZE_UPDATE)

    assert token.process(bytes.fromhex("8482010010") + bytes(16)) == b"\x63\x00"
    assert token.failed_auth_count == 1


def test_success_resets_the_failure_counter(token: VirtualToken) -> None:
    host = Host(token, SCP02_KEYS)
    for _ in range(3):
        host.initialize_update()
        host.external_authenticate(corrupt=True)

    host.open()

    assert token.failed_auth_count == 0


def test_card_locks_at_the_failure_limit() -> None:
    token = VirtualToken.blank(CUID, model=CardModel(auth_failure_limit=3))
    host = Host(token, SCP02_KEYS)
    for attempt in range(3):
        assert not token.locked, attempt
        host.initialize_update()
        assert host.external_authenticate(corrupt=True)[1] == 0x6300

    assert token.locked and token.failed_auth_count == 3
    assert token.process(INITIALIZE_UPDATE) == b"\x69\x82"
    token.power_on()
    assert token.process(INITIALIZE_UPDATE) == b"\x69\x82"
    assert sw(token.process(GET_CPLC)) == 0x9000


def test_no_external_authenticate_is_sent_by_initialize_update_alone(token: VirtualToken) -> None:
    token.process(INITIALIZE_UPDATE)

    assert token.commands_seen[EXTERNAL_AUTHENTICATE] == 0
    assert token.commands_seen[(0x80, 0x50)] == 1


def test_applet_levels_narrow_what_the_applet_accepts() -> None:
    token = VirtualToken.blank(CUID, model=CardModel(applet_levels=frozenset({0x03})))
    host = Host(token, SCP02_KEYS, level=0x01)

    token.process(SELECT_COOLKEY)
    host.initialize_update()
    assert host.external_authenticate()[1] == 0x6985

    token.process(SELECT_ISD)
    host.initialize_update()
    assert host.external_authenticate()[1] == 0x9000


@pytest.mark.parametrize("select", [SELECT_ISD, SELECT_COOLKEY])
def test_scp03_channel_opens_with_either_application(select: bytes) -> None:
    token = VirtualToken.blank(CUID, model=CardModel.for_protocol(Scp.SCP03, 0x70))
    token.process(select)

    Host(token, SCP03_KEYS).open()

    assert token.card_manager.channel is not None


# Inside a channel, at the ISD


def test_protected_get_data_at_the_isd(token: VirtualToken) -> None:
    host = Host(token, SCP02_KEYS)
    host.open()

    data, status = split_response(token.process(host.wrap(0xCA, 0x9F, 0x7F) + b"\x2d"))

    assert status == 0x9000 and data[:3] == bytes.fromhex("9F7F2A")


def test_bad_c_mac_gives_6982_and_ends_the_channel(token: VirtualToken) -> None:
    host = Host(token, SCP02_KEYS)
    host.open()
    bad = bytearray(host.wrap(0xCA, 0x9F, 0x7F))
    bad[-1] ^= 0x80

    assert token.process(bytes(bad) + b"\x2d") == b"\x69\x82"
    assert token.card_manager.channel is None
    assert token.process(host.wrap(0xCA, 0x9F, 0x7F) + b"\x2d") == b"\x69\x82"


def test_unprotected_command_inside_a_channel_ends_it(token: VirtualToken) -> None:
    Host(token, SCP02_KEYS).open()

    assert token.process(GET_CPLC) == b"\x69\x82"
    assert token.card_manager.channel is None


def test_secure_command_without_a_channel(token: VirtualToken) -> None:
    assert token.process(bytes.fromhex("84CA9F7F08") + bytes(8)) == b"\x69\x82"


# Malformed and unknown commands


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("", 0x6700),
        ("80", 0x6700),
        ("80CA9F", 0x6700),
        ("80CA9F7F05AABB", 0x6700),  # Lc says 5, 2 follow
        ("80CA9F7F00000100", 0x6700),  # extended length
        ("90CA9F7F2D", 0x6E00),
        ("B0F600 00E0", 0x6E00),  # CoolKey class byte, ISD selected
        ("80F2200200", 0x6D00),
        ("00B0000010", 0x6D00),
    ],
)
def test_isd_status_words(token: VirtualToken, apdu: str, expected: int) -> None:
    assert token.process(bytes.fromhex(apdu)) == expected.to_bytes(2, "big")
