"""Reading esc-prefs.js, ESC's defaults file (esc-phone-home.md §2.5)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from provision.phonehome import PrefsError, read_global_phone_home_url, read_pref, read_prefs

GLOBAL = "http://server.example.com:7888/cgi-bin/home/index.cgi"


def prefs_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "esc-prefs.js"
    path.write_text(text, encoding="utf-8")
    return path


def test_esc_shipped_defaults_have_no_global_url(tmp_path: Path) -> None:
    path = prefs_file(
        tmp_path,
        "# ESC defaults\n"
        'pref("esc.tps.message.timeout","90");\n'
        'pref("esc.hide.format","no");\n'
        '#pref("esc.global.phone.home.url","http://test.host.com:7888/cgi-bin/home/index.cgi");\n'
        'pref("esc.windows.do.capi","yes");\n',
    )

    assert read_global_phone_home_url(path) is None
    assert read_pref(path, "esc.tps.message.timeout") == "90"
    assert read_pref(path, "esc.windows.do.capi") == "yes"


def test_the_guide_line(tmp_path: Path) -> None:
    path = prefs_file(tmp_path, f'pref("esc.global.phone.home.url","{GLOBAL}");\n')

    assert read_global_phone_home_url(path) == GLOBAL


@pytest.mark.parametrize(
    "text",
    [
        f'# a comment\npref("esc.global.phone.home.url", "{GLOBAL}"); # trailing\n',
        f'// a comment\npref("esc.global.phone.home.url", "{GLOBAL}"); // trailing\n',
        f'/* a\n   block */ pref("esc.global.phone.home.url", /* inside */ "{GLOBAL}");\n',
        f'pref(\n  "esc.global.phone.home.url",\n  "{GLOBAL}"\n);\n',
        f"pref('esc.global.phone.home.url', '{GLOBAL}');",
        f'\r\npref("esc.global.phone.home.url","{GLOBAL}");\r\n',
    ],
)
def test_comment_styles_and_layout(tmp_path: Path, text: str) -> None:
    assert read_global_phone_home_url(prefs_file(tmp_path, text)) == GLOBAL


@pytest.mark.parametrize(
    "text",
    [
        '// pref("esc.global.phone.home.url", "http://commented.example.com/");\n',
        '/* pref("esc.global.phone.home.url", "http://commented.example.com/"); */\n',
        '/*\npref("esc.global.phone.home.url", "http://commented.example.com/");\n*/\n',
        '/* never closed\npref("esc.global.phone.home.url", "http://commented.example.com/");\n',
    ],
)
def test_commented_out(tmp_path: Path, text: str) -> None:
    assert read_global_phone_home_url(prefs_file(tmp_path, text)) is None


def test_odd_lines_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = prefs_file(
        tmp_path,
        "this line is not javascript at all\n"
        'pref("esc.broken", "no closing quote);\n'
        'pref("esc.no.semicolon", "x")\n'
        "pref(esc.unquoted, 1);\n"
        'pref("esc.word.value", abc1);\n'
        'defaultPref("esc.other.function", "x");\n'
        '@@@ pref("esc.after.junk", "x");\n'
        f'pref("esc.global.phone.home.url", "{GLOBAL}");\n'
        'pref("esc.number", 30); pref("esc.flag", true);\n',
    )

    with caplog.at_level(logging.WARNING):
        prefs = read_prefs(path)

    assert prefs == {
        "esc.global.phone.home.url": GLOBAL,
        "esc.number": "30",
        "esc.flag": "true",
    }
    warned = [r.getMessage() for r in caplog.records]
    assert [w.split(":")[-2] for w in warned] == ["1", "2", "3", "4", "5", "6", "7"]
    assert all(w.startswith(f"{path}:") and "skipped" in w for w in warned)


def test_a_statement_cut_short_by_the_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = prefs_file(tmp_path, f'pref("esc.global.phone.home.url", "{GLOBAL}")')

    with caplog.at_level(logging.WARNING):
        assert read_global_phone_home_url(path) is None

    assert [r.getMessage() for r in caplog.records] == [f"{path}:1: skipped, cut short by the end"]


def test_escapes(tmp_path: Path) -> None:
    path = prefs_file(
        tmp_path,
        'pref("quote", "say \\"hi\\"");\n'
        "pref('apostrophe', 'it\\'s');\n"
        'pref("backslash", "C:\\\\ESC");\n'
        'pref("controls", "a\\tb\\nc");\n'
        'pref("hex", "caf\\xe9");\n'
        'pref("unicode", "caf\\u00e9 \\ud83d\\ude00");\n',
    )

    assert read_prefs(path) == {
        "quote": 'say "hi"',
        "apostrophe": "it's",
        "backslash": "C:\\ESC",
        "controls": "a\tb\nc",
        "hex": "café",
        "unicode": "café \U0001f600",
    }


@pytest.mark.parametrize(
    "value", ["\\q", "\\x4", "\\u00e", "\\ud83d alone", "http:\\/\\/server.example.com/"]
)
def test_unknown_or_malformed_escapes_skip_the_statement(tmp_path: Path, value: str) -> None:
    path = prefs_file(
        tmp_path,
        f'pref("esc.global.phone.home.url", "{GLOBAL}");\n'
        f'pref("esc.global.phone.home.url", "{value}");\n',
    )

    # The earlier setting stands rather than a guessed value.
    assert read_global_phone_home_url(path) == GLOBAL


def test_last_setting_wins(tmp_path: Path) -> None:
    path = prefs_file(
        tmp_path,
        'pref("esc.global.phone.home.url", "http://first.example.com/");\n'
        f'pref("esc.global.phone.home.url", "{GLOBAL}");\n',
    )

    assert read_global_phone_home_url(path) == GLOBAL


def test_empty_value_is_no_url(tmp_path: Path) -> None:
    path = prefs_file(tmp_path, 'pref("esc.global.phone.home.url", "");\n')

    assert read_pref(path, "esc.global.phone.home.url") == ""
    assert read_global_phone_home_url(path) is None


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "esc-prefs.js"

    with pytest.raises(PrefsError) as caught:
        read_global_phone_home_url(path)

    assert str(caught.value) == f"cannot read {path}: No such file or directory"
    assert caught.value.path == str(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "esc-prefs.js"
    path.write_bytes(b'pref("esc.global.phone.home.url", "http://caf\xe9.example.com/");\n')

    with pytest.raises(PrefsError, match="not UTF-8"):
        read_pref(path, "esc.global.phone.home.url")


def test_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PrefsError, match=f"cannot read {tmp_path}"):
        read_prefs(tmp_path)
