"""The host side against every public vector file in tests/vectors, one test per file.

Trace files are replayed byte for byte through :func:`open_secure_channel`: the host must
send the trace's EXTERNAL AUTHENTICATE and wrapped commands exactly, and unwrap protected
responses to the trace's plain ones. The KCV and KDF files go through the diversification,
the session classes and the key objects. Expected values are the files' own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from provision.gp import crypto, scp03
from provision.gp.diversify import Diversification, PlainMasterKey, diversify
from provision.gp.keys import Key, Scp, SecurityLevel, StaticKeys
from provision.gp.scp01 import Scp01Session
from provision.gp.scp02 import Scp02Session
from provision.gp.scp03 import Scp03Session
from provision.gp.session import ChannelParameters, open_secure_channel
from provision.iso7816 import CommandApdu, split_response
from provision.keysource import ProfileCardKeys
from tests.cardkeys import inline, inline_master, static_keys
from tests.scripted import ScriptedTransport
from tests.vectorfiles import VECTOR_DIR, h, load

TRACES = sorted(
    path.stem
    for path in VECTOR_DIR.glob("scp0*.json")
    if load(path.stem).get("commands") is not None
)
TEST_KEY = bytes(range(0x40, 0x50))
DIVERSIFICATIONS = {"visa2": Diversification.VISA2}


def _provider(vector: dict[str, Any]) -> ProfileCardKeys:
    protocol = Scp[vector["protocol"]]
    kvn = int(vector["parsed_initialize_update"]["key_version"], 16)
    if "master_key" in vector:
        method = DIVERSIFICATIONS[vector["diversification"]]
        return inline_master(kvn, protocol, method, h(vector["master_key"]))
    keys = vector["static_keys"]
    return inline(
        kvn, protocol, static_keys(protocol, h(keys["enc"]), h(keys["mac"]), h(keys["dek"]))
    )


def _params(vector: dict[str, Any]) -> ChannelParameters:
    aid = vector.get("derived", {}).get("pseudo_random_card_challenge_aid")
    return ChannelParameters(
        scp=Scp[vector["protocol"]],
        i=int(vector["scp_i"], 16),
        level=SecurityLevel(int(vector["security_level"], 16)),
        kvn=h(vector["initialize_update"]["capdu"])[2],
        invoking_aid=h(aid) if aid else None,
    )


def _response(vector: dict[str, Any], command: dict[str, Any]) -> bytes:
    """The card's answer: the trace's, or for an R-MAC level a bare 9000 with its R-MAC,
    computed here from the trace's own S-RMAC and MAC chaining value (Amd D §6.2.5)."""
    if "rapdu" in command:
        return h(command["rapdu"])
    if not int(vector["security_level"], 16) & SecurityLevel.R_MAC:
        return h("9000")
    s_rmac = h(vector["derived"]["session_keys"]["s_rmac"])
    chain = h(command["derived_mac_chaining_value_after"])
    return crypto.aes_cmac(s_rmac, chain + h("9000"))[:8] + h("9000")


def _plain(command: dict[str, Any]) -> bytes:
    return h(command.get("plain_capdu") or command["derived_plain_capdu"])


@pytest.mark.parametrize("name", TRACES)
def test_trace_replays_through_the_host(name: str, caplog: pytest.LogCaptureFixture) -> None:
    vector = load(name)
    iu, ea = vector["initialize_update"], vector["external_authenticate"]
    script = [(h(iu["capdu"]), h(iu["rapdu"])), (h(ea["capdu"]), h(ea["rapdu"]))]
    script += [(h(c["wrapped_capdu"]), _response(vector, c)) for c in vector["commands"]]
    transport = ScriptedTransport(script)

    with caplog.at_level(logging.INFO, logger="provision.gp.session"):
        channel = open_secure_channel(
            transport,
            _params(vector),
            _provider(vector),
            host_challenge=h(vector["host_challenge"]),
        )
        answers = [channel.send(CommandApdu.decode(_plain(c))) for c in vector["commands"]]

    assert transport.done
    for command, (data, sw) in zip(vector["commands"], answers, strict=True):
        if command.get("protected_response"):
            assert (data, sw) == split_response(h(command["plain_rapdu"]))
        elif "rapdu" in command:
            assert (data, sw) == split_response(h(command["rapdu"]))
    assert "not the pseudo-random one" not in caplog.text


def test_level33_echo_challenge_is_not_pseudo_random_and_the_card_still_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The trace's card says i=70 but its challenge is not KDF(Key-ENC, 02, seq ‖ AID) for the
    # source's invoking AID; the card cryptogram verifies, so the host goes on (only notes it).
    vector = load("scp03-kaoh-i70-aes128-level33-echo")
    iu, ea = vector["initialize_update"], vector["external_authenticate"]
    transport = ScriptedTransport(
        [(h(iu["capdu"]), h(iu["rapdu"])), (h(ea["capdu"]), h(ea["rapdu"]))]
    )
    params = ChannelParameters(
        Scp.SCP03, 0x70, SecurityLevel(0x33), invoking_aid=h("A00000003000020007")
    )

    with caplog.at_level(logging.INFO, logger="provision.gp.session"):
        open_secure_channel(
            transport, params, _provider(vector), host_challenge=h(vector["host_challenge"])
        )

    assert transport.done
    assert "not the pseudo-random one" in caplog.text


# -- the KCV and KDF files --------------------------------------------------------------


def _kcvs(keys: StaticKeys) -> list[str]:
    return [keys.enc.kcv, keys.mac.kcv, keys.dek.kcv]


def _gppro_case(case: dict[str, Any]) -> None:
    name, given, expected = case["name"], case["input"], case["expected"]
    if name.startswith("diversify kdf3 external"):
        keys = diversify(
            Diversification.KDF3,
            PlainMasterKey(h(given["master"]), Diversification.KDF3),
            h(given["kdd"]),
        )
        assert keys.enc.value.hex().upper() == expected
    elif name.startswith("diversify"):
        method = {"emv_cps11": Diversification.EMV_CPS_11, "visa2": Diversification.VISA2}.get(
            name.split()[1], Diversification.KDF3
        )
        master = PlainMasterKey(h(given["master"]), method)
        assert _kcvs(diversify(method, master, h(given["kdd"]))) == expected
    elif name.startswith("SCP01 session keys"):
        context = h(given["context"])
        session = Scp01Session(
            _des(TEST_KEY), i=0x05, host_challenge=context[:8], card_challenge=context[8:]
        )
        assert [session.session_key_kcvs()["s_enc"], Key(TEST_KEY).kcv] == expected
    elif name.startswith("SCP02 session keys"):
        session = Scp02Session(
            _des(TEST_KEY),
            i=0x15,
            sequence_counter=h(given["seq"]),
            host_challenge=bytes(8),
            card_challenge=bytes(6),
        )
        kcvs = session.session_key_kcvs()
        assert [kcvs["s_enc"], kcvs["s_mac"], kcvs["s_dek"], kcvs["s_rmac"]] == expected
    elif name.startswith("SCP03 KDF session keys"):
        # GPPro's unit test feeds the KDF a 10-byte context, so this goes to the KDF itself.
        context = h(given["context"])
        keys = [
            crypto.scp03_kdf(TEST_KEY, constant, context, 128) for constant in (0x04, 0x06, 0x07)
        ]
        assert [Key(k, aes=True).kcv for k in keys] + [Key(TEST_KEY, aes=True).kcv] == expected
    elif name.startswith("SCP01 key encryption"):
        assert crypto.des3_ecb_encrypt(TEST_KEY, TEST_KEY).hex().upper() == expected
    elif name.startswith("SCP02 key encryption"):
        s_dek = crypto.des3_cbc_encrypt(TEST_KEY, h("01810000") + bytes(12))
        assert crypto.des3_ecb_encrypt(s_dek, TEST_KEY).hex().upper() == expected
    elif name.startswith("generic counter KDF"):
        derived = crypto.aes_cmac(TEST_KEY, bytes(16) + b"\x01" + bytes(16))
        assert Key(derived, aes=True).kcv == expected
    else:
        raise AssertionError(f"case {name!r} is not checked")


def _des(key: bytes) -> StaticKeys:
    return StaticKeys.from_bytes(key, key, key, aes=False)


def test_kcv_gppro_diversification_sessionkeys() -> None:
    for case in load("kcv-gppro-diversification-sessionkeys")["cases"]:
        _gppro_case(case)


def test_kcv_pysim_aes() -> None:
    for case in load("kcv-pysim-aes")["cases"]:
        assert Key(h(case["input"]["key"]), aes=True).kcv == case["expected"]


def _omfgp_case(case: dict[str, Any]) -> None:
    name, given, expected = case["name"], case["input"], case["expected"]
    if name.startswith("SCP02"):
        session = Scp02Session(
            _des(h(given["key"])),
            i=0x15,
            sequence_counter=h(given["seq"]),
            host_challenge=bytes(8),
            card_challenge=bytes(6),
        )
        role = {"0101": "s_mac", "0102": "s_rmac", "0182": "s_enc"}[given["const"]]
        assert session.session_key_kcvs()[role] == Key(h(expected)).kcv
        return
    if name.startswith("SCP03 pseudo-random"):
        challenge = scp03.pseudo_random_card_challenge(TEST_KEY, h(given["seq"]), h(given["aid"]))
        assert challenge.hex().upper() == expected
        return

    context = h(next(value for key, value in given.items() if key.startswith("context")))
    keys = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=True)
    session = Scp03Session(keys, i=0x00, host_challenge=context[:8], card_challenge=context[8:])
    if "cryptogram" in name:
        ours = (
            session.card_cryptogram()
            if name.startswith("SCP03 card")
            else session.host_cryptogram()
        )
        assert ours.hex().upper() == expected
    else:
        role = {"S-ENC": "s_enc", "S-MAC": "s_mac", "S-RMAC": "s_rmac"}[name.split()[1]]
        assert session.session_key_kcvs()[role] == Key(h(expected), aes=True).kcv


def test_kdf_omfgp_scp02_scp03() -> None:
    for case in load("kdf-omfgp-scp02-scp03")["cases"]:
        _omfgp_case(case)


def test_every_vector_file_has_a_host_test() -> None:
    covered = set(TRACES) | {
        "kcv-gppro-diversification-sessionkeys",
        "kcv-pysim-aes",
        "kdf-omfgp-scp02-scp03",
    }
    files = {path.stem for path in Path(VECTOR_DIR).glob("*.json")} - {"INDEX"}
    assert files == covered
    assert len(files) == 24  # as globalplatform.md §2 lists them
