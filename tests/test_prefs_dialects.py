"""Both prefs dialects, ESC 1.1's cache check, and hostile values through prefs.js."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.phonehome import (
    PrefsDialect,
    PrefsFile,
    ServiceInfo,
    cache_check,
    esc_request_url,
    parse_service_info,
    prefs_entries,
    read_prefs,
    token_entries,
)

DATA = Path(__file__).parent / "data" / "serviceinfo"
CUID = "40906145c76224192d2b"
TPS_URL = "http://pki.example.com:8080/tps/phoneHome"


def test_esc11_names_for_the_tps_default_document() -> None:
    # Reference §5: what ESC 1.1 caches for this CUID from TPS's shipped phoneHome.xml.
    info = parse_service_info((DATA / "tps-phonehome.xml").read_bytes(), source="tps")

    entries = prefs_entries(CUID, TPS_URL, info, dialect=PrefsDialect.ESC11)

    assert entries == {
        "keyIssuerUrl-40906145c76224192d2b": (
            "http://pki.example.com:8080/tps/phoneHome?cuid=40906145c76224192d2b"
        ),
        "keyIssuer-40906145c76224192d2b": "FedoraProject",
        "Operation-40906145c76224192d2b": "https://pki.example.com:8443/tps/tps",
        "EnrolledTokenBrowserURL-40906145c76224192d2b": "http://fedoraproject.org",
        "TokenType-40906145c76224192d2b": "userKey",
        "esc.token.browser.established": "yes",
    }


def test_esc11_keyissuerurl_has_exactly_one_cuid() -> None:
    info = ServiceInfo("Example Corp", ())
    base = f"http://tps.example.com/phoneHome?site=7&cuid={CUID}"

    entries = prefs_entries(CUID, base, info, dialect=PrefsDialect.ESC11)

    assert (
        entries[f"keyIssuerUrl-{CUID}"] == f"http://tps.example.com/phoneHome?site=7&cuid={CUID}"
    )
    # ESC's own join would send two: the difference the verifier reports.
    assert esc_request_url(base, CUID) == f"{base}?cuid={CUID}"


def test_no_browser_url_no_established_flag() -> None:
    info = ServiceInfo("Example Corp", (("Operation", "http://tps.example.com/nk_service"),))

    entries = prefs_entries(CUID, TPS_URL, info, dialect=PrefsDialect.ESC11)

    assert "esc.token.browser.established" not in entries


def test_rhcs_is_the_default_dialect() -> None:
    info = ServiceInfo("Example Corp", (("Operation", "http://tps.example.com/nk_service"),))

    assert prefs_entries(CUID, TPS_URL, info) == prefs_entries(
        CUID, TPS_URL, info, dialect=PrefsDialect.RHCS
    )
    assert f"esc.key.{CUID}.tps.url" in prefs_entries(CUID, TPS_URL, info)


# -- the cache check ----------------------------------------------------------------------

FIVE = {
    f"keyIssuerUrl-{CUID}": f"{TPS_URL}?cuid={CUID}",
    f"keyIssuer-{CUID}": "Example Corp",
    f"Operation-{CUID}": "http://tps.example.com/nk_service",
    f"UI-{CUID}": "http://tps.example.com/ui",
    f"CAChainUI-{CUID}": "http://tps.example.com/ca",
}


def test_all_five_entries_make_a_complete_cache() -> None:
    check = cache_check(FIVE, CUID)

    assert check.complete
    assert check.warning() is None


@pytest.mark.parametrize("missing", ["keyIssuerUrl", "keyIssuer", "Operation", "UI", "CAChainUI"])
def test_any_one_missing_means_a_phone_home_at_every_insertion(missing: str) -> None:
    prefs = {k: v for k, v in FIVE.items() if not k.startswith(f"{missing}-")}

    check = cache_check(prefs, CUID)

    assert check.missing == (missing,)
    warning = check.warning()
    assert warning is not None
    assert f"{missing}-{CUID} missing or empty" in warning
    assert "phone home at every insertion" in warning


def test_an_empty_entry_counts_as_missing() -> None:
    check = cache_check({**FIVE, f"UI-{CUID}": ""}, CUID)

    assert check.missing == ("UI",)
    assert check.short_check_complete


def test_the_tps_default_document_never_completes_the_cache() -> None:
    # Reference §2.4: empty UI, no CAChainUI.
    info = parse_service_info((DATA / "tps-phonehome.xml").read_bytes(), source="tps")
    entries = prefs_entries(CUID, TPS_URL, info, dialect=PrefsDialect.ESC11)

    assert cache_check(entries, CUID).missing == ("UI", "CAChainUI")


# -- hostile values, both dialects, through a real prefs.js --------------------------------

HOSTILE = ServiceInfo(
    'Evil "Corp" \\ \u00e9\U0001f600 */ // # \'',
    (
        ("Operation", "http://tps.example.com/nk_service?a=%22&b=\\"),
        ("UI", "http://tps.example.com/ui"),
        ("CAChainUI", "http://tps.example.com/ca"),
        ("Note", '"); user_pref("esc.security.url", "http://evil.example.com/");//'),
        ("Lines", "one\ntwo\r\tthree\u2028four"),
    ),
)

UNRELATED = (
    "// Mozilla User Preferences\n"
    "\n"
    "/* keep this comment */\n"
    'user_pref("browser.startup.homepage", "about:blank");\n'
    "an odd line\n"
)


@pytest.mark.parametrize("dialect", list(PrefsDialect))
def test_hostile_values_round_trip(tmp_path: Path, dialect: PrefsDialect) -> None:
    path = tmp_path / "prefs.js"
    path.write_text(UNRELATED, encoding="utf-8")
    entries = prefs_entries(CUID, TPS_URL, HOSTILE, dialect=dialect)

    prefs_file = PrefsFile.load(path)
    prefs_file.update(entries)
    prefs_file.save()

    text = path.read_text(encoding="utf-8")
    assert text.startswith(UNRELATED)
    assert text.isascii()
    assert len(text.splitlines()) == len(UNRELATED.splitlines()) + len(entries)
    assert read_prefs(path) == {"browser.startup.homepage": "about:blank", **entries}
    assert "esc.security.url" not in read_prefs(path)


@pytest.mark.parametrize("dialect", list(PrefsDialect))
def test_token_entries_find_what_was_written(dialect: PrefsDialect) -> None:
    entries = prefs_entries(CUID, TPS_URL, HOSTILE, dialect=dialect)
    other = prefs_entries("a00192030405060708c9", TPS_URL, HOSTILE, dialect=dialect)

    found = token_entries({**entries, **other}, CUID, dialect)

    assert found == {k: v for k, v in entries.items() if k != "esc.token.browser.established"}
