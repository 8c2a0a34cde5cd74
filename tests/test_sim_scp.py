"""Card-side channel objects: properties, failure handling, and what they show."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provision.gp import crypto
from provision.gp.keys import StaticKeys
from provision.iso7816 import CommandApdu
from simulator.card import VirtualToken
from simulator.scp import Scp02CardChannel, Scp03CardChannel, SecureMessagingError

TEST_KEY = bytes(range(0x40, 0x50))


class Scp03Wrapper:
    """A tiny SCP03 level 03 host, from Amendment D §6.2 (independent of both real ones)."""

    def __init__(self, key: bytes, host: bytes, card: bytes) -> None:
        bits = 8 * len(key)
        self.s_enc = crypto.scp03_kdf(key, 0x04, host + card, bits)
        self.s_mac = crypto.scp03_kdf(key, 0x06, host + card, bits)
        self.host_cryptogram = crypto.scp03_kdf(self.s_mac, 0x01, host + card, 64)
        self.chain, self.counter = bytes(16), 0

    def mac(self, header: bytes, data: bytes) -> bytes:
        modified = header + bytes((len(data) + 8,)) + data
        self.chain = crypto.aes_cmac(self.s_mac, self.chain + modified)
        return modified + self.chain[:8]

    def wrap(self, ins: int, data: bytes) -> bytes:
        self.counter += 1
        if data:
            icv = crypto.aes_ecb_encrypt(self.s_enc, self.counter.to_bytes(16, "big"))
            data = crypto.aes_cbc_encrypt(self.s_enc, crypto.pad80(data, 16), icv)
        return self.mac(bytes((0x84, ins, 0, 0)), data)


@settings(max_examples=40, deadline=None)
@given(
    key=st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    host=st.binary(min_size=8, max_size=8),
    card=st.binary(min_size=8, max_size=8),
    commands=st.lists(
        st.tuples(st.integers(0, 255), st.binary(max_size=239)), min_size=1, max_size=4
    ),
)
def test_scp03_card_unwraps_what_a_host_wraps(
    key: bytes, host: bytes, card: bytes, commands: list[tuple[int, bytes]]
) -> None:
    keys = StaticKeys.from_bytes(key, key, key, aes=True)
    channel = Scp03CardChannel(keys, host, card, sequence_counter=1, i=0x70)
    wrapper = Scp03Wrapper(key, host, card)
    ea = wrapper.mac(b"\x84\x82\x03\x00", wrapper.host_cryptogram)
    assert channel.authenticate(CommandApdu.decode(ea))

    for ins, data in commands:
        plain = channel.unwrap(CommandApdu.decode(wrapper.wrap(ins, data)))
        assert (plain.cla, plain.ins, plain.data) == (0x80, ins, data)


@given(st.binary(max_size=300))
def test_process_never_raises(apdu: bytes) -> None:
    response = VirtualToken.blank(bytes(10)).process(apdu)

    assert len(response) >= 2


def test_repr_shows_no_secret() -> None:
    keys = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=False)
    channel = Scp02CardChannel(keys, bytes(8), bytes(6), sequence_counter=0x069F)
    secrets = [TEST_KEY, channel._s_enc, channel._s_mac, channel.card_cryptogram()]

    text = repr(channel).lower()

    assert "069f" in text and "level=none" in text
    assert not any(secret.hex() in text for secret in secrets)


def _authenticated_scp03() -> tuple[Scp03CardChannel, Scp03Wrapper]:
    keys = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=True)
    host, card = bytes(8), bytes(range(8))
    channel = Scp03CardChannel(keys, host, card, sequence_counter=1, i=0x00)
    wrapper = Scp03Wrapper(TEST_KEY, host, card)
    ea = wrapper.mac(b"\x84\x82\x03\x00", wrapper.host_cryptogram)
    assert channel.authenticate(CommandApdu.decode(ea))
    return channel, wrapper


def test_unwrap_before_authentication_is_a_security_error() -> None:
    keys = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=False)
    channel = Scp02CardChannel(keys, bytes(8), bytes(6), sequence_counter=0)

    with pytest.raises(SecureMessagingError) as caught:
        channel.unwrap(CommandApdu(0x84, 0xF4, 0, 0, bytes(16)))

    assert caught.value.sw == 0x6982


def test_bad_padding_under_a_good_mac_is_a_security_error() -> None:
    channel, wrapper = _authenticated_scp03()
    wrapper.counter += 1
    icv = crypto.aes_ecb_encrypt(wrapper.s_enc, wrapper.counter.to_bytes(16, "big"))
    no_padding = crypto.aes_cbc_encrypt(wrapper.s_enc, bytes(16), icv)

    with pytest.raises(SecureMessagingError) as caught:
        channel.unwrap(CommandApdu.decode(wrapper.mac(b"\x84\xf4\x00\x00", no_padding)))

    assert caught.value.sw == 0x6982


def test_tampered_cipher_text_fails_the_mac() -> None:
    channel, wrapper = _authenticated_scp03()
    good = wrapper.wrap(0xF4, b"data")
    tampered = good[:-9] + bytes((good[-9] ^ 1,)) + good[-8:]

    with pytest.raises(SecureMessagingError, match="C-MAC"):
        channel.unwrap(CommandApdu.decode(tampered))
