"""A small Phone Home server: fixed ServiceInfo bodies on fixed paths.

It stands in for TPS's ``/tps/phoneHome`` servlet, which serves one file whatever the query
(reference §3.3). It logs through this module's logger at DEBUG and never writes to stderr.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/xml"
# How often the serving thread looks for a shutdown request; close() waits up to this long.
_POLL_INTERVAL = 0.02


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server saw it: the path with its query, and the Host header."""

    path: str
    host: str | None


class PhoneHomeServer:
    """Serve ``routes`` (path → ServiceInfo body) over HTTP on ``host``:``port``.

    The socket is bound on construction (port 0 picks a free one); serving starts with
    :meth:`start` or on entering the context, and stops on :meth:`close` or on leaving it.
    """

    def __init__(
        self, routes: Mapping[str, bytes], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        server_class = _Server6 if ":" in host else _Server4
        self._server = server_class((host, port), routes)
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
    def __init__(self, address: tuple[str, int], routes: Mapping[str, bytes]) -> None:
        self.routes = dict(routes)
        self.received: list[ReceivedRequest] = []
        self.lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up with getfqdn, which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a client hanging up is not worth that.
        logger.debug("error serving %s", client_address, exc_info=True)


class _Server6(_Server4):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "PhoneHome"

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
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)
