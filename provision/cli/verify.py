"""``provision verify``: run the ESC client flow alone on one token or a saved card image.

It prints what ESC would resolve and cache, where ESC would have done otherwise, and, given
an existing ESC profile, what that profile's cache would hide. ``--write-prefs DIR`` then
pre-seeds the user's ESC profile with the entries.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import ProvisionError
from ._common import (
    EXIT_OK,
    EXIT_TOKENS_FAILED,
    CliError,
    LazyChoices,
    Subparsers,
    prefs_dialects,
    seconds,
)

if TYPE_CHECKING:  # imported where used, so that building the parser stays quick
    from ..phonehome.esc_profile import EscProfile
    from ..transport import Transport
    from ..verify import Expected, Verification

SECURITY_URL = "esc.security.url"
CARD_WAIT_SECONDS = 10.0


def register(commands: Subparsers) -> None:
    verify = commands.add_parser(
        "verify", help="run the ESC Phone Home flow on one token and show what ESC would cache"
    )
    where = verify.add_mutually_exclusive_group(required=True)
    where.add_argument("--image", type=Path, metavar="FILE", help="a saved card image")
    where.add_argument("--reader", metavar="NAME", help="the PC/SC reader holding the token")
    verify.add_argument(
        "--esc-prefs", type=Path, metavar="FILE", help="ESC's defaults file (esc-prefs.js)"
    )
    verify.add_argument(
        "--esc-profile",
        type=Path,
        metavar="DIR",
        help="an existing ESC user profile: its settings apply and its cache is evaluated",
    )
    verify.add_argument(
        "--write-prefs",
        type=Path,
        metavar="DIR",
        help="pre-seed the ESC user profile in DIR with the entries ESC would cache",
    )
    verify.add_argument(
        "--prefs-dialect",
        choices=LazyChoices(prefs_dialects),
        metavar="DIALECT",
        help="pref names: rhcs (the RHCS guide's, default) or esc11 (ESC 1.1's own)",
    )
    verify.add_argument("--profile", type=Path, help="also compare with this issuer profile")
    verify.add_argument(
        "--connect-to",
        action="append",
        default=[],
        metavar="HOST:PORT=ADDR:PORT",
        help="send the connection for HOST:PORT to ADDR:PORT, as a hosts-file entry would",
    )
    verify.add_argument("--ca-file", metavar="FILE", help="CA bundle for https Phone Home URLs")
    verify.add_argument(
        "--timeout", type=seconds, default=10.0, help="HTTP timeout in seconds (0.1 to 600)"
    )
    verify.add_argument("--no-prompt", action="store_true", help="never ask for a URL")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(handler=cmd_verify)


def cmd_verify(args: argparse.Namespace) -> int:
    from ..phonehome.esc_prefs import GLOBAL_PHONE_HOME_URL, IGNORE_KEY_ISSUER_INFO
    from ..phonehome.esc_profile import load_esc_profile
    from ..phonehome.prefs import PrefsDialect
    from ..verify import ReadFailure, VerifyConfig, read_token_id, run_client_flow, verify_token

    profile = load_esc_profile(args.esc_profile) if args.esc_profile else None
    settings = _esc_settings(args.esc_prefs, profile)
    expected = _expected(args.profile) if args.profile else None
    config = VerifyConfig(
        connect_to=dict(parse_connect_to(item) for item in args.connect_to),
        timeout=args.timeout,
        ca_file=args.ca_file,
        global_url=settings.get(GLOBAL_PHONE_HOME_URL) or None,
        ignore_token=settings.get(IGNORE_KEY_ISSUER_INFO) == "yes",
        prompt=_prompt(args.no_prompt, settings),
        dialect=PrefsDialect(args.prefs_dialect or PrefsDialect.RHCS),
        profile=profile,
        read_failure=ReadFailure.AS_EMPTY,
    )

    with _token(args) as (transport, where):
        token_id = read_token_id(transport)
        if expected is None:
            result = run_client_flow(transport, token_id, config)
        else:
            result = verify_token(transport, token_id, expected, config)

    out = sys.stdout
    if args.json:
        print(json.dumps(as_dict(result, where)), file=out)
    else:
        print_result(result, where, out)
    if args.write_prefs:
        _write_prefs(result, args.write_prefs, sys.stderr if args.json else out)
    return EXIT_OK if result.ok else EXIT_TOKENS_FAILED


def parse_connect_to(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """``HOST:PORT=ADDR:PORT`` (IPv6 in brackets) as two (host, port) pairs."""
    source, equals, target = text.partition("=")
    if not equals:
        raise CliError(f"--connect-to {text!r}: expected HOST:PORT=ADDR:PORT")
    return _host_port(source, text), _host_port(target, text)


def _host_port(text: str, whole: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--connect-to {whole!r}: {text!r} is not HOST:PORT")
    return host.strip("[]").lower(), int(port)


def _esc_settings(esc_prefs: Path | None, profile: EscProfile | None) -> dict[str, str]:
    """ESC's settings: the defaults file, then the user's prefs.js over it (as Mozilla)."""
    from ..phonehome.esc_prefs import read_prefs

    settings = read_prefs(esc_prefs) if esc_prefs else {}
    if profile is not None:
        settings.update(profile.prefs)
    return settings


def _expected(path: Path) -> Expected:
    from ..profile import load_profile
    from ..verify import Expected

    profile = load_profile(path)
    return Expected(profile.phone_home_url, profile.expected_service_info())


def _prompt(disabled: bool, settings: Mapping[str, str]) -> Callable[[], str | None] | None:
    # ESC asks only in interactive use and never in security-officer mode (§2.2).
    if disabled or settings.get(SECURITY_URL) or not sys.stdin.isatty():
        return None

    def ask() -> str | None:
        try:
            return input("No Phone Home URL on the token or in esc-prefs.js. Phone Home URL: ")
        except EOFError:
            return None

    return ask


@contextmanager
def _token(args: argparse.Namespace) -> Iterator[tuple[Transport, str]]:
    if args.image is not None:
        yield _image_transport(args.image), f"image {args.image}"
        return

    from ..pcsc import open_readers  # only a run with a reader needs pyscard

    readers = open_readers([args.reader])
    if len(readers) != 1:
        names = ", ".join(repr(reader.name) for reader in readers)
        raise CliError(f"--reader {args.reader!r} matches several readers: {names}")
    reader = readers[0]
    transport = reader.wait_for_card(CARD_WAIT_SECONDS)
    if transport is None:
        raise CliError(f"no card in reader {reader.name!r} after {CARD_WAIT_SECONDS:g} s")
    try:
        yield transport, f"reader {reader.name}"
    finally:
        transport.close()
        close = getattr(reader, "close", None)
        if close is not None:
            close()


def _image_transport(path: Path) -> Transport:
    from simulator.image import load

    from ..transport import InProcessTransport

    try:
        token = load(path)
    except OSError as exc:
        raise CliError(f"cannot read the card image {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CliError(f"not a card image: {exc}") from None
    return InProcessTransport(token, reader=f"image {path.name}")


def print_result(result: Verification, where: str, out: TextIO) -> None:
    """What ESC would resolve and cache, for a person."""
    for line in result_lines(result, where):
        print(line, file=out)


def result_lines(result: Verification, where: str) -> list[str]:
    from ..phonehome.prefs_file import render_pref
    from ..verify import VerifyStep

    lines = [f"Token {result.token_id} ({where})"]
    lines += _flow_lines(result)
    if result.prefs:
        lines.append(f"ESC would cache ({result.dialect.value} names):")
        lines += [f"  {render_pref(name, value)}" for name, value in result.prefs.items()]
    if result.cache is not None and result.cache.complete:
        lines.append("ESC 1.1 cache check: complete; it would not phone home again")
    if result.esc_differences:
        lines.append("Where ESC 1.1 differs from this flow:")
        lines += [f"  - {text}" for text in result.esc_differences]
    lines += [f"warning: {text}" for text in result.warnings]
    if result.stale_cache is not None:
        lines.append("Existing ESC profile:")
        lines += [f"  {line}" for line in result.stale_cache.lines()]
    lines += [f"mismatch: {text}" for text in result.mismatches]
    if result.step is VerifyStep.COMPARED:
        lines.append("Result: ok" if result.ok else "Result: differs from the profile")
    else:
        lines.append(f"Result: stopped at {result.step.value}: {result.reason}")
    return lines


def _flow_lines(result: Verification) -> list[str]:
    from ..phonehome._text import quote

    lines = []
    if result.issuer_info is not None:
        info = result.issuer_info
        value = info.url if info.url else (info.reason or "none (all zero)")
        reads = f"{result.reads} read{'s' if result.reads != 1 else ''}"
        lines.append(f"  issuer info: {info.state.name.lower()}, {value} ({reads})")
    if result.url is not None and result.source is not None:
        lines.append(f"  Phone Home URL: {result.url} (from {_source(result.source.name)})")
    if result.request_url is not None:
        status = f" -> HTTP {result.status}" if result.status is not None else ""
        kind = f", {result.content_type}" if result.content_type else ""
        lines.append(f"  request: GET {result.request_url}{status}{kind}")
    if result.service_info is not None:
        served = result.service_info
        lines.append(f"  ServiceInfo: IssuerName {quote(served.issuer_name)}")
        lines += [f"    {name}: {quote(value)}" for name, value in served.services]
    return lines


def _source(name: str) -> str:
    """Where the Phone Home URL came from, in words."""
    from ..phonehome.esc_prefs import GLOBAL_PHONE_HOME_URL

    sources = {
        "TOKEN": "the token's issuer info",
        "GLOBAL_PREFS": GLOBAL_PHONE_HOME_URL,
        "PROMPT": "the prompt",
    }
    return sources[name]


def as_dict(result: Verification, where: str) -> dict[str, Any]:
    """The result as one JSON-able object."""
    return {
        "token_id": result.token_id,
        "token": where,
        "ok": result.ok,
        "step": result.step.value,
        "reason": result.reason,
        "issuer_info": _issuer_info(result),
        "reads": result.reads,
        "phone_home_source": result.source.name.lower() if result.source else None,
        "phone_home_url": result.url,
        "request_url": result.request_url,
        "status": result.status,
        "service_info": _service_info(result),
        "prefs_dialect": result.dialect.value,
        "prefs": dict(result.prefs),
        "cache_complete": result.cache.complete if result.cache else None,
        "esc_differences": list(result.esc_differences),
        "warnings": list(result.warnings),
        "mismatches": list(result.mismatches),
        "stale_cache": _stale_cache(result),
    }


def _issuer_info(result: Verification) -> dict[str, Any] | None:
    info = result.issuer_info
    if info is None:
        return None
    return {"state": info.state.name.lower(), "url": info.url, "reason": info.reason}


def _service_info(result: Verification) -> dict[str, Any] | None:
    served = result.service_info
    if served is None:
        return None
    return {"IssuerName": served.issuer_name, "Services": dict(served.services)}


def _stale_cache(result: Verification) -> dict[str, Any] | None:
    stale = result.stale_cache
    if stale is None:
        return None
    return {
        "prefs_file": str(stale.prefs_file),
        "uses_cache": stale.uses_cache,
        "hidden": [{"name": h.name, "cached": h.cached, "new": h.new} for h in stale.hidden],
        "notes": list(stale.notes),
    }


def _write_prefs(result: Verification, directory: Path, out: TextIO) -> None:
    from ..phonehome.esc_profile import find_prefs_js
    from ..phonehome.prefs import token_entries
    from ..phonehome.prefs_file import PrefsFile
    from ..verify import VerifyStep

    if result.step is not VerifyStep.COMPARED or not result.prefs:
        raise CliError(
            f"no prefs written to {directory}: the flow stopped at {result.step.value}",
            EXIT_TOKENS_FAILED,
        )
    if result.mismatches:
        raise CliError(
            f"no prefs written to {directory}: the ServiceInfo differs from the profile",
            EXIT_TOKENS_FAILED,
        )

    try:
        directory.mkdir(exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create {directory}: {exc.strerror or exc}") from None
    path = find_prefs_js(directory)
    prefs_file = PrefsFile.load(path)
    assert result.token_id is not None
    stale = token_entries(prefs_file.prefs, result.token_id, result.dialect)
    try:
        change = prefs_file.update(result.prefs, remove=stale)
    except ValueError as exc:
        raise ProvisionError(f"cannot write {path}: {exc}") from None
    if change.touched:
        prefs_file.save()
    print(
        f"Wrote {path}: {len(change.added)} added, {len(change.changed)} changed, "
        f"{len(change.removed)} stale removed, {len(change.unchanged)} already there",
        file=out,
    )
