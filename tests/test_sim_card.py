"""The token as a whole: ATR, power cycles and resets, construction, the transport."""

from __future__ import annotations

from functools import reduce

import pytest

from provision.gp.keys import Scp, StaticKeys
from provision.transport import InProcessTransport
from simulator.card import CardModel, VirtualToken
from tests.simhost import Host

CUID = bytes.fromhex("a00192030405060708c9")  # esc-phone-home.md §5
TEST_KEY = bytes(range(0x40, 0x50))
SCP02_KEYS = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=False)
SELECT_COOLKEY = bytes.fromhex("00A4040007627601FF000000")
GET_ISSUER_INFO = bytes.fromhex("B0F60000E0")
URL = b"http://[pki_hostname]:[pki_http_port]/tps/phoneHome"


def test_atr_is_a_well_formed_t1_atr() -> None:
    atr = VirtualToken.blank(CUID).power_on()

    # ISO 7816-3 §8.2: TS 3B; T0 says TA1 and TD1 follow and gives K; TD1 names T=1;
    # the XOR of T0 .. TCK is zero.
    assert atr[0] == 0x3B
    t0 = atr[1]
    assert t0 & 0x90 == 0x90
    assert atr[3] & 0x0F == 0x01
    assert reduce(lambda a, b: a ^ b, atr[1:]) == 0
    assert len(atr) == 2 + 1 + 1 + 1 + 2 + (t0 & 0x0F) + 1  # TA1 TD1 TD2 TA3 TB3, K, TCK


def test_blank_token_defaults() -> None:
    token = VirtualToken.blank(CUID)

    assert token.cuid == CUID and token.kdd == CUID
    assert token.issuer_info == bytes(224)
    assert token.life_cycle == 0x07
    assert token.failed_auth_count == 0 and not token.locked
    assert token.nv_writes == 0
    assert token.key_sets == {0x01: SCP02_KEYS}
    assert token.sequence_counters == {0x01: 0}


def test_blank_scp03_token_has_the_aes_test_keys() -> None:
    token = VirtualToken.blank(model=CardModel.for_protocol(Scp.SCP03))

    assert token.model.i == 0x10
    assert token.key_sets[0x01].aes and token.key_sets[0x01].enc.value == TEST_KEY


def test_random_cuids_differ() -> None:
    assert VirtualToken.blank().cuid != VirtualToken.blank().cuid
    assert len(VirtualToken.blank().cuid) == 10


def test_kdd_may_differ_from_the_cuid() -> None:
    token = VirtualToken.blank(CUID, kdd=bytes(10))

    assert token.process(bytes.fromhex("8050000008") + bytes(8))[:10] == bytes(10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"protocol": Scp.SCP01, "i": 0x25},
        {"protocol": Scp.SCP02, "i": 0x1A},
        {"applet_levels": frozenset({0x33})},
        {"auth_failure_sw": 0x6A80},
        {"protocol": Scp.SCP03, "i": 0x15},
        {"auth_failure_limit": 0},
        {"applet_levels": frozenset()},
        {"atr": b"\x00\x00"},
        {"card_manager_aid": b"\xa0\x00"},
    ],
)
def test_bad_models_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CardModel(**kwargs)  # type: ignore[arg-type]


def test_keys_must_suit_the_protocol() -> None:
    aes = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=True)

    with pytest.raises(ValueError, match="SCP02"):
        VirtualToken.blank(CUID, key_sets={0x01: aes})


def _personalised_token() -> tuple[VirtualToken, Host]:
    token = VirtualToken.blank(CUID)
    token.process(SELECT_COOLKEY)
    host = Host(token, SCP02_KEYS)
    host.open()
    assert host.send(host.wrap(0xF4, data=URL + bytes(224 - len(URL))))[1] == 0x9000
    assert host.send(host.wrap(0xF0, p1=0x0F))[1] == 0x9000
    host.initialize_update()
    host.external_authenticate(corrupt=True)
    host.open()
    return token, host


@pytest.mark.parametrize("how", ["power_on", "reset"])
def test_reset_keeps_persistent_state(how: str) -> None:
    token, _ = _personalised_token()
    before = (token.cuid, token.issuer_info, token.life_cycle, token.sequence_counters)

    getattr(token, how)()

    assert (token.cuid, token.issuer_info, token.life_cycle, token.sequence_counters) == before
    assert token.issuer_info.startswith(URL) and token.life_cycle == 0x0F
    assert token.sequence_counters == {0x01: 2}
    assert token.failed_auth_count == 0


def test_failure_counter_survives_a_power_cycle() -> None:
    token = VirtualToken.blank(CUID)
    host = Host(token, SCP02_KEYS)
    host.initialize_update()
    host.external_authenticate(corrupt=True)

    token.power_on()

    assert token.failed_auth_count == 1


@pytest.mark.parametrize("how", ["power_on", "reset"])
def test_reset_clears_channel_and_selection(how: str) -> None:
    token, host = _personalised_token()

    getattr(token, how)()

    assert token.card_manager.channel is None
    assert token.selected_aid == bytes.fromhex("A000000003000000")
    assert token.process(GET_ISSUER_INFO) == b"\x6e\x00"  # the ISD knows no CLA B0
    token.process(SELECT_COOLKEY)
    assert token.process(host.wrap(0xF0, p1=0x07)) == b"\x69\x82"


def test_selecting_again_ends_the_channel() -> None:
    token, host = _personalised_token()

    token.process(SELECT_COOLKEY)

    assert token.card_manager.channel is None
    assert token.process(host.wrap(0xF0, p1=0x07)) == b"\x69\x82"


def test_in_process_transport_drives_the_token() -> None:
    token, _ = _personalised_token()
    transport = InProcessTransport(token)

    transport.reset()
    assert transport.atr == token.atr
    assert transport.transmit(SELECT_COOLKEY) == (b"", 0x9000)
    data, sw = transport.transmit(GET_ISSUER_INFO)

    assert sw == 0x9000 and data.split(b"\x00")[0] == URL


def test_repr_names_the_token_without_keys() -> None:
    text = repr(VirtualToken.blank(CUID))

    assert CUID.hex().upper() in text
    assert TEST_KEY.hex() not in text.lower()
