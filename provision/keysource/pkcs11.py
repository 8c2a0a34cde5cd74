"""A master key kept in a PKCS#11 token, driven through python-pkcs11.

The key never leaves the token: diversification asks the token to encrypt (VISA2, EMV CPS
1.1: CKM_DES3_ECB), MAC (KDF3: CKM_AES_CMAC) or HMAC (NIST SP 800-108: CKM_SHA256_HMAC)
the diversification data, and only the per-card result comes back. python-pkcs11 is
imported only when a profile names a pkcs11: source, so the tool installs without it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..gp.crypto import AES_BLOCK, DES_BLOCK
from ..gp.diversify import Diversification
from .material import read_private_text
from .spec import EnvSource, KeySetSpec, Pkcs11Source

logger = logging.getLogger(__name__)

# One library object per module: a second C_Initialize of the same module fails.
_LIBRARIES: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class _Expected:
    key_types: tuple[str, ...]  # pkcs11.KeyType member names
    operation: str


_EXPECTED = {
    Diversification.VISA2: _Expected(("DES2", "DES3"), "encrypt with CKM_DES3_ECB"),
    Diversification.EMV_CPS_11: _Expected(("DES2", "DES3"), "encrypt with CKM_DES3_ECB"),
    Diversification.KDF3: _Expected(("AES",), "sign with CKM_AES_CMAC"),
    Diversification.NIST_SP800_108: _Expected(
        ("GENERIC_SECRET", "SHA256_HMAC"), "sign with CKM_SHA256_HMAC"
    ),
}


class Pkcs11MasterKey:
    """A :class:`~provision.gp.diversify.MasterKey` whose operations run in the token."""

    def __init__(
        self, key: Any, method: Diversification, where: str, lock: threading.Lock
    ) -> None:
        # python-pkcs11 builds its key classes at run time from the key's capabilities.
        self._key = key
        self._method = method
        self._where = where
        # One operation at a time on the session: a batch runs a worker per reader, and a
        # PKCS#11 session holds one operation's state (PKCS#11 v2.40 §5.6).
        self._lock = lock

    def __repr__(self) -> str:
        return f"Pkcs11MasterKey({self._method}, kcv={self.kcv})"

    @property
    def length(self) -> int:
        return int(self._key.key_length) // 8

    @property
    def kcv(self) -> str | None:
        """DES: 3DES-ECB of 8 × 00; AES: AES-ECB of 16 × 01 when the key may encrypt."""
        from pkcs11 import Mechanism, PKCS11Error

        if self._method is Diversification.NIST_SP800_108:
            return None  # an HMAC key has no check value
        aes = self._method is Diversification.KDF3
        probe, mechanism = (
            (b"\x01" * AES_BLOCK, Mechanism.AES_ECB)
            if aes
            else (bytes(DES_BLOCK), Mechanism.DES3_ECB)
        )
        try:
            with self._lock:
                block = self._key.encrypt(probe, mechanism=mechanism)
        except PKCS11Error:
            return None  # the key may not encrypt: its KCV cannot be known
        return bytes(block)[:3].hex().upper()

    def des3_ecb(self, data: bytes) -> bytes:
        from pkcs11 import Mechanism

        return self._run(lambda: self._key.encrypt(data, mechanism=Mechanism.DES3_ECB))

    def aes_cmac(self, data: bytes) -> bytes:
        from pkcs11 import Mechanism

        return self._run(lambda: self._key.sign(data, mechanism=Mechanism.AES_CMAC))

    def hmac_sha256(self, data: bytes) -> bytes:
        from pkcs11 import Mechanism

        return self._run(lambda: self._key.sign(data, mechanism=Mechanism.SHA256_HMAC))

    def _run(self, operation: Any) -> bytes:
        from pkcs11 import PKCS11Error

        try:
            with self._lock:
                return bytes(operation())
        except PKCS11Error as exc:
            raise ConfigError(
                f"{self._where}: the token refused to {_EXPECTED[self._method].operation} "
                f"with the master key ({type(exc).__name__})"
            ) from None


@dataclass(slots=True)
class _Login:
    """One logged-in session to a token, shared by every key set in it.

    PKCS#11 keeps the login per token, not per session (v2.40 §5.6): a second login fails,
    and closing the session that logged in may log the others out. So each token gets one
    session, closed when the last key set using it is done.
    """

    session: Any
    pin_digest: bytes
    lock: threading.Lock
    users: int = 0


_LOGINS: dict[tuple[str, str], _Login] = {}
_LOGINS_LOCK = threading.Lock()


class Pkcs11Session:
    """One key set's use of the logged-in session to the token holding its master key."""

    def __init__(self, source: Pkcs11Source, spec: KeySetSpec) -> None:
        self.source = source
        self._where = spec.where
        self._token_key = (str(source.module), source.token)
        pin = _pin(source, spec)
        with _LOGINS_LOCK:
            login = _LOGINS.get(self._token_key)
            if login is None:
                login = _LOGINS[self._token_key] = _log_in(source, spec, pin)
            elif not hmac.compare_digest(login.pin_digest, _digest(pin)):
                raise ConfigError(
                    f"{spec.where}: token {source.token!r} is open with another PIN in this run"
                )
            login.users += 1
        self._login: _Login | None = login

    def master_key(self, spec: KeySetSpec) -> Pkcs11MasterKey:
        from pkcs11 import Attribute, KeyType, ObjectClass, PKCS11Error

        assert self._login is not None
        expected = _EXPECTED[spec.diversification]
        try:
            with self._login.lock:
                key = self._login.session.get_key(ObjectClass.SECRET_KEY, label=self.source.object)
                key_type = KeyType(key[Attribute.KEY_TYPE])
                extractable = bool(key[Attribute.EXTRACTABLE])
        except PKCS11Error as exc:
            raise ConfigError(
                f"{spec.where}: no single secret key {self.source.object!r} in token "
                f"{self.source.token!r} ({type(exc).__name__})"
            ) from None

        if key_type.name not in expected.key_types:
            raise ConfigError(
                f"{spec.where}: {self.source} is a {key_type.name} key; "
                f"{spec.diversification} needs {' or '.join(expected.key_types)}"
            )
        if extractable:
            logger.warning(
                "%s: %s is extractable; a master key belongs in the token for good",
                spec.where,
                self.source,
            )
        return Pkcs11MasterKey(key, spec.diversification, spec.where, self._login.lock)

    def close(self) -> None:
        """Done with the token; the last key set using it closes the session (logs out)."""
        with _LOGINS_LOCK:
            login, self._login = self._login, None
            if login is None:
                return
            login.users -= 1
            if login.users:
                return
            del _LOGINS[self._token_key]
        try:
            with login.lock:
                login.session.close()
        except Exception:  # closing is best effort, at exit too
            logger.debug("%s: closing the PKCS#11 session failed", self._where)


def _log_in(source: Pkcs11Source, spec: KeySetSpec, pin: str) -> _Login:
    pkcs11 = _import(spec)
    token = _token(pkcs11, source, spec)
    try:
        session = token.open(user_pin=pin)
    except pkcs11.PKCS11Error as exc:
        raise ConfigError(
            f"{spec.where}: cannot log in to token {source.token!r} ({type(exc).__name__})"
        ) from None
    return _Login(session, _digest(pin), threading.Lock())


def _digest(pin: str) -> bytes:
    # Only a digest is kept, to tell a second key set's PIN from the first one's.
    return hashlib.sha256(pin.encode()).digest()


def _import(spec: KeySetSpec) -> Any:
    try:
        import pkcs11
    except ImportError:
        raise ConfigError(
            f"{spec.where}: a pkcs11: key source needs python-pkcs11; install it with "
            "pip install 'phonehome-provision[hsm]'"
        ) from None
    return pkcs11


def library(module: str) -> Any:
    """The python-pkcs11 library object for ``module``, loaded once per process."""
    import pkcs11

    loaded = _LIBRARIES.get(module)
    if loaded is None:
        loaded = _LIBRARIES[module] = pkcs11.lib(module)
    return loaded


def _token(pkcs11: Any, source: Pkcs11Source, spec: KeySetSpec) -> Any:
    module = str(source.module)
    try:
        return library(module).get_token(token_label=source.token)
    except pkcs11.PKCS11Error as exc:
        raise ConfigError(
            f"{spec.where}: no PKCS#11 token {source.token!r} through module {module} "
            f"({type(exc).__name__}: {exc})"
        ) from None


def _pin(source: Pkcs11Source, spec: KeySetSpec) -> str:
    if isinstance(source.pin, EnvSource):
        pin = os.environ.get(source.pin.name)
        if pin is None:
            raise ConfigError(f"{spec.where}: the PIN variable {source.pin} is not set")
        return pin
    text = read_private_text(source.pin.path, f"{spec.where}: PIN file {source.pin.path}")
    # The PIN is the file's first line, as profiles/README.md documents.
    lines = text.splitlines()
    return lines[0].strip() if lines else ""
