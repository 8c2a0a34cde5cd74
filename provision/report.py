"""The per-token JSONL report: one JSON object a line, one line a token.

A report may be appended to by several runs; each record carries the run's id. A line is
either written whole or not at all: when a write fails (a full disk), the file is cut back
to where the line began, so the next run never appends onto half a record.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

from .errors import ConfigError, ProvisionError


class ReportError(ProvisionError):
    """The report could not be written."""


def default_report_name(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return Path(f"burn-report-{stamp}.jsonl")


class JsonlReport:
    """Appends records to a JSONL file, each written and flushed as one whole line."""

    def __init__(self, path: Path, context: dict[str, Any]) -> None:
        self.path = path
        self.run_id = uuid.uuid4().hex[:12]
        self._context = {**context, "run": self.run_id}
        try:
            self._file: BinaryIO = path.open("ab", buffering=0)
            self._regular = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
        except OSError as exc:
            raise ConfigError(f"cannot write the report {path}: {exc.strerror}") from None

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps({**record, **self._context}, ensure_ascii=False) + "\n"
        start = self._file.tell() if self._regular else 0
        data = memoryview(line.encode("utf-8"))
        try:
            while data:
                data = data[self._file.write(data) :]
        except OSError as exc:
            self._cut_back(start)
            raise ReportError(f"cannot write the report {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        try:
            if self._regular:
                os.fsync(self._file.fileno())
        except OSError as exc:
            raise ReportError(f"cannot write the report {self.path}: {exc.strerror}") from None
        finally:
            self._file.close()

    def _cut_back(self, start: int) -> None:
        if not self._regular:
            return
        try:
            self._file.truncate(start)
            self._file.seek(start)
        except OSError:
            # Nothing more can be done for this file; the error above says so.
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
