"""``provision inspect``: what a token holds and what ESC would make of it; changes nothing."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import EXIT_OK, CliError, Subparsers

if TYPE_CHECKING:  # imported where used, so that building the parser stays quick
    from simulator.card import VirtualToken

    from ..profile import Profile
    from ..tokeninfo import TokenInspection
    from ..transport import Transport


def register(commands: Subparsers) -> None:
    inspect = commands.add_parser(
        "inspect", help="show a token's CUID, life cycle, issuer info and Phone Home lookup"
    )
    source = inspect.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--reader", action="append", metavar="PATTERN", help="PC/SC reader name glob, repeatable"
    )
    source.add_argument("--image", type=Path, metavar="FILE", help="a token-sim token image")
    inspect.add_argument(
        "--profile", type=Path, help="compare with this profile (and use its card manager AID)"
    )
    inspect.add_argument(
        "--esc-prefs",
        type=Path,
        metavar="FILE",
        help="ESC defaults file whose esc.global.phone.home.url the lookup may fall back on",
    )
    inspect.add_argument("--json", action="store_true", help="one JSON object per token")
    inspect.set_defaults(handler=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..phonehome.esc_prefs import read_global_phone_home_url
    from ..profile import load_profile
    from ..tokeninfo import CARD_MANAGER_AID, inspect_token

    profile = load_profile(args.profile) if args.profile else None
    global_url = read_global_phone_home_url(args.esc_prefs) if args.esc_prefs else None
    aid = profile.channel.card_manager_aid if profile else CARD_MANAGER_AID

    with _transports(args) as transports:
        for transport in transports:
            found = inspect_token(transport, card_manager_aid=aid, global_url=global_url)
            if args.json:
                print(json.dumps(_record(found, profile)))
            else:
                _print(found, profile)
    return EXIT_OK


@contextmanager
def _transports(args: argparse.Namespace) -> Iterator[list[Transport]]:
    from .. import pcsc
    from ..transport import InProcessTransport

    if args.image is not None:
        yield [InProcessTransport(_load_image(args.image), reader=str(args.image))]
        return

    transports: list[Transport] = []
    empty = []
    try:
        for reader in pcsc.open_readers(args.reader):
            transport = reader.wait_for_card(0)
            if transport is None:
                empty.append(reader.name)
            else:
                transports.append(transport)
        if not transports:
            raise CliError(f"no card in {', '.join(repr(n) for n in empty)}: insert a token")
        yield transports
    finally:
        for transport in transports:
            transport.close()


def _load_image(path: Path) -> VirtualToken:
    from simulator.image import load

    try:
        return load(path)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _phone_home(found: TokenInspection) -> str:
    resolution = found.resolution
    if resolution is None:
        return "unknown: the issuer info could not be read"
    if resolution.url is None:
        return f"ESC would not phone home: {resolution.note}"
    source = resolution.source.name.lower().replace("_", " ") if resolution.source else "?"
    return f"ESC would fetch {found.request_url} (URL from {source})"


def _issuer_info_text(found: TokenInspection) -> str:
    from ..phonehome.issuer_info import IssuerInfoState

    info = found.classified
    if info is None:
        return "unreadable"
    if info.state is IssuerInfoState.EMPTY:
        return "empty"
    if info.state is IssuerInfoState.INVALID:
        return f"invalid: {info.reason}"
    return str(info.url)


def _against(found: TokenInspection, profile: Profile | None) -> str | None:
    from ..coolkey import encode_issuer_info

    if profile is None or found.issuer_info is None:
        return None
    if found.issuer_info == encode_issuer_info(profile.phone_home_url):
        return f"holds the Phone Home URL of profile {profile.name}"
    if not any(found.issuer_info):
        return f"blank: profile {profile.name} would write its URL"
    return f"holds another issuer's value, not profile {profile.name}'s"


def _print(found: TokenInspection, profile: Profile | None) -> None:
    rows = [
        ("Reader", found.reader),
        ("ATR", found.atr.hex().upper() or "-"),
        ("CUID", str(found.cuid)),
        ("ESC token id", found.token_id),
        ("Life cycle", found.life_cycle.describe() if found.life_cycle else "unreadable"),
        ("Applet", _status_text(found)),
        ("Issuer info", _issuer_info_text(found)),
        ("Phone Home", _phone_home(found)),
    ]
    verdict = _against(found, profile)
    if verdict:
        rows.append(("Profile", verdict))
    rows += [("Problem", problem) for problem in found.problems]
    for label, value in rows:
        print(f"{label + ':':<14}{value}")
    print()


def _status_text(found: TokenInspection) -> str:
    status = found.status
    if status is None:
        return "no status"
    return (
        f"CoolKey applet {status.applet[0]}.{status.applet[1]}, protocol "
        f"{status.protocol[0]}.{status.protocol[1]}, {status.free_memory} of "
        f"{status.total_memory} bytes free, {status.pins} PIN(s), {status.keys} key(s)"
    )


def _record(found: TokenInspection, profile: Profile | None) -> dict[str, Any]:
    resolution = found.resolution
    return {
        "reader": found.reader,
        "atr": found.atr.hex().upper(),
        "cuid": str(found.cuid),
        "token_id": found.token_id,
        "life_cycle": f"{found.life_cycle.state:02X}" if found.life_cycle else None,
        "applet_version": (
            f"{found.status.applet[0]}.{found.status.applet[1]}" if found.status else None
        ),
        "issuer_info_state": found.classified.state.name.lower() if found.classified else None,
        "issuer_info": _issuer_info_text(found),
        "phone_home_url": resolution.url if resolution else None,
        "phone_home_source": (
            resolution.source.name.lower() if resolution and resolution.source else None
        ),
        "request_url": found.request_url,
        "note": resolution.note if resolution else None,
        "profile": _against(found, profile),
        "problems": list(found.problems),
    }
