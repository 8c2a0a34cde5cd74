"""The card manager (Issuer Security Domain): CPLC, key sets and the secure channel.

The ISD answers SELECT, GET DATA and the two commands that open a secure channel. The CoolKey
applet forwards INITIALIZE UPDATE, EXTERNAL AUTHENTICATE and the unwrapping of its protected
commands here, so the ISD's keys serve both (esc-phone-home.md §1.2). The authentication
failure counter and the lock are the ISD's as well.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING

from provision.gp.keys import StaticKeys
from provision.iso7816 import CLA_GP, CLA_ISO, CLA_SECURE, INS_GET_DATA, SW, CommandApdu

from .scp import (
    CHANNELS,
    HOST_CHALLENGE_LENGTH,
    INS_EXTERNAL_AUTHENTICATE,
    INS_INITIALIZE_UPDATE,
    MAC_LENGTH,
    CardChannel,
    RandomBytes,
    SecureMessagingError,
)
from .status import StatusError

if TYPE_CHECKING:
    from .card import CardModel

logger = logging.getLogger(__name__)

SW1_WRONG_LE = 0x6C

# ISO 7816-4 Table 40: SELECT P2 0C asks for no response data.
P2_NO_RESPONSE_DATA = 0x0C

# GPC 2.3.1 §11.3 GET DATA tags
TAG_CPLC = 0x9F7F
TAG_CARD_DATA = 0x0066

CPLC_LENGTH = 42
KDD_LENGTH = 10

# CPLC offsets of the fields the CUID is made of (esc-phone-home.md §1.4; the offsets there
# count the 3-byte 9F7F 2A header, these do not).
CPLC_IC_FABRICATOR = slice(0, 2)
CPLC_IC_TYPE = slice(2, 4)
CPLC_IC_SERIAL_NUMBER = slice(12, 16)
CPLC_IC_BATCH_IDENTIFIER = slice(16, 18)

# GPC 2.3.1 Annex H.2 card recognition data: the GlobalPlatform OID prefix 1.2.840.114283
_GP_OID = bytes.fromhex("2A864886FC6B")


def cplc_from_cuid(cuid: bytes) -> bytes:
    """42 CPLC bytes that read back as ``cuid``: fabricator, type, batch id, serial number."""
    if len(cuid) != 10:
        raise ValueError(f"a CUID has 10 bytes, not {len(cuid)}")
    cplc = bytearray(CPLC_LENGTH)
    cplc[CPLC_IC_FABRICATOR] = cuid[0:2]
    cplc[CPLC_IC_TYPE] = cuid[2:4]
    cplc[CPLC_IC_BATCH_IDENTIFIER] = cuid[4:6]
    cplc[CPLC_IC_SERIAL_NUMBER] = cuid[6:10]
    return bytes(cplc)


def cuid_from_cplc(cplc: bytes) -> bytes:
    """The 10-byte CUID as coolkey and TPS read it from the CPLC."""
    return (
        cplc[CPLC_IC_FABRICATOR]
        + cplc[CPLC_IC_TYPE]
        + cplc[CPLC_IC_BATCH_IDENTIFIER]
        + cplc[CPLC_IC_SERIAL_NUMBER]
    )


def _tlv(tag: bytes, value: bytes) -> bytes:
    """BER-TLV with a one-byte length (every object here is shorter than 128 bytes)."""
    return tag + bytes((len(value),)) + value


class CardManager:
    """The ISD: persistent key sets and counters, plus the transient secure channel."""

    def __init__(
        self,
        model: CardModel,
        *,
        cplc: bytes,
        kdd: bytes,
        key_sets: Mapping[int, StaticKeys],
        sequence_counters: Mapping[int, int] | None = None,
        failed_auth_count: int = 0,
        locked: bool = False,
    ) -> None:
        self.model = model
        self._channel_class = CHANNELS[model.protocol]
        self.cplc = _checked_length("cplc", cplc, CPLC_LENGTH)
        self.kdd = _checked_length("kdd", kdd, KDD_LENGTH)
        self._key_sets = self._checked_key_sets(key_sets)
        self._counters = self._checked_counters(sequence_counters or {})
        if failed_auth_count < 0:
            raise ValueError("failed_auth_count cannot be negative")
        self.failed_auth_count = failed_auth_count
        self.locked = locked
        self.nv_writes = 0

        self.channel: CardChannel | None = None
        self._channel_kvn = 0
        # The AID of the selected application, which pseudo-random challenges depend on.
        self.invoking_aid: bytes | None = None
        self.card_challenge_source: RandomBytes = secrets.token_bytes

    def _checked_key_sets(self, key_sets: Mapping[int, StaticKeys]) -> dict[int, StaticKeys]:
        if not key_sets:
            raise ValueError("the card needs at least one key set")
        for kvn, keys in key_sets.items():
            if not 0x01 <= kvn <= 0xFF:
                raise ValueError(f"key version {kvn} is not 01..FF (00 means 'first')")
            self._channel_class.check_keys(keys)
        return dict(key_sets)

    def _checked_counters(self, counters: Mapping[int, int]) -> dict[int, int]:
        top = self._channel_class.max_sequence_counter()
        checked = {kvn: 0 for kvn in self._key_sets}
        if any(counters.values()) and not self._channel_class.has_sequence_counter():
            raise ValueError(f"{self.model.protocol.name} has no sequence counters")
        for kvn, value in counters.items():
            if kvn not in checked:
                raise ValueError(f"sequence counter for unknown key version {kvn:02X}")
            if not 0 <= value <= top:
                raise ValueError(f"sequence counter {value} of key version {kvn:02X} too big")
            checked[kvn] = value
        return checked

    @property
    def aid(self) -> bytes:
        return self.model.card_manager_aid

    @property
    def key_sets(self) -> dict[int, StaticKeys]:
        """A copy of the key sets by kvn, in the card's order (the first is the default)."""
        return dict(self._key_sets)

    @property
    def sequence_counters(self) -> dict[int, int]:
        """A copy of the sequence counters by kvn."""
        return dict(self._counters)

    def set_sequence_counter(self, kvn: int, value: int) -> None:
        """Force a key set's counter, e.g. to replay a published trace.

        SCP02 reports the stored value in the next INITIALIZE UPDATE; SCP03 with a
        pseudo-random challenge first increments it (Amd D §6.2.2.1).
        """
        if kvn not in self._counters:
            raise KeyError(f"no key set with version {kvn:02X}")
        if not 0 <= value <= self._channel_class.max_sequence_counter():
            raise ValueError(f"sequence counter {value} out of range")
        self._counters[kvn] = value

    def _commit(self, what: str) -> None:
        """Count one write to persistent memory."""
        self.nv_writes += 1
        logger.debug("persistent write: %s", what)

    # Transient state

    def reset(self) -> None:
        """Card reset or power-up: the channel is gone, persistent state stays."""
        self.close_channel()

    def close_channel(self) -> None:
        if self.channel is not None:
            logger.debug("secure channel closed")
        self.channel = None

    def abandon_initiation(self) -> None:
        """Any command but EXTERNAL AUTHENTICATE ends a channel that is not yet open."""
        if self.channel is not None and not self.channel.authenticated:
            self.close_channel()

    # Commands

    def select(self, command: CommandApdu) -> bytes:
        """The SELECT answer: FCI only when the command asks for data (has an Le)."""
        if command.le is None or command.p2 == P2_NO_RESPONSE_DATA:
            return b""

        # GPC 2.3.1 §11.9.3.1: FCI template with the AID and proprietary data
        # (here only the maximum length of data field in a command message).
        proprietary = _tlv(b"\x9f\x65", b"\xff")
        fci = _tlv(b"\x6f", _tlv(b"\x84", self.aid) + _tlv(b"\xa5", proprietary))
        if command.le < len(fci):
            raise StatusError((SW1_WRONG_LE << 8) | len(fci), "Le shorter than the FCI")
        return fci

    def process(self, command: CommandApdu) -> bytes:
        """A command sent while the ISD is the selected application."""
        if command.cla == CLA_SECURE:
            if command.ins == INS_EXTERNAL_AUTHENTICATE:
                return self.external_authenticate(command)
            return self._process_plain(self.unwrap(command))
        if command.cla == CLA_GP:
            if command.ins == INS_INITIALIZE_UPDATE:
                return self.initialize_update(command)
            self._refuse_unprotected()
            return self._process_plain(command)
        if command.cla == CLA_ISO:
            raise StatusError(SW.INS_NOT_SUPPORTED)
        raise StatusError(SW.CLA_NOT_SUPPORTED)

    def _refuse_unprotected(self) -> None:
        # Amd D §5.6: inside an open channel a command below the current level is a
        # security error that also aborts the channel.
        if self.channel is not None and self.channel.authenticated:
            self.close_channel()
            raise StatusError(SW.SECURITY_STATUS_NOT_SATISFIED, "unprotected command")

    def _process_plain(self, command: CommandApdu) -> bytes:
        if command.ins == INS_GET_DATA:
            return self._get_data(command)
        # XXX: no INSTALL, LOAD, DELETE, GET STATUS, PUT KEY or STORE DATA (they get 6D00).
        raise StatusError(SW.INS_NOT_SUPPORTED)

    def _get_data(self, command: CommandApdu) -> bytes:
        tag = (command.p1 << 8) | command.p2
        if tag == TAG_CPLC:
            return self._get_cplc(command)
        if tag == TAG_CARD_DATA:
            return self._card_recognition_data()
        raise StatusError(SW.REFERENCED_DATA_NOT_FOUND, f"GET DATA tag {tag:04X}")

    def _get_cplc(self, command: CommandApdu) -> bytes:
        # libckyapplet wants exactly 45 bytes; TPS resends with the Le from 6Cxx.
        response = _tlv(b"\x9f\x7f", self.cplc)
        if command.le not in (len(response), 256):
            raise StatusError((SW1_WRONG_LE << 8) | len(response), "GET DATA CPLC Le")
        return response

    def _card_recognition_data(self) -> bytes:
        # GPC 2.3.1 Annex H.2; tag 64 names the ISD's SCP and "i", which is how TPS and
        # GPPro pick the protocol before INITIALIZE UPDATE.
        gp = _tlv(b"\x06", _GP_OID + b"\x01")
        version = _tlv(b"\x60", _tlv(b"\x06", _GP_OID + bytes((0x02, 0x02, 0x02, 0x01))))
        scheme = _tlv(b"\x63", _tlv(b"\x06", _GP_OID + b"\x03"))
        scp = bytes((0x04, self.model.protocol, self.model.i))
        channel = _tlv(b"\x64", _tlv(b"\x06", _GP_OID + scp))
        return _tlv(b"\x66", _tlv(b"\x73", gp + version + scheme + channel))

    def initialize_update(self, command: CommandApdu) -> bytes:
        """INITIALIZE UPDATE (GPC 2.3.1 E.5.1, Amd D §7.1.1): start a new channel.

        The channel belongs to the selected application (:attr:`invoking_aid`): the ISD, or
        the applet that forwarded the command to it.
        """
        if self.locked:
            raise StatusError(self.model.locked_sw, "card locked")
        if command.p2 != 0x00:
            raise StatusError(SW.INCORRECT_P1_P2, "INITIALIZE UPDATE P2")
        if len(command.data) != HOST_CHALLENGE_LENGTH:
            raise StatusError(SW.WRONG_LENGTH, "host challenge length")

        # Amd D §5.6: a new INITIALIZE UPDATE ends whatever channel there was.
        self.close_channel()
        kvn, keys = self._key_set(command.p1)
        counter = self._next_counter(kvn)

        self.channel = self._channel_class.initiate(
            keys,
            command.data,
            i=self.model.i,
            sequence_counter=counter,
            invoking_aid=self.invoking_aid or self.aid,
            random_bytes=self.card_challenge_source,
        )
        self._channel_kvn = kvn
        logger.debug("INITIALIZE UPDATE with key version %02X", kvn)
        return self.channel.initialize_update_response(self.kdd, kvn)

    def _key_set(self, kvn: int) -> tuple[int, StaticKeys]:
        # GPC 2.3.1 E.5.1.1: key version 00 means the first available key set
        if kvn == 0x00:
            kvn = next(iter(self._key_sets))
        keys = self._key_sets.get(kvn)
        if keys is None:
            raise StatusError(SW.REFERENCED_DATA_NOT_FOUND, f"no key version {kvn:02X}")
        return kvn, keys

    def _next_counter(self, kvn: int) -> int:
        """The sequence counter this INITIALIZE UPDATE uses, advanced first if the SCP says."""
        counter = self._counters[kvn]
        if not self._channel_class.has_sequence_counter():
            return counter
        if counter >= self._channel_class.max_sequence_counter():
            # Amd D §6.2.2.1: an exhausted counter refuses new channels
            raise StatusError(SW.CONDITIONS_NOT_SATISFIED, "sequence counter exhausted")

        if self._channel_class.advances_counter_on_initiate(self.model.i):
            counter += 1
            self._counters[kvn] = counter
            self._commit(f"sequence counter of key version {kvn:02X}")
        return counter

    def external_authenticate(
        self, command: CommandApdu, applet_levels: frozenset[int] | None = None
    ) -> bytes:
        """EXTERNAL AUTHENTICATE (GPC 2.3.1 E.5.2): only right after INITIALIZE UPDATE.

        ``applet_levels`` narrows the accepted P1 when an applet forwards the command.
        """
        channel = self.channel
        self.close_channel()
        if channel is None or channel.authenticated:
            raise StatusError(SW.CONDITIONS_NOT_SATISFIED, "no INITIALIZE UPDATE before")
        if len(command.data) != 2 * MAC_LENGTH:
            raise StatusError(SW.WRONG_LENGTH, "EXTERNAL AUTHENTICATE length")
        if command.p1 not in channel.levels or (
            applet_levels is not None and command.p1 not in applet_levels
        ):
            raise StatusError(SW.CONDITIONS_NOT_SATISFIED, f"level {command.p1:02X}")
        if command.p2 != 0x00:
            raise StatusError(SW.INCORRECT_P1_P2, "EXTERNAL AUTHENTICATE P2")

        if not channel.authenticate(command):
            self._record_failure()
            raise StatusError(self.model.auth_failure_sw, "host cryptogram or C-MAC")
        self._record_success()
        self.channel = channel
        return b""

    def _record_failure(self) -> None:
        self.failed_auth_count += 1
        if self.failed_auth_count >= self.model.auth_failure_limit:
            self.locked = True
            logger.info("card locked after %d failed authentications", self.failed_auth_count)
        self._commit("failed authentication counter")

    def _record_success(self) -> None:
        changed = self.failed_auth_count != 0
        self.failed_auth_count = 0
        if self._channel_class.advances_counter_on_authenticate:
            self._counters[self._channel_kvn] += 1
            changed = True
        if changed:
            self._commit("authentication counters")

    def unwrap(self, command: CommandApdu) -> CommandApdu:
        """Check and strip a protected command; any failure ends the channel (6982)."""
        channel = self.channel
        if channel is None or not channel.authenticated:
            raise StatusError(SW.SECURITY_STATUS_NOT_SATISFIED, "no secure channel")
        try:
            return channel.unwrap(command)
        except SecureMessagingError:
            self.close_channel()
            raise

    def respond(self, command: CommandApdu, data: bytes, sw: int) -> bytes:
        """The response APDU, protected as the open channel asks.

        Amd D §6.2.5: the EXTERNAL AUTHENTICATE response carries no R-MAC.
        """
        opening = (command.cla, command.ins) == (CLA_SECURE, INS_EXTERNAL_AUTHENTICATE)
        if self.channel is not None and self.channel.authenticated and not opening:
            return self.channel.wrap_response(data, sw)
        return data + sw.to_bytes(2, "big")


def _checked_length(name: str, value: bytes, length: int) -> bytes:
    if len(value) != length:
        raise ValueError(f"{name} has {length} bytes, not {len(value)}")
    return bytes(value)
