"""The ``provision`` command line: the README's simulated run, output, errors, exit codes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from provision import cli

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "profiles" / "example-corp.yaml"
TEST_KEY_HEX = "404142434445464748494A4B4C4D4E4F"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # main() configures the root logger, as a program's entry point does; put it back.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_simulated_run_verifies_every_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.jsonl"

    status = cli.main(
        ["burn", str(EXAMPLE), "--simulated", "25", "--json", "--report", str(report)]
    )

    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert status == 0
    assert (summary["verified"], summary["already_burned"]) == (25, 0)
    assert (summary["refused"], summary["failed"]) == (0, 0)
    assert "go to a local server at 127.0.0.1:" in err

    records = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(records) == 25
    assert len({r["token_id"] for r in records}) == 25
    assert {r["result"] for r in records} == {"verified"}
    assert all(
        r["url_written"] == "http://server.example.com:7888/cgi-bin/home/index.cgi"
        for r in records
    )
    assert TEST_KEY_HEX not in report.read_text().upper()


def test_human_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        ["burn", str(EXAMPLE), "--simulated", "3", "--report", str(tmp_path / "r.jsonl")]
    )

    out = capsys.readouterr().out
    assert status == 0
    assert "3 verified, 0 already burned, 0 refused, 0 failed" in out
    assert "test keys" in out and "KCV 8BAF47" in out
    assert f"Report: {tmp_path / 'r.jsonl'}" in out


def test_profile_is_parsed_once_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = []
    get_single_node = yaml.SafeLoader.get_single_node

    def counting(loader: yaml.SafeLoader) -> object:
        calls.append(1)
        return get_single_node(loader)

    monkeypatch.setattr(yaml.SafeLoader, "get_single_node", counting)
    status = cli.main(
        ["burn", str(EXAMPLE), "--simulated", "5", "--report", str(tmp_path / "r.jsonl")]
    )

    assert status == 0
    assert len(calls) == 1


def _bad_profile(tmp_path: Path) -> Path:
    text = EXAMPLE.read_text().replace('i: "15"', "i: 15")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def test_bad_profile_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.jsonl"

    status = cli.main(
        ["burn", str(_bad_profile(tmp_path)), "--simulated", "2", "--report", str(report)]
    )

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert "bad.yaml:" in err and "secure_channel.i" in err
    assert not report.exists()


def test_no_traceback_reaches_the_user(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "provision",
            "burn",
            str(_bad_profile(tmp_path)),
            "--simulated",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith("provision: error: ")


def test_missing_profile_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["burn", str(tmp_path / "nope.yaml"), "--simulated", "1"])

    assert status == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_zero_tokens_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["burn", str(EXAMPLE), "--simulated", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_a_report_pointed_at_the_profile_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "victim.yaml"
    profile.write_bytes(EXAMPLE.read_bytes())

    status = cli.main(["burn", str(profile), "--simulated", "1", "--report", str(profile)])

    assert status == 2
    assert "is the profile" in capsys.readouterr().err
    assert profile.read_bytes() == EXAMPLE.read_bytes()


def test_logging_options_work_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.log"
    args = ["burn", str(EXAMPLE), "--simulated", "1", "--report", str(tmp_path / "r.jsonl")]

    status = cli.main([*args, "-vv", "--log-file", str(log)])

    assert status == 0
    assert "DEBUG" in log.read_text()


def test_simulated_https_run_verifies_over_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "https.yaml"
    url = "http://server.example.com:7888/cgi-bin/home/index.cgi"
    profile.write_text(EXAMPLE.read_text().replace(url, "https://tps.acme.test/home/index.cgi"))

    status = cli.main(
        ["burn", str(profile), "--simulated", "2", "--json", "--report", str(tmp_path / "r")]
    )

    assert status == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["verified"] == 2
