"""The per-token prefs entries ESC caches after a successful Phone Home.

The names are the ones the RHCS documentation lists (``esc.key.<id>.…``). ESC 1.1.0's source
writes another dialect (``Operation-<id>``, ``keyIssuer-<id>``); reference §6 explains why
both exist. Only the documented names are built here.
"""

from __future__ import annotations

from ._text import check_token_id
from .request import strip_cuid
from .serviceinfo import ServiceInfo

# XXX: ESC 1.1.0's own dialect (Operation-<id>, keyIssuer-<id>, keyIssuerUrl-<id>) is not built.

# Services elements with a documented pref name of their own, in the documentation's order.
_NAMED = {
    "Operation": "tps.url",
    "UI": "tps.enrollment-ui.url",
    "EnrolledTokenBrowserURL": "EnrolledTokenBrowserURL",
}


def prefs_entries(token_id: str, phone_home_url: str, info: ServiceInfo) -> dict[str, str]:
    """The prefs ESC would cache for ``token_id``, in the documentation's order.

    ``phone_home_url`` is the URL as read from the token (or the global default); its
    ``cuid`` parameter, if any, is left out. Elements absent from ``info`` give no entry;
    elements without a documented name give ``esc.key.<id>.<Element>``, in document order.
    """
    check_token_id(token_id)
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


def _put(entries: dict[str, str], name: str, value: str | None) -> None:
    if value is not None:
        entries[name] = value
