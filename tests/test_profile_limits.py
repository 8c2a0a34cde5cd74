"""Profiles that are too big, too deep, or that would burn what verification refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.profile import MAX_PROFILE_BYTES, ProfileError
from tests.profilefiles import MINIMAL, TEST_KEY, edit, error


def _load_error(directory: Path, text: str) -> ProfileError:
    return error(directory, text)[1]


def test_a_file_larger_than_a_profile_can_be_is_refused(tmp_path: Path) -> None:
    padding = "#" * 1000 + "\n"
    text = MINIMAL + padding * (MAX_PROFILE_BYTES // len(padding) + 1)

    error = _load_error(tmp_path, text)

    assert "larger than" in error.problem


def test_deep_nesting_is_a_profile_error(tmp_path: Path) -> None:
    text = edit("name: acme", "name: " + "[" * 20000 + "]" * 20000)

    error = _load_error(tmp_path, text)

    assert "nested far too deeply" in error.problem


def test_a_huge_integer_is_refused_before_conversion(tmp_path: Path) -> None:
    error = _load_error(tmp_path, edit("format: 1", "format: " + "9" * 5000))

    assert error.field == "format"
    assert "far too large" in error.problem


@pytest.mark.parametrize("host", ["-bad-", "exa!mple.com", "ex%41mple.com", "a;b", "a'b"])
def test_a_host_the_client_would_refuse_is_a_profile_error(tmp_path: Path, host: str) -> None:
    url = f"http://{host}:7888/cgi-bin/home/index.cgi"
    text = edit("http://tps.acme.test:7888/cgi-bin/home/index.cgi", url)

    error = _load_error(tmp_path, text)

    assert error.field == "phone_home_url"


def test_a_dotted_token_type_is_refused(tmp_path: Path) -> None:
    text = edit(
        '  Operation: "http://tps.acme.test:7888/nk_service"\n',
        '  Operation: "http://tps.acme.test:7888/nk_service"\n  TokenType: "user.key"\n',
    )

    error = _load_error(tmp_path, text)

    assert error.field == "service_info.TokenType"


def test_a_field_name_holding_key_material_is_masked(tmp_path: Path) -> None:
    # A missing colon turns "mac: <key>" into one field name.
    text = edit(f'    mac: "{TEST_KEY}"', f"    mac {TEST_KEY}: x")

    error = _load_error(tmp_path, text)

    assert TEST_KEY not in str(error)
    assert TEST_KEY.lower() not in str(error).lower()
    assert "<hex>" in str(error)
