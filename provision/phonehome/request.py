"""The Phone Home request URL: the base URL with ``cuid=<token id>``.

ESC appends ``?cuid=`` and the id to the base unconditionally, so a base that already has a
query would get a second ``?`` (esc-phone-home.md §2.3). Here the parameter is merged into the
query instead: exactly one ``cuid``, the other parameters kept as written and in order.
"""

from __future__ import annotations

from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from ._text import check_token_id, url_problem

CUID_PARAM = "cuid"


def request_url(base: str, token_id: str) -> str:
    """The URL ESC fetches for the token ``token_id`` from the Phone Home URL ``base``.

    Any ``cuid`` parameters already in ``base`` are replaced; a fragment is dropped, since it
    is never sent to the server. Raises ValueError for a base that is not an absolute http(s)
    URL or a token id ESC could not have built.
    """
    problem = url_problem(base)
    if problem is not None:
        raise ValueError(f"Phone Home URL {base!r} is unusable: {problem}")
    check_token_id(token_id)

    parts = urlsplit(base)
    params = [*_other_params(parts.query), f"{CUID_PARAM}={quote(token_id, safe='')}"]
    return urlunsplit(parts._replace(query="&".join(params), fragment=""))


def strip_cuid(url: str) -> str:
    """``url`` without its ``cuid`` parameters (and without a ``?`` left empty)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="&".join(_other_params(parts.query))))


def _other_params(query: str) -> list[str]:
    """The query's parameters other than ``cuid``, as written; empty ones are dropped."""
    return [p for p in query.split("&") if p and _param_name(p) != CUID_PARAM]


def _param_name(param: str) -> str:
    return unquote_plus(param.partition("=")[0])
