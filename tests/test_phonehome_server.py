"""The local Phone Home server."""

from __future__ import annotations

import http.client
import logging
import socket

import pytest

from provision.phonehome import PhoneHomeServer, ReceivedRequest

BODY = b"<ServiceInfo><IssuerName>Example Corp</IssuerName><Services/></ServiceInfo>"


def get(server: PhoneHomeServer, path: str) -> tuple[int, str | None, bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=2)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def test_serves_routes_whatever_the_query() -> None:
    with PhoneHomeServer({"/tps/phoneHome": BODY}) as server:
        plain = get(server, "/tps/phoneHome")
        with_cuid = get(server, "/tps/phoneHome?cuid=40906145c76224192d2b")

    assert plain == (200, "application/xml", BODY)
    assert with_cuid == plain


def test_other_paths_are_404() -> None:
    with PhoneHomeServer({"/tps/phoneHome": BODY}) as server:
        status, _, _ = get(server, "/tps/phoneHome/extra")

    assert status == 404


def test_binds_loopback_on_a_free_port() -> None:
    with PhoneHomeServer({}) as server:
        assert server.host == "127.0.0.1"
        assert 0 < server.port < 65536


def test_records_requests() -> None:
    with PhoneHomeServer({"/": BODY}) as server:
        get(server, "/?cuid=1")
        get(server, "/missing")

    assert server.requests == (
        ReceivedRequest("/?cuid=1", f"127.0.0.1:{server.port}"),
        ReceivedRequest("/missing", f"127.0.0.1:{server.port}"),
    )


def test_closed_on_exit() -> None:
    with PhoneHomeServer({"/": BODY}) as server:
        port = server.port

    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def test_logs_at_debug_and_never_writes_to_stderr(
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the server's own output counts: handlers an earlier test left on the root
    # logger (a CLI run configures it) are not the server's.
    root = logging.getLogger()
    pytest_own = [h for h in root.handlers if type(h).__module__.startswith("_pytest")]
    monkeypatch.setattr(root, "handlers", pytest_own)
    debug = caplog.at_level(logging.DEBUG, logger="provision.phonehome.server")
    with debug, PhoneHomeServer({"/": BODY}) as server:
        get(server, "/missing")
        # A client that connects and leaves without a request.
        socket.create_connection((server.host, server.port), 1).close()
        get(server, "/")

    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    logged = [r for r in caplog.records if r.name == "provision.phonehome.server"]
    assert any('"GET /missing HTTP/1.1" 404' in r.getMessage() for r in logged)
    assert all(r.levelno == logging.DEBUG for r in logged)
