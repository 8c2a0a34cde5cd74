"""A card pulled out at each step of a burn, through pcscd: recorded precisely, never verified.

The bridge pulls the card at a chosen command: before the card runs it, after it ran but
before the answer went out, or right after the answer. The result must be a failure that
names the steps completed, the token must hold what the card really did, and the same
token inserted again must end verified (written then, or found written).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from provision.burn import BurnPlan, Outcome, Step, TokenResult
from simulator.bridge import PullAt, ServeOptions, When
from simulator.cli import make_token
from tests.pcscd import URL, PcscStack, burn

pytestmark = pytest.mark.pcscd

SELECT, GET_DATA, GET_ISSUER_INFO = (0x00, 0xA4), (0x80, 0xCA), (0xB0, 0xF6)
INITIALIZE_UPDATE, EXTERNAL_AUTHENTICATE, SET_ISSUER_INFO = (
    (0x80, 0x50),
    (0x84, 0x82),
    (0x84, 0xF4),
)

BEFORE_CHANNEL = "removed after reading the issuer info, before the secure channel was open"
UNCONFIRMED = "removed after opening the secure channel, before SET ISSUER INFO was confirmed"
AFTER_WRITE = "removed after SET ISSUER INFO, before verification"

# (pulled at, when, nth, step reached, what the result says, whether the URL is on the card)
REMOVALS = {
    "select-card-manager": (
        SELECT,
        When.BEFORE,
        1,
        Step.IDENTIFY,
        "removed before it was identified",
        False,
    ),
    "cplc-answered": (
        GET_DATA,
        When.AFTER,
        1,
        Step.READ,
        "removed after reading the CUID, before reading the issuer info",
        False,
    ),
    "issuer-info-answered": (
        GET_ISSUER_INFO,
        When.AFTER,
        1,
        Step.AUTHENTICATE,
        BEFORE_CHANNEL,
        False,
    ),
    "initialize-update-answered": (
        INITIALIZE_UPDATE,
        When.AFTER,
        1,
        Step.AUTHENTICATE,
        BEFORE_CHANNEL,
        False,
    ),
    "external-authenticate-unsent": (
        EXTERNAL_AUTHENTICATE,
        When.BEFORE,
        1,
        Step.AUTHENTICATE,
        BEFORE_CHANNEL,
        False,
    ),
    "set-issuer-info-unsent": (SET_ISSUER_INFO, When.BEFORE, 1, Step.WRITE, UNCONFIRMED, False),
    "set-issuer-info-unanswered": (SET_ISSUER_INFO, When.DURING, 1, Step.WRITE, UNCONFIRMED, True),
    "set-issuer-info-answered": (SET_ISSUER_INFO, When.AFTER, 1, Step.VERIFY, AFTER_WRITE, True),
    "verification-read": (GET_ISSUER_INFO, When.BEFORE, 2, Step.VERIFY, AFTER_WRITE, True),
}


@dataclass(frozen=True)
class Observed:
    name: str
    pulled: TokenResult
    written_then: bool
    failed_auths: int
    slot_empty: bool
    removal_seen: bool
    again: TokenResult
    written_now: bool


def _pull_and_reinsert(pcscd: PcscStack, plan: BurnPlan, index: int, case: str) -> Observed:
    (cla, ins), when, nth, *_ = REMOVALS[case]
    token = make_token()
    pcscd.insert(index, token, ServeOptions(pull=PullAt.ins(cla, ins, when, nth)))
    reader = pcscd.reader(index)

    pulled = burn(reader, plan)
    written_then = token.issuer_info.rstrip(b"\x00") == URL.encode()
    slot_empty = pcscd.bridge.token(index) is None
    removal_seen = reader.wait_for_removal(5)

    pcscd.insert(index, token)
    again = burn(reader, plan)
    assert again.token_id == token.cuid.hex()
    written_now = token.issuer_info.rstrip(b"\x00") == URL.encode()
    return Observed(
        pcscd.name(index),
        pulled,
        written_then,
        token.failed_auth_count,
        slot_empty,
        removal_seen,
        again,
        written_now,
    )


@pytest.fixture(scope="module")
def removals(pcscd_session: PcscStack, example_plan: BurnPlan) -> Iterator[dict[str, Observed]]:
    """Every case at once, one reader each: pcscd's polling makes each take about a second."""
    cases = list(REMOVALS)
    try:
        with ThreadPoolExecutor(len(cases)) as pool:
            runs = [
                pool.submit(_pull_and_reinsert, pcscd_session, example_plan, n, case)
                for n, case in enumerate(cases)
            ]
            yield {case: run.result() for case, run in zip(cases, runs, strict=True)}
    finally:
        pcscd_session.clear()


@pytest.mark.parametrize("case", list(REMOVALS))
def test_a_card_pulled_mid_burn_is_recorded_and_verified_next_time(
    removals: dict[str, Observed], case: str
) -> None:
    *_, step, wording, written = REMOVALS[case]
    seen = removals[case]
    pulled = seen.pulled

    assert pulled.outcome is Outcome.FAILED
    assert pulled.record()["result"] == "failed"
    assert pulled.step is step
    assert pulled.reason is not None
    assert pulled.reason.startswith(f"the card was removed from reader '{seen.name}': {wording}")
    assert seen.written_then is written
    assert seen.failed_auths == 0
    assert seen.slot_empty
    assert seen.removal_seen

    assert seen.again.ok, seen.again.reason
    assert seen.again.outcome is (Outcome.ALREADY_BURNED if written else Outcome.VERIFIED)
    assert seen.written_now
