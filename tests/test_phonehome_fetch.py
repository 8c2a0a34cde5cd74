"""Fetching a Phone Home URL from servers on the loopback interface."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provision.phonehome import FetchError, PhoneHomeServer, fetch

BODY = b"<ServiceInfo><IssuerName>Example Corp</IssuerName><Services/></ServiceInfo>"
CUID = "40906145c76224192d2b"


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    length: bool = True


class _ScriptedServer(ThreadingHTTPServer):
    def __init__(self, answers: Mapping[str, Answer]) -> None:
        self.answers = answers
        self.hosts: list[str | None] = []
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)

    def server_bind(self) -> None:
        # Skip HTTPServer's getfqdn lookup.
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _ScriptedHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = cast(_ScriptedServer, self.server)
        server.hosts.append(self.headers.get("Host"))
        answer = server.answers.get(self.path, Answer(404, body=b"not found"))

        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        if answer.length:
            self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def scripted(
    answers: Mapping[str, Answer], tls: ssl.SSLContext | None = None
) -> Iterator[_ScriptedServer]:
    server = _ScriptedServer(answers)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def base(server: _ScriptedServer | PhoneHomeServer) -> str:
    port = server.port if isinstance(server, PhoneHomeServer) else server.server_address[1]
    return f"http://127.0.0.1:{port}"


def free_port() -> int:
    """A port nothing listens on (just released by the kernel)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- plain answers --


def test_status_content_type_and_body() -> None:
    with PhoneHomeServer({"/tps/phoneHome": BODY}) as server:
        url = f"{base(server)}/tps/phoneHome?cuid={CUID}"
        result = fetch(url)

    assert result.url == url
    assert result.final_url == url
    assert result.status == 200
    assert result.content_type == "application/xml"
    assert result.body == BODY


def test_error_status_is_returned_not_raised() -> None:
    with PhoneHomeServer({"/tps/phoneHome": BODY}) as server:
        result = fetch(f"{base(server)}/elsewhere")

    assert result.status == 404


def test_server_error_keeps_its_body() -> None:
    answers = {"/": Answer(500, (("Content-Type", "text/xml"),), b"<error/>")}
    with scripted(answers) as server:
        result = fetch(f"{base(server)}/")

    assert (result.status, result.content_type, result.body) == (500, "text/xml", b"<error/>")


def test_no_content_type() -> None:
    with scripted({"/": Answer(200, body=BODY)}) as server:
        assert fetch(f"{base(server)}/").content_type is None


# -- redirects --


def test_redirect_absolute_and_relative() -> None:
    with scripted({}) as server:
        server.answers = {
            "/a": Answer(302, (("Location", f"{base(server)}/b?x=1"),)),
            "/b?x=1": Answer(301, (("Location", "c"),)),
            "/c": Answer(307, (("Location", "/d#ignored"),)),
            "/d": Answer(200, body=BODY),
        }
        result = fetch(f"{base(server)}/a")

    assert result.url == f"{base(server)}/a"
    assert result.final_url == f"{base(server)}/d"
    assert result.body == BODY


def test_too_many_redirects() -> None:
    with scripted({}) as server:
        server.answers = {f"/{i}": Answer(302, (("Location", f"/{i + 1}"),)) for i in range(5)}

        with pytest.raises(FetchError, match="more than 3 redirects") as caught:
            fetch(f"{base(server)}/0")

    assert caught.value.url == f"{base(server)}/0"


def test_redirect_limit_is_a_parameter() -> None:
    with scripted({}) as server:
        server.answers = {
            "/0": Answer(302, (("Location", "/1"),)),
            "/1": Answer(200, body=BODY),
        }

        assert fetch(f"{base(server)}/0", max_redirects=1).status == 200
        with pytest.raises(FetchError, match="more than 0 redirects"):
            fetch(f"{base(server)}/0", max_redirects=0)


def test_redirect_loop() -> None:
    answers = {
        "/a": Answer(302, (("Location", "/b"),)),
        "/b": Answer(302, (("Location", "/a"),)),
    }
    with scripted(answers) as server, pytest.raises(FetchError, match="redirect loop") as caught:
        fetch(f"{base(server)}/a", max_redirects=10)

    assert f"{base(server)}/b leads back to {base(server)}/a" in str(caught.value)


def test_redirect_to_another_scheme() -> None:
    answers = {"/a": Answer(302, (("Location", "ftp://127.0.0.1/file"),))}
    with scripted(answers) as server, pytest.raises(FetchError) as caught:
        fetch(f"{base(server)}/a")

    assert str(caught.value).startswith("cannot fetch ftp://127.0.0.1/file (redirected from ")


def test_redirect_without_location_is_returned() -> None:
    with scripted({"/": Answer(302)}) as server:
        assert fetch(f"{base(server)}/").status == 302


# -- limits and failures --


def test_body_up_to_the_limit() -> None:
    with PhoneHomeServer({"/": b"x" * 1000}) as server:
        assert len(fetch(f"{base(server)}/", max_bytes=1000).body) == 1000


def test_oversized_body() -> None:
    body = b"x" * (64 * 1024 + 1)
    with PhoneHomeServer({"/": body}) as server, pytest.raises(FetchError, match="than 65536 b"):
        fetch(f"{base(server)}/")


def test_oversized_body_without_content_length() -> None:
    answers = {"/": Answer(body=b"x" * 1001, length=False)}
    with scripted(answers) as server, pytest.raises(FetchError, match="larger than 1000 bytes"):
        fetch(f"{base(server)}/", max_bytes=1000)


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/tps/phoneHome"

    with pytest.raises(FetchError) as caught:
        fetch(url)

    assert str(caught.value) == f"could not connect to {url}: connection refused"
    assert caught.value.url == url


def test_timeout_with_a_server_that_never_answers() -> None:
    # The kernel completes the TCP handshake from the backlog; nothing ever reads.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"

        with pytest.raises(FetchError) as caught:
            fetch(url, timeout=0.2)

    assert str(caught.value) == f"no complete answer from {url}: timed out after 0.2 s"


@pytest.mark.parametrize(
    "url",
    ["", "/tps/phoneHome", "ftp://127.0.0.1/", "http://", "http://127.0.0.1:7888/a b"],
)
def test_bad_url(url: str) -> None:
    with pytest.raises(FetchError, match="cannot fetch") as caught:
        fetch(url)

    assert "\n" not in str(caught.value)


def test_host_name_label_too_long() -> None:
    url = f"http://{'a' * 64}.example.com/"

    with pytest.raises(FetchError, match="could not connect to http://a"):
        fetch(url)


def test_redirected_failure_names_both_urls() -> None:
    dead = f"http://127.0.0.1:{free_port()}/gone"
    answers = {"/a": Answer(302, (("Location", dead),))}
    with scripted(answers) as server, pytest.raises(FetchError) as caught:
        fetch(f"{base(server)}/a")

    expected = (
        f"could not connect to {dead} (redirected from {base(server)}/a): connection refused"
    )
    assert str(caught.value) == expected


# -- addresses --


def test_ipv6_literal() -> None:
    try:
        server = PhoneHomeServer({"/tps/phoneHome": BODY}, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")

    with server:
        result = fetch(f"http://[::1]:{server.port}/tps/phoneHome?cuid={CUID}")

    assert result.body == BODY
    assert server.requests[0].host == f"[::1]:{server.port}"


def test_connect_to_keeps_the_host_header() -> None:
    with PhoneHomeServer({"/cgi-bin/home/index.cgi": BODY}) as server:
        connect_to = {("server.example.com", 7888): ("127.0.0.1", server.port)}
        url = f"http://server.example.com:7888/cgi-bin/home/index.cgi?cuid={CUID}"

        result = fetch(url, connect_to=connect_to)

    assert result.final_url == url
    assert result.body == BODY
    assert server.requests[0].host == "server.example.com:7888"
    assert server.requests[0].path == f"/cgi-bin/home/index.cgi?cuid={CUID}"


def test_connect_to_default_port() -> None:
    with PhoneHomeServer({"/": BODY}) as server:
        connect_to = {("Server.Example.com", 80): ("127.0.0.1", server.port)}

        fetch("http://server.example.com/", connect_to=connect_to)

    assert server.requests[0].host == "server.example.com"


# -- https --


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA and a server certificate for server.example.com, both on EC P-256."""
    directory = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Phone Home Test CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "server.example.com")])
    san = x509.SubjectAlternativeName([x509.DNSName("server.example.com")])
    cert = (
        _builder(name, ca_name, key.public_key(), now)
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(
        cert.public_bytes(pem)
        + key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.pem")
    return Pki(directory / "ca.pem", context)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def test_https_through_connect_to_checks_the_real_name(pki: Pki) -> None:
    with scripted({"/tps/phoneHome": Answer(body=BODY)}, pki.server_context) as server:
        connect_to = {("server.example.com", 8443): ("127.0.0.1", server.server_address[1])}

        result = fetch(
            "https://server.example.com:8443/tps/phoneHome",
            connect_to=connect_to,
            ca_file=str(pki.ca_file),
        )

    assert result.body == BODY
    assert server.hosts == ["server.example.com:8443"]


def test_https_certificate_for_another_name(pki: Pki) -> None:
    with scripted({"/": Answer(body=BODY)}, pki.server_context) as server:
        connect_to = {("tps.example.com", 443): ("127.0.0.1", server.server_address[1])}

        with pytest.raises(FetchError, match="certificate verification failed"):
            fetch("https://tps.example.com/", connect_to=connect_to, ca_file=str(pki.ca_file))


def test_https_untrusted_without_the_ca_file(pki: Pki) -> None:
    with scripted({"/": Answer(body=BODY)}, pki.server_context) as server:
        connect_to = {("server.example.com", 443): ("127.0.0.1", server.server_address[1])}

        with pytest.raises(FetchError) as caught:
            fetch("https://server.example.com/", connect_to=connect_to)

    assert str(caught.value).startswith("could not connect to https://server.example.com/: ")


def test_unreadable_ca_file(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="cannot use CA file"):
        fetch("https://server.example.com/", ca_file=str(tmp_path / "missing.pem"))


def test_https_redirect_to_plain_http(pki: Pki) -> None:
    with scripted({"/d": Answer(body=BODY)}) as plain:
        answers = {"/": Answer(302, (("Location", f"{base(plain)}/d"),))}
        with scripted(answers, pki.server_context) as secure:
            connect_to = {("server.example.com", 443): ("127.0.0.1", secure.server_address[1])}

            result = fetch(
                "https://server.example.com/", connect_to=connect_to, ca_file=str(pki.ca_file)
            )

    assert result.final_url == f"{base(plain)}/d"
    assert result.body == BODY
