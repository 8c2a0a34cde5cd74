"""An existing ESC user profile: finding its prefs.js, and the stale-cache report (§2.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.phonehome import (
    EscProfile,
    Hidden,
    PrefsDialect,
    PrefsError,
    ServiceInfo,
    StaleCache,
    evaluate_cache,
    find_prefs_js,
    load_esc_profile,
    prefs_entries,
)

ID = "40906145c76224192d2b"
URL = "http://server.example.com:7888/cgi-bin/home/index.cgi"
NEW = ServiceInfo(
    "Example Corp",
    (
        ("Operation", "http://server.example.com:7888/nk_service"),
        ("UI", "http://server.example.com:7888/cgi_bin/esc.cgi"),
        ("CAChainUI", "http://server.example.com:7888/cgi-bin/home/cachain.cgi"),
    ),
)
NEW_ESC11 = prefs_entries(ID, URL, NEW, dialect=PrefsDialect.ESC11)
NEW_RHCS = prefs_entries(ID, URL, NEW, dialect=PrefsDialect.RHCS)

# A profile left by an earlier issuer: ESC 1.1's five cache entries, and one more.
OLD = {
    f"keyIssuerUrl-{ID}": f"http://old.example.com/home?cuid={ID}",
    f"keyIssuer-{ID}": "Old Corp",
    f"Operation-{ID}": "http://old.example.com/nk_service",
    f"UI-{ID}": "http://server.example.com:7888/cgi_bin/esc.cgi",
    f"CAChainUI-{ID}": "http://old.example.com/ca",
    f"EnrolledTokenURL-{ID}": "http://old.example.com/enrolled",
    "keyIssuer-a00192030405060708c9": "Another token's issuer",
}


def profile(prefs: dict[str, str]) -> EscProfile:
    return EscProfile(Path("esc/prefs.js"), prefs, True)


def evaluate(prefs: dict[str, str], token_url: str | None = URL) -> StaleCache:
    return evaluate_cache(
        profile(prefs), ID, token_url=token_url, new_esc11=NEW_ESC11, new_rhcs=NEW_RHCS
    )


def test_a_complete_cache_hides_the_new_data() -> None:
    stale = evaluate(OLD)

    assert stale.uses_cache and stale.stale
    assert stale.hidden == (
        Hidden(f"keyIssuer-{ID}", "Old Corp", "Example Corp"),
        Hidden(
            f"Operation-{ID}",
            "http://old.example.com/nk_service",
            "http://server.example.com:7888/nk_service",
        ),
        Hidden(
            f"CAChainUI-{ID}",
            "http://old.example.com/ca",
            "http://server.example.com:7888/cgi-bin/home/cachain.cgi",
        ),
        Hidden(f"EnrolledTokenURL-{ID}", "http://old.example.com/enrolled", None),
    )
    assert stale.lines() == [
        f"esc/prefs.js: ESC 1.1 would use its cache for token {ID} and not phone home",
        f'  keyIssuer-{ID}: ESC keeps "Old Corp", hiding "Example Corp"',
        f'  Operation-{ID}: ESC keeps "http://old.example.com/nk_service", hiding '
        '"http://server.example.com:7888/nk_service"',
        f'  CAChainUI-{ID}: ESC keeps "http://old.example.com/ca", hiding '
        '"http://server.example.com:7888/cgi-bin/home/cachain.cgi"',
        f'  EnrolledTokenURL-{ID}: ESC keeps "http://old.example.com/enrolled"; the new data '
        "has none",
        "  remove the old profile directory, or these entries, before the token is used",
    ]


def test_the_token_url_fills_keyissuerurl_before_the_check() -> None:
    # ESC writes keyIssuerUrl-<id> from the token first, so a missing one does not help.
    prefs = {k: v for k, v in OLD.items() if not k.startswith("keyIssuerUrl-")}

    assert evaluate(prefs).uses_cache


def test_an_incomplete_cache_is_refreshed_but_leftovers_stay() -> None:
    prefs = {k: v for k, v in OLD.items() if not k.startswith("CAChainUI-")}

    stale = evaluate(prefs)

    assert not stale.uses_cache
    assert stale.hidden == (
        Hidden(f"EnrolledTokenURL-{ID}", "http://old.example.com/enrolled", None),
    )
    lines = stale.lines()
    assert lines[0] == (
        f"esc/prefs.js: ESC 1.1 would phone home for token {ID} (its cache is not complete)"
    )
    assert lines[1] == (
        f"  EnrolledTokenURL-{ID}: stays, as ESC never removes a pref: "
        '"http://old.example.com/enrolled"; the new data has none'
    )
    assert lines[2] == (
        "  ESC.js builds whose IsPhoneHomeCached tests only keyIssuerUrl, keyIssuer and "
        "Operation would use this cache and not phone home"
    )


def test_without_a_url_from_the_token_the_cache_is_not_used() -> None:
    stale = evaluate(OLD, token_url=None)

    assert not stale.uses_cache
    assert stale.lines()[:2] == [
        f"esc/prefs.js: ESC 1.1 would not use its cache for token {ID}: the token gives it "
        "no Phone Home URL",
        f"  EnrolledTokenURL-{ID}: stays, as ESC never removes a pref: "
        '"http://old.example.com/enrolled"; the new data has none',
    ]
    assert stale.notes[0] == (
        f"on macOS, ESC takes the cached keyIssuerUrl-{ID} "
        f'"http://old.example.com/home?cuid={ID}" when the token gives no URL'
    )


def test_documented_names_are_compared_too() -> None:
    prefs = {
        f"esc.key.{ID}.tps.url": "http://old.example.com/nk_service",
        f"esc.key.{ID}.issuer.name": "Example Corp",
    }

    stale = evaluate(prefs)

    assert stale.notes == (
        f'esc.key.{ID}.tps.url (documented names): cached "http://old.example.com/nk_service", '
        'new data gives "http://server.example.com:7888/nk_service"',
    )


def test_a_profile_with_nothing_for_this_token() -> None:
    stale = evaluate({"keyIssuer-a00192030405060708c9": "Other"})

    assert not stale.stale
    assert stale.lines() == [f"esc/prefs.js: no cached Phone Home entries for token {ID}"]


def test_a_cache_that_matches_hides_nothing() -> None:
    prefs = dict(NEW_ESC11)

    stale = evaluate(prefs)

    assert stale.uses_cache and not stale.stale


# -- finding prefs.js -------------------------------------------------------------------


def test_a_profile_directory(tmp_path: Path) -> None:
    (tmp_path / "prefs.js").write_text('user_pref("a", "1");\n')

    assert find_prefs_js(tmp_path) == tmp_path / "prefs.js"
    assert load_esc_profile(tmp_path).prefs == {"a": "1"}


def test_the_profile_root_with_profiles_ini(tmp_path: Path) -> None:
    for name in ("aaaa.default", "bbbb.other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "prefs.js").write_text("")
    (tmp_path / "profiles.ini").write_text(
        "[General]\nStartWithLastProfile=1\n\n"
        "[Profile0]\nName=other\nIsRelative=1\nPath=bbbb.other\n\n"
        "[Profile1]\nName=default\nIsRelative=1\nPath=aaaa.default\nDefault=1\n"
    )

    assert find_prefs_js(tmp_path) == tmp_path / "aaaa.default" / "prefs.js"


def test_the_profile_root_with_one_profile(tmp_path: Path) -> None:
    (tmp_path / "x1y2.default").mkdir()
    (tmp_path / "x1y2.default" / "prefs.js").write_text("")

    assert find_prefs_js(tmp_path) == tmp_path / "x1y2.default" / "prefs.js"


def test_several_profiles_and_no_default(tmp_path: Path) -> None:
    for name in ("a.default", "b.default"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "prefs.js").write_text("")

    with pytest.raises(PrefsError, match=r"several ESC profiles \(a.default, b.default\)"):
        find_prefs_js(tmp_path)


def test_a_new_profile_has_no_cache(tmp_path: Path) -> None:
    loaded = load_esc_profile(tmp_path)

    assert (loaded.prefs_file, loaded.prefs, loaded.exists) == (tmp_path / "prefs.js", {}, False)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PrefsError, match="is not a directory"):
        find_prefs_js(tmp_path / "missing")
