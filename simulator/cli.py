"""``token-sim``: make and inspect virtual token images.

    token-sim new IMAGE [--cuid HEX] [--protocol scp02|scp03] [--i HEX] [--force]
    token-sim show IMAGE

Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from provision.gp.keys import Scp

from .card import CUID_LENGTH, CardModel, VirtualToken
from .image import load, save

EXIT_OK = 0
EXIT_ERROR = 2

PROTOCOLS = {"scp02": Scp.SCP02, "scp03": Scp.SCP03}


class CliError(Exception):
    """A user-facing failure: the message is printed as is."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error."""

    def error(self, message: str) -> NoReturn:
        raise CliError(message)


def _hex_bytes(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not hex: {text!r}") from None


def _hex_byte(text: str) -> int:
    value = _hex_bytes(text)
    if len(value) != 1:
        raise argparse.ArgumentTypeError(f"not one hex byte: {text!r}")
    return value[0]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="token-sim", description="Virtual CoolKey token images.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    new = commands.add_parser("new", help="write the image of a blank token")
    new.add_argument("image", type=Path, help="image file to write")
    new.add_argument("--cuid", type=_hex_bytes, help="10-byte CUID in hex (default: random)")
    new.add_argument("--protocol", choices=sorted(PROTOCOLS), default="scp02")
    new.add_argument("--i", type=_hex_byte, help="SCP implementation option in hex")
    new.add_argument("--force", action="store_true", help="replace an existing image")

    show = commands.add_parser("show", help="print what a token image holds")
    show.add_argument("image", type=Path, help="image file to read")
    return parser


def cmd_new(args: argparse.Namespace) -> None:
    if args.cuid is not None and len(args.cuid) != CUID_LENGTH:
        raise CliError(f"--cuid needs {CUID_LENGTH} bytes, got {len(args.cuid)}")
    if args.image.exists() and not args.force:
        raise CliError(f"{args.image} exists (use --force to replace it)")
    try:
        model = CardModel.for_protocol(PROTOCOLS[args.protocol], args.i)
    except ValueError as e:
        raise CliError(str(e)) from None

    token = VirtualToken.blank(args.cuid, model=model)
    save(token, args.image)
    print(f"{args.image}: blank token {token.cuid.hex().upper()}")


def issuer_info_text(issuer_info: bytes) -> str:
    """What ESC reads: the bytes before the first NUL (esc-phone-home.md §1.3)."""
    text = issuer_info.split(b"\x00", 1)[0]
    return text.decode("ascii", "backslashreplace") if text else "empty"


def cmd_show(args: argparse.Namespace) -> None:
    token = load(args.image)
    model = token.model
    rows = [
        ("CUID", token.cuid.hex().upper()),
        ("ESC token id", token.cuid.hex()),
        ("protocol", f"{model.protocol.name} i={model.i:02X}"),
        ("life cycle", f"{token.life_cycle:02X}"),
        ("issuer info", issuer_info_text(token.issuer_info)),
        ("failed auth", f"{token.failed_auth_count} of {model.auth_failure_limit}"),
        ("locked", "yes" if token.locked else "no"),
    ]
    for label, value in rows:
        print(f"{label + ':':<14}{value}")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "new":
            cmd_new(args)
        else:
            cmd_show(args)
    except (CliError, ValueError) as e:
        print(f"token-sim: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        print(f"token-sim: {e.filename or 'file'}: {e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
