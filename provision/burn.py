"""Burn one token: identify it, decide, write the Phone Home URL, verify.

A token is written only when its issuer info is blank, or when it holds another value and the
run says to overwrite. Every way out of :func:`burn_token` is a :class:`TokenResult` that says
how far the token got, so a failure never leaves an unknown state behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from . import coolkey
from .errors import KeyMismatchError, ProvisionError
from .gp.keys import KeySet
from .gp.session import ChannelParameters, open_secure_channel
from .phonehome.serviceinfo import ServiceInfo
from .profile import Overwrite, Profile
from .transport import Transport
from .verify import Expected, Verification, VerifyConfig, verify_token

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    VERIFIED = "verified"
    ALREADY_BURNED = "already_burned"
    REFUSED = "refused"
    FAILED = "failed"


class Step(StrEnum):
    """The steps of a burn, in order. A result names the last one reached."""

    IDENTIFY = "identify"
    READ = "read issuer info"
    AUTHENTICATE = "open secure channel"
    WRITE = "write issuer info"
    VERIFY = "verify"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class BurnPlan:
    """Everything a burn needs, resolved once per run from the profile and the options."""

    url: str
    card_manager_aid: bytes
    channel: ChannelParameters
    key_sets: Mapping[int, KeySet]
    overwrite: Overwrite
    expected: Expected
    verify: VerifyConfig

    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        *,
        verify: VerifyConfig,
        overwrite: Overwrite | None = None,
    ) -> BurnPlan:
        spec = profile.channel
        return cls(
            url=profile.phone_home_url,
            card_manager_aid=spec.card_manager_aid,
            channel=ChannelParameters(
                spec.protocol, spec.i, spec.security_level, spec.key_version
            ),
            key_sets={key_set.kvn: key_set for key_set in profile.key_sets},
            overwrite=overwrite or profile.policy.overwrite,
            expected=Expected(
                profile.phone_home_url,
                ServiceInfo(profile.issuer_name, profile.service_info),
            ),
            verify=verify,
        )


@dataclass(slots=True)
class TokenResult:
    """What happened to one token. Never holds key material."""

    reader: str
    outcome: Outcome = Outcome.FAILED
    step: Step = Step.IDENTIFY
    token_id: str | None = None
    reason: str | None = None
    url_written: str | None = None
    found: str | None = None
    key_mismatch: bool = False
    verification: Verification | None = None
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    timings_ms: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The JSON-able report record."""
        check = self.verification
        return {
            "token_id": self.token_id,
            "reader": self.reader,
            "result": self.outcome.value,
            "step": self.step.value,
            "reason": self.reason,
            "url_written": self.url_written,
            "found": self.found,
            "phone_home_source": check.source.name.lower() if check and check.source else None,
            "request_url": check.request_url if check else None,
            "mismatches": list(check.mismatches) if check else [],
            "prefs": dict(check.prefs) if check else {},
            "started_at": self.started_at,
            "timings_ms": self.timings_ms,
        }


class _Clock:
    def __init__(self, result: TokenResult) -> None:
        self._result = result
        self._start = self._mark = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self._result.timings_ms[name] = round((now - self._mark) * 1000, 3)
        self._mark = now

    def total(self) -> None:
        self._result.timings_ms["total"] = round((time.perf_counter() - self._start) * 1000, 3)


def burn_token(transport: Transport, plan: BurnPlan) -> TokenResult:
    """Burn and verify the token in ``transport``; errors end in a failed result."""
    result = TokenResult(reader=transport.reader)
    clock = _Clock(result)
    try:
        _burn(transport, plan, result, clock)
    except KeyMismatchError as exc:
        result.outcome, result.reason, result.key_mismatch = Outcome.FAILED, str(exc), True
    except ProvisionError as exc:
        result.outcome, result.reason = Outcome.FAILED, str(exc)
    clock.total()
    logger.info("token %s: %s (%s)", result.token_id, result.outcome.value, result.reason or "ok")
    return result


def _burn(transport: Transport, plan: BurnPlan, result: TokenResult, clock: _Clock) -> None:
    cuid = coolkey.read_cuid(transport, plan.card_manager_aid)
    result.token_id = cuid.token_id
    clock.lap("identify")

    result.step = Step.READ
    coolkey.select(transport)
    current = coolkey.get_issuer_info(transport)
    clock.lap("read")

    wanted = coolkey.encode_issuer_info(plan.url)
    if current == wanted:
        _verify(transport, plan, result, clock, Outcome.ALREADY_BURNED)
        return
    if any(current) and plan.overwrite is not Overwrite.FORCE:
        result.found = describe_issuer_info(current)
        result.outcome = Outcome.REFUSED
        result.reason = (
            f"token holds other issuer info {result.found}; left as it was "
            "(overwrite policy 'never'; use --overwrite force to replace it)"
        )
        return

    result.step = Step.AUTHENTICATE
    channel = open_secure_channel(transport, plan.channel, plan.key_sets.get)
    clock.lap("authenticate")

    result.step = Step.WRITE
    coolkey.set_issuer_info(channel, plan.url)
    result.url_written = plan.url
    clock.lap("write")

    _verify(transport, plan, result, clock, Outcome.VERIFIED)


def _verify(
    transport: Transport, plan: BurnPlan, result: TokenResult, clock: _Clock, success: Outcome
) -> None:
    assert result.token_id is not None
    result.step = Step.VERIFY
    check = verify_token(transport, result.token_id, plan.expected, plan.verify)
    result.verification = check
    clock.lap("verify")
    if check.ok:
        result.step, result.outcome = Step.DONE, success
    else:
        result.outcome = Outcome.FAILED
        written = "written, but " if result.url_written else ""
        result.reason = f"{written}verification failed at {check.summary()}"


def describe_issuer_info(raw: bytes) -> str:
    """A short, printable rendering of foreign issuer info for messages and reports."""
    value = raw.split(b"\x00", 1)[0]
    if not value:
        return "(non-zero bytes after a leading NUL)"
    text = value.decode("ascii", "backslashreplace")
    printable = "".join(c if c.isprintable() else "?" for c in text)
    return repr(printable if len(printable) <= 80 else printable[:77] + "...")
