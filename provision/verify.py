"""Verify a token by running the ESC client's Phone Home flow against it.

After a card reset (so the value is proven persistent), the token's issuer info is read as
ESC reads it, the Phone Home URL is resolved in ESC's order, the ServiceInfo is fetched and
parsed, every field is compared with what the issuer expects, and the prefs entries ESC
would cache are built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from . import coolkey
from .errors import ProvisionError
from .phonehome.fetch import fetch
from .phonehome.issuer_info import classify_issuer_info
from .phonehome.prefs import prefs_entries
from .phonehome.request import request_url
from .phonehome.resolve import UrlSource, resolve_phone_home_url
from .phonehome.serviceinfo import ServiceInfo, parse_service_info
from .transport import Transport

logger = logging.getLogger(__name__)

HTTP_OK = 200


class VerifyStep(StrEnum):
    """Where verification stopped; ``COMPARED`` means it ran to the end."""

    READ = "read issuer info"
    RESOLVE = "resolve Phone Home URL"
    FETCH = "fetch ServiceInfo"
    PARSE = "parse ServiceInfo"
    COMPARED = "compare"


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """How the client side is run: the network and the ESC settings around the token."""

    connect_to: Mapping[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    timeout: float = 10.0
    ca_file: str | None = None
    global_url: str | None = None
    ignore_token: bool = False
    prompt: Callable[[], str | None] | None = None


@dataclass(frozen=True, slots=True)
class Expected:
    """What a correctly burned token must resolve to."""

    url: str
    service_info: ServiceInfo


@dataclass(frozen=True, slots=True)
class Verification:
    step: VerifyStep
    source: UrlSource | None = None
    url: str | None = None
    request_url: str | None = None
    mismatches: tuple[str, ...] = ()
    prefs: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.step is VerifyStep.COMPARED and not self.mismatches

    def summary(self) -> str:
        """One line for a report: the reason, or the differences found."""
        if self.reason:
            return f"{self.step.value}: {self.reason}"
        return "; ".join(self.mismatches)


def verify_token(
    transport: Transport, token_id: str, expected: Expected, config: VerifyConfig
) -> Verification:
    """Reset the card, then resolve, fetch, parse and compare as ESC would."""
    try:
        transport.reset()
        coolkey.select(transport)
        raw = coolkey.get_issuer_info(transport)
    except ProvisionError as exc:
        return Verification(VerifyStep.READ, reason=str(exc))

    resolution = resolve_phone_home_url(
        classify_issuer_info(raw),
        global_url=config.global_url,
        prompt=config.prompt,
        ignore_token=config.ignore_token,
    )
    if resolution.url is None:
        return Verification(VerifyStep.RESOLVE, reason=resolution.note)
    return _fetch_and_compare(resolution.url, resolution.source, token_id, expected, config)


def _fetch_and_compare(
    url: str,
    source: UrlSource | None,
    token_id: str,
    expected: Expected,
    config: VerifyConfig,
) -> Verification:
    mismatches = []
    if url != expected.url:
        where = source.name.lower() if source else "resolved"
        mismatches.append(f"Phone Home URL ({where}) is {url!r}, profile says {expected.url!r}")

    target = request_url(url, token_id)
    base = Verification(VerifyStep.FETCH, source, url, target)
    try:
        response = fetch(
            target, timeout=config.timeout, connect_to=config.connect_to, ca_file=config.ca_file
        )
    except ProvisionError as exc:
        return replace(base, reason=str(exc))
    if response.status != HTTP_OK:
        # ESC itself never looks at the status; a page it would still parse is refused here.
        return replace(base, reason=f"{target} answered HTTP {response.status}")

    try:
        served = parse_service_info(response.body, source=target)
    except ProvisionError as exc:
        return replace(base, step=VerifyStep.PARSE, reason=str(exc))

    mismatches += compare_service_info(expected.service_info, served)
    logger.debug("token %s: ServiceInfo from %s compared", token_id, target)
    return replace(
        base,
        step=VerifyStep.COMPARED,
        mismatches=tuple(mismatches),
        prefs=prefs_entries(token_id, url, served),
    )


def compare_service_info(expected: ServiceInfo, served: ServiceInfo) -> list[str]:
    """Every difference between the ServiceInfo a profile expects and the one served."""
    found = []
    if served.issuer_name != expected.issuer_name:
        found.append(
            f"IssuerName: served {served.issuer_name!r}, profile says {expected.issuer_name!r}"
        )
    served_names = {name for name, _ in served.services}
    for name, value in expected.services:
        got = served.get(name)
        if got is None:
            found.append(f"{name}: missing from the ServiceInfo, profile says {value!r}")
        elif got != value:
            found.append(f"{name}: served {got!r}, profile says {value!r}")
    expected_names = {name for name, _ in expected.services}
    for name in sorted(served_names - expected_names):
        found.append(f"{name}: served {served.get(name)!r}, which the profile does not list")
    return found
