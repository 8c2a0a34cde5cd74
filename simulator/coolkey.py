"""The CoolKey applet, as far as Phone Home and token detection need it.

Behaviour follows the v1.4 applet (dogtagpki/coolkey ``CardEdge.java``) as summarised in
esc-phone-home.md §1.1–1.3 and §8: dispatch by class byte, the 224-byte issuer info, the life
cycle, GET STATUS and GET BUILD ID. Secure-channel commands go through the card manager,
whose keys the applet uses.
"""

from __future__ import annotations

import logging

from provision.iso7816 import CLA_GP, CLA_ISO, CLA_SECURE, SW, CommandApdu

from .card_manager import CardManager
from .scp import INS_EXTERNAL_AUTHENTICATE, INS_INITIALIZE_UPDATE
from .status import StatusError

logger = logging.getLogger(__name__)

COOLKEY_AID = bytes.fromhex("627601FF000000")

CLA_COOLKEY = 0xB0

INS_GET_STATUS = 0x3C
INS_GET_BUILD_ID = 0x70
INS_SET_LIFE_CYCLE = 0xF0
INS_GET_LIFE_CYCLE = 0xF2
INS_SET_ISSUER_INFO = 0xF4
INS_GET_ISSUER_INFO = 0xF6

ISSUER_INFO_SIZE = 0xE0

# GPC 2.3.1 §11.1.1.2: an application's life cycle keeps b1-b3 set (SELECTABLE) and b8
# clear (LOCKED is the card manager's to set). TPS writes 0F when it enrols a token.
LIFE_CYCLE_SELECTABLE = 0x07
LIFE_CYCLE_PERSONALIZED = 0x0F

PROTOCOL_VERSION = bytes((1, 1))
APPLET_VERSION = bytes((1, 4))
# The standard v1.4 applet TPS ships is named 1.4.58768072 (pki CS.cfg).
BUILD_ID = bytes.fromhex("58768072")

# GET STATUS memory figures of a blank token (there are no objects yet).
OBJECT_MEMORY = 0x4000
PIN_COUNT = 1
KEY_COUNT = 0


def valid_life_cycle(state: int) -> bool:
    return 0 <= state <= 0x7F and state & LIFE_CYCLE_SELECTABLE == LIFE_CYCLE_SELECTABLE


class CoolKeyApplet:
    """The applet instance: its persistent issuer info and life cycle."""

    aid = COOLKEY_AID

    def __init__(
        self,
        card_manager: CardManager,
        *,
        issuer_info: bytes = bytes(ISSUER_INFO_SIZE),
        life_cycle: int = LIFE_CYCLE_SELECTABLE,
        levels: frozenset[int],
    ) -> None:
        if len(issuer_info) != ISSUER_INFO_SIZE:
            raise ValueError(f"issuer info has {ISSUER_INFO_SIZE} bytes, not {len(issuer_info)}")
        if not valid_life_cycle(life_cycle):
            raise ValueError(f"life cycle {life_cycle:02X} is not a selectable state")
        self._card_manager = card_manager
        self.issuer_info = bytes(issuer_info)
        self.life_cycle = life_cycle
        self.levels = levels
        self.nv_writes = 0

    def _commit(self, what: str) -> None:
        self.nv_writes += 1
        logger.debug("persistent write: %s", what)

    def select(self, command: CommandApdu) -> bytes:
        # libckyapplet accepts the SELECT only if the answer is the bare status word (§8).
        return b""

    def process(self, command: CommandApdu) -> bytes:
        """Dispatch by class byte as CardEdge.process does (esc-phone-home.md §1.1)."""
        if command.cla == CLA_ISO:
            return b""
        if command.cla == CLA_COOLKEY:
            return self._process_plain(command)
        if command.cla == CLA_GP:
            # CardEdge.initializeUpdate answers any other INS with 6D00.
            if command.ins != INS_INITIALIZE_UPDATE:
                raise StatusError(SW.INS_NOT_SUPPORTED)
            return self._card_manager.initialize_update(command)
        if command.cla == CLA_SECURE:
            return self._process_secure(command)
        raise StatusError(SW.CLA_NOT_SUPPORTED)

    # CLA B0: no secure channel needed

    def _process_plain(self, command: CommandApdu) -> bytes:
        if command.ins == INS_GET_ISSUER_INFO:
            return self._get_issuer_info(command)
        if command.ins == INS_GET_LIFE_CYCLE:
            return self._get_life_cycle(command)
        if command.ins == INS_GET_STATUS:
            return self._get_status(command)
        if command.ins == INS_GET_BUILD_ID:
            return self._get_build_id(command)
        # XXX: no object, PIN or key commands (LIST OBJECTS, READ OBJECT, VERIFY PIN, ...).
        # SET ISSUER INFO (F4) lands here too: it exists only under CLA 84.
        raise StatusError(SW.INS_NOT_SUPPORTED)

    def _get_issuer_info(self, command: CommandApdu) -> bytes:
        # CardEdge.getIssuerInfo checks P3: it must be exactly E0
        if command.data or command.le != ISSUER_INFO_SIZE:
            raise StatusError(SW.WRONG_LENGTH, "GET ISSUER INFO wants Le E0")
        return self.issuer_info

    def _get_life_cycle(self, command: CommandApdu) -> bytes:
        # P3 = 01 gives the old 1-byte answer; anything else the 4-byte form coolkey reads
        # first: state, PIN-enabled + writable flags, protocol major and minor (§8).
        if command.le == 1 and not command.data:
            return bytes((self.life_cycle,))
        return bytes((self.life_cycle, 0x00)) + PROTOCOL_VERSION

    def _get_status(self, command: CommandApdu) -> bytes:
        if command.p1 != 0x00:
            raise StatusError(SW.COOLKEY_INCORRECT_P1)
        if command.p2 != 0x00:
            raise StatusError(SW.COOLKEY_INCORRECT_P2)

        # protocol and applet versions, total and free object memory, #PINs, #keys,
        # logged-in identities (coolkey ckyAppletFill_GetStatus)
        memory = OBJECT_MEMORY.to_bytes(4, "big")
        counts = bytes((PIN_COUNT, KEY_COUNT))
        return PROTOCOL_VERSION + APPLET_VERSION + memory + memory + counts + b"\x00\x00"

    def _get_build_id(self, command: CommandApdu) -> bytes:
        # CardEdge.getBuildID refuses a P3 below 4
        le = 0 if command.data else (command.le or 0)
        if le < len(BUILD_ID):
            raise StatusError(SW.WRONG_LENGTH, "GET BUILD ID wants Le 04")
        return BUILD_ID

    # CLA 84: secure channel only

    def _process_secure(self, command: CommandApdu) -> bytes:
        if command.ins == INS_EXTERNAL_AUTHENTICATE:
            return self._card_manager.external_authenticate(command, applet_levels=self.levels)

        # CardEdge.verifySecureChannel unwraps before it looks at the INS.
        plain = self._card_manager.unwrap(command)
        if plain.ins == INS_SET_ISSUER_INFO:
            return self._set_issuer_info(plain)
        if plain.ins == INS_SET_LIFE_CYCLE:
            return self._set_life_cycle(plain)
        raise StatusError(SW.INS_NOT_SUPPORTED)

    def _set_issuer_info(self, plain: CommandApdu) -> bytes:
        # CardEdge.setIssuerInfo: the unwrapped Lc must be exactly E0
        if len(plain.data) != ISSUER_INFO_SIZE:
            raise StatusError(SW.WRONG_LENGTH, "SET ISSUER INFO wants 224 bytes")
        self.issuer_info = plain.data
        self._commit("issuer info")
        return b""

    def _set_life_cycle(self, plain: CommandApdu) -> bytes:
        # CardEdge.setLifeCycle: no data; the state is P1
        if plain.data:
            raise StatusError(SW.WRONG_LENGTH, "SET LIFE CYCLE takes no data")
        if not valid_life_cycle(plain.p1):
            raise StatusError(SW.COOLKEY_INVALID_PARAMETER, f"life cycle {plain.p1:02X}")
        self.life_cycle = plain.p1
        self._commit("life cycle")
        return b""
