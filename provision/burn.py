"""Burn one token: identify it, decide, write the Phone Home URL, verify.

A token is written only when its issuer info is blank, or when it holds another value and the
policy says to overwrite it (``force``, or ``replace-listed`` for a value the profile lists).
Every way out of :func:`burn_token` is a :class:`TokenResult` that says how far the token got,
so a failure never leaves an unknown state behind. A :class:`Journal` (the ledger) hears of
the attempt before the token is touched, after the write and at the end, so a crash leaves
a row that says how far it got.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from . import coolkey
from .errors import (
    AuthenticationError,
    CardRemovedError,
    KeyMismatchError,
    KeyVersionError,
    ProvisionError,
)
from .gp.session import CardKeys, ChannelParameters, open_secure_channel
from .keysource import open_card_keys
from .profile import CuidRange, Overwrite, Profile
from .transport import Transport
from .verify import Expected, Verification, VerifyConfig, verify_token

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    VERIFIED = "verified"
    ALREADY_BURNED = "already_burned"
    SKIPPED = "skipped"  # the ledger has it verified, or another station holds it now
    PLANNED = "planned"  # a dry run: what a real run would do
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
    keys: CardKeys  # the key provider: each card's keys from its kvn and KDD
    overwrite: Overwrite
    expected: Expected
    verify: VerifyConfig
    replaces: frozenset[bytes] = frozenset()  # encoded issuer info replace-listed may overwrite
    cuid_ranges: tuple[CuidRange, ...] = ()  # empty: every CUID
    dry_run: bool = False

    @classmethod
    def from_profile(
        cls,
        profile: Profile,
        *,
        verify: VerifyConfig,
        overwrite: Overwrite | None = None,
        cuid_ranges: tuple[CuidRange, ...] | None = None,
        dry_run: bool | None = None,
    ) -> BurnPlan:
        spec = profile.channel
        policy = profile.policy
        return cls(
            url=profile.phone_home_url,
            card_manager_aid=spec.card_manager_aid,
            channel=ChannelParameters(
                spec.protocol,
                spec.i,
                spec.security_level,
                spec.key_version,
                invoking_aid=coolkey.COOLKEY_AID,  # INITIALIZE UPDATE goes to the applet
            ),
            keys=open_card_keys(profile.key_sets),
            overwrite=overwrite or policy.overwrite,
            expected=Expected(
                profile.phone_home_url,
                profile.expected_service_info(),
            ),
            verify=verify,
            replaces=frozenset(coolkey.encode_issuer_info(value) for value in policy.replaces),
            cuid_ranges=policy.cuid_ranges if cuid_ranges is None else cuid_ranges,
            dry_run=policy.dry_run if dry_run is None else dry_run,
        )

    def allows(self, cuid: bytes) -> bool:
        return not self.cuid_ranges or any(cuid in allowed for allowed in self.cuid_ranges)


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
    attempt: int | None = None  # the ledger row
    resumed: str | None = None  # the state an interrupted attempt had left its row in
    journal_error: str | None = None  # the ledger failed: the batch must stop
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The token ended verified (burned now, before, or by an interrupted attempt)."""
        return self.outcome in (Outcome.VERIFIED, Outcome.ALREADY_BURNED)

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
            "ledger_attempt": self.attempt,
            "resumed": self.resumed,
            "started_at": self.started_at,
            "timings_ms": self.timings_ms,
        }


# -- the ledger's side of a burn ------------------------------------------------------------


class JournalError(ProvisionError):
    """The ledger could not record a step of an attempt; no further token may be burned."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What the ledger said about a token before the burn touched it."""

    attempt: int | None = None  # the row this burn updates; None when nothing is recorded
    skip: str | None = None  # why the token is left alone: verified, or held elsewhere now
    resumed: str | None = None  # "started" or "written": an interrupted attempt's row


class Journal(Protocol):
    """Where a burn records its attempt: ``provision.ledger`` implements it.

    ``claim`` comes after the token is identified and before anything else is sent; with
    ``record`` False (a dry run) it only looks. ``written`` follows a successful SET ISSUER
    INFO, ``finish`` every claimed attempt, whatever became of it.
    """

    def claim(self, token_id: str, reader: str, *, record: bool) -> Claim: ...

    def written(self, claim: Claim, result: TokenResult) -> None: ...

    def finish(self, claim: Claim, result: TokenResult) -> None: ...


class _NoJournal:
    def claim(self, token_id: str, reader: str, *, record: bool) -> Claim:
        return Claim()

    def written(self, claim: Claim, result: TokenResult) -> None:
        pass

    def finish(self, claim: Claim, result: TokenResult) -> None:
        pass


NO_JOURNAL: Journal = _NoJournal()

StepHook = Callable[[TokenResult], None]


class _Attempt:
    """One burn in progress: its result, clock, step reports and ledger claim."""

    def __init__(self, result: TokenResult, journal: Journal, on_step: StepHook | None) -> None:
        self.result = result
        self.journal = journal
        self.claim = Claim()
        self._on_step = on_step
        self._start = self._mark = time.perf_counter()

    def step(self, step: Step) -> None:
        self.result.step = step
        if self._on_step is not None:
            self._on_step(self.result)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.result.timings_ms[name] = round((now - self._mark) * 1000, 3)
        self._mark = now

    def close(self) -> None:
        """Record the end in the ledger, if the attempt was claimed there."""
        result = self.result
        if self.claim.attempt is not None:
            try:
                self.journal.finish(self.claim, result)
            except JournalError as exc:
                result.journal_error = result.journal_error or str(exc)
        result.timings_ms["total"] = round((time.perf_counter() - self._start) * 1000, 3)


def burn_token(
    transport: Transport,
    plan: BurnPlan,
    *,
    journal: Journal = NO_JOURNAL,
    on_step: StepHook | None = None,
) -> TokenResult:
    """Burn and verify the token in ``transport``; errors end in a failed result.

    ``on_step`` hears of every step as it begins (for progress displays).
    """
    result = TokenResult(reader=transport.reader)
    attempt = _Attempt(result, journal, on_step)
    try:
        _burn(transport, plan, attempt)
    except JournalError as exc:
        written = "written, but " if result.url_written else ""
        result.outcome, result.journal_error = Outcome.FAILED, str(exc)
        result.reason = f"{written}the ledger could not record it: {exc}"
    except (KeyMismatchError, KeyVersionError, AuthenticationError) as exc:
        # Wrong keys or key version: the first two stop before EXTERNAL AUTHENTICATE, the
        # third is a key the card cryptogram cannot prove. A run of them halts the batch.
        result.outcome, result.reason, result.key_mismatch = Outcome.FAILED, str(exc), True
    except CardRemovedError as exc:
        result.outcome, result.reason = Outcome.FAILED, f"{exc}: {removed_when(result)}"
    except ProvisionError as exc:
        result.outcome, result.reason = Outcome.FAILED, str(exc)
    except Exception as exc:
        result.outcome = Outcome.FAILED
        result.reason = f"internal error ({type(exc).__name__}: {exc})"
        raise
    finally:
        attempt.close()
    logger.info("token %s: %s (%s)", result.token_id, result.outcome.value, result.reason or "ok")
    return result


def _burn(transport: Transport, plan: BurnPlan, attempt: _Attempt) -> None:
    result = attempt.result
    cuid = coolkey.read_cuid(transport, plan.card_manager_aid)
    result.token_id = cuid.token_id
    attempt.lap("identify")
    attempt.step(Step.IDENTIFY)

    if not _claim(attempt, plan, transport.reader):
        return
    if not plan.allows(cuid.value):
        result.outcome = Outcome.REFUSED
        result.reason = f"CUID {cuid} is outside the allowed CUID ranges; left as it was"
        return

    attempt.step(Step.READ)
    coolkey.select(transport)
    current = coolkey.get_issuer_info(transport)
    attempt.lap("read")

    action = _decide(plan, current, result)
    if action is _Action.REFUSE:
        result.outcome = Outcome.REFUSED
        return
    if plan.dry_run:
        result.outcome = Outcome.PLANNED
        return
    if action is _Action.VERIFY:
        success = Outcome.VERIFIED if result.resumed else Outcome.ALREADY_BURNED
        _verify(transport, plan, attempt, success)
        return

    attempt.step(Step.AUTHENTICATE)
    channel = open_secure_channel(transport, plan.channel, plan.keys)
    attempt.lap("authenticate")

    attempt.step(Step.WRITE)
    coolkey.set_issuer_info(channel, plan.url)
    result.url_written = plan.url
    attempt.lap("write")
    attempt.journal.written(attempt.claim, result)

    _verify(transport, plan, attempt, Outcome.VERIFIED)


def _claim(attempt: _Attempt, plan: BurnPlan, reader: str) -> bool:
    """Ask the ledger about the token; False when it is to be left alone."""
    result = attempt.result
    assert result.token_id is not None
    claim = attempt.journal.claim(result.token_id, reader, record=not plan.dry_run)
    attempt.claim = claim
    result.attempt, result.resumed = claim.attempt, claim.resumed
    if claim.skip is not None:
        result.outcome, result.reason = Outcome.SKIPPED, claim.skip
        return False
    return True


class _Action(StrEnum):
    VERIFY = "verify"
    WRITE = "write"
    REFUSE = "refuse"


def _decide(plan: BurnPlan, current: bytes, result: TokenResult) -> _Action:
    """What the overwrite policy makes of the issuer info found; a dry run's plan in
    ``result.reason``, a refusal's reason there too."""
    wanted = coolkey.encode_issuer_info(plan.url)
    if current == wanted:
        result.reason = "holds the profile's Phone Home URL; a run would verify it"
        action = _Action.VERIFY
    elif not any(current):
        result.reason = "blank; a run would write the Phone Home URL"
        action = _Action.WRITE
    else:
        result.found = describe_issuer_info(current)
        action, result.reason = _overwrite(plan, current, result.found)

    if action is not _Action.REFUSE and not plan.dry_run:
        result.reason = None
    return action


def _overwrite(plan: BurnPlan, current: bytes, found: str) -> tuple[_Action, str]:
    if plan.overwrite is Overwrite.FORCE:
        return _Action.WRITE, f"holds {found}; a run would overwrite it (overwrite 'force')"
    if plan.overwrite is Overwrite.REPLACE_LISTED:
        if current in plan.replaces:
            return _Action.WRITE, f"holds {found} (in policy.replaces); a run would replace it"
        return _Action.REFUSE, (
            f"token holds other issuer info {found}, which policy.replaces does not list; "
            "left as it was (overwrite policy 'replace-listed')"
        )
    return _Action.REFUSE, (
        f"token holds other issuer info {found}; left as it was "
        "(overwrite policy 'never'; use --overwrite force to replace it)"
    )


def _verify(transport: Transport, plan: BurnPlan, attempt: _Attempt, success: Outcome) -> None:
    result = attempt.result
    assert result.token_id is not None
    attempt.step(Step.VERIFY)
    watched = _RemovalWatch(transport)
    check = verify_token(watched, result.token_id, plan.expected, plan.verify)
    result.verification = check
    if watched.removed is not None and not check.ok:
        raise watched.removed
    attempt.lap("verify")
    if check.ok:
        result.outcome = success
        attempt.step(Step.DONE)
    else:
        result.outcome = Outcome.FAILED
        written = "written, but " if result.url_written else ""
        result.reason = f"{written}verification failed at {check.summary()}"


# What a card pulled out during a step had been through; the step under way may or may not
# have reached the card, so "before" means it did not complete.
_REMOVED_WHEN = {
    Step.IDENTIFY: "removed before it was identified",
    Step.READ: "removed after reading the CUID, before reading the issuer info",
    Step.AUTHENTICATE: (
        "removed after reading the issuer info, before the secure channel was open"
    ),
    Step.WRITE: (
        "removed after opening the secure channel, before SET ISSUER INFO was confirmed "
        "(it may hold the new URL); verify it on the next insertion"
    ),
    Step.VERIFY: (
        "removed after SET ISSUER INFO, before verification; verify it on the next insertion"
    ),
}


def removed_when(result: TokenResult) -> str:
    """Which steps a token pulled out mid-burn had completed, for its result."""
    if result.step is Step.VERIFY and result.url_written is None:
        return "removed after reading the issuer info, before verification"
    return _REMOVED_WHEN.get(result.step, "removed")


class _RemovalWatch:
    """The transport, remembering a removal the client flow reports only as a finding."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self.removed: CardRemovedError | None = None
        self.reader, self.atr = inner.reader, inner.atr

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        try:
            return self._inner.transmit(apdu)
        except CardRemovedError as exc:
            self.removed = self.removed or exc
            raise

    def reset(self) -> None:
        try:
            self._inner.reset()
        except CardRemovedError as exc:
            self.removed = self.removed or exc
            raise
        self.atr = self._inner.atr

    def close(self) -> None:
        self._inner.close()


def describe_issuer_info(raw: bytes) -> str:
    """A short, printable rendering of foreign issuer info for messages and reports."""
    value = raw.split(b"\x00", 1)[0]
    if not value:
        return "(non-zero bytes after a leading NUL)"
    text = value.decode("ascii", "backslashreplace")
    printable = "".join(c if c.isprintable() else "?" for c in text)
    return repr(printable if len(printable) <= 80 else printable[:77] + "...")
