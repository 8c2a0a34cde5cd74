"""Verify a token by running the ESC client's Phone Home flow against it.

After a card reset (so the value is proven persistent), the token's issuer info is read as
ESC reads it (with ESC's bounded re-read), the Phone Home URL is resolved in ESC's order, the
ServiceInfo is fetched and parsed, and the prefs entries ESC would cache are built, along
with ESC 1.1's cache check and, given an existing ESC profile, what its cache would hide.
:func:`verify_token` then compares every field with what the issuer expects.

The flow is stricter than ESC in three places, and says so in ``esc_differences`` whenever
that changes the outcome: one ``cuid`` parameter whatever the URL holds, the HTTP status is
checked, and the URL elements of the ServiceInfo must each be one absolute URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum, unique
from typing import Any

from . import coolkey
from .errors import ProvisionError
from .iso7816 import select_by_name
from .phonehome._text import quote
from .phonehome.errors import FetchError, ServiceInfoError
from .phonehome.esc_profile import EscProfile, StaleCache, evaluate_cache
from .phonehome.fetch import FetchResult, fetch
from .phonehome.issuer_info import (
    READ_ATTEMPTS,
    READ_INTERVAL,
    IssuerInfo,
    IssuerInfoState,
    read_issuer_info,
)
from .phonehome.prefs import (
    CacheCheck,
    PrefsDialect,
    cache_check,
    esc11_name,
    esc_request_url,
    prefs_entries,
)
from .phonehome.request import request_url
from .phonehome.resolve import Resolution, UrlSource, resolve_phone_home_url
from .phonehome.serviceinfo import ServiceInfo, esc_service_info, parse_service_info
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


@unique
class ReadFailure(StrEnum):
    """What an issuer info that cannot be read at all means to the flow."""

    STOP = "stop"  # a failure: a burned token must be readable
    AS_EMPTY = "as-empty"  # ESC's own behaviour: go on as if the token held none


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """How the client side is run: the network and the ESC settings around the token.

    ``global_url`` and ``ignore_token`` are ESC's ``esc.global.phone.home.url`` and
    ``esc.ignore.key.issuer.info``; ``prompt`` is given only in interactive use. ``profile``
    is an existing ESC user profile to evaluate; ``dialect`` names the prefs entries.
    ``sleep`` waits between issuer-info reads (tests give one that does not).
    """

    connect_to: Mapping[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    timeout: float = 10.0
    ca_file: str | None = None
    global_url: str | None = None
    ignore_token: bool = False
    prompt: Callable[[], str | None] | None = None
    max_bytes: int = 64 * 1024
    max_redirects: int = 3
    dialect: PrefsDialect = PrefsDialect.RHCS
    profile: EscProfile | None = None
    read_attempts: int = READ_ATTEMPTS
    read_interval: float = READ_INTERVAL
    sleep: Callable[[float], None] = time.sleep
    read_failure: ReadFailure = ReadFailure.STOP


@dataclass(frozen=True, slots=True)
class Expected:
    """What a correctly burned token must resolve to."""

    url: str
    service_info: ServiceInfo


@dataclass(frozen=True, slots=True)
class Verification:
    """How far the client flow got and what it found.

    ``prefs`` are the entries ESC would cache, in ``dialect``; ``cache`` is ESC 1.1's cache
    check over the entries it would write itself. ``esc_differences`` says where ESC would
    have done otherwise, ``warnings`` what an operator should know about.
    """

    step: VerifyStep
    source: UrlSource | None = None
    url: str | None = None
    request_url: str | None = None
    mismatches: tuple[str, ...] = ()
    prefs: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None
    token_id: str | None = None
    issuer_info: IssuerInfo | None = None
    reads: int = 0
    status: int | None = None
    content_type: str | None = None
    service_info: ServiceInfo | None = None
    dialect: PrefsDialect = PrefsDialect.RHCS
    cache: CacheCheck | None = None
    stale_cache: StaleCache | None = None
    esc_differences: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

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
    """Reset the card, run the client flow, then compare what it found with ``expected``."""
    found = run_client_flow(transport, token_id, config)
    if found.step is not VerifyStep.COMPARED or found.service_info is None:
        return found

    mismatches = []
    if found.url != expected.url:
        where = found.source.name.lower() if found.source else "resolved"
        mismatches.append(
            f"Phone Home URL ({where}) is {found.url!r}, profile says {expected.url!r}"
        )
    mismatches += compare_service_info(expected.service_info, found.service_info)
    return replace(found, mismatches=tuple(mismatches))


def run_client_flow(transport: Transport, token_id: str, config: VerifyConfig) -> Verification:
    """Reset the card, then read, resolve, fetch and parse as ESC would; compare nothing."""
    flow = _Flow(token_id, config)
    try:
        transport.reset()
    except ProvisionError as exc:
        return flow.done(VerifyStep.READ, reason=str(exc))

    info = flow.read(transport)
    if info is None:
        return flow.done(VerifyStep.READ, reason=flow.read_error)

    resolution = resolve_phone_home_url(
        info,
        global_url=config.global_url,
        prompt=config.prompt,
        ignore_token=config.ignore_token,
    )
    flow.resolved(resolution)
    if resolution.url is None:
        return flow.done(VerifyStep.RESOLVE, reason=resolution.note)
    return flow.fetch_and_parse(resolution.url)


def read_token_id(transport: Transport) -> str:
    """The token id ESC would build, read the way the coolkey PKCS#11 module reads it.

    coolkey selects the card manager with an empty AID, ignores the answer, and reads the
    CPLC data (esc-phone-home.md §8); the id is the CUID's 20 lower-case hex digits.
    """
    transport.transmit(select_by_name(b"").encode())
    return coolkey.get_cuid(transport).token_id


class _Flow:
    """One run of the client flow: the Verification so far, and what ESC would do instead."""

    def __init__(self, token_id: str, config: VerifyConfig) -> None:
        self.token_id = token_id
        self.config = config
        # What the flow has found, the fields of the Verification it ends with; built once
        # at the end (a dataclass replace at every step costs more than the step).
        self.found: dict[str, Any] = {"token_id": token_id, "dialect": config.dialect}
        self.differences: list[str] = []
        self.warnings: list[str] = []
        self.read_error: str | None = None
        self.info: IssuerInfo | None = None

    def done(self, step: VerifyStep, *, reason: str | None = None) -> Verification:
        """The result, stopped at ``step``, with the profile's stale-cache report."""
        warnings = list(self.warnings)
        stale = None
        if self.config.profile is not None:
            stale = self._stale(self.found.get("service_info"))
            if stale.stale:
                warnings.append(
                    f"the existing ESC profile {stale.prefs_file} would hide some of the new "
                    "Phone Home data"
                )
        return Verification(
            **self.found,
            step=step,
            reason=reason,
            stale_cache=stale,
            esc_differences=tuple(self.differences),
            warnings=tuple(warnings),
        )

    def read(self, transport: Transport) -> IssuerInfo | None:
        """The issuer info as ESC ends up with it; None when the flow must stop."""

        def read_once() -> bytes:
            coolkey.select(transport)
            return coolkey.get_issuer_info(transport)

        config = self.config
        result = read_issuer_info(
            read_once,
            attempts=config.read_attempts,
            interval=config.read_interval,
            sleep=config.sleep,
        )
        self.found.update(reads=result.attempts, issuer_info=result.info)
        if result.error is not None:
            reads = f"{result.attempts} read{'s' if result.attempts > 1 else ''}"
            self.read_error = f"{result.error} (after {reads})"
            # With esc.ignore.key.issuer.info ESC does not even read the token.
            if config.read_failure is ReadFailure.STOP and not config.ignore_token:
                return None
            self.warnings.append(
                f"the issuer info could not be read: {self.read_error}; ESC goes on as if "
                "the token held none"
            )
        self.info = result.info
        return result.info

    def resolved(self, resolution: Resolution) -> None:
        self.found.update(source=resolution.source, url=resolution.url)
        if resolution.url and resolution.note:
            self.warnings.append(resolution.note)
        info = self.info
        if resolution.source is not UrlSource.TOKEN or info is None or resolution.url:
            return
        if info.esc_ignores:
            self.differences.append(
                "ESC 1.1 also leaves a value under 10 characters aside, but then goes on to "
                "esc.global.phone.home.url or the prompt; this flow stops at such a token"
            )
        else:
            self.differences.append(
                "ESC 1.1 does not check the issuer info: it would try to fetch this value"
            )

    def fetch_and_parse(self, url: str) -> Verification:
        try:
            target = request_url(url, self.token_id)
        except ValueError as exc:
            return self.done(VerifyStep.FETCH, reason=str(exc))
        self.found["request_url"] = target
        ours_vs_esc = esc_request_url(url, self.token_id)
        if ours_vs_esc != target:
            self.differences.append(
                f"ESC 1.1 would request {ours_vs_esc} (it appends ?cuid= whatever the URL "
                f"holds); this flow requests {target}, with exactly one cuid"
            )

        try:
            response = self._fetch(target)
        except ProvisionError as exc:
            return self.done(VerifyStep.FETCH, reason=str(exc))

        status, content_type = response.status, response.content_type
        self.found.update(status=status, content_type=content_type)
        if response.status != HTTP_OK:
            self._status_difference(response)
            return self.done(VerifyStep.FETCH, reason=f"{target} answered HTTP {response.status}")
        return self._parse(url, target, response)

    def _fetch(self, target: str) -> FetchResult:
        config = self.config
        try:
            return fetch(
                target,
                timeout=config.timeout,
                max_bytes=config.max_bytes,
                max_redirects=config.max_redirects,
                connect_to=config.connect_to,
                ca_file=config.ca_file,
            )
        except FetchError as exc:
            if exc.limit == "redirects":
                self.differences.append(
                    "ESC's XMLHttpRequest follows more redirects than this flow's limit of "
                    f"{config.max_redirects}"
                )
            elif exc.limit == "size":
                self.differences.append(
                    "ESC's XMLHttpRequest sets no size limit; this flow stops at "
                    f"{config.max_bytes} bytes"
                )
            raise

    def _status_difference(self, response: FetchResult) -> None:
        # ESC.js looks only at readyState and responseXML, never at the status (§2.3).
        seen = esc_service_info(response.body)
        if seen is None:
            self.differences.append(
                f"ESC 1.1 ignores the HTTP status, but would have failed on this "
                f"{response.status} page too: it holds no ServiceInfo ESC can read"
            )
            return
        self.differences.append(
            f"ESC 1.1 ignores the HTTP status: it would have used this {response.status} page "
            f"and cached IssuerName {quote(seen.issuer_name)}"
            + _cached_text(seen, self.token_id, None)
        )

    def _parse(self, url: str, target: str, response: FetchResult) -> Verification:
        try:
            served = parse_service_info(response.body, source=target)
        except ServiceInfoError as exc:
            seen = esc_service_info(response.body)
            if seen is not None:
                self.differences.append(
                    "ESC 1.1 would have used this document"
                    + _cached_text(seen, self.token_id, exc.element)
                )
            return self.done(VerifyStep.PARSE, reason=str(exc))

        self._untrimmed(response.body, served)
        dialect = self.config.dialect
        esc11 = prefs_entries(self.token_id, url, served, dialect=PrefsDialect.ESC11)
        check = cache_check(esc11, self.token_id)
        warning = check.warning()
        if warning:
            self.warnings.append(warning)
        logger.debug("token %s: ServiceInfo from %s parsed", self.token_id, target)
        prefs = prefs_entries(self.token_id, url, served, dialect=dialect)
        self.found.update(service_info=served, prefs=prefs, cache=check)
        return self.done(VerifyStep.COMPARED)

    def _untrimmed(self, body: bytes, served: ServiceInfo) -> None:
        """Note the values ESC would cache with the spaces this flow trims."""
        seen = esc_service_info(body)
        if seen is None:
            return
        ours = dict(served.services)
        for name, raw in seen.services:
            if ours.get(name) != raw:
                pref = esc11_name(name, self.token_id)
                trimmed = "absent" if name not in ours else quote(ours[name])
                self.differences.append(
                    f"ESC 1.1 caches element text untrimmed: {pref} would be {quote(raw)}; "
                    f"this flow takes it as {trimmed}"
                )

    def _stale(self, served: ServiceInfo | None) -> StaleCache:
        profile = self.config.profile
        assert profile is not None
        url = self.found.get("url")
        new_esc11 = new_rhcs = None
        if served is not None and url is not None:
            new_esc11 = prefs_entries(self.token_id, url, served, dialect=PrefsDialect.ESC11)
            new_rhcs = prefs_entries(self.token_id, url, served, dialect=PrefsDialect.RHCS)
        return evaluate_cache(
            profile,
            self.token_id,
            token_url=self._esc_token_url(),
            new_esc11=new_esc11,
            new_rhcs=new_rhcs,
        )

    def _esc_token_url(self) -> str | None:
        """The value ESC would take from the token and write to keyIssuerUrl-<id>."""
        info = self.info
        if self.config.ignore_token or info is None:
            return None
        if info.state is IssuerInfoState.VALID:
            return info.url
        if info.state is IssuerInfoState.INVALID and not info.esc_ignores:
            return "(the token's invalid issuer info)"
        return None


def _cached_text(seen: ServiceInfo, token_id: str, element: str | None) -> str:
    """ ", caching X-<id> = ..." for the element named, or for every element."""
    shown = [(n, v) for n, v in seen.services if element is None or n == element]
    if not shown:
        return ""
    parts = ", ".join(f"{esc11_name(n, token_id)} = {quote(v)}" for n, v in shown)
    return f", caching {parts}"


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
