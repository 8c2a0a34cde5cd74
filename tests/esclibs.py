"""ESC's own libraries, driven through ctypes: what they make of a token.

Debian's ``coolkey`` package holds the PKCS#11 module ESC uses to find a token and build its
token id, and ``libckyapplet``, whose ``CKYApplet_GetIssuerInfo`` ESC calls for the Phone
Home URL (esc-phone-home.md §8). Each probe runs in a child process (``python -m
tests.esclibs pkcs11|issuer-info ...``) so that a library that misbehaves cannot take the
test run with it; it prints JSON.

The structures follow the PKCS#11 v2.20 header (``CK_TOKEN_INFO``, ``CK_SLOT_INFO``; on Linux
CK_ULONG is ``unsigned long`` and structures are not packed) and coolkey's ``cky_base.h``
(``CKYBuffer``: two ``unsigned long`` and two pointers).
"""

from __future__ import annotations

import ctypes
import json
import sys
from collections.abc import Sequence
from pathlib import Path

COOLKEY_MODULE = Path("/usr/lib/pkcs11/libcoolkeypk11.so")
CKYAPPLET = "libckyapplet.so.1"
CKR_OK = 0
CKYSUCCESS = 0
SCARD_SCOPE_USER = 0


class CkVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class CkSlotInfo(ctypes.Structure):
    _fields_ = [
        ("slotDescription", ctypes.c_char * 64),
        ("manufacturerID", ctypes.c_char * 32),
        ("flags", ctypes.c_ulong),
        ("hardwareVersion", CkVersion),
        ("firmwareVersion", CkVersion),
    ]


class CkTokenInfo(ctypes.Structure):
    _fields_ = [
        ("label", ctypes.c_char * 32),
        ("manufacturerID", ctypes.c_char * 32),
        ("model", ctypes.c_char * 16),
        ("serialNumber", ctypes.c_char * 16),
        ("flags", ctypes.c_ulong),
        ("ulMaxSessionCount", ctypes.c_ulong),
        ("ulSessionCount", ctypes.c_ulong),
        ("ulMaxRwSessionCount", ctypes.c_ulong),
        ("ulRwSessionCount", ctypes.c_ulong),
        ("ulMaxPinLen", ctypes.c_ulong),
        ("ulMinPinLen", ctypes.c_ulong),
        ("ulTotalPublicMemory", ctypes.c_ulong),
        ("ulFreePublicMemory", ctypes.c_ulong),
        ("ulTotalPrivateMemory", ctypes.c_ulong),
        ("ulFreePrivateMemory", ctypes.c_ulong),
        ("hardwareVersion", CkVersion),
        ("firmwareVersion", CkVersion),
        ("utcTime", ctypes.c_char * 16),
    ]


class CkyBuffer(ctypes.Structure):
    _fields_ = [
        ("reserved1", ctypes.c_ulong),
        ("reserved2", ctypes.c_ulong),
        ("reserved3", ctypes.c_void_p),
        ("reserved4", ctypes.c_void_p),
    ]


def _text(field: bytes) -> str:
    # PKCS#11 text fields are blank-padded, not NUL-terminated.
    return field.decode("utf-8", "replace").rstrip(" \x00")


def esc_token_id(manufacturer: str, model: str) -> str:
    """ESC's token id from the token info: the first 4 characters of manufacturerID and the
    model, spaces and dashes dropped, lower-cased (esc-phone-home.md §8)."""
    joined = manufacturer[:4] + model
    return joined.replace(" ", "").replace("-", "").lower()


def pkcs11_tokens(module: Path = COOLKEY_MODULE) -> list[dict[str, object]]:
    """Every token the module lists: C_Initialize, C_GetSlotList(present), C_GetTokenInfo."""
    lib = ctypes.CDLL(str(module))
    check(lib.C_Initialize(None), "C_Initialize")
    try:
        count = ctypes.c_ulong(0)
        check(lib.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count)), "C_GetSlotList")
        slots = (ctypes.c_ulong * max(count.value, 1))()
        check(lib.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count)), "C_GetSlotList")
        return [_token(lib, slots[n]) for n in range(count.value)]
    finally:
        lib.C_Finalize(None)


def _token(lib: ctypes.CDLL, slot: int) -> dict[str, object]:
    slot_info, info = CkSlotInfo(), CkTokenInfo()
    check(lib.C_GetSlotInfo(ctypes.c_ulong(slot), ctypes.byref(slot_info)), "C_GetSlotInfo")
    check(lib.C_GetTokenInfo(ctypes.c_ulong(slot), ctypes.byref(info)), "C_GetTokenInfo")
    return {
        "slot": _text(slot_info.slotDescription),
        "label": _text(info.label),
        "manufacturer": _text(info.manufacturerID),
        "model": _text(info.model),
        "serial": _text(info.serialNumber),
        "firmware": [info.firmwareVersion.major, info.firmwareVersion.minor],
    }


def check(rv: int, what: str) -> None:
    if rv != CKR_OK:
        raise RuntimeError(f"{what} returned {rv:#x}")


def issuer_info(reader: str) -> dict[str, object]:
    """The issuer info as ESC reads it: its own connection, SELECT CoolKey, GET ISSUER INFO."""
    lib = ctypes.CDLL(CKYAPPLET)
    lib.CKYCardContext_Create.restype = ctypes.c_void_p
    lib.CKYCardConnection_Create.restype = ctypes.c_void_p
    lib.CKYCardConnection_Create.argtypes = [ctypes.c_void_p]
    lib.CKYCardConnection_Connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.CKYApplet_SelectCoolKeyManager.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.CKYApplet_GetIssuerInfo.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.CKYBuffer_Size.restype = ctypes.c_ulong
    lib.CKYBuffer_Data.restype = ctypes.POINTER(ctypes.c_ubyte)
    lib.CKYCardConnection_Disconnect.argtypes = [ctypes.c_void_p]
    lib.CKYCardConnection_Destroy.argtypes = [ctypes.c_void_p]
    lib.CKYCardContext_Destroy.argtypes = [ctypes.c_void_p]

    context = lib.CKYCardContext_Create(ctypes.c_ulong(SCARD_SCOPE_USER))
    if not context:
        raise RuntimeError("CKYCardContext_Create failed")
    connection = lib.CKYCardConnection_Create(context)
    status = ctypes.c_ushort(0)
    buffer = CkyBuffer()
    lib.CKYBuffer_InitEmpty(ctypes.byref(buffer))
    try:
        if lib.CKYCardConnection_Connect(connection, reader.encode()) != CKYSUCCESS:
            raise RuntimeError(f"CKYCardConnection_Connect to {reader!r} failed")
        selected = lib.CKYApplet_SelectCoolKeyManager(connection, ctypes.byref(status))
        select_sw = status.value
        read = lib.CKYApplet_GetIssuerInfo(connection, ctypes.byref(buffer), ctypes.byref(status))
        size = lib.CKYBuffer_Size(ctypes.byref(buffer))
        raw = bytes(lib.CKYBuffer_Data(ctypes.byref(buffer))[:size]) if size else b""
        return {
            "select": selected,
            "select_sw": select_sw,
            "status": read,
            "sw": status.value,
            "raw": raw.hex(),
            # ESC copies the buffer as a C string
            "url": raw.split(b"\x00", 1)[0].decode("ascii", "replace"),
        }
    finally:
        lib.CKYBuffer_FreeData(ctypes.byref(buffer))
        lib.CKYCardConnection_Disconnect(connection)
        lib.CKYCardConnection_Destroy(connection)
        lib.CKYCardContext_Destroy(context)


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["pkcs11"]:
        print(json.dumps(pkcs11_tokens(Path(argv[1]) if len(argv) > 1 else COOLKEY_MODULE)))
        return 0
    if argv[:1] == ["issuer-info"]:
        print(json.dumps([issuer_info(reader) for reader in argv[1:]]))
        return 0
    print("usage: python -m tests.esclibs pkcs11 [MODULE] | issuer-info READER", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
