"""Watch mode: workers that wait for cards, burn each once, wait for its removal; a stop that
drains instead of breaking off; a card pulled mid-burn; Ctrl-C through the real command."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.batch import Activity, Batch, Limits, Summary
from provision.burn import Outcome, Step
from provision.errors import NoReaderError, TransportError
from provision.ledger import RunContext, open_ledger
from provision.phonehome.server import PhoneHomeServer
from provision.profile import Profile
from provision.simulated import SimulatedReader
from provision.transport import Transport
from tests.linekit import (
    EXAMPLE,
    SET_ISSUER_INFO,
    URL,
    Background,
    SlowCard,
    blank,
    example_profile,
    issuer_text,
    phone_home,
    plan_for,
    wait_until,
)
from tests.test_batch import Seen


@pytest.fixture(scope="module")
def profile() -> Profile:
    return example_profile()


@pytest.fixture(scope="module")
def server() -> Iterator[PhoneHomeServer]:
    with phone_home() as running:
        yield running


def _watch(batch: Batch, readers: list[SimulatedReader]) -> Background:
    return Background(lambda: batch.run(readers, watch=True))


def _times(seen: Seen, reader: str, activity: Activity) -> int:
    return sum(1 for name, _, said in seen.statuses if name == reader and said == activity)


def test_each_insertion_is_burned_once_and_waits_for_its_removal(
    profile: Profile, server: PhoneHomeServer
) -> None:
    readers = [SimulatedReader("left"), SimulatedReader("right")]
    seen = Seen()
    batch = Batch(plan_for(profile, server), Limits(2), observer=seen, poll=0.02)
    running = _watch(batch, readers)
    token = blank()

    readers[0].insert(token)
    wait_until(lambda: _times(seen, "left", Activity.REMOVE) == 1)
    assert [r.outcome for r in seen.results] == [Outcome.VERIFIED]
    assert issuer_text(token) == URL.encode()

    # Left in the reader for a few polls, the token is not burned again; taken out and put
    # in the other reader, it is looked at again and found burned.
    time.sleep(0.1)
    assert len(seen.results) == 1
    readers[0].remove()
    readers[1].insert(token)
    wait_until(lambda: _times(seen, "right", Activity.REMOVE) == 1)
    readers[1].remove()
    wait_until(lambda: _times(seen, "right", Activity.WAITING) == 2)
    batch.stop()

    summary = running.result()
    assert isinstance(summary, Summary)
    assert [r.outcome for r in seen.results] == [Outcome.VERIFIED, Outcome.ALREADY_BURNED]
    assert token.commands_seen[SET_ISSUER_INFO] == 1
    assert (summary.readers["left"].verified, summary.readers["right"].already_burned) == (1, 1)


def test_stop_drains_the_token_in_flight(
    tmp_path: Path, profile: Profile, server: PhoneHomeServer
) -> None:
    readers = [SimulatedReader("left"), SimulatedReader("right")]
    seen = Seen()
    context = RunContext(profile.name, profile.content_hash, URL, "line-1", "op", "v")
    ledger = open_ledger(str(tmp_path / "ledger.db"))
    batch = Batch(
        plan_for(profile, server),
        Limits(2),
        journals=lambda: ledger.journal(context),
        observer=seen,
        poll=0.02,
    )

    def stop_at_the_write(apdu: bytes) -> None:
        if tuple(apdu[:2]) == SET_ISSUER_INFO:
            batch.stop(interrupted=True)  # Ctrl-C lands in the middle of the write

    token, later = blank(), blank()
    readers[0].insert(SlowCard(token, 0.01, before=stop_at_the_write))  # type: ignore[arg-type]
    summary = _watch(batch, readers).result()
    readers[1].insert(later)
    ledger.close()

    assert summary.interrupted and not summary.ok
    (result,) = seen.results
    assert result.outcome is Outcome.VERIFIED and result.step is Step.DONE
    assert issuer_text(token) == URL.encode()
    assert later.commands_seen.total() == 0
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("SELECT state FROM provision_attempts").fetchall() == [("verified",)]


def test_a_card_pulled_mid_burn_is_never_reported_verified(
    tmp_path: Path, profile: Profile, server: PhoneHomeServer
) -> None:
    reader = SimulatedReader("left")
    seen = Seen()
    context = RunContext(profile.name, profile.content_hash, URL, "line-1", "op", "v")
    ledger = open_ledger(str(tmp_path / "ledger.db"))
    batch = Batch(
        plan_for(profile, server),
        Limits(2),
        journals=lambda: ledger.journal(context),
        observer=seen,
        poll=0.02,
    )
    token = blank()

    def pull_during_the_write(apdu: bytes) -> None:
        if tuple(apdu[:2]) == SET_ISSUER_INFO:
            reader.remove()  # the card takes this command, then it is gone

    running = _watch(batch, [reader])
    reader.insert(SlowCard(token, before=pull_during_the_write))  # type: ignore[arg-type]
    wait_until(lambda: len(seen.results) == 1)
    reader.insert(token)  # put back: seen again, verified, not written again
    wait_until(lambda: len(seen.results) == 2)
    batch.stop()
    running.result()
    ledger.close()

    pulled, again = seen.results
    assert pulled.outcome is Outcome.FAILED and pulled.url_written == URL
    assert "removed" in (pulled.reason or "")
    assert again.outcome is Outcome.ALREADY_BURNED, again.reason
    assert token.commands_seen[SET_ISSUER_INFO] == 1
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        states = db.execute("SELECT state, url_written FROM provision_attempts ORDER BY id")
        assert states.fetchall() == [("failed", URL), ("verified", None)]


def test_ctrl_c_through_the_command_finishes_and_records_every_token(tmp_path: Path) -> None:
    report, ledger = tmp_path / "report.jsonl", tmp_path / "ledger.db"
    command = [
        sys.executable, "-m", "provision", "burn", str(EXAMPLE), "--simulated", "2000",
        "--ledger", str(ledger), "--report", str(report), "--json", "--no-progress",
    ]  # fmt: skip
    child = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_until(lambda: report.exists() and report.read_text().count("\n") >= 5, 30)
    os.kill(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=30)

    assert child.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] is True and 5 <= summary["total"] < 2000
    assert "Interrupted: every token in hand was finished and recorded." in err
    lines = report.read_text().splitlines()
    assert len(lines) == summary["total"] == summary["verified"]
    with sqlite3.connect(ledger) as db:
        states = [state for (state,) in db.execute("SELECT state FROM provision_attempts")]
    assert states == ["verified"] * summary["total"]


class Failing(SimulatedReader):
    """A reader whose next wait for a card fails with ``error`` once."""

    def __init__(self, name: str, error: Exception) -> None:
        super().__init__(name)
        self.error: Exception | None = error

    def wait_for_card(self, timeout: float) -> Transport | None:
        transport = super().wait_for_card(timeout)
        if transport is not None and self.error is not None:
            error, self.error = self.error, None
            raise error
        return transport


def test_a_card_that_does_not_answer_is_a_failure_and_the_reader_goes_on(
    profile: Profile, server: PhoneHomeServer
) -> None:
    mute = "the card in reader 'left' does not answer (no ATR): take it out, check it"
    reader = Failing("left", TransportError(mute))
    seen = Seen()
    batch = Batch(plan_for(profile, server), Limits(2), observer=seen, poll=0.02)
    running = _watch(batch, [reader])

    reader.insert(blank())  # the mute card
    wait_until(lambda: _times(seen, "left", Activity.REMOVE) == 1)
    reader.remove()
    wait_until(lambda: _times(seen, "left", Activity.WAITING) == 2)
    token = blank()
    reader.insert(token)
    wait_until(lambda: len(seen.results) == 2)
    batch.stop()
    summary = running.result()

    failed, burned = seen.results
    assert (failed.outcome, failed.reason, failed.token_id) == (Outcome.FAILED, mute, None)
    assert burned.outcome is Outcome.VERIFIED and issuer_text(token) == URL.encode()
    assert isinstance(summary, Summary) and (summary.failed, summary.verified) == (1, 1)


def test_a_reader_that_is_gone_stops_its_worker_only(
    profile: Profile, server: PhoneHomeServer
) -> None:
    gone = Failing("left", NoReaderError("reader 'left' is gone or unavailable: reconnect it"))
    other = SimulatedReader("right")
    seen = Seen()
    batch = Batch(plan_for(profile, server), Limits(2), observer=seen, poll=0.02)
    running = _watch(batch, [gone, other])

    gone.insert(blank())
    wait_until(lambda: ("left", None, Activity.STOPPED) in seen.statuses)
    other.insert(blank())
    wait_until(lambda: len(seen.results) == 2)
    batch.stop()
    running.result()

    assert [r.outcome for r in seen.results] == [Outcome.FAILED, Outcome.VERIFIED]
    assert "reconnect it" in (seen.results[0].reason or "")
