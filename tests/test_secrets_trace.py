"""``--trace FILE``: the exchange as it went over the wire, never the plain text of an
encrypted command."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision import __version__, cli
from provision.burn import Outcome, burn_token
from provision.simulated import SimulatedReader
from provision.trace import ApduTrace
from provision.transport import InProcessTransport
from provision.verify import VerifyConfig
from simulator.card import VirtualToken
from tests.burnkit import URL, phone_home, plan_for, profile_text, write_profile

TEST_KEY = "404142434445464748494A4B4C4D4E4F"
EXAMPLE = Path(__file__).resolve().parent.parent / "profiles" / "example-corp.yaml"


@pytest.fixture(scope="module")
def verify() -> Iterator[VerifyConfig]:
    with phone_home() as config:
        yield config


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _trace_a_burn(tmp_path: Path, verify: VerifyConfig, level: str) -> list[list[str]]:
    key_set = {"kvn": 1, "test_keys": True, "enc": TEST_KEY, "mac": TEST_KEY, "dek": TEST_KEY}
    profile = write_profile(
        tmp_path, profile_text({"protocol": "SCP02", "security_level": level}, [key_set])
    )
    path = tmp_path / "burn.trace"

    with ApduTrace(path) as trace:
        result = burn_token(
            trace.transport(InProcessTransport(VirtualToken.blank())), plan_for(profile, verify)
        )

    assert result.outcome is Outcome.VERIFIED, result.reason
    return [line.split(" ", 2) for line in path.read_text().splitlines()]


def _set_issuer_info(lines: list[list[str]]) -> str:
    (line,) = [text for _, _, text in lines if text.startswith("> 84F40000")]
    return line


def test_an_encrypted_command_is_traced_as_cipher_text(
    tmp_path: Path, verify: VerifyConfig
) -> None:
    lines = _trace_a_burn(tmp_path, verify, "03")

    assert lines[0][1:] == ["#", f"provision APDU trace 1, provision {__version__}"]
    command = _set_issuer_info(lines)
    assert URL.encode().hex().upper() not in command
    assert command.startswith("> 84F40000F0")  # 224 bytes padded to 232, then the C-MAC
    # The verification reads the URL back in the clear: that is the wire too.
    assert any(URL.encode().hex().upper() in text for _, _, text in lines if text.startswith("<"))


def test_a_mac_only_command_is_traced_as_sent(tmp_path: Path, verify: VerifyConfig) -> None:
    lines = _trace_a_burn(tmp_path, verify, "01")

    assert URL.encode().hex().upper() in _set_issuer_info(lines)


def test_every_line_has_a_time_and_a_reader(tmp_path: Path, verify: VerifyConfig) -> None:
    lines = _trace_a_burn(tmp_path, verify, "03")

    assert all(stamp.endswith("+00:00") for stamp, _, _ in lines)
    assert {reader for _, reader, _ in lines[1:]} == {"in-process"}
    assert [text.split()[0] for _, _, text in lines[1:3]] == [
        "#",
        ">",
    ]  # connected, then a command


def test_readers_hand_out_traced_transports(tmp_path: Path) -> None:
    slot = SimulatedReader("slot 1")
    slot.insert(VirtualToken.blank())

    with ApduTrace(tmp_path / "t.trace") as trace:
        (reader,) = trace.readers([slot])
        transport = reader.wait_for_card(1)
        assert transport is not None
        transport.transmit(bytes.fromhex("80CA9F7F2D"))

    text = (tmp_path / "t.trace").read_text()
    assert "slot 1 > 80CA9F7F2D" in text and "slot 1 < 9F7F2A" in text


def test_the_cli_appends_a_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "support.trace"
    for _ in range(2):
        status = cli.main(
            [
                "burn",
                str(EXAMPLE),
                "--simulated",
                "2",
                "--json",
                "--no-progress",
                "--report",
                str(tmp_path / "r.jsonl"),
                "--trace",
                str(trace),
            ]
        )
        assert status == 0
        assert json.loads(capsys.readouterr().out)["verified"] == 2

    text = trace.read_text()
    assert text.count("# provision APDU trace 1") == 2
    assert text.count("> 8050") == 4  # one INITIALIZE UPDATE a token


def test_an_unwritable_trace_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(
        [
            "burn",
            str(EXAMPLE),
            "--simulated",
            "1",
            "--report",
            str(tmp_path / "r.jsonl"),
            "--trace",
            str(tmp_path / "no" / "such" / "dir" / "t.trace"),
        ]
    )

    assert status == 2
    assert "cannot write the trace file" in capsys.readouterr().err
