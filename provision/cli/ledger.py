"""``provision ledger report``: export a ledger's attempts as CSV or JSONL for audits."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import EXIT_OK, CliError, LazyChoices, Subparsers


def register(commands: Subparsers) -> None:
    ledger = commands.add_parser("ledger", help="read a burn ledger")
    actions = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    report = actions.add_parser("report", help="export every attempt as CSV or JSONL")
    report.add_argument("ledger", metavar="FILE|URL", help="SQLite file or postgresql:// URL")
    report.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    report.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write here (default: standard output)"
    )
    report.add_argument("--token", metavar="CUID", help="only this token's attempts")
    report.add_argument(
        "--state",
        choices=LazyChoices(_states),
        metavar="STATE",
        help="only attempts in this state: %(choices)s",
    )
    report.set_defaults(handler=cmd_report)


def _states() -> Sequence[str]:
    from ..ledger import STATES  # here, so that building the parser stays quick

    return STATES


def cmd_report(args: argparse.Namespace) -> int:
    from ..ledger import open_ledger
    from ..phonehome.prefs_file import write_atomically

    token_id = _token_id(args.token) if args.token else None
    if args.ledger.startswith(("postgresql://", "postgres://")) or Path(args.ledger).is_file():
        with open_ledger(args.ledger, exclusive=False) as ledger:
            rows = ledger.rows(token_id=token_id)
    else:
        raise CliError(f"no ledger at {args.ledger}: give a ledger file or a postgresql:// URL")
    if args.state:
        rows = [row for row in rows if row["state"] == args.state]

    text = _csv(rows) if args.format == "csv" else _jsonl(rows)
    if args.output is None:
        sys.stdout.write(text)
    else:
        # Never half an export: a sibling temporary file renamed over the target.
        write_atomically(args.output, text, new_mode=0o644)
        print(f"{len(rows)} attempts written to {args.output}", file=sys.stderr)
    return EXIT_OK


def _token_id(text: str) -> str:
    from ..profile import parse_cuid

    try:
        return parse_cuid(text).hex()
    except ValueError as exc:
        raise CliError(f"--token: {exc}") from None


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    from ..ledger import COLUMNS

    names = list(rows[0]) if rows else list(COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
