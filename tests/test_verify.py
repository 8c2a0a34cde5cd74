"""The ESC client flow on virtual tokens: each branch of the resolution order, the request,
the status check, ServiceInfo cases, and where ESC 1.1 would have done otherwise."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest

from provision.phonehome import (
    EscProfile,
    IssuerInfoState,
    PhoneHomeServer,
    PrefsDialect,
    ServiceInfo,
    UrlSource,
)
from provision.transport import InProcessTransport
from provision.verify import (
    Expected,
    ReadFailure,
    VerifyConfig,
    VerifyStep,
    read_token_id,
    run_client_flow,
    verify_token,
)
from simulator.card import VirtualToken

DATA = Path(__file__).parent / "data" / "serviceinfo"
CUID = bytes.fromhex("40906145c76224192d2b")
TOKEN_ID = "40906145c76224192d2b"
URL = "http://server.example.com:7888/cgi-bin/home/index.cgi"
PATH = "/cgi-bin/home/index.cgi"
GLOBAL = "http://global.example.com:7888/cgi-bin/home/index.cgi"
EXAMPLE_CORP = ServiceInfo(
    "Example Corp",
    (
        ("Operation", "http://server.example.com:7888/nk_service"),
        ("UI", "http://server.example.com:7888/cgi_bin/esc.cgi"),
        ("EnrolledTokenBrowserURL", "http://www.test.example.com"),
    ),
)


def token(issuer_info: bytes = b"") -> VirtualToken:
    blank = VirtualToken.blank(CUID)
    return VirtualToken(
        model=blank.model,
        cplc=blank.cplc,
        kdd=blank.kdd,
        key_sets=blank.key_sets,
        issuer_info=issuer_info.ljust(224, b"\x00"),
    )


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


@contextmanager
def serving(body: bytes, path: str = PATH) -> Iterator[VerifyConfig]:
    """A Phone Home server for ``body``; the config sends both test hosts to it."""
    with PhoneHomeServer({path: body}) as server:
        local = (server.host, server.port)
        connect_to = {("server.example.com", 7888): local, ("global.example.com", 7888): local}
        yield VerifyConfig(connect_to=connect_to, timeout=2, sleep=Sleeps())


@pytest.fixture
def config() -> Iterator[VerifyConfig]:
    with serving((DATA / "example-corp.xml").read_bytes()) as running:
        yield running


def flow(card: Any, config: VerifyConfig) -> Any:
    return run_client_flow(InProcessTransport(card), TOKEN_ID, config)


# -- the resolution order -----------------------------------------------------------------


def test_the_token_first(config: VerifyConfig) -> None:
    result = flow(token(URL.encode()), replace(config, global_url=GLOBAL))

    assert result.step is VerifyStep.COMPARED and result.ok
    assert (result.source, result.url, result.reads) == (UrlSource.TOKEN, URL, 1)
    assert result.request_url == f"{URL}?cuid={TOKEN_ID}"
    assert result.service_info == EXAMPLE_CORP
    assert result.prefs[f"esc.key.{TOKEN_ID}.issuer.name"] == "Example Corp"
    assert result.esc_differences == ()


def test_no_issuer_info_then_the_global_url_after_three_reads(config: VerifyConfig) -> None:
    sleep = Sleeps()

    result = flow(token(), replace(config, global_url=GLOBAL, sleep=sleep))

    assert result.ok
    assert (result.source, result.url, result.reads) == (UrlSource.GLOBAL_PREFS, GLOBAL, 3)
    assert result.issuer_info.state is IssuerInfoState.EMPTY
    assert sleep.slept == [0.25, 0.25]


def test_then_the_prompt(config: VerifyConfig) -> None:
    asked: list[int] = []

    def prompt() -> str:
        asked.append(1)
        return URL

    result = flow(token(), replace(config, prompt=prompt))

    assert result.ok and asked == [1]
    assert result.source is UrlSource.PROMPT


def test_no_url_anywhere_is_a_failure_record(config: VerifyConfig) -> None:
    result = flow(token(), config)

    assert not result.ok
    assert result.step is VerifyStep.RESOLVE
    assert result.summary() == (
        "resolve Phone Home URL: no Phone Home URL on the token, in esc-prefs.js or from a prompt"
    )


def test_ignore_key_issuer_info(config: VerifyConfig) -> None:
    result = flow(token(URL.encode()), replace(config, global_url=GLOBAL, ignore_token=True))

    assert result.ok
    assert result.source is UrlSource.GLOBAL_PREFS
    assert result.warnings[0] == (
        "the token's issuer info was ignored (esc.ignore.key.issuer.info)"
    )


def test_invalid_issuer_info_is_never_fetched(config: VerifyConfig) -> None:
    result = flow(token(b"\xff" * 224), replace(config, global_url=GLOBAL))

    assert result.step is VerifyStep.RESOLVE
    assert result.request_url is None
    assert "every byte is 0xFF" in (result.reason or "")
    assert result.esc_differences == (
        "ESC 1.1 does not check the issuer info: it would try to fetch this value",
    )


def test_a_value_under_10_characters(config: VerifyConfig) -> None:
    result = flow(token(b"http://a/"), replace(config, global_url=GLOBAL))

    assert result.step is VerifyStep.RESOLVE
    assert result.reads == 3
    assert "goes on to esc.global.phone.home.url" in result.esc_differences[0]


class Flaky:
    """A token whose GET ISSUER INFO fails ``failures`` times with 6F00 first."""

    def __init__(self, card: VirtualToken, failures: int) -> None:
        self.card = card
        self.failures = failures

    def power_on(self) -> bytes:
        return self.card.power_on()

    def process(self, apdu: bytes) -> bytes:
        if apdu[:2] == b"\xb0\xf6" and self.failures:
            self.failures -= 1
            return b"\x6f\x00"
        return self.card.process(apdu)


def test_a_failed_read_is_read_again(config: VerifyConfig) -> None:
    result = flow(Flaky(token(URL.encode()), failures=2), config)

    assert result.ok
    assert result.reads == 3
    assert config.sleep.slept == [0.25, 0.25]  # type: ignore[attr-defined]


def test_a_token_that_cannot_be_read_fails_verification(config: VerifyConfig) -> None:
    result = flow(Flaky(token(URL.encode()), failures=3), replace(config, global_url=GLOBAL))

    assert result.step is VerifyStep.READ
    assert result.reason is not None
    assert result.reason.startswith("GET ISSUER INFO")
    assert result.reason.endswith("(after 3 reads)")


def test_as_esc_an_unreadable_token_has_no_issuer_info(config: VerifyConfig) -> None:
    cfg = replace(config, global_url=GLOBAL, read_failure=ReadFailure.AS_EMPTY)

    result = flow(Flaky(token(URL.encode()), failures=3), cfg)

    assert result.ok
    assert result.source is UrlSource.GLOBAL_PREFS
    assert "ESC goes on as if the token held none" in result.warnings[0]


# -- the request and the answer -----------------------------------------------------------


def test_one_cuid_where_esc_would_send_two(config: VerifyConfig) -> None:
    base = f"{URL}?site=7&cuid=0000"

    result = flow(token(base.encode()), config)

    assert result.request_url == f"{URL}?site=7&cuid={TOKEN_ID}"
    assert result.esc_differences == (
        f"ESC 1.1 would request {base}?cuid={TOKEN_ID} (it appends ?cuid= whatever the URL "
        f"holds); this flow requests {URL}?site=7&cuid={TOKEN_ID}, with exactly one cuid",
    )


class _Scripted(ThreadingHTTPServer):
    def __init__(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.status, self.body, self.headers = status, body, headers
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()


class _ScriptedHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = cast(_Scripted, self.server)
        self.send_response(server.status)
        for name, value in server.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(server.body)))
        self.end_headers()
        self.wfile.write(server.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def answering(
    status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> Iterator[VerifyConfig]:
    server = _Scripted(status, body, headers or {})
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        local = ("127.0.0.1", server.server_address[1])
        yield VerifyConfig(connect_to={("server.example.com", 7888): local}, timeout=2)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_an_error_status_esc_would_have_used() -> None:
    with answering(404, (DATA / "example-corp.xml").read_bytes()) as cfg:
        result = flow(token(URL.encode()), cfg)

    assert result.step is VerifyStep.FETCH
    assert result.status == 404
    assert result.reason == f"{URL}?cuid={TOKEN_ID} answered HTTP 404"
    assert result.esc_differences[0].startswith(
        "ESC 1.1 ignores the HTTP status: it would have used this 404 page and cached "
        f'IssuerName "Example Corp", caching Operation-{TOKEN_ID} = '
        '"http://server.example.com:7888/nk_service"'
    )


def test_an_error_page_esc_would_not_have_used_either() -> None:
    with answering(500, b"<html><body>Internal Server Error</body></html>") as cfg:
        result = flow(token(URL.encode()), cfg)

    assert result.step is VerifyStep.FETCH
    assert result.esc_differences == (
        "ESC 1.1 ignores the HTTP status, but would have failed on this 500 page too: it "
        "holds no ServiceInfo ESC can read",
    )


def test_a_huge_body() -> None:
    with answering(200, b"<ServiceInfo>" + b" " * 70_000 + b"</ServiceInfo>") as cfg:
        result = flow(token(URL.encode()), cfg)

    assert result.step is VerifyStep.FETCH
    assert "larger than 65536 bytes" in (result.reason or "")
    assert "sets no size limit" in result.esc_differences[0]


def test_a_redirect_loop() -> None:
    with answering(302, b"", {"Location": PATH}) as cfg:
        result = flow(token(URL.encode()), cfg)

    assert result.step is VerifyStep.FETCH
    assert "redirect loop" in (result.reason or "")


def test_an_unreachable_server_names_the_url() -> None:
    with serving(b"") as cfg:
        pass  # closed: its port refuses connections now
    result = flow(token(URL.encode()), cfg)

    assert result.step is VerifyStep.FETCH
    assert result.reason == (f"could not connect to {URL}?cuid={TOKEN_ID}: connection refused")


# -- ServiceInfo cases through the flow -----------------------------------------------------


def test_the_guide_example_is_refused_and_esc_would_have_cached_the_note() -> None:
    with serving((DATA / "guide-example.xml").read_bytes()) as cfg:
        result = flow(token(URL.encode()), cfg)

    assert result.step is VerifyStep.PARSE
    assert "<Operation> holds" in (result.reason or "")
    assert result.prefs == {}
    assert result.esc_differences == (
        f"ESC 1.1 would have used this document, caching Operation-{TOKEN_ID} = "
        '"http://server.example.com:7888/nk_service ## TPS server URL\\n        "',
    )


@pytest.mark.parametrize("name", ["billion-laughs.xml", "external-entity.xml", "external-dtd.xml"])
def test_hostile_documents_are_refused(name: str) -> None:
    with serving((DATA / name).read_bytes()) as cfg:
        result = flow(token(URL.encode()), cfg)

    assert result.step is VerifyStep.PARSE
    assert "declares a document type" in (result.reason or "")


def test_a_byte_order_mark() -> None:
    with serving((DATA / "utf8-bom.xml").read_bytes()) as cfg:
        result = flow(token(URL.encode()), cfg)

    assert result.ok
    assert result.service_info.issuer_name == "Société Exemple"


def test_empty_elements_are_absent_and_esc_would_cache_the_spaces() -> None:
    with serving((DATA / "empty-elements.xml").read_bytes()) as cfg:
        result = flow(token(URL.encode()), replace(cfg, dialect=PrefsDialect.ESC11))

    assert result.ok
    assert dict(result.service_info.services) == {
        "Operation": "http://server.example.com:7888/nk_service",
        "TokenType": "userKey",
    }
    assert f"UI-{TOKEN_ID}" not in result.prefs
    assert result.esc_differences == (
        f"ESC 1.1 caches element text untrimmed: Operation-{TOKEN_ID} would be "
        '"\\n            http://server.example.com:7888/nk_service\\n        "; this flow '
        'takes it as "http://server.example.com:7888/nk_service"',
        f'ESC 1.1 caches element text untrimmed: CAChainUI-{TOKEN_ID} would be "   "; '
        "this flow takes it as absent",
    )


# -- prefs, the cache check, an existing profile -----------------------------------------


def test_esc11_dialect_and_the_incomplete_cache_warning(config: VerifyConfig) -> None:
    result = flow(token(URL.encode()), replace(config, dialect=PrefsDialect.ESC11))

    assert result.prefs[f"keyIssuerUrl-{TOKEN_ID}"] == f"{URL}?cuid={TOKEN_ID}"
    assert result.cache is not None and result.cache.missing == ("CAChainUI",)
    assert "phone home at every insertion" in result.warnings[0]


def test_an_existing_profile_that_would_hide_the_new_data(config: VerifyConfig) -> None:
    old = {
        f"keyIssuerUrl-{TOKEN_ID}": f"http://old.example.com/home?cuid={TOKEN_ID}",
        f"keyIssuer-{TOKEN_ID}": "Old Corp",
        f"Operation-{TOKEN_ID}": "http://old.example.com/nk_service",
        f"UI-{TOKEN_ID}": "http://server.example.com:7888/cgi_bin/esc.cgi",
        f"CAChainUI-{TOKEN_ID}": "http://old.example.com/ca",
    }
    profile = EscProfile(Path("prefs.js"), old, True)

    result = flow(token(URL.encode()), replace(config, profile=profile))

    stale = result.stale_cache
    assert result.ok  # the token is right; the user's profile is not
    assert stale is not None and stale.uses_cache
    assert [(h.name, h.cached, h.new) for h in stale.hidden] == [
        (f"keyIssuer-{TOKEN_ID}", "Old Corp", "Example Corp"),
        (
            f"Operation-{TOKEN_ID}",
            "http://old.example.com/nk_service",
            "http://server.example.com:7888/nk_service",
        ),
        (f"CAChainUI-{TOKEN_ID}", "http://old.example.com/ca", None),
        (f"EnrolledTokenBrowserURL-{TOKEN_ID}", None, "http://www.test.example.com"),
    ]
    assert "the existing ESC profile prefs.js would hide" in result.warnings[-1]


def test_the_profile_is_evaluated_when_the_server_is_down() -> None:
    with serving(b"") as cfg:
        pass
    old = {f"keyIssuer-{TOKEN_ID}": "Old Corp"}

    result = flow(token(URL.encode()), replace(cfg, profile=EscProfile(Path("p"), old, True)))

    assert result.step is VerifyStep.FETCH
    assert result.stale_cache is not None
    assert not result.stale_cache.uses_cache
    assert result.stale_cache.hidden == ()


# -- against the issuer's expectations ---------------------------------------------------


def test_verify_token_compares_with_the_profile(config: VerifyConfig) -> None:
    other = ServiceInfo("Other Corp", EXAMPLE_CORP.services)

    result = verify_token(
        InProcessTransport(token(URL.encode())), TOKEN_ID, Expected(URL, other), config
    )

    assert result.step is VerifyStep.COMPARED and not result.ok
    assert result.mismatches == ("IssuerName: served 'Example Corp', profile says 'Other Corp'",)


def test_verify_token_names_a_url_from_elsewhere(config: VerifyConfig) -> None:
    result = verify_token(
        InProcessTransport(token()),
        TOKEN_ID,
        Expected(URL, EXAMPLE_CORP),
        replace(config, global_url=GLOBAL),
    )

    assert result.mismatches == (
        f"Phone Home URL (global_prefs) is {GLOBAL!r}, profile says {URL!r}",
    )


def test_the_token_id_as_coolkey_reads_it() -> None:
    assert read_token_id(InProcessTransport(token())) == TOKEN_ID
