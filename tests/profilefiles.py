"""Profile files for the loader tests: a small valid profile and ways to break it."""

from __future__ import annotations

from pathlib import Path

import pytest

from provision.profile import Profile, ProfileError, load_profile

EXAMPLE_CORP = Path(__file__).parents[1] / "profiles" / "example-corp.yaml"

TEST_KEY = "404142434445464748494A4B4C4D4E4F"

# The smallest profile the format allows: every optional field left to its default.
MINIMAL = f"""\
format: 1
name: acme
issuer_name: Acme Tokens
phone_home_url: "http://tps.acme.test:7888/cgi-bin/home/index.cgi"
service_info:
  Operation: "http://tps.acme.test:7888/nk_service"
secure_channel:
  protocol: SCP02
key_sets:
  - kvn: 1
    test_keys: true
    enc: "{TEST_KEY}"
    mac: "{TEST_KEY}"
    dek: "{TEST_KEY}"
"""


def edit(old: str, new: str, text: str = MINIMAL) -> str:
    """``text`` with its one occurrence of ``old`` replaced by ``new``."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def line_of(fragment: str, text: str) -> int:
    """The 1-based line on which ``fragment`` first occurs in ``text``."""
    assert fragment in text, f"{fragment!r} is not in the profile"
    return text[: text.index(fragment)].count("\n") + 1


def write(directory: Path, text: str | bytes, name: str = "profile.yaml") -> Path:
    path = directory / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def load(directory: Path, text: str | bytes) -> Profile:
    return load_profile(write(directory, text))


def error(directory: Path, text: str | bytes) -> tuple[Path, ProfileError]:
    """The file written from ``text`` and the error loading it raises."""
    path = write(directory, text)
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    return path, raised.value


def assert_names(problem: ProfileError, path: Path, line: int | None, field: str | None) -> None:
    """The error's attributes and the head of its message name this file, line and field."""
    assert (problem.path, problem.line, problem.field) == (path, line, field)

    head = str(path) if line is None else f"{path}:{line}"
    head += f": {field}: " if field else ": "
    assert str(problem).startswith(head), str(problem)
