"""Card static keys diversified from a master key and the card's key diversification data.

Each method builds its diversification data from the KDD of the INITIALIZE UPDATE response
(which may differ from the CUID) and runs one primitive of the master key over it: 3DES-ECB
for VISA2 and EMV CPS 1.1, AES-CMAC for KDF3, HMAC-SHA256 for the NIST SP 800-108 KDF of
Dogtag's TKS (globalplatform.md §1.6, esc-phone-home.md §4.3). The master key is reached only
through :class:`MasterKey`, so it may stay inside an HSM: only the per-card keys come out.
"""

from __future__ import annotations

from enum import StrEnum, unique
from typing import Protocol

from . import crypto
from .keys import Key, StaticKeys

KDD_LENGTH = 10

# Key types in the diversification data (globalplatform.md §1.6): ENC, MAC, DEK.
KEY_TYPE_ENC = 0x01
KEY_TYPE_MAC = 0x02
KEY_TYPE_DEK = 0x03
KEY_TYPES = (KEY_TYPE_ENC, KEY_TYPE_MAC, KEY_TYPE_DEK)

# Dogtag NistSP800_108KDF: label 04, L = 384 bits, two HMAC-SHA256 rounds.
NIST_LABEL = 0x04
NIST_OUTPUT_BITS = 384
NIST_KEY_LENGTH = 16


@unique
class Diversification(StrEnum):
    """How a key set's card keys come from its keys, as a profile names it."""

    NONE = "none"
    VISA2 = "visa2"
    EMV_CPS_11 = "emv-cps-1.1"
    KDF3 = "kdf3"
    NIST_SP800_108 = "nist-sp800-108"

    @property
    def aes(self) -> bool | None:
        """True for AES card keys, False for 3DES, None when the method works for both."""
        return {Diversification.NONE: None, Diversification.KDF3: True}.get(self, False)


class MasterKey(Protocol):
    """The operations diversification needs of a master key (KMC), wherever the key lives."""

    @property
    def length(self) -> int:
        """The key length in bytes."""
        ...

    @property
    def kcv(self) -> str | None:
        """The key check value, or None for a key that has none (an HMAC key)."""
        ...

    def des3_ecb(self, data: bytes) -> bytes: ...

    def aes_cmac(self, data: bytes) -> bytes: ...

    def hmac_sha256(self, data: bytes) -> bytes: ...


MASTER_KEY_SIZES = {
    Diversification.VISA2: (16, 24),
    Diversification.EMV_CPS_11: (16, 24),
    Diversification.KDF3: (16, 24, 32),
    Diversification.NIST_SP800_108: (16, 24, 32),
}


class PlainMasterKey:
    """A master key held in host memory (an inline test key, a key file or a variable)."""

    def __init__(self, value: bytes, method: Diversification) -> None:
        sizes = MASTER_KEY_SIZES.get(method, ())
        if len(value) not in sizes:
            expected = " or ".join(map(str, sizes)) or "no master key"
            raise ValueError(f"a {method} master key has {expected} bytes, not {len(value)}")
        self._value = value
        self._method = method

    def __repr__(self) -> str:
        return f"PlainMasterKey({self._method}, kcv={self.kcv})"

    @property
    def length(self) -> int:
        return len(self._value)

    @property
    def kcv(self) -> str | None:
        if self._method is Diversification.NIST_SP800_108:
            return None
        return Key(self._value, aes=self._method is Diversification.KDF3).kcv

    def des3_ecb(self, data: bytes) -> bytes:
        return crypto.des3_ecb_encrypt(self._value, data)

    def aes_cmac(self, data: bytes) -> bytes:
        return crypto.aes_cmac(self._value, data)

    def hmac_sha256(self, data: bytes) -> bytes:
        return crypto.hmac_sha256(self._value, data)


def visa2_data(kdd: bytes, key_type: int) -> bytes:
    """VISA2: KDD[0..1] ‖ KDD[4..7] ‖ F0 ‖ t ‖ KDD[0..1] ‖ KDD[4..7] ‖ 0F ‖ t."""
    part = kdd[0:2] + kdd[4:8]
    return part + bytes((0xF0, key_type)) + part + bytes((0x0F, key_type))


def emv_cps11_data(kdd: bytes, key_type: int) -> bytes:
    """EMV CPS 1.1: the six rightmost KDD bytes ‖ F0 ‖ t ‖ the same ‖ 0F ‖ t."""
    part = kdd[4:10]
    return part + bytes((0xF0, key_type)) + part + bytes((0x0F, key_type))


def kdf3_input(kdd: bytes, key_type: int, counter: int) -> bytes:
    """KDF3 (GPPro template ``$_ 00 00 00 $k 00 $0..$9``): i ‖ 00 00 00 ‖ t ‖ 00 ‖ KDD."""
    return bytes((counter, 0, 0, 0, key_type, 0)) + kdd


def nist_sp800_108_input(kdd: bytes, counter: int) -> bytes:
    """Dogtag's KDF_CM_SHA256HMAC_L384 input: i ‖ label 04 ‖ 00 ‖ KDD ‖ L (0180)."""
    return bytes((counter, NIST_LABEL, 0)) + kdd + NIST_OUTPUT_BITS.to_bytes(2, "big")


def diversify(method: Diversification, master: MasterKey, kdd: bytes) -> StaticKeys:
    """The card's Key-ENC, Key-MAC and Key-DEK from ``master`` and the card's KDD."""
    if method is Diversification.NONE:
        raise ValueError("diversification 'none' uses the key set's keys as they are")
    if len(kdd) != KDD_LENGTH:
        raise ValueError(f"key diversification data has {KDD_LENGTH} bytes, not {len(kdd)}")

    if method is Diversification.NIST_SP800_108:
        return _nist_sp800_108(master, kdd)
    if method is Diversification.KDF3:
        return StaticKeys(*(Key(_kdf3(master, kdd, t), aes=True) for t in KEY_TYPES))
    data = visa2_data if method is Diversification.VISA2 else emv_cps11_data
    return StaticKeys(*(Key(master.des3_ecb(data(kdd, t))) for t in KEY_TYPES))


def _kdf3(master: MasterKey, kdd: bytes, key_type: int) -> bytes:
    # NIST SP 800-108 counter mode with AES-CMAC, as many blocks as the master key is long.
    out = b""
    counter = 1
    while len(out) < master.length:
        out += master.aes_cmac(kdf3_input(kdd, key_type, counter))
        counter += 1
    return out[: master.length]


def _nist_sp800_108(master: MasterKey, kdd: bytes) -> StaticKeys:
    # Two HMAC-SHA256 rounds give 64 bytes; the first 48 are ENC ‖ MAC ‖ KEK (the order of
    # PUT KEY), each a two-key 3DES key with its parity bits set, as NistSP800_108KDF does.
    # XXX: no public vector for this KDF; it follows Dogtag's NistSP800_108KDF source.
    output = master.hmac_sha256(nist_sp800_108_input(kdd, 1))
    output += master.hmac_sha256(nist_sp800_108_input(kdd, 2))
    parts = (output[n : n + NIST_KEY_LENGTH] for n in range(0, 3 * NIST_KEY_LENGTH, 16))
    return StaticKeys(*(Key(crypto.des_odd_parity(part)) for part in parts))
