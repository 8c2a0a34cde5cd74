"""The card side of SCP01, SCP02 and SCP03 against the published vectors in tests/vectors.

For each trace the simulator gets the trace's static keys (or, for the VISA2 traces, its
master key, diversified by the card side with the trace's KDD), key version, sequence
counter and (for a random challenge) card challenge. It must then produce the trace's
INITIALIZE UPDATE response byte for byte, accept its EXTERNAL AUTHENTICATE, unwrap every
``wrapped_capdu`` to its plain command and, at the R-MAC / R-ENC levels, protect each plain
response exactly as the trace's card did. The KDF and diversification files go through the
card side's own diversification and session keys. ``kcv-pysim-aes`` has no card side: a key
check value is something a host shows, not something a card computes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provision.gp.keys import Key, Scp, StaticKeys
from provision.iso7816 import CommandApdu, split_response
from simulator.card import CardModel, MasterKey, VirtualToken, diversified_keys
from simulator.scp import (
    CHANNELS,
    CardChannel,
    scp03_pseudo_random_challenge,
)
from tests.vectorfiles import VECTOR_DIR, h, load

TRACES = sorted(
    path.stem
    for path in VECTOR_DIR.glob("scp0*.json")
    if load(path.stem).get("commands") is not None
)
# The one trace whose card reports key version 00, which no card holds as a key set (00
# asks for "the first" in INITIALIZE UPDATE): it is replayed on the channel object alone.
CHANNEL_ONLY = {"scp03-kaoh-i70-aes128-level33-echo"}
ON_A_TOKEN = [name for name in TRACES if name not in CHANNEL_ONLY]
WITH_AID = [n for n in TRACES if "pseudo_random_card_challenge_aid" in load(n).get("derived", {})]
CARD_SIDE = {*TRACES, "kcv-gppro-diversification-sessionkeys", "kdf-omfgp-scp02-scp03"}
HOST_ONLY = {"kcv-pysim-aes"}

# pySim's SCP02 trace asks for key version 20 and the card answers 70 (a sysmocom quirk,
# noted in the file). The simulator has one key set, 70, and is asked for "first" (00).
KVN_QUIRK = {"scp02-pysim-3keys-cmac-4cases": 0x00}
TEST_KEY = bytes(range(0x40, 0x50))


def _keys(vector: dict[str, Any]) -> StaticKeys | MasterKey:
    if "master_key" in vector:
        return MasterKey(vector["diversification"], h(vector["master_key"]))
    static = vector["static_keys"]
    aes = vector["protocol"] == "SCP03"
    return StaticKeys.from_bytes(h(static["enc"]), h(static["mac"]), h(static["dek"]), aes=aes)


def _static(vector: dict[str, Any]) -> StaticKeys:
    keys = _keys(vector)
    if isinstance(keys, MasterKey):
        return diversified_keys(
            keys, h(vector["parsed_initialize_update"]["key_diversification_data"])
        )
    return keys


def _token_for(vector: dict[str, Any]) -> VirtualToken:
    """A token set up to replay ``vector``: same keys, KDD, kvn, counter and challenge."""
    parsed = vector["parsed_initialize_update"]
    protocol = Scp[vector["protocol"]]
    i = int(vector["scp_i"], 16)
    aid = vector.get("derived", {}).get("pseudo_random_card_challenge_aid")
    model = CardModel.for_protocol(protocol, i, applet_levels=_levels(vector))
    if aid is not None:
        model = CardModel.for_protocol(
            protocol, i, card_manager_aid=h(aid), applet_levels=_levels(vector)
        )

    kvn = int(parsed["key_version"], 16)
    token = VirtualToken.blank(
        model=model, key_sets={kvn: _keys(vector)}, kdd=h(parsed["key_diversification_data"])
    )

    # SCP03 with a pseudo-random challenge increments the counter before using it
    # (Amd D §6.2.2.1); SCP02 reports the stored value (GPC E.5.1.6); SCP01 has none.
    if "sequence_counter" in parsed:
        seq = int(parsed["sequence_counter"], 16)
        token.set_sequence_counter(kvn, seq - 1 if protocol == Scp.SCP03 and i & 0x10 else seq)
    card_challenge = h(parsed["card_challenge"])
    token.card_challenge_source = lambda n: card_challenge[:n]
    return token


def _levels(vector: dict[str, Any]) -> frozenset[int]:
    return frozenset({0x01, 0x03, int(vector["security_level"], 16)})


def _check_commands(vector: dict[str, Any], channel: CardChannel) -> None:
    for command in vector["commands"]:
        plain = command.get("plain_capdu") or command["derived_plain_capdu"]
        assert channel.unwrap(
            CommandApdu.decode(h(command["wrapped_capdu"]))
        ) == CommandApdu.decode(h(plain))
        if command.get("protected_response"):
            data, sw = split_response(h(command["plain_rapdu"]))
            assert channel.wrap_response(data, sw) == h(command["rapdu"])


@pytest.mark.parametrize("name", ON_A_TOKEN)
def test_card_replays_trace(name: str) -> None:
    vector = load(name)
    token = _token_for(vector)

    initialize_update = bytearray(h(vector["initialize_update"]["capdu"]))
    initialize_update[2] = KVN_QUIRK.get(name, initialize_update[2])
    assert token.process(bytes(initialize_update)) == h(vector["initialize_update"]["rapdu"])
    assert token.process(h(vector["external_authenticate"]["capdu"])) == b"\x90\x00"

    channel = token.card_manager.channel
    assert channel is not None and channel.authenticated
    _check_commands(vector, channel)


def _channel(vector: dict[str, Any]) -> CardChannel:
    parsed = vector["parsed_initialize_update"]
    channel_class = CHANNELS[Scp[vector["protocol"]]]
    return channel_class(
        _static(vector),
        h(vector["host_challenge"]),
        h(parsed["card_challenge"]),
        sequence_counter=int(parsed.get("sequence_counter", "00"), 16),
        i=int(vector["scp_i"], 16),
    )


@pytest.mark.parametrize("name", sorted(CHANNEL_ONLY))
def test_card_channel_replays_trace(name: str) -> None:
    vector = load(name)
    channel = _channel(vector)

    assert channel.card_cryptogram() == h(vector["parsed_initialize_update"]["card_cryptogram"])
    assert channel.authenticate(CommandApdu.decode(h(vector["external_authenticate"]["capdu"])))
    _check_commands(vector, channel)


@pytest.mark.parametrize("name", TRACES)
def test_deterministic_constructor_gives_the_card_cryptogram(name: str) -> None:
    vector = load(name)
    channel = _channel(vector)

    assert channel.card_cryptogram() == h(vector["parsed_initialize_update"]["card_cryptogram"])
    assert channel.authenticate(CommandApdu.decode(h(vector["external_authenticate"]["capdu"])))


@pytest.mark.parametrize("name", WITH_AID)
def test_pseudo_random_challenge(name: str) -> None:
    vector = load(name)
    parsed = vector["parsed_initialize_update"]
    aid = h(vector["derived"]["pseudo_random_card_challenge_aid"])
    key_enc = h(vector["static_keys"]["enc"])

    challenge = scp03_pseudo_random_challenge(key_enc, int(parsed["sequence_counter"], 16), aid)

    assert challenge == h(parsed["card_challenge"])


def test_kcv_gppro_diversification_and_session_keys_on_the_card_side() -> None:
    checked = 0
    for case in load("kcv-gppro-diversification-sessionkeys")["cases"]:
        name, given, expected = case["name"], case["input"], case["expected"]
        if name.startswith("diversify kdf3 external"):
            keys = diversified_keys(MasterKey("kdf3", h(given["master"])), h(given["kdd"]))
            assert keys.enc.value.hex().upper() == expected
        elif name.startswith("diversify"):
            method = {"emv_cps11": "emv-cps-1.1", "visa2": "visa2"}.get(name.split()[1], "kdf3")
            keys = diversified_keys(MasterKey(method, h(given["master"])), h(given["kdd"]))
            assert [keys.enc.kcv, keys.mac.kcv, keys.dek.kcv] == expected
        elif name.startswith("SCP01 session keys"):
            # [S-ENC, static DEK]: the card keeps its DEK static under SCP01
            context = h(given["context"])
            channel = CHANNELS[Scp.SCP01](_des(TEST_KEY), context[:8], context[8:], i=0x05)
            assert [channel.session_key_kcvs()["s_enc"], Key(TEST_KEY).kcv] == expected
        elif name.startswith("SCP02 session keys"):
            seq = int(given["seq"], 16)
            channel = CHANNELS[Scp.SCP02](_des(TEST_KEY), bytes(8), bytes(6), sequence_counter=seq)
            kcvs = channel.session_key_kcvs()
            assert [kcvs[role] for role in ("s_enc", "s_mac", "s_dek", "s_rmac")] == expected
        else:
            continue  # a 10-byte SCP03 context, key encryption, a bare KDF: no card side
        checked += 1
    assert checked == 8


def _des(key: bytes) -> StaticKeys:
    return StaticKeys.from_bytes(key, key, key, aes=False)


def test_kdf_omfgp_on_the_card_side() -> None:
    for case in load("kdf-omfgp-scp02-scp03")["cases"]:
        name, given, expected = case["name"], case["input"], case["expected"]
        if name.startswith("SCP02"):
            seq = int(given["seq"], 16)
            channel = CHANNELS[Scp.SCP02](
                _des(h(given["key"])), bytes(8), bytes(6), sequence_counter=seq
            )
            role = {"0101": "s_mac", "0102": "s_rmac", "0182": "s_enc"}[given["const"]]
            assert channel.session_key_kcvs()[role] == Key(h(expected)).kcv
        elif name.startswith("SCP03 pseudo-random"):
            challenge = scp03_pseudo_random_challenge(
                TEST_KEY, int(given["seq"], 16), h(given["aid"])
            )
            assert challenge.hex().upper() == expected
        else:
            _omfgp_scp03(name, given, expected)


def _omfgp_scp03(name: str, given: dict[str, str], expected: str) -> None:
    context = h(next(value for key, value in given.items() if key.startswith("context")))
    keys = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=True)
    channel = CHANNELS[Scp.SCP03](keys, context[:8], context[8:], sequence_counter=0, i=0x00)
    if name.startswith("SCP03 card cryptogram"):
        assert channel.card_cryptogram().hex().upper() == expected
    elif name.startswith("SCP03 host cryptogram"):
        # What the card compares an EXTERNAL AUTHENTICATE's cryptogram with.
        assert channel._host_cryptogram().hex().upper() == expected
    else:
        role = {"S-ENC": "s_enc", "S-MAC": "s_mac", "S-RMAC": "s_rmac"}[name.split()[1]]
        assert channel.session_key_kcvs()[role] == Key(h(expected), aes=True).kcv


def test_every_vector_file_is_covered_on_the_card_side_or_named_host_only() -> None:
    files = {path.stem for path in Path(VECTOR_DIR).glob("*.json")} - {"INDEX"}
    assert files == CARD_SIDE | HOST_ONLY


def test_scp02_counter_moves_on_authentication_and_scp03_on_initiation() -> None:
    scp02 = _token_for(load("scp02-kaoh-i15-cmac-getstatus"))
    scp03 = _token_for(load("scp03-kaoh-i70-aes128-getstatus"))
    for token, name in (
        (scp02, "scp02-kaoh-i15-cmac-getstatus"),
        (scp03, "scp03-kaoh-i70-aes128-getstatus"),
    ):
        vector = load(name)
        token.process(h(vector["initialize_update"]["capdu"]))
        token.process(h(vector["external_authenticate"]["capdu"]))

    assert scp02.sequence_counters == {0x01: 0x069F + 1}
    assert scp03.sequence_counters == {0x30: 0x000025}


def test_a_vector_with_a_wrong_key_is_refused() -> None:
    vector = load("scp03-kaoh-i70-aes128-getstatus")
    token = _token_for(vector)
    wrong = bytearray(h(vector["external_authenticate"]["capdu"]))
    wrong[-1] ^= 0x01

    token.process(h(vector["initialize_update"]["capdu"]))

    assert token.process(bytes(wrong)) == b"\x63\x00"
    assert token.card_manager.channel is None
    assert token.failed_auth_count == 1
