"""``provision verify`` on saved card images: output, JSON, ESC settings, --write-prefs."""

from __future__ import annotations

import builtins
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision import cli
from provision.phonehome import PhoneHomeServer, read_prefs
from simulator import image
from simulator.card import VirtualToken

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "profiles" / "example-corp.yaml"
DATA = Path(__file__).parent / "data" / "serviceinfo"
CUID = bytes.fromhex("40906145c76224192d2b")
ID = "40906145c76224192d2b"
URL = "http://server.example.com:7888/cgi-bin/home/index.cgi"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def card(tmp_path: Path, issuer_info: bytes = URL.encode(), name: str = "card.json") -> Path:
    blank = VirtualToken.blank(CUID)
    token = VirtualToken(
        model=blank.model,
        cplc=blank.cplc,
        kdd=blank.kdd,
        key_sets=blank.key_sets,
        issuer_info=issuer_info.ljust(224, b"\x00"),
    )
    path = tmp_path / name
    image.save(token, path)
    return path


@pytest.fixture
def server() -> Iterator[PhoneHomeServer]:
    body = (DATA / "example-corp.xml").read_bytes()
    with PhoneHomeServer({"/cgi-bin/home/index.cgi": body}) as running:
        yield running


def verify(server: PhoneHomeServer, *args: str) -> int:
    redirect = f"server.example.com:7888=127.0.0.1:{server.port}"
    return cli.main(["verify", "--connect-to", redirect, "--no-prompt", *args])


def test_what_esc_would_resolve_and_cache(
    tmp_path: Path, server: PhoneHomeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status = verify(server, "--image", str(card(tmp_path)))

    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[:4] == [
        f"Token {ID} (image {tmp_path / 'card.json'})",
        f"  issuer info: valid, {URL} (1 read)",
        f"  Phone Home URL: {URL} (from the token's issuer info)",
        f"  request: GET {URL}?cuid={ID} -> HTTP 200, application/xml",
    ]
    assert "ESC would cache (rhcs names):" in out
    assert f'  user_pref("esc.key.{ID}.issuer.name", "Example Corp");' in out
    assert out[-1] == "Result: ok"


def test_json(tmp_path: Path, server: PhoneHomeServer, capsys: pytest.CaptureFixture[str]) -> None:
    status = verify(server, "--image", str(card(tmp_path)), "--json", "--prefs-dialect", "esc11")

    result = json.loads(capsys.readouterr().out)
    assert status == 0
    assert (result["ok"], result["token_id"], result["phone_home_source"]) == (True, ID, "token")
    assert result["prefs"][f"keyIssuer-{ID}"] == "Example Corp"
    assert result["cache_complete"] is False
    assert result["service_info"]["IssuerName"] == "Example Corp"


def test_against_a_profile_that_differs(
    tmp_path: Path, server: PhoneHomeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(
        EXAMPLE.read_text().replace("issuer_name: Example Corp", "issuer_name: Other")
    )

    status = verify(server, "--image", str(card(tmp_path)), "--profile", str(other))

    out = capsys.readouterr().out
    assert status == 1
    assert "mismatch: IssuerName: served 'Example Corp', profile says 'Other'" in out


def test_the_global_url_from_esc_prefs_and_the_profile_setting(
    tmp_path: Path, server: PhoneHomeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    defaults = tmp_path / "esc-prefs.js"
    defaults.write_text(f'pref("esc.global.phone.home.url","{URL}");\n')
    profile = tmp_path / "esc"
    profile.mkdir()
    (profile / "prefs.js").write_text('user_pref("esc.ignore.key.issuer.info", "yes");\n')
    path = card(tmp_path, b"http://elsewhere.example.com/phoneHome")

    status = verify(
        server, "--image", str(path), "--esc-prefs", str(defaults), "--esc-profile", str(profile)
    )

    out = capsys.readouterr().out
    assert status == 0
    assert f"Phone Home URL: {URL} (from esc.global.phone.home.url)" in out
    assert "warning: the token's issuer info was ignored (esc.ignore.key.issuer.info)" in out


def test_the_prompt_in_interactive_use(
    tmp_path: Path,
    server: PhoneHomeServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(builtins, "input", lambda text: URL)
    redirect = f"server.example.com:7888=127.0.0.1:{server.port}"

    status = cli.main(["verify", "--connect-to", redirect, "--image", str(card(tmp_path, b""))])

    assert status == 0
    assert "(from the prompt)" in capsys.readouterr().out


def test_no_url_without_a_prompt_is_a_failure(
    tmp_path: Path, server: PhoneHomeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status = verify(server, "--image", str(card(tmp_path, b"")))

    out = capsys.readouterr().out
    assert status == 1
    assert "issuer info: empty, none (all zero) (3 reads)" in out
    assert out.splitlines()[-1] == (
        "Result: stopped at resolve Phone Home URL: no Phone Home URL on the token, in "
        "esc-prefs.js or from a prompt"
    )


# -- existing profiles and --write-prefs ----------------------------------------------------

OLD_PROFILE = (
    "// Mozilla User Preferences\n"
    'user_pref("browser.startup.homepage", "about:blank");\n'
    f'user_pref("keyIssuerUrl-{ID}", "http://old.example.com/home?cuid={ID}");\n'
    f'user_pref("keyIssuer-{ID}", "Old Corp");\n'
    f'user_pref("Operation-{ID}", "http://old.example.com/nk_service");\n'
    f'user_pref("UI-{ID}", "http://old.example.com/ui");\n'
    f'user_pref("CAChainUI-{ID}", "http://old.example.com/ca");\n'
)


def test_a_stale_profile_is_reported(
    tmp_path: Path, server: PhoneHomeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "esc" / "abcd.default"
    profile.mkdir(parents=True)
    (profile / "prefs.js").write_text(OLD_PROFILE)

    status = verify(server, "--image", str(card(tmp_path)), "--esc-profile", str(tmp_path / "esc"))

    out = capsys.readouterr().out
    assert status == 0
    assert (
        f"  {profile / 'prefs.js'}: ESC 1.1 would use its cache for token {ID} and not phone home"
        in out
    )
    assert f'    keyIssuer-{ID}: ESC keeps "Old Corp", hiding "Example Corp"' in out


@pytest.mark.parametrize("dialect", ["rhcs", "esc11"])
def test_write_prefs_seeds_the_profile(
    tmp_path: Path, server: PhoneHomeServer, dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "esc"
    profile.mkdir()
    (profile / "prefs.js").write_text(OLD_PROFILE)

    status = verify(
        server,
        "--image",
        str(card(tmp_path)),
        "--prefs-dialect",
        dialect,
        "--write-prefs",
        str(profile),
    )

    assert status == 0
    text = (profile / "prefs.js").read_text()
    prefs = read_prefs(profile / "prefs.js")
    assert text.startswith(OLD_PROFILE.splitlines(keepends=True)[0])
    assert prefs["browser.startup.homepage"] == "about:blank"
    if dialect == "esc11":
        assert prefs[f"keyIssuer-{ID}"] == "Example Corp"
        assert prefs[f"keyIssuerUrl-{ID}"] == f"{URL}?cuid={ID}"
        assert f"CAChainUI-{ID}" not in prefs  # stale: the new ServiceInfo has none
    else:
        assert prefs[f"esc.key.{ID}.issuer.name"] == "Example Corp"
        assert prefs[f"keyIssuer-{ID}"] == "Old Corp"  # the other dialect is left alone
    assert f"Wrote {profile / 'prefs.js'}:" in capsys.readouterr().out


def test_write_prefs_to_a_new_profile_directory(tmp_path: Path, server: PhoneHomeServer) -> None:
    profile = tmp_path / "new-profile"

    assert verify(server, "--image", str(card(tmp_path)), "--write-prefs", str(profile)) == 0

    assert read_prefs(profile / "prefs.js")[f"esc.key.{ID}.phone.home.url"] == URL


def test_nothing_is_written_when_the_flow_fails(
    tmp_path: Path, server: PhoneHomeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "esc"
    path = card(tmp_path, b"\xff" * 224)

    status = verify(server, "--image", str(path), "--write-prefs", str(profile))

    assert status == 1
    assert not profile.exists()
    assert "no prefs written" in capsys.readouterr().err


# -- bad input ----------------------------------------------------------------------------


def test_not_a_card_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "card.json"
    path.write_text("{}")

    assert cli.main(["verify", "--image", str(path)]) == 2
    assert "not a card image" in capsys.readouterr().err


def test_a_missing_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "--image", str(tmp_path / "none.json")]) == 2
    assert "cannot read the card image" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["server.example.com=127.0.0.1:1", "a:1=b:x", "a:0=b:1"])
def test_a_bad_connect_to(tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["verify", "--image", str(card(tmp_path)), "--connect-to", value])

    assert status == 2
    assert f"--connect-to {value!r}" in capsys.readouterr().err
