"""Burn many tokens: one worker per reader, shared halting rules, counts and a summary.

A :class:`Batch` holds what the workers share: the plan, the limits (halt after so many
consecutive key mismatches or failures, stop after so many verified tokens), the running
counts and the stop signal. A :class:`ReaderWorker` serves one reader: it waits for a card,
burns and verifies it, reports the result, waits for the card to leave, and repeats (watch
mode), or burns the card present once. Watch mode runs one thread per reader: pyscard
releases the interpreter lock while an APDU is on the wire, so threads are enough to keep
every reader busy.

Stopping is always a drain: :meth:`Batch.stop` is only a request, and a worker looks at it
only between tokens, so the token in a reader is finished (burned, verified, recorded) and
never abandoned in the middle of a write. A waiting worker looks at it every
:data:`POLL_SECONDS`; a reader with a ``wake()`` method (PC/SC readers) is woken out of its
wait when the batch stops or ends, and so waits in longer slices: each wait that runs out
costs pcsc-lite CPU time, on every reader of an idle line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from .burn import NO_JOURNAL, BurnPlan, Journal, Outcome, TokenResult, burn_token
from .errors import NoReaderError, PcscServiceError, ProvisionError
from .transport import Reader, Transport

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # how often a waiting worker looks at the stop signal
# The same for a reader the batch wakes: only a stop that comes just before the worker
# starts to wait waits out a slice.
WAKEABLE_POLL_SECONDS = 1.0


@dataclass(slots=True)
class Counts:
    """Tokens by outcome."""

    verified: int = 0
    already_burned: int = 0
    skipped: int = 0
    planned: int = 0
    refused: int = 0
    failed: int = 0

    def count(self, outcome: Outcome) -> None:
        name = outcome.value
        setattr(self, name, getattr(self, name) + 1)

    @property
    def total(self) -> int:
        return (
            self.verified
            + self.already_burned
            + self.skipped
            + self.planned
            + self.refused
            + self.failed
        )

    def counts(self) -> dict[str, int]:
        return {outcome.value: getattr(self, outcome.value) for outcome in Outcome}


@dataclass(slots=True)
class Summary(Counts):
    """A batch's counts, in all and per reader, and how it ended."""

    elapsed: float = 0.0
    halted: str | None = None
    interrupted: bool = False
    readers: dict[str, Counts] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.total / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not (self.refused or self.failed or self.halted or self.interrupted)

    def as_dict(self) -> dict[str, object]:
        return {
            **self.counts(),
            "total": self.total,
            "elapsed_s": round(self.elapsed, 3),
            "tokens_per_second": round(self.tokens_per_second, 1),
            "halted": self.halted,
            "interrupted": self.interrupted,
            "readers": {name: counts.counts() for name, counts in self.readers.items()},
        }


@dataclass(frozen=True, slots=True)
class Limits:
    """When a batch stops by itself."""

    halt_after_key_mismatches: int
    halt_after_failures: int | None = None
    count: int | None = None  # stop once this many tokens ended verified


class Activity(StrEnum):
    """What a worker is doing between burns, for status lines."""

    WAITING = "waiting for a token"
    HELD = "waiting: enough tokens are in progress"
    REMOVE = "remove the token"
    EMPTY = "no token"
    STOPPED = "stopped"


class Observer(Protocol):
    """What a batch reports as it goes. Called from the worker threads."""

    def status(self, reader: str, token_id: str | None, activity: str) -> None:
        """A worker's current activity: an :class:`Activity` or a burn step."""
        ...

    def result(self, result: TokenResult) -> None:
        """A token's result, after the ledger has recorded it."""
        ...


class WorkerJournal(Journal, Protocol):
    """A journal one worker owns and closes when it ends."""

    def close(self) -> None: ...


class _Silent:
    def status(self, reader: str, token_id: str | None, activity: str) -> None:
        pass

    def result(self, result: TokenResult) -> None:
        pass


class Batch:
    """The state the workers of one run share. Thread-safe."""

    def __init__(
        self,
        plan: BurnPlan,
        limits: Limits,
        *,
        journals: Callable[[], WorkerJournal] | None = None,
        observer: Observer | None = None,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.plan = plan
        self.limits = limits
        self.observer: Observer = observer or _Silent()
        self.poll = poll
        self._journals = journals
        self._summary = Summary()
        self._start = time.perf_counter()
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._ending = threading.Event()
        self._in_progress = 0
        self._mismatches = 0
        self._failures = 0
        self._crash: BaseException | None = None
        self._wakeable: list[Reader] = []

    @property
    def stopping(self) -> bool:
        """No token is to be started any more: the batch halted, was interrupted, or is done."""
        return self._stop.is_set()

    @property
    def winding_down(self) -> bool:
        """No new card is to be waited for (stopping, or :meth:`end` was called)."""
        return self._stop.is_set() or self._ending.is_set()

    def end(self) -> None:
        """No more tokens will come (a tray is empty): each worker burns the card it has
        already got, if any, and then stops waiting."""
        self._ending.set()
        self._wake()

    def stop(self, *, halted: str | None = None, interrupted: bool = False) -> None:
        """Ask every worker to stop after the token in hand."""
        with self._lock:
            if halted and not self._summary.halted:
                self._summary.halted = halted
                logger.warning("%s", halted)
            self._summary.interrupted |= interrupted
            self._stop.set()
            self._lock.notify_all()
        self._wake()

    def worker(self, reader: Reader) -> ReaderWorker:
        """A worker for ``reader``, with its own journal (opened here, in the caller)."""
        journal = self._journals() if self._journals else None
        if _can_wake(reader):
            with self._lock:
                self._wakeable.append(reader)
        return ReaderWorker(self, reader, journal)

    def _wake(self) -> None:
        """End the waits of the readers that can be woken, so their workers see the stop."""
        with self._lock:
            readers = list(self._wakeable)
        for reader in readers:
            try:
                reader.wake()  # type: ignore[attr-defined]
            except ProvisionError as exc:
                logger.debug("%s: waking the reader failed: %s", reader.name, exc)

    def run(self, readers: Sequence[Reader], *, watch: bool) -> Summary:
        """One thread per reader until stopped (watch), or until each reader's token is done.

        The calling thread only waits, so that it can take signals and call :meth:`stop`.
        """
        workers: list[ReaderWorker] = []
        try:
            workers.extend(self.worker(reader) for reader in readers)
        except BaseException:
            for worker in workers:
                worker.close()
            raise
        threads = [
            threading.Thread(target=self._guarded, args=(w, watch), name=w.name, daemon=True)
            for w in workers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(self.poll)
        if self._crash is not None:
            raise self._crash
        return self.summary()

    def _guarded(self, worker: ReaderWorker, watch: bool) -> None:
        try:
            worker.run(watch=watch)
        except BaseException as exc:
            logger.debug("worker for %s crashed", worker.name, exc_info=True)
            self._crash = self._crash or exc
            self.stop(halted=f"stopped by an internal error in the worker for {worker.name}")

    def summary(self) -> Summary:
        with self._lock:
            self._summary.elapsed = time.perf_counter() - self._start
            return self._summary

    # -- the shared rules ------------------------------------------------------------------

    def reserve(self, *, block: bool = True) -> bool:
        """Take a place for one more token; False once stopping (or, unless ``block``, when
        there is no place now).

        With a count, a token is started only while the verified ones and those in progress
        stay under it, so no reader burns a token past the count.
        """
        with self._lock:
            while not self._stop.is_set():
                count = self.limits.count
                if count is None or self._summary_ok() + self._in_progress < count:
                    self._in_progress += 1
                    return True
                if not block:
                    return False
                self._lock.wait(self.poll)
            return False

    def record(self, reader: str, result: TokenResult) -> None:
        """Count a result, report it, and apply the halting rules and the count."""
        with self._lock:
            self._summary.count(result.outcome)
            self._summary.readers.setdefault(reader, Counts()).count(result.outcome)
            halt = self._halt_reason(result)
            done = self.limits.count is not None and self._summary_ok() >= self.limits.count
        self.observer.result(result)
        if halt or done:
            self.stop(halted=halt)

    def release(self) -> None:
        with self._lock:
            self._in_progress -= 1
            self._lock.notify_all()

    def _summary_ok(self) -> int:
        return self._summary.verified + self._summary.already_burned

    def _halt_reason(self, result: TokenResult) -> str | None:
        if result.journal_error:
            return (
                f"halted: the ledger failed ({result.journal_error}); no token is burned "
                "that the ledger cannot record"
            )

        self._mismatches = self._mismatches + 1 if result.key_mismatch else 0
        if self._mismatches >= self.limits.halt_after_key_mismatches:
            return (
                f"halted after {self._mismatches} consecutive key mismatches: check the "
                "profile's keys, key version, diversification and protocol against these tokens"
            )

        # Refused and skipped tokens say nothing about the line: they neither count nor reset.
        if result.outcome is Outcome.FAILED:
            self._failures += 1
        elif result.ok:
            self._failures = 0
        limit = self.limits.halt_after_failures
        if limit is not None and self._failures >= limit:
            return (
                f"halted after {self._failures} consecutive failures, the last: {result.reason}; "
                "check the readers, the Phone Home server and the profile"
            )
        return None


class ReaderWorker:
    """Serves one reader for a batch: wait for a card, burn, report, wait for removal."""

    def __init__(self, batch: Batch, reader: Reader, journal: WorkerJournal | None) -> None:
        self.batch = batch
        self.reader = reader
        self.name = reader.name
        self._journal = journal
        self._poll = max(batch.poll, WAKEABLE_POLL_SECONDS) if _can_wake(reader) else batch.poll

    def run(self, *, watch: bool) -> None:
        """Watch the reader until the batch stops, or burn the token present once."""
        try:
            while not self.batch.winding_down:
                try:
                    result = self.next_token(wait=watch)
                    if result is None or not watch:
                        break
                    self.await_removal()
                except ProvisionError as exc:
                    # The reader failed, not a burn (burn_token makes a result of every error
                    # of its own): a card that does not answer, a reader or pcscd gone.
                    if not self._reader_failed(exc, watch=watch):
                        break
        finally:
            self.close()
            self._status(None, Activity.STOPPED)

    def next_token(self, *, wait: bool) -> TokenResult | None:
        """Burn the next card: wait for one until the batch stops, or look once.

        None when there was no card, or the batch stopped first.
        """
        transport = self._wait_for_card(wait)
        if transport is None:
            return None
        reserved = False
        try:
            reserved = self._reserve()
        finally:
            if not reserved:
                _close(transport)  # left untouched: the batch is stopping
        if not reserved:
            return None
        try:
            try:
                result = self._burn(transport)
            finally:
                _close(transport)
            self.batch.record(self.name, result)
        finally:
            # Released only once counted, so that --count sees this token all along.
            self.batch.release()
        return result

    def await_removal(self) -> bool:
        """Wait until the card has left the reader, or the batch stops."""
        # XXX: a card swapped for another faster than the reader reports the removal is not
        # seen as a new card; the status line keeps saying to remove the token until it is.
        self._status(None, Activity.REMOVE)
        while not self.reader.wait_for_removal(self._poll):
            if self.batch.winding_down:
                return False
        return True

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def _reader_failed(self, exc: ProvisionError, *, watch: bool) -> bool:
        """Report the reader's failure as a failed token; True when the worker goes on,
        once the card that caused it has been taken out."""
        logger.warning("%s: %s", self.name, exc)
        self.batch.record(self.name, TokenResult(reader=self.name, reason=str(exc)))
        if not watch or self.batch.winding_down or isinstance(exc, _READER_GONE):
            return False
        try:
            return self.await_removal()
        except ProvisionError:
            return False

    def _wait_for_card(self, wait: bool) -> Transport | None:
        if not wait:
            transport = self.reader.wait_for_card(0)
            if transport is None:
                self._status(None, Activity.EMPTY)
            return transport

        self._status(None, Activity.WAITING)
        while not self.batch.winding_down:
            transport = self.reader.wait_for_card(self._poll)
            if transport is not None:
                return transport
        return None

    def _reserve(self) -> bool:
        if self.batch.reserve(block=False):
            return True
        self._status(None, Activity.HELD)
        return self.batch.reserve()

    def _burn(self, transport: Transport) -> TokenResult:
        def on_step(result: TokenResult) -> None:
            self._status(result.token_id, result.step.value)

        self._status(None, "identify")
        return burn_token(
            transport,
            self.batch.plan,
            journal=self._journal or NO_JOURNAL,
            on_step=on_step,
        )

    def _status(self, token_id: str | None, activity: str) -> None:
        self.batch.observer.status(self.name, token_id, activity)


_READER_GONE = (NoReaderError, PcscServiceError)


def _can_wake(reader: Reader) -> bool:
    return callable(getattr(reader, "wake", None))


def _close(transport: Transport) -> None:
    # The token's fate is settled by now; a reader that fails to let go does not change it.
    try:
        transport.close()
    except ProvisionError as exc:
        logger.debug("%s: closing the card failed: %s", transport.reader, exc)


class _Results:
    def __init__(self, on_result: Callable[[TokenResult], None]) -> None:
        self._on_result = on_result

    def status(self, reader: str, token_id: str | None, activity: str) -> None:
        pass

    def result(self, result: TokenResult) -> None:
        self._on_result(result)


def run_batch(
    transports: Iterable[Transport],
    plan: BurnPlan,
    *,
    halt_after_key_mismatches: int,
    halt_after_failures: int | None = None,
    on_result: Callable[[TokenResult], None] = lambda result: None,
    journal: Journal = NO_JOURNAL,
) -> Summary:
    """Burn each token in turn, handing every result to ``on_result``.

    The batch halts after ``halt_after_key_mismatches`` consecutive card-cryptogram
    mismatches: a run of them means the keys are wrong for this tray, and every further
    token would only fail the same way. ``halt_after_failures`` does the same for any
    failure.
    """
    limits = Limits(halt_after_key_mismatches, halt_after_failures)
    batch = Batch(plan, limits, observer=_Results(on_result))
    for transport in transports:
        try:
            result = burn_token(transport, plan, journal=journal)
        finally:
            transport.close()
        batch.record(transport.reader, result)
        if batch.stopping:
            break
    return batch.summary()
