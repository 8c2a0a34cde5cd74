"""The prefs ESC caches, under the names of the RHCS guide, and the whole flow end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.phonehome import (
    IssuerInfoState,
    PhoneHomeServer,
    ServiceInfo,
    UrlSource,
    classify_issuer_info,
    fetch,
    parse_service_info,
    prefs_entries,
    request_url,
    resolve_phone_home_url,
)

DATA = Path(__file__).parent / "data" / "serviceinfo"
CUID = "40906145c76224192d2b"
PHONE_HOME = "http://server.example.com:7888/cgi-bin/home/index.cgi"

EXAMPLE_CORP = ServiceInfo(
    "Example Corp",
    (
        ("Operation", "http://server.example.com:7888/nk_service"),
        ("UI", "http://server.example.com:7888/cgi_bin/esc.cgi"),
        ("EnrolledTokenBrowserURL", "http://www.test.example.com"),
    ),
)

# The guide's values (section 4.4.3), without the trailing "?" it prints after two URLs.
EXPECTED = {
    "esc.key.40906145c76224192d2b.tps.url": "http://server.example.com:7888/nk_service",
    "esc.key.40906145c76224192d2b.tps.enrollment-ui.url": (
        "http://server.example.com:7888/cgi_bin/esc.cgi"
    ),
    "esc.key.40906145c76224192d2b.issuer.name": "Example Corp",
    "esc.key.40906145c76224192d2b.phone.home.url": (
        "http://server.example.com:7888/cgi-bin/home/index.cgi"
    ),
    "esc.key.40906145c76224192d2b.EnrolledTokenBrowserURL": "http://www.test.example.com",
}


def test_guide_values_in_the_guide_order() -> None:
    entries = prefs_entries(CUID, PHONE_HOME, EXAMPLE_CORP)

    assert entries == EXPECTED
    assert list(entries) == list(EXPECTED)


def test_the_cuid_query_is_left_out() -> None:
    entries = prefs_entries(CUID, f"{PHONE_HOME}?cuid={CUID}", EXAMPLE_CORP)

    assert entries["esc.key.40906145c76224192d2b.phone.home.url"] == PHONE_HOME


def test_absent_elements_give_no_entry() -> None:
    info = ServiceInfo("FedoraProject", (("Operation", "https://pki.example.com:8443/tps/tps"),))

    assert prefs_entries(CUID, PHONE_HOME, info) == {
        "esc.key.40906145c76224192d2b.tps.url": "https://pki.example.com:8443/tps/tps",
        "esc.key.40906145c76224192d2b.issuer.name": "FedoraProject",
        "esc.key.40906145c76224192d2b.phone.home.url": PHONE_HOME,
    }


def test_other_elements_keep_their_names_and_order() -> None:
    info = ServiceInfo(
        "Fedora Project",
        (
            ("TokenType", "userKey"),
            ("EnrolledTokenBrowserURL", "http://fedoraproject.org"),
            ("CAChainUI", "http://tps.example.com:7888/cgi-bin/home/cachain.cgi"),
            ("Operation", "http://tps.example.com:7888/nk_service"),
        ),
    )

    assert list(prefs_entries(CUID, PHONE_HOME, info).items()) == [
        ("esc.key.40906145c76224192d2b.tps.url", "http://tps.example.com:7888/nk_service"),
        ("esc.key.40906145c76224192d2b.issuer.name", "Fedora Project"),
        ("esc.key.40906145c76224192d2b.phone.home.url", PHONE_HOME),
        ("esc.key.40906145c76224192d2b.EnrolledTokenBrowserURL", "http://fedoraproject.org"),
        ("esc.key.40906145c76224192d2b.TokenType", "userKey"),
        (
            "esc.key.40906145c76224192d2b.CAChainUI",
            "http://tps.example.com:7888/cgi-bin/home/cachain.cgi",
        ),
    ]


def test_upper_case_token_id_is_refused() -> None:
    # TPS logs the CUID in upper case; ESC's key id is lower case.
    with pytest.raises(ValueError, match="lower case"):
        prefs_entries("40906145C76224192D2B", PHONE_HOME, EXAMPLE_CORP)


def test_end_to_end_from_issuer_info_to_prefs() -> None:
    issuer_info = PHONE_HOME.encode("ascii") + bytes(224 - len(PHONE_HOME))
    routes = {"/cgi-bin/home/index.cgi": (DATA / "example-corp.xml").read_bytes()}

    token = classify_issuer_info(issuer_info)
    resolution = resolve_phone_home_url(token, global_url=None, prompt=None)
    assert token.state is IssuerInfoState.VALID
    assert resolution.source is UrlSource.TOKEN
    assert resolution.url == PHONE_HOME

    with PhoneHomeServer(routes) as server:
        connect_to = {("server.example.com", 7888): ("127.0.0.1", server.port)}
        result = fetch(request_url(resolution.url, CUID), connect_to=connect_to)
    info = parse_service_info(result.body, source=result.final_url)

    assert server.requests[0].path == f"/cgi-bin/home/index.cgi?cuid={CUID}"
    assert server.requests[0].host == "server.example.com:7888"
    assert prefs_entries(CUID, result.url, info) == EXPECTED
