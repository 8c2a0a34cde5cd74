"""A small Phone Home server: fixed ServiceInfo bodies on fixed paths.

It answers as TPS's ``/tps/phoneHome`` servlet does, one document whatever the query, as
``application/xml`` (esc-phone-home.md §3.3). It logs through this module's logger at DEBUG
and never writes to stderr; ``on_request`` hears of every request answered, for an access log.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/xml"
# How often the serving thread looks for a shutdown request; close() waits up to this long.
_POLL_INTERVAL = 0.02
_KEPT_REQUESTS = 1000


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server saw it: the path with its query, and the Host header."""

    path: str
    host: str | None


@dataclass(frozen=True)
class AccessRecord:
    """One answered request, for an access log."""

    time: datetime
    client: str
    request_line: str
    status: int
    size: int | None
    host: str | None
    user_agent: str | None

    def line(self) -> str:
        """The request in the Common Log Format, then the Host and User-Agent headers."""
        when = self.time.strftime("%d/%b/%Y:%H:%M:%S %z")
        size = "-" if self.size is None else str(self.size)
        return (
            f'{self.client} - - [{when}] "{_printable(self.request_line)}" {self.status} {size}'
            f' host="{_printable(self.host or "-")}" agent="{_printable(self.user_agent or "-")}"'
        )


def _printable(text: str) -> str:
    # A request line is the client's text: keep it to one printable line in a log.
    return "".join(c if " " <= c <= "~" and c != '"' else f"\\x{ord(c):02x}" for c in text)


AccessLog = Callable[[AccessRecord], None]


def route_path(url: str) -> str:
    """The path a Phone Home URL's requests arrive on, as this server matches them.

    http.server collapses a leading "//" in a request path, so the route does the same.
    """
    return "/" + (urlsplit(url).path or "/").lstrip("/")


class PhoneHomeServer:
    """Serve ``routes`` (path → ServiceInfo body) over HTTP on ``host``:``port``.

    The socket is bound on construction (port 0 picks a free one); serving starts with
    :meth:`start` or on entering the context, and stops on :meth:`close` or on leaving it.
    """

    def __init__(
        self,
        routes: Mapping[str, bytes],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: AccessLog | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        server_class = _Server6 if ":" in host else _Server4
        self._server = server_class((host, port), routes, on_request)
        if tls is not None:
            # The handshake happens on the first read, in the handler's own thread.
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def requests(self) -> tuple[ReceivedRequest, ...]:
        """The requests answered so far, oldest first."""
        with self._server.lock:
            return tuple(self._server.received)

    def start(self) -> None:
        """Serve in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                args=(_POLL_INTERVAL,),
                name="phone-home-server",
                daemon=True,
            )
            self._thread.start()

    def close(self) -> None:
        """Stop serving and release the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> PhoneHomeServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _Server4(ThreadingHTTPServer):
    # socketserver's backlog of 5 drops the SYNs of a many-reader line verifying at once,
    # and each dropped one waits out a 1 s retransmit.
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        routes: Mapping[str, bytes],
        on_request: AccessLog | None,
    ) -> None:
        self.routes = dict(routes)
        # Bounded, so a server that runs for a whole shift does not grow without end.
        self.received: deque[ReceivedRequest] = deque(maxlen=_KEPT_REQUESTS)
        self.lock = threading.Lock()
        self.on_request = on_request
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up with getfqdn, which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a client hanging up is not worth that.
        logger.debug("error serving %s: %s", client_address, sys.exc_info()[1])


class _Server6(_Server4):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "PhoneHome"
    _size: int | None = None

    def do_GET(self) -> None:
        server = cast(_Server4, self.server)
        with server.lock:
            server.received.append(ReceivedRequest(self.path, self.headers.get("Host")))

        # The query (ESC's ?cuid=) does not choose the document, as with TPS.
        body = server.routes.get(urlsplit(self.path).path)
        if body is None:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")
        else:
            self._send(200, CONTENT_TYPE, body)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self._size = len(body)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        super().log_request(code, size)
        on_request = cast(_Server4, self.server).on_request
        if on_request is None:
            return
        status = int(code) if isinstance(code, int) or code.isdigit() else 0
        headers = getattr(self, "headers", None)
        record = AccessRecord(
            datetime.now(UTC),
            self.address_string(),
            self.requestline,
            status,
            self._size,
            headers.get("Host") if headers else None,
            headers.get("User-Agent") if headers else None,
        )
        try:
            on_request(record)
        except Exception:
            # An access log that fails must not take the answer down with it.
            logger.debug("access log failed", exc_info=True)

    def log_message(self, format: str, *args: Any) -> None:
        if logger.isEnabledFor(logging.DEBUG):  # formatted only for a log that keeps it
            logger.debug("%s %s", self.address_string(), format % args)
