"""Card side of the GlobalPlatform secure channels: SCP01 (GPC 2.1.1 Appendix D), SCP02
(GPC 2.3.1 Appendix E) and SCP03 (GPC 2.2 Amendment D v1.1.1).

A channel object is pure state. It is built from the static keys, both challenges and the
sequence counter; it computes the card cryptogram, checks the EXTERNAL AUTHENTICATE command,
and then unwraps every protected command that follows. It does no I/O and keeps nothing
persistent: the card manager (``simulator/card_manager.py``) decides when a channel exists and
what happens to the counters.

This is the card's own reading of the specifications, written apart from the host side in
``provision/gp`` so that a misreading on one side shows up as a failure on the other. Only
the stateless primitives of ``provision.gp.crypto`` are shared.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Self

from provision.gp.crypto import (
    AES_BLOCK,
    DES_BLOCK,
    ZERO_AES_ICV,
    ZERO_DES_ICV,
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    aes_cmac,
    aes_ecb_encrypt,
    des3_cbc_decrypt,
    des3_cbc_encrypt,
    des3_ecb_encrypt,
    des_ecb_encrypt,
    equal,
    kcv_aes,
    kcv_des,
    mac_des3,
    mac_retail,
    pad80,
    scp03_kdf,
    unpad80,
)
from provision.gp.keys import Scp, SecurityLevel, StaticKeys
from provision.iso7816 import SW, CommandApdu

from .status import StatusError, status_bytes

logger = logging.getLogger(__name__)

INS_INITIALIZE_UPDATE = 0x50
INS_EXTERNAL_AUTHENTICATE = 0x82

# GPC 2.3.1 Table 11-12: bit 3 of the class byte marks GlobalPlatform secure messaging.
CLA_SECURE_MESSAGING = 0x04

HOST_CHALLENGE_LENGTH = 8
MAC_LENGTH = 8

# The levels this card implements (EXTERNAL AUTHENTICATE P1, GPC 2.3.1 E.5.2, Amd D §7.1.2).
# XXX: no level 00 (authenticated, no secure messaging), and no SCP02 R-MAC (10, 11, 13).
LEVEL_C_MAC = 0x01
LEVEL_C_MAC_C_DECRYPTION = 0x03
LEVEL_C_MAC_R_MAC = 0x11
LEVEL_C_MAC_C_DECRYPTION_R_MAC = 0x13
LEVEL_ALL = 0x33
IMPLEMENTED_LEVELS = frozenset({LEVEL_C_MAC, LEVEL_C_MAC_C_DECRYPTION})

# SCP01 "i" bits (GPC 2.1.1 D.1.1): 15 = 05 with ICV encryption.
SCP01_I_ICV_ENCRYPTION = 0x10

# SCP02 "i" bits (GPC 2.3.1 Table E-1) and session key constants (E.4.1).
SCP02_I_ICV_ENCRYPTION = 0x10
SCP02_I_PSEUDO_RANDOM = 0x40
SCP02_DERIVE_C_MAC = b"\x01\x01"
SCP02_DERIVE_R_MAC = b"\x01\x02"
SCP02_DERIVE_S_ENC = b"\x01\x82"
SCP02_DERIVE_DEK = b"\x01\x81"

# SCP03 "i" bits (Amd D Table 5-1) and derivation constants (Amd D Table 4-1).
SCP03_I_PSEUDO_RANDOM = 0x10
SCP03_I_R_MAC = 0x20
SCP03_I_R_ENCRYPTION = 0x40
SCP03_CARD_CRYPTOGRAM = 0x00
SCP03_HOST_CRYPTOGRAM = 0x01
SCP03_CARD_CHALLENGE = 0x02
SCP03_DERIVE_S_ENC = 0x04
SCP03_DERIVE_S_MAC = 0x06
SCP03_DERIVE_S_RMAC = 0x07

RandomBytes = Callable[[int], bytes]


class SecureMessagingError(StatusError):
    """A protected command failed its check: the card answers 6982 and ends the channel."""

    def __init__(self, reason: str) -> None:
        super().__init__(SW.SECURITY_STATUS_NOT_SATISFIED, reason)


def _mac_header(command: CommandApdu) -> bytes:
    """The class byte with the secure messaging bit set, then INS P1 P2 (GPC E.4.4)."""
    return bytes((command.cla | CLA_SECURE_MESSAGING, command.ins, command.p1, command.p2))


class CardChannel(ABC):
    """One secure channel as the card sees it, from INITIALIZE UPDATE to its end."""

    scp: ClassVar[Scp]
    implementations: ClassVar[frozenset[int]]
    """The values of "i" this class implements."""
    challenge_length: ClassVar[int]
    sequence_counter_length: ClassVar[int]
    advances_counter_on_authenticate: ClassVar[bool] = False

    def __init__(
        self,
        keys: StaticKeys,
        host_challenge: bytes,
        card_challenge: bytes,
        *,
        sequence_counter: int,
        i: int,
    ) -> None:
        """The deterministic constructor: every input is given, nothing is drawn at random."""
        self.check_keys(keys)
        if i not in self.implementations:
            raise ValueError(f"{self.scp.name} i={i:02X} is not implemented")
        if len(host_challenge) != HOST_CHALLENGE_LENGTH:
            raise ValueError(f"the host challenge has {HOST_CHALLENGE_LENGTH} bytes")
        if len(card_challenge) != self.challenge_length:
            raise ValueError(f"the card challenge has {self.challenge_length} bytes")
        if not 0 <= sequence_counter <= self.max_sequence_counter():
            raise ValueError(f"sequence counter {sequence_counter} out of range")

        self.i = i
        self.host_challenge = bytes(host_challenge)
        self.card_challenge = bytes(card_challenge)
        self.sequence_counter = sequence_counter
        self.level: SecurityLevel | None = None

    @classmethod
    def levels_for(cls, i: int) -> frozenset[int]:
        """The EXTERNAL AUTHENTICATE levels this card takes with option ``i``."""
        return IMPLEMENTED_LEVELS

    @property
    def levels(self) -> frozenset[int]:
        return self.levels_for(self.i)

    @classmethod
    @abstractmethod
    def initiate(
        cls,
        keys: StaticKeys,
        host_challenge: bytes,
        *,
        i: int,
        sequence_counter: int,
        invoking_aid: bytes,
        random_bytes: RandomBytes,
    ) -> Self:
        """Open a channel for INITIALIZE UPDATE, choosing the card challenge as "i" says.

        ``invoking_aid`` is the application that asked for the channel (the ISD itself, or
        the applet that forwarded INITIALIZE UPDATE): pseudo-random challenges depend on it.
        """

    @classmethod
    @abstractmethod
    def check_keys(cls, keys: StaticKeys) -> None:
        """Raise ValueError unless ``keys`` suit this protocol."""

    @classmethod
    def max_sequence_counter(cls) -> int:
        """The largest counter value; SCP01 has no counter and answers 0."""
        return (1 << (8 * cls.sequence_counter_length)) - 1

    @classmethod
    def has_sequence_counter(cls) -> bool:
        return cls.sequence_counter_length > 0

    @classmethod
    def advances_counter_on_initiate(cls, i: int) -> bool:
        """Whether INITIALIZE UPDATE increments the key set's sequence counter first."""
        return False

    @property
    def authenticated(self) -> bool:
        return self.level is not None

    @property
    def sequence_counter_bytes(self) -> bytes:
        return self.sequence_counter.to_bytes(self.sequence_counter_length, "big")

    @abstractmethod
    def initialize_update_response(self, kdd: bytes, kvn: int) -> bytes:
        """The INITIALIZE UPDATE response data (GPC 2.3.1 E.5.1, Amd D §7.1.1)."""

    @abstractmethod
    def card_cryptogram(self) -> bytes: ...

    @abstractmethod
    def session_key_kcvs(self) -> dict[str, str]:
        """The session keys by their check values, for tests; never the keys."""

    @abstractmethod
    def _host_cryptogram(self) -> bytes: ...

    @abstractmethod
    def _verify_cmac(self, header: bytes, body: bytes, mac: bytes) -> bool:
        """Check ``mac`` over ``header`` ‖ Lc ‖ ``body``; on success it joins the chain."""

    @abstractmethod
    def _unwrap_data(self, command: CommandApdu, level: SecurityLevel) -> bytes:
        """The plain data field of an authenticated command; raises SecureMessagingError."""

    def authenticate(self, command: CommandApdu) -> bool:
        """Check EXTERNAL AUTHENTICATE: host cryptogram and C-MAC. P1 becomes the level."""
        if self.authenticated or len(command.data) != 2 * MAC_LENGTH:
            return False
        host_cryptogram, mac = command.data[:MAC_LENGTH], command.data[MAC_LENGTH:]

        # Both checks always run, so the time taken does not tell which one failed.
        cryptogram_ok = equal(host_cryptogram, self._host_cryptogram())
        mac_ok = self._verify_cmac(_mac_header(command), host_cryptogram, mac)
        if not (cryptogram_ok and mac_ok):
            return False

        self.level = SecurityLevel(command.p1)
        logger.debug("%s channel authenticated at level %02X", self.scp.name, command.p1)
        return True

    def unwrap(self, command: CommandApdu) -> CommandApdu:
        """Verify and strip the protection of one command; the result has CLA bit 3 clear."""
        if self.level is None:
            raise SecureMessagingError("no authenticated channel")
        if len(command.data) < MAC_LENGTH:
            raise SecureMessagingError("the command carries no C-MAC")

        plain = self._unwrap_data(command, self.level)
        cla = command.cla & ~CLA_SECURE_MESSAGING
        return CommandApdu(cla, command.ins, command.p1, command.p2, plain, command.le)

    def wrap_response(self, data: bytes, sw: int) -> bytes:
        """The response to a command received on this channel; SCP01 and SCP02 send it plain."""
        return data + status_bytes(sw)

    def __repr__(self) -> str:
        level = "none" if self.level is None else f"{int(self.level):02X}"
        return (
            f"{type(self).__name__}(i={self.i:02X}, "
            f"sequence_counter={self.sequence_counter_bytes.hex().upper()}, level={level})"
        )


class Scp01CardChannel(CardChannel):
    """SCP01 i=05 or 15 (GPC 2.1.1 Appendix D): explicit initiation, 3 keys, no counter."""

    scp = Scp.SCP01
    implementations = frozenset({0x05, 0x15})
    challenge_length = 8
    sequence_counter_length = 0

    def __init__(
        self,
        keys: StaticKeys,
        host_challenge: bytes,
        card_challenge: bytes,
        *,
        sequence_counter: int = 0,
        i: int = 0x05,
    ) -> None:
        super().__init__(
            keys, host_challenge, card_challenge, sequence_counter=sequence_counter, i=i
        )
        # GPC 2.1.1 D.3.1, Figure D-3: card[4:8] ‖ host[0:4] ‖ card[0:4] ‖ host[4:8],
        # 3DES-ECB under the static ENC and MAC keys.
        host, card = self.host_challenge, self.card_challenge
        derivation = card[4:8] + host[0:4] + card[0:4] + host[4:8]
        self._s_enc = des3_ecb_encrypt(keys.enc.value, derivation)
        self._s_mac = des3_ecb_encrypt(keys.mac.value, derivation)
        self._last_mac: bytes | None = None

    @classmethod
    def initiate(
        cls,
        keys: StaticKeys,
        host_challenge: bytes,
        *,
        i: int,
        sequence_counter: int,
        invoking_aid: bytes,
        random_bytes: RandomBytes,
    ) -> Self:
        card_challenge = random_bytes(cls.challenge_length)
        return cls(keys, host_challenge, card_challenge, i=i)

    @classmethod
    def check_keys(cls, keys: StaticKeys) -> None:
        if keys.aes or any(len(k.value) != 16 for k in (keys.enc, keys.mac, keys.dek)):
            raise ValueError("SCP01 keys are two-key 3DES keys of 16 bytes")

    def session_key_kcvs(self) -> dict[str, str]:
        return {"s_enc": _kcv3(self._s_enc), "s_mac": _kcv3(self._s_mac)}

    def initialize_update_response(self, kdd: bytes, kvn: int) -> bytes:
        # GPC 2.1.1 D.4.1.6: KDD ‖ kvn ‖ SCP ‖ card challenge ‖ card cryptogram
        return kdd + bytes((kvn, self.scp)) + self.card_challenge + self.card_cryptogram()

    def card_cryptogram(self) -> bytes:
        # D.3.2.1: full 3DES MAC of host challenge ‖ card challenge under S-ENC
        message = self.host_challenge + self.card_challenge
        return mac_des3(self._s_enc, pad80(message, DES_BLOCK))

    def _host_cryptogram(self) -> bytes:
        # D.3.2.2: the same over card challenge ‖ host challenge
        message = self.card_challenge + self.host_challenge
        return mac_des3(self._s_enc, pad80(message, DES_BLOCK))

    def _icv(self) -> bytes:
        # D.3.3: zero for EXTERNAL AUTHENTICATE, then the last verified C-MAC; D.1.5: with
        # i=15 that C-MAC is first triple-DES encrypted under S-MAC.
        if self._last_mac is None:
            return ZERO_DES_ICV
        if self.i & SCP01_I_ICV_ENCRYPTION:
            return des3_ecb_encrypt(self._s_mac, self._last_mac)
        return self._last_mac

    def _verify_cmac(self, header: bytes, body: bytes, mac: bytes) -> bool:
        # D.3.3: full 3DES MAC (not a retail MAC) over the modified header ‖ plain data
        message = pad80(header + bytes((len(body) + MAC_LENGTH,)) + body, DES_BLOCK)
        expected = mac_des3(self._s_mac, message, self._icv())
        if not equal(expected, mac):
            return False

        self._last_mac = expected
        return True

    def _unwrap_data(self, command: CommandApdu, level: SecurityLevel) -> bytes:
        body, mac = command.data[:-MAC_LENGTH], command.data[-MAC_LENGTH:]
        plain = body
        if level & SecurityLevel.C_DECRYPTION and body:
            plain = self._decrypt(body)

        if not self._verify_cmac(_mac_header(command), plain, mac):
            raise SecureMessagingError("C-MAC does not verify")
        return plain

    def _decrypt(self, body: bytes) -> bytes:
        # D.3.4: the cipher text holds the plain length, the data and, only when those do
        # not fill whole blocks, 80 00.. padding.
        if len(body) % DES_BLOCK:
            raise SecureMessagingError("the cipher text is not whole 3DES blocks")
        field = des3_cbc_decrypt(self._s_enc, body)
        length = field[0]
        plain, padding = field[1 : 1 + length], field[1 + length :]
        if len(plain) != length or not _scp01_padding_ok(1 + length, padding):
            raise SecureMessagingError("bad length or padding in the deciphered data")
        return plain


def _scp01_padding_ok(used: int, padding: bytes) -> bool:
    # D.3.4: none when the length byte and the data fill whole blocks, else 80 00..
    if used % DES_BLOCK == 0:
        return not padding
    return padding == pad80(b"", DES_BLOCK)[: DES_BLOCK - used % DES_BLOCK]


def _scp02_session_key(static: bytes, constant: bytes, seq: bytes) -> bytes:
    """GPC 2.3.1 E.4.1: 3DES-CBC, ICV zero, over constant ‖ sequence counter ‖ 12 × 00."""
    return des3_cbc_encrypt(static, constant + seq + bytes(12))


class Scp02CardChannel(CardChannel):
    """SCP02 i=15 or 55: explicit initiation, C-MAC on the modified APDU, ICV encryption,
    3 keys; 55 draws its card challenge pseudo-randomly (GPC 2.3.1 E.4.2.3)."""

    scp = Scp.SCP02
    implementations = frozenset({0x15, 0x55})
    challenge_length = 6
    sequence_counter_length = 2
    # GPC 2.3.1 E.1.2: the counter moves when the first C-MAC of a channel verifies.
    advances_counter_on_authenticate = True

    def __init__(
        self,
        keys: StaticKeys,
        host_challenge: bytes,
        card_challenge: bytes,
        *,
        sequence_counter: int,
        i: int = 0x15,
    ) -> None:
        super().__init__(
            keys, host_challenge, card_challenge, sequence_counter=sequence_counter, i=i
        )
        seq = self.sequence_counter_bytes
        self._s_enc = _scp02_session_key(keys.enc.value, SCP02_DERIVE_S_ENC, seq)
        self._s_mac = _scp02_session_key(keys.mac.value, SCP02_DERIVE_C_MAC, seq)
        self._static = keys  # R-MAC and DEK session keys: only for session_key_kcvs()
        self._last_mac: bytes | None = None

    @classmethod
    def initiate(
        cls,
        keys: StaticKeys,
        host_challenge: bytes,
        *,
        i: int,
        sequence_counter: int,
        invoking_aid: bytes,
        random_bytes: RandomBytes,
    ) -> Self:
        if i & SCP02_I_PSEUDO_RANDOM:
            seq = sequence_counter.to_bytes(cls.sequence_counter_length, "big")
            card_challenge = scp02_pseudo_random_challenge(keys.mac.value, seq, invoking_aid)
        else:
            card_challenge = random_bytes(cls.challenge_length)
        return cls(keys, host_challenge, card_challenge, sequence_counter=sequence_counter, i=i)

    @classmethod
    def check_keys(cls, keys: StaticKeys) -> None:
        if keys.aes or any(len(k.value) != 16 for k in (keys.enc, keys.mac, keys.dek)):
            raise ValueError("SCP02 keys are two-key 3DES keys of 16 bytes")

    def session_key_kcvs(self) -> dict[str, str]:
        seq, static = self.sequence_counter_bytes, self._static
        return {
            "s_enc": _kcv3(self._s_enc),
            "s_mac": _kcv3(self._s_mac),
            "s_rmac": _kcv3(_scp02_session_key(static.mac.value, SCP02_DERIVE_R_MAC, seq)),
            "s_dek": _kcv3(_scp02_session_key(static.dek.value, SCP02_DERIVE_DEK, seq)),
        }

    def initialize_update_response(self, kdd: bytes, kvn: int) -> bytes:
        # GPC 2.3.1 E.5.1.6: KDD ‖ kvn ‖ SCP ‖ sequence counter ‖ card challenge ‖ cryptogram
        key_information = bytes((kvn, self.scp))
        return (
            kdd
            + key_information
            + self.sequence_counter_bytes
            + self.card_challenge
            + self.card_cryptogram()
        )

    def card_cryptogram(self) -> bytes:
        # GPC 2.3.1 E.4.2.1: full 3DES MAC of host challenge ‖ sequence counter ‖ card challenge
        message = self.host_challenge + self.sequence_counter_bytes + self.card_challenge
        return mac_des3(self._s_enc, pad80(message, DES_BLOCK))

    def _host_cryptogram(self) -> bytes:
        # GPC 2.3.1 E.4.2.2: the same over sequence counter ‖ card challenge ‖ host challenge
        message = self.sequence_counter_bytes + self.card_challenge + self.host_challenge
        return mac_des3(self._s_enc, pad80(message, DES_BLOCK))

    def _icv(self) -> bytes:
        # GPC 2.3.1 E.3.4: the first ICV is zero and not encrypted; each later one is the
        # previous C-MAC, DES-encrypted under the first half of S-MAC when "i" says so.
        if self._last_mac is None:
            return ZERO_DES_ICV
        if self.i & SCP02_I_ICV_ENCRYPTION:
            return des_ecb_encrypt(self._s_mac, self._last_mac)
        return self._last_mac

    def _verify_cmac(self, header: bytes, body: bytes, mac: bytes) -> bool:
        # GPC 2.3.1 E.4.4: retail MAC over the modified header (Lc counts the MAC) ‖ plain data
        message = pad80(header + bytes((len(body) + MAC_LENGTH,)) + body, DES_BLOCK)
        expected = mac_retail(self._s_mac, message, self._icv())
        if not equal(expected, mac):
            return False

        self._last_mac = expected
        return True

    def _unwrap_data(self, command: CommandApdu, level: SecurityLevel) -> bytes:
        body, mac = command.data[:-MAC_LENGTH], command.data[-MAC_LENGTH:]

        # GPC 2.3.1 E.4.6: the host MACs the plain data, then encrypts it; no data, no cipher.
        plain = body
        if level & SecurityLevel.C_DECRYPTION and body:
            plain = self._decrypt(body)

        if not self._verify_cmac(_mac_header(command), plain, mac):
            raise SecureMessagingError("C-MAC does not verify")
        return plain

    def _decrypt(self, body: bytes) -> bytes:
        if len(body) % DES_BLOCK:
            raise SecureMessagingError("the cipher text is not whole 3DES blocks")
        try:
            return unpad80(des3_cbc_decrypt(self._s_enc, body), DES_BLOCK)
        except ValueError as e:
            raise SecureMessagingError("bad padding in the deciphered data") from e


def scp02_pseudo_random_challenge(key_mac: bytes, seq: bytes, invoking_aid: bytes) -> bytes:
    """GPC 2.3.1 E.4.2.3: the six leftmost bytes of the retail MAC of the padded invoking
    AID under the C-MAC session key, ICV zero."""
    s_mac = _scp02_session_key(key_mac, SCP02_DERIVE_C_MAC, seq)
    return mac_retail(s_mac, pad80(invoking_aid, DES_BLOCK))[:6]


def scp03_pseudo_random_challenge(
    key_enc: bytes, sequence_counter: int, invoking_aid: bytes
) -> bytes:
    """Amd D §6.2.2.1: KDF(Key-ENC, 02, 64 bits, sequence counter (3) ‖ invoking AID)."""
    context = sequence_counter.to_bytes(3, "big") + invoking_aid
    return scp03_kdf(key_enc, SCP03_CARD_CHALLENGE, context, 64)


class Scp03CardChannel(CardChannel):
    """SCP03 with AES-128, -192 or -256 static keys (Amendment D v1.1.1, 8-byte mode)."""

    scp = Scp.SCP03
    # XXX: i=01 (S16 mode, 16-byte challenges and MACs) is not implemented.
    implementations = frozenset({0x00, 0x10, 0x70})
    challenge_length = 8
    sequence_counter_length = 3

    def __init__(
        self,
        keys: StaticKeys,
        host_challenge: bytes,
        card_challenge: bytes,
        *,
        sequence_counter: int,
        i: int,
    ) -> None:
        super().__init__(
            keys, host_challenge, card_challenge, sequence_counter=sequence_counter, i=i
        )
        # Amd D §6.2.1: session keys as long as the static keys, context = both challenges
        context = self.host_challenge + self.card_challenge
        bits = 8 * len(keys.enc.value)
        self._s_enc = scp03_kdf(keys.enc.value, SCP03_DERIVE_S_ENC, context, bits)
        self._s_mac = scp03_kdf(keys.mac.value, SCP03_DERIVE_S_MAC, context, bits)
        self._s_rmac = scp03_kdf(keys.mac.value, SCP03_DERIVE_S_RMAC, context, bits)
        self._chain = ZERO_AES_ICV
        self._encryption_counter = 0

    @classmethod
    def initiate(
        cls,
        keys: StaticKeys,
        host_challenge: bytes,
        *,
        i: int,
        sequence_counter: int,
        invoking_aid: bytes,
        random_bytes: RandomBytes,
    ) -> Self:
        if i & SCP03_I_PSEUDO_RANDOM:
            card_challenge = scp03_pseudo_random_challenge(
                keys.enc.value, sequence_counter, invoking_aid
            )
        else:
            card_challenge = random_bytes(cls.challenge_length)
        return cls(keys, host_challenge, card_challenge, sequence_counter=sequence_counter, i=i)

    @classmethod
    def check_keys(cls, keys: StaticKeys) -> None:
        # Amd D §6.1: a key set holds three AES keys of the same length
        if not keys.aes or len({len(k.value) for k in (keys.enc, keys.mac, keys.dek)}) != 1:
            raise ValueError("SCP03 keys are three AES keys of one length")

    @classmethod
    def levels_for(cls, i: int) -> frozenset[int]:
        # Amd D Table 5-1 and §7.1.2: R-MAC levels need i & 20, R-ENC also i & 40
        levels = set(IMPLEMENTED_LEVELS)
        if i & SCP03_I_R_MAC:
            levels |= {LEVEL_C_MAC_R_MAC, LEVEL_C_MAC_C_DECRYPTION_R_MAC}
        if i & SCP03_I_R_ENCRYPTION:
            levels.add(LEVEL_ALL)
        return frozenset(levels)

    @classmethod
    def advances_counter_on_initiate(cls, i: int) -> bool:
        # Amd D §6.2.2.1: incremented before each pseudo-random challenge, new value used
        return bool(i & SCP03_I_PSEUDO_RANDOM)

    def session_key_kcvs(self) -> dict[str, str]:
        return {
            "s_enc": kcv_aes(self._s_enc).hex().upper(),
            "s_mac": kcv_aes(self._s_mac).hex().upper(),
            "s_rmac": kcv_aes(self._s_rmac).hex().upper(),
        }

    def initialize_update_response(self, kdd: bytes, kvn: int) -> bytes:
        # Amd D §7.1.1.1: KDD ‖ kvn ‖ SCP ‖ i ‖ card challenge ‖ cryptogram [‖ counter]
        out = kdd + bytes((kvn, self.scp, self.i)) + self.card_challenge + self.card_cryptogram()
        if self.i & SCP03_I_PSEUDO_RANDOM:
            out += self.sequence_counter_bytes
        return out

    def card_cryptogram(self) -> bytes:
        # Amd D §6.2.2.2
        context = self.host_challenge + self.card_challenge
        return scp03_kdf(self._s_mac, SCP03_CARD_CRYPTOGRAM, context, 64)

    def _host_cryptogram(self) -> bytes:
        # Amd D §6.2.2.3
        context = self.host_challenge + self.card_challenge
        return scp03_kdf(self._s_mac, SCP03_HOST_CRYPTOGRAM, context, 64)

    def _verify_cmac(self, header: bytes, body: bytes, mac: bytes) -> bool:
        # Amd D §6.2.4: CMAC over chaining value ‖ modified header ‖ data; 8 bytes sent,
        # all 16 kept as the next chaining value
        message = self._chain + header + bytes((len(body) + MAC_LENGTH,)) + body
        full = aes_cmac(self._s_mac, message)
        if not equal(full[:MAC_LENGTH], mac):
            return False

        self._chain = full
        return True

    def _unwrap_data(self, command: CommandApdu, level: SecurityLevel) -> bytes:
        # Amd D §6.2.6: the counter moves for every command, even one without data
        self._encryption_counter += 1
        body, mac = command.data[:-MAC_LENGTH], command.data[-MAC_LENGTH:]

        # Encrypt-then-MAC: the C-MAC covers the cipher text as sent.
        if not self._verify_cmac(_mac_header(command), body, mac):
            raise SecureMessagingError("C-MAC does not verify")

        if not (level & SecurityLevel.C_DECRYPTION and body):
            return body
        return self._decrypt(body)

    def _counter_block(self) -> bytes:
        return self._encryption_counter.to_bytes(AES_BLOCK, "big")

    def _decrypt(self, body: bytes) -> bytes:
        if len(body) % AES_BLOCK:
            raise SecureMessagingError("the cipher text is not whole AES blocks")

        # Amd D §6.2.6: ICV = AES(S-ENC, encryption counter as a 16-byte block)
        icv = aes_ecb_encrypt(self._s_enc, self._counter_block())
        try:
            return unpad80(aes_cbc_decrypt(self._s_enc, body, icv), AES_BLOCK)
        except ValueError as e:
            raise SecureMessagingError("bad padding in the deciphered data") from e

    def wrap_response(self, data: bytes, sw: int) -> bytes:
        """R-ENC, then R-MAC, as the channel's level asks (Amd D §6.2.5, §6.2.7)."""
        level = self.level or SecurityLevel.NONE
        # §6.2.5: an error status word goes bare; only 9000, 62xx and 63xx are protected.
        if not level & SecurityLevel.R_MAC or not (sw == SW.OK or sw >> 8 in (0x62, 0x63)):
            return data + status_bytes(sw)

        if level & SecurityLevel.R_ENCRYPTION and data:
            # §6.2.7: the command's counter block with its first byte set to 80
            block = b"\x80" + self._counter_block()[1:]
            icv = aes_ecb_encrypt(self._s_enc, block)
            data = aes_cbc_encrypt(self._s_enc, pad80(data, AES_BLOCK), icv)
        mac = aes_cmac(self._s_rmac, self._chain + data + status_bytes(sw))[:MAC_LENGTH]
        return data + mac + status_bytes(sw)


def _kcv3(des_key: bytes) -> str:
    return kcv_des(des_key).hex().upper()


CHANNELS: dict[Scp, type[CardChannel]] = {
    Scp.SCP01: Scp01CardChannel,
    Scp.SCP02: Scp02CardChannel,
    Scp.SCP03: Scp03CardChannel,
}
