"""SCP02 host session state (GPC 2.3.1 Appendix E), implementation options i=15 and 55.

Pure state: built from the static keys and the INITIALIZE UPDATE exchange, it computes the
cryptograms and wraps commands. It never talks to a card.
"""

from __future__ import annotations

from ..iso7816 import CLA_GP, CLA_SECURE, INS_EXTERNAL_AUTHENTICATE, CommandApdu
from . import crypto
from .keys import C_MAC_C_DEC, Key, Scp, SecurityLevel, StaticKeys

# Session key derivation constants (GPC 2.3.1 E.4.1).
_DERIVE_C_MAC = bytes.fromhex("0101")
_DERIVE_R_MAC = bytes.fromhex("0102")
_DERIVE_ENC = bytes.fromhex("0182")
_DERIVE_DEK = bytes.fromhex("0181")

# "i" bits (GPC 2.3.1 Table E-1).
I_ICV_ENCRYPTION = 0x10
I_PSEUDO_RANDOM_CHALLENGE = 0x40

CARD_CHALLENGE_LENGTH = 6

SUPPORTED_I = frozenset({0x15, 0x55})
# XXX: no SCP02 R-MAC (levels 10, 11, 13); GPC E.4.5 is optional and no vector covers it.
SUPPORTED_LEVELS = frozenset({SecurityLevel.C_MAC, C_MAC_C_DEC})


def levels_for(i: int) -> frozenset[SecurityLevel]:
    """The security levels SCP02 with option ``i`` offers here."""
    return SUPPORTED_LEVELS if i in SUPPORTED_I else frozenset()


def _session_key(static: bytes, constant: bytes, sequence_counter: bytes) -> bytes:
    return crypto.des3_cbc_encrypt(static, constant + sequence_counter + bytes(12))


class Scp02Session:
    """One SCP02 session, from INITIALIZE UPDATE to the end of the channel."""

    scp = Scp.SCP02

    def __init__(
        self,
        keys: StaticKeys,
        *,
        i: int,
        sequence_counter: bytes,
        host_challenge: bytes,
        card_challenge: bytes,
    ) -> None:
        if i not in SUPPORTED_I:
            raise ValueError(f"SCP02 i={i:02X} is not supported")
        self.i = i
        self._host_challenge = host_challenge
        self._card_challenge = card_challenge
        self._sequence_counter = sequence_counter
        self._s_enc = _session_key(keys.enc.value, _DERIVE_ENC, sequence_counter)
        self._s_mac = _session_key(keys.mac.value, _DERIVE_C_MAC, sequence_counter)
        # The R-MAC and DEK session keys are not used here: derived only when their KCVs
        # are asked for, which a burn never does.
        self._static = keys
        self._icv: bytes | None = None
        self.level = SecurityLevel.C_MAC

    def __repr__(self) -> str:
        return f"Scp02Session(i={self.i:02X}, level={self.level:02X})"

    def session_key_kcvs(self) -> dict[str, str]:
        """All four session keys (E.4.1) by their check values, for support and tests."""
        seq = self._sequence_counter
        return {
            "s_enc": Key(self._s_enc).kcv,
            "s_mac": Key(self._s_mac).kcv,
            "s_rmac": Key(_session_key(self._static.mac.value, _DERIVE_R_MAC, seq)).kcv,
            "s_dek": Key(_session_key(self._static.dek.value, _DERIVE_DEK, seq)).kcv,
        }

    def pseudo_random_card_challenge(self, aid: bytes) -> bytes | None:
        """What a card with i=55 draws (E.4.2.3): the six leftmost bytes of the retail MAC
        of the invoking application's AID under S-MAC, ICV zero; None for a random one."""
        if not self.i & I_PSEUDO_RANDOM_CHALLENGE:
            return None
        # XXX: no public vector covers i=55; this follows E.4.2.3 (the card side agrees).
        mac = crypto.mac_retail(self._s_mac, crypto.pad80(aid, 8))
        return mac[:CARD_CHALLENGE_LENGTH]

    def card_cryptogram(self) -> bytes:
        """What the card must have sent (E.4.2.1)."""
        data = self._host_challenge + self._sequence_counter + self._card_challenge
        return crypto.mac_des3(self._s_enc, crypto.pad80(data, 8))

    def host_cryptogram(self) -> bytes:
        """What the host proves itself with (E.4.2.2)."""
        data = self._sequence_counter + self._card_challenge + self._host_challenge
        return crypto.mac_des3(self._s_enc, crypto.pad80(data, 8))

    def external_authenticate(self, level: SecurityLevel) -> CommandApdu:
        """The EXTERNAL AUTHENTICATE command; afterwards commands are wrapped at ``level``."""
        if level not in SUPPORTED_LEVELS:
            raise ValueError(f"SCP02 security level {level:02X} is not supported")
        command = CommandApdu(
            CLA_GP, INS_EXTERNAL_AUTHENTICATE, int(level), 0x00, self.host_cryptogram()
        )
        wrapped = self._mac(command)
        self.level = level
        return wrapped

    def wrap(self, command: CommandApdu) -> CommandApdu:
        """Protect one command at the session's level: C-MAC, then C-DECRYPTION (E.4.4, E.4.6)."""
        wrapped = self._mac(command)
        if not (self.level & SecurityLevel.C_DECRYPTION and command.data):
            return wrapped

        mac = wrapped.data[-8:]
        ciphertext = crypto.des3_cbc_encrypt(self._s_enc, crypto.pad80(command.data, 8))
        return CommandApdu(
            wrapped.cla, wrapped.ins, wrapped.p1, wrapped.p2, ciphertext + mac, wrapped.le
        )

    def unwrap(self, data: bytes, sw: int) -> tuple[bytes, int]:
        """Without R-MAC, responses come as they are."""
        return data, sw

    def _mac(self, command: CommandApdu) -> CommandApdu:
        # The C-MAC covers the modified header: secure-messaging CLA and Lc counting the MAC.
        cla = (command.cla | CLA_SECURE) & 0xFF
        header = bytes((cla, command.ins, command.p1, command.p2, len(command.data) + 8))
        mac = crypto.mac_retail(
            self._s_mac, crypto.pad80(header + command.data, 8), self._next_icv()
        )
        self._icv = mac
        return CommandApdu(
            cla, command.ins, command.p1, command.p2, command.data + mac, command.le
        )

    def _next_icv(self) -> bytes:
        # The first ICV of a session is zero; later ones are the previous C-MAC, encrypted
        # with single DES under the first half of S-MAC when i says so (E.3.4).
        if self._icv is None:
            return crypto.ZERO_DES_ICV
        if self.i & I_ICV_ENCRYPTION:
            return crypto.des_ecb_encrypt(self._s_mac, self._icv)
        return self._icv
