"""Opening a GlobalPlatform secure channel: INITIALIZE UPDATE, then EXTERNAL AUTHENTICATE.

The card cryptogram is checked before EXTERNAL AUTHENTICATE is sent. A card counts every
failed EXTERNAL AUTHENTICATE towards locking itself, so a host holding the wrong keys must
find out from the card cryptogram and stop there: it never sends one it cannot expect to pass,
and it never retries on its own.

The keys come from a :class:`CardKeys` provider, asked with the key version and the key
diversification data the card reports, so a key store never hands out more than the one
card's keys.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Protocol

from ..errors import (
    AuthenticationError,
    KeyMismatchError,
    KeyVersionError,
    ProtocolError,
    SecureChannelError,
)
from ..iso7816 import (
    CLA_GP,
    INS_INITIALIZE_UPDATE,
    SW,
    CommandApdu,
    sw_name,
)
from ..transport import Transport
from . import crypto, scp01, scp02, scp03
from .keys import KeySet, Scp, SecurityLevel

logger = logging.getLogger(__name__)


# What cards answer INITIALIZE UPDATE with once they refuse secure channels: GPPro reads
# 6982 and 6983 as "card locked"; 6283 is the warning of a CARD_LOCKED card (GPC 2.3.1
# §11.9.3.3).
_LOCKED_SWS = frozenset(
    {
        SW.SECURITY_STATUS_NOT_SATISFIED,
        SW.AUTH_METHOD_BLOCKED,
        SW.WARNING_SELECTED_FILE_INVALIDATED,
    }
)


class CardKeys(Protocol):
    """Where a secure channel gets a card's static keys (GlobalPlatformPro's GPCardKeys).

    Given the key version and the key diversification data a card reports, a provider
    yields that card's key set, diversifying it from a master key when the key set says so.
    It hands out nothing else: master keys stay with the provider (in an HSM, inside it).
    """

    @property
    def kvns(self) -> tuple[int, ...]:
        """The key versions the provider has keys for."""
        ...

    def card_keys(self, kvn: int, kdd: bytes) -> KeySet | None:
        """The card's key set for version ``kvn``, or None when there is none."""
        ...

    def describe(self, kvn: int) -> str:
        """How key set ``kvn`` is made, with KCVs only, for messages."""
        ...


class HostSession(Protocol):
    scp: Scp
    i: int
    level: SecurityLevel

    def card_cryptogram(self) -> bytes: ...
    def external_authenticate(self, level: SecurityLevel) -> CommandApdu: ...
    def wrap(self, command: CommandApdu) -> CommandApdu: ...
    def unwrap(self, data: bytes, sw: int) -> tuple[bytes, int]: ...
    def session_key_kcvs(self) -> dict[str, str]: ...


def supported_levels(scp: Scp, i: int) -> frozenset[SecurityLevel]:
    """The EXTERNAL AUTHENTICATE levels this host offers for ``scp`` with option ``i``."""
    modules = {Scp.SCP01: scp01.levels_for, Scp.SCP02: scp02.levels_for}
    return modules.get(scp, scp03.levels_for)(i)


@dataclass(frozen=True, slots=True)
class InitializeUpdateResponse:
    """The fields of an INITIALIZE UPDATE response (GPC 2.1.1 D.4.1.6, GPC 2.3.1 E.5.1.6,
    Amd D §7.1.1.1)."""

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
        if scp_id == Scp.SCP01 and len(rest) == 16:
            return cls(kdd, kvn, Scp.SCP01, None, b"", rest[:8], rest[8:16])
        if scp_id == Scp.SCP02 and len(rest) == 16:
            return cls(kdd, kvn, Scp.SCP02, None, rest[:2], rest[2:8], rest[8:16])
        if scp_id == Scp.SCP03 and len(rest) in (17, 20):
            sequence = rest[17:20]
            return cls(kdd, kvn, Scp.SCP03, rest[0], sequence, rest[1:9], rest[9:17])
        raise ProtocolError(
            f"INITIALIZE UPDATE answer is not SCP01, SCP02 or SCP03 (protocol byte "
            f"{scp_id:02X}, {len(data)} bytes)"
        )


@dataclass(frozen=True, slots=True)
class ChannelParameters:
    """What the host expects of the card's secure channel.

    ``invoking_aid`` is the application selected when INITIALIZE UPDATE is sent; with it a
    pseudo-random card challenge is checked (and only noted when it does not match).
    """

    scp: Scp
    i: int
    level: SecurityLevel
    kvn: int = 0
    invoking_aid: bytes | None = None


class SecureChannel:
    """An authenticated channel: wraps each command and unwraps each response."""

    def __init__(self, transport: Transport, session: HostSession, kvn: int) -> None:
        self._transport = transport
        self._session = session
        self.kvn = kvn

    def __repr__(self) -> str:
        return f"SecureChannel({self._session!r}, kvn={self.kvn:02X})"

    def send(self, command: CommandApdu) -> tuple[bytes, int]:
        data, sw = self._transport.transmit(self._session.wrap(command).encode())
        return self._session.unwrap(data, sw)


def open_secure_channel(
    transport: Transport,
    params: ChannelParameters,
    keys: CardKeys,
    *,
    host_challenge: bytes | None = None,
) -> SecureChannel:
    """Authenticate to the card with the key set it names in its INITIALIZE UPDATE answer.

    Raises :class:`KeyVersionError` or :class:`KeyMismatchError` without sending EXTERNAL
    AUTHENTICATE when the host has no key set for the card's version or the card
    cryptogram does not verify; never retries.
    """
    challenge = host_challenge if host_challenge is not None else secrets.token_bytes(8)
    response = _initialize_update(transport, params.kvn, keys, challenge)
    _check_protocol(response, params)

    key_set = keys.card_keys(response.kvn, response.kdd)
    if key_set is None:
        raise KeyVersionError(
            f"the card reports key version {response.kvn:02X} (asked for "
            f"{_kvn_text(params.kvn)}) and the profile has no key set for it "
            f"(it has {_kvns_text(keys.kvns)}); EXTERNAL AUTHENTICATE was not sent"
        )
    session = _new_session(key_set, params, response, challenge)

    if not crypto.equal(session.card_cryptogram(), response.card_cryptogram):
        raise KeyMismatchError(_mismatch_message(keys, key_set, response))
    _note_card_challenge(session, key_set, params, response)

    _external_authenticate(transport, session, params.level)
    logger.debug(
        "secure channel open: %s i=%02X kvn %02X level %02X",
        session.scp.name,
        session.i,
        key_set.kvn,
        params.level,
    )
    return SecureChannel(transport, session, key_set.kvn)


def _initialize_update(
    transport: Transport, kvn: int, keys: CardKeys, challenge: bytes
) -> InitializeUpdateResponse:
    command = CommandApdu(CLA_GP, INS_INITIALIZE_UPDATE, kvn, 0x00, challenge, le=256)
    data, sw = transport.transmit(command.encode())
    if sw == SW.REFERENCED_DATA_NOT_FOUND:
        raise KeyVersionError(
            f"the card has no key set with version {_kvn_text(kvn)} (INITIALIZE UPDATE "
            f"answered {sw_name(sw)}; the profile has {_kvns_text(keys.kvns)}); "
            "EXTERNAL AUTHENTICATE was not sent"
        )
    if sw in _LOCKED_SWS:
        raise SecureChannelError(
            f"the card refuses to open a secure channel (INITIALIZE UPDATE answered "
            f"{sw_name(sw)}): it may be locked after failed authentications; not retrying"
        )
    if sw != SW.OK:
        raise SecureChannelError(f"INITIALIZE UPDATE failed: card answered {sw_name(sw)}")
    return InitializeUpdateResponse.parse(data)


def _check_protocol(response: InitializeUpdateResponse, params: ChannelParameters) -> None:
    if response.scp != params.scp:
        raise SecureChannelError(
            f"the card speaks {response.scp.name}, the profile expects {params.scp.name}; "
            "EXTERNAL AUTHENTICATE was not sent"
        )
    if response.i is not None and response.i != params.i:
        raise SecureChannelError(
            f"the card reports {response.scp.name} i={response.i:02X}, the profile "
            f"expects i={params.i:02X}; EXTERNAL AUTHENTICATE was not sent"
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
    if key_set.keys.aes != (params.scp is Scp.SCP03):
        kind = "AES" if key_set.keys.aes else "3DES"
        raise SecureChannelError(
            f"key set {key_set.kvn:02X} holds {kind} keys, which {params.scp.name} cannot use"
        )
    if params.scp is Scp.SCP01:
        return scp01.Scp01Session(
            key_set.keys,
            i=params.i,
            host_challenge=host_challenge,
            card_challenge=response.card_challenge,
        )
    if params.scp is Scp.SCP02:
        return scp02.Scp02Session(
            key_set.keys,
            i=params.i,
            sequence_counter=response.sequence_counter,
            host_challenge=host_challenge,
            card_challenge=response.card_challenge,
        )
    return scp03.Scp03Session(
        key_set.keys,
        i=params.i,
        host_challenge=host_challenge,
        card_challenge=response.card_challenge,
    )


def _mismatch_message(keys: CardKeys, key_set: KeySet, response: InitializeUpdateResponse) -> str:
    return (
        f"the card cryptogram does not verify with {keys.describe(key_set.kvn)} for KDD "
        f"{response.kdd.hex().upper()} (card keys ENC KCV {key_set.keys.enc.kcv}): wrong "
        "keys, key version, diversification or protocol; EXTERNAL AUTHENTICATE was not "
        "sent, so the card's retry counter is untouched"
    )


def _note_card_challenge(
    session: HostSession,
    key_set: KeySet,
    params: ChannelParameters,
    response: InitializeUpdateResponse,
) -> None:
    """Compare a pseudo-random card challenge with its derivation; only note a difference.

    The card cryptogram is what authenticates the card. Published traces show cards with a
    pseudo-random "i" sending other challenges, so a mismatch is no reason to refuse.
    """
    if params.invoking_aid is None:
        return
    expected: bytes | None = None
    if isinstance(session, scp02.Scp02Session):
        expected = session.pseudo_random_card_challenge(params.invoking_aid)
    elif isinstance(session, scp03.Scp03Session) and session.i & scp03.I_PSEUDO_RANDOM_CHALLENGE:
        expected = scp03.pseudo_random_card_challenge(
            key_set.keys.enc.value, response.sequence_counter, params.invoking_aid
        )
    if expected is not None and not crypto.equal(expected, response.card_challenge):
        logger.info(
            "the card challenge is not the pseudo-random one %s i=%02X describes; "
            "the card cryptogram verified, going on",
            session.scp.name,
            session.i,
        )


def _external_authenticate(
    transport: Transport, session: HostSession, level: SecurityLevel
) -> None:
    if level not in supported_levels(session.scp, session.i):
        raise SecureChannelError(
            f"{session.scp.name} i={session.i:02X} has no security level {level:02X}; "
            "EXTERNAL AUTHENTICATE was not sent"
        )
    command = session.external_authenticate(level)
    _, sw = transport.transmit(command.encode())
    if sw == SW.CONDITIONS_NOT_SATISFIED:
        # A level the card refuses: a setting to fix, not a key that failed.
        raise SecureChannelError(
            f"the card refused EXTERNAL AUTHENTICATE with {sw_name(sw)}: it does not accept "
            f"security level {level:02X}; check the level the card's applet accepts"
        )
    if sw != SW.OK:
        # The card cryptogram proves the keys it is computed with (S-ENC for SCP01/02,
        # S-MAC for SCP03), not all three: a wrong other key shows only here, and the card
        # has counted one failed attempt. Never retried; the batch counts it as a mismatch.
        raise AuthenticationError(
            f"the card refused EXTERNAL AUTHENTICATE with {sw_name(sw)} although its "
            "cryptogram verified: likely a wrong MAC key; the card counted one failed "
            "attempt; not retrying"
        )


def _kvn_text(kvn: int) -> str:
    return "00 (any)" if kvn == 0 else f"{kvn:02X}"


def _kvns_text(kvns: tuple[int, ...]) -> str:
    if not kvns:
        return "no key sets"
    return "key set" + ("s " if len(kvns) > 1 else " ") + ", ".join(f"{k:02X}" for k in kvns)
