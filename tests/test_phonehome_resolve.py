"""ESC's order for finding the Phone Home URL (esc-phone-home.md §2.2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from provision.phonehome import (
    IssuerInfo,
    IssuerInfoState,
    Resolution,
    UrlSource,
    resolve_phone_home_url,
)

TOKEN_URL = "http://server.example.com:7888/tps/phoneHome"
GLOBAL_URL = "http://server.example.com:7888/cgi-bin/home/index.cgi"
TYPED_URL = "http://typed.example.com/cgi-bin/home/index.cgi"
NO_URL = "no Phone Home URL on the token, in esc-prefs.js or from a prompt"

VALID = IssuerInfo(IssuerInfoState.VALID, TOKEN_URL, None)
EMPTY = IssuerInfo(IssuerInfoState.EMPTY, None, None)
INVALID = IssuerInfo(IssuerInfoState.INVALID, None, "every byte is 0xFF (erased or never written)")


def answering(answer: str | None) -> Callable[[], str | None]:
    def prompt() -> str | None:
        return answer

    return prompt


def never() -> str | None:
    raise AssertionError("the prompt must not be shown")


def test_token_first() -> None:
    resolution = resolve_phone_home_url(VALID, global_url=GLOBAL_URL, prompt=never)

    assert resolution == Resolution(TOKEN_URL, UrlSource.TOKEN, None)


def test_empty_token_falls_back_to_the_global_url() -> None:
    resolution = resolve_phone_home_url(EMPTY, global_url=GLOBAL_URL, prompt=never)

    assert resolution == Resolution(GLOBAL_URL, UrlSource.GLOBAL_PREFS, None)


def test_then_the_prompt() -> None:
    resolution = resolve_phone_home_url(EMPTY, global_url=None, prompt=answering(TYPED_URL))

    assert resolution == Resolution(TYPED_URL, UrlSource.PROMPT, None)


def test_prompt_answer_is_trimmed() -> None:
    resolution = resolve_phone_home_url(EMPTY, global_url="", prompt=answering(f"  {TYPED_URL}\n"))

    assert resolution.url == TYPED_URL


@pytest.mark.parametrize("answer", [None, "", "   "])
def test_prompt_without_an_answer(answer: str | None) -> None:
    resolution = resolve_phone_home_url(EMPTY, global_url=None, prompt=answering(answer))

    assert resolution == Resolution(None, None, NO_URL)


def test_nothing_anywhere_without_a_prompt() -> None:
    resolution = resolve_phone_home_url(EMPTY, global_url=None, prompt=None)

    assert resolution == Resolution(None, None, NO_URL)


def test_invalid_token_is_not_fetched_and_not_replaced() -> None:
    resolution = resolve_phone_home_url(INVALID, global_url=GLOBAL_URL, prompt=never)

    assert resolution.url is None
    assert resolution.source is UrlSource.TOKEN
    assert resolution.note == (
        "the token's issuer info is not fetched: every byte is 0xFF (erased or never written)"
    )


def test_ignore_token_uses_the_global_url() -> None:
    resolution = resolve_phone_home_url(
        VALID, global_url=GLOBAL_URL, prompt=never, ignore_token=True
    )

    assert resolution == Resolution(
        GLOBAL_URL,
        UrlSource.GLOBAL_PREFS,
        "the token's issuer info was ignored (esc.ignore.key.issuer.info)",
    )


def test_ignore_token_also_skips_an_invalid_value() -> None:
    resolution = resolve_phone_home_url(INVALID, global_url=None, prompt=None, ignore_token=True)

    assert resolution == Resolution(
        None,
        None,
        f"the token's issuer info was ignored (esc.ignore.key.issuer.info); {NO_URL}",
    )


def test_ignore_token_with_an_empty_token_says_nothing_about_it() -> None:
    resolution = resolve_phone_home_url(
        EMPTY, global_url=GLOBAL_URL, prompt=None, ignore_token=True
    )

    assert resolution == Resolution(GLOBAL_URL, UrlSource.GLOBAL_PREFS, None)


def test_unusable_global_url_is_not_fetched_and_no_prompt() -> None:
    resolution = resolve_phone_home_url(EMPTY, global_url="/cgi-bin/home/index.cgi", prompt=never)

    assert resolution.url is None
    assert resolution.source is UrlSource.GLOBAL_PREFS
    assert resolution.note is not None
    assert resolution.note.startswith(
        'esc.global.phone.home.url "/cgi-bin/home/index.cgi" is not fetched'
    )


def test_unusable_typed_url_is_not_fetched() -> None:
    resolution = resolve_phone_home_url(EMPTY, global_url=None, prompt=answering("tps.example"))

    assert resolution.url is None
    assert resolution.source is UrlSource.PROMPT
    assert resolution.note is not None and '"tps.example" is not fetched' in resolution.note
