"""What a token holds, read without changing anything (``provision inspect``).

The same plain commands ESC's libraries send (esc-phone-home.md §8): the CPLC for the CUID,
then, with the CoolKey applet selected, GET LIFE CYCLE (the 4-byte form), GET STATUS and
GET ISSUER INFO. No secure channel is opened, so nothing on the card moves. The issuer info
is then classified and resolved the way ESC would, which says what ESC would fetch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from . import coolkey
from .errors import ProtocolError, ProvisionError
from .iso7816 import SW, ApduError, CommandApdu
from .phonehome.issuer_info import IssuerInfo, classify_issuer_info
from .phonehome.request import request_url
from .phonehome.resolve import Resolution, resolve_phone_home_url
from .transport import Transport

logger = logging.getLogger(__name__)

T = TypeVar("T")

CARD_MANAGER_AID = coolkey.DEFAULT_CARD_MANAGER_AID
INS_GET_STATUS = 0x3C
LIFE_CYCLE_LENGTH = 4
STATUS_LENGTH = 16

# GPC 2.3.1 §11.1.1.2 application states; the CoolKey applet ships SELECTABLE and TPS sets
# PERSONALIZED at enrolment, the only state coolkey treats as initialised (§8).
LIFE_CYCLES = {0x07: "SELECTABLE (not enrolled)", 0x0F: "PERSONALIZED (enrolled)"}


@dataclass(frozen=True, slots=True)
class LifeCycle:
    """GET LIFE CYCLE, 4-byte form: state, PIN flags, applet protocol version."""

    state: int
    pin_flags: int
    protocol: tuple[int, int]

    def describe(self) -> str:
        name = LIFE_CYCLES.get(self.state, "not a CoolKey state")
        return f"{self.state:02X} {name}"


@dataclass(frozen=True, slots=True)
class AppletStatus:
    """GET STATUS (coolkey ``ckyAppletFill_GetStatus``)."""

    protocol: tuple[int, int]
    applet: tuple[int, int]
    total_memory: int
    free_memory: int
    pins: int
    keys: int

    @classmethod
    def parse(cls, data: bytes) -> AppletStatus:
        return cls(
            (data[0], data[1]),
            (data[2], data[3]),
            int.from_bytes(data[4:8], "big"),
            int.from_bytes(data[8:12], "big"),
            data[12],
            data[13],
        )


@dataclass(frozen=True, slots=True)
class TokenInspection:
    reader: str
    atr: bytes
    cuid: coolkey.Cuid
    life_cycle: LifeCycle | None
    status: AppletStatus | None
    issuer_info: bytes | None
    classified: IssuerInfo | None
    resolution: Resolution | None
    problems: tuple[str, ...] = ()

    @property
    def token_id(self) -> str:
        return self.cuid.token_id

    @property
    def request_url(self) -> str | None:
        """What ESC would fetch: the resolved URL with the token id."""
        if self.resolution is None or self.resolution.url is None:
            return None
        return request_url(self.resolution.url, self.token_id)


def inspect_token(
    transport: Transport,
    *,
    card_manager_aid: bytes = CARD_MANAGER_AID,
    global_url: str | None = None,
    ignore_token: bool = False,
) -> TokenInspection:
    """Read what ``provision inspect`` shows. Raises only if the CUID cannot be read; what
    else fails is listed in ``problems``."""
    cuid = coolkey.read_cuid(transport, card_manager_aid)
    problems: list[str] = []
    try:
        coolkey.select(transport)
    except ProvisionError as exc:
        problems.append(f"no CoolKey applet: {exc}")
        return TokenInspection(
            transport.reader, transport.atr, cuid, None, None, None, None, None, tuple(problems)
        )

    life_cycle = _read(problems, lambda: _life_cycle(transport))
    status = _read(problems, lambda: _status(transport))
    raw = _read(problems, lambda: coolkey.get_issuer_info(transport))
    classified = resolution = None
    if raw is not None:
        classified = classify_issuer_info(raw)
        resolution = resolve_phone_home_url(
            classified, global_url=global_url, prompt=None, ignore_token=ignore_token
        )
    return TokenInspection(
        transport.reader,
        transport.atr,
        cuid,
        life_cycle,
        status,
        raw,
        classified,
        resolution,
        tuple(problems),
    )


def _read(problems: list[str], read: Callable[[], T]) -> T | None:
    try:
        return read()
    except ProvisionError as exc:
        problems.append(str(exc))
        return None


def _life_cycle(transport: Transport) -> LifeCycle:
    command = CommandApdu(
        coolkey.CLA_COOLKEY, coolkey.INS_GET_LIFE_CYCLE, 0, 0, le=LIFE_CYCLE_LENGTH
    )
    data = _exact(transport, command, "GET LIFE CYCLE", LIFE_CYCLE_LENGTH)
    return LifeCycle(data[0], data[1], (data[2], data[3]))


def _status(transport: Transport) -> AppletStatus:
    command = CommandApdu(coolkey.CLA_COOLKEY, INS_GET_STATUS, 0, 0, le=STATUS_LENGTH)
    return AppletStatus.parse(_exact(transport, command, "GET STATUS", STATUS_LENGTH))


def _exact(transport: Transport, command: CommandApdu, name: str, length: int) -> bytes:
    data, sw = transport.transmit(command.encode())
    if sw != SW.OK:
        raise ApduError(sw, name)
    if len(data) != length:
        raise ProtocolError(f"{name} answered {len(data)} bytes; expected {length}")
    return data
