"""Key diversification on the host side: the data blocks, the methods, and agreement with
the card side's own implementation.

The published KCVs (GlobalPlatformPro) and the VISA2 end-to-end traces (kaoh) are checked
in test_gp_vectors.py and test_sim_vectors.py. Here the diversification data is written out
from its definition in globalplatform.md §1.6 and Dogtag's NistSP800_108KDF, and Dogtag's
KDF is recomputed with the standard library's hmac, apart from the product's code.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provision.gp.diversify import (
    Diversification,
    PlainMasterKey,
    diversify,
    emv_cps11_data,
    kdf3_input,
    nist_sp800_108_input,
    visa2_data,
)
from simulator.card import MasterKey, diversified_keys

KDD = bytes.fromhex("00010203040506070809")


def test_visa2_data_takes_kdd_bytes_0_1_and_4_7() -> None:
    assert visa2_data(KDD, 0x01).hex().upper() == "000104050607F001000104050607" + "0F01"


def test_emv_data_takes_the_six_rightmost_kdd_bytes() -> None:
    assert emv_cps11_data(KDD, 0x03).hex().upper() == "040506070809F003040506070809" + "0F03"


def test_kdf3_input_follows_the_gppro_template() -> None:
    assert kdf3_input(KDD, 0x02, 1).hex().upper() == "010000000200" + KDD.hex().upper()


def test_nist_input_is_counter_label_separator_kdd_length() -> None:
    assert nist_sp800_108_input(KDD, 2).hex().upper() == "020400" + KDD.hex().upper() + "0180"


def _dogtag_by_hand(master: bytes, kdd: bytes) -> list[bytes]:
    # KDF_CM_SHA256HMAC_L384: two HMAC-SHA256 rounds, 48 bytes kept, ENC ‖ MAC ‖ KEK, each
    # byte's low bit set so that its bit count is odd (DES parity).
    out = b"".join(
        hmac.new(master, bytes((i, 0x04, 0x00)) + kdd + b"\x01\x80", hashlib.sha256).digest()
        for i in (1, 2)
    )[:48]
    fixed = bytes(b if bin(b).count("1") % 2 else b ^ 1 for b in out)
    return [fixed[0:16], fixed[16:32], fixed[32:48]]


@pytest.mark.parametrize("length", [16, 24, 32])
def test_nist_sp800_108_matches_a_computation_by_hand(length: int) -> None:
    master = bytes(range(0x30, 0x30 + length))

    keys = diversify(
        Diversification.NIST_SP800_108, PlainMasterKey(master, Diversification.NIST_SP800_108), KDD
    )

    assert [keys.enc.value, keys.mac.value, keys.dek.value] == _dogtag_by_hand(master, KDD)
    assert not keys.aes


@pytest.mark.parametrize("length", [16, 24, 32])
def test_kdf3_keys_are_as_long_as_the_master(length: int) -> None:
    master = PlainMasterKey(bytes(length), Diversification.KDF3)

    keys = diversify(Diversification.KDF3, master, KDD)

    assert keys.aes and {len(k.value) for k in (keys.enc, keys.mac, keys.dek)} == {length}


def test_the_three_keys_differ() -> None:
    for method in (Diversification.VISA2, Diversification.EMV_CPS_11, Diversification.KDF3):
        keys = diversify(method, PlainMasterKey(bytes(range(16)), method), KDD)
        assert len({keys.enc.value, keys.mac.value, keys.dek.value}) == 3, method


def test_diversify_refuses_none_and_a_short_kdd() -> None:
    master = PlainMasterKey(bytes(16), Diversification.VISA2)

    with pytest.raises(ValueError, match="'none' uses the key set's keys"):
        diversify(Diversification.NONE, master, KDD)
    with pytest.raises(ValueError, match="10 bytes, not 8"):
        diversify(Diversification.VISA2, master, KDD[:8])


@pytest.mark.parametrize(
    ("method", "length"),
    [(Diversification.VISA2, 32), (Diversification.KDF3, 8), (Diversification.NONE, 16)],
)
def test_master_key_sizes(method: Diversification, length: int) -> None:
    with pytest.raises(ValueError, match="master key has"):
        PlainMasterKey(bytes(length), method)


def test_a_master_key_shows_its_kcv_only() -> None:
    master = PlainMasterKey(bytes(range(0x40, 0x50)), Diversification.VISA2)

    assert repr(master) == "PlainMasterKey(visa2, kcv=8BAF47)"
    assert PlainMasterKey(bytes(32), Diversification.NIST_SP800_108).kcv is None


METHODS = st.sampled_from(list(Diversification)[1:])


@given(
    method=METHODS,
    master=st.binary(min_size=32, max_size=32),
    kdd=st.binary(min_size=10, max_size=10),
)
def test_host_and_card_sides_agree(method: Diversification, master: bytes, kdd: bytes) -> None:
    # Two implementations written apart: the host's in provision/gp/diversify.py, the
    # issuer's (card side) in simulator/card.py.
    length = 24 if method in (Diversification.VISA2, Diversification.EMV_CPS_11) else 32
    host = diversify(method, PlainMasterKey(master[:length], method), kdd)

    card = diversified_keys(MasterKey(method.value, master[:length]), kdd)

    assert host == card
