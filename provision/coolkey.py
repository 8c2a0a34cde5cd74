"""The CoolKey applet and the card-manager commands around it.

Bytes as the CoolKey applet (coolkey ``applet/.../CardEdge.java``) and its host library
(libckyapplet ``cky_factory.c``) define them. The issuer info is a 224-byte field holding
the Phone Home URL in US-ASCII, NUL-padded; readers take the bytes before the first NUL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .errors import ProtocolError
from .gp.session import SecureChannel
from .iso7816 import CLA_GP, CLA_SECURE, INS_GET_DATA, SW, ApduError, CommandApdu, select_by_name
from .transport import Transport

logger = logging.getLogger(__name__)

COOLKEY_AID = bytes.fromhex("627601FF000000")
# The GP 2.1 ISD AID, the first of the card-manager AIDs TPS tries (esc-phone-home.md §1.1).
DEFAULT_CARD_MANAGER_AID = bytes.fromhex("A000000003000000")
CLA_COOLKEY = 0xB0

INS_GET_ISSUER_INFO = 0xF6
INS_SET_ISSUER_INFO = 0xF4
INS_GET_LIFE_CYCLE = 0xF2

ISSUER_INFO_SIZE = 0xE0
MAX_ISSUER_URL = ISSUER_INFO_SIZE - 1  # one NUL must follow: ESC reads a C string

# GET DATA for the Card Production Life Cycle data (GPC 2.3.1 §11.3, tag 9F7F).
P1P2_CPLC = 0x9F7F
CPLC_RESPONSE_SIZE = 0x2D


@dataclass(frozen=True, slots=True)
class Cuid:
    """The 10-byte card unique id CoolKey and TPS build from the CPLC data."""

    value: bytes

    @property
    def token_id(self) -> str:
        """The ESC token id: the CUID's 20 lowercase hex digits."""
        return self.value.hex()

    def __str__(self) -> str:
        return self.value.hex().upper()

    @classmethod
    def from_cplc(cls, response: bytes) -> Cuid:
        """IC fabricator, IC type, IC batch id and IC serial number, in that order
        (libckyapplet ``ckyAppletFill_GetCUID``; offsets count the ``9F 7F 2A`` header)."""
        if len(response) != CPLC_RESPONSE_SIZE or response[:3] != b"\x9f\x7f\x2a":
            raise ProtocolError(
                f"GET DATA CPLC answered {len(response)} bytes; expected 45 starting 9F7F2A"
            )
        return cls(response[3:7] + response[19:21] + response[15:19])


def encode_issuer_info(url: str) -> bytes:
    """The 224 bytes SET ISSUER INFO writes: the URL in US-ASCII, then NULs."""
    raw = url.encode("ascii")
    if not raw or len(raw) > MAX_ISSUER_URL:
        raise ValueError(f"issuer info holds 1 to {MAX_ISSUER_URL} bytes, not {len(raw)}")
    if 0 in raw:
        raise ValueError("issuer info cannot hold a NUL byte")
    return raw.ljust(ISSUER_INFO_SIZE, b"\x00")


def read_cuid(transport: Transport, card_manager_aid: bytes) -> Cuid:
    """Select the card manager and read the CUID from its CPLC data."""
    _, sw = transport.transmit(select_by_name(card_manager_aid).encode())
    if sw != SW.OK:
        raise ApduError(sw, f"SELECT card manager {card_manager_aid.hex().upper()}")
    return get_cuid(transport)


def get_cuid(transport: Transport) -> Cuid:
    """GET DATA CPLC from the application selected now (the card manager) and its CUID."""
    command = CommandApdu(
        CLA_GP, INS_GET_DATA, P1P2_CPLC >> 8, P1P2_CPLC & 0xFF, le=CPLC_RESPONSE_SIZE
    )
    data, sw = transport.transmit(command.encode())
    if sw != SW.OK:
        raise ApduError(sw, "GET DATA CPLC")
    return Cuid.from_cplc(data)


def select(transport: Transport) -> None:
    """Select the CoolKey applet. Like libckyapplet, only a bare 9000 counts."""
    data, sw = transport.transmit(select_by_name(COOLKEY_AID).encode())
    if sw != SW.OK:
        raise ApduError(sw, "SELECT CoolKey applet")
    if data:
        raise ProtocolError("the CoolKey applet answered SELECT with data; CoolKey sends none")


def get_issuer_info(transport: Transport) -> bytes:
    """All 224 bytes of the issuer info (the applet insists on Le = E0)."""
    command = CommandApdu(CLA_COOLKEY, INS_GET_ISSUER_INFO, 0, 0, le=ISSUER_INFO_SIZE)
    data, sw = transport.transmit(command.encode())
    if sw != SW.OK:
        raise ApduError(sw, "GET ISSUER INFO")
    if len(data) != ISSUER_INFO_SIZE:
        raise ProtocolError(f"GET ISSUER INFO answered {len(data)} bytes; expected 224")
    return data


def set_issuer_info(channel: SecureChannel, url: str) -> None:
    """Write the issuer info; only the applet's secure handler knows this command."""
    command = CommandApdu(CLA_SECURE, INS_SET_ISSUER_INFO, 0, 0, encode_issuer_info(url))
    _, sw = channel.send(command)
    if sw != SW.OK:
        raise ApduError(sw, "SET ISSUER INFO")
