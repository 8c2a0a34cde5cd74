"""The ``provision`` command line.

This package is the only part of the tool that prints, configures logging, or turns errors
into messages and exit codes. Each command lives in its own module with a ``register``
function that adds its subparser and sets ``handler``; everything the commands call raises
:class:`ProvisionError` subclasses whose messages are meant for the operator.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError, ProvisionError
from ..log import TRAFFIC
from . import burn, export, inspect, ledger, profile, readers, serve, verify
from ._common import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, CliError

logger = logging.getLogger(__name__)

COMMANDS = (burn, ledger, verify, serve, export, profile, readers, inspect)


def _logging_options(*, in_command: bool) -> argparse.ArgumentParser:
    """-v and --log-file, accepted before the command and after it alike.

    After the command their defaults are suppressed, so a value given before it stands.
    """
    options = argparse.ArgumentParser(add_help=False)
    unset = argparse.SUPPRESS if in_command else None
    options.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS if in_command else 0,
        help="more log output: -v outcomes, -vv steps, -vvv every APDU",
    )
    options.add_argument(
        "--log-file", type=Path, default=unset, help="also write the log to this file"
    )
    return options


class _CommandsWithLogging:
    """Adds the logging options to every command's parser."""

    def __init__(self, commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._commands = commands
        self._options = _logging_options(in_command=True)

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return self._commands.add_parser(name, parents=[self._options], **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provision",
        description="Burn CoolKey Phone Home data onto tokens and verify it as ESC would.",
        parents=[_logging_options(in_command=False)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(_CommandsWithLogging(commands))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _configure_logging(args.verbose, args.log_file)
        status: int = args.handler(args)
        return status
    except CliError as exc:
        _error(str(exc))
        return exc.status
    except ProvisionError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (``| head``): not a fault of the tool.
        _quiet_stdout()
        _error("standard output was closed; stopped")
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        logger.debug("internal error", exc_info=True)
        _error(
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in provision: "
            "run again with --log-file FILE -vv and report the file"
        )
        return EXIT_INTERNAL


def _configure_logging(verbose: int, log_file: Path | None) -> None:
    level = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}.get(verbose, TRAFFIC)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        try:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write the log file {log_file}: {exc.strerror}") from None
        file_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        handlers.append(file_handler)
    logging.basicConfig(
        level=level, handlers=handlers, format="%(levelname)s: %(message)s", force=True
    )
    if level <= TRAFFIC:
        logger.warning("APDU tracing is on: every command and response is logged")


def _quiet_stdout() -> None:
    # Python flushes stdout at exit; pointed at the closed pipe that would fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _error(message: str) -> None:
    print(f"provision: error: {message}", file=sys.stderr)
