"""What the batch, ledger and watch tests share: tokens, a Phone Home server, plans.

Tokens are made and pre-written with the simulator and the independent test host in
``tests/simhost.py``, never with the product's burn path, and the ServiceInfo served is
the hand-written one of ``tests/data/serviceinfo``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from provision.burn import BurnPlan
from provision.gp.keys import StaticKeys
from provision.phonehome.server import PhoneHomeServer
from provision.profile import Profile, load_profile
from provision.verify import VerifyConfig
from simulator.card import CardModel, VirtualToken
from tests.simhost import Host

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "profiles" / "example-corp.yaml"
SERVICEINFO = REPO / "tests" / "data" / "serviceinfo" / "example-corp.xml"
URL = "http://server.example.com:7888/cgi-bin/home/index.cgi"  # the RHCS guide's URL
HOST_PORT = ("server.example.com", 7888)
TEST_KEY = bytes(range(0x40, 0x50))

SET_ISSUER_INFO = (0x84, 0xF4)  # CLA with secure messaging, INS (CardEdge.java)
EXTERNAL_AUTHENTICATE = (0x84, 0x82)
INITIALIZE_UPDATE = (0x80, 0x50)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back after a test that ran ``cli.main``, which configures it as a
    program's entry point does."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def example_profile() -> Profile:
    return load_profile(EXAMPLE)


@contextmanager
def phone_home() -> Iterator[PhoneHomeServer]:
    """The Example Corp ServiceInfo, written by hand from the RHCS guide, on a loopback port."""
    with PhoneHomeServer({"/cgi-bin/home/index.cgi": SERVICEINFO.read_bytes()}) as server:
        yield server


def plan_for(profile: Profile, server: PhoneHomeServer, **changes: object) -> BurnPlan:
    connect_to = {HOST_PORT: (server.host, server.port)}
    plan = BurnPlan.from_profile(profile, verify=VerifyConfig(connect_to=connect_to, timeout=2))
    return replace(plan, **changes)  # type: ignore[arg-type]


def blank(cuid: bytes | None = None, keys: bytes = TEST_KEY) -> VirtualToken:
    static = StaticKeys.from_bytes(keys, keys, keys, aes=False)
    return VirtualToken.blank(cuid, model=CardModel(), key_sets={1: static})


def write_directly(token: VirtualToken, value: bytes) -> None:
    """Put ``value`` in the token's issuer info through the independent test host."""
    host = Host(token, StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=False))
    host.send(bytes.fromhex("00A4040007627601FF000000"))
    host.open()
    _, sw = host.send(host.wrap(0xF4, data=value.ljust(224, b"\x00")))
    assert sw == 0x9000
    token.power_on()


def issuer_text(token: VirtualToken) -> bytes:
    return token.issuer_info.rstrip(b"\x00")


class SlowCard:
    """A token that takes ``delay`` seconds per APDU and lets a test look at each one first.

    ``before`` is called with each APDU, ``on_power`` at each power-up or reset.
    """

    def __init__(
        self,
        token: VirtualToken,
        delay: float = 0.0,
        *,
        before: Callable[[bytes], None] | None = None,
        on_power: Callable[[], None] | None = None,
    ) -> None:
        self.token = token
        self.delay = delay
        self.before = before
        self.on_power = on_power
        self.apdus = 0

    def power_on(self) -> bytes:
        if self.on_power is not None:
            self.on_power()
        return self.token.power_on()

    def process(self, apdu: bytes) -> bytes:
        if self.before is not None:
            self.before(apdu)
        self.apdus += 1
        if self.delay:
            time.sleep(self.delay)
        return self.token.process(apdu)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
        time.sleep(0.005)


class Background:
    """Runs ``target`` in a thread and hands back its value or its exception."""

    def __init__(self, target: Callable[[], object]) -> None:
        self._target = target
        self._value: object = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._target()
        except BaseException as exc:
            self._error = exc

    def result(self, timeout: float = 20.0) -> object:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the batch did not stop"
        if self._error is not None:
            raise self._error
        return self._value
