"""``provision burn --reader`` (once and --watch), the ledger options, the summary table,
``--json``, and ``provision ledger report``.

The readers are simulated ones handed to the command in place of PC/SC readers; the profile
is Example Corp's with its Phone Home URL pointed at a loopback server, so the client flow
runs for real without leaving the machine.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision import cli, pcsc
from provision.simulated import SimulatedReader
from provision.transport import Reader, Transport
from simulator.card import VirtualToken
from tests.linekit import (
    EXAMPLE,
    SET_ISSUER_INFO,
    URL,
    blank,
    issuer_text,
    phone_home,
    restore_logging,
)

pytestmark = pytest.mark.usefixtures(restore_logging.__name__)


@pytest.fixture
def profile(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Example Corp with its Phone Home URL on a loopback server; the path and the URL."""
    with phone_home() as server:
        url = f"http://{server.host}:{server.port}/cgi-bin/home/index.cgi"
        path = tmp_path / "local-corp.yaml"
        path.write_text(EXAMPLE.read_text().replace(URL, url))
        yield path, url


class Line:
    """The readers the command gets instead of PC/SC ones."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *readers: Reader) -> None:
        self.readers = list(readers)
        self.patterns: list[list[str]] = []
        monkeypatch.setattr(pcsc, "open_readers", self._open)

    def _open(self, patterns: list[str]) -> list[Reader]:
        self.patterns.append(list(patterns))
        return self.readers


def _with(name: str, token: VirtualToken | None) -> SimulatedReader:
    reader = SimulatedReader(name)
    if token is not None:
        reader.insert(token)
    return reader


class Endless(SimulatedReader):
    """A reader an operator keeps filling: a fresh token whenever one is asked for."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.made: list[VirtualToken] = []

    def wait_for_card(self, timeout: float) -> Transport | None:
        if self.token is None:
            self.made.append(blank())
            self.insert(self.made[-1])
        return super().wait_for_card(timeout)

    def wait_for_removal(self, timeout: float) -> bool:
        self.remove()
        return True


def _burn(tmp_path: Path, profile: Path, *options: str) -> list[str]:
    return ["burn", str(profile), "--report", str(tmp_path / "report.jsonl"), *options]


def test_once_over_the_readers_present(
    tmp_path: Path,
    profile: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tokens = [blank(), blank()]
    line = Line(
        monkeypatch, _with("Sim 0", tokens[0]), _with("Sim 1", None), _with("Sim 2", tokens[1])
    )

    status = cli.main(_burn(tmp_path, profile[0], "--reader", "Sim *", "--reader", "Other"))

    out = capsys.readouterr().out
    assert status == 0
    assert line.patterns == [["Sim *", "Other"]]
    assert all(issuer_text(token) == profile[1].encode() for token in tokens)
    assert "Burning the tokens present in Sim 0, Sim 1, Sim 2, once." in out
    assert "Sim 1: no token" in out
    table = out[out.index("reader  ") :].splitlines()
    assert table[0].split() == [
        "reader", "verified", "already", "skipped", "planned", "refused", "failed",
    ]  # fmt: skip
    assert table[1].split() == ["Sim", "0", "1", "0", "0", "0", "0", "0"]
    assert table[3].split() == ["total", "2", "0", "0", "0", "0", "0"]
    assert "2 verified, 0 already burned, 0 refused, 0 failed in" in out


def test_json_summary_has_the_readers(
    tmp_path: Path,
    profile: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    foreign = blank()
    from tests.linekit import write_directly

    write_directly(foreign, b"http://old.example.org/phoneHome")
    Line(monkeypatch, _with("Sim 0", blank()), _with("Sim 1", foreign))

    status = cli.main(_burn(tmp_path, profile[0], "--reader", "Sim*", "--json"))

    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert status == 1  # a refused token
    assert (summary["verified"], summary["refused"], summary["total"]) == (1, 1, 2)
    assert summary["readers"]["Sim 1"]["refused"] == 1
    assert summary["report"] == str(tmp_path / "report.jsonl") and summary["ledger"] is None
    assert "Sim 1" in captured.err and "old.example.org" in captured.err


def test_watch_with_count_stops_after_that_many(
    tmp_path: Path,
    profile: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    readers = [Endless("Sim 0"), Endless("Sim 1")]
    Line(monkeypatch, *readers)

    status = cli.main(
        _burn(tmp_path, profile[0], "--reader", "Sim*", "--watch", "--count", "5", "--json")
    )

    summary = json.loads(capsys.readouterr().out)
    assert status == 0
    assert summary["verified"] == 5 and summary["total"] == 5
    made = [token for reader in readers for token in reader.made]
    assert sum(token.commands_seen[SET_ISSUER_INFO] for token in made) == 5


def test_a_rerun_with_the_ledger_skips_and_says_where(
    tmp_path: Path,
    profile: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tokens = [blank(), blank()]
    ledger = tmp_path / "ledger.db"
    options = ("--reader", "Sim*", "--ledger", str(ledger), "--station", "bench-3")

    for _ in range(2):
        Line(monkeypatch, _with("Sim 0", tokens[0]), _with("Sim 1", tokens[1]))
        assert cli.main(_burn(tmp_path, profile[0], *options, "--operator", "carol")) == 0

    out = capsys.readouterr().out
    assert "0 verified, 0 already burned, 0 refused, 0 failed, 2 skipped" in out
    assert "already verified at this station (bench-3)" in out
    assert f"Ledger: {ledger}" in out
    with sqlite3.connect(ledger) as db:
        found = db.execute("SELECT state, station, operator, overrides FROM provision_attempts")
        assert found.fetchall() == [("verified", "bench-3", "carol", None)] * 2


def test_policy_overrides_are_recorded_in_the_ledger(
    tmp_path: Path,
    profile: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    Line(monkeypatch, _with("Sim 0", blank()))
    ledger = tmp_path / "ledger.db"

    argv = _burn(tmp_path, profile[0], "--reader", "Sim 0", "--ledger", str(ledger))
    cli.main([*argv, "--overwrite", "force", "--cuid-range", "00*", "--cuid-range", "8*"])

    with sqlite3.connect(ledger) as db:
        (overrides,) = db.execute("SELECT overrides FROM provision_attempts").fetchone()
    assert overrides == (
        "overwrite=force; cuid_ranges=00000000000000000000..00FFFFFFFFFFFFFFFFFF,"
        "80000000000000000000..8FFFFFFFFFFFFFFFFFFF"
    )
    assert "Policy overrides: overwrite=force" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ([], "name the tokens: --reader PATTERN for readers, or --simulated N"),
        (["--reader", "x", "--simulated", "2"], "name the tokens"),
        (["--simulated", "2", "--watch"], "--watch is for --reader"),
        (["--simulated", "2", "--count", "2"], "--count is for --reader"),
        (["--reader", "x", "--count", "0"], "--count takes a number of tokens, at least 1"),
    ],
)
def test_option_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], words: str
) -> None:
    assert cli.main(_burn(tmp_path, EXAMPLE, *options)) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_interactive_needs_exactly_one_reader(
    tmp_path: Path,
    profile: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    Line(monkeypatch, _with("Sim 0", blank()), _with("Sim 1", blank()))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)

    status = cli.main(_burn(tmp_path, profile[0], "--reader", "Sim*", "--interactive"))

    assert status == 2
    assert "--interactive works with one reader; the patterns match 'Sim 0', 'Sim 1'" in (
        capsys.readouterr().err
    )


# -- provision ledger report ---------------------------------------------------------------


@pytest.fixture
def filled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    ledger = tmp_path / "ledger.db"
    argv = ["burn", str(EXAMPLE), "--simulated", "3", "--ledger", str(ledger)]
    assert cli.main([*argv, "--report", str(tmp_path / "r.jsonl"), "--station", "s1"]) == 0
    capsys.readouterr()
    return ledger


def _sqlite_columns(ledger: Path) -> list[str]:
    with sqlite3.connect(ledger) as db:
        return [row[1] for row in db.execute("PRAGMA table_info(provision_attempts)")]


def test_report_as_csv(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ledger", "report", str(filled)]) == 0

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 3
    assert list(rows[0]) == _sqlite_columns(filled)
    assert {row["state"] for row in rows} == {"verified"}
    assert {row["station"] for row in rows} == {"s1"}
    assert all(row["url_written"] == URL for row in rows)


def test_report_as_jsonl_for_one_token_in_any_spelling(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(filled) as db:
        (token_id,) = db.execute("SELECT token_id FROM provision_attempts LIMIT 1").fetchone()
    spelled = " ".join(token_id[n : n + 4] for n in range(0, 20, 4)).upper()

    argv = ["ledger", "report", str(filled), "--format", "jsonl", "--token", spelled]
    assert cli.main([*argv, "--state", "verified"]) == 0

    (line,) = capsys.readouterr().out.splitlines()
    row = json.loads(line)
    assert row["token_id"] == token_id and row["profile"] == "example-corp"


def test_report_to_a_file(
    tmp_path: Path, filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit.jsonl"

    assert cli.main(["ledger", "report", str(filled), "--format", "jsonl", "-o", str(out)]) == 0

    assert len(out.read_text().splitlines()) == 3
    assert f"3 attempts written to {out}" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".audit")]


def test_report_of_an_empty_ledger_has_the_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from provision.ledger import open_ledger

    with open_ledger(str(tmp_path / "empty.db")):
        pass

    assert cli.main(["ledger", "report", str(tmp_path / "empty.db")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        ",".join(_sqlite_columns(tmp_path / "empty.db"))
    ]


def test_report_of_no_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ledger", "report", str(tmp_path / "none.db")]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
