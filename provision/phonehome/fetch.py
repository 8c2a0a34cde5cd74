"""Fetch a Phone Home URL the way ESC's XMLHttpRequest does: a plain GET, redirects followed.

Only the standard library is used. ``connect_to`` plays the part of a hosts-file entry: the
TCP connection for a (host, port) goes elsewhere while the request, the Host header and the
TLS host-name check keep the real name.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

from ._text import url_problem
from .errors import FetchError

logger = logging.getLogger(__name__)

Address = tuple[str, int]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 8192


@dataclass(frozen=True)
class FetchResult:
    """The final answer: ``url`` as asked, ``final_url`` after redirects."""

    url: str
    final_url: str
    status: int
    content_type: str | None
    body: bytes


@dataclass(frozen=True)
class _Target:
    url: str
    tls: bool
    host: str
    port: int
    host_header: str
    path: str


@dataclass(frozen=True)
class _Options:
    timeout: float
    max_bytes: int
    connect_to: Mapping[Address, Address]
    tls: ssl.SSLContext | None


def fetch(
    url: str,
    *,
    timeout: float = 10.0,
    max_bytes: int = 64 * 1024,
    max_redirects: int = 3,
    connect_to: Mapping[Address, Address] | None = None,
    ca_file: str | None = None,
) -> FetchResult:
    """GET ``url``, following up to ``max_redirects`` redirects.

    ``timeout`` bounds connecting and each read; a whole exchange gets twice that. Any status is
    returned as it is (ESC never looks at it); a failure to get an answer raises FetchError.
    ``connect_to`` keys are (host, port) as in the URL, IPv6 hosts without brackets, the
    port filled in (80, 443) when the URL has none. ``ca_file`` replaces the system trust.
    """
    options = _Options(timeout, max_bytes, _normalise(connect_to or {}), None)
    visited = [url]
    current = url
    for _ in range(max_redirects + 1):
        target = _target(current, origin=url)
        if target.tls and options.tls is None:
            options = _with_tls(options, url, ca_file)
        status, headers, body = _exchange(target, options, origin=url)

        location = headers.get("location")
        if status not in _REDIRECTS or not location:
            return FetchResult(url, current, status, headers.get("content-type"), body)

        current = _next_url(current, location, visited, origin=url)
        visited.append(current)
        logger.debug("%s redirects to %s", target.url, current)

    raise FetchError(url, f"more than {max_redirects} redirects fetching {url}", limit="redirects")


def _normalise(connect_to: Mapping[Address, Address]) -> dict[Address, Address]:
    return {(host.strip("[]").lower(), port): to for (host, port), to in connect_to.items()}


def _with_tls(options: _Options, url: str, ca_file: str | None) -> _Options:
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as e:
        raise FetchError(url, f"cannot use CA file {ca_file} for {url}: {_reason(e, 0)}") from e
    return _Options(options.timeout, options.max_bytes, options.connect_to, context)


def _target(url: str, *, origin: str) -> _Target:
    problem = url_problem(url)
    if problem is not None:
        raise FetchError(origin, f"cannot fetch {_named(url, origin)}: {problem}")

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == _DEFAULT_PORTS[parts.scheme] else f"{shown}:{port}"
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    plain_url = urlunsplit(parts._replace(fragment=""))
    return _Target(plain_url, parts.scheme == "https", host, port, host_header, path)


def _next_url(current: str, location: str, visited: list[str], *, origin: str) -> str:
    # Location may be relative; the fragment is never sent.
    try:
        parts = urlsplit(urljoin(current, location.strip()))
    except ValueError as e:
        raise FetchError(origin, f"{current} redirects to an unusable URL: {e}") from e
    following = urlunsplit(parts._replace(fragment=""))

    if following in visited:
        raise FetchError(origin, f"redirect loop: {current} leads back to {following}")
    return following


def _exchange(
    target: _Target, options: _Options, *, origin: str
) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection: status, lower-cased headers, body."""
    address = options.connect_to.get((target.host, target.port), (target.host, target.port))
    tls = options.tls if target.tls else None
    connection = _Connection(address, options.timeout, tls, target.host)
    named = _named(target.url, origin)
    logger.debug("GET %s (connecting to %s port %d)", target.url, *address)

    # A server that trickles a byte at a time never trips the per-read socket timeout;
    # the watchdog shuts the socket down once the exchange has had twice that.
    deadline = None
    try:
        _connect(connection, options, named, origin)
        deadline = _WATCHDOG.watch(2 * options.timeout, connection.abort)
        return _get(connection, target, options, named, origin)
    except FetchError:
        if connection.aborted:
            late = f"{named} did not answer within {2 * options.timeout:g} s"
            raise FetchError(origin, late) from None
        raise
    finally:
        if deadline is not None:
            _WATCHDOG.cancel(deadline)
        connection.close()


class _Deadline:
    __slots__ = ("abort", "cancelled", "when")

    def __init__(self, when: float, abort: Callable[[], None]) -> None:
        self.when = when
        self.abort = abort
        self.cancelled = False

    def __lt__(self, other: _Deadline) -> bool:
        return self.when < other.when


class _Watchdog:
    """The deadlines of every exchange in progress, watched by one thread.

    A thread started for each fetch costs more than the fetch itself; this one sleeps
    until the earliest deadline and aborts that exchange if it is still going.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._heap: list[_Deadline] = []
        self._cancelled = 0
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float, abort: Callable[[], None]) -> _Deadline:
        """Call ``abort`` in ``seconds`` unless :meth:`cancel` comes first."""
        deadline = _Deadline(time.monotonic() + seconds, abort)
        with self._changed:
            heapq.heappush(self._heap, deadline)
            # Started on first use, and again in a child process: a fork keeps no threads.
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="fetch-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0] is deadline:
                self._changed.notify()
        return deadline

    def cancel(self, deadline: _Deadline) -> None:
        with self._changed:
            if deadline.cancelled:
                return
            deadline.cancelled = True
            self._cancelled += 1
            # Cancelled deadlines leave when they reach the top, or all at once when they
            # are most of the heap, so that it holds little more than the exchanges going on.
            if self._cancelled * 2 > len(self._heap):
                self._heap = [d for d in self._heap if not d.cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _run(self) -> None:
        while True:
            with self._changed:
                expired = self._next_expired()
            expired.abort()

    def _next_expired(self) -> _Deadline:
        while True:
            while self._heap and self._heap[0].cancelled:
                heapq.heappop(self._heap)
                self._cancelled -= 1
            if not self._heap:
                self._changed.wait()
                continue
            wait = self._heap[0].when - time.monotonic()
            if wait <= 0:
                return heapq.heappop(self._heap)
            self._changed.wait(wait)


_WATCHDOG = _Watchdog()


def _connect(connection: _Connection, options: _Options, named: str, origin: str) -> None:
    try:
        connection.connect()
    except (OSError, UnicodeError) as e:
        # UnicodeError: the idna codec refuses a host name label over 63 characters.
        reason = _reason(e, options.timeout)
        raise FetchError(origin, f"could not connect to {named}: {reason}") from e


def _get(
    connection: _Connection, target: _Target, options: _Options, named: str, origin: str
) -> tuple[int, dict[str, str], bytes]:
    try:
        connection.request("GET", target.path, headers=_headers(target))
        response = connection.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        body = _read_body(response, options, named, origin)
    except (OSError, http.client.HTTPException) as e:
        reason = _reason(e, options.timeout)
        raise FetchError(origin, f"no complete answer from {named}: {reason}") from e

    logger.debug("%s answered %d, %d bytes", target.url, response.status, len(body))
    return response.status, headers, body


def _headers(target: _Target) -> dict[str, str]:
    # An explicit Host makes http.client send the real name even through connect_to.
    # XXX: user:password@ in a URL is not sent as credentials, as a browser would.
    return {"Host": target.host_header, "Accept": "*/*", "Connection": "close"}


def _read_body(
    response: http.client.HTTPResponse, options: _Options, named: str, origin: str
) -> bytes:
    too_big = f"the answer from {named} is larger than {options.max_bytes} bytes"
    length = response.getheader("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > options.max_bytes:
        raise FetchError(origin, too_big, limit="size")

    # Each read has the socket timeout; the deadline stops a server that trickles.
    deadline = time.monotonic() + options.timeout
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(min(_CHUNK, options.max_bytes + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > options.max_bytes:
            raise FetchError(origin, too_big, limit="size")
        if time.monotonic() > deadline:
            late = f"{named} did not send its answer within {options.timeout:g} s"
            raise FetchError(origin, late)
    return b"".join(chunks)


def _named(url: str, origin: str) -> str:
    return url if url == origin else f"{url} (redirected from {origin})"


def _reason(error: BaseException, timeout: float) -> str:
    """A short reason for a socket, TLS or HTTP failure."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error.reason or error}"
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    if isinstance(error, socket.gaierror):
        return f"host name not found ({error.strerror})"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, http.client.BadStatusLine):
        return "the server did not answer in HTTP"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return " ".join(str(error).split()) or type(error).__name__


class _Connection(http.client.HTTPConnection):
    """An HTTP or HTTPS connection to ``address`` on behalf of ``server_hostname``."""

    # XXX: no proxy support; ESC's XMLHttpRequest would use the platform's proxy settings.

    def __init__(
        self,
        address: Address,
        timeout: float,
        tls: ssl.SSLContext | None,
        server_hostname: str,
    ) -> None:
        super().__init__(address[0], address[1], timeout=timeout)
        self._address = address
        self._tls = tls
        self._server_hostname = server_hostname
        self.aborted = False

    def abort(self) -> None:
        """Stop a stalled exchange from another thread: blocked reads return at once."""
        self.aborted = True
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def connect(self) -> None:
        sock = socket.create_connection(self._address, self.timeout)
        if self._tls is None:
            self.sock = sock
            return

        # SNI and the certificate check use the URL's host, not the connect_to address.
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self._server_hostname)
        except BaseException:
            sock.close()
            raise
