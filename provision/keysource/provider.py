"""The key provider a burn asks for each card's keys (session.CardKeys).

:func:`open_card_keys` resolves every key set of a profile once per run, before any token is
touched: it reads the variables and key files, logs in to the PKCS#11 tokens and refuses
well-known test keys that a key set does not declare. After that the provider hands out one
card's keys at a time, diversified from the card's KDD, and keeps none of them.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from ..errors import ConfigError
from ..gp import crypto
from ..gp.diversify import Diversification, MasterKey, PlainMasterKey, diversify
from ..gp.keys import KeySet, StaticKeys
from .material import Material, read_env, read_file
from .pkcs11 import Pkcs11Session
from .spec import EnvSource, FileSource, KeySetSpec, Pkcs11Source

logger = logging.getLogger(__name__)


def _runs(name: str, start: int) -> list[tuple[str, bytes]]:
    keys = [(name, bytes(range(start, start + n))) for n in (16, 24, 32)]
    two_key = keys[0][1]
    return [*keys, (name, two_key + two_key[:8])]  # a two-key 3DES key written K1 K2 K1


# Keys printed in specifications, sample configurations and vendor manuals: a card that
# holds them is protected by nothing.
WELL_KNOWN_TEST_KEYS: tuple[tuple[str, bytes], ...] = (
    *_runs("the GlobalPlatform test key 40..4F", 0x40),
    *_runs("the TKS sample key 30..3F", 0x30),
    *_runs("the TKS sample key 50..5F", 0x50),
    *((f"a key of {n} zero bytes", bytes(n)) for n in (16, 24, 32)),
    ("the GemXpresso sample key GEMXPRESSOSAMPLE", b"GEMXPRESSOSAMPLE"),
)
# What each method computes from a master key; equal results mean equal keys.
_PROBE = bytes(16)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One resolved key set: its static keys or its master key, and where they came from."""

    spec: KeySetSpec
    origin: str
    static: StaticKeys | None = None
    master: MasterKey | None = None


class ProfileCardKeys:
    """The card keys of a profile's key sets, resolved for one run."""

    def __init__(self, entries: Iterable[_Entry], closers: Sequence[Callable[[], None]]) -> None:
        self._entries = {entry.spec.kvn: entry for entry in entries}
        self._finalizer = weakref.finalize(self, _close_all, tuple(closers))

    def __repr__(self) -> str:
        return f"ProfileCardKeys({', '.join(self.describe(kvn) for kvn in self.kvns)})"

    @property
    def kvns(self) -> tuple[int, ...]:
        return tuple(self._entries)

    @property
    def test_key_sets(self) -> tuple[int, ...]:
        """The key versions whose keys are declared test keys."""
        return tuple(kvn for kvn, entry in self._entries.items() if entry.spec.test_keys)

    def card_keys(self, kvn: int, kdd: bytes) -> KeySet | None:
        entry = self._entries.get(kvn)
        if entry is None:
            return None
        if entry.static is not None:
            return KeySet(kvn, entry.static, test_keys=entry.spec.test_keys)

        assert entry.master is not None
        # XXX: Python cannot overwrite bytes: card keys are dropped with the session, not wiped.
        keys = diversify(entry.spec.diversification, entry.master, kdd)
        logger.debug(
            "key set %02X: card keys for KDD %s (ENC KCV %s)", kvn, kdd.hex().upper(), keys.enc.kcv
        )
        return KeySet(kvn, keys, test_keys=entry.spec.test_keys)

    def describe(self, kvn: int) -> str:
        entry = self._entries.get(kvn)
        return f"key set {kvn:02X} (not in the profile)" if entry is None else _describe(entry)

    def close(self) -> None:
        """Log out of the PKCS#11 tokens; the provider hands out nothing afterwards."""
        self._finalizer()
        self._entries = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_card_keys(specs: Sequence[KeySetSpec]) -> ProfileCardKeys:
    """Resolve every key set; raises ConfigError naming the profile line of the bad one."""
    closers: list[Callable[[], None]] = []
    try:
        entries = [_resolve(spec, closers) for spec in specs]
    except BaseException:
        _close_all(tuple(closers))
        raise
    for entry in entries:
        logger.info("using %s", _describe(entry))
        if entry.spec.test_keys:
            logger.info("key set %02X holds test keys: not for production", entry.spec.kvn)
    return ProfileCardKeys(entries, closers)


def _describe(entry: _Entry) -> str:
    kvn = entry.spec.kvn
    if entry.static is not None:
        kcv = f"ENC KCV {entry.static.enc.kcv}"
        return f"key set {kvn:02X} ({entry.origin}, no diversification, {kcv})"
    assert entry.master is not None
    kcv = f"master KCV {entry.master.kcv}" if entry.master.kcv else "an HMAC master key"
    return f"key set {kvn:02X} ({entry.spec.diversification} from {entry.origin}, {kcv})"


def _resolve(spec: KeySetSpec, closers: list[Callable[[], None]]) -> _Entry:
    if spec.source is None:
        return _inline(spec)
    if isinstance(spec.source, Pkcs11Source):
        return _hsm(spec, spec.source, closers)

    material = _read(spec, spec.source)
    _refuse_test_keys(spec, material)
    if material.master is not None:
        master = PlainMasterKey(material.master, spec.diversification)
        return _Entry(spec, str(spec.source), master=master)
    return _Entry(spec, str(spec.source), static=material.static)


def _inline(spec: KeySetSpec) -> _Entry:
    if spec.master is not None:
        master = PlainMasterKey(spec.master, spec.diversification)
        return _Entry(spec, "inline test keys", master=master)
    return _Entry(spec, "inline test keys", static=spec.static)


def _read(spec: KeySetSpec, source: EnvSource | FileSource) -> Material:
    if isinstance(source, EnvSource):
        return read_env(source, spec)
    return read_file(source, spec)


def _hsm(spec: KeySetSpec, source: Pkcs11Source, closers: list[Callable[[], None]]) -> _Entry:
    if spec.diversification is Diversification.NONE:
        raise ConfigError(
            f"{spec.where}: a pkcs11: key set needs a diversification method: its key "
            "stays in the token, so it can only be a master key"
        )
    session = Pkcs11Session(source, spec)
    closers.append(session.close)
    master = session.master_key(spec)
    _refuse_test_master(spec, master)
    return _Entry(spec, str(source), master=master)


def _refuse_test_keys(spec: KeySetSpec, material: Material) -> None:
    values = [material.master] if material.master is not None else []
    if material.static is not None:
        static = material.static
        values = [key.value for key in (static.enc, static.mac, static.dek)]
    for value in values:
        for name, known in WELL_KNOWN_TEST_KEYS:
            if crypto.equal(value, known):
                raise _test_key_error(spec, name)


def _refuse_test_master(spec: KeySetSpec, master: MasterKey) -> None:
    # The key cannot be read, so compare what it computes with what test keys compute.
    probe = _fingerprint(spec.diversification, master)
    for name, known in WELL_KNOWN_TEST_KEYS:
        try:
            candidate = PlainMasterKey(known, spec.diversification)
        except ValueError:
            continue  # not a size this method takes
        if crypto.equal(probe, _fingerprint(spec.diversification, candidate)):
            raise _test_key_error(spec, name)


def _fingerprint(method: Diversification, master: MasterKey) -> bytes:
    if method is Diversification.KDF3:
        return master.aes_cmac(_PROBE)
    if method is Diversification.NIST_SP800_108:
        return master.hmac_sha256(_PROBE)
    return master.des3_ecb(_PROBE)


def _test_key_error(spec: KeySetSpec, name: str) -> ConfigError:
    return ConfigError(
        f"{spec.where}: {spec.source} holds {name}; test keys belong inline, in a key "
        "set marked test_keys: true, and never on a card in the field"
    )


def _close_all(closers: tuple[Callable[[], None], ...]) -> None:
    for close in closers:
        close()
