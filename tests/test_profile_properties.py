"""Properties of the profile loader over generated files: it fails only with ProfileError,
never shows key bytes, and draws its limits where the format says."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provision.gp.keys import Key
from provision.profile import Profile, ProfileError, load_profile
from tests.profilefiles import MINIMAL, TEST_KEY, edit, write

URL_HEAD = "http://tps.acme.test/"
URL_LINE = 'phone_home_url: "http://tps.acme.test:7888/cgi-bin/home/index.cgi"'


@pytest.fixture(scope="module")
def directory() -> Iterator[Path]:
    # Hypothesis runs many examples per test; each overwrites the same file in one directory.
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def outcome(directory: Path, text: str | bytes) -> Profile | ProfileError:
    path = write(directory, text)
    try:
        return load_profile(path)
    except ProfileError as problem:
        assert str(problem).startswith(f"{path}:") or str(problem).startswith(f"{path}: ")
        return problem


@given(st.text(max_size=300))
def test_any_text_loads_or_fails_with_a_profile_error(directory: Path, text: str) -> None:
    outcome(directory, text)


@given(st.binary(max_size=300))
def test_any_bytes_load_or_fail_with_a_profile_error(directory: Path, data: bytes) -> None:
    outcome(directory, data)


@given(st.data())
def test_broken_profiles_fail_with_a_profile_error(directory: Path, data: st.DataObject) -> None:
    lines = MINIMAL.splitlines(keepends=True)
    index = data.draw(st.integers(0, len(lines) - 1), label="line")
    change = data.draw(st.sampled_from(["drop", "repeat", "indent", "dedent", "splice"]))
    new = {
        "drop": [],
        "repeat": [lines[index]] * 2,
        "indent": ["  " + lines[index]],
        "dedent": [lines[index].lstrip(" ")],
        "splice": [data.draw(st.text(max_size=20), label="text") + lines[index]],
    }[change]

    outcome(directory, "".join([*lines[:index], *new, *lines[index + 1 :]]))


@given(st.integers(len(URL_HEAD), 223))
def test_urls_up_to_223_bytes_fit(directory: Path, size: int) -> None:
    url = URL_HEAD + "x" * (size - len(URL_HEAD))

    profile = outcome(directory, edit(URL_LINE, f'phone_home_url: "{url}"'))

    assert isinstance(profile, Profile)
    assert profile.phone_home_url == url


@given(st.integers(224, 2000))
def test_longer_urls_are_refused_with_their_size(directory: Path, size: int) -> None:
    url = URL_HEAD + "x" * (size - len(URL_HEAD))

    problem = outcome(directory, edit(URL_LINE, f'phone_home_url: "{url}"'))

    assert isinstance(problem, ProfileError)
    assert problem.field == "phone_home_url"
    assert problem.problem.startswith(f"{size} bytes; expected 10 to 223")


@given(st.integers(-300, 300))
def test_kvn_range(directory: Path, kvn: int) -> None:
    result = outcome(directory, edit("kvn: 1", f"kvn: {kvn}"))

    if 1 <= kvn <= 127:
        assert isinstance(result, Profile)
        assert result.key_set(kvn) is result.key_sets[0]
    else:
        assert isinstance(result, ProfileError)
        assert result.field == "key_sets[0].kvn"


@given(st.binary(min_size=4, max_size=40).filter(lambda key: len(key) != 16))
def test_a_wrong_key_never_shows_in_the_error(directory: Path, key: bytes) -> None:
    problem = outcome(directory, edit(f'enc: "{TEST_KEY}"', f'enc: "{key.hex()}"'))

    assert isinstance(problem, ProfileError)
    assert problem.field == "key_sets[0].enc"
    assert problem.problem == f"{len(key)} bytes; expected 16"


@given(st.text("0123456789", min_size=8, max_size=64))
def test_an_unquoted_numeric_key_never_shows_in_the_error(directory: Path, digits: str) -> None:
    problem = outcome(directory, edit(f'enc: "{TEST_KEY}"', f"enc: {digits}"))

    assert isinstance(problem, ProfileError)
    assert problem.field == "key_sets[0].enc"
    assert digits not in str(problem)


@given(st.binary(min_size=16, max_size=16), st.lists(st.integers(0, 3), min_size=16, max_size=16))
def test_spaces_in_a_key_are_ignored(directory: Path, key: bytes, gaps: list[int]) -> None:
    written = "".join(" " * gap + f"{byte:02x}" for byte, gap in zip(key, gaps, strict=True))

    profile = outcome(directory, edit(f'enc: "{TEST_KEY}"', f'enc: "{written}"'))

    assert isinstance(profile, Profile)
    assert profile.key_sets[0].keys.enc == Key(key)
    assert key.hex() not in repr(profile).lower()
