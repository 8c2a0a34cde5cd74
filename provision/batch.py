"""Burn a sequence of tokens with one plan, and count what happened."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .burn import BurnPlan, Outcome, TokenResult, burn_token
from .transport import Transport

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Summary:
    verified: int = 0
    already_burned: int = 0
    refused: int = 0
    failed: int = 0
    elapsed: float = 0.0
    halted: str | None = None

    def count(self, outcome: Outcome) -> None:
        name = outcome.value
        setattr(self, name, getattr(self, name) + 1)

    @property
    def total(self) -> int:
        return self.verified + self.already_burned + self.refused + self.failed

    @property
    def tokens_per_second(self) -> float:
        return self.total / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not (self.refused or self.failed or self.halted)

    def as_dict(self) -> dict[str, object]:
        return {
            "verified": self.verified,
            "already_burned": self.already_burned,
            "refused": self.refused,
            "failed": self.failed,
            "total": self.total,
            "elapsed_s": round(self.elapsed, 3),
            "tokens_per_second": round(self.tokens_per_second, 1),
            "halted": self.halted,
        }


def run_batch(
    transports: Iterable[Transport],
    plan: BurnPlan,
    *,
    halt_after_key_mismatches: int,
    on_result: Callable[[TokenResult], None] = lambda result: None,
) -> Summary:
    """Burn each token in turn, handing every result to ``on_result``.

    The batch halts after ``halt_after_key_mismatches`` consecutive card-cryptogram
    mismatches: a run of them means the keys are wrong for this tray, and every further
    token would only fail the same way.
    """
    summary = Summary()
    start = time.perf_counter()
    mismatches = 0
    for transport in transports:
        try:
            result = burn_token(transport, plan)
        finally:
            transport.close()
        summary.count(result.outcome)
        on_result(result)

        mismatches = mismatches + 1 if result.key_mismatch else 0
        if mismatches >= halt_after_key_mismatches:
            summary.halted = (
                f"halted after {mismatches} consecutive key mismatches: check the profile's "
                "keys, key version, diversification and protocol against these tokens"
            )
            logger.warning("%s", summary.halted)
            break
    summary.elapsed = time.perf_counter() - start
    return summary
