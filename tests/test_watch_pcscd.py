"""Watch mode on 16 readers through pcscd: the workers burn in parallel while the test swaps
cards as an operator does (take a token out when its reader says so, put the next in when
the reader waits), with the simulator's latency model on every card."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from provision import pcsc
from provision.batch import Activity, Batch, Limits
from provision.burn import BurnPlan, Outcome, TokenResult
from simulator.bridge import ServeOptions
from simulator.card import VirtualToken
from simulator.latency import Latency
from tests.linekit import URL, Background, blank, wait_until
from tests.pcscd import PcscStack

pytestmark = pytest.mark.pcscd

ROUNDS = 3
LATENCY = ServeOptions(latency=Latency.from_ms(per_apdu=20, per_nv_write=10))


class Operator:
    """Feeds every reader ``ROUNDS`` tokens, one after another, and watches the workers."""

    def __init__(self, stack: PcscStack) -> None:
        self.stack = stack
        self.index = {name: n for n, name in enumerate(stack.names)}
        self.trays = {name: [blank() for _ in range(ROUNDS)] for name in stack.names}
        self.results: list[TokenResult] = []
        self.busy: set[str] = set()
        self.most_busy = 0
        self._lock = threading.Lock()

    @property
    def tokens(self) -> list[VirtualToken]:
        return [token for tray in self.trays.values() for token in tray]

    def status(self, reader: str, token_id: str | None, activity: str) -> None:
        with self._lock:
            if activity == "identify":
                self.busy.add(reader)
                self.most_busy = max(self.most_busy, len(self.busy))
            left = [t for t in self.trays[reader] if not t.commands_seen.total()]
        if activity == Activity.WAITING and left:
            self.stack.insert(self.index[reader], left[0], LATENCY)

    def result(self, result: TokenResult) -> None:
        with self._lock:
            self.busy.discard(result.reader)
            self.results.append(result)
        self.stack.bridge.remove(self.index[result.reader])


def test_sixteen_readers_burn_in_parallel_while_cards_are_swapped(
    pcscd: PcscStack, example_plan: BurnPlan
) -> None:
    readers = [pcscd.track(reader) for reader in pcsc.open_readers(["CoolKey Sim *"])]  # type: ignore[arg-type]
    assert len(readers) == 16
    operator = Operator(pcscd)
    batch = Batch(example_plan, Limits(2), observer=operator, poll=0.05)

    running = Background(lambda: batch.run(readers, watch=True))
    wait_until(lambda: len(operator.results) == 16 * ROUNDS, timeout=120)
    batch.stop()
    summary = running.result(timeout=30)

    outcomes = Counter(result.outcome for result in operator.results)
    assert outcomes == Counter({Outcome.VERIFIED: 16 * ROUNDS}), [
        (r.reader, r.reason) for r in operator.results if r.outcome is not Outcome.VERIFIED
    ]
    assert {name: counts.verified for name, counts in summary.readers.items()} == {  # type: ignore[attr-defined]
        name: ROUNDS for name in pcscd.names
    }
    assert sorted(r.token_id or "" for r in operator.results) == sorted(
        t.cuid.hex() for t in operator.tokens
    )
    for token in operator.tokens:
        assert token.issuer_info.rstrip(b"\x00") == URL.encode()
        assert token.commands_seen[(0x84, 0xF4)] == 1
    # The workers overlapped: most of the readers were mid-burn at the same moment.
    assert operator.most_busy >= 8
