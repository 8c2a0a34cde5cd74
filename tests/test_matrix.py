"""Burn and verify one simulated token for every protocol × i × level × diversification ×
key length the simulator supports.

The cases are read from the simulator itself (its channel classes, the levels each "i"
offers, its diversification methods and the key lengths its channels take), so a new
option there is a new case here. Each token's keys are made by the simulator's own
diversification from a random master key and a KDD that differs from the CUID; the host gets
only the profile.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provision.burn import Outcome, burn_token
from provision.gp.keys import Scp, StaticKeys
from provision.transport import InProcessTransport
from provision.verify import VerifyConfig
from simulator.card import DIVERSIFICATIONS, CardModel, MasterKey, VirtualToken
from simulator.scp import CHANNELS
from tests.burnkit import (
    EXTERNAL_AUTHENTICATE,
    padded_url,
    phone_home,
    plan_for,
    profile_text,
    write_profile,
)

# The diversification methods by the kind of key they make (globalplatform.md §1.6).
AES_METHODS = ("kdf3",)
KEY_LENGTHS = {Scp.SCP01: (16,), Scp.SCP02: (16,), Scp.SCP03: (16, 24, 32)}
MASTER_LENGTH = {"visa2": 16, "emv-cps-1.1": 24, "nist-sp800-108": 32}


@dataclass(frozen=True)
class Case:
    protocol: Scp
    i: int
    level: int
    diversification: str
    key_length: int

    def __str__(self) -> str:
        return (
            f"{self.protocol.name}-i{self.i:02X}-level{self.level:02X}-"
            f"{self.diversification}-{self.key_length * 8}"
        )


def _methods(protocol: Scp) -> tuple[str, ...]:
    aes = protocol is Scp.SCP03
    return ("none", *(m for m in DIVERSIFICATIONS if (m in AES_METHODS) == aes))


def _cases() -> Iterator[Case]:
    for protocol, channel in CHANNELS.items():
        for i in sorted(channel.implementations):
            for level in sorted(channel.levels_for(i)):
                for method in _methods(protocol):
                    for length in KEY_LENGTHS[protocol]:
                        yield Case(protocol, i, level, method, length)


CASES = list(_cases())


def _card_keys(case: Case) -> tuple[StaticKeys | MasterKey, dict[str, str]]:
    """The card's key set as the issuer made it, and the profile's key fields for it."""
    if case.diversification == "none":
        enc, mac, dek = (secrets.token_bytes(case.key_length) for _ in range(3))
        aes = case.protocol is Scp.SCP03
        fields = {"enc": enc.hex(), "mac": mac.hex(), "dek": dek.hex()}
        return StaticKeys.from_bytes(enc, mac, dek, aes=aes), fields
    length = (
        case.key_length
        if case.diversification in AES_METHODS
        else MASTER_LENGTH[case.diversification]
    )
    master = secrets.token_bytes(length)
    fields = {"diversification": case.diversification, "master": master.hex().upper()}
    return MasterKey(case.diversification, master), fields


@pytest.fixture(scope="module")
def verify() -> Iterator[VerifyConfig]:
    with phone_home() as config:
        yield config


def test_the_matrix_covers_every_protocol_option_and_level() -> None:
    assert {case.protocol for case in CASES} == {Scp.SCP01, Scp.SCP02, Scp.SCP03}
    assert {(c.protocol, c.i) for c in CASES} >= {
        (Scp.SCP01, 0x05),
        (Scp.SCP01, 0x15),
        (Scp.SCP02, 0x15),
        (Scp.SCP02, 0x55),
        (Scp.SCP03, 0x00),
        (Scp.SCP03, 0x10),
        (Scp.SCP03, 0x70),
    }
    assert {c.level for c in CASES if c.protocol is Scp.SCP03 and c.i == 0x70} == {
        0x01,
        0x03,
        0x11,
        0x13,
        0x33,
    }
    assert {c.diversification for c in CASES} == {"none", *DIVERSIFICATIONS}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_burn_and_verify(
    case: Case, verify: VerifyConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kvn = secrets.randbelow(127) + 1
    card_keys, fields = _card_keys(case)
    channel = {
        "protocol": case.protocol.name,
        "i": f"{case.i:02X}",
        "security_level": f"{case.level:02X}",
    }
    profile = write_profile(
        tmp_path, profile_text(channel, [{"kvn": kvn, "test_keys": True, **fields}])
    )
    model = CardModel(
        protocol=case.protocol, i=case.i, applet_levels=frozenset({0x01, 0x03, case.level})
    )
    cuid, kdd = secrets.token_bytes(10), secrets.token_bytes(10)
    token = VirtualToken.blank(cuid, model=model, key_sets={kvn: card_keys}, kdd=kdd)

    with caplog.at_level(logging.INFO, logger="provision.gp.session"):
        result = burn_token(InProcessTransport(token), plan_for(profile, verify))

    assert result.outcome is Outcome.VERIFIED, result.reason
    assert token.issuer_info == padded_url()
    assert token.commands_seen[EXTERNAL_AUTHENTICATE] == 1
    assert token.failed_auth_count == 0
    # The host derives pseudo-random challenges as the card draws them (the applet's AID).
    assert "not the pseudo-random one" not in caplog.text
