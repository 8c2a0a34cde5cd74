"""Checks shared by the Phone Home modules: URLs, token ids, one-line quoting."""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import SplitResult, urlsplit

_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\.?")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_QUOTE_LIMIT = 120


def url_problem(text: str, *, fragment_ok: bool = True) -> str | None:
    """Why ``text`` is not one absolute http(s) URL, or None when it is one."""
    if not text:
        return "it is empty"
    if not _PRINTABLE_ASCII.fullmatch(text):
        return "it holds characters other than printable ASCII"
    if " " in text:
        return "it holds spaces"

    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        return f"it does not parse as a URL ({e})"

    if parts.scheme not in ("http", "https"):
        return "it is not an absolute http or https URL"
    if port == 0:
        return "its port is 0"
    if not fragment_ok and parts.fragment:
        return "it has a #fragment, so a ?cuid= appended to it would never reach the server"
    return _host_problem(parts)


def _host_problem(parts: SplitResult) -> str | None:
    host = parts.hostname or ""
    if ":" in host:
        # urlsplit only checks bracketed literals on some 3.11 releases.
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"[{host}] is not an IPv6 address"
        return None
    if not _HOST_NAME.fullmatch(host):
        return "it has no usable host name"
    return None


def check_token_id(token_id: str) -> None:
    """Refuse a token id ESC could never have built.

    ESC's key id is the CUID in lower-case hex; an upper-case id (as TPS logs it) would give
    prefs and requests that ESC never matches.
    """
    if not token_id or not _PRINTABLE_ASCII.fullmatch(token_id) or " " in token_id:
        raise ValueError(f"token id {quote(token_id)} is not a key id ESC could use")
    if token_id != token_id.lower():
        raise ValueError(f"token id {quote(token_id)} must be lower case, as ESC writes it")


def quote(text: str) -> str:
    """``text`` in double quotes on one line, shortened when long, for messages."""
    if len(text) > _QUOTE_LIMIT:
        text = text[:_QUOTE_LIMIT] + "…"
    return json.dumps(text, ensure_ascii=False)
