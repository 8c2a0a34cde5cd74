"""IT mode through a pseudo-terminal: the questions, the results in plain words, the answers,
Ctrl-C at a question, and the limits of the mode."""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.linekit import EXAMPLE, REPO


class Terminal:
    """``provision`` running on a pseudo-terminal that is its controlling terminal, so that
    Ctrl-C typed into it reaches the program as SIGINT, as at a desk."""

    def __init__(self, *argv: str, cwd: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec at once, nothing else runs here
            os.chdir(cwd)
            os.execv(sys.executable, [sys.executable, "-m", "provision", *argv])  # noqa: S606
        self.pid, self.fd = pid, fd
        self.text = ""
        self._seen = 0

    def expect(self, wanted: str, timeout: float = 30) -> str:
        """Read until ``wanted`` appears after what was expected before; return the text."""
        deadline = time.monotonic() + timeout
        while wanted not in self.text[self._seen :]:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{wanted!r} never came; the terminal shows:\n{self.text}")
        end = self.text.index(wanted, self._seen) + len(wanted)
        said, self._seen = self.text[self._seen : end], end
        return said

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # the program has ended and closed the terminal
            return False
        self.text += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        return bool(chunk)

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def exit_status(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.05)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"the program did not end; the terminal shows:\n{self.text}")


def _states(ledger: Path) -> list[str]:
    with sqlite3.connect(ledger) as db:
        return [state for (state,) in db.execute("SELECT state FROM provision_attempts")]


def _start(tmp_path: Path, count: int) -> Terminal:
    return Terminal(
        "burn", str(EXAMPLE), "--simulated", str(count), "--interactive",
        "--ledger", str(tmp_path / "ledger.db"), "--report", str(tmp_path / "report.jsonl"),
        cwd=tmp_path,
    )  # fmt: skip


def test_a_small_group_token_by_token(tmp_path: Path) -> None:
    terminal = _start(tmp_path, 5)

    terminal.expect("IT mode with simulated slot 1: up to 5 tokens, one at a time.")
    terminal.expect("Token 1: insert a token into simulated slot 1.")
    done = terminal.expect("Remove the token.")
    assert "is done" in done and "http://server.example.com:7888/cgi-bin/home/index.cgi" in done
    assert "ESC will find Example Corp through it" in done
    terminal.expect("Burn another token? [Y/n] ")
    terminal.type("\r")  # Enter: yes
    terminal.expect("Token 2: insert a token into simulated slot 1.")
    terminal.expect("Burn another token? [Y/n] ")
    terminal.type("no\r")
    summary = terminal.expect("Report:")

    assert "2 verified, 0 already burned, 0 refused, 0 failed" in summary
    assert terminal.exit_status() == 0
    assert "Token 3:" not in terminal.text  # the prompt for a third token
    assert _states(tmp_path / "ledger.db") == ["verified", "verified"]


def test_ctrl_c_at_the_question_ends_the_run_with_its_summary(tmp_path: Path) -> None:
    terminal = _start(tmp_path, 5)

    terminal.expect("Burn another token? [Y/n] ")
    terminal.type("\x03")  # Ctrl-C, as the terminal's line discipline sends it
    summary = terminal.expect("Report:")

    assert "1 verified" in summary
    assert "Interrupted: every token in hand was finished and recorded." in summary
    assert terminal.exit_status() == 130
    assert _states(tmp_path / "ledger.db") == ["verified"]


def test_the_run_ends_at_its_last_token_without_asking(tmp_path: Path) -> None:
    terminal = _start(tmp_path, 2)

    terminal.expect("Burn another token? [Y/n] ")
    terminal.type("y\r")
    last = terminal.expect("That is 2 tokens, the most for this run.")

    assert "Token 2:" in last and "Burn another token" not in last
    assert terminal.exit_status() == 0


def test_it_mode_needs_a_terminal(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "provision", "burn", str(EXAMPLE), "--simulated", "1",
         "--interactive"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip

    assert run.returncode == 2
    assert run.stderr == "provision: error: --interactive asks questions: run it in a terminal\n"


@pytest.mark.parametrize("options", [["--simulated", "21"]])
def test_it_mode_is_for_up_to_twenty_tokens(tmp_path: Path, options: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "provision", "burn", str(EXAMPLE), *options, "--interactive"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip

    assert run.returncode == 2
    assert "at most 20 tokens; use --watch for more" in run.stderr
