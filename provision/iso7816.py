"""ISO/IEC 7816-4 short command APDUs and status words.

Only short APDUs are used: every CoolKey and GlobalPlatform command this tool sends fits
in 255 data bytes, and the cards it targets do not all support extended length.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, unique

from .errors import ProvisionError
from .transport import split_response as split_response  # re-exported for callers

CLA_ISO = 0x00
CLA_GP = 0x80
CLA_SECURE = 0x84

INS_SELECT = 0xA4
INS_GET_RESPONSE = 0xC0
INS_GET_DATA = 0xCA
# GlobalPlatform secure channel commands (GPC 2.3.1 §11.8, §11.10).
INS_INITIALIZE_UPDATE = 0x50
INS_EXTERNAL_AUTHENTICATE = 0x82

P1_SELECT_BY_NAME = 0x04

MAX_SHORT_DATA = 255
MAX_SHORT_LE = 256


@unique
class SW(IntEnum):
    """Status words seen in this tool's dialogues (ISO 7816-4, GP 2.3.1, CoolKey)."""

    OK = 0x9000
    WARNING_NO_INFO = 0x6200
    WARNING_SELECTED_FILE_INVALIDATED = 0x6283
    VERIFICATION_FAILED = 0x6300
    WRONG_LENGTH = 0x6700
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    CONDITIONS_NOT_SATISFIED = 0x6985
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1_P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_P1_P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00
    # CoolKey applet (coolkey applet CardEdge.java, libckyapplet cky_applet.h)
    COOLKEY_UNAUTHORIZED = 0x9C06
    COOLKEY_INVALID_PARAMETER = 0x9C0F
    COOLKEY_INCORRECT_P1 = 0x9C10
    COOLKEY_INCORRECT_P2 = 0x9C11
    COOLKEY_SEQUENCE_END = 0x9C12


SW1_MORE_DATA = 0x61
SW1_WRONG_LE = 0x6C


def sw_name(sw: int) -> str:
    """``6A88 (REFERENCED_DATA_NOT_FOUND)``, or the bare hex for an unknown word."""
    try:
        return f"{sw:04X} ({SW(sw).name})"
    except ValueError:
        return f"{sw:04X}"


class ApduError(ProvisionError):
    """The card answered a command with an error status word."""

    def __init__(self, sw: int, command: str, data: bytes = b"") -> None:
        super().__init__(f"{command} failed: card answered {sw_name(sw)}")
        self.sw = sw
        self.command = command
        self.data = data


@dataclass(frozen=True, slots=True)
class CommandApdu:
    """A short command APDU. ``le`` is None when absent; 256 is written as ``00``."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} must be a byte, not {value}")
        if len(self.data) > MAX_SHORT_DATA:
            raise ValueError(f"{len(self.data)} data bytes do not fit a short APDU")
        if self.le is not None and not 0 < self.le <= MAX_SHORT_LE:
            raise ValueError(f"Le must be 1..256, not {self.le}")

    @property
    def header(self) -> bytes:
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def encode(self) -> bytes:
        """The APDU as sent to the card (ISO 7816-4 §5.1, cases 1 to 4, short form)."""
        out = self.header
        if self.data:
            out += bytes((len(self.data),)) + self.data
        if self.le is not None:
            out += bytes((self.le & 0xFF,))
        return out

    @classmethod
    def decode(cls, raw: bytes) -> CommandApdu:
        """Parse a short APDU; raises ValueError for anything that is not one."""
        if len(raw) < 4:
            raise ValueError(f"an APDU has at least 4 bytes, not {len(raw)}")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or MAX_SHORT_LE)

        lc = body[0]
        if lc == 0:
            raise ValueError("extended-length APDUs are not supported")
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, data=bytes(body[1:]))
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, data=bytes(body[1:-1]), le=body[-1] or MAX_SHORT_LE)
        raise ValueError(f"Lc {lc} does not match the {len(body) - 1} bytes that follow")


def select_by_name(aid: bytes, *, le: int | None = None) -> CommandApdu:
    """SELECT by DF name (ISO 7816-4 §11.2.2), first or only occurrence."""
    return CommandApdu(CLA_ISO, INS_SELECT, P1_SELECT_BY_NAME, 0x00, aid, le)
