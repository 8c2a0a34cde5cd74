"""What every command module of the CLI shares: exit statuses and the operator error."""

from __future__ import annotations

import argparse
from typing import Protocol

EXIT_OK = 0
EXIT_TOKENS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


class CliError(Exception):
    """A message for the operator and the exit status that goes with it."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class Subparsers(Protocol):
    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser: ...
