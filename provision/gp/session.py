"""Opening a GlobalPlatform secure channel: INITIALIZE UPDATE, then EXTERNAL AUTHENTICATE.

The card cryptogram is checked before EXTERNAL AUTHENTICATE is sent. A card counts every
failed EXTERNAL AUTHENTICATE towards locking itself, so a host holding the wrong keys must
find out from the card cryptogram and stop there: it never sends one it cannot expect to pass,
and it never retries on its own.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import (
    AuthenticationError,
    KeyMismatchError,
    KeyVersionError,
    ProtocolError,
    SecureChannelError,
)
from ..iso7816 import CLA_GP, SW, CommandApdu, sw_name
from ..transport import Transport
from . import crypto
from .keys import KeySet, Scp, SecurityLevel
from .scp02 import Scp02Session
from .scp03 import Scp03Session

logger = logging.getLogger(__name__)

INS_INITIALIZE_UPDATE = 0x50
INS_EXTERNAL_AUTHENTICATE = 0x82


class HostSession(Protocol):
    scp: Scp
    i: int
    level: SecurityLevel

    def card_cryptogram(self) -> bytes: ...
    def external_authenticate(self, level: SecurityLevel) -> CommandApdu: ...
    def wrap(self, command: CommandApdu) -> CommandApdu: ...


@dataclass(frozen=True, slots=True)
class InitializeUpdateResponse:
    """The fields of an INITIALIZE UPDATE response (GPC 2.3.1 E.5.1.4, Amd D §7.1.1.4)."""

    kdd: bytes
    kvn: int
    scp: Scp
    i: int | None
    sequence_counter: bytes
    card_challenge: bytes
    card_cryptogram: bytes

    @classmethod
    def parse(cls, data: bytes) -> InitializeUpdateResponse:
        if len(data) < 12:
            raise ProtocolError(f"INITIALIZE UPDATE answered {len(data)} bytes, too few")
        kdd, kvn, scp_id, rest = data[:10], data[10], data[11], data[12:]
        if scp_id == Scp.SCP02 and len(rest) == 16:
            return cls(kdd, kvn, Scp.SCP02, None, rest[:2], rest[2:8], rest[8:16])
        if scp_id == Scp.SCP03 and len(rest) in (17, 20):
            sequence = rest[17:20]
            return cls(kdd, kvn, Scp.SCP03, rest[0], sequence, rest[1:9], rest[9:17])
        raise ProtocolError(
            f"INITIALIZE UPDATE answer is not SCP02 or SCP03 (protocol byte {scp_id:02X}, "
            f"{len(data)} bytes)"
        )


@dataclass(frozen=True, slots=True)
class ChannelParameters:
    """What the host expects of the card's secure channel."""

    scp: Scp
    i: int
    level: SecurityLevel
    kvn: int = 0


class SecureChannel:
    """An authenticated channel: wraps each command before it goes to the transport."""

    def __init__(self, transport: Transport, session: HostSession, kvn: int) -> None:
        self._transport = transport
        self._session = session
        self.kvn = kvn

    def __repr__(self) -> str:
        return f"SecureChannel({self._session!r}, kvn={self.kvn:02X})"

    def send(self, command: CommandApdu) -> tuple[bytes, int]:
        return self._transport.transmit(self._session.wrap(command).encode())


def open_secure_channel(
    transport: Transport,
    params: ChannelParameters,
    key_set_for: Callable[[int], KeySet | None],
    *,
    host_challenge: bytes | None = None,
) -> SecureChannel:
    """Authenticate to the card with the key set it names in its INITIALIZE UPDATE answer.

    ``key_set_for`` maps the card's key version number to the host's key set. Raises
    :class:`KeyMismatchError` without sending EXTERNAL AUTHENTICATE when the card
    cryptogram does not verify.
    """
    challenge = host_challenge if host_challenge is not None else secrets.token_bytes(8)
    response = _initialize_update(transport, params.kvn, challenge)
    _check_protocol(response, params)

    key_set = key_set_for(response.kvn)
    if key_set is None:
        raise KeyVersionError(
            f"the card reports key version {response.kvn:02X} (asked for "
            f"{_kvn_text(params.kvn)}) and the profile has no key set for it"
        )
    session = _new_session(key_set, params, response, challenge)

    if not crypto.equal(session.card_cryptogram(), response.card_cryptogram):
        raise KeyMismatchError(
            f"the card cryptogram does not verify with key set {key_set.kvn:02X} "
            f"(ENC KCV {key_set.keys.enc.kcv}): wrong keys, key version, diversification "
            f"or protocol; EXTERNAL AUTHENTICATE was not sent"
        )

    command = session.external_authenticate(params.level)
    _, sw = transport.transmit(command.encode())
    if sw != SW.OK:
        raise AuthenticationError(
            f"the card refused EXTERNAL AUTHENTICATE with {sw_name(sw)} although its "
            f"cryptogram verified; not retrying"
        )
    logger.debug(
        "secure channel open: %s i=%02X kvn %02X level %02X",
        session.scp.name,
        session.i,
        key_set.kvn,
        params.level,
    )
    return SecureChannel(transport, session, key_set.kvn)


def _initialize_update(
    transport: Transport, kvn: int, challenge: bytes
) -> InitializeUpdateResponse:
    command = CommandApdu(CLA_GP, INS_INITIALIZE_UPDATE, kvn, 0x00, challenge, le=256)
    data, sw = transport.transmit(command.encode())
    if sw == SW.REFERENCED_DATA_NOT_FOUND:
        raise KeyVersionError(
            f"the card has no key set with version {_kvn_text(kvn)} "
            f"(INITIALIZE UPDATE answered {sw_name(sw)})"
        )
    if sw != SW.OK:
        raise SecureChannelError(f"INITIALIZE UPDATE failed: card answered {sw_name(sw)}")
    return InitializeUpdateResponse.parse(data)


def _check_protocol(response: InitializeUpdateResponse, params: ChannelParameters) -> None:
    if response.scp != params.scp:
        raise SecureChannelError(
            f"the card speaks {response.scp.name}, the profile expects {params.scp.name}"
        )
    if response.i is not None and response.i != params.i:
        raise SecureChannelError(
            f"the card reports {response.scp.name} i={response.i:02X}, the profile "
            f"expects i={params.i:02X}"
        )
    if params.kvn and response.kvn != params.kvn:
        # Some cards answer with another version than the one asked for; the key set that
        # counts is the one the card says it used.
        logger.info("asked for key version %02X, the card uses %02X", params.kvn, response.kvn)


def _new_session(
    key_set: KeySet,
    params: ChannelParameters,
    response: InitializeUpdateResponse,
    host_challenge: bytes,
) -> HostSession:
    if params.scp == Scp.SCP02:
        return Scp02Session(
            key_set.keys,
            i=params.i,
            sequence_counter=response.sequence_counter,
            host_challenge=host_challenge,
            card_challenge=response.card_challenge,
        )
    return Scp03Session(
        key_set.keys,
        i=params.i,
        host_challenge=host_challenge,
        card_challenge=response.card_challenge,
    )


def _kvn_text(kvn: int) -> str:
    return "00 (any)" if kvn == 0 else f"{kvn:02X}"
