"""SCP03 host session state (GPC 2.2 Amendment D v1.1.1), i=00, 10 and 70, AES-128/192/256.

Pure state: built from the static keys and the INITIALIZE UPDATE exchange, it computes the
cryptograms, wraps commands and unwraps the responses of the R-MAC and R-ENC levels. It never
talks to a card.
"""

from __future__ import annotations

from ..errors import SecureChannelError
from ..iso7816 import CLA_GP, CLA_SECURE, INS_EXTERNAL_AUTHENTICATE, CommandApdu
from . import crypto
from .keys import (
    C_MAC_C_DEC,
    C_MAC_C_DEC_R_MAC,
    C_MAC_R_MAC,
    FULL_SECURITY,
    Key,
    Scp,
    SecurityLevel,
    StaticKeys,
)

# Derivation constants (Amd D §4.1.5, Table 4-1).
_CARD_CRYPTOGRAM = 0x00
_HOST_CRYPTOGRAM = 0x01
_CARD_CHALLENGE = 0x02
_S_ENC = 0x04
_S_MAC = 0x06
_S_RMAC = 0x07

# "i" bits (Amd D Table 5-1).
I_PSEUDO_RANDOM_CHALLENGE = 0x10
I_R_MAC = 0x20
I_R_ENCRYPTION = 0x40

MAC_LENGTH = 8
# Amd D §6.2.7: the R-ENC ICV block is the command's counter block with its first byte 80.
_R_ENC_MARKER = 0x80

SUPPORTED_I = frozenset({0x00, 0x10, 0x70})


def levels_for(i: int) -> frozenset[SecurityLevel]:
    """The security levels SCP03 with option ``i`` offers (Amd D §5.1, §7.1.2)."""
    if i not in SUPPORTED_I:
        return frozenset()
    levels = {SecurityLevel.C_MAC, C_MAC_C_DEC}
    if i & I_R_MAC:
        levels |= {C_MAC_R_MAC, C_MAC_C_DEC_R_MAC}
    if i & I_R_ENCRYPTION:
        levels.add(FULL_SECURITY)
    return frozenset(levels)


def pseudo_random_card_challenge(key_enc: bytes, sequence_counter: bytes, aid: bytes) -> bytes:
    """Amd D §6.2.2.1: KDF(Key-ENC, 02, 64 bits, sequence counter ‖ invoking AID)."""
    return crypto.scp03_kdf(key_enc, _CARD_CHALLENGE, sequence_counter + aid, 64)


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

        # Amd D §6.2.1: session keys as long as the static keys.
        bits = len(keys.enc.value) * 8
        self._s_enc = crypto.scp03_kdf(keys.enc.value, _S_ENC, self._context, bits)
        self._s_mac = crypto.scp03_kdf(keys.mac.value, _S_MAC, self._context, bits)
        self._s_rmac = crypto.scp03_kdf(keys.mac.value, _S_RMAC, self._context, bits)
        self._chain = bytes(16)
        self._counter = 0
        self.level = SecurityLevel.C_MAC

    def __repr__(self) -> str:
        return f"Scp03Session(i={self.i:02X}, level={self.level:02X})"

    def session_key_kcvs(self) -> dict[str, str]:
        """The session keys by their check values only, for support messages and tests."""
        return {
            "s_enc": Key(self._s_enc, aes=True).kcv,
            "s_mac": Key(self._s_mac, aes=True).kcv,
            "s_rmac": Key(self._s_rmac, aes=True).kcv,
        }

    def card_cryptogram(self) -> bytes:
        return crypto.scp03_kdf(self._s_mac, _CARD_CRYPTOGRAM, self._context, 64)

    def host_cryptogram(self) -> bytes:
        return crypto.scp03_kdf(self._s_mac, _HOST_CRYPTOGRAM, self._context, 64)

    def external_authenticate(self, level: SecurityLevel) -> CommandApdu:
        """The EXTERNAL AUTHENTICATE command; afterwards commands are wrapped at ``level``."""
        if level not in levels_for(self.i):
            raise ValueError(f"SCP03 i={self.i:02X} has no security level {level:02X}")
        command = CommandApdu(
            CLA_GP, INS_EXTERNAL_AUTHENTICATE, int(level), 0x00, self.host_cryptogram()
        )
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
                icv = crypto.aes_ecb_encrypt(self._s_enc, self._counter_block())
                data = crypto.aes_cbc_encrypt(self._s_enc, crypto.pad80(data, 16), icv)
        return self._mac(
            CommandApdu(command.cla, command.ins, command.p1, command.p2, data, command.le)
        )

    def unwrap(self, data: bytes, sw: int) -> tuple[bytes, int]:
        """Check the R-MAC of the response to the last wrapped command and decipher it.

        Amd D §6.2.5: an error status word comes bare; 9000, 62xx and 63xx carry an R-MAC
        over the MAC chaining value of the command, the response data and the status word.
        """
        if not self.level & SecurityLevel.R_MAC or not _protected(sw):
            return data, sw
        if len(data) < MAC_LENGTH:
            raise SecureChannelError(f"the card's response ({sw:04X}) carries no R-MAC")

        body, mac = data[:-MAC_LENGTH], data[-MAC_LENGTH:]
        expected = crypto.aes_cmac(self._s_rmac, self._chain + body + sw.to_bytes(2, "big"))
        if not crypto.equal(expected[:MAC_LENGTH], mac):
            raise SecureChannelError(f"the R-MAC of the card's answer ({sw:04X}) does not verify")
        if self.level & SecurityLevel.R_ENCRYPTION and body:
            body = self._decrypt_response(body)
        return body, sw

    def _decrypt_response(self, body: bytes) -> bytes:
        # §6.2.7: the ICV is AES(S-ENC, the command's counter block with byte 0 set to 80).
        if len(body) % 16:
            raise SecureChannelError("the card's enciphered response is not whole AES blocks")
        block = bytes((_R_ENC_MARKER,)) + self._counter_block()[1:]
        icv = crypto.aes_ecb_encrypt(self._s_enc, block)
        try:
            return crypto.unpad80(crypto.aes_cbc_decrypt(self._s_enc, body, icv), 16)
        except ValueError:
            raise SecureChannelError("the card's enciphered response has bad padding") from None

    def _counter_block(self) -> bytes:
        return self._counter.to_bytes(16, "big")

    def _mac(self, command: CommandApdu) -> CommandApdu:
        cla = (command.cla | CLA_SECURE) & 0xFF
        header = bytes((cla, command.ins, command.p1, command.p2, len(command.data) + 8))
        self._chain = crypto.aes_cmac(self._s_mac, self._chain + header + command.data)
        return CommandApdu(
            cla, command.ins, command.p1, command.p2, command.data + self._chain[:8], command.le
        )


def _protected(sw: int) -> bool:
    return sw == 0x9000 or sw >> 8 in (0x62, 0x63)
