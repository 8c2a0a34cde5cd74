"""The Enterprise Security Client's Phone Home flow, without a card.

A token's issuer info holds the Phone Home URL. ESC resolves the URL (token, then
``esc.global.phone.home.url``, then a prompt), fetches ``<url>?cuid=<token id>``, parses the
ServiceInfo document it gets and caches per-token prefs. Each step is a module here:

- ``issuer_info``: what the 224 issuer-info bytes mean to ESC, and ESC's bounded re-read.
- ``esc_prefs`` and ``resolve``: the global default and the resolution order.
- ``request`` and ``fetch``: the request URL and the HTTP GET.
- ``serviceinfo``: parsing (hardened, and as ESC itself would) and rendering ServiceInfo.
- ``prefs``: the prefs entries ESC would cache, in two dialects, and ESC 1.1's cache check.
- ``prefs_file``: editing a profile's ``prefs.js`` in place, atomically.
- ``esc_profile``: an existing ESC profile, and what its cache would hide.
- ``tps_cfg``: the TPS settings that make TPS write the URL.
- ``server``: a Phone Home server.
"""

from __future__ import annotations

from .errors import FetchError, PhoneHomeError, PrefsError, ServiceInfoError
from .esc_prefs import (
    GLOBAL_PHONE_HOME_URL,
    PrefStatement,
    parse_prefs,
    read_global_phone_home_url,
    read_pref,
    read_prefs,
)
from .esc_profile import (
    EscProfile,
    Hidden,
    StaleCache,
    evaluate_cache,
    find_prefs_js,
    load_esc_profile,
)
from .fetch import FetchResult, fetch
from .issuer_info import (
    ISSUER_INFO_SIZE,
    IssuerInfo,
    IssuerInfoRead,
    IssuerInfoState,
    classify_issuer_info,
    read_issuer_info,
)
from .prefs import (
    CacheCheck,
    PrefsDialect,
    cache_check,
    esc_request_url,
    prefs_entries,
    token_entries,
)
from .prefs_file import PrefsChange, PrefsFile, pref_string, render_pref, write_atomically
from .request import request_url, strip_cuid
from .resolve import Resolution, UrlSource, resolve_phone_home_url
from .server import AccessRecord, PhoneHomeServer, ReceivedRequest
from .serviceinfo import ServiceInfo, esc_service_info, parse_service_info, render_service_info
from .tps_cfg import TpsConfigError, issuer_info_setting, read_cfg, render_issuer_info

__all__ = [
    "GLOBAL_PHONE_HOME_URL",
    "ISSUER_INFO_SIZE",
    "AccessRecord",
    "CacheCheck",
    "EscProfile",
    "FetchError",
    "FetchResult",
    "Hidden",
    "IssuerInfo",
    "IssuerInfoRead",
    "IssuerInfoState",
    "PhoneHomeError",
    "PhoneHomeServer",
    "PrefStatement",
    "PrefsChange",
    "PrefsDialect",
    "PrefsError",
    "PrefsFile",
    "ReceivedRequest",
    "Resolution",
    "ServiceInfo",
    "ServiceInfoError",
    "StaleCache",
    "TpsConfigError",
    "UrlSource",
    "cache_check",
    "classify_issuer_info",
    "esc_request_url",
    "esc_service_info",
    "evaluate_cache",
    "fetch",
    "find_prefs_js",
    "issuer_info_setting",
    "load_esc_profile",
    "parse_prefs",
    "parse_service_info",
    "pref_string",
    "prefs_entries",
    "read_cfg",
    "read_global_phone_home_url",
    "read_issuer_info",
    "read_pref",
    "read_prefs",
    "render_issuer_info",
    "render_pref",
    "render_service_info",
    "request_url",
    "resolve_phone_home_url",
    "strip_cuid",
    "token_entries",
    "write_atomically",
]
