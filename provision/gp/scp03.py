"""SCP03 host session state (GPC 2.2 Amendment D v1.1.1), i=00, 10 and 70.

Pure state: built from the static keys and the INITIALIZE UPDATE exchange, it computes the
cryptograms and wraps commands. It never talks to a card.
"""

from __future__ import annotations

from ..iso7816 import CLA_SECURE, CommandApdu
from . import crypto
from .keys import C_MAC_C_DEC, Scp, SecurityLevel, StaticKeys

# Derivation constants (Amd D §4.1.5, Table 4-1).
_CARD_CRYPTOGRAM = 0x00
_HOST_CRYPTOGRAM = 0x01
_S_ENC = 0x04
_S_MAC = 0x06

SUPPORTED_I = frozenset({0x00, 0x10, 0x70})
SUPPORTED_LEVELS = frozenset({SecurityLevel.C_MAC, C_MAC_C_DEC})


class Scp03Session:
    """One SCP03 session, from INITIALIZE UPDATE to the end of the channel."""

    scp = Scp.SCP03

    def __init__(
        self, keys: StaticKeys, *, i: int, host_challenge: bytes, card_challenge: bytes
    ) -> None:
        if i not in SUPPORTED_I:
            raise ValueError(f"SCP03 i={i:02X} is not supported")
        self.i = i
        self._context = host_challenge + card_challenge
        bits = len(keys.enc.value) * 8
        self._s_enc = crypto.scp03_kdf(keys.enc.value, _S_ENC, self._context, bits)
        self._s_mac = crypto.scp03_kdf(keys.mac.value, _S_MAC, self._context, bits)
        self._chain = bytes(16)
        self._counter = 0
        self.level = SecurityLevel.C_MAC

    def __repr__(self) -> str:
        return f"Scp03Session(i={self.i:02X}, level={self.level:02X})"

    def card_cryptogram(self) -> bytes:
        return crypto.scp03_kdf(self._s_mac, _CARD_CRYPTOGRAM, self._context, 64)

    def host_cryptogram(self) -> bytes:
        return crypto.scp03_kdf(self._s_mac, _HOST_CRYPTOGRAM, self._context, 64)

    def external_authenticate(self, level: SecurityLevel) -> CommandApdu:
        """The EXTERNAL AUTHENTICATE command; afterwards commands are wrapped at ``level``."""
        if level not in SUPPORTED_LEVELS:
            raise ValueError(f"SCP03 security level {level:02X} is not supported")
        command = CommandApdu(0x80, 0x82, int(level), 0x00, self.host_cryptogram())
        wrapped = self._mac(command)
        self.level = level
        return wrapped

    def wrap(self, command: CommandApdu) -> CommandApdu:
        """Protect one command: C-DECRYPTION first, then C-MAC over the result (§6.2.4)."""
        data = command.data
        if self.level & SecurityLevel.C_DECRYPTION:
            # The counter moves for every command, with or without data (§6.2.6).
            self._counter += 1
            if data:
                icv = crypto.aes_ecb_encrypt(self._s_enc, self._counter.to_bytes(16, "big"))
                data = crypto.aes_cbc_encrypt(self._s_enc, crypto.pad80(data, 16), icv)
        return self._mac(
            CommandApdu(command.cla, command.ins, command.p1, command.p2, data, command.le)
        )

    def _mac(self, command: CommandApdu) -> CommandApdu:
        cla = (command.cla | CLA_SECURE) & 0xFF
        header = bytes((cla, command.ins, command.p1, command.p2, len(command.data) + 8))
        self._chain = crypto.aes_cmac(self._s_mac, self._chain + header + command.data)
        return CommandApdu(
            cla, command.ins, command.p1, command.p2, command.data + self._chain[:8], command.le
        )
