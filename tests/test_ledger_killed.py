"""kill -9 in the middle of a batch, then a re-run: every token ends with exactly one
verified attempt in the ledger, and none was written twice.

The station runs in a child process (``tests/imagetray.py``) over tokens kept as card
images, which are saved after every change, so the tokens outlive the kill as a card
would. The ledger is read with plain ``sqlite3``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.imagetray import load, save
from tests.linekit import REPO, URL, blank, wait_until

TOKENS = 12


def _images(directory: Path) -> list[bytes]:
    directory.mkdir()
    cuids = [bytes.fromhex(f"A0B0C0D0E0F0 0000 00{n:02X}".replace(" ", "")) for n in range(TOKENS)]
    for cuid in cuids:
        save(directory / f"{cuid.hex()}.json", blank(cuid), 0)
    return cuids


def _station(images: Path, ledger: Path, delay: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.imagetray",
        str(images),
        "--ledger",
        str(ledger),
        "--station",
        "line-1",
        "--readers",
        "4",
        "--delay",
        str(delay),
    ]


def _states(ledger: Path, *, running: bool = False) -> list[tuple[str, str]]:
    """The rows' states. While the station runs, read only; once it is dead, open the file
    as the next run will, which first recovers a commit the kill left unindexed."""
    if not ledger.exists():
        return []
    target, uri = (f"file:{ledger}?mode=ro", True) if running else (str(ledger), False)
    try:
        with sqlite3.connect(target, uri=uri) as db:
            return list(db.execute("SELECT token_id, state FROM provision_attempts ORDER BY id"))
    except sqlite3.OperationalError:
        return []  # not created yet


def test_kill_9_mid_batch_then_a_rerun(tmp_path: Path) -> None:
    images, ledger = tmp_path / "tray", tmp_path / "ledger.db"
    cuids = _images(images)

    # 30 ms per APDU: a token spends some 60 ms in verification, its row 'written'.
    child = subprocess.Popen(_station(images, ledger, 0.03), cwd=REPO, stdout=subprocess.PIPE)
    try:
        wait_until(
            lambda: {"verified", "written"} <= {s for _, s in _states(ledger, running=True)}, 20
        )
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    left = _states(ledger)
    verified_before = {token for token, state in left if state == "verified"}
    assert {"started", "written"} & {state for _, state in left}, left
    assert len(verified_before) < TOKENS

    rerun = subprocess.run(
        _station(images, ledger, 0.0), cwd=REPO, capture_output=True, text=True, check=True
    )

    summary = json.loads(rerun.stdout)["summary"]
    assert summary["skipped"] == len(verified_before)
    assert summary["verified"] + summary["already_burned"] == TOKENS - len(verified_before)
    assert summary["failed"] == summary["refused"] == 0

    final = _states(ledger)
    verified = Counter(token for token, state in final if state == "verified")
    assert verified == Counter({cuid.hex(): 1 for cuid in cuids})
    assert not [row for row in final if row[1] in ("started", "written")]

    for cuid in cuids:
        token, writes = load(images / f"{cuid.hex()}.json")
        assert writes == 1, cuid.hex()
        assert token.issuer_info.rstrip(b"\x00") == URL.encode()
