"""``provision export``: each output against a hand-written file, then read back with the
tool's own parsers to the profile's values."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision import cli
from provision.phonehome import (
    TpsConfigError,
    issuer_info_setting,
    parse_service_info,
    read_cfg,
    read_global_phone_home_url,
    render_issuer_info,
)
from provision.profile import Profile, load_profile

REPO = Path(__file__).resolve().parent.parent
EXPECTED = Path(__file__).parent / "data" / "export"
PROFILES = {
    "example-corp": REPO / "profiles" / "example-corp.yaml",
    "engineering": Path(__file__).parent / "data" / "units" / "units" / "engineering.yaml",
}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # main() configures the root logger, as a program's entry point does; put it back.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


OPTIONS = {
    "tps.cfg": "--tps-cfg",
    "phoneHome.xml": "--phonehome-xml",
    "esc-prefs.js": "--esc-prefs",
}


@pytest.mark.parametrize("name", list(PROFILES))
@pytest.mark.parametrize("kind", list(OPTIONS))
def test_each_export_matches_its_hand_written_file(tmp_path: Path, name: str, kind: str) -> None:
    target = tmp_path / f"{name}.{kind}"

    status = cli.main(["export", str(PROFILES[name]), OPTIONS[kind], str(target)])

    assert status == 0
    assert target.read_bytes() == (EXPECTED / f"{name}.{kind}").read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


@pytest.mark.parametrize("name", list(PROFILES))
def test_the_exports_read_back_to_the_profile(tmp_path: Path, name: str) -> None:
    profile: Profile = load_profile(PROFILES[name])
    files = {kind: tmp_path / kind for kind in OPTIONS}
    args = [arg for kind, path in files.items() for arg in (OPTIONS[kind], str(path))]

    assert cli.main(["export", str(PROFILES[name]), *args]) == 0

    settings = read_cfg(files["tps.cfg"].read_text(), source="tps.cfg")
    assert issuer_info_setting(settings, profile.token_type) == profile.phone_home_url
    info = parse_service_info(files["phoneHome.xml"].read_bytes(), source="phoneHome.xml")
    assert (info.issuer_name, info.services) == (profile.issuer_name, profile.service_info)
    assert read_global_phone_home_url(files["esc-prefs.js"]) == profile.phone_home_url


def test_to_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["export", str(PROFILES["example-corp"]), "--tps-cfg", "-"])

    assert status == 0
    assert capsys.readouterr().out == (EXPECTED / "example-corp.tps.cfg").read_text()


def test_nothing_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", str(PROFILES["example-corp"])]) == 2
    assert "nothing to export" in capsys.readouterr().err


def test_a_bad_profile_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PROFILES["example-corp"].read_text().replace('i: "15"', "i: 15"))
    target = tmp_path / "tps.cfg"

    assert cli.main(["export", str(bad), "--tps-cfg", str(target)]) == 2

    assert not target.exists()
    assert "bad.yaml:" in capsys.readouterr().err


def test_an_unwritable_target_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "missing" / "tps.cfg"

    assert cli.main(["export", str(PROFILES["example-corp"]), "--tps-cfg", str(target)]) == 2

    assert f"cannot write {target}" in capsys.readouterr().err


# -- the CS.cfg reader ---------------------------------------------------------------------


def test_tps_settings_off_unless_enabled() -> None:
    text = (
        "# a CS.cfg fragment\n\n"
        "op.format.userKey.issuerinfo.enable=false\n"
        "op.format.userKey.issuerinfo.value=http://tps.example.com/tps/phoneHome\n"
        "op.format.soKey.issuerinfo.value=http://tps.example.com/so\n"
    )
    settings = read_cfg(text, source="CS.cfg")

    assert issuer_info_setting(settings, "userKey") is None
    assert issuer_info_setting(settings, "soKey") is None
    assert settings["op.format.userKey.issuerinfo.value"] == "http://tps.example.com/tps/phoneHome"


def test_a_line_that_is_not_a_setting() -> None:
    with pytest.raises(TpsConfigError, match=r"^CS.cfg:2: not a name=value line$"):
        read_cfg("a=b\nno equals sign here\n", source="CS.cfg")


@pytest.mark.parametrize(
    ("token_type", "url"), [("user key", "http://a/"), ("userKey", "http://a/\nx=y")]
)
def test_render_refuses_what_cs_cfg_cannot_carry(token_type: str, url: str) -> None:
    with pytest.raises(ValueError):
        render_issuer_info(token_type, url)
