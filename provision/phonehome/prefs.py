"""The per-token prefs entries ESC caches after a successful Phone Home, in two dialects.

- ``rhcs``: the names the RHCS documentation lists (``esc.key.<id>.tps.url``, ...). The default.
- ``esc11``: the names ESC 1.1.0's ``ESC.js`` writes: ``<Element>-<id>`` for every element
  of ``<Services>``, ``keyIssuer-<id>`` for the issuer name, ``keyIssuerUrl-<id>`` for the
  request URL with its ``cuid`` query, and ``esc.token.browser.established`` once an
  ``EnrolledTokenBrowserURL`` is cached.

Reference §6 explains why both exist; which one a given ESC build reads is not known, so both
can be written. The cache check (:func:`cache_check`) is ESC 1.1's ``IsPhoneHomeCached``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum, unique

from ._text import check_token_id
from .request import request_url, strip_cuid
from .serviceinfo import ServiceInfo

# ESC.js constants (esc-phone-home.md §2.4): the prefs outside <Services>.
KEY_ISSUER = "keyIssuer"
KEY_ISSUER_URL = "keyIssuerUrl"
BROWSER_ESTABLISHED = "esc.token.browser.established"

# IsPhoneHomeCached needs all five non-empty (esc-phone-home.md §2.2, ESC 1.1.0-12). Other versions
# of ESC.js read UI without testing it and never look at CAChainUI: they test only three.
CACHE_ENTRIES = (KEY_ISSUER_URL, KEY_ISSUER, "Operation", "UI", "CAChainUI")
SHORT_CACHE_ENTRIES = (KEY_ISSUER_URL, KEY_ISSUER, "Operation")


@unique
class PrefsDialect(StrEnum):
    """Which names the per-token prefs get."""

    RHCS = "rhcs"
    ESC11 = "esc11"


# Services elements with a documented pref name of their own, in the documentation's order.
_NAMED = {
    "Operation": "tps.url",
    "UI": "tps.enrollment-ui.url",
    "EnrolledTokenBrowserURL": "EnrolledTokenBrowserURL",
}


def prefs_entries(
    token_id: str,
    phone_home_url: str,
    info: ServiceInfo,
    *,
    dialect: PrefsDialect = PrefsDialect.RHCS,
) -> dict[str, str]:
    """The prefs ESC would cache for ``token_id``, in the dialect's order.

    ``phone_home_url`` is the URL as read from the token (or the global default), with or
    without a ``cuid`` parameter. Elements absent from ``info`` give no entry.
    """
    check_token_id(token_id)
    if dialect is PrefsDialect.ESC11:
        return _esc11_entries(token_id, phone_home_url, info)
    return _rhcs_entries(token_id, phone_home_url, info)


def _rhcs_entries(token_id: str, phone_home_url: str, info: ServiceInfo) -> dict[str, str]:
    """The guide's names; its ``phone.home.url`` is the URL without the ``cuid`` query.

    Elements without a documented name give ``esc.key.<id>.<Element>``, in document order.
    """
    prefix = f"esc.key.{token_id}."
    entries: dict[str, str] = {}
    for element in ("Operation", "UI"):
        _put(entries, prefix + _NAMED[element], info.get(element))
    entries[prefix + "issuer.name"] = info.issuer_name
    entries[prefix + "phone.home.url"] = strip_cuid(phone_home_url)
    _put(entries, prefix + _NAMED["EnrolledTokenBrowserURL"], info.get("EnrolledTokenBrowserURL"))

    for name, value in info.services:
        if name not in _NAMED:
            entries[prefix + name] = value
    return entries


def _esc11_entries(token_id: str, phone_home_url: str, info: ServiceInfo) -> dict[str, str]:
    """In the order ESC.js ``phoneHome`` writes them, with the values that stand at the end.

    ESC writes ``keyIssuerUrl`` first (the token's value) and again last (the request URL),
    so its final value is the request URL. An element named like one of ESC's own prefs
    overwrites it, as it would in ESC.
    """
    entries = {esc11_name(KEY_ISSUER_URL, token_id): ""}
    entries[esc11_name(KEY_ISSUER, token_id)] = info.issuer_name
    for name, value in info.services:
        entries[esc11_name(name, token_id)] = value
    if entries.get(esc11_name("EnrolledTokenBrowserURL", token_id)):
        entries[BROWSER_ESTABLISHED] = "yes"
    entries[esc11_name(KEY_ISSUER_URL, token_id)] = request_url(phone_home_url, token_id)
    return entries


def esc11_name(element: str, token_id: str) -> str:
    """ESC.js ``ConfigValueWithKeyID``: the pref name of ``element`` for the token."""
    return f"{element}-{token_id}"


def rhcs_prefix(token_id: str) -> str:
    return f"esc.key.{token_id}."


def token_entries(
    prefs: Mapping[str, str], token_id: str, dialect: PrefsDialect
) -> dict[str, str]:
    """The entries ``prefs`` holds for the token in ``dialect``, by their full names."""
    if dialect is PrefsDialect.ESC11:
        suffix = f"-{token_id}"
        return {name: value for name, value in prefs.items() if name.endswith(suffix)}
    prefix = rhcs_prefix(token_id)
    return {name: value for name, value in prefs.items() if name.startswith(prefix)}


def esc_request_url(base: str, token_id: str) -> str:
    """The URL ESC 1.1 itself requests: ``?cuid=`` and the id appended, whatever ``base``
    holds (ESC.js ``phoneHome``; esc-phone-home.md §2.3)."""
    return f"{base}?cuid={token_id}"


@dataclass(frozen=True)
class CacheCheck:
    """Whether ESC 1.1's ``IsPhoneHomeCached`` would hold for a set of cached prefs.

    ``missing`` names the entries (as ESC.js constants: ``UI``, ``CAChainUI``, ...) that are
    absent or empty.
    """

    token_id: str
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def short_check_complete(self) -> bool:
        """True when the three entries a shorter ``IsPhoneHomeCached`` tests are present."""
        return not set(self.missing) & set(SHORT_CACHE_ENTRIES)

    def warning(self) -> str | None:
        """Why ESC 1.1 would phone home at every insertion, or None when it would not."""
        if self.complete:
            return None
        names = ", ".join(esc11_name(name, self.token_id) for name in self.missing)
        text = (
            f"ESC 1.1 would not treat this cache as complete ({names} missing or empty): "
            "it needs keyIssuerUrl, keyIssuer, Operation, UI and CAChainUI, so it would "
            "phone home at every insertion"
        )
        if self.short_check_complete:
            text += (
                "; ESC.js builds whose IsPhoneHomeCached tests only keyIssuerUrl, keyIssuer "
                "and Operation would use the cache"
            )
        return text


def cache_check(prefs: Mapping[str, str], token_id: str) -> CacheCheck:
    """ESC 1.1's ``IsPhoneHomeCached`` over ``prefs`` (names in the ``esc11`` dialect)."""
    missing = tuple(name for name in CACHE_ENTRIES if not prefs.get(esc11_name(name, token_id)))
    return CacheCheck(token_id, missing)


def _put(entries: dict[str, str], name: str, value: str | None) -> None:
    if value is not None:
        entries[name] = value
