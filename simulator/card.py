"""A virtual token: a GlobalPlatform card with its card manager and the CoolKey applet.

:class:`VirtualToken` behaves like the card in a reader: ``power_on()`` gives the ATR and
``process()`` takes one command APDU and returns the response APDU. It is what
``provision.transport.InProcessTransport`` drives, and what a vpcd bridge would serve.
Persistent state (CPLC, keys, counters, issuer info, life cycle) survives power cycles;
the selection and the secure channel do not.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from provision.gp.keys import Scp, StaticKeys
from provision.iso7816 import (
    CLA_ISO,
    CLA_SECURE,
    INS_SELECT,
    P1_SELECT_BY_NAME,
    SW,
    CommandApdu,
)

from .card_manager import P2_NO_RESPONSE_DATA, CardManager, cplc_from_cuid, cuid_from_cplc
from .coolkey import ISSUER_INFO_SIZE, LIFE_CYCLE_SELECTABLE, CoolKeyApplet
from .scp import CHANNELS, INS_EXTERNAL_AUTHENTICATE, RandomBytes
from .status import StatusError, status_bytes

logger = logging.getLogger(__name__)

# T=1 only: TS 3B, T0 9A (TA1, TD1, 10 historical bytes), TA1 13 (Fi 372, Di 4),
# TD1 81 (TD2 follows, T=1), TD2 31 (TA3, TB3, T=1), TA3 FE (IFSC 254),
# TB3 45 (BWI 4, CWI 5), historical bytes "CoolKeySim", TCK AD.
DEFAULT_ATR = bytes.fromhex("3B9A138131FE45") + b"CoolKeySim" + b"\xad"
CARD_MANAGER_AID = bytes.fromhex("A000000003000000")

DEFAULT_KVN = 0x01
DEFAULT_KEY = bytes(range(0x40, 0x50))
DEFAULT_APPLET_LEVELS = frozenset({0x01, 0x03})
DEFAULT_I = {Scp.SCP02: 0x15, Scp.SCP03: 0x10}

CUID_LENGTH = 10
# ISO 7816-4 §8.2.1.2: an AID has 5 to 16 bytes; SELECT may name a leading part of one.
MIN_AID_LENGTH = 5
MAX_AID_LENGTH = 16


@dataclass(frozen=True, slots=True)
class CardModel:
    """What kind of card a token is: its secure channel, limits, ATR and ISD AID."""

    protocol: Scp = Scp.SCP02
    i: int = 0x15
    applet_levels: frozenset[int] = field(default=DEFAULT_APPLET_LEVELS)
    auth_failure_limit: int = 10
    atr: bytes = DEFAULT_ATR
    card_manager_aid: bytes = CARD_MANAGER_AID

    def __post_init__(self) -> None:
        channel = CHANNELS.get(self.protocol)
        if channel is None:
            raise ValueError(f"{self.protocol.name} is not implemented")
        if self.i not in channel.implementations:
            choices = ", ".join(f"{i:02X}" for i in sorted(channel.implementations))
            raise ValueError(f"{self.protocol.name} i={self.i:02X} is not one of {choices}")
        if not self.applet_levels or any(not 0 <= p1 <= 0xFF for p1 in self.applet_levels):
            raise ValueError("applet_levels must be a non-empty set of P1 bytes")
        if self.auth_failure_limit < 1:
            raise ValueError("auth_failure_limit must be at least 1")
        if not 2 <= len(self.atr) <= 33 or self.atr[0] not in (0x3B, 0x3F):
            raise ValueError("an ATR has 2 to 33 bytes and starts with 3B or 3F")
        if not MIN_AID_LENGTH <= len(self.card_manager_aid) <= MAX_AID_LENGTH:
            raise ValueError("the card manager AID has 5 to 16 bytes")

    @classmethod
    def for_protocol(cls, protocol: Scp, i: int | None = None, **kwargs: Any) -> CardModel:
        """A model for ``protocol`` with that protocol's default "i" unless one is given."""
        return cls(protocol=protocol, i=DEFAULT_I[protocol] if i is None else i, **kwargs)


DEFAULT_MODEL = CardModel()


class Application(Protocol):
    """What the token needs of a selectable application."""

    @property
    def aid(self) -> bytes: ...

    def select(self, command: CommandApdu) -> bytes: ...

    def process(self, command: CommandApdu) -> bytes: ...


def default_key_sets(protocol: Scp) -> dict[int, StaticKeys]:
    """Key version 01 with Key-ENC = Key-MAC = Key-DEK = 40..4F (3DES, or AES-128)."""
    aes = protocol == Scp.SCP03
    keys = StaticKeys.from_bytes(DEFAULT_KEY, DEFAULT_KEY, DEFAULT_KEY, aes=aes)
    return {DEFAULT_KVN: keys}


class VirtualToken:
    """One simulated token: the card manager (ISD) and the CoolKey applet."""

    def __init__(
        self,
        *,
        model: CardModel,
        cplc: bytes,
        kdd: bytes,
        key_sets: Mapping[int, StaticKeys],
        sequence_counters: Mapping[int, int] | None = None,
        issuer_info: bytes = bytes(ISSUER_INFO_SIZE),
        life_cycle: int = LIFE_CYCLE_SELECTABLE,
        failed_auth_count: int = 0,
        locked: bool = False,
    ) -> None:
        self.model = model
        self.card_manager = CardManager(
            model,
            cplc=cplc,
            kdd=kdd,
            key_sets=key_sets,
            sequence_counters=sequence_counters,
            failed_auth_count=failed_auth_count,
            locked=locked,
        )
        self.applet = CoolKeyApplet(
            self.card_manager,
            issuer_info=issuer_info,
            life_cycle=life_cycle,
            levels=model.applet_levels,
        )
        self.commands_seen: Counter[tuple[int, int]] = Counter()
        self._selected: Application = self.card_manager

    @classmethod
    def blank(
        cls,
        cuid: bytes | None = None,
        *,
        model: CardModel = DEFAULT_MODEL,
        key_sets: Mapping[int, StaticKeys] | None = None,
        kdd: bytes | None = None,
    ) -> VirtualToken:
        """A token fresh from the factory: applet installed, issuer info zero, life cycle 07.

        Without ``cuid`` a random one is drawn; the KDD defaults to the CUID.
        """
        if cuid is None:
            cuid = secrets.token_bytes(CUID_LENGTH)
        if key_sets is None:
            key_sets = default_key_sets(model.protocol)
        cplc = cplc_from_cuid(cuid)
        return cls(model=model, cplc=cplc, kdd=cuid if kdd is None else kdd, key_sets=key_sets)

    # Persistent state, read-only from outside

    @property
    def cuid(self) -> bytes:
        return cuid_from_cplc(self.card_manager.cplc)

    @property
    def cplc(self) -> bytes:
        return self.card_manager.cplc

    @property
    def kdd(self) -> bytes:
        return self.card_manager.kdd

    @property
    def key_sets(self) -> dict[int, StaticKeys]:
        return self.card_manager.key_sets

    @property
    def sequence_counters(self) -> dict[int, int]:
        return self.card_manager.sequence_counters

    @property
    def issuer_info(self) -> bytes:
        return self.applet.issuer_info

    @property
    def life_cycle(self) -> int:
        return self.applet.life_cycle

    @property
    def failed_auth_count(self) -> int:
        return self.card_manager.failed_auth_count

    @property
    def locked(self) -> bool:
        return self.card_manager.locked

    @property
    def nv_writes(self) -> int:
        """How many times persistent memory was written."""
        return self.card_manager.nv_writes + self.applet.nv_writes

    def set_sequence_counter(self, kvn: int, value: int) -> None:
        """Force a key set's sequence counter (see CardManager.set_sequence_counter)."""
        self.card_manager.set_sequence_counter(kvn, value)

    # Transient state

    @property
    def atr(self) -> bytes:
        return self.model.atr

    @property
    def selected_aid(self) -> bytes:
        return self._selected.aid

    @property
    def card_challenge_source(self) -> RandomBytes:
        """Where random card challenges come from (``n -> n bytes``); tests may replace it."""
        return self.card_manager.card_challenge_source

    @card_challenge_source.setter
    def card_challenge_source(self, source: RandomBytes) -> None:
        self.card_manager.card_challenge_source = source

    def power_on(self) -> bytes:
        """Power up (or power cycle): the ISD is selected, no channel is open."""
        self.card_manager.reset()
        self._selected = self.card_manager
        return self.model.atr

    def reset(self) -> bytes:
        """Warm reset: the same as a power cycle for this card."""
        return self.power_on()

    # Commands

    def process(self, apdu: bytes) -> bytes:
        """Handle one command APDU; always returns a response, never raises."""
        if len(apdu) >= 2:
            self.commands_seen[(apdu[0], apdu[1])] += 1
        try:
            command = CommandApdu.decode(bytes(apdu))
        except ValueError as e:
            logger.debug("malformed APDU: %s", e)
            return status_bytes(SW.WRONG_LENGTH)

        try:
            data = self._dispatch(command)
        except StatusError as e:
            logger.debug("%02X %02X refused: %s", command.cla, command.ins, e)
            return status_bytes(e.sw)
        except Exception:
            # A simulator bug must not look like a transport failure to the host.
            logger.exception("simulator fault on %02X %02X", command.cla, command.ins)
            return status_bytes(SW.NO_PRECISE_DIAGNOSIS)
        return self.card_manager.respond(data, SW.OK)

    def _dispatch(self, command: CommandApdu) -> bytes:
        # XXX: only the basic logical channel; a class byte naming another one gets 6E00.
        if (command.cla, command.ins) == (CLA_ISO, INS_SELECT):
            return self._select(command)

        # EXTERNAL AUTHENTICATE must come right after INITIALIZE UPDATE (GPC 2.3.1 E.5.2).
        if (command.cla, command.ins) != (CLA_SECURE, INS_EXTERNAL_AUTHENTICATE):
            self.card_manager.abandon_initiation()
        return self._selected.process(command)

    def _select(self, command: CommandApdu) -> bytes:
        """SELECT by DF name (ISO 7816-4 §11.2.2); an empty name selects the ISD."""
        if command.p1 != P1_SELECT_BY_NAME or command.p2 not in (0x00, P2_NO_RESPONSE_DATA):
            raise StatusError(SW.INCORRECT_P1_P2, "only SELECT by name, first occurrence")
        application = self._find(command.data)
        if application is None:
            raise StatusError(SW.FILE_NOT_FOUND, f"no application {command.data.hex()}")

        # Amd D §5.6: selecting an application ends the secure channel.
        self.card_manager.close_channel()
        self._selected = application
        logger.debug("selected %s", application.aid.hex().upper())
        return application.select(command)

    def _find(self, name: bytes) -> Application | None:
        if not name:
            return self.card_manager
        if not MIN_AID_LENGTH <= len(name) <= MAX_AID_LENGTH:
            return None
        applications: tuple[Application, ...] = (self.card_manager, self.applet)
        for application in applications:
            if application.aid.startswith(name):
                return application
        return None

    def __repr__(self) -> str:
        return (
            f"VirtualToken(cuid={self.cuid.hex().upper()}, {self.model.protocol.name} "
            f"i={self.model.i:02X}, life_cycle={self.life_cycle:02X}, locked={self.locked})"
        )
