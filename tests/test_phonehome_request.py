"""The Phone Home request URL: exactly one ``cuid`` (esc-phone-home.md §2.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provision.phonehome import request_url, strip_cuid

CUID = "40906145c76224192d2b"
BASE = "http://server.example.com:7888/cgi-bin/home/index.cgi"


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (BASE, f"{BASE}?cuid={CUID}"),
        # The guide writes the Phone Home URL with a trailing "?".
        (f"{BASE}?", f"{BASE}?cuid={CUID}"),
        (f"{BASE}?site=east", f"{BASE}?site=east&cuid={CUID}"),
        (f"{BASE}?b=2&a=1&a=0", f"{BASE}?b=2&a=1&a=0&cuid={CUID}"),
        (f"{BASE}?q=a%20b+c&flag", f"{BASE}?q=a%20b+c&flag&cuid={CUID}"),
        (f"{BASE}?cuid=0000", f"{BASE}?cuid={CUID}"),
        (f"{BASE}?cuid=1111&site=east&cuid=2222", f"{BASE}?site=east&cuid={CUID}"),
        (f"{BASE}?cu%69d=1111", f"{BASE}?cuid={CUID}"),
        (f"{BASE}#top", f"{BASE}?cuid={CUID}"),
        ("http://server.example.com", f"http://server.example.com?cuid={CUID}"),
        ("http://[::1]:8080/tps/phoneHome", f"http://[::1]:8080/tps/phoneHome?cuid={CUID}"),
    ],
)
def test_request_url(base: str, expected: str) -> None:
    assert request_url(base, CUID) == expected


def test_the_two_cuids_esc_would_send_become_one() -> None:
    # ESC's unconditional join of a base that already has a query.
    esc_join = f"{BASE}?cuid=1111?cuid={CUID}"

    assert request_url(f"{BASE}?cuid=1111", CUID).count("cuid=") == 1
    assert esc_join.count("cuid=") == 2


@pytest.mark.parametrize("base", ["", "/cgi-bin/home/index.cgi", "ftp://server.example.com/"])
def test_request_url_refuses_a_base_that_is_not_a_url(base: str) -> None:
    with pytest.raises(ValueError, match="unusable"):
        request_url(base, CUID)


@pytest.mark.parametrize("token_id", ["", "40906145C76224192D2B", "4090 6145", "40906145\n"])
def test_request_url_refuses_a_token_id_esc_could_not_have(token_id: str) -> None:
    with pytest.raises(ValueError, match="token id"):
        request_url(BASE, token_id)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{BASE}?cuid={CUID}", BASE),
        (f"{BASE}?site=east&cuid={CUID}&lang=fr", f"{BASE}?site=east&lang=fr"),
        (f"{BASE}?cuid=1&cuid=2", BASE),
        (BASE, BASE),
        (f"{BASE}?site=east#top", f"{BASE}?site=east#top"),
    ],
)
def test_strip_cuid(url: str, expected: str) -> None:
    assert strip_cuid(url) == expected


_param = st.from_regex(r"[a-z]{1,5}(=[a-z0-9%]{0,5})?", fullmatch=True)


@given(params=st.lists(_param | st.just("cuid=9"), max_size=6))
def test_one_cuid_and_the_rest_kept_in_order(params: list[str]) -> None:
    base = f"{BASE}?{'&'.join(params)}" if params else BASE

    url = request_url(base, CUID)

    others = [p for p in params if not p.startswith("cuid=") and p != "cuid"]
    assert url.split("?", 1)[1].split("&") == [*others, f"cuid={CUID}"]
    assert strip_cuid(url) == (f"{BASE}?{'&'.join(others)}" if others else BASE)
