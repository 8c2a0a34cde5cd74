"""Classify the issuer info read from a CoolKey token.

The issuer info is a 224-byte field that holds the Phone Home URL itself, as US-ASCII padded
with NULs. ESC reads it with a C-string copy, so the value is whatever precedes the first NUL
(reference §1.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto, unique

from ._text import quote, url_problem

ISSUER_INFO_SIZE = 0xE0


@unique
class IssuerInfoState(Enum):
    """What a token's issuer info means to ESC."""

    EMPTY = auto()
    VALID = auto()
    INVALID = auto()


@dataclass(frozen=True)
class IssuerInfo:
    """A classified issuer info value.

    ``url`` is set only when the state is VALID; ``reason`` only when it is INVALID, and says
    why the value must never be fetched.
    """

    state: IssuerInfoState
    url: str | None
    reason: str | None


EMPTY = IssuerInfo(IssuerInfoState.EMPTY, None, None)


def classify_issuer_info(raw: bytes) -> IssuerInfo:
    """Classify the bytes of GET ISSUER INFO (normally all 224 of them)."""
    if raw and raw.count(0xFF) == len(raw):
        return _invalid("every byte is 0xFF (erased or never written)")

    value, nul, _ = raw.partition(b"\x00")
    if not value:
        return EMPTY

    # With no NUL in a full field, ESC's copy would run past the 224 bytes read.
    if not nul and len(raw) >= ISSUER_INFO_SIZE:
        return _invalid(f"no NUL ends the value within {ISSUER_INFO_SIZE} bytes")

    if any(b < 0x20 or b > 0x7E for b in value):
        return _invalid(f"it holds bytes that are not printable ASCII: {value[:32].hex(' ')}")

    text = value.decode("ascii")
    problem = url_problem(text, fragment_ok=False)
    if problem is not None:
        return _invalid(f"{quote(text)} is not a Phone Home URL: {problem}")
    return IssuerInfo(IssuerInfoState.VALID, text, None)


def _invalid(reason: str) -> IssuerInfo:
    return IssuerInfo(IssuerInfoState.INVALID, None, reason)
