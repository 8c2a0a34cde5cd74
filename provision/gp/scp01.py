"""SCP01 host session state (GPC 2.1.1 Appendix D, Open Platform 2.0.1), i=05 and 15.

Pure state: built from the static keys and the INITIALIZE UPDATE exchange, it computes the
cryptograms and wraps commands. It never talks to a card. SCP01 knows only the levels C-MAC
(01) and C-MAC + C-DECRYPTION (03), and no response protection.
"""

from __future__ import annotations

from ..iso7816 import CLA_GP, CLA_SECURE, INS_EXTERNAL_AUTHENTICATE, CommandApdu
from . import crypto
from .keys import C_MAC_C_DEC, Key, Scp, SecurityLevel, StaticKeys

# "i" = 15 adds ICV encryption to 05 (GPC 2.1.1 D.1.1).
I_ICV_ENCRYPTION = 0x10

SUPPORTED_I = frozenset({0x05, 0x15})
SUPPORTED_LEVELS = frozenset({SecurityLevel.C_MAC, C_MAC_C_DEC})


def levels_for(i: int) -> frozenset[SecurityLevel]:
    """The security levels SCP01 with option ``i`` offers."""
    return SUPPORTED_LEVELS if i in SUPPORTED_I else frozenset()


def derivation_data(host_challenge: bytes, card_challenge: bytes) -> bytes:
    """GPC 2.1.1 D.3.1, Figure D-3: card[4:8] ‖ host[0:4] ‖ card[0:4] ‖ host[4:8]."""
    return card_challenge[4:8] + host_challenge[0:4] + card_challenge[0:4] + host_challenge[4:8]


class Scp01Session:
    """One SCP01 session, from INITIALIZE UPDATE to the end of the channel."""

    scp = Scp.SCP01

    def __init__(
        self, keys: StaticKeys, *, i: int, host_challenge: bytes, card_challenge: bytes
    ) -> None:
        if i not in SUPPORTED_I:
            raise ValueError(f"SCP01 i={i:02X} is not supported")
        self.i = i
        self._host_challenge = host_challenge
        self._card_challenge = card_challenge

        # D.3.1: both session keys are 3DES-ECB of the same derivation data.
        data = derivation_data(host_challenge, card_challenge)
        self._s_enc = crypto.des3_ecb_encrypt(keys.enc.value, data)
        self._s_mac = crypto.des3_ecb_encrypt(keys.mac.value, data)
        self._icv: bytes | None = None
        self.level = SecurityLevel.C_MAC

    def __repr__(self) -> str:
        return f"Scp01Session(i={self.i:02X}, level={self.level:02X})"

    def session_key_kcvs(self) -> dict[str, str]:
        """The session keys by their check values only, for support messages and tests."""
        return {"s_enc": Key(self._s_enc).kcv, "s_mac": Key(self._s_mac).kcv}

    def card_cryptogram(self) -> bytes:
        """D.3.2.1: full 3DES MAC of host challenge ‖ card challenge under S-ENC."""
        data = self._host_challenge + self._card_challenge
        return crypto.mac_des3(self._s_enc, crypto.pad80(data, 8))

    def host_cryptogram(self) -> bytes:
        """D.3.2.2: the same over card challenge ‖ host challenge."""
        data = self._card_challenge + self._host_challenge
        return crypto.mac_des3(self._s_enc, crypto.pad80(data, 8))

    def external_authenticate(self, level: SecurityLevel) -> CommandApdu:
        """The EXTERNAL AUTHENTICATE command; afterwards commands are wrapped at ``level``."""
        if level not in SUPPORTED_LEVELS:
            raise ValueError(f"SCP01 security level {level:02X} is not supported")
        command = CommandApdu(
            CLA_GP, INS_EXTERNAL_AUTHENTICATE, int(level), 0x00, self.host_cryptogram()
        )
        wrapped = self._mac(command)
        self.level = level
        return wrapped

    def wrap(self, command: CommandApdu) -> CommandApdu:
        """C-MAC over the plain command, then C-DECRYPTION of its data (D.3.3, D.3.4)."""
        wrapped = self._mac(command)
        if not (self.level & SecurityLevel.C_DECRYPTION and command.data):
            return wrapped

        # D.3.4: the plain length is put in front; padding only up to a whole block.
        field = bytes((len(command.data),)) + command.data
        if len(field) % 8:
            field = crypto.pad80(field, 8)
        ciphertext = crypto.des3_cbc_encrypt(self._s_enc, field)
        mac = wrapped.data[-8:]
        return CommandApdu(
            wrapped.cla, wrapped.ins, wrapped.p1, wrapped.p2, ciphertext + mac, wrapped.le
        )

    def unwrap(self, data: bytes, sw: int) -> tuple[bytes, int]:
        """SCP01 protects no response."""
        return data, sw

    def _mac(self, command: CommandApdu) -> CommandApdu:
        # D.3.3: full 3DES MAC over the modified header (CLA 84, Lc counting the MAC) and
        # the plain data, chained through the previous C-MAC.
        cla = (command.cla | CLA_SECURE) & 0xFF
        header = bytes((cla, command.ins, command.p1, command.p2, len(command.data) + 8))
        padded = crypto.pad80(header + command.data, 8)
        mac = crypto.mac_des3(self._s_mac, padded, self._next_icv())
        self._icv = mac
        return CommandApdu(
            cla, command.ins, command.p1, command.p2, command.data + mac, command.le
        )

    def _next_icv(self) -> bytes:
        # D.3.3: zero for EXTERNAL AUTHENTICATE, then the previous C-MAC; D.1.5: with i=15
        # that C-MAC is first 3DES-encrypted under S-MAC.
        # XXX: no public vector covers SCP01 i=15; the ICV encryption follows D.1.5 alone.
        if self._icv is None:
            return crypto.ZERO_DES_ICV
        if self.i & I_ICV_ENCRYPTION:
            return crypto.des3_ecb_encrypt(self._s_mac, self._icv)
        return self._icv
