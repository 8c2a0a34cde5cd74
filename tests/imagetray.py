"""A station in its own process, over tokens kept as card images, for the crash and race tests.

    python -m tests.imagetray DIR --ledger LEDGER --station NAME [--readers N] [--delay S]
                              [--go FILE]

Each ``*.json`` under DIR is one token: the simulator's card image and the number of times
SET ISSUER INFO succeeded on it, saved together (atomically) after every APDU that changed
the token, so a token outlives a kill -9 of this process in the state the card would be in.
A tray hands the tokens to N reader slots; the workers are the product's own (``Batch``).
The process serves the profile's ServiceInfo itself and prints its summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from provision.batch import Batch, Limits
from provision.ledger import RunContext, open_ledger
from provision.transport import InProcessTransport, Transport
from simulator.card import VirtualToken
from simulator.image import from_image, to_image
from tests.linekit import URL, example_profile, phone_home, plan_for

SET_ISSUER_INFO = (0x84, 0xF4)


def save(path: Path, token: VirtualToken, writes: int) -> None:
    text = json.dumps({"image": to_image(token), "issuer_info_writes": writes})
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(name, path)


def load(path: Path) -> tuple[VirtualToken, int]:
    data = json.loads(path.read_text())
    return from_image(data["image"]), int(data["issuer_info_writes"])


class ImageCard:
    """A token whose every change is saved to its file before the answer goes back."""

    def __init__(self, path: Path, delay: float) -> None:
        self.path = path
        self.token, self.writes = load(path)
        self.delay = delay

    def power_on(self) -> bytes:
        return self.token.power_on()

    def process(self, apdu: bytes) -> bytes:
        if self.delay:
            time.sleep(self.delay)
        before = self.token.nv_writes
        response = self.token.process(apdu)
        if self.token.nv_writes != before:
            if tuple(apdu[:2]) == SET_ISSUER_INFO and response[-2:] == b"\x90\x00":
                self.writes += 1
            save(self.path, self.token, self.writes)
        return response


class Tray:
    def __init__(self, paths: Sequence[Path], delay: float) -> None:
        self._paths = list(paths)
        self._delay = delay
        self._lock = threading.Lock()
        self.batch: Batch | None = None

    def take(self, slot: str) -> Transport | None:
        with self._lock:
            path = self._paths.pop(0) if self._paths else None
        if path is None:
            assert self.batch is not None
            self.batch.end()
            return None
        return InProcessTransport(ImageCard(path, self._delay), reader=slot)


class Slot:
    def __init__(self, tray: Tray, name: str) -> None:
        self._tray = tray
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def wait_for_card(self, timeout: float) -> Transport | None:
        return self._tray.take(self._name)

    def wait_for_removal(self, timeout: float) -> bool:
        return True


class Reasons:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def status(self, reader: str, token_id: str | None, activity: str) -> None:
        pass

    def result(self, result: Any) -> None:
        with self._lock:
            self.lines.append(
                {
                    "token_id": result.token_id,
                    "result": result.outcome.value,
                    "reason": result.reason,
                }
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("images", type=Path)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--station", required=True)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--go", type=Path, help="wait for this file before the first token")
    args = parser.parse_args(argv)

    profile = example_profile()
    assert profile.phone_home_url == URL
    tray = Tray(sorted(args.images.glob("*.json")), args.delay)
    context = RunContext(
        profile=profile.name,
        profile_hash=profile.content_hash,
        url=profile.phone_home_url,
        station=args.station,
        operator="test",
        tool_version="test",
    )
    reasons = Reasons()
    with phone_home() as server, open_ledger(args.ledger) as ledger:
        plan = plan_for(profile, server)
        limits = Limits(halt_after_key_mismatches=2)
        batch = Batch(plan, limits, journals=lambda: ledger.journal(context), observer=reasons)
        tray.batch = batch
        slots = [Slot(tray, f"{args.station} slot {n}") for n in range(args.readers)]
        if args.go is not None:
            while not args.go.exists():
                time.sleep(0.001)
        summary = batch.run(slots, watch=True)
    print(json.dumps({"summary": summary.as_dict(), "results": reasons.lines}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
