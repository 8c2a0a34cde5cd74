"""The Enterprise Security Client's Phone Home flow, without a card.

A token's issuer info holds the Phone Home URL. ESC resolves the URL (token, then
``esc.global.phone.home.url``, then a prompt), fetches ``<url>?cuid=<token id>``, parses the
ServiceInfo document it gets and caches per-token prefs. Each step is a module here:

- ``issuer_info``: what the 224 issuer-info bytes mean to ESC.
- ``esc_prefs`` and ``resolve``: the global default and the resolution order.
- ``request`` and ``fetch``: the request URL and the HTTP GET.
- ``serviceinfo``: parsing (hardened) and rendering ServiceInfo documents.
- ``prefs``: the prefs entries ESC would cache.
- ``server``: a local Phone Home server for tests and dry runs.
"""

from __future__ import annotations

from .errors import FetchError, PhoneHomeError, PrefsError, ServiceInfoError
from .esc_prefs import GLOBAL_PHONE_HOME_URL, read_global_phone_home_url, read_pref, read_prefs
from .fetch import FetchResult, fetch
from .issuer_info import ISSUER_INFO_SIZE, IssuerInfo, IssuerInfoState, classify_issuer_info
from .prefs import prefs_entries
from .request import request_url, strip_cuid
from .resolve import Resolution, UrlSource, resolve_phone_home_url
from .server import PhoneHomeServer, ReceivedRequest
from .serviceinfo import ServiceInfo, parse_service_info, render_service_info

__all__ = [
    "GLOBAL_PHONE_HOME_URL",
    "ISSUER_INFO_SIZE",
    "FetchError",
    "FetchResult",
    "IssuerInfo",
    "IssuerInfoState",
    "PhoneHomeError",
    "PhoneHomeServer",
    "PrefsError",
    "ReceivedRequest",
    "Resolution",
    "ServiceInfo",
    "ServiceInfoError",
    "UrlSource",
    "classify_issuer_info",
    "fetch",
    "parse_service_info",
    "prefs_entries",
    "read_global_phone_home_url",
    "read_pref",
    "read_prefs",
    "render_service_info",
    "request_url",
    "resolve_phone_home_url",
    "strip_cuid",
]
