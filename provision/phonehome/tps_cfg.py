"""The TPS settings that make a TPS write the Phone Home URL itself (esc-phone-home.md §3.1).

TPS reads ``op.<op>.<token type>.issuerinfo.enable`` and ``.issuerinfo.value`` from its
``CS.cfg``, a file of ``name=value`` lines, and writes the value to each token it formats
(``op.format``) or enrolls. This module writes the two lines for ``op.format`` and reads such
a file back.
"""

from __future__ import annotations

import re

from .errors import PhoneHomeError

# TPSEngine CFG_ISSUER_INFO_ENABLE and CFG_ISSUER_INFO_VALUE.
ISSUER_INFO_ENABLE = "issuerinfo.enable"
ISSUER_INFO_VALUE = "issuerinfo.value"
FORMAT = "format"

_TOKEN_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


class TpsConfigError(PhoneHomeError):
    """A CS.cfg fragment has a line that is not ``name=value``."""


def issuer_info_key(token_type: str, setting: str, *, op: str = FORMAT) -> str:
    """``op.<op>.<token type>.<setting>``."""
    if not _TOKEN_TYPE.fullmatch(token_type):
        raise ValueError(f"{token_type!r} is not a TPS token type")
    return f"op.{op}.{token_type}.{setting}"


def render_issuer_info(token_type: str, url: str, *, op: str = FORMAT) -> str:
    """The two CS.cfg lines that turn the write on and give the URL to write."""
    if any(char in url for char in "\r\n") or not url.isascii():
        raise ValueError("an issuer info value is one line of ASCII")
    return (
        f"{issuer_info_key(token_type, ISSUER_INFO_ENABLE, op=op)}=true\n"
        f"{issuer_info_key(token_type, ISSUER_INFO_VALUE, op=op)}={url}\n"
    )


def read_cfg(text: str, *, source: str) -> dict[str, str]:
    """The ``name=value`` lines of ``text``; blank lines and ``#`` lines are skipped.

    The value is everything after the first ``=``, as written; a later line for the same
    name wins.
    """
    settings: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, equals, value = line.partition("=")
        if not equals or not name.strip():
            raise TpsConfigError(f"{source}:{number}: not a name=value line")
        settings[name.strip()] = value
    return settings


def issuer_info_setting(
    settings: dict[str, str], token_type: str, *, op: str = FORMAT
) -> str | None:
    """The issuer info TPS would write for ``token_type``: None unless enabled (TPS's
    default is false) and set."""
    enable = settings.get(issuer_info_key(token_type, ISSUER_INFO_ENABLE, op=op), "false")
    if enable.strip().lower() != "true":
        return None
    return settings.get(issuer_info_key(token_type, ISSUER_INFO_VALUE, op=op))
