"""The JSONL report: whole lines only, run ids, devices that cannot be synced."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from provision.report import JsonlReport, ReportError


def test_each_record_is_one_line_with_the_run_id(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with JsonlReport(path, {"profile": "p"}) as first:
        first.write({"token_id": "a"})
    with JsonlReport(path, {"profile": "p"}) as second:
        second.write({"token_id": "b"})

    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["token_id"] for r in records] == ["a", "b"]
    assert records[0]["run"] != records[1]["run"]
    assert {r["profile"] for r in records} == {"p"}


def test_a_failed_write_leaves_no_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    report = JsonlReport(path, {})
    report.write({"token_id": "a"})

    class Full:
        def __init__(self, real: object) -> None:
            self.real = real

        def write(self, data: memoryview) -> int:
            self.real.write(data[:10])  # type: ignore[attr-defined]
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str) -> object:
            return getattr(self.real, name)

    report._file = Full(report._file)  # type: ignore[assignment]
    with pytest.raises(ReportError, match="No space left"):
        report.write({"token_id": "b"})
    report.close()

    assert [json.loads(line)["token_id"] for line in path.read_text().splitlines()] == ["a"]


def test_a_pipe_as_report_gets_whole_lines(tmp_path: Path) -> None:
    # A FIFO, like /dev/stdout piped on: no fsync, no truncation, every line through.
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()

    with JsonlReport(fifo, {"profile": "p"}) as report:
        report.write({"token_id": "a"})
        report.write({"token_id": "b"})
    reader.join(timeout=5)

    lines = received[0].decode().splitlines()
    assert [json.loads(line)["token_id"] for line in lines] == ["a", "b"]
