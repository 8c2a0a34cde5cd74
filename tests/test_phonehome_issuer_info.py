"""Classifying a token's 224-byte issuer info the way ESC reads it (esc-phone-home.md §1.3)."""

from __future__ import annotations

import pytest

from provision.phonehome import IssuerInfo, IssuerInfoState, classify_issuer_info

TPS_DEFAULT = b"http://[pki_hostname]:[pki_http_port]/tps/phoneHome"


def padded(value: bytes) -> bytes:
    """``value`` NUL-padded to 224 bytes, as TPS writes it."""
    return value + bytes(224 - len(value))


def test_all_zero_is_empty() -> None:
    assert classify_issuer_info(bytes(224)) == IssuerInfo(IssuerInfoState.EMPTY, None, None)


def test_no_bytes_is_empty() -> None:
    assert classify_issuer_info(b"").state is IssuerInfoState.EMPTY


def test_leading_nul_hides_what_follows() -> None:
    # ESC's C-string copy stops at the first NUL, so this reads as no issuer info at all.
    info = classify_issuer_info(padded(b"\x00http://server.example.com"))

    assert info.state is IssuerInfoState.EMPTY


def test_all_ff_is_invalid() -> None:
    info = classify_issuer_info(b"\xff" * 224)

    assert info.state is IssuerInfoState.INVALID
    assert info.url is None
    assert info.reason is not None and "0xFF" in info.reason


@pytest.mark.parametrize(
    "raw",
    [
        padded(b"\x01\x02\x03\x80\x90"),
        padded(b"http://server.example.com/\x07"),
        padded("http://exämple.com/".encode()),
        padded(b"http://server.example.com/\xff"),
    ],
)
def test_binary_is_invalid(raw: bytes) -> None:
    info = classify_issuer_info(raw)

    assert info.state is IssuerInfoState.INVALID
    assert info.reason is not None and "printable ASCII" in info.reason


@pytest.mark.parametrize(
    "value",
    [
        b"/tps/phoneHome",
        b"server.example.com:7888/cgi-bin/home/index.cgi",
        b"ftp://server.example.com/index.cgi",
        b"http://",
        b"http://server.example.com:7888/nk_service ## TPS server URL",
        b"http://server.example.com:99999/",
        b"http://server.example.com/index.cgi#top",
        TPS_DEFAULT,
    ],
)
def test_not_an_absolute_http_url_is_invalid(value: bytes) -> None:
    info = classify_issuer_info(padded(value))

    assert info.state is IssuerInfoState.INVALID
    assert info.url is None
    assert info.reason is not None and value.decode() in info.reason


@pytest.mark.parametrize(
    "value",
    [
        "http://server.example.com",
        "http://server.example.com:7888/cgi-bin/home/index.cgi",
        "https://pki.example.com:8443/tps/phoneHome",
        "http://192.0.2.7:7888/tps/phoneHome",
        "http://[2001:db8::7]:7888/tps/phoneHome",
        "http://tps/phoneHome",
    ],
)
def test_valid_with_trailing_nuls(value: str) -> None:
    info = classify_issuer_info(padded(value.encode("ascii")))

    assert info == IssuerInfo(IssuerInfoState.VALID, value, None)


def test_bytes_after_the_first_nul_are_ignored() -> None:
    raw = padded(b"http://server.example.com\x00stale tail from an older value")

    assert classify_issuer_info(raw).url == "http://server.example.com"


def test_223_characters_fit() -> None:
    url = "http://server.example.com/" + "a" * 197

    info = classify_issuer_info(url.encode("ascii") + b"\x00")

    assert info.state is IssuerInfoState.VALID
    assert info.url is not None and len(info.url) == 223


def test_224_characters_leave_no_terminator() -> None:
    raw = b"http://server.example.com/" + b"a" * 198

    info = classify_issuer_info(raw)

    assert len(raw) == 224
    assert info.state is IssuerInfoState.INVALID
    assert info.reason is not None and "no NUL" in info.reason


def test_short_read_without_nul_is_taken_whole() -> None:
    assert classify_issuer_info(b"http://server.example.com").url == "http://server.example.com"
