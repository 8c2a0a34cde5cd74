"""The per-token JSONL report: one JSON object a line, one line a token."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .errors import ConfigError


def default_report_name(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return Path(f"burn-report-{stamp}.jsonl")


class JsonlReport:
    """Appends records to a JSONL file, each flushed as one whole line."""

    def __init__(self, path: Path, context: dict[str, Any]) -> None:
        self.path = path
        self._context = context
        try:
            self._file = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write the report {path}: {exc.strerror}") from None

    def write(self, record: dict[str, Any]) -> None:
        # One write call per line, so a reader never sees two records interleaved.
        line = json.dumps({**record, **self._context}, ensure_ascii=False) + "\n"
        self._file.write(line)
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
