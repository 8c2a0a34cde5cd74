"""Read and classify the issuer info of a CoolKey token.

The issuer info is a 224-byte field that holds the Phone Home URL itself, as US-ASCII padded
with NULs. ESC reads it with a C-string copy, so the value is whatever precedes the first NUL
(esc-phone-home.md §1.3). ESC.js ``DoCoolKeyGetIssuerUrl`` takes a value under 10 characters for
junk, and on macOS reads again, up to 3 times in all and 250 ms apart, while the read fails
or gives such a value (esc-phone-home.md §2.2). :func:`read_issuer_info` does that bounded
re-read on every platform.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto, unique

from ..coolkey import ISSUER_INFO_SIZE as ISSUER_INFO_SIZE
from ..errors import ProvisionError
from ._text import quote, url_problem

logger = logging.getLogger(__name__)

# ESC.js: "if(!url || url.length < 10) // Check for bogus junk".
ESC_MIN_LENGTH = 10
READ_ATTEMPTS = 3
READ_INTERVAL = 0.25


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
    why the value must never be fetched. ``esc_ignores`` marks an INVALID value that ESC
    itself would also leave aside (one under 10 characters) and go on to the global default;
    any other INVALID value ESC would try to fetch.
    """

    state: IssuerInfoState
    url: str | None
    reason: str | None
    esc_ignores: bool = False


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
    if len(text) < ESC_MIN_LENGTH:
        reason = f"{quote(text)} has {len(text)} characters; ESC takes fewer than 10 for junk"
        return IssuerInfo(IssuerInfoState.INVALID, None, reason, esc_ignores=True)
    return IssuerInfo(IssuerInfoState.VALID, text, None)


def _invalid(reason: str) -> IssuerInfo:
    return IssuerInfo(IssuerInfoState.INVALID, None, reason)


@dataclass(frozen=True)
class IssuerInfoRead:
    """The outcome of the bounded read: the last value read and how many reads it took.

    ``error`` is set when the last read failed; ``raw`` is then None and ``info`` is EMPTY,
    which is what ESC goes on with.
    """

    info: IssuerInfo
    raw: bytes | None
    attempts: int
    error: str | None = None


def read_issuer_info(
    read: Callable[[], bytes],
    *,
    attempts: int = READ_ATTEMPTS,
    interval: float = READ_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> IssuerInfoRead:
    """Read with ``read`` until it gives 10 characters or more, ``attempts`` reads at most.

    ``read`` returns the bytes of GET ISSUER INFO or raises ProvisionError; ``sleep`` waits
    ``interval`` seconds between two reads.
    """
    if attempts < 1:
        raise ValueError(f"attempts is {attempts}; at least one read is needed")
    result = IssuerInfoRead(EMPTY, None, 0)
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            sleep(interval)
        try:
            raw = read()
        except ProvisionError as exc:
            logger.debug("issuer info read %d of %d failed: %s", attempt, attempts, exc)
            result = IssuerInfoRead(EMPTY, None, attempt, str(exc))
            continue

        result = IssuerInfoRead(classify_issuer_info(raw), raw, attempt)
        if len(raw.partition(b"\x00")[0]) >= ESC_MIN_LENGTH:
            break
        logger.debug("issuer info read %d of %d: under 10 characters", attempt, attempts)
    return result
