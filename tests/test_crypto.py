"""The shared GlobalPlatform primitives against public vectors and their definitions."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import given
from hypothesis import strategies as st

from provision.gp import crypto
from provision.gp.crypto import TripleDES
from tests.vectorfiles import h, load


def test_aes_kcv_vectors() -> None:
    for case in load("kcv-pysim-aes")["cases"]:
        assert crypto.kcv_aes(h(case["input"]["key"])).hex().upper() == case["expected"]


def test_des_kcv_of_the_test_key() -> None:
    # 8BAF47 is the KCV GlobalPlatformPro prints for the default 40..4F key.
    assert crypto.kcv_des(bytes(range(0x40, 0x50))).hex().upper() == "8BAF47"


@pytest.mark.parametrize(
    "case", [c for c in load("kdf-omfgp-scp02-scp03")["cases"] if c["name"].startswith("SCP02")]
)
def test_scp02_session_key_derivation(case: dict[str, dict[str, str]]) -> None:
    given_ = case["input"]
    block = h(given_["const"]) + h(given_["seq"]) + bytes(12)
    assert crypto.des3_cbc_encrypt(h(given_["key"]), block) == h(str(case["expected"]))


def test_scp03_kdf_vectors() -> None:
    cases = {c["name"]: c for c in load("kdf-omfgp-scp02-scp03")["cases"]}
    key = h(cases["SCP03 S-ENC"]["input"]["key"])
    context = h(cases["SCP03 S-MAC"]["input"]["context"])

    s_enc = crypto.scp03_kdf(key, 0x04, context, 128)
    s_mac = crypto.scp03_kdf(key, 0x06, context, 128)
    assert s_enc == h(cases["SCP03 S-ENC"]["expected"])
    assert s_mac == h(cases["SCP03 S-MAC"]["expected"])
    assert crypto.scp03_kdf(key, 0x07, context, 128) == h(cases["SCP03 S-RMAC"]["expected"])

    card = cases["SCP03 card cryptogram (S-MAC, const 00, L=0040)"]
    host = cases["SCP03 host cryptogram (S-MAC, const 01, L=0040)"]
    assert crypto.scp03_kdf(s_mac, 0x00, context, 64) == h(card["expected"])
    assert crypto.scp03_kdf(s_mac, 0x01, context, 64) == h(host["expected"])

    challenge = cases["SCP03 pseudo-random card challenge (Key-ENC, const 02, L=0040, seq||AID)"]
    seq_aid = h(challenge["input"]["seq"]) + h(challenge["input"]["aid"])
    assert crypto.scp03_kdf(key, 0x02, seq_aid, 64) == h(challenge["expected"])


def test_retail_mac_equals_its_definition() -> None:
    # ISO/IEC 9797-1 MAC algorithm 3, padding done by the caller: single-DES CBC under K1,
    # then decrypt under K2 and encrypt under K1 on the last block. Built here from the
    # library's cipher directly (DES as 3DES with one key repeated), not from gp.crypto.
    key = bytes(range(0x40, 0x50))
    k1, k2 = key[:8], key[8:]
    data = b"retail mac check data" + b"\x80\x00\x00"  # 21 bytes, method-2 padded to 24

    def des(k: bytes, mode: modes.Mode, block: bytes, *, decrypt: bool = False) -> bytes:
        cipher = Cipher(TripleDES(k * 3), mode)
        worker = cipher.decryptor() if decrypt else cipher.encryptor()
        return worker.update(block) + worker.finalize()

    chain = des(k1, modes.CBC(bytes(8)), data)[-8:]
    step = des(k2, modes.ECB(), chain, decrypt=True)  # noqa: S305
    expected = des(k1, modes.ECB(), step)  # noqa: S305
    assert crypto.mac_retail(key, data) == expected


@given(st.binary(max_size=64), st.sampled_from([8, 16]))
def test_pad80_round_trip(data: bytes, block: int) -> None:
    padded = crypto.pad80(data, block)
    assert len(padded) % block == 0
    assert len(padded) > len(data)
    assert crypto.unpad80(padded, block) == data


@pytest.mark.parametrize("bad", [b"", b"\x00" * 8, b"\x01" * 8, b"\x80" + bytes(15)])
def test_unpad80_rejects_bad_padding(bad: bytes) -> None:
    with pytest.raises(ValueError):
        crypto.unpad80(bad, 8)
