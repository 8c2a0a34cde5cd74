"""A latency model for virtual tokens: a fixed delay per APDU and per non-volatile write.

Real tokens take milliseconds per command and longer for each EEPROM or flash write; a
simulated token answers in microseconds. :class:`DelayedCard` adds the delays of a
:class:`Latency` to every command, so throughput figures and timeouts can be tried against
slow cards. The writes are counted by the token itself (``VirtualToken.nv_writes``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Latency:
    """Seconds added to each APDU, and to each persistent write an APDU causes."""

    per_apdu: float = 0.0
    per_nv_write: float = 0.0

    def __post_init__(self) -> None:
        if self.per_apdu < 0 or self.per_nv_write < 0:
            raise ValueError("delays cannot be negative")

    @property
    def zero(self) -> bool:
        return self.per_apdu == 0 and self.per_nv_write == 0

    @classmethod
    def from_ms(cls, per_apdu: float = 0.0, per_nv_write: float = 0.0) -> Latency:
        return cls(per_apdu / 1000, per_nv_write / 1000)


class InnerCard(Protocol):
    def power_on(self) -> bytes: ...

    def process(self, apdu: bytes) -> bytes: ...


class DelayedCard:
    """``card`` with the delays of ``latency``; ``writes`` counts the token's NV writes."""

    def __init__(
        self,
        card: InnerCard,
        latency: Latency,
        writes: Callable[[], int],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._card = card
        self._latency = latency
        self._writes = writes
        self._sleep = sleep

    def power_on(self) -> bytes:
        return self._card.power_on()

    def process(self, apdu: bytes) -> bytes:
        before = self._writes()
        response = self._card.process(apdu)
        delay = self._latency.per_apdu + (self._writes() - before) * self._latency.per_nv_write
        if delay > 0:
            self._sleep(delay)
        return response
