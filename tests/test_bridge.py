"""The vpcd bridge against a fake vpcd, the reader configuration, and the latency model.

No pcscd here: ``tests/vpcdfake.py`` plays the driver's end of the socket protocol. The
PC/SC tier (``test_bridge_pcscd.py``) runs the same bridge under a real pcscd.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.gp.keys import StaticKeys
from simulator.bridge import Bridge, BridgeError, PullAt, ServeOptions, When
from simulator.card import CARD_MANAGER_AID, DEFAULT_ATR, VirtualToken
from simulator.coolkey import COOLKEY_AID
from simulator.latency import DelayedCard, Latency
from simulator.readerconf import (
    MAX_READERS,
    ReaderConfError,
    VirtualReader,
    find_vpcd_driver,
    free_base_port,
    load_reader_conf,
    write_reader_conf,
)
from simulator.t0 import T0_ATR
from tests.simhost import Host
from tests.vpcdfake import GET_ATR, POWER_OFF, POWER_ON, RESET, FakeVpcd

H = bytes.fromhex
SELECT_ISD = H("00A4040008") + CARD_MANAGER_AID
SELECT_COOLKEY = H("00A4040007") + COOLKEY_AID
INITIALIZE_UPDATE = H("8050000008") + H("0102030405060708")
GET_CPLC = H("80CA9F7F2D")
TEST_KEY = bytes(range(0x40, 0x50))


# -- reader configuration ------------------------------------------------------------------


@pytest.fixture
def driver(tmp_path: Path) -> Path:
    # Any file stands in for libifdvpcd.so: the generator only copies it.
    path = tmp_path / "libifdvpcd.so"
    path.write_bytes(b"\x7fELF stand-in driver")
    return path


def _entries(conf_dir: Path) -> dict[str, dict[str, str]]:
    entries = {}
    for path in sorted(conf_dir.iterdir()):
        fields = {}
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            fields[key] = value.strip()
        entries[path.name] = fields
    return entries


def test_sixteen_readers_are_eight_entries_each_with_its_own_driver(
    tmp_path: Path, driver: Path
) -> None:
    conf = write_reader_conf(tmp_path / "conf", 16, base_port=41000, driver=driver)

    entries = _entries(conf.conf_dir)
    assert len(entries) == 8
    channels = sorted(int(e["CHANNELID"]) for e in entries.values())
    assert channels == [41000 + 2 * n for n in range(8)]  # two ports (slots) per entry
    libs = [Path(e["LIBPATH"]) for e in entries.values()]
    assert all(lib.is_absolute() and lib.is_file() for lib in libs)
    assert len({lib.name for lib in libs}) == 8
    assert all(lib.read_bytes() == driver.read_bytes() for lib in libs)
    assert all(not lib.is_symlink() for lib in libs)  # the loader would merge links
    for fields in entries.values():
        # Debian's vpcd entry: server mode is DEVICENAME /dev/null:<port> (§3.3)
        assert fields["DEVICENAME"] == f"/dev/null:{fields['CHANNELID']}"
        assert fields["FRIENDLYNAME"].startswith('"CoolKey Sim ')

    assert len(conf.readers) == MAX_READERS
    assert conf.readers[0] == VirtualReader(0, "CoolKey Sim 0 00 00", 41000)
    assert conf.readers[1] == VirtualReader(1, "CoolKey Sim 0 00 01", 41001)
    assert conf.readers[15] == VirtualReader(15, "CoolKey Sim 7 00 01", 41015)
    assert len({r.port for r in conf.readers}) == 16


def test_the_reader_index_reads_back(tmp_path: Path, driver: Path) -> None:
    conf = write_reader_conf(tmp_path, 4, base_port=41100, name="Line A", driver=driver)

    again = load_reader_conf(tmp_path)

    assert again.readers == conf.readers
    assert again.conf_dir == conf.conf_dir
    assert json.loads((tmp_path / "readers.json").read_text())["readers"][3] == {
        "name": "Line A 1 00 01",
        "port": 41103,
    }
    assert again.reader("2").name == "Line A 1 00 00"
    assert again.reader("Line A 0 00 01").index == 1


def test_an_odd_count_rounds_up_to_whole_entries(tmp_path: Path, driver: Path) -> None:
    conf = write_reader_conf(tmp_path, 3, base_port=41200, driver=driver)

    assert len(conf.readers) == 4
    assert len(list(conf.conf_dir.iterdir())) == 2


def test_writing_again_replaces_the_old_entries(tmp_path: Path, driver: Path) -> None:
    write_reader_conf(tmp_path, 16, base_port=41300, driver=driver)
    write_reader_conf(tmp_path, 2, base_port=41300, driver=driver)

    assert [p.name for p in (tmp_path / "reader.conf.d").iterdir()] == ["vpcd-0"]


@pytest.mark.parametrize("count", [0, 17])
def test_pcscd_serves_one_to_sixteen_readers(tmp_path: Path, driver: Path, count: int) -> None:
    with pytest.raises(ReaderConfError, match="1 to 16 readers"):
        write_reader_conf(tmp_path, count, base_port=41400, driver=driver)


def test_a_missing_driver_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ReaderConfError, match="vsmartcard-vpcd"):
        find_vpcd_driver([str(tmp_path)])


def test_no_index_says_how_to_write_one(tmp_path: Path) -> None:
    with pytest.raises(ReaderConfError, match="token-sim readerconf"):
        load_reader_conf(tmp_path)


def test_free_base_port_skips_a_busy_port() -> None:
    with socket.create_server(("0.0.0.0", 0)) as busy:  # noqa: S104 - as vpcd binds
        port = busy.getsockname()[1]
        base = free_base_port(2, start=port - 1, tries=4)
    assert base >= port + 1


# -- the bridge against a fake vpcd --------------------------------------------------------


@pytest.fixture
def vpcd() -> Iterator[FakeVpcd]:
    fake = FakeVpcd()
    yield fake
    fake.close()


@pytest.fixture
def bridge(vpcd: FakeVpcd) -> Iterator[Bridge]:
    running = Bridge([vpcd.reader], connect_timeout=2)
    yield running
    vpcd.close()  # vpcd goes first, so no card waits for it to hang up
    running.close()


def _insert(bridge: Bridge, vpcd: FakeVpcd, token: VirtualToken, **options: object) -> None:
    bridge.insert(0, token, ServeOptions(**options))  # type: ignore[arg-type]
    vpcd.accept()


def _remove(bridge: Bridge, vpcd: FakeVpcd) -> VirtualToken | None:
    """Remove as pcscd would see it: the card's FIN, then vpcd hangs up."""
    removed: list[VirtualToken | None] = []
    worker = threading.Thread(target=lambda: removed.append(bridge.remove(0)))
    worker.start()
    assert vpcd.receive() is None  # the card closed its end
    assert worker.is_alive()  # and waits until vpcd has seen it go
    vpcd.hang_up()
    worker.join(5)
    return removed[0]


def test_an_inserted_card_answers_get_atr_and_apdus(bridge: Bridge, vpcd: FakeVpcd) -> None:
    token = VirtualToken.blank()
    _insert(bridge, vpcd, token)

    assert vpcd.exchange(GET_ATR) == DEFAULT_ATR
    assert vpcd.exchange(SELECT_ISD) == H("9000")
    cplc = vpcd.exchange(GET_CPLC)

    assert cplc is not None
    assert cplc[:3] == H("9F7F2A")
    assert bridge.token(0) is token
    assert [(r.event, r.command, r.response) for r in bridge.wire(0)] == [
        ("apdu", SELECT_ISD, H("9000")),
        ("apdu", GET_CPLC, cplc),
    ]


def test_power_and_reset_end_the_session_get_atr_does_not(bridge: Bridge, vpcd: FakeVpcd) -> None:
    token = VirtualToken.blank()
    _insert(bridge, vpcd, token)

    vpcd.exchange(SELECT_COOLKEY)
    vpcd.exchange(INITIALIZE_UPDATE)
    vpcd.exchange(GET_ATR)  # pcscd's presence poll: nothing changes
    assert token.selected_aid == COOLKEY_AID
    assert token.card_manager.channel is not None

    for code in (POWER_OFF, POWER_ON, RESET):
        vpcd.exchange(SELECT_COOLKEY)
        vpcd.exchange(INITIALIZE_UPDATE)
        vpcd.control(code)
        assert vpcd.exchange(GET_ATR) == DEFAULT_ATR  # control codes get no answer
        assert token.selected_aid == CARD_MANAGER_AID
        assert token.card_manager.channel is None
    assert [r.event for r in bridge.wire(0) if r.event != "apdu"] == [
        "power off",
        "power on",
        "reset",
    ]


def test_persistent_state_survives_a_power_cycle(bridge: Bridge, vpcd: FakeVpcd) -> None:
    token = VirtualToken.blank()
    _insert(bridge, vpcd, token)
    keys = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=False)
    host = Host(token, keys)
    host.send(SELECT_COOLKEY)
    host.open()
    assert host.send(host.wrap(0xF4, data=b"http://x.example/".ljust(224, b"\x00")))[1] == 0x9000

    vpcd.control(POWER_OFF)
    vpcd.control(POWER_ON)
    vpcd.exchange(SELECT_COOLKEY)

    assert vpcd.exchange(H("B0F60000E0")) == b"http://x.example/".ljust(224, b"\x00") + H("9000")


def test_a_t0_card_has_the_t0_atr_and_answers_61xx(bridge: Bridge, vpcd: FakeVpcd) -> None:
    _insert(bridge, vpcd, VirtualToken.blank(), t0=True)

    assert vpcd.exchange(GET_ATR) == T0_ATR
    assert vpcd.exchange(INITIALIZE_UPDATE) == H("611C")
    response = vpcd.exchange(H("00C000001C"))
    assert response is not None
    assert len(response) == 28 + 2


def test_removal_waits_for_vpcd_and_returns_the_token(bridge: Bridge, vpcd: FakeVpcd) -> None:
    token = VirtualToken.blank()
    _insert(bridge, vpcd, token)

    assert _remove(bridge, vpcd) is token
    assert bridge.token(0) is None
    assert bridge.remove(0) is None


def test_swap_puts_another_card_in(bridge: Bridge, vpcd: FakeVpcd) -> None:
    first, second = VirtualToken.blank(), VirtualToken.blank()
    _insert(bridge, vpcd, first)
    assert _remove(bridge, vpcd) is first

    _insert(bridge, vpcd, second)
    vpcd.exchange(SELECT_ISD)
    cplc = vpcd.exchange(GET_CPLC)

    assert cplc is not None
    assert bridge.token(0) is second
    assert second.cuid[6:10] == cplc[3 + 12 : 3 + 16]  # the IC serial number (§1.4)


def test_a_reader_holds_one_card(bridge: Bridge, vpcd: FakeVpcd) -> None:
    _insert(bridge, vpcd, VirtualToken.blank())

    with pytest.raises(BridgeError, match="already holds a card"):
        bridge.insert(0, VirtualToken.blank())
    with pytest.raises(BridgeError, match="no virtual reader 5"):
        bridge.insert(5, VirtualToken.blank())


def test_nothing_listening_is_a_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with Bridge([VirtualReader(0, "Gone 00 00", port)], connect_timeout=0.2) as bridge:
        with pytest.raises(BridgeError, match="is pcscd running"):
            bridge.insert(0, VirtualToken.blank())
        assert bridge.token(0) is None


@pytest.mark.parametrize(
    ("when", "answered", "ran"),
    [(When.BEFORE, False, False), (When.DURING, False, True), (When.AFTER, True, True)],
)
def test_pull_at_a_command(
    bridge: Bridge, vpcd: FakeVpcd, when: When, answered: bool, ran: bool
) -> None:
    token = VirtualToken.blank()
    _insert(bridge, vpcd, token, pull=PullAt.ins(0x80, 0x50, when))
    vpcd.exchange(SELECT_COOLKEY)

    response = vpcd.exchange(INITIALIZE_UPDATE)

    assert (response is not None) is answered
    if answered:
        assert vpcd.receive() is None  # then the card leaves
    assert (token.card_manager.channel is not None) is ran
    assert bridge.token(0) is None
    assert bridge.wire(0)[-1].command == INITIALIZE_UPDATE
    assert (bridge.wire(0)[-1].response is not None) is answered
    vpcd.hang_up()


def test_pull_at_the_second_match(bridge: Bridge, vpcd: FakeVpcd) -> None:
    _insert(bridge, vpcd, VirtualToken.blank(), pull=PullAt.ins(0x00, 0xA4, When.BEFORE, nth=2))

    assert vpcd.exchange(SELECT_COOLKEY) == H("9000")
    assert vpcd.exchange(SELECT_COOLKEY) is None


def test_close_takes_every_card_out(vpcd: FakeVpcd) -> None:
    bridge = Bridge([vpcd.reader], connect_timeout=2)
    _insert(bridge, vpcd, VirtualToken.blank())
    closing = threading.Thread(target=bridge.close)
    closing.start()

    assert vpcd.receive() is None
    vpcd.hang_up()
    closing.join(5)
    assert not closing.is_alive()
    assert bridge.occupied() == {}


# -- latency -------------------------------------------------------------------------------


def test_latency_is_per_apdu_plus_per_persistent_write() -> None:
    token = VirtualToken.blank()
    slept: list[float] = []
    card = DelayedCard(token, Latency(0.020, 0.005), lambda: token.nv_writes, sleep=slept.append)
    keys = StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=False)
    host = Host(card, keys)  # type: ignore[arg-type]

    host.send(SELECT_COOLKEY)
    host.open()
    host.send(host.wrap(0xF4, data=bytes(224)))

    # simulator/README.md: SCP02 moves its sequence counter when EXTERNAL AUTHENTICATE
    # succeeds, and SET ISSUER INFO writes the issuer info: one persistent write each.
    assert slept == pytest.approx([0.020, 0.020, 0.025, 0.025])


def test_latency_in_milliseconds_and_never_negative() -> None:
    assert Latency.from_ms(30, 12) == Latency(0.030, 0.012)
    assert Latency().zero
    with pytest.raises(ValueError, match="negative"):
        Latency(-0.001)
