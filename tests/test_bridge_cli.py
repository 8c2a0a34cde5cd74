"""``token-sim``'s images by state, its reader configuration, and ``serve`` with its control
socket, against fake vpcd slots (no pcscd needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.card import DEFAULT_ATR
from simulator.cli import BURNED_URL, FOREIGN_URL, main
from simulator.readerconf import free_base_port
from simulator.t0 import T0_ATR
from tests.vpcdfake import GET_ATR, FakeVpcd

CUID_HEX = "40906145C76224192D2B"
OTHER_CUID = "2050AABBCCDDEEFF0011"
H = bytes.fromhex
SERVE_TIMEOUT = 10


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def shown(capsys: pytest.CaptureFixture[str], path: Path) -> dict[str, str]:
    status, out, _ = run(capsys, "show", str(path), "--json")
    assert status == 0
    return dict(json.loads(out))


@pytest.mark.parametrize(
    ("state", "issuer_info", "locked", "failed"),
    [
        ("blank", "empty", "no", "0 of 10"),
        ("burned", BURNED_URL, "no", "0 of 10"),
        ("foreign", FOREIGN_URL, "no", "0 of 10"),
        ("locked", "empty", "yes", "10 of 10"),
    ],
)
def test_new_makes_each_kind_of_token(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    state: str,
    issuer_info: str,
    locked: str,
    failed: str,
) -> None:
    path = tmp_path / f"{state}.json"

    status, out, _ = run(capsys, "new", str(path), "--state", state, "--cuid", CUID_HEX)

    assert status == 0
    assert out == f"{path}: {state} token {CUID_HEX}\n"
    fields = shown(capsys, path)
    assert fields["issuer_info"] == issuer_info
    assert fields["locked"] == locked
    assert fields["failed_auth"] == failed
    assert fields["esc_token_id"] == CUID_HEX.lower()


def test_new_burned_with_a_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.json"
    url = "https://tps.example.org/cgi-bin/home/index.cgi"

    assert run(capsys, "new", str(path), "--state", "burned", "--url", url)[0] == 0
    assert shown(capsys, path)["issuer_info"] == url


def test_url_is_only_for_burned_or_foreign(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "new", str(tmp_path / "t.json"), "--url", "http://x.example/")

    assert status == 2
    assert err == "token-sim: --url is for a burned or foreign token\n"


def test_readerconf_prints_readers_and_the_pcscd_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    driver = tmp_path / "libifdvpcd.so"
    driver.write_bytes(b"stand-in")
    conf = tmp_path / "conf"

    status, out, _ = run(
        capsys,
        "readerconf",
        str(conf),
        "--readers",
        "2",
        "--base-port",
        "41500",
        "--driver",
        str(driver),
    )

    assert status == 0
    assert out.splitlines() == [
        " 0  CoolKey Sim 0 00 00  port 41500",
        " 1  CoolKey Sim 0 00 01  port 41501",
        f"Start pcscd with: pcscd -f -c {conf.resolve() / 'reader.conf.d'}",
    ]


def test_readerconf_refuses_seventeen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "readerconf", str(tmp_path), "--readers", "17")

    assert status == 2
    assert "1 to 16 readers" in err


def test_no_server_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    driver = tmp_path / "libifdvpcd.so"
    driver.write_bytes(b"stand-in")
    run(
        capsys,
        "readerconf",
        str(tmp_path),
        "--readers",
        "2",
        "--base-port",
        "41600",
        "--driver",
        str(driver),
    )

    status, _, err = run(capsys, "status", str(tmp_path))

    assert status == 2
    assert "no 'token-sim serve' runs for" in err


# -- serve, driven through its control socket ----------------------------------------------


@pytest.fixture
def slots(tmp_path: Path) -> Iterator[tuple[Path, FakeVpcd, FakeVpcd]]:
    base = free_base_port(2, start=42000)
    first, second = FakeVpcd(0, port=base), FakeVpcd(1, port=base + 1)
    driver = tmp_path / "libifdvpcd.so"
    driver.write_bytes(b"stand-in")
    assert (
        main(
            [
                "readerconf",
                str(tmp_path / "conf"),
                "--readers",
                "2",
                "--base-port",
                str(base),
                "--driver",
                str(driver),
            ]
        )
        == 0
    )
    yield tmp_path / "conf", first, second
    first.close()
    second.close()


def _serve(conf: Path, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "serve", str(conf), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("Serving"):
            return process
    raise AssertionError(f"token-sim serve exited ({process.wait(SERVE_TIMEOUT)})")


def _in_thread(target: object, *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_serve_insert_remove_save_and_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], slots: tuple[Path, FakeVpcd, FakeVpcd]
) -> None:
    conf, first, second = slots
    token, other = tmp_path / "token.json", tmp_path / "other.json"
    main(["new", str(token), "--cuid", CUID_HEX])
    main(["new", str(other), "--cuid", OTHER_CUID, "--state", "burned"])
    capsys.readouterr()
    server = _serve(conf, "--card", f"0={token}")
    try:
        first.accept()
        assert first.exchange(GET_ATR) == DEFAULT_ATR
        # A failed EXTERNAL AUTHENTICATE moves the card's persistent failure counter.
        assert first.exchange(H("8050000008") + bytes(8)) is not None
        assert first.exchange(H("8482030010") + bytes(16)) == H("6300")

        status, out, _ = run(capsys, "status", str(conf))
        assert status == 0
        assert out.splitlines() == [
            f" 0  CoolKey Sim 0 00 00  {CUID_HEX}  ({token})",
            " 1  CoolKey Sim 0 00 01  empty",
        ]

        assert run(capsys, "insert", str(conf), "1", str(other), "--t0")[0] == 0
        second.accept()
        assert second.exchange(GET_ATR) == T0_ATR

        removing = _in_thread(main, ["remove", str(conf), "0"])
        assert first.receive() is None
        first.hang_up()
        removing.join(SERVE_TIMEOUT)
        assert f"out, saved to {token}" in capsys.readouterr().out
        assert shown(capsys, token)["failed_auth"] == "1 of 10"

        copy = tmp_path / "copy.json"
        assert run(capsys, "save", str(conf), "1", str(copy))[0] == 0
        assert shown(capsys, copy)["cuid"] == OTHER_CUID

        status, _, err = run(capsys, "insert", str(conf), "1", str(token))
        assert status == 2
        assert "already holds a card" in err
    finally:
        server.terminate()
        stopping = _in_thread(server.wait, SERVE_TIMEOUT)
        if second.receive() is None:
            second.hang_up()
        stopping.join(SERVE_TIMEOUT)

    assert server.returncode == 0
    assert not (conf / "control.sock").exists()
    assert shown(capsys, other)["issuer_info"] == BURNED_URL


def test_serve_refuses_a_missing_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], slots: tuple[Path, FakeVpcd, FakeVpcd]
) -> None:
    conf, *_ = slots
    server = _serve(conf)
    try:
        status, _, err = run(capsys, "insert", str(conf), "0", str(tmp_path / "missing.json"))
    finally:
        server.terminate()
        server.wait(SERVE_TIMEOUT)

    assert status == 2
    assert "missing.json" in err
