"""Decide which Phone Home URL ESC would use for a token (esc-phone-home.md §2.2).

ESC tries the token's issuer info, then ``esc.global.phone.home.url``, then asks the user.
A URL that is not one absolute http(s) URL is never fetched: the resolution stops there
with a note instead of trying the next source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto, unique

from ._text import url_problem
from .esc_prefs import GLOBAL_PHONE_HOME_URL
from .issuer_info import IssuerInfo, IssuerInfoState

NO_URL = "no Phone Home URL on the token, in esc-prefs.js or from a prompt"
IGNORED = "the token's issuer info was ignored (esc.ignore.key.issuer.info)"


@unique
class UrlSource(Enum):
    """Where a Phone Home URL came from."""

    TOKEN = auto()
    GLOBAL_PREFS = auto()
    PROMPT = auto()


@dataclass(frozen=True)
class Resolution:
    """The URL to fetch, if any; ``source`` is where it (or the refused value) came from."""

    url: str | None
    source: UrlSource | None
    note: str | None


def resolve_phone_home_url(
    token: IssuerInfo,
    *,
    global_url: str | None,
    prompt: Callable[[], str | None] | None,
    ignore_token: bool = False,
) -> Resolution:
    """Resolve as ESC's ``DoPhoneHome`` does.

    ``global_url`` is the value of ``esc.global.phone.home.url``; ``prompt`` asks the user
    and is given only in interactive use (ESC does not prompt in security-officer mode
    either). ``ignore_token`` is ESC's ``esc.ignore.key.issuer.info``.
    """
    ignored = ignore_token and token.state is not IssuerInfoState.EMPTY
    if not ignore_token:
        if token.state is IssuerInfoState.VALID:
            return Resolution(token.url, UrlSource.TOKEN, None)

        # ESC falls back only when the token's value is empty (§2.2): it would fetch a
        # non-empty one, however broken, so an INVALID value ends the resolution here.
        if token.state is IssuerInfoState.INVALID:
            note = f"the token's issuer info is not fetched: {token.reason}"
            return Resolution(None, UrlSource.TOKEN, note)

    if global_url and global_url.strip():
        return _checked(global_url.strip(), UrlSource.GLOBAL_PREFS, GLOBAL_PHONE_HOME_URL, ignored)

    answer = prompt() if prompt is not None else None
    if answer and answer.strip():
        return _checked(answer.strip(), UrlSource.PROMPT, "the URL typed at the prompt", ignored)
    return Resolution(None, None, _joined(IGNORED if ignored else None, NO_URL))


def _checked(url: str, source: UrlSource, what: str, ignored: bool) -> Resolution:
    note = IGNORED if ignored else None
    problem = url_problem(url, fragment_ok=False)
    if problem is not None:
        refused = f'{what} "{url}" is not fetched: {problem}'
        return Resolution(None, source, _joined(note, refused))
    return Resolution(url, source, note)


def _joined(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None
