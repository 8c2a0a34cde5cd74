"""Profiles that extend a base profile, the token type, and ``provision profile check``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision import cli
from provision.profile import DEFAULT_TOKEN_TYPE, Inherited, ProfileError, load_profile
from tests.profilefiles import MINIMAL, TEST_KEY, assert_names, line_of

UNITS = Path(__file__).parent / "data" / "units"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # main() configures the root logger, as a program's entry point does; put it back.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


BASE = f"""\
format: 1
name: corp-base
secure_channel:
  protocol: SCP02
  key_version: 1
key_sets:
  - kvn: 1
    test_keys: true
    enc: "{TEST_KEY}"
    mac: "{TEST_KEY}"
    dek: "{TEST_KEY}"
policy:
  overwrite: force
"""

UNIT = """\
format: 1
name: corp-sales
extends: base.yaml
issuer_name: Corp Sales
phone_home_url: "http://sales.corp.test:7888/cgi-bin/home/index.cgi"
service_info:
  Operation: "http://sales.corp.test:7888/nk_service"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error(path: Path) -> ProfileError:
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    return raised.value


def test_a_unit_takes_keys_card_settings_and_policy_from_its_base(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", BASE)
    unit = write(tmp_path / "sales.yaml", UNIT)

    profile = load_profile(unit)

    assert (profile.name, profile.issuer_name) == ("corp-sales", "Corp Sales")
    assert profile.phone_home_url == "http://sales.corp.test:7888/cgi-bin/home/index.cgi"
    assert profile.service_info == (("Operation", "http://sales.corp.test:7888/nk_service"),)
    assert profile.channel.key_version == 1
    assert [k.kvn for k in profile.key_sets] == [1]
    assert profile.policy.overwrite.value == "force"
    assert profile.bases == (base,)
    assert profile.inherited == (
        Inherited("secure_channel", base, line_of("secure_channel:", BASE)),
        Inherited("key_sets", base, line_of("key_sets:", BASE)),
        Inherited("policy", base, line_of("policy:", BASE)),
    )


def test_a_field_the_unit_gives_replaces_the_whole_base_field(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", BASE)
    unit = write(tmp_path / "sales.yaml", UNIT + "policy:\n  halt_after_key_mismatches: 1\n")

    profile = load_profile(unit)

    assert profile.policy.overwrite.value == "never"  # the default, not the base's force
    assert profile.policy.halt_after_key_mismatches == 1
    assert "policy" not in {field.field for field in profile.inherited}


def test_the_base_path_is_relative_to_the_extending_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "corp" / "base.yaml", BASE)
    unit = write(
        tmp_path / "corp" / "units" / "sales.yaml",
        UNIT.replace("extends: base.yaml", "extends: ../base.yaml"),
    )
    monkeypatch.chdir(tmp_path)

    profile = load_profile(unit.relative_to(tmp_path))

    assert profile.bases == (Path("corp/base.yaml"),)


def test_a_chain_names_where_each_field_was_written(tmp_path: Path) -> None:
    root = write(tmp_path / "root.yaml", BASE)
    middle_text = "format: 1\nname: corp-middle\nextends: root.yaml\npolicy:\n  overwrite: never\n"
    middle = write(tmp_path / "middle.yaml", middle_text)
    unit = write(tmp_path / "sales.yaml", UNIT.replace("base.yaml", "middle.yaml"))

    profile = load_profile(unit)

    assert profile.bases == (middle, root)
    assert profile.policy.overwrite.value == "never"
    assert {f.field: (f.path, f.line) for f in profile.inherited} == {
        "policy": (middle, 4),
        "secure_channel": (root, line_of("secure_channel:", BASE)),
        "key_sets": (root, line_of("key_sets:", BASE)),
    }


def test_the_repository_units(tmp_path: Path) -> None:
    sales = load_profile(UNITS / "units" / "sales.yaml")
    engineering = load_profile(UNITS / "units" / "engineering.yaml")

    assert sales.token_type == DEFAULT_TOKEN_TYPE == "userKey"
    assert engineering.token_type == "soKey"
    assert sales.key_sets[0].keys.enc.kcv == engineering.key_sets[0].keys.enc.kcv
    assert engineering.policy.halt_after_key_mismatches == 1


# -- errors name the file and line of the value ----------------------------------------


def test_a_bad_value_in_the_base_names_the_base(tmp_path: Path) -> None:
    text = BASE.replace("  key_version: 1\n", "  key_version: 1\n  i: 15\n")
    base = write(tmp_path / "base.yaml", text)
    unit = write(tmp_path / "sales.yaml", UNIT)

    problem = error(unit)

    assert_names(problem, base, line_of("i: 15", text), "secure_channel.i")


def test_an_unknown_field_in_the_base_names_the_base(tmp_path: Path) -> None:
    text = BASE + "polcy:\n  overwrite: never\n"
    base = write(tmp_path / "base.yaml", text)
    unit = write(tmp_path / "sales.yaml", UNIT)

    problem = error(unit)

    assert_names(problem, base, line_of("polcy:", text), "polcy")
    assert "did you mean policy?" in str(problem)


def test_a_bad_value_in_the_unit_names_the_unit(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", BASE)
    text = UNIT.replace('phone_home_url: "http:', 'phone_home_url: "ftp:')
    unit = write(tmp_path / "sales.yaml", text)

    assert_names(error(unit), unit, line_of("phone_home_url:", text), "phone_home_url")


def test_a_yaml_error_in_the_base_names_the_base(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", BASE.replace("protocol: SCP02", "protocol: [SCP02"))
    unit = write(tmp_path / "sales.yaml", UNIT)

    problem = error(unit)

    assert problem.path == base
    assert "YAML syntax error" in str(problem)


def test_a_base_of_another_format_names_the_base(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", BASE.replace("format: 1", "format: 2"))
    unit = write(tmp_path / "sales.yaml", UNIT)

    assert_names(error(unit), base, 1, "format")


def test_a_missing_base_names_the_extends_line(tmp_path: Path) -> None:
    unit = write(tmp_path / "sales.yaml", UNIT)

    problem = error(unit)

    assert_names(problem, unit, line_of("extends:", UNIT), "extends")
    assert str(problem).endswith(f"'base.yaml': there is no file {tmp_path / 'base.yaml'}")


def test_a_profile_that_extends_itself(tmp_path: Path) -> None:
    unit = write(tmp_path / "sales.yaml", UNIT.replace("base.yaml", "sales.yaml"))

    problem = error(unit)

    assert_names(problem, unit, line_of("extends:", UNIT), "extends")
    assert "makes a cycle" in str(problem)


def test_a_cycle_of_two_names_the_file_that_closes_it(tmp_path: Path) -> None:
    base_text = BASE + "extends: sales.yaml\n"
    base = write(tmp_path / "base.yaml", base_text)
    unit = write(tmp_path / "sales.yaml", UNIT)

    problem = error(unit)

    assert_names(problem, base, line_of("extends:", base_text), "extends")
    assert str(problem).endswith(
        f"'sales.yaml' makes a cycle: {unit} -> {base} -> {tmp_path / 'sales.yaml'}"
    )


def test_the_name_is_not_inherited(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", BASE)
    unit = write(tmp_path / "sales.yaml", UNIT.replace("name: corp-sales\n", ""))

    assert_names(error(unit), unit, 1, "name")


def test_issuer_data_missing_everywhere_names_the_unit(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", BASE)
    text = UNIT.replace(
        'phone_home_url: "http://sales.corp.test:7888/cgi-bin/home/index.cgi"\n', ""
    )
    unit = write(tmp_path / "sales.yaml", text)

    problem = error(unit)

    assert (problem.path, problem.field) == (unit, "phone_home_url")
    assert problem.problem.startswith("missing")


@pytest.mark.parametrize("value", ["''", "7", "[a.yaml]"])
def test_extends_must_name_a_file(tmp_path: Path, value: str) -> None:
    text = UNIT.replace("extends: base.yaml", f"extends: {value}")
    unit = write(tmp_path / "sales.yaml", text)

    assert_names(error(unit), unit, line_of("extends:", text), "extends")


# -- the token type and the content hash ---------------------------------------------------


def test_the_token_type_defaults_to_userkey_and_is_inherited(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", BASE + "token_type: soKey\n")
    unit = write(tmp_path / "sales.yaml", UNIT)

    assert load_profile(write(tmp_path / "minimal.yaml", MINIMAL)).token_type == "userKey"
    assert load_profile(unit).token_type == "soKey"


@pytest.mark.parametrize("value", ['"user key"', '"op.format"', '"1stKey"', "''"])
def test_a_token_type_must_be_a_tps_word(tmp_path: Path, value: str) -> None:
    text = MINIMAL + f"token_type: {value}\n"
    path = write(tmp_path / "profile.yaml", text)

    assert_names(error(path), path, line_of("token_type:", text), "token_type")


def test_the_hash_covers_the_base(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", BASE)
    unit = write(tmp_path / "sales.yaml", UNIT)
    before = load_profile(unit).content_hash

    base.write_text(BASE.replace("overwrite: force", "overwrite: never"))

    assert load_profile(unit).content_hash != before
    assert load_profile(unit).content_hash.startswith("sha256:")


# -- provision profile check -------------------------------------------------------------


def test_check_the_repository_units(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["profile", "check", str(UNITS)])

    out = capsys.readouterr().out.splitlines()
    base, engineering, sales = (
        UNITS / "base.yaml",
        UNITS / "units" / "engineering.yaml",
        UNITS / "units" / "sales.yaml",
    )
    assert status == 0
    assert out[0] == (
        f"{base}: base of {engineering}, {sales}; not a profile by itself: issuer_name missing; "
        "expected the issuer name the server answers with"
    )
    assert out[1] == (
        f"{engineering}: ok: example-engineering, https://eng.example.com:8443/tps/phoneHome, "
        "token type soKey"
    )
    assert out[2:5] == [
        f"    extends {base}",
        f"    secure_channel from {base}:5",
        f"    key_sets from {base}:10",
    ]
    assert f"{sales}: ok: example-sales" in out[5]
    assert out[-1] == "3 files: 2 ok, 1 base only, 0 errors"


def test_check_reports_errors_and_duplicate_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path / "base.yaml", BASE)
    write(tmp_path / "a.yaml", UNIT)
    write(tmp_path / "b.yaml", UNIT)
    bad = write(tmp_path / "c.yaml", UNIT.replace("name: corp-sales", "name: Corp Sales"))

    status = cli.main(["profile", "check", str(tmp_path)])

    out = capsys.readouterr().out
    assert status == 2
    assert f"{bad}: error: {bad}:2: name: 'Corp Sales'; expected" in out
    assert (
        f"error: the name corp-sales is used by {tmp_path / 'a.yaml'}, {tmp_path / 'b.yaml'}"
        in out
    )
    assert f"{tmp_path / 'base.yaml'}: ok: corp-base" not in out  # base lacks issuer data
    assert out.splitlines()[-1] == "4 files: 2 ok, 1 base only, 2 errors"


def test_check_an_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["profile", "check", str(tmp_path)]) == 2
    assert "no profiles (*.yaml, *.yml)" in capsys.readouterr().err
