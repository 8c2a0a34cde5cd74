"""Writing a Mozilla prefs.js: escapes, byte-for-byte edits, atomic replacement."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provision.phonehome import PrefsError, PrefsFile, pref_string, read_prefs, render_pref

# Expected literals written by hand from Mozilla's prefs string syntax.
ESCAPES = [
    ("plain", '"plain"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("C:\\ESC", '"C:\\\\ESC"'),
    ("line1\nline2\r", '"line1\\nline2\\r"'),
    ("tab\there", '"tab\\x09here"'),
    ("bell\x07 del\x7f", '"bell\\x07 del\\x7f"'),
    ("café", '"caf\\u00e9"'),
    ("\U0001f600", '"\\ud83d\\ude00"'),
    ("a\u2028b", '"a\\u2028b"'),
    ("'single'", "\"'single'\""),
    ('"); user_pref("evil", "x', '"\\"); user_pref(\\"evil\\", \\"x"'),
]


@pytest.mark.parametrize(("value", "literal"), ESCAPES)
def test_pref_string(value: str, literal: str) -> None:
    assert pref_string(value) == literal


@pytest.mark.parametrize("value", ["a\x00b", "half \ud83d"])
def test_values_no_prefs_string_can_hold(value: str) -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        pref_string(value)


def test_render_pref() -> None:
    assert render_pref("UI-40906145c76224192d2b", "http://x.example.com/") == (
        'user_pref("UI-40906145c76224192d2b", "http://x.example.com/");'
    )
    assert render_pref("esc.global.phone.home.url", "http://a.example/", function="pref") == (
        'pref("esc.global.phone.home.url", "http://a.example/");'
    )


@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")))
def test_every_string_reads_back(value: str) -> None:
    prefs = PrefsFile("prefs.js", render_pref("name", value) + "\n").prefs

    assert prefs == {"name": value}


# -- editing a file ---------------------------------------------------------------------

ORIGINAL = (
    "\ufeff# Mozilla User Preferences\r\n"
    "/* a block\r\n"
    '   comment with user_pref("UI-1111", "hidden"); inside */\r\n'
    'user_pref("browser.startup.homepage", "about:blank");  // keep me\r\n'
    "this line is not a pref at all\r\n"
    'user_pref("Operation-1111", "http://old.example.com/nk_service"); # old TPS\r\n'
    "user_pref(\r\n"
    '    "keyIssuer-1111",\r\n'
    '    "Old Corp");\r\n'
    'user_pref("UI-1111", "http://old.example.com/ui");\r\n'
    'pref("esc.number", 30); user_pref("CAChainUI-1111", "http://old.example.com/ca");\r\n'
    'user_pref("esc.bad.escape", "\\q");\r\n'
)

# The same file after setting Operation and keyIssuer, adding TokenType and removing UI and
# CAChainUI: every other byte is where it was.
EXPECTED = (
    "\ufeff# Mozilla User Preferences\r\n"
    "/* a block\r\n"
    '   comment with user_pref("UI-1111", "hidden"); inside */\r\n'
    'user_pref("browser.startup.homepage", "about:blank");  // keep me\r\n'
    "this line is not a pref at all\r\n"
    'user_pref("Operation-1111", "https://new.example.com/tps/tps"); # old TPS\r\n'
    'user_pref("keyIssuer-1111", "New \\"Corp\\"");\r\n'
    'pref("esc.number", 30); \r\n'
    'user_pref("esc.bad.escape", "\\q");\r\n'
    'user_pref("TokenType-1111", "userKey");\r\n'
)


def write_bytes(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_an_edit_keeps_every_other_byte(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_bytes(tmp_path / "prefs.js", ORIGINAL)

    with caplog.at_level(logging.WARNING):
        prefs_file = PrefsFile.load(path)
        change = prefs_file.update(
            {
                "Operation-1111": "https://new.example.com/tps/tps",
                "keyIssuer-1111": 'New "Corp"',
                "TokenType-1111": "userKey",
                "browser.startup.homepage": "about:blank",
            },
            remove=["UI-1111", "CAChainUI-1111", "never-there-1111"],
        )
        prefs_file.save()

    assert path.read_bytes() == EXPECTED.encode("utf-8")
    assert change.changed == ["Operation-1111", "keyIssuer-1111"]
    assert change.added == ["TokenType-1111"]
    assert change.removed == ["UI-1111", "CAChainUI-1111"]
    assert change.unchanged == ["browser.startup.homepage"]
    assert read_prefs(path) == {
        "browser.startup.homepage": "about:blank",
        "Operation-1111": "https://new.example.com/tps/tps",
        "keyIssuer-1111": 'New "Corp"',
        "esc.number": "30",
        "TokenType-1111": "userKey",
    }


def test_a_new_file_gets_a_header_and_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "prefs.js"

    prefs_file = PrefsFile.load(path)
    prefs_file.update({"keyIssuer-1111": "Example Corp"})
    prefs_file.save()

    assert path.read_text() == (
        '// ESC user preferences\nuser_pref("keyIssuer-1111", "Example Corp");\n'
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_old_mode_is_kept_and_a_missing_final_newline_added(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "prefs.js", 'user_pref("a", "1");')
    path.chmod(0o640)

    prefs_file = PrefsFile.load(path)
    prefs_file.update({"b": "2"})
    prefs_file.save()

    assert path.read_text() == 'user_pref("a", "1");\nuser_pref("b", "2");\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_the_last_of_repeated_settings_is_the_one_rewritten(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "prefs.js", 'user_pref("a", "1");\nuser_pref("a", "2");\n')

    prefs_file = PrefsFile.load(path)
    prefs_file.update({"a": "3"})

    assert prefs_file.text == 'user_pref("a", "1");\nuser_pref("a", "3");\n'
    assert prefs_file.prefs == {"a": "3"}


def test_a_symlink_is_followed(tmp_path: Path) -> None:
    real = write_bytes(tmp_path / "real-prefs.js", 'user_pref("a", "1");\n')
    link = tmp_path / "prefs.js"
    link.symlink_to(real)

    prefs_file = PrefsFile.load(link)
    prefs_file.update({"a": "2"})
    prefs_file.save()

    assert link.is_symlink()
    assert real.read_text() == 'user_pref("a", "2");\n'


def test_a_failed_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_bytes(tmp_path / "prefs.js", ORIGINAL)
    prefs_file = PrefsFile.load(path)
    prefs_file.update({"Operation-1111": "https://new.example.com/tps/tps"})

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PrefsError, match=f"cannot write {path}: No space left on device"):
        prefs_file.save()

    assert path.read_bytes() == ORIGINAL.encode("utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefs.js"]


def test_a_bad_value_changes_nothing(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "prefs.js", 'user_pref("a", "1");\n')
    prefs_file = PrefsFile.load(path)

    with pytest.raises(ValueError, match="NUL"):
        prefs_file.update({"a": "2", "b": "bad\x00"})

    assert prefs_file.text == 'user_pref("a", "1");\n'


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "prefs.js"
    path.write_bytes(b'user_pref("a", "1");\nuser_pref("b", "caf\xe9");\n')

    with pytest.raises(PrefsError) as caught:
        PrefsFile.load(path)

    assert str(caught.value) == f"cannot read {path}: not UTF-8 (line 2, byte 20 of the line)"


def test_a_directory_is_not_a_prefs_file(tmp_path: Path) -> None:
    with pytest.raises(PrefsError, match=f"cannot read {tmp_path}"):
        PrefsFile.load(tmp_path)
