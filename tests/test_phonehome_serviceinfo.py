"""Parsing and rendering ServiceInfo documents (esc-phone-home.md §2.4, §3.3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provision.phonehome import (
    ServiceInfo,
    ServiceInfoError,
    parse_service_info,
    render_service_info,
)

DATA = Path(__file__).parent / "data" / "serviceinfo"
SOURCE = "http://server.example.com:7888/cgi-bin/home/index.cgi?cuid=40906145c76224192d2b"

EXAMPLE_CORP = ServiceInfo(
    "Example Corp",
    (
        ("Operation", "http://server.example.com:7888/nk_service"),
        ("UI", "http://server.example.com:7888/cgi_bin/esc.cgi"),
        ("EnrolledTokenBrowserURL", "http://www.test.example.com"),
    ),
)


def parse(name: str) -> ServiceInfo:
    return parse_service_info((DATA / name).read_bytes(), source=SOURCE)


def refused(name_or_body: str | bytes) -> ServiceInfoError:
    body = name_or_body if isinstance(name_or_body, bytes) else (DATA / name_or_body).read_bytes()
    with pytest.raises(ServiceInfoError) as caught:
        parse_service_info(body, source=SOURCE)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"{SOURCE}: ")
    return caught.value


# -- the documented shapes --


def test_guide_example_is_refused_naming_operation() -> None:
    error = refused("guide-example.xml")

    assert error.element == "Operation"
    assert str(error) == (
        f"{SOURCE}: <Operation> holds "
        '"http://server.example.com:7888/nk_service ## TPS server URL", '
        "which is not one absolute URL"
    )


def test_example_corp() -> None:
    info = parse("example-corp.xml")

    assert info == EXAMPLE_CORP
    assert info.get("Operation") == "http://server.example.com:7888/nk_service"
    assert info.get("CAChainUI") is None


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("example-corp-other-issuer.xml", "IssuerName", "Other Corp"),
        (
            "example-corp-other-operation.xml",
            "Operation",
            "http://tps2.example.com:7889/nk_service",
        ),
        ("example-corp-no-ui.xml", "UI", None),
    ],
)
def test_bodies_that_differ_from_example_corp(name: str, field: str, value: str | None) -> None:
    info = parse(name)

    assert info != EXAMPLE_CORP
    got = info.issuer_name if field == "IssuerName" else info.get(field)
    assert got == value


def test_tps_phone_home_xml() -> None:
    assert parse("tps-phonehome.xml") == ServiceInfo(
        "FedoraProject",
        (
            ("Operation", "https://pki.example.com:8443/tps/tps"),
            ("EnrolledTokenBrowserURL", "http://fedoraproject.org"),
            ("TokenType", "userKey"),
        ),
    )


def test_tps_template_with_placeholders_is_refused() -> None:
    error = refused("tps-phonehome-template.xml")

    assert error.element == "Operation"
    assert '"https://[pki_hostname]:[pki_https_port]/tps/tps"' in str(error)


def test_legacy_cgi_with_declaration_and_commented_cachain() -> None:
    assert parse("legacy-cgi.xml") == ServiceInfo(
        "Fedora Project",
        (
            ("Operation", "http://tps.example.com:7888/nk_service"),
            ("UI", "http://tps.example.com:7888/cgi-bin/home/enroll.cgi"),
            ("EnrolledTokenBrowserURL", "http://fedoraproject.org"),
            ("TokenType", "userKey"),
        ),
    )


def test_empty_elements_are_absent_and_text_is_trimmed() -> None:
    assert parse("empty-elements.xml") == ServiceInfo(
        "Example Corp",
        (
            ("Operation", "http://server.example.com:7888/nk_service"),
            ("TokenType", "userKey"),
        ),
    )


# -- encodings --


@pytest.mark.parametrize("name", ["utf16-bom.xml", "latin1.xml", "utf8-bom.xml"])
def test_encodings(name: str) -> None:
    assert parse(name) == ServiceInfo(
        "Société Exemple", (("Operation", "http://server.example.com:7888/nk_service"),)
    )


# -- hostile and broken documents --


@pytest.mark.parametrize("name", ["billion-laughs.xml", "external-entity.xml", "external-dtd.xml"])
def test_dtds_are_refused(name: str) -> None:
    assert "refused: it declares a document type" in str(refused(name))


def test_malformed_names_line_and_column() -> None:
    # Line 4 is "    <Operation>http://server.example.com:7888/nk_service</Services>": the
    # "</" sits at columns 57-58 counting from 1, and expat points at the name after it.
    assert str(refused("malformed.xml")) == (
        f"{SOURCE}: malformed XML at line 4, column 59: mismatched tag"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "malformed XML at line 1, column 1: no element found"),
        (b"<ServiceInfo>", "malformed XML at line 1, column 14: no element found"),
        (b"<html><body>Service Unavailable</body></html>", "the root element is <html>"),
        (b"<ServiceInfo><Services/></ServiceInfo>", "there is no <IssuerName>"),
        (b"<ServiceInfo><IssuerName> </IssuerName><Services/></ServiceInfo>", "is empty"),
        (b"<ServiceInfo><IssuerName>Example Corp</IssuerName></ServiceInfo>", "no <Services>"),
    ],
)
def test_structure_errors(body: bytes, message: str) -> None:
    assert message in str(refused(body))


def doc(services: str) -> bytes:
    issuer = "<IssuerName>X</IssuerName>"
    return f"<ServiceInfo>{issuer}<Services>{services}</Services></ServiceInfo>".encode()


@pytest.mark.parametrize(
    ("services", "element"),
    [
        ("<UI>/cgi-bin/home/enroll.cgi</UI>", "UI"),
        ("<CAChainUI>ftp://tps.example.com/ca</CAChainUI>", "CAChainUI"),
        (
            "<EnrolledTokenURL>http://a.example.com http://b.example.com</EnrolledTokenURL>",
            "EnrolledTokenURL",
        ),
        (
            "<EnrolledTokenBrowserURL>www.test.example.com</EnrolledTokenBrowserURL>",
            "EnrolledTokenBrowserURL",
        ),
        ("<TokenType>user Key</TokenType>", "TokenType"),
        ("<Operation><a>http://x.example.com/</a></Operation>", "Operation"),
        ("<TokenType>userKey</TokenType><TokenType>soKey</TokenType>", "TokenType"),
    ],
)
def test_element_errors(services: str, element: str) -> None:
    error = refused(doc(services))

    assert error.element == element
    assert f"<{element}>" in str(error)


def test_first_services_and_other_elements_kept_in_order() -> None:
    body = (
        b"<ServiceInfo><IssuerName>Example Corp</IssuerName>"
        b"<Services><Custom> a value </Custom><Operation>https://h.example.com/tps</Operation>"
        b"</Services><Services><UI>http://ignored.example.com/</UI></Services></ServiceInfo>"
    )

    assert parse_service_info(body, source=SOURCE) == ServiceInfo(
        "Example Corp", (("Custom", "a value"), ("Operation", "https://h.example.com/tps"))
    )


def test_ipv6_urls_are_accepted() -> None:
    info = parse_service_info(
        doc("<Operation>http://[2001:db8::1]:7888/nk_service</Operation>"), source=SOURCE
    )

    assert info.get("Operation") == "http://[2001:db8::1]:7888/nk_service"


# -- rendering --


def test_render_example_corp() -> None:
    assert render_service_info(EXAMPLE_CORP) == (
        b"<?xml version='1.0' encoding='utf-8'?>\n"
        b"<ServiceInfo>\n"
        b"  <IssuerName>Example Corp</IssuerName>\n"
        b"  <Services>\n"
        b"    <Operation>http://server.example.com:7888/nk_service</Operation>\n"
        b"    <UI>http://server.example.com:7888/cgi_bin/esc.cgi</UI>\n"
        b"    <EnrolledTokenBrowserURL>http://www.test.example.com</EnrolledTokenBrowserURL>\n"
        b"  </Services>\n"
        b"</ServiceInfo>\n"
    )


def test_render_escapes() -> None:
    info = ServiceInfo("A & B <Corp>", (("Note", "x < y & z > w"),))

    rendered = render_service_info(info)

    assert b"<IssuerName>A &amp; B &lt;Corp&gt;</IssuerName>" in rendered
    assert b"<Note>x &lt; y &amp; z &gt; w</Note>" in rendered
    assert parse_service_info(rendered, source="rendered") == info


@pytest.mark.parametrize(
    "info",
    [ServiceInfo("nul \x00 here", ()), ServiceInfo("X", (("two words", "v"),))],
)
def test_render_refuses_what_xml_cannot_carry(info: ServiceInfo) -> None:
    with pytest.raises(ValueError):
        render_service_info(info)


_text = (
    st.text(
        st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
        min_size=1,
    )
    .map(str.strip)
    .filter(bool)
)
_name = st.from_regex(r"[A-Z][A-Za-z]{0,11}", fullmatch=True).filter(
    lambda n: (
        n
        not in {
            "Operation",
            "UI",
            "EnrolledTokenBrowserURL",
            "EnrolledTokenURL",
            "CAChainUI",
            "TokenType",
        }
    )
)


@given(issuer=_text, services=st.dictionaries(_name, _text, max_size=5))
def test_render_then_parse_round_trips(issuer: str, services: dict[str, str]) -> None:
    info = ServiceInfo(issuer, tuple(services.items()))

    assert parse_service_info(render_service_info(info), source="rendered") == info
