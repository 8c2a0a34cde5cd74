"""Reader configuration for pcscd: up to 16 vpcd virtual readers in one pcscd.

vpcd (vsmartcard's PC/SC driver) keeps its connections in one static array indexed by slot
number, so two ``reader.conf`` entries that load the same driver file share their slots.
Each entry here therefore loads its own copy of ``libifdvpcd.so`` under a distinct name (the
dynamic loader would merge links to one file), and has its own ``CHANNELID``, the first of
the two TCP ports its two slots listen on (globalplatform.md §3.3, §4.1). ``LIBPATH`` must be
absolute, so the whole directory is generated at run time::

    DIR/reader.conf.d/vpcd-0 ... vpcd-7    pcscd -f -c DIR/reader.conf.d
    DIR/drivers/libifdvpcd-0.so ...        one copy of the driver per entry
    DIR/readers.json                       reader names and ports, for the bridge

pcscd names a reader ``<FRIENDLYNAME> <reader number> <slot>``, both numbers as two hex
digits; the reader number is 00 for every entry as long as the friendly names differ.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# vpcd is built with VPCDSLOTS = 2; pcsc-lite serves at most PCSCLITE_MAX_READERS_CONTEXTS.
VPCD_SLOTS = 2
MAX_READERS = 16

# vpcd's own default is 0x8C7B (35963); a different base keeps clear of a system-wide vpcd.
DEFAULT_BASE_PORT = 0x9C7B
DEFAULT_NAME = "CoolKey Sim"
DRIVER_NAME = "libifdvpcd.so"
DRIVER_DIRS = (
    "/usr/lib/pcsc/drivers/serial",
    "/usr/lib64/pcsc/drivers/serial",
    "/usr/local/lib/pcsc/drivers/serial",
)

CONF_SUBDIR = "reader.conf.d"
DRIVERS_SUBDIR = "drivers"
INDEX_FILE = "readers.json"
INDEX_FORMAT = "vpcd-readers/1"


class ReaderConfError(Exception):
    """The reader configuration cannot be made or read; the message says why."""


@dataclass(frozen=True, slots=True)
class VirtualReader:
    """One virtual reader: the name pcscd gives it and the port its vpcd slot listens on."""

    index: int
    name: str
    port: int


@dataclass(frozen=True, slots=True)
class ReaderConf:
    """A generated configuration: pass :attr:`conf_dir` to ``pcscd -c``."""

    directory: Path
    readers: tuple[VirtualReader, ...]

    @property
    def conf_dir(self) -> Path:
        return self.directory / CONF_SUBDIR

    @property
    def names(self) -> list[str]:
        return [reader.name for reader in self.readers]

    def reader(self, key: int | str) -> VirtualReader:
        """A reader by index (0 to 15, also as a string) or by its full name."""
        for reader in self.readers:
            if key in (reader.index, reader.name) or key == str(reader.index):
                return reader
        raise ReaderConfError(
            f"no virtual reader {key!r} in {self.directory} (readers 0 to {len(self.readers) - 1})"
        )


def find_vpcd_driver(candidates: Sequence[str] = DRIVER_DIRS) -> Path:
    """The installed vpcd driver, or a ReaderConfError that says what to install."""
    for directory in candidates:
        path = Path(directory) / DRIVER_NAME
        if path.is_file():
            return path.resolve()
    raise ReaderConfError(
        f"the vpcd driver ({DRIVER_NAME}) is not installed in {', '.join(candidates)}: "
        "install vsmartcard-vpcd (Debian, Ubuntu) or name the driver file"
    )


def reader_name(prefix: str, entry: int, slot: int) -> str:
    return f"{prefix} {entry} 00 {slot:02X}"


def write_reader_conf(
    directory: str | os.PathLike[str],
    count: int = MAX_READERS,
    *,
    base_port: int | None = None,
    name: str = DEFAULT_NAME,
    driver: str | os.PathLike[str] | None = None,
) -> ReaderConf:
    """Write the configuration for ``count`` readers (rounded up to whole vpcd entries).

    Without ``base_port`` the first run of free ports from :data:`DEFAULT_BASE_PORT` on is
    taken. The directory is created; an existing configuration in it is replaced.
    """
    if not 1 <= count <= MAX_READERS:
        raise ReaderConfError(f"pcscd serves 1 to {MAX_READERS} readers, not {count}")
    if not name or '"' in name or not name.isprintable():
        raise ReaderConfError(f"reader name prefix {name!r} must be printable, without quotes")
    entries = -(-count // VPCD_SLOTS)
    source = Path(driver).resolve() if driver is not None else find_vpcd_driver()
    if not source.is_file():
        raise ReaderConfError(f"the vpcd driver {source} does not exist")
    base = free_base_port(entries * VPCD_SLOTS) if base_port is None else base_port
    if not 1024 <= base <= 0xFFFF - entries * VPCD_SLOTS:
        raise ReaderConfError(f"base port {base} leaves no room for {entries * VPCD_SLOTS} ports")

    root = Path(directory).resolve()
    conf_dir, drivers = root / CONF_SUBDIR, root / DRIVERS_SUBDIR
    shutil.rmtree(conf_dir, ignore_errors=True)
    conf_dir.mkdir(parents=True)
    drivers.mkdir(parents=True, exist_ok=True)

    readers = []
    for entry in range(entries):
        channel = base + entry * VPCD_SLOTS
        copy = drivers / f"libifdvpcd-{entry}.so"
        shutil.copyfile(source, copy)
        (conf_dir / f"vpcd-{entry}").write_text(_entry(f"{name} {entry}", channel, copy))
        for slot in range(VPCD_SLOTS):
            index = entry * VPCD_SLOTS + slot
            readers.append(VirtualReader(index, reader_name(name, entry, slot), channel + slot))

    conf = ReaderConf(root, tuple(readers))
    _write_index(conf)
    return conf


def _entry(friendly_name: str, channel: int, driver: Path) -> str:
    # DEVICENAME /dev/null:<port> puts vpcd in server mode: it listens, the card connects.
    return (
        f'FRIENDLYNAME "{friendly_name}"\n'
        f"DEVICENAME   /dev/null:{channel}\n"
        f"LIBPATH      {driver}\n"
        f"CHANNELID    {channel}\n"
    )


def _write_index(conf: ReaderConf) -> None:
    index = {
        "format": INDEX_FORMAT,
        "conf_dir": str(conf.conf_dir),
        "readers": [{"name": r.name, "port": r.port} for r in conf.readers],
    }
    (conf.directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")


def load_reader_conf(directory: str | os.PathLike[str]) -> ReaderConf:
    """Read back what :func:`write_reader_conf` wrote into ``directory``."""
    root = Path(directory).resolve()
    path = root / INDEX_FILE
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReaderConfError(
            f"{root} holds no reader configuration ({INDEX_FILE} is missing): "
            "write one first with 'token-sim readerconf DIR'"
        ) from None
    except (OSError, ValueError) as e:
        raise ReaderConfError(f"{path}: unreadable ({e})") from None
    try:
        if index["format"] != INDEX_FORMAT:
            raise ValueError(f"format is not {INDEX_FORMAT!r}")
        readers = tuple(
            VirtualReader(n, str(item["name"]), int(item["port"]))
            for n, item in enumerate(index["readers"])
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ReaderConfError(f"{path}: not a reader index ({e})") from None
    return ReaderConf(root, readers)


def free_base_port(count: int, start: int = DEFAULT_BASE_PORT, tries: int = 64) -> int:
    """The first base from ``start`` on (in steps of ``count``) whose ports are all free."""
    for n in range(tries):
        base = start + n * count
        if all(_port_free(port) for port in range(base, base + count)):
            return base
    raise ReaderConfError(f"no {count} free TCP ports from {start} on")


def _port_free(port: int) -> bool:
    # vpcd binds 0.0.0.0 with SO_REUSEADDR; a bind test the same way sees what it would.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))  # noqa: S104 - mirrors vpcd's own bind
        except OSError:
            return False
    return True
