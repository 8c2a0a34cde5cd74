"""Never lock a card: a wrong key, key version, diversification or protocol ends before
EXTERNAL AUTHENTICATE, no authentication is retried, and a batch stops after a run of them.

The tokens are simulated; ``commands_seen`` counts what reached them and the card's failure
counter shows whether any authentication was spent.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.batch import run_batch
from provision.burn import Outcome, Step, burn_token
from provision.gp.keys import Scp, StaticKeys
from provision.iso7816 import SW
from provision.profile import Profile
from provision.transport import InProcessTransport
from provision.verify import VerifyConfig
from simulator.card import CardModel, MasterKey, VirtualToken
from tests.burnkit import EXTERNAL_AUTHENTICATE, phone_home, plan_for, profile_text, write_profile
from tests.simhost import Host

MASTER = secrets.token_bytes(16)
CAUSES = "wrong keys, key version, diversification or protocol"


@pytest.fixture(scope="module")
def verify() -> Iterator[VerifyConfig]:
    with phone_home() as config:
        yield config


def _visa2_profile(directory: Path, *, kvn: int = 1, method: str = "visa2") -> Profile:
    key_set = {"kvn": kvn, "test_keys": True, "diversification": method, "master": MASTER.hex()}
    return write_profile(directory, profile_text({"protocol": "SCP02"}, [key_set]))


def _visa2_token(*, kvn: int = 1, master: bytes = MASTER, method: str = "visa2") -> VirtualToken:
    model = CardModel(protocol=Scp.SCP02, i=0x15)
    return VirtualToken.blank(
        model=model, key_sets={kvn: MasterKey(method, master)}, kdd=secrets.token_bytes(10)
    )


def _burn(token: VirtualToken, profile: Profile, verify: VerifyConfig) -> tuple[str, bool]:
    result = burn_token(InProcessTransport(token), plan_for(profile, verify))
    assert result.outcome is Outcome.FAILED
    assert result.step is Step.AUTHENTICATE
    assert token.commands_seen[EXTERNAL_AUTHENTICATE] == 0
    assert token.failed_auth_count == 0
    assert token.issuer_info == bytes(224)
    return result.reason or "", result.key_mismatch


def test_wrong_master_key(verify: VerifyConfig, tmp_path: Path) -> None:
    reason, mismatch = _burn(
        _visa2_token(master=secrets.token_bytes(16)), _visa2_profile(tmp_path), verify
    )

    assert mismatch
    assert (
        "the card cryptogram does not verify with key set 01 (visa2 from inline test keys"
        in reason
    )
    assert CAUSES in reason
    assert "EXTERNAL AUTHENTICATE was not sent" in reason


def test_wrong_diversification(verify: VerifyConfig, tmp_path: Path) -> None:
    token = _visa2_token(method="emv-cps-1.1")

    reason, mismatch = _burn(token, _visa2_profile(tmp_path, method="visa2"), verify)

    assert mismatch
    assert CAUSES in reason
    assert f"for KDD {token.kdd.hex().upper()}" in reason


def test_diversification_where_the_card_has_none(verify: VerifyConfig, tmp_path: Path) -> None:
    static = StaticKeys.from_bytes(MASTER, MASTER, MASTER, aes=False)
    token = VirtualToken.blank(key_sets={1: static})

    reason, mismatch = _burn(token, _visa2_profile(tmp_path), verify)

    assert mismatch and CAUSES in reason


def test_profile_without_the_cards_key_version(verify: VerifyConfig, tmp_path: Path) -> None:
    reason, mismatch = _burn(_visa2_token(kvn=7), _visa2_profile(tmp_path, kvn=1), verify)

    assert mismatch
    assert "the card reports key version 07 (asked for 00 (any))" in reason
    assert "the profile has no key set for it (it has key set 01)" in reason
    assert "EXTERNAL AUTHENTICATE was not sent" in reason


def test_card_without_the_requested_key_version(verify: VerifyConfig, tmp_path: Path) -> None:
    key_sets = [
        {"kvn": 1, "test_keys": True, "diversification": "visa2", "master": MASTER.hex()},
        {"kvn": 2, "test_keys": True, "diversification": "visa2", "master": MASTER.hex()},
    ]
    text = profile_text({"protocol": "SCP02", "key_version": 2}, key_sets)
    token = _visa2_token(kvn=1)

    reason, mismatch = _burn(token, write_profile(tmp_path, text), verify)

    assert mismatch
    assert "the card has no key set with version 02 (INITIALIZE UPDATE answered 6A88" in reason
    assert "the profile has key sets 01, 02" in reason


def test_protocol_other_than_the_cards(verify: VerifyConfig, tmp_path: Path) -> None:
    text = profile_text(
        {"protocol": "SCP03"},
        [{"kvn": 1, "test_keys": True, "diversification": "kdf3", "master": MASTER.hex()}],
    )

    reason, mismatch = _burn(_visa2_token(), write_profile(tmp_path, text), verify)

    assert not mismatch  # found from the card's answer, not a cryptogram
    assert "the card speaks SCP02, the profile expects SCP03" in reason


def test_a_batch_halts_after_two_key_mismatches(verify: VerifyConfig, tmp_path: Path) -> None:
    profile = _visa2_profile(tmp_path)
    tokens = [_visa2_token(master=secrets.token_bytes(16)) for _ in range(4)]

    summary = run_batch(
        (InProcessTransport(t, reader=f"slot {n}") for n, t in enumerate(tokens)),
        plan_for(profile, verify),
        halt_after_key_mismatches=profile.policy.halt_after_key_mismatches,
    )

    assert profile.policy.halt_after_key_mismatches == 2  # the default
    assert summary.failed == 2
    assert summary.halted and "2 consecutive key mismatches" in summary.halted
    for cause in ("keys", "key version", "diversification", "protocol"):
        assert cause in summary.halted
    assert [sum(t.commands_seen.values()) > 0 for t in tokens] == [True, True, False, False]
    assert all(t.commands_seen[EXTERNAL_AUTHENTICATE] == 0 for t in tokens)


def test_a_good_token_between_mismatches_resets_the_count(
    verify: VerifyConfig, tmp_path: Path
) -> None:
    profile = _visa2_profile(tmp_path)
    wrong = secrets.token_bytes(16)
    tokens = [
        _visa2_token(master=wrong),
        _visa2_token(),
        _visa2_token(master=wrong),
        _visa2_token(),
    ]

    summary = run_batch(
        (InProcessTransport(t) for t in tokens),
        plan_for(profile, verify),
        halt_after_key_mismatches=2,
    )

    assert (summary.verified, summary.failed, summary.halted) == (2, 2, None)


# -- the card's side: the status words real cards give ------------------------------------


@pytest.mark.parametrize("failure_sw", [SW.VERIFICATION_FAILED, SW.SECURITY_STATUS_NOT_SATISFIED])
@pytest.mark.parametrize(
    "locked_sw", [SW.SECURITY_STATUS_NOT_SATISFIED, SW.WARNING_SELECTED_FILE_INVALIDATED]
)
def test_a_bad_host_cryptogram_and_the_lock(failure_sw: int, locked_sw: int) -> None:
    model = CardModel(auth_failure_limit=3, auth_failure_sw=failure_sw, locked_sw=locked_sw)
    token = VirtualToken.blank(model=model)
    keys = token.key_sets[1]
    host = Host(token, keys)

    for _ in range(3):
        host.initialize_update()
        assert host.external_authenticate(corrupt=True)[1] == failure_sw

    assert token.locked
    assert host.initialize_update()[1] == locked_sw


def test_the_tool_stops_at_a_locked_card(verify: VerifyConfig, tmp_path: Path) -> None:
    token = _visa2_token()
    token.card_manager.locked = True

    reason, _ = _burn(token, _visa2_profile(tmp_path), verify)

    assert "refuses to open a secure channel" in reason and "not retrying" in reason


def test_unknown_key_version_is_6a88() -> None:
    token = VirtualToken.blank()

    assert (
        Host(token, token.key_sets[1]).initialize_update(kvn=0x22)[1]
        == SW.REFERENCED_DATA_NOT_FOUND
    )


# -- several key sets -------------------------------------------------------------------


def _two_key_sets(directory: Path, key_version: int) -> tuple[Profile, bytes, bytes]:
    transport, issuer = secrets.token_bytes(16), secrets.token_bytes(16)
    key_sets = [
        {
            "kvn": 1,
            "test_keys": True,
            "enc": transport.hex(),
            "mac": transport.hex(),
            "dek": transport.hex(),
        },
        {"kvn": 2, "test_keys": True, "diversification": "visa2", "master": issuer.hex()},
    ]
    text = profile_text({"protocol": "SCP02", "key_version": key_version}, key_sets)
    return write_profile(directory, text), transport, issuer


@pytest.mark.parametrize("card_kvn", [1, 2])
def test_the_key_set_the_card_reports_is_used(
    verify: VerifyConfig, tmp_path: Path, card_kvn: int
) -> None:
    profile, transport, issuer = _two_key_sets(tmp_path, key_version=0)
    keys: StaticKeys | MasterKey = (
        StaticKeys.from_bytes(transport, transport, transport, aes=False)
        if card_kvn == 1
        else MasterKey("visa2", issuer)
    )
    token = VirtualToken.blank(key_sets={card_kvn: keys})

    result = burn_token(InProcessTransport(token), plan_for(profile, verify))

    assert result.outcome is Outcome.VERIFIED, result.reason


def test_a_fixed_key_version_picks_that_key_set_on_the_card(
    verify: VerifyConfig, tmp_path: Path
) -> None:
    profile, transport, issuer = _two_key_sets(tmp_path, key_version=2)
    # The card holds its transport keys first, so "any" (00) would give those.
    token = VirtualToken.blank(
        key_sets={
            1: StaticKeys.from_bytes(transport, transport, transport, aes=False),
            2: MasterKey("visa2", issuer),
        }
    )

    result = burn_token(InProcessTransport(token), plan_for(profile, verify))

    assert result.outcome is Outcome.VERIFIED, result.reason
    assert token.sequence_counters == {1: 0, 2: 1}  # SCP02 moved key set 02's counter only
