"""``provision serve``: one path per profile, answers as TPS gives them, an access log."""

from __future__ import annotations

import http.client
import io
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision import cli
from provision.cli._common import CliError
from provision.cli.serve import Route, routes_for, serve
from provision.phonehome import PhoneHomeServer, parse_service_info
from provision.profile import load_profile
from simulator import image
from simulator.card import VirtualToken

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "profiles" / "example-corp.yaml"
UNITS = Path(__file__).parent / "data" / "units" / "units"
EXPECTED_XML = (
    Path(__file__).parent / "data" / "export" / "example-corp.phoneHome.xml"
).read_bytes()
CUID = "40906145c76224192d2b"
ACCESS_LINE = re.compile(
    r"127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "
    r'"GET (?P<path>\S+) HTTP/1\.1" (?P<status>\d{3}) (?P<size>\d+|-) '
    r'host="(?P<host>[^"]*)" agent="(?P<agent>[^"]*)"'
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def get(port: int, path: str, host: str | None = None) -> tuple[int, str | None, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Host": host} if host else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def test_one_route_per_profile_path() -> None:
    profiles = [load_profile(EXAMPLE), load_profile(UNITS / "engineering.yaml")]

    routes = routes_for(profiles)

    assert list(routes) == ["/cgi-bin/home/index.cgi", "/tps/phoneHome"]
    assert routes["/cgi-bin/home/index.cgi"].body == EXPECTED_XML
    assert [p.name for p in routes["/tps/phoneHome"].profiles] == ["example-engineering"]


def test_one_path_two_documents_is_refused() -> None:
    sales = load_profile(UNITS / "sales.yaml")  # also on /cgi-bin/home/index.cgi

    with pytest.raises(CliError) as caught:
        routes_for([load_profile(EXAMPLE), sales])

    assert str(caught.value).startswith(
        f"{EXAMPLE} and {sales.path} both phone home to the path /cgi-bin/home/index.cgi "
        "with different ServiceInfo"
    )


def test_the_same_document_twice_is_one_route() -> None:
    routes = routes_for([load_profile(EXAMPLE), load_profile(EXAMPLE)])

    assert len(routes["/cgi-bin/home/index.cgi"].profiles) == 2


class Running:
    """``serve`` in a thread on a free port, with its access log and output captured."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.log, self.out = io.StringIO(), io.StringIO()
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.port = 0

        def on_ready(server: PhoneHomeServer) -> None:
            self.port = server.port
            self.ready.set()

        self.thread = threading.Thread(
            target=serve,
            args=(routes,),
            kwargs={
                "bind": "127.0.0.1",
                "port": 0,
                "log": self.log,
                "out": self.out,
                "stop": self.stop,
                "on_ready": on_ready,
            },
            daemon=True,
        )

    def __enter__(self) -> Running:
        self.thread.start()
        assert self.ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()


def test_two_issuers_answered_as_tps_does() -> None:
    profiles = [load_profile(EXAMPLE), load_profile(UNITS / "engineering.yaml")]

    with Running(routes_for(profiles)) as running:
        corp = get(running.port, f"/cgi-bin/home/index.cgi?cuid={CUID}", "server.example.com:7888")
        eng = get(running.port, f"/tps/phoneHome?cuid={CUID}")
        missing = get(running.port, "/nothing/here")

    assert corp == (200, "application/xml", EXPECTED_XML)
    assert eng[:2] == (200, "application/xml")
    assert parse_service_info(eng[2], source="eng").issuer_name == "Example Corp Engineering"
    assert missing[0] == 404

    lines = running.log.getvalue().splitlines()
    matches = [ACCESS_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    assert [(m["path"], m["status"], m["host"]) for m in matches if m] == [
        (f"/cgi-bin/home/index.cgi?cuid={CUID}", "200", "server.example.com:7888"),
        (f"/tps/phoneHome?cuid={CUID}", "200", f"127.0.0.1:{running.port}"),
        ("/nothing/here", "404", f"127.0.0.1:{running.port}"),
    ]
    assert matches[0] is not None and matches[0]["size"] == str(len(EXPECTED_XML))

    out = running.out.getvalue()
    assert f"Serving 2 issuers on http://127.0.0.1:{running.port} (Ctrl-C stops):" in out
    assert "  /cgi-bin/home/index.cgi  example-corp" in out
    assert "example-engineering uses https" in out
    assert out.endswith("Stopped.\n")


def test_a_hostile_request_line_stays_one_log_line() -> None:
    running = Running(routes_for([load_profile(EXAMPLE)]))
    with running, socket.create_connection(("127.0.0.1", running.port), 5) as sock:
        sock.sendall(b'GET /a"b\x1b[31m HTTP/1.1\r\nHost: x\r\n\r\n')
        sock.recv(4096)

    line = running.log.getvalue()
    assert line.count("\n") == 1
    assert '"GET /a\\x22b\\x1b[31m HTTP/1.1" 404' in line


def test_the_command_runs_until_interrupted(tmp_path: Path) -> None:
    run = subprocess.Popen(
        [sys.executable, "-m", "provision", "serve", str(EXAMPLE), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert run.stderr is not None
        first = run.stderr.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", first).group(1))  # type: ignore[union-attr]
        status, _, body = get(port, f"/cgi-bin/home/index.cgi?cuid={CUID}")
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=10)
    finally:
        run.kill()
        run.wait(5)

    assert (status, body) == (200, EXPECTED_XML)
    assert run.returncode == 0
    assert ACCESS_LINE.fullmatch(out.splitlines()[0])
    assert "Traceback" not in err
    assert "Stopped" in err


def test_stop_after_for_ci(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "access.log"

    status = cli.main(
        ["serve", str(EXAMPLE), "--port", "0", "--stop-after", "0.3", "--access-log", str(log)]
    )

    assert status == 0
    assert log.exists() and log.read_text() == ""
    assert "Stopped." in capsys.readouterr().err


def test_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        status = cli.main(["serve", str(EXAMPLE), "--port", str(port), "--stop-after", "1"])

    assert status == 2
    assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" in (
        capsys.readouterr().err
    )


def test_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", str(EXAMPLE), "--port", "70000"]) == 2
    assert "expected 0 to 65535" in capsys.readouterr().err


def test_a_token_verifies_against_the_served_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank = VirtualToken.blank(bytes.fromhex(CUID))
    url = b"http://server.example.com:7888/cgi-bin/home/index.cgi"
    token = VirtualToken(
        model=blank.model,
        cplc=blank.cplc,
        kdd=blank.kdd,
        key_sets=blank.key_sets,
        issuer_info=url.ljust(224, b"\x00"),
    )
    image.save(token, tmp_path / "card.json")

    with Running(routes_for([load_profile(EXAMPLE)])) as running:
        status = cli.main(
            [
                "verify",
                "--image",
                str(tmp_path / "card.json"),
                "--connect-to",
                f"server.example.com:7888=127.0.0.1:{running.port}",
                "--profile",
                str(EXAMPLE),
            ]
        )

    assert status == 0
    assert capsys.readouterr().out.splitlines()[-1] == "Result: ok"
    assert f"/cgi-bin/home/index.cgi?cuid={CUID}" in running.log.getvalue()
