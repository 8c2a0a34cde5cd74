"""Cryptographic building blocks of the GlobalPlatform secure channels.

These are the primitives both sides of a channel use (GPC 2.3.1 Appendix B, Amendment D
§4.1). The block ciphers and CMAC come from ``cryptography``; this module only arranges
them as the specifications ask (padding, CBC-MAC chains, the SCP03 KDF). Nothing here keeps
state.
"""

from __future__ import annotations

import hmac
import warnings

from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.hmac import HMAC

with warnings.catch_warnings():
    # Importing from decrepit is the supported spelling; older releases warn on it.
    warnings.simplefilter("ignore")
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES

DES_BLOCK = 8
AES_BLOCK = 16
ZERO_DES_ICV = bytes(DES_BLOCK)
ZERO_AES_ICV = bytes(AES_BLOCK)


def pad80(data: bytes, block: int) -> bytes:
    """ISO/IEC 9797-1 padding method 2: ``80`` then zeros up to a whole block (always adds)."""
    return data + b"\x80" + bytes(-(len(data) + 1) % block)


def unpad80(data: bytes, block: int) -> bytes:
    """Undo :func:`pad80`; raises ValueError when the padding is not method 2."""
    if not data or len(data) % block:
        raise ValueError("padded data must be a non-empty multiple of the block size")
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= block:
        raise ValueError("bad ISO 9797-1 method 2 padding")
    return stripped[:-1]


def _des3_key(key: bytes) -> bytes:
    """Expand a 1-, 2- or 3-key DES key to the 24 bytes ``TripleDES`` takes without warning."""
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise ValueError(f"a DES key has 8, 16 or 24 bytes, not {len(key)}")


def des3_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    enc = Cipher(TripleDES(_des3_key(key)), modes.ECB()).encryptor()  # noqa: S305 - GP mandates ECB
    return enc.update(data) + enc.finalize()


def des3_cbc_encrypt(key: bytes, data: bytes, iv: bytes = ZERO_DES_ICV) -> bytes:
    enc = Cipher(TripleDES(_des3_key(key)), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def des3_cbc_decrypt(key: bytes, data: bytes, iv: bytes = ZERO_DES_ICV) -> bytes:
    dec = Cipher(TripleDES(_des3_key(key)), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def des_ecb_encrypt(key: bytes, block: bytes) -> bytes:
    """Single DES with the first 8 bytes of ``key`` (for the SCP02 ICV encryption)."""
    return des3_ecb_encrypt(key[:8], block)


def mac_des3(key: bytes, padded: bytes, icv: bytes = ZERO_DES_ICV) -> bytes:
    """Full triple-DES CBC-MAC (GPC B.1.2.1) over already padded data: the last block."""
    return des3_cbc_encrypt(key, padded, icv)[-DES_BLOCK:]


def mac_retail(key: bytes, padded: bytes, icv: bytes = ZERO_DES_ICV) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 (single DES chain, 3DES on the last block; GPC B.1.2.2).

    ``padded`` must already be a whole number of blocks.
    """
    if not padded or len(padded) % DES_BLOCK:
        raise ValueError("retail MAC input must be a non-empty multiple of 8 bytes")
    chain = icv
    if len(padded) > DES_BLOCK:
        chain = des3_cbc_encrypt(key[:8], padded[:-DES_BLOCK], icv)[-DES_BLOCK:]
    last = bytes(a ^ b for a, b in zip(chain, padded[-DES_BLOCK:], strict=True))
    return des3_ecb_encrypt(key, last)


def aes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    enc = Cipher(AES(key), modes.ECB()).encryptor()  # noqa: S305 - GP mandates ECB
    return enc.update(data) + enc.finalize()


def aes_cbc_encrypt(key: bytes, data: bytes, iv: bytes = ZERO_AES_ICV) -> bytes:
    enc = Cipher(AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, data: bytes, iv: bytes = ZERO_AES_ICV) -> bytes:
    dec = Cipher(AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def aes_cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(AES(key))
    mac.update(data)
    return mac.finalize()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = HMAC(key, SHA256())
    mac.update(data)
    return mac.finalize()


def des_odd_parity(key: bytes) -> bytes:
    """``key`` with the low bit of each byte set so that every byte has odd parity
    (FIPS 46-3: the DES parity bits; the cipher itself ignores them)."""
    return bytes((b & 0xFE) | ((bin(b >> 1).count("1") + 1) & 1) for b in key)


def scp03_kdf(key: bytes, constant: int, context: bytes, bits: int) -> bytes:
    """The SCP03 key derivation function (Amd D §4.1.5): NIST SP 800-108 in counter mode
    with AES-CMAC, the 1-byte counter after the fixed label and length."""
    label = bytes(11) + bytes((constant, 0)) + bits.to_bytes(2, "big")
    out = b""
    counter = 1
    while len(out) * 8 < bits:
        out += aes_cmac(key, label + bytes((counter,)) + context)
        counter += 1
    return out[: bits // 8]


def kcv_des(key: bytes) -> bytes:
    """Key check value of a DES key: the first 3 bytes of 3DES-ECB(key, 8 × 00)."""
    return des3_ecb_encrypt(key, bytes(DES_BLOCK))[:3]


def kcv_aes(key: bytes) -> bytes:
    """Key check value of an AES key as SCP03 defines it: AES-ECB(key, 16 × 01)[:3]."""
    return aes_ecb_encrypt(key, b"\x01" * AES_BLOCK)[:3]


def equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison, for every MAC and cryptogram check."""
    return hmac.compare_digest(a, b)
