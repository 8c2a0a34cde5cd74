"""Short APDU encoding (ISO/IEC 7816-4 §5.1) and the CoolKey issuer-info encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provision import coolkey
from provision.errors import ProtocolError
from provision.iso7816 import CommandApdu, split_response

bytes_ = st.integers(min_value=0, max_value=255)
apdus = st.builds(
    CommandApdu,
    cla=bytes_,
    ins=bytes_,
    p1=bytes_,
    p2=bytes_,
    data=st.binary(max_size=255),
    le=st.none() | st.integers(min_value=1, max_value=256),
)


@given(apdus)
def test_apdu_round_trip(apdu: CommandApdu) -> None:
    assert CommandApdu.decode(apdu.encode()) == apdu


@pytest.mark.parametrize(
    ("apdu", "wire"),
    [
        (
            CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("627601FF000000")),
            "00A4040007627601FF000000",
        ),
        (CommandApdu(0xB0, 0xF6, 0x00, 0x00, le=0xE0), "B0F60000E0"),
        (CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=0x2D), "80CA9F7F2D"),
        (CommandApdu(0x80, 0xF2, 0x20, 0x02), "80F22002"),
        (CommandApdu(0x80, 0xCA, 0x00, 0x66, le=256), "80CA006600"),
    ],
)
def test_apdu_bytes_from_the_reference(apdu: CommandApdu, wire: str) -> None:
    assert apdu.encode().hex().upper() == wire


@pytest.mark.parametrize(
    "raw", ["00A404", "00A4040005AABB", "00A40400020102030405", "00A4040000AABB"]
)
def test_malformed_apdus_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        CommandApdu.decode(bytes.fromhex(raw))


def test_response_split() -> None:
    assert split_response(bytes.fromhex("01029000")) == (b"\x01\x02", 0x9000)


urls = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=223
)


@given(urls)
def test_issuer_info_encoding(url: str) -> None:
    raw = coolkey.encode_issuer_info(url)
    assert len(raw) == 224
    assert raw.split(b"\x00", 1)[0].decode("ascii") == url
    assert raw[len(url) :] == bytes(224 - len(url))


@pytest.mark.parametrize("url", ["", "x" * 224, "http://é.example", "a\x00b"])
def test_issuer_info_refuses_what_does_not_fit(url: str) -> None:
    with pytest.raises(ValueError):
        coolkey.encode_issuer_info(url)


def test_cuid_from_cplc_uses_the_coolkey_offsets() -> None:
    # CPLC laid out so each CUID field holds its own marker bytes (esc-phone-home.md §1.4):
    # fabricator R[3..4], IC type R[5..6], serial R[15..18], batch R[19..20].
    response = bytearray(b"\x9f\x7f\x2a" + bytes(42))
    response[3:5] = b"\x40\x90"
    response[5:7] = b"\x61\x45"
    response[15:19] = b"\x24\x19\x2d\x2b"
    response[19:21] = b"\xc7\x62"
    cuid = coolkey.Cuid.from_cplc(bytes(response))
    assert cuid.token_id == "40906145c76224192d2b"


def test_cplc_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ProtocolError):
        coolkey.Cuid.from_cplc(b"\x9f\x7f\x2a" + bytes(41))
