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

from provision.gp.crypto import aes_cmac, des3_ecb_encrypt, hmac_sha256
from provision.gp.keys import Key, Scp, StaticKeys
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
DEFAULT_I = {Scp.SCP01: 0x05, Scp.SCP02: 0x15, Scp.SCP03: 0x10}

# What a card answers a bad host cryptogram with (GPC 2.3.1 E.5.2.7: 6300; some cards
# 6982), and INITIALIZE UPDATE once it has locked itself (6982; others give 6283).
AUTH_FAILURE_SWS = frozenset({SW.VERIFICATION_FAILED, SW.SECURITY_STATUS_NOT_SATISFIED})
LOCKED_SWS = frozenset({SW.SECURITY_STATUS_NOT_SATISFIED, SW.WARNING_SELECTED_FILE_INVALIDATED})

CUID_LENGTH = 10
KDD_LENGTH = 10
DIVERSIFICATIONS = ("visa2", "emv-cps-1.1", "kdf3", "nist-sp800-108")
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
    auth_failure_sw: int = SW.VERIFICATION_FAILED
    locked_sw: int = SW.SECURITY_STATUS_NOT_SATISFIED

    def __post_init__(self) -> None:
        channel = CHANNELS.get(self.protocol)
        if channel is None:
            raise ValueError(f"{self.protocol.name} is not implemented")
        if self.i not in channel.implementations:
            choices = ", ".join(f"{i:02X}" for i in sorted(channel.implementations))
            raise ValueError(f"{self.protocol.name} i={self.i:02X} is not one of {choices}")
        levels = channel.levels_for(self.i)
        if not self.applet_levels or not self.applet_levels <= levels:
            choices = ", ".join(f"{p1:02X}" for p1 in sorted(levels))
            raise ValueError(f"applet_levels must be a non-empty set of {choices}")
        if self.auth_failure_sw not in AUTH_FAILURE_SWS:
            raise ValueError("auth_failure_sw is 6300 or 6982")
        if self.locked_sw not in LOCKED_SWS:
            raise ValueError("locked_sw is 6982 or 6283")
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


@dataclass(frozen=True, slots=True, repr=False)
class MasterKey:
    """A master key and the method an issuer diversified a card's key set from it with."""

    method: str
    value: bytes

    def __post_init__(self) -> None:
        if self.method not in DIVERSIFICATIONS:
            raise ValueError(f"diversification {self.method!r} is not one of {DIVERSIFICATIONS}")

    def __repr__(self) -> str:
        return f"MasterKey({self.method})"


def diversified_keys(master: MasterKey, kdd: bytes) -> StaticKeys:
    """The static keys an issuer puts on a card with this KDD (globalplatform.md §1.6;
    Dogtag NistSP800_108KDF for nist-sp800-108). Written for the card side on its own."""
    if len(kdd) != KDD_LENGTH:
        raise ValueError(f"the KDD has {KDD_LENGTH} bytes")
    if master.method == "kdf3":
        return StaticKeys(*(Key(_kdf3(master.value, kdd, t), aes=True) for t in (1, 2, 3)))
    if master.method == "nist-sp800-108":
        return _nist_sp800_108(master.value, kdd)

    # VISA2 takes KDD bytes 0-1 and 4-7; EMV CPS 1.1 the six rightmost ones.
    serial = kdd[0:2] + kdd[4:8] if master.method == "visa2" else kdd[4:10]
    blocks = (serial + bytes((0xF0, t)) + serial + bytes((0x0F, t)) for t in (1, 2, 3))
    return StaticKeys(*(Key(des3_ecb_encrypt(master.value, block)) for block in blocks))


def _kdf3(master: bytes, kdd: bytes, key_type: int) -> bytes:
    # GPPro's kdf3 template: CMAC(master, i ‖ 00 00 00 ‖ t ‖ 00 ‖ KDD), i = 1, 2, ...
    blocks = (aes_cmac(master, bytes((n, 0, 0, 0, key_type, 0)) + kdd) for n in (1, 2))
    return b"".join(blocks)[: len(master)]


def _nist_sp800_108(master: bytes, kdd: bytes) -> StaticKeys:
    # HMAC-SHA256(master, n ‖ 04 ‖ 00 ‖ KDD ‖ 01 80) for n = 1, 2: ENC, MAC, KEK of 16
    # bytes each, DES parity set (the low bit of each byte makes its bit count odd).
    out = b"".join(hmac_sha256(master, bytes((n, 4, 0)) + kdd + b"\x01\x80") for n in (1, 2))
    keys = []
    for start in (0, 16, 32):
        part = out[start : start + 16]
        keys.append(Key(bytes(b ^ (1 - bin(b).count("1") % 2) for b in part)))
    return StaticKeys(*keys)


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
        key_sets: Mapping[int, StaticKeys | MasterKey] | None = None,
        kdd: bytes | None = None,
    ) -> VirtualToken:
        """A token fresh from the factory: applet installed, issuer info zero, life cycle 07.

        Without ``cuid`` a random one is drawn; the KDD defaults to the CUID. A key set given
        as a :class:`MasterKey` is diversified with the token's KDD, as an issuer does.
        """
        if cuid is None:
            cuid = secrets.token_bytes(CUID_LENGTH)
        kdd = cuid if kdd is None else kdd
        if key_sets is None:
            key_sets = default_key_sets(model.protocol)
        static = {
            kvn: diversified_keys(keys, kdd) if isinstance(keys, MasterKey) else keys
            for kvn, keys in key_sets.items()
        }
        return cls(model=model, cplc=cplc_from_cuid(cuid), kdd=kdd, key_sets=static)

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
        return self.card_manager.respond(command, data, SW.OK)

    def _dispatch(self, command: CommandApdu) -> bytes:
        # XXX: only the basic logical channel; a class byte naming another one gets 6E00.
        if (command.cla, command.ins) == (CLA_ISO, INS_SELECT):
            return self._select(command)

        # EXTERNAL AUTHENTICATE must come right after INITIALIZE UPDATE (GPC 2.3.1 E.5.2).
        if (command.cla, command.ins) != (CLA_SECURE, INS_EXTERNAL_AUTHENTICATE):
            self.card_manager.abandon_initiation()
        self.card_manager.invoking_aid = self._selected.aid
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
