"""What every command module of the CLI shares: exit statuses, the operator error, and
lazily listed choices.

A command module imports what its handler needs inside the handler: building the parser,
which ``provision --help`` does for every command, then loads none of it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

EXIT_OK = 0
EXIT_TOKENS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a process killed by it
EXIT_INTERNAL = 70


class CliError(Exception):
    """A message for the operator and the exit status that goes with it."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class Subparsers(Protocol):
    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser: ...


class LazyChoices:
    """An option's choices, listed the first time argparse needs them.

    argparse lists the choices of an option added straight to a parser (not to a group) as
    soon as the option is added, for its metavar: such an option needs a ``metavar``, and
    ``%(choices)s`` in its help shows the values.
    """

    def __init__(self, values: Callable[[], Iterable[str]]) -> None:
        self._values = values
        self._known: tuple[str, ...] | None = None

    def _all(self) -> tuple[str, ...]:
        if self._known is None:
            self._known = tuple(self._values())
        return self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __contains__(self, value: object) -> bool:
        return value in self._all()


def prefs_dialects() -> list[str]:
    """The values of --prefs-dialect, for :class:`LazyChoices`."""
    from ..phonehome.prefs import PrefsDialect

    return [dialect.value for dialect in PrefsDialect]


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether two paths name one file, whether or not it exists yet."""
    first, second = Path(a), Path(b)
    if first.exists() and second.exists():
        return first.samefile(second)
    return first.resolve() == second.resolve()


def refuse_overwriting(
    option: str, output: Path | str, inputs: dict[str, Path | str | None]
) -> None:
    """Refuse an output that is one of the run's inputs: writing it would destroy that file."""
    for what, path in inputs.items():
        if path is not None and same_file(output, path):
            raise CliError(f"{option} {output} is {what}; name another file")


def seconds(text: str) -> float:
    """An argparse type: a time in seconds from 0.1 to 600."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 600:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} s is out of range; give 0.1 to 600")
    return value
