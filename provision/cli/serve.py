"""``provision serve PROFILE...``: a Phone Home server for one issuer or many, until Ctrl-C.

Each profile's ServiceInfo is served on the path of its Phone Home URL, as TPS serves
``phoneHome.xml`` (``application/xml``, the same document whatever the ``cuid``). Every
request goes to the access log, standard output unless ``--access-log`` names a file.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from ._common import EXIT_OK, CliError, Subparsers

if TYPE_CHECKING:  # imported where used, so that building the parser stays quick
    from ..phonehome.server import AccessRecord, PhoneHomeServer
    from ..profile import Profile

DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 7888  # the port of the RHCS guide's examples
_TICK = 0.2  # how often the main thread looks at the clock and the stop flag


def register(commands: Subparsers) -> None:
    serve = commands.add_parser(
        "serve", help="serve the profiles' ServiceInfo as a TPS Phone Home server does"
    )
    serve.add_argument("profiles", nargs="+", type=Path, metavar="PROFILE")
    serve.add_argument(
        "--bind", default=DEFAULT_BIND, help=f"address to listen on (default {DEFAULT_BIND})"
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any)"
    )
    serve.add_argument(
        "--access-log", type=Path, metavar="FILE", help="append the access log to FILE"
    )
    serve.add_argument(
        "--stop-after", type=float, metavar="SECONDS", help="stop after SECONDS (for CI)"
    )
    serve.set_defaults(handler=cmd_serve)


@dataclass(frozen=True, slots=True)
class Route:
    """One path and the document served on it, with the profiles that phone home there."""

    path: str
    body: bytes
    profiles: tuple[Profile, ...]


def routes_for(profiles: Sequence[Profile]) -> dict[str, Route]:
    """One route per Phone Home path; two profiles may share a path only with one document."""
    from ..phonehome.server import route_path
    from ..phonehome.serviceinfo import render_service_info

    routes: dict[str, Route] = {}
    for profile in profiles:
        path = route_path(profile.phone_home_url)
        body = render_service_info(profile.expected_service_info())
        known = routes.get(path)
        if known is None:
            routes[path] = Route(path, body, (profile,))
        elif known.body == body:
            routes[path] = Route(path, body, (*known.profiles, profile))
        else:
            other = known.profiles[0]
            raise CliError(
                f"{other.path} and {profile.path} both phone home to the path {path} with "
                "different ServiceInfo; one server answers one document per path: give one "
                "of them another path, or serve it from a second server"
            )
    return routes


def cmd_serve(args: argparse.Namespace) -> int:
    from ..profile import load_profile

    if not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port}: expected 0 to 65535")
    if args.stop_after is not None and args.stop_after <= 0:
        raise CliError("--stop-after takes a number of seconds above 0")
    routes = routes_for([load_profile(path) for path in args.profiles])

    stop = threading.Event()
    with _access_log(args.access_log) as log, _stop_on_sigterm(stop):
        try:
            serve(
                routes,
                bind=args.bind,
                port=args.port,
                log=log,
                out=sys.stderr,
                stop=stop,
                stop_after=args.stop_after,
            )
        except KeyboardInterrupt:
            print("Stopped (Ctrl-C).", file=sys.stderr)
    return EXIT_OK


def serve(
    routes: dict[str, Route],
    *,
    bind: str,
    port: int,
    log: TextIO,
    out: TextIO,
    stop: threading.Event,
    stop_after: float | None = None,
    on_ready: Callable[[PhoneHomeServer], None] | None = None,
) -> None:
    """Serve ``routes`` until ``stop`` is set or ``stop_after`` seconds have passed.

    ``on_ready`` hears of the server once it answers (its port, when ``port`` was 0).
    """
    from ..phonehome.server import PhoneHomeServer

    lock = threading.Lock()

    def on_request(record: AccessRecord) -> None:
        with lock:
            print(record.line(), file=log, flush=True)

    bodies = {path: route.body for path, route in routes.items()}
    try:
        server = PhoneHomeServer(bodies, host=bind, port=port, on_request=on_request)
    except OSError as exc:
        raise CliError(f"cannot listen on {bind} port {port}: {exc.strerror or exc}") from None

    with server:
        _announce(routes, server, out)
        if on_ready is not None:
            on_ready(server)
        deadline = None if stop_after is None else time.monotonic() + stop_after
        while not stop.wait(_TICK):
            if deadline is not None and time.monotonic() >= deadline:
                break
    print("Stopped.", file=out, flush=True)


def _announce(routes: dict[str, Route], server: PhoneHomeServer, out: TextIO) -> None:
    host = f"[{server.host}]" if ":" in server.host else server.host
    count = sum(len(route.profiles) for route in routes.values())
    issuers = "issuer" if count == 1 else "issuers"
    print(f"Serving {count} {issuers} on http://{host}:{server.port} (Ctrl-C stops):", file=out)
    for route in routes.values():
        names = ", ".join(profile.name for profile in route.profiles)
        print(f"  {route.path}  {names}", file=out)
        for profile in route.profiles:
            for note in _notes(profile, server.port):
                print(f"    {note}", file=out)
    out.flush()


def _notes(profile: Profile, port: int) -> Iterator[str]:
    parts = urlsplit(profile.phone_home_url)
    wanted_host = parts.hostname or ""
    wanted_port = parts.port or (443 if parts.scheme == "https" else 80)
    if wanted_port != port:
        yield (
            f"tokens of {profile.name} phone home to {wanted_host}:{wanted_port}; this server "
            f"listens on port {port}: forward that port here"
        )
    # XXX: no TLS of its own; an https Phone Home URL needs a TLS front end.
    if parts.scheme == "https":
        yield f"{profile.name} uses https: this server speaks plain HTTP, put TLS in front"


@contextmanager
def _access_log(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:
        log = path.open("a", encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot open the access log {path}: {exc.strerror or exc}") from None
    with log:
        yield log


@contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM stops the server cleanly, as Ctrl-C does (only the main thread may listen)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
