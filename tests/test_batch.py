"""Batches over readers: once over the tokens present, the count, the halting rules, and the
ledger failing under a batch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.batch import Activity, Batch, Limits, run_batch
from provision.burn import Claim, JournalError, Outcome, TokenResult
from provision.ledger import RunContext, open_ledger
from provision.phonehome.server import PhoneHomeServer
from provision.profile import Profile
from provision.simulated import SimulatedReader
from provision.transport import InProcessTransport, Transport
from simulator.card import VirtualToken
from tests.linekit import (
    SET_ISSUER_INFO,
    URL,
    SlowCard,
    blank,
    example_profile,
    issuer_text,
    phone_home,
    plan_for,
    write_directly,
)


@pytest.fixture(scope="module")
def profile() -> Profile:
    return example_profile()


@pytest.fixture(scope="module")
def server() -> Iterator[PhoneHomeServer]:
    with phone_home() as running:
        yield running


class Seen:
    """An observer that keeps everything it hears."""

    def __init__(self) -> None:
        self.statuses: list[tuple[str, str | None, str]] = []
        self.results: list[TokenResult] = []
        self._lock = threading.Lock()

    def status(self, reader: str, token_id: str | None, activity: str) -> None:
        with self._lock:
            self.statuses.append((reader, token_id, activity))

    def result(self, result: TokenResult) -> None:
        with self._lock:
            self.results.append(result)


def _readers(*tokens: VirtualToken | None) -> list[SimulatedReader]:
    readers = []
    for n, token in enumerate(tokens):
        reader = SimulatedReader(f"reader {n}")
        if token is not None:
            reader.insert(token)
        readers.append(reader)
    return readers


def test_once_burns_the_tokens_present_and_passes_empty_readers(
    profile: Profile, server: PhoneHomeServer
) -> None:
    tokens = [blank(), blank(), blank()]
    seen = Seen()
    batch = Batch(plan_for(profile, server), Limits(2), observer=seen)

    summary = batch.run(_readers(tokens[0], None, tokens[1], tokens[2]), watch=False)

    assert (summary.verified, summary.total, summary.ok) == (3, 3, True)
    assert {name: c.verified for name, c in summary.readers.items()} == {
        "reader 0": 1,
        "reader 2": 1,
        "reader 3": 1,
    }
    assert all(issuer_text(token) == URL.encode() for token in tokens)
    assert ("reader 1", None, Activity.EMPTY) in seen.statuses
    steps = [activity for reader, _, activity in seen.statuses if reader == "reader 0"]
    assert steps.index("write issuer info") < steps.index("verify") < steps.index("done")


def test_once_with_a_ledger_skips_what_an_earlier_run_verified(
    tmp_path: Path, profile: Profile, server: PhoneHomeServer
) -> None:
    tokens = [blank(), blank()]
    context = RunContext(profile.name, profile.content_hash, URL, "line-1", "op", "v")
    summaries = []
    for _ in range(2):
        with open_ledger(str(tmp_path / "ledger.db")) as ledger:
            batch = Batch(
                plan_for(profile, server), Limits(2), journals=lambda: ledger.journal(context)
            )
            summaries.append(batch.run(_readers(*tokens), watch=False))

    assert (summaries[0].verified, summaries[1].skipped, summaries[1].verified) == (2, 2, 0)
    assert all(token.commands_seen[SET_ISSUER_INFO] == 1 for token in tokens)


def _down(profile: Profile) -> object:
    with phone_home() as gone:
        pass  # closed: every verification fails to fetch
    return plan_for(profile, gone)


def test_the_batch_halts_after_consecutive_failures(profile: Profile) -> None:
    tokens = [blank() for _ in range(4)]
    seen: list[Outcome] = []

    summary = run_batch(
        (InProcessTransport(t) for t in tokens),
        _down(profile),  # type: ignore[arg-type]
        halt_after_key_mismatches=2,
        halt_after_failures=2,
        on_result=lambda r: seen.append(r.outcome),
    )

    assert seen == [Outcome.FAILED, Outcome.FAILED]
    assert summary.halted and "2 consecutive failures" in summary.halted
    assert "fetch" in summary.halted  # the last failure's reason is named
    assert tokens[2].commands_seen.total() == 0


def _foreign() -> VirtualToken:
    token = blank()
    write_directly(token, b"http://old.example.org/phoneHome")
    return token


@pytest.mark.parametrize(
    ("middle", "halts"),
    [("refused", True), ("verified", False)],
)
def test_refused_tokens_neither_count_nor_reset_the_failure_run(
    profile: Profile, server: PhoneHomeServer, middle: str, halts: bool
) -> None:
    plan = plan_for(profile, server)
    wrong = bytes(range(0x50, 0x60))
    # Wrong keys fail without a key-mismatch halt here: the mismatch limit is set high.
    tokens = [blank(keys=wrong), _foreign() if middle == "refused" else blank(), blank(keys=wrong)]

    summary = run_batch(
        (InProcessTransport(t) for t in tokens),
        plan,
        halt_after_key_mismatches=10,
        halt_after_failures=2,
    )

    assert bool(summary.halted) is halts
    assert summary.failed == 2


class Feeder(Seen):
    """An endless tray: a fresh token whenever a reader waits, removed once it has a result."""

    def __init__(self, readers: list[SimulatedReader], delay: float) -> None:
        super().__init__()
        self.readers = {reader.name: reader for reader in readers}
        self.delay = delay
        self.made: list[VirtualToken] = []

    def status(self, reader: str, token_id: str | None, activity: str) -> None:
        super().status(reader, token_id, activity)
        slot = self.readers[reader]
        if activity == Activity.WAITING and slot.token is None:
            token = blank()
            with self._lock:
                self.made.append(token)
            slot.insert(SlowCard(token, self.delay))  # type: ignore[arg-type]

    def result(self, result: TokenResult) -> None:
        super().result(result)
        self.readers[result.reader].remove()


def test_count_stops_after_that_many_verified_and_burns_no_more(
    profile: Profile, server: PhoneHomeServer
) -> None:
    readers = _readers(None, None, None, None)
    feeder = Feeder(readers, delay=0.003)
    batch = Batch(plan_for(profile, server), Limits(2, count=5), observer=feeder, poll=0.02)

    summary = batch.run(readers, watch=True)

    assert summary.verified == 5 and summary.total == 5
    assert sum(token.commands_seen[SET_ISSUER_INFO] for token in feeder.made) == 5
    assert len(feeder.made) >= 5


class BrokenLedger:
    """A journal whose disk fills up after the first token."""

    def __init__(self) -> None:
        self.finished = 0

    def claim(self, token_id: str, reader: str, *, record: bool) -> Claim:
        return Claim(attempt=1)

    def written(self, claim: Claim, result: TokenResult) -> None:
        pass

    def finish(self, claim: Claim, result: TokenResult) -> None:
        self.finished += 1
        if self.finished > 1:
            raise JournalError("ledger x.db: database or disk is full")

    def close(self) -> None:
        pass


def test_a_failing_ledger_halts_the_batch(profile: Profile, server: PhoneHomeServer) -> None:
    tokens = [blank(), blank(), blank()]
    journal = BrokenLedger()
    seen: list[TokenResult] = []

    summary = run_batch(
        (InProcessTransport(t) for t in tokens),
        plan_for(profile, server),
        halt_after_key_mismatches=2,
        on_result=seen.append,
        journal=journal,
    )

    assert summary.halted and "disk is full" in summary.halted
    assert [r.journal_error is None for r in seen] == [True, False]
    assert seen[1].outcome is Outcome.VERIFIED  # the token itself is fine; its record is not
    assert tokens[2].commands_seen.total() == 0


def test_an_internal_error_in_a_worker_stops_the_batch_and_surfaces(
    profile: Profile, server: PhoneHomeServer
) -> None:
    class Exploding(Seen):
        def result(self, result: TokenResult) -> None:
            raise RuntimeError("report disk gone")

    batch = Batch(plan_for(profile, server), Limits(2), observer=Exploding())

    with pytest.raises(RuntimeError, match="report disk gone"):
        batch.run(_readers(blank(), blank()), watch=False)
    assert batch.summary().halted and "internal error" in batch.summary().halted


class LastOfTheTray(SimulatedReader):
    """Hands out its card as the tray's last: the batch hears at once that no more come."""

    batch: Batch

    def wait_for_card(self, timeout: float) -> Transport | None:
        transport = super().wait_for_card(timeout)
        if transport is not None:
            self.batch.end()
        return transport


def test_the_last_token_of_a_tray_is_burned_not_dropped(
    profile: Profile, server: PhoneHomeServer
) -> None:
    reader, token = LastOfTheTray("reader 0"), blank()
    reader.insert(token)
    batch = Batch(plan_for(profile, server), Limits(2), poll=0.02)
    reader.batch = batch

    summary = batch.run([reader], watch=True)

    assert summary.verified == 1 and not summary.interrupted
    assert issuer_text(token) == URL.encode()
