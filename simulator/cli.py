"""``token-sim``: make and inspect virtual token images, and serve them to pcscd.

    token-sim new IMAGE [--state blank|burned|locked|foreign] [--url URL] [--cuid HEX]
                        [--protocol scp02|scp03] [--i HEX] [--force]
    token-sim show IMAGE [--json]
    token-sim readerconf DIR [--readers N] [--base-port PORT] [--name PREFIX] [--driver FILE]
    token-sim serve DIR [--card READER=IMAGE ...] [--t0] [--apdu-delay MS] [--write-delay MS]
    token-sim insert DIR READER IMAGE [--t0 | --t1] [--apdu-delay MS] [--write-delay MS]
    token-sim remove DIR READER [--discard]
    token-sim swap DIR READER IMAGE [--discard]
    token-sim save DIR READER IMAGE
    token-sim status DIR

``readerconf`` writes a reader configuration for ``pcscd -f -c DIR/reader.conf.d``;
``serve`` connects cards to those readers and takes ``insert``, ``remove``, ``swap``, ``save``
and ``status`` from other invocations through its control socket. Errors are one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from provision.gp.keys import Scp

from .bridge import Bridge, BridgeError, ServeOptions
from .card import CUID_LENGTH, CardModel, VirtualToken
from .control import ControlError, Controller, ControlServer, request, socket_path
from .coolkey import ISSUER_INFO_SIZE
from .image import load, save
from .latency import Latency
from .readerconf import MAX_READERS, ReaderConfError, load_reader_conf, write_reader_conf

EXIT_OK = 0
EXIT_ERROR = 2

PROTOCOLS = {"scp02": Scp.SCP02, "scp03": Scp.SCP03}
STATES = ("blank", "burned", "locked", "foreign")
# The RHCS guide's Phone Home URL (the Example Corp profile's), and another issuer's.
BURNED_URL = "http://server.example.com:7888/cgi-bin/home/index.cgi"
FOREIGN_URL = "http://tps.other-issuer.example.org:7888/cgi-bin/home/index.cgi"


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


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a delay cannot be negative: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="token-sim", description="Virtual CoolKey tokens, and pcscd readers.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _image_commands(commands)
    _reader_commands(commands)
    return parser


def _image_commands(commands: Any) -> None:
    new = commands.add_parser("new", help="write the image of a token")
    new.add_argument("image", type=Path, help="image file to write")
    new.add_argument("--state", choices=STATES, default="blank", help="what the token holds")
    new.add_argument("--url", help="issuer info of a burned or foreign token")
    new.add_argument("--cuid", type=_hex_bytes, help="10-byte CUID in hex (default: random)")
    new.add_argument("--protocol", choices=sorted(PROTOCOLS), default="scp02")
    new.add_argument("--i", type=_hex_byte, help="SCP implementation option in hex")
    new.add_argument("--force", action="store_true", help="replace an existing image")

    show = commands.add_parser("show", help="print what a token image holds")
    show.add_argument("image", type=Path, help="image file to read")
    show.add_argument("--json", action="store_true", help="print it as one JSON object")


def _reader_commands(commands: Any) -> None:
    conf = commands.add_parser("readerconf", help="write a pcscd reader configuration")
    conf.add_argument("dir", type=Path, help="directory to write (pcscd -c DIR/reader.conf.d)")
    conf.add_argument("--readers", type=int, default=MAX_READERS, help="how many (1 to 16)")
    conf.add_argument("--base-port", type=int, help="first TCP port (default: first free)")
    conf.add_argument("--name", default="CoolKey Sim", help="reader name prefix")
    conf.add_argument("--driver", type=Path, help="libifdvpcd.so to copy (default: installed)")

    serve = commands.add_parser("serve", help="serve cards to pcscd's virtual readers")
    serve.add_argument("dir", type=Path, help="reader configuration directory")
    serve.add_argument(
        "--card", action="append", default=[], metavar="READER=IMAGE", help="insert at start"
    )
    _serve_options(serve, defaults=True)

    insert = commands.add_parser("insert", help="insert a card into a served reader")
    insert.add_argument("dir", type=Path)
    insert.add_argument("reader", help="reader index (0 to 15) or name")
    insert.add_argument("image", type=Path)
    _serve_options(insert, defaults=False)

    remove = commands.add_parser("remove", help="remove a card (written back to its image)")
    remove.add_argument("dir", type=Path)
    remove.add_argument("reader")
    remove.add_argument("--discard", action="store_true", help="do not write its image back")

    swap = commands.add_parser("swap", help="remove a reader's card and insert another")
    swap.add_argument("dir", type=Path)
    swap.add_argument("reader")
    swap.add_argument("image", type=Path)
    swap.add_argument("--discard", action="store_true", help="do not write the old card back")
    _serve_options(swap, defaults=False)

    save_cmd = commands.add_parser("save", help="write the image of a card being served")
    save_cmd.add_argument("dir", type=Path)
    save_cmd.add_argument("reader")
    save_cmd.add_argument("image", type=Path)

    status = commands.add_parser("status", help="list the served readers and their cards")
    status.add_argument("dir", type=Path)


def _serve_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    t0 = parser.add_mutually_exclusive_group()
    t0.add_argument("--t0", dest="t0", action="store_true", default=None, help="T=0 card")
    if not defaults:
        t0.add_argument("--t1", dest="t0", action="store_false", help="T=1 card")
    parser.add_argument("--apdu-delay", type=_milliseconds, metavar="MS", help="per APDU")
    parser.add_argument("--write-delay", type=_milliseconds, metavar="MS", help="per NV write")


# Images


def make_token(
    state: str = "blank",
    *,
    cuid: bytes | None = None,
    model: CardModel | None = None,
    url: str | None = None,
) -> VirtualToken:
    """A token as it comes off a line: blank, burned with a URL, locked, or another
    issuer's. The state is set directly, not through the tool's own burn."""
    blank = VirtualToken.blank(cuid, model=model or CardModel())
    if state == "blank":
        return blank
    issuer_info = bytes(ISSUER_INFO_SIZE)
    if state in ("burned", "foreign"):
        value = url or (BURNED_URL if state == "burned" else FOREIGN_URL)
        raw = value.encode("ascii")
        if len(raw) >= ISSUER_INFO_SIZE:
            raise ValueError(f"issuer info holds at most {ISSUER_INFO_SIZE - 1} bytes")
        issuer_info = raw.ljust(ISSUER_INFO_SIZE, b"\x00")
    locked = state == "locked"
    return VirtualToken(
        model=blank.model,
        cplc=blank.cplc,
        kdd=blank.kdd,
        key_sets=blank.key_sets,
        issuer_info=issuer_info,
        failed_auth_count=blank.model.auth_failure_limit if locked else 0,
        locked=locked,
    )


def cmd_new(args: argparse.Namespace) -> None:
    if args.cuid is not None and len(args.cuid) != CUID_LENGTH:
        raise CliError(f"--cuid needs {CUID_LENGTH} bytes, got {len(args.cuid)}")
    if args.url is not None and args.state not in ("burned", "foreign"):
        raise CliError("--url is for a burned or foreign token")
    if args.image.exists() and not args.force:
        raise CliError(f"{args.image} exists (use --force to replace it)")
    try:
        model = CardModel.for_protocol(PROTOCOLS[args.protocol], args.i)
        token = make_token(args.state, cuid=args.cuid, model=model, url=args.url)
    except (ValueError, UnicodeEncodeError) as e:
        raise CliError(str(e)) from None

    save(token, args.image)
    print(f"{args.image}: {args.state} token {token.cuid.hex().upper()}")


def issuer_info_text(issuer_info: bytes) -> str:
    """What ESC reads: the bytes before the first NUL (esc-phone-home.md §1.3)."""
    text = issuer_info.split(b"\x00", 1)[0]
    return text.decode("ascii", "backslashreplace") if text else "empty"


def describe(token: VirtualToken) -> dict[str, str]:
    model = token.model
    return {
        "CUID": token.cuid.hex().upper(),
        "ESC token id": token.cuid.hex(),
        "protocol": f"{model.protocol.name} i={model.i:02X}",
        "life cycle": f"{token.life_cycle:02X}",
        "issuer info": issuer_info_text(token.issuer_info),
        "failed auth": f"{token.failed_auth_count} of {model.auth_failure_limit}",
        "locked": "yes" if token.locked else "no",
    }


def cmd_show(args: argparse.Namespace) -> None:
    rows = describe(load(args.image))
    if args.json:
        print(json.dumps({key.replace(" ", "_").lower(): value for key, value in rows.items()}))
        return
    for label, value in rows.items():
        print(f"{label + ':':<14}{value}")


# Readers


def cmd_readerconf(args: argparse.Namespace) -> None:
    conf = write_reader_conf(
        args.dir, args.readers, base_port=args.base_port, name=args.name, driver=args.driver
    )
    for reader in conf.readers:
        print(f"{reader.index:>2}  {reader.name}  port {reader.port}")
    print(f"Start pcscd with: pcscd -f -c {conf.conf_dir}")


def _options(args: argparse.Namespace) -> ServeOptions:
    latency = Latency.from_ms(args.apdu_delay or 0.0, args.write_delay or 0.0)
    return ServeOptions(t0=bool(args.t0), latency=latency)


def cmd_serve(args: argparse.Namespace) -> None:
    conf = load_reader_conf(args.dir)
    controller = Controller(Bridge.from_conf(conf), _options(args))
    server = ControlServer(socket_path(conf), controller)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        for card in args.card:
            reader, sep, image = card.partition("=")
            if not sep or not image:
                raise CliError(f"--card takes READER=IMAGE, not {card!r}")
            token = load(image)
            print(controller.insert(reader, Path(image), token, controller.defaults), flush=True)
        print(f"Serving {len(conf.readers)} readers; control socket {server.path}", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        controller.close()


def _send(args: argparse.Namespace, payload: dict[str, Any]) -> dict[str, Any]:
    return request(load_reader_conf(args.dir), payload)


def _card_request(args: argparse.Namespace, op: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"op": op, "reader": args.reader}
    if getattr(args, "image", None) is not None:
        payload["image"] = str(args.image.resolve())
    if getattr(args, "discard", False):
        payload["save"] = False
    for name in ("t0", "apdu_delay", "write_delay"):
        value = getattr(args, name, None)
        if value is not None:
            payload[name if name == "t0" else f"{name}_ms"] = value
    return payload


def cmd_card(args: argparse.Namespace) -> None:
    print(_send(args, _card_request(args, args.command))["message"])


def cmd_status(args: argparse.Namespace) -> None:
    for row in _send(args, {"op": "status"})["readers"]:
        card = row["cuid"] or "empty"
        image = f"  ({row['image']})" if row["image"] else ""
        print(f"{row['index']:>2}  {row['reader']}  {card}{image}")


COMMANDS = {
    "new": cmd_new,
    "show": cmd_show,
    "readerconf": cmd_readerconf,
    "serve": cmd_serve,
    "insert": cmd_card,
    "remove": cmd_card,
    "swap": cmd_card,
    "save": cmd_card,
    "status": cmd_status,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        COMMANDS[args.command](args)
    except (CliError, ValueError, ReaderConfError, BridgeError, ControlError) as e:
        print(f"token-sim: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        print(f"token-sim: {e.filename or 'file'}: {e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
