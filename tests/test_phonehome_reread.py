"""ESC's bounded re-read of the issuer info, and the 10-character rule (esc-phone-home.md §2.2).

ESC.js ``DoCoolKeyGetIssuerUrl`` reads up to 3 times, 250 ms apart, while the read fails or
the value has fewer than 10 characters, and takes such a value for junk.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from provision.errors import TransportError
from provision.phonehome import (
    IssuerInfo,
    IssuerInfoState,
    classify_issuer_info,
    read_issuer_info,
)

URL = b"http://server.example.com:7888/cgi-bin/home/index.cgi"


def padded(value: bytes) -> bytes:
    return value.ljust(224, b"\x00")


def reads(*answers: bytes | Exception) -> tuple[Callable[[], bytes], list[int]]:
    """A read that gives ``answers`` in turn, and the list counting the calls."""
    calls: list[int] = []

    def read() -> bytes:
        calls.append(1)
        answer = answers[min(len(calls), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return read, calls


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_a_good_first_read_is_the_only_one() -> None:
    read, calls = reads(padded(URL))
    sleep = Sleeps()

    result = read_issuer_info(read, sleep=sleep)

    assert result.info == IssuerInfo(IssuerInfoState.VALID, URL.decode(), None)
    assert (result.attempts, len(calls), sleep.slept) == (1, 1, [])
    assert result.error is None


def test_an_empty_value_is_read_three_times_250_ms_apart() -> None:
    read, calls = reads(bytes(224))
    sleep = Sleeps()

    result = read_issuer_info(read, sleep=sleep)

    assert result.info.state is IssuerInfoState.EMPTY
    assert (result.attempts, len(calls)) == (3, 3)
    assert sleep.slept == [0.25, 0.25]


def test_a_value_that_settles_on_the_second_read() -> None:
    read, calls = reads(padded(b"http://se"), padded(URL))
    sleep = Sleeps()

    result = read_issuer_info(read, sleep=sleep)

    assert result.info.url == URL.decode()
    assert (result.attempts, len(calls), sleep.slept) == (2, 2, [0.25])


def test_a_failing_read_is_retried() -> None:
    read, calls = reads(TransportError("reader busy"), padded(URL))

    result = read_issuer_info(read, sleep=Sleeps())

    assert result.info.state is IssuerInfoState.VALID
    assert (result.attempts, len(calls), result.error) == (2, 2, None)


def test_reads_that_keep_failing_end_as_no_issuer_info_with_the_error() -> None:
    read, calls = reads(TransportError("card removed from reader 1"))

    result = read_issuer_info(read, sleep=Sleeps())

    assert len(calls) == 3
    assert result.info.state is IssuerInfoState.EMPTY
    assert result.raw is None
    assert result.error == "card removed from reader 1"


def test_the_bounds_are_parameters() -> None:
    read, calls = reads(bytes(224))
    sleep = Sleeps()

    read_issuer_info(read, attempts=5, interval=0.01, sleep=sleep)

    assert len(calls) == 5
    assert sleep.slept == [0.01] * 4


def test_at_least_one_read() -> None:
    with pytest.raises(ValueError, match="at least one read"):
        read_issuer_info(lambda: bytes(224), attempts=0)


@pytest.mark.parametrize("value", [b"http://a/", b"http://ab"])
def test_a_url_under_10_characters_is_junk_to_esc(value: bytes) -> None:
    info = classify_issuer_info(padded(value))

    assert info.state is IssuerInfoState.INVALID
    assert info.esc_ignores
    assert info.reason == f'"{value.decode()}" has 9 characters; ESC takes fewer than 10 for junk'


def test_ten_characters_are_enough() -> None:
    info = classify_issuer_info(padded(b"http://ab/"))

    assert info == IssuerInfo(IssuerInfoState.VALID, "http://ab/", None)


def test_other_invalid_values_are_not_ignored_by_esc() -> None:
    info = classify_issuer_info(padded(b"not a url at all"))

    assert info.state is IssuerInfoState.INVALID
    assert not info.esc_ignores
