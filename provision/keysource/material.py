"""Key material from an environment variable or a key file.

Both hold ``name = hex`` entries (names ``enc``, ``mac``, ``dek`` or ``master``); a variable
may also hold a bare hex value. A key file must be a regular file that neither its group
nor others may read or write. Messages name the source and the entry, never a value.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from string import hexdigits

from ..errors import ConfigError
from ..gp.diversify import MASTER_KEY_SIZES, Diversification
from ..gp.keys import STATIC_KEY_SIZES, Key, Scp, StaticKeys
from .spec import EnvSource, FileSource, KeySetSpec

ROLES = ("enc", "mac", "dek")
MASTER = "master"
_HEX = frozenset(hexdigits + " ")
_MAX_KEY_FILE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Material:
    """What a source holds for one key set: its static keys, or its master key."""

    static: StaticKeys | None = None
    master: bytes | None = field(default=None, repr=False)


def read_env(source: EnvSource, spec: KeySetSpec) -> Material:
    value = os.environ.get(source.name)
    if value is None:
        raise ConfigError(f"{spec.where}: {source} is not set")
    if "=" not in value:
        return _material({_bare_name(spec): _hex(value, source, "its value", spec)}, source, spec)
    entries: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in value.split(";"))):
        name, _, text = (piece.strip() for piece in item.partition("="))
        _add(entries, name, _hex(text, source, name, spec), source, spec)
    return _material(entries, source, spec)


def read_file(source: FileSource, spec: KeySetSpec) -> Material:
    text = read_private_text(source.path, f"{spec.where}: key file {source.path}")
    entries: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = (piece.strip() for piece in line.partition("="))
        where = f"line {number} ({name})"
        if not equals:
            raise ConfigError(f"{spec.where}: {source} line {number}: expected name = hex")
        _add(entries, name, _hex(value, source, where, spec), source, spec)
    return _material(entries, source, spec)


def read_private_text(path: Path, what: str) -> str:
    """A small text file that only its owner may read (key files, PIN files)."""
    try:
        # O_NONBLOCK: a FIFO put where the key file should be must not hang the run.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read(_MAX_KEY_FILE + 1) if stat.S_ISREG(mode) else b""
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read it: {exc.strerror}") from None

    if not stat.S_ISREG(mode):
        raise ConfigError(f"{what}: not a regular file")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{what}: its group or others may read or write it (mode "
            f"{stat.S_IMODE(mode):04o}); make it private: chmod 600 {path}"
        )
    if len(data) > _MAX_KEY_FILE:
        raise ConfigError(f"{what}: over {_MAX_KEY_FILE} bytes; not a key file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what}: not UTF-8 text") from None


def _bare_name(spec: KeySetSpec) -> str:
    return "key" if spec.diversification is Diversification.NONE else MASTER


def _add(
    entries: dict[str, bytes],
    name: str,
    value: bytes,
    source: EnvSource | FileSource,
    spec: KeySetSpec,
) -> None:
    if name not in (*ROLES, MASTER):
        raise ConfigError(
            f"{spec.where}: {source}: unknown entry {name!r}; expected enc, mac, dek or master"
        )
    if name in entries:
        raise ConfigError(f"{spec.where}: {source}: {name} is given twice")
    entries[name] = value


def _hex(text: str, source: EnvSource | FileSource, what: str, spec: KeySetSpec) -> bytes:
    digits = text.replace(" ", "")
    if not digits or any(char not in _HEX for char in text) or len(digits) % 2:
        raise ConfigError(f"{spec.where}: {source}: {what} is not a key in hex digits")
    return bytes.fromhex(digits)


def _material(
    entries: dict[str, bytes], source: EnvSource | FileSource, spec: KeySetSpec
) -> Material:
    where = f"{spec.where}: {source}"
    if spec.diversification is not Diversification.NONE:
        if set(entries) != {MASTER}:
            raise ConfigError(f"{where}: a {spec.diversification} key set takes one master key")
        master = entries[MASTER]
        _check_size(master, MASTER_KEY_SIZES[spec.diversification], f"{where}: master")
        return Material(master=master)

    if set(entries) == {"key"}:
        entries = dict.fromkeys(ROLES, entries["key"])
    if set(entries) != set(ROLES):
        raise ConfigError(f"{where}: a key set without diversification takes enc, mac and dek")
    for role in ROLES:
        _check_size(entries[role], STATIC_KEY_SIZES[spec.protocol], f"{where}: {role}")
    aes = spec.protocol is Scp.SCP03
    return Material(static=StaticKeys(*(Key(entries[role], aes=aes) for role in ROLES)))


def _check_size(value: bytes, sizes: tuple[int, ...], where: str) -> None:
    if len(value) not in sizes:
        expected = " or ".join(map(str, sizes))
        raise ConfigError(f"{where}: {len(value)} bytes; expected {expected}")
