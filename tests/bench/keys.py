"""Print what key diversification and a burn per secure-channel kind cost, in process.

    .venv/bin/python -m tests.bench.keys [TOKENS]

Each burn runs against a simulated token and includes the verification (a Phone Home fetch
over loopback). Numbers vary with the machine; nothing here asserts them.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from pathlib import Path

from provision.burn import Outcome, burn_token
from provision.gp.diversify import Diversification, PlainMasterKey, diversify
from provision.gp.keys import Scp
from provision.transport import InProcessTransport
from simulator.card import CardModel, MasterKey, VirtualToken
from tests.burnkit import phone_home, plan_for, profile_text, write_profile

MASTER_LENGTHS = {
    Diversification.VISA2: 16,
    Diversification.EMV_CPS_11: 24,
    Diversification.KDF3: 32,
    Diversification.NIST_SP800_108: 32,
}
CHANNELS = [
    ("SCP01", "05", "03", "visa2", 16),
    ("SCP02", "15", "03", "visa2", 16),
    ("SCP02", "55", "03", "nist-sp800-108", 32),
    ("SCP03", "70", "03", "kdf3", 16),
    ("SCP03", "70", "33", "kdf3", 32),
]


def bench_diversify(cards: int) -> None:
    for method, length in MASTER_LENGTHS.items():
        master = PlainMasterKey(secrets.token_bytes(length), method)
        kdds = [secrets.token_bytes(10) for _ in range(cards)]
        start = time.perf_counter()
        for kdd in kdds:
            diversify(method, master, kdd)
        per_card = (time.perf_counter() - start) / cards * 1e6
        print(f"diversify {method}: {per_card:.0f} us per card")


def bench_burns(tokens: int) -> None:
    with phone_home() as verify, tempfile.TemporaryDirectory() as directory:
        for protocol, i, level, method, length in CHANNELS:
            master = secrets.token_bytes(length)
            key_set = {
                "kvn": 1,
                "test_keys": True,
                "diversification": method,
                "master": master.hex(),
            }
            channel = {"protocol": protocol, "i": i, "security_level": level}
            plan = plan_for(
                write_profile(Path(directory), profile_text(channel, [key_set])), verify
            )
            model = CardModel(Scp[protocol], int(i, 16), frozenset({0x01, 0x03, int(level, 16)}))
            cards = [
                VirtualToken.blank(model=model, key_sets={1: MasterKey(method, master)})
                for _ in range(tokens)
            ]

            start = time.perf_counter()
            for card in cards:
                assert burn_token(InProcessTransport(card), plan).outcome is Outcome.VERIFIED
            per_token = (time.perf_counter() - start) / tokens * 1e3
            name = f"{protocol} i={i} level {level} {method}"
            print(f"burn and verify {name}: {per_token:.2f} ms per token")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    bench_diversify(count * 10)
    bench_burns(count)
