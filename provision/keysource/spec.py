"""How a profile says where a key set's keys are: the key-source syntax and the key set spec.

A key source is a short string (profiles/README.md, Key sources)::

    env:NAME
    file:PATH
    pkcs11:token=LABEL;object=LABEL?module-path=PATH&pin-source=env:NAME

Parsing only checks the syntax; nothing is read until a run opens the key provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from ..errors import ConfigError
from ..gp.diversify import Diversification, PlainMasterKey
from ..gp.keys import Scp, StaticKeys

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PKCS11_PATH_ATTRIBUTES = ("token", "object")
_PKCS11_QUERY_ATTRIBUTES = ("module-path", "pin-source")


@dataclass(frozen=True, slots=True)
class EnvSource:
    """An environment variable holding the keys."""

    name: str

    def __str__(self) -> str:
        return f"env:{self.name}"


@dataclass(frozen=True, slots=True)
class FileSource:
    """A key file, readable by its owner only."""

    path: Path

    def __str__(self) -> str:
        return f"file:{self.path}"


@dataclass(frozen=True, slots=True)
class Pkcs11Source:
    """A master key object in a PKCS#11 token (an HSM), found by token and object label."""

    module: Path
    token: str
    object: str
    pin: EnvSource | FileSource

    def __str__(self) -> str:
        return f"pkcs11:token={self.token};object={self.object}"


KeySource = EnvSource | FileSource | Pkcs11Source


def parse_key_source(text: str, base: Path) -> KeySource:
    """The key source ``text`` names; relative paths are taken from ``base``.

    Raises ValueError with the problem, for the profile loader to place.
    """
    scheme, colon, rest = text.partition(":")
    if not colon:
        raise ValueError(f"{text!r} names no kind of source; expected env:, file: or pkcs11:")
    if scheme == "env":
        return _env(rest)
    if scheme == "file":
        return _file(rest, base)
    if scheme == "pkcs11":
        return _pkcs11(rest, base)
    raise ValueError(f"unknown kind of source {scheme!r}; expected env:, file: or pkcs11:")


def _env(name: str) -> EnvSource:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return EnvSource(name)


def _file(path: str, base: Path) -> FileSource:
    if not path:
        raise ValueError("file: names no file")
    return FileSource(base / path)


def _pkcs11(rest: str, base: Path) -> Pkcs11Source:
    # RFC 7512 in part: path attributes split by ';', query attributes by '&', %-escapes.
    path_part, _, query_part = rest.partition("?")
    path = _attributes(path_part, ";", _PKCS11_PATH_ATTRIBUTES, "path")
    query = _attributes(query_part, "&", _PKCS11_QUERY_ATTRIBUTES, "query")
    for name in (*_PKCS11_PATH_ATTRIBUTES, *_PKCS11_QUERY_ATTRIBUTES):
        if not (path | query).get(name):
            raise ValueError(f"pkcs11: needs {name}=...")

    pin_text = query["pin-source"]
    if not pin_text.startswith(("env:", "file:")):
        raise ValueError("pin-source takes env:NAME or file:PATH")
    pin = parse_key_source(pin_text, base)
    assert isinstance(pin, EnvSource | FileSource)
    return Pkcs11Source(base / query["module-path"], path["token"], path["object"], pin)


def _attributes(text: str, separator: str, allowed: tuple[str, ...], part: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in filter(None, text.split(separator)):
        name, equals, value = item.partition("=")
        if name == "pin-value":
            raise ValueError("a PIN written in the profile is a secret; use pin-source")
        if not equals or name not in allowed:
            raise ValueError(f"unknown pkcs11 {part} attribute {name!r}; expected {allowed}")
        if name in values:
            raise ValueError(f"pkcs11 attribute {name} is given twice")
        values[name] = unquote(value)
    return values


@dataclass(frozen=True, slots=True)
class KeySetSpec:
    """One key set of a profile: its version, how its card keys are made and from what.

    Exactly one of ``static`` (inline keys without diversification), ``master`` (an inline
    master key) and ``source`` is set; inline keys only with ``test_keys``. ``where`` is
    the ``path:line: field`` a message about the key set starts with.
    """

    kvn: int
    protocol: Scp
    diversification: Diversification
    test_keys: bool
    where: str
    static: StaticKeys | None = None
    master: bytes | None = field(default=None, repr=False)
    source: KeySource | None = None

    @property
    def check_value(self) -> str:
        """What identifies the key set's inline keys in messages: a KCV, never the key."""
        if self.static is not None:
            return f"ENC KCV {self.static.enc.kcv}"
        if self.master is not None:
            kcv = PlainMasterKey(self.master, self.diversification).kcv or "none, an HMAC key"
            return f"{self.diversification} master KCV {kcv}"
        return f"keys from {self.source}"

    @property
    def keys(self) -> StaticKeys:
        """The inline static keys, which only an undiversified test key set has."""
        # XXX: simulated runs take a key set's inline keys; diversified or sourced key sets
        # cannot be simulated until provision/simulated.py asks the key provider instead.
        if self.static is None:
            how = f"from {self.source}" if self.source else f"diversified ({self.diversification})"
            raise ConfigError(
                f"{self.where}: key set {self.kvn:02X} has no inline keys: its card keys come "
                f"{how}, per card; simulated tokens need inline keys without diversification"
            )
        return self.static
