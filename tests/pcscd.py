"""The PC/SC tier's fixtures: one pcscd with 16 vpcd readers for the session, and the bridge.

The session fixture writes the reader configuration into a temporary directory, starts
``pcscd -f -c <dir>`` (root is needed for /run/pcscd), waits until pcscd lists all 16
readers, and starts the bridge that serves simulated tokens to them. At the end it takes
every card out and stops pcscd by the PID it started. Only one pcscd can run on a machine,
so every test shares this one; the function fixture takes out whatever a test left in.

Tests that need it are marked ``@pytest.mark.pcscd``. Where pcscd, vpcd or pyscard is
missing, or another pcscd already runs, they are skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from provision import pcsc
from provision.burn import BurnPlan, TokenResult, burn_token
from provision.errors import PcscServiceError
from provision.pcsc import PcscReader
from provision.profile import load_profile
from provision.simulated import phone_home_server
from provision.transport import Reader
from provision.verify import VerifyConfig
from simulator.bridge import Bridge, ServeOptions
from simulator.card import VirtualToken
from simulator.readerconf import (
    MAX_READERS,
    ReaderConf,
    ReaderConfError,
    find_vpcd_driver,
    write_reader_conf,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "profiles" / "example-corp.yaml"
URL = "http://server.example.com:7888/cgi-bin/home/index.cgi"  # the RHCS guide's
CARD_TIMEOUT = 5.0
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")


def skip_reason() -> str | None:
    """Why the PC/SC tier cannot run here, or None."""
    if shutil.which("pcscd") is None:
        return "pcscd is not installed (Debian package pcscd)"
    try:
        find_vpcd_driver()
    except ReaderConfError:
        return "the vpcd driver is not installed (Debian package vsmartcard-vpcd)"
    if importlib.util.find_spec("smartcard") is None:
        return "pyscard is not installed (pip install '.[pcsc]')"
    if os.geteuid() != 0:
        return "starting pcscd needs root (it creates /run/pcscd)"
    if _pcscd_answers():
        return (
            "another pcscd is running (a system one stops with 'systemctl stop pcscd.socket "
            "pcscd'); the PC/SC tier starts its own with 16 virtual readers"
        )
    return None


def _pcscd_answers() -> bool:
    if not PCSCD_SOCKET.exists():
        return False
    try:
        pcsc.list_readers()
    except PcscServiceError:
        return False  # a stale socket: pcscd cleans it up when it starts
    return True


@dataclass
class PcscStack:
    """A running pcscd, its readers, and the bridge serving cards to them."""

    conf: ReaderConf
    bridge: Bridge
    pid: int
    log: Path
    _opened: list[PcscReader] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return self.conf.names

    def name(self, index: int) -> str:
        return self.conf.readers[index].name

    def insert(self, index: int, token: VirtualToken, options: ServeOptions | None = None) -> None:
        self.bridge.insert(index, token, options)

    def reader(self, index: int) -> PcscReader:
        """A PC/SC reader for virtual reader ``index``, closed after the test."""
        return self.track(PcscReader(self.name(index)))

    def track(self, reader: PcscReader) -> PcscReader:
        self._opened.append(reader)
        return reader

    def clear(self) -> None:
        """Take every card out, close the test's readers, and wait until pcscd agrees."""
        for reader in self._opened:
            reader.close()
        self._opened.clear()
        self.bridge.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while any(info.state is not pcsc.CardState.EMPTY for info in pcsc.list_readers()):
            assert time.monotonic() < deadline, "pcscd still shows cards after removal"
            time.sleep(0.05)


def _start(conf: ReaderConf, log: Path) -> subprocess.Popen[bytes]:
    executable = shutil.which("pcscd")
    assert executable is not None
    with log.open("wb") as out:
        return subprocess.Popen(
            [executable, "--foreground", "--config", str(conf.conf_dir), "--info"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_ready(process: subprocess.Popen[bytes], conf: ReaderConf, log: Path) -> None:
    """Until pcscd lists every reader of ``conf`` (a condition, polled with a deadline)."""
    deadline = time.monotonic() + READY_TIMEOUT
    wanted = set(conf.names)
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"pcscd exited ({process.returncode}):\n{log.read_text()[-2000:]}")
        try:
            if wanted <= {info.name for info in pcsc.list_readers()}:
                return
        except PcscServiceError:
            pass  # its socket is not there yet
        if time.monotonic() > deadline:
            raise RuntimeError(f"pcscd did not list the readers:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


@contextmanager
def running_pcscd(directory: Path, count: int = MAX_READERS) -> Iterator[tuple[ReaderConf, int]]:
    """pcscd with ``count`` virtual readers configured in ``directory``, until the block ends.

    Yields the configuration and pcscd's PID; stops that PID, and only that, at the end.
    """
    conf = write_reader_conf(directory, count)
    log = directory / "pcscd.log"
    process = _start(conf, log)
    try:
        _wait_ready(process, conf, log)
        yield conf, process.pid
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def pcscd_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscStack]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("pcscd")
    with running_pcscd(directory) as (conf, pid):
        bridge = Bridge.from_conf(conf)
        try:
            yield PcscStack(conf, bridge, pid, directory / "pcscd.log")
        finally:
            bridge.close()


@pytest.fixture
def pcscd(pcscd_session: PcscStack) -> Iterator[PcscStack]:
    """The shared stack, with every reader empty before and after the test."""
    yield pcscd_session
    pcscd_session.clear()


@contextmanager
def example_burn_plan() -> Iterator[BurnPlan]:
    """A burn plan for the Example Corp profile, its ServiceInfo served on 127.0.0.1."""
    profile = load_profile(EXAMPLE)
    with phone_home_server(profile) as redirect:
        verify = VerifyConfig(connect_to=redirect.connect_to, timeout=5)
        yield BurnPlan.from_profile(profile, verify=verify)


@pytest.fixture(scope="session")
def example_plan() -> Iterator[BurnPlan]:
    with example_burn_plan() as plan:
        yield plan


def burn(reader: Reader, plan: BurnPlan) -> TokenResult:
    """Wait for the card in ``reader``, burn it, release it."""
    transport = reader.wait_for_card(CARD_TIMEOUT)
    assert transport is not None, f"no card showed in {reader.name}"
    try:
        return burn_token(transport, plan)
    finally:
        transport.close()
