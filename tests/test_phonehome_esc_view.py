"""What ESC 1.1's own parsing would take from a body (ESC.js ``phoneHome``, esc-phone-home.md
§2.4): the model the verifier uses to say where ESC would have done otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.phonehome import ServiceInfo, esc_service_info

DATA = Path(__file__).parent / "data" / "serviceinfo"


def test_the_guide_example_with_its_notes_untrimmed() -> None:
    seen = esc_service_info((DATA / "guide-example.xml").read_bytes())

    assert seen == ServiceInfo(
        "Example Corp",
        (
            ("Operation", "http://server.example.com:7888/nk_service ## TPS server URL\n        "),
            (
                "UI",
                "http://server.example.com:7888/cgi_bin/esc.cgi   ## Optional\n"
                "Enrollment UI\n        ",
            ),
            (
                "EnrolledTokenBrowserURL",
                "http://www.test.url.com   ## Optional\nenrolled token url\n        ",
            ),
        ),
    )


def test_any_root_and_blank_elements_kept() -> None:
    body = (
        b"<Anything><IssuerName>X</IssuerName><Services>"
        b"<UI>  </UI><Empty/><Operation>http://a.example/</Operation>"
        b"<Operation>http://b.example/</Operation></Services></Anything>"
    )

    assert esc_service_info(body) == ServiceInfo(
        "X", (("UI", "  "), ("Operation", "http://b.example/"))
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<ServiceInfo><Services/></ServiceInfo>",
        b"<ServiceInfo><IssuerName/><Services/></ServiceInfo>",
        b"<ServiceInfo><IssuerName>X</IssuerName></ServiceInfo>",
        (DATA / "billion-laughs.xml").read_bytes(),
    ],
)
def test_bodies_esc_would_fail_on_or_that_are_not_modelled(body: bytes) -> None:
    assert esc_service_info(body) is None
