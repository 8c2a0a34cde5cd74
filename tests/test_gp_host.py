"""The host side of the secure channels around the vectors: what it refuses, and when."""

from __future__ import annotations

from typing import Any

import pytest

from provision.errors import (
    AuthenticationError,
    KeyMismatchError,
    KeyVersionError,
    SecureChannelError,
)
from provision.gp.keys import Scp, SecurityLevel, StaticKeys
from provision.gp.session import ChannelParameters, open_secure_channel, supported_levels
from provision.iso7816 import CommandApdu
from provision.keysource import ProfileCardKeys
from tests.cardkeys import inline, static_keys
from tests.scripted import ScriptedTransport
from tests.vectorfiles import h, load

TEST_KEY = bytes(range(0x40, 0x50))


def _keys(vector: dict[str, Any], kvn: int | None = None) -> ProfileCardKeys:
    protocol = Scp[vector["protocol"]]
    keys = vector["static_keys"]
    static = static_keys(protocol, h(keys["enc"]), h(keys["mac"]), h(keys["dek"]))
    reported = int(vector["parsed_initialize_update"]["key_version"], 16)
    return inline(reported if kvn is None else kvn, protocol, static)


def _params(vector: dict[str, Any], **changes: Any) -> ChannelParameters:
    fields = {
        "scp": Scp[vector["protocol"]],
        "i": int(vector["scp_i"], 16),
        "level": SecurityLevel(int(vector["security_level"], 16)),
        "kvn": h(vector["initialize_update"]["capdu"])[2],
    }
    return ChannelParameters(**{**fields, **changes})


def _first_exchange(
    name: str, *more: tuple[bytes, bytes]
) -> tuple[dict[str, Any], ScriptedTransport]:
    vector = load(name)
    iu = vector["initialize_update"]
    return vector, ScriptedTransport([(h(iu["capdu"]), h(iu["rapdu"])), *more])


def test_wrong_key_stops_before_external_authenticate() -> None:
    vector, transport = _first_exchange("scp02-kaoh-i15-cmac-getstatus")
    wrong = inline(1, Scp.SCP02, static_keys(Scp.SCP02, bytes(16), bytes(16), bytes(16)))

    with pytest.raises(KeyMismatchError) as caught:
        open_secure_channel(
            transport, _params(vector), wrong, host_challenge=h(vector["host_challenge"])
        )

    assert [apdu[1] for apdu in transport.sent] == [0x50]
    message = str(caught.value)
    assert "EXTERNAL AUTHENTICATE was not sent" in message
    assert "wrong keys, key version, diversification or protocol" in message
    assert "KDD 000074746E6E6E626262" in message  # from the trace's INITIALIZE UPDATE answer


def test_no_key_set_for_reported_version_names_both_versions() -> None:
    vector, transport = _first_exchange("scp03-kaoh-i70-aes128-getstatus")

    with pytest.raises(KeyVersionError) as caught:
        open_secure_channel(
            transport,
            _params(vector),
            _keys(vector, kvn=0x31),
            host_challenge=h(vector["host_challenge"]),
        )

    message = str(caught.value)
    assert "reports key version 30" in message
    assert "asked for 00 (any)" in message
    assert "has key set 31" in message
    assert len(transport.sent) == 1


def test_card_without_requested_key_version() -> None:
    transport = ScriptedTransport([(h("8050050008" + "11" * 8 + "00"), h("6A88"))])
    params = ChannelParameters(Scp.SCP02, 0x15, SecurityLevel.C_MAC, kvn=5)
    keys = inline(5, Scp.SCP02, static_keys(Scp.SCP02, TEST_KEY, TEST_KEY, TEST_KEY))

    with pytest.raises(KeyVersionError, match=r"no key set with version 05 .*6A88"):
        open_secure_channel(transport, params, keys, host_challenge=b"\x11" * 8)


@pytest.mark.parametrize("sw", ["6982", "6983", "6283"])
def test_a_locked_card_is_named_and_not_retried(sw: str) -> None:
    transport = ScriptedTransport([(h("8050000008" + "11" * 8 + "00"), h(sw))])
    params = ChannelParameters(Scp.SCP02, 0x15, SecurityLevel.C_MAC)
    keys = inline(1, Scp.SCP02, static_keys(Scp.SCP02, TEST_KEY, TEST_KEY, TEST_KEY))

    with pytest.raises(SecureChannelError, match=rf"answered {sw}.*locked.*not retrying"):
        open_secure_channel(transport, params, keys, host_challenge=b"\x11" * 8)
    assert len(transport.sent) == 1


def test_protocol_other_than_profile_is_refused() -> None:
    vector, transport = _first_exchange("scp03-kaoh-i70-aes128-getstatus")
    params = ChannelParameters(Scp.SCP02, 0x15, SecurityLevel.C_MAC)

    with pytest.raises(SecureChannelError, match="speaks SCP03"):
        open_secure_channel(
            transport, params, _keys(vector), host_challenge=h(vector["host_challenge"])
        )


def test_scp03_i_other_than_profile_is_refused() -> None:
    vector, transport = _first_exchange("scp03-kaoh-i70-aes128-getstatus")

    with pytest.raises(SecureChannelError, match="reports SCP03 i=70, the profile expects i=10"):
        open_secure_channel(
            transport,
            _params(vector, i=0x10),
            _keys(vector),
            host_challenge=h(vector["host_challenge"]),
        )


def test_a_level_the_protocol_lacks_is_not_asked_for() -> None:
    vector, transport = _first_exchange("scp03-kaoh-i10-aes192-getstatus")

    with pytest.raises(SecureChannelError, match="i=10 has no security level 33"):
        open_secure_channel(
            transport,
            _params(vector, level=SecurityLevel(0x33)),
            _keys(vector),
            host_challenge=h(vector["host_challenge"]),
        )
    assert len(transport.sent) == 1


@pytest.mark.parametrize(
    ("sw", "error", "message"),
    [
        ("6300", AuthenticationError, r"6300.*wrong MAC key.*not retrying"),
        ("6985", SecureChannelError, r"6985.*security level 01"),
    ],
)
def test_refused_external_authenticate_is_not_retried(
    sw: str, error: type[Exception], message: str
) -> None:
    vector = load("scp02-kaoh-i15-cmac-getstatus")
    ea = vector["external_authenticate"]
    _, transport = _first_exchange("scp02-kaoh-i15-cmac-getstatus", (h(ea["capdu"]), h(sw)))

    with pytest.raises(error, match=message) as caught:
        open_secure_channel(
            transport, _params(vector), _keys(vector), host_challenge=h(vector["host_challenge"])
        )
    assert type(caught.value) is error
    assert transport.done


def test_a_bad_r_mac_is_refused() -> None:
    vector = load("scp03-pysim-aes128-level11")
    ea, first = vector["external_authenticate"], vector["commands"][0]
    tampered = bytearray(h(first["rapdu"]))
    tampered[-3] ^= 0x01  # the last byte of the R-MAC
    _, transport = _first_exchange(
        "scp03-pysim-aes128-level11",
        (h(ea["capdu"]), h(ea["rapdu"])),
        (h(first["wrapped_capdu"]), bytes(tampered)),
    )
    channel = open_secure_channel(
        transport, _params(vector), _keys(vector), host_challenge=h(vector["host_challenge"])
    )

    with pytest.raises(SecureChannelError, match=r"R-MAC .* does not verify"):
        channel.send(CommandApdu.decode(h(first["plain_capdu"])))


def test_an_error_status_word_carries_no_r_mac() -> None:
    vector = load("scp03-pysim-aes128-level11")
    ea, first = vector["external_authenticate"], vector["commands"][0]
    _, transport = _first_exchange(
        "scp03-pysim-aes128-level11",
        (h(ea["capdu"]), h(ea["rapdu"])),
        (h(first["wrapped_capdu"]), h("6A80")),
    )
    channel = open_secure_channel(
        transport, _params(vector), _keys(vector), host_challenge=h(vector["host_challenge"])
    )

    assert channel.send(CommandApdu.decode(h(first["plain_capdu"]))) == (b"", 0x6A80)


def test_levels_by_protocol_and_option() -> None:
    # Amd D Table 5-1: R-MAC with i bit 20, R-ENC with bit 40; SCP01/02 here: 01 and 03.
    def levels(scp: Scp, i: int) -> list[int]:
        return sorted(int(level) for level in supported_levels(scp, i))

    assert levels(Scp.SCP03, 0x70) == [0x01, 0x03, 0x11, 0x13, 0x33]
    assert levels(Scp.SCP03, 0x10) == levels(Scp.SCP03, 0x00) == [0x01, 0x03]
    assert levels(Scp.SCP02, 0x55) == levels(Scp.SCP01, 0x15) == [0x01, 0x03]
    assert levels(Scp.SCP02, 0x1A) == []


def test_session_repr_shows_no_secret() -> None:
    vector = load("scp02-kaoh-i15-cmac-getstatus")
    ea = vector["external_authenticate"]
    _, transport = _first_exchange("scp02-kaoh-i15-cmac-getstatus", (h(ea["capdu"]), h("9000")))
    keys = _keys(vector)
    channel = open_secure_channel(
        transport, _params(vector), keys, host_challenge=h(vector["host_challenge"])
    )

    text = repr(channel) + repr(keys) + repr(keys.card_keys(1, bytes(10)))
    for secret in [*vector["derived"]["session_keys"].values(), vector["static_keys"]["enc"]]:
        assert secret.upper() not in text.upper()
    assert "8BAF47" in repr(keys)  # the KCV of the 40..4F test key (GPPro, GPC E.4.7)


def test_key_type_must_suit_the_protocol() -> None:
    vector, transport = _first_exchange("scp02-kaoh-i15-cmac-getstatus")
    aes = inline(1, Scp.SCP03, StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=True))

    with pytest.raises(SecureChannelError, match="AES keys, which SCP02 cannot use"):
        open_secure_channel(
            transport, _params(vector), aes, host_challenge=h(vector["host_challenge"])
        )
