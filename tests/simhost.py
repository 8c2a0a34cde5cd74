"""A small host end of SCP02 (i=15) and SCP03 for the simulator's APDU-level tests.

Written for these tests from GPC 2.3.1 Appendix E and Amendment D, apart from the card side
in ``simulator/scp.py`` and from the tool's host side in ``provision/gp``. Only the
stateless primitives are shared. It checks the card cryptogram with plain asserts: a test
that reaches a bad one has already failed.
"""

from __future__ import annotations

import os

from provision.gp import crypto
from provision.gp.keys import StaticKeys
from provision.iso7816 import split_response
from simulator.card import VirtualToken

OK = 0x9000


class Host:
    """Opens a channel to a virtual token and wraps commands for it."""

    def __init__(self, token: VirtualToken, keys: StaticKeys, level: int = 0x03) -> None:
        self.token = token
        self.keys = keys
        self.level = level
        self.scp = 0
        self._s_enc = b""
        self._s_mac = b""
        self._last_mac: bytes | None = None
        self._chain = bytes(16)
        self._counter = 0

    def send(self, apdu: bytes) -> tuple[bytes, int]:
        return split_response(self.token.process(apdu))

    def initialize_update(self, kvn: int = 0, cla: int = 0x80) -> tuple[bytes, int]:
        self.host_challenge = os.urandom(8)
        data, sw = self.send(bytes((cla, 0x50, kvn, 0x00, 0x08)) + self.host_challenge)
        if sw == OK:
            self._derive(data)
        return data, sw

    def _derive(self, response: bytes) -> None:
        self.scp = response[11]
        self._last_mac, self._chain, self._counter = None, bytes(16), 0
        if self.scp == 0x02:
            seq, card = response[12:14], response[14:20]
            self._s_enc = crypto.des3_cbc_encrypt(
                self.keys.enc.value, b"\x01\x82" + seq + bytes(12)
            )
            self._s_mac = crypto.des3_cbc_encrypt(
                self.keys.mac.value, b"\x01\x01" + seq + bytes(12)
            )
            msg = self.host_challenge + seq + card
            assert crypto.mac_des3(self._s_enc, crypto.pad80(msg, 8)) == response[20:28]
            self._host_cryptogram = crypto.mac_des3(
                self._s_enc, crypto.pad80(seq + card + self.host_challenge, 8)
            )
        else:
            context = self.host_challenge + response[13:21]
            bits = 8 * len(self.keys.enc.value)
            self._s_enc = crypto.scp03_kdf(self.keys.enc.value, 0x04, context, bits)
            self._s_mac = crypto.scp03_kdf(self.keys.mac.value, 0x06, context, bits)
            assert crypto.scp03_kdf(self._s_mac, 0x00, context, 64) == response[21:29]
            self._host_cryptogram = crypto.scp03_kdf(self._s_mac, 0x01, context, 64)

    def external_authenticate(
        self, level: int | None = None, *, corrupt: bool = False
    ) -> tuple[bytes, int]:
        level = self.level if level is None else level
        cryptogram = bytes(8) if corrupt else self._host_cryptogram
        header = bytes((0x84, 0x82, level, 0x00))
        mac = self._mac(header, cryptogram)
        return self.send(header + b"\x10" + cryptogram + mac)

    def open(self, kvn: int = 0) -> None:
        assert self.initialize_update(kvn)[1] == OK
        assert self.external_authenticate()[1] == OK

    def _mac(self, header: bytes, data: bytes) -> bytes:
        lc = bytes((len(data) + 8,))
        if self.scp == 0x02:
            icv = bytes(8)
            if self._last_mac is not None:
                icv = crypto.des_ecb_encrypt(self._s_mac, self._last_mac)
            mac = crypto.mac_retail(self._s_mac, crypto.pad80(header + lc + data, 8), icv)
            self._last_mac = mac
            return mac
        full = crypto.aes_cmac(self._s_mac, self._chain + header + lc + data)
        self._chain = full
        return full[:8]

    def wrap(
        self, ins: int, p1: int = 0, p2: int = 0, data: bytes = b"", cla: int = 0x84
    ) -> bytes:
        """A protected command; SCP02 MACs the plain data, SCP03 the cipher text."""
        header = bytes((cla, ins, p1, p2))
        encrypt = bool(self.level & 0x02) and bool(data)
        if self.scp == 0x02:
            mac = self._mac(header, data)
            if encrypt:
                data = crypto.des3_cbc_encrypt(self._s_enc, crypto.pad80(data, 8))
        else:
            self._counter += 1
            if encrypt:
                icv = crypto.aes_ecb_encrypt(self._s_enc, self._counter.to_bytes(16, "big"))
                data = crypto.aes_cbc_encrypt(self._s_enc, crypto.pad80(data, 16), icv)
            mac = self._mac(header, data)
        return header + bytes((len(data) + 8,)) + data + mac
