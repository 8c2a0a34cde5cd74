"""Access to the public GlobalPlatform vector files under ``tests/vectors``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).parent / "vectors"


def load(name: str) -> dict[str, Any]:
    """The vector set ``name`` (file name without ``.json``)."""
    with (VECTOR_DIR / f"{name}.json").open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def h(text: str) -> bytes:
    """Bytes from the vector files' upper-case hex."""
    return bytes.fromhex(text)
