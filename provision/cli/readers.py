"""``provision readers``: the PC/SC readers pcscd knows, and what each holds."""

from __future__ import annotations

import argparse
import json

from ._common import EXIT_OK, Subparsers


def register(commands: Subparsers) -> None:
    readers = commands.add_parser("readers", help="list the PC/SC readers and their cards")
    readers.add_argument("--json", action="store_true", help="one JSON object per reader")
    readers.set_defaults(handler=cmd_readers)


def cmd_readers(args: argparse.Namespace) -> int:
    from .. import pcsc  # here, so that building the parser stays quick

    found = pcsc.list_readers()
    if args.json:
        for info in found:
            record = {"reader": info.name, "card": info.state.value, "atr": info.atr.hex().upper()}
            print(json.dumps(record))
        return EXIT_OK

    if not found:
        print("pcscd sees no card reader.")
        return EXIT_OK
    width = max(len(info.name) for info in found)
    for info in found:
        atr = f"  ATR {info.atr.hex().upper()}" if info.atr else ""
        print(f"{info.name:<{width}}  {info.state.value}{atr}")
    return EXIT_OK
