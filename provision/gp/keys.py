"""Static key sets and the words GlobalPlatform uses for them.

A key object never shows its value: its repr and str carry only the key check value (KCV),
so a key that reaches a log line, a traceback or a report by mistake is still not disclosed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, IntFlag, unique

from .crypto import kcv_aes, kcv_des


@unique
class Scp(IntEnum):
    """Secure Channel Protocol identifiers, as in INITIALIZE UPDATE response byte 11."""

    SCP01 = 0x01
    SCP02 = 0x02
    SCP03 = 0x03


class SecurityLevel(IntFlag):
    """EXTERNAL AUTHENTICATE P1 bits (GPC 2.3.1 E.5.2, Amd D §7.1.2)."""

    NONE = 0x00
    C_MAC = 0x01
    C_DECRYPTION = 0x02
    R_MAC = 0x10
    R_ENCRYPTION = 0x20


C_MAC_C_DEC = SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION

# Static key lengths: SCP01 and SCP02 use double-length (two-key) 3DES keys (GPC 2.3.1
# E.1.1); SCP03 uses AES-128, 192 or 256, one length for the three keys (Amd D §4.1).
STATIC_KEY_SIZES = {Scp.SCP01: (16,), Scp.SCP02: (16,), Scp.SCP03: (16, 24, 32)}
C_MAC_R_MAC = SecurityLevel.C_MAC | SecurityLevel.R_MAC
C_MAC_C_DEC_R_MAC = C_MAC_C_DEC | SecurityLevel.R_MAC
FULL_SECURITY = C_MAC_C_DEC_R_MAC | SecurityLevel.R_ENCRYPTION

# The levels an EXTERNAL AUTHENTICATE may ask for, as the specifications write them.
LEVELS = {
    "01": SecurityLevel.C_MAC,
    "03": C_MAC_C_DEC,
    "11": C_MAC_R_MAC,
    "13": C_MAC_C_DEC_R_MAC,
    "33": FULL_SECURITY,
}


@dataclass(frozen=True, slots=True, repr=False)
class Key:
    """One secret key: 16 or 24 bytes of 3DES, or 16, 24 or 32 bytes of AES."""

    value: bytes = field(compare=True)
    aes: bool = False

    def __post_init__(self) -> None:
        sizes = (16, 24, 32) if self.aes else (16, 24)
        if len(self.value) not in sizes:
            kind = "AES" if self.aes else "3DES"
            raise ValueError(f"a {kind} key has {' or '.join(map(str, sizes))} bytes")

    @property
    def kcv(self) -> str:
        """The key check value as 6 hex digits (AES: Amd D; DES: GPC E.4.7)."""
        return (kcv_aes(self.value) if self.aes else kcv_des(self.value)).hex().upper()

    def __repr__(self) -> str:
        return f"Key(kcv={self.kcv})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """A card's static secure channel keys: Key-ENC, Key-MAC and Key-DEK."""

    enc: Key
    mac: Key
    dek: Key

    @classmethod
    def from_bytes(cls, enc: bytes, mac: bytes, dek: bytes, *, aes: bool) -> StaticKeys:
        return cls(Key(enc, aes), Key(mac, aes), Key(dek, aes))

    @property
    def aes(self) -> bool:
        return self.enc.aes


@dataclass(frozen=True, slots=True)
class KeySet:
    """Static keys under one key version number (kvn): the keys of one card.

    With diversified keys a key set is made for one card at a time and dropped once that
    card is done; nothing keeps it.
    """

    kvn: int
    keys: StaticKeys
    test_keys: bool = False
