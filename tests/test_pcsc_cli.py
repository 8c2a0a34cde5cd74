"""``provision readers`` and ``provision inspect``: in process on images, and through pcscd.

The expected values come from the simulator's documented defaults (simulator/README.md: GET
STATUS protocol 1.1, applet 1.4, 16 KiB of object memory, 1 PIN, 0 keys; life cycle 07) and
the ESC rules of esc-phone-home.md (token id = the CUID in lower-case hex; request URL =
``<url>?cuid=<token id>``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision import cli, pcsc
from simulator import image
from simulator.bridge import ServeOptions
from simulator.cli import FOREIGN_URL, make_token
from tests.pcscd import EXAMPLE, URL, PcscStack
from tests.test_pcsc import NO_SERVICE, PRESENT, FakeScard

CUID = bytes.fromhex("40906145C76224192D2B")
TOKEN_ID = "40906145c76224192d2b"
GLOBAL_URL = "http://global.example.net/phone-home"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # main() configures the root logger, as a program's entry point does; put it back.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _image(tmp_path: Path, state: str, **kwargs: str) -> Path:
    path = tmp_path / f"{state}.json"
    image.save(make_token(state, cuid=CUID, **kwargs), path)  # type: ignore[arg-type]
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, str], str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    rows = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return status, {key: value.strip() for key, value in rows.items()}, err


def test_inspect_a_blank_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, rows, err = _run(capsys, "inspect", "--image", str(_image(tmp_path, "blank")))

    assert (status, err) == (0, "")
    assert rows["CUID"] == "40906145C76224192D2B"
    assert rows["ESC token id"] == TOKEN_ID
    assert rows["Life cycle"] == "07 SELECTABLE (not enrolled)"
    assert rows["Applet"] == (
        "CoolKey applet 1.4, protocol 1.1, 16384 of 16384 bytes free, 1 PIN(s), 0 key(s)"
    )
    assert rows["Issuer info"] == "empty"
    assert rows["Phone Home"].startswith("ESC would not phone home: no Phone Home URL")


def test_inspect_a_burned_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _image(tmp_path, "burned", url=URL)

    status, rows, _ = _run(capsys, "inspect", "--image", str(path), "--profile", str(EXAMPLE))

    assert status == 0
    assert rows["Issuer info"] == URL
    assert rows["Phone Home"] == f"ESC would fetch {URL}?cuid={TOKEN_ID} (URL from token)"
    assert rows["Profile"] == "holds the Phone Home URL of profile example-corp"


def test_inspect_a_foreign_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _image(tmp_path, "foreign")

    status, rows, _ = _run(capsys, "inspect", "--image", str(path), "--profile", str(EXAMPLE))

    assert status == 0
    assert rows["Issuer info"] == FOREIGN_URL
    assert rows["Profile"] == "holds another issuer's value, not profile example-corp's"


def test_inspect_a_locked_token_reads_without_a_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, rows, _ = _run(capsys, "inspect", "--image", str(_image(tmp_path, "locked")))

    assert status == 0
    assert rows["ESC token id"] == TOKEN_ID
    assert "Problem" not in rows


def test_inspect_falls_back_on_the_global_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefs = tmp_path / "esc-prefs.js"
    prefs.write_text(f'pref("esc.global.phone.home.url", "{GLOBAL_URL}");\n')
    path = _image(tmp_path, "blank")

    status = cli.main(["inspect", "--image", str(path), "--esc-prefs", str(prefs), "--json"])

    record = json.loads(capsys.readouterr().out)
    assert status == 0
    assert record["phone_home_source"] == "global_prefs"
    assert record["request_url"] == f"{GLOBAL_URL}?cuid={TOKEN_ID}"
    assert record["issuer_info_state"] == "empty"
    assert (record["life_cycle"], record["applet_version"]) == ("07", "1.4")


def test_inspect_a_bad_image_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{")

    status, _, err = _run(capsys, "inspect", "--image", str(path))

    assert status == 2
    assert err.startswith(f"provision: error: {path}: not JSON")
    assert len(err.splitlines()) == 1


def test_readers_without_pcscd(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeScard()
    fake.establish = NO_SERVICE
    monkeypatch.setattr(pcsc, "_scard", lambda: fake)

    status, _, err = _run(capsys, "readers")

    assert status == 2
    assert "pcscd) is not running: start it" in err


def test_readers_lists_names_and_states(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeScard(["Reader A 00 00", "Reader B 00 00"])
    fake.states = {"Reader B 00 00": [PRESENT]}
    monkeypatch.setattr(pcsc, "_scard", lambda: fake)

    assert cli.main(["readers"]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert lines[0].split("  ") == ["Reader A 00 00", "empty"]
    assert lines[1].startswith("Reader B 00 00  card present  ATR 3B9A13")


# -- through pcscd -------------------------------------------------------------------------


@pytest.mark.pcscd
def test_readers_through_pcscd(pcscd: PcscStack, capsys: pytest.CaptureFixture[str]) -> None:
    pcscd.insert(3, make_token())
    transport = pcscd.reader(3).wait_for_card(5)
    assert transport is not None
    transport.close()

    assert cli.main(["readers", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert [r["reader"] for r in records] == pcscd.names
    assert [r["card"] for r in records].count("card present") == 1
    assert records[3]["card"] == "card present"


@pytest.mark.pcscd
def test_inspect_through_pcscd(pcscd: PcscStack, capsys: pytest.CaptureFixture[str]) -> None:
    pcscd.insert(1, make_token("burned", cuid=CUID, url=URL), ServeOptions(t0=True))
    transport = pcscd.reader(1).wait_for_card(5)
    assert transport is not None
    transport.close()

    status, rows, _ = _run(capsys, "inspect", "--reader", pcscd.name(1))

    assert status == 0
    assert rows["Reader"] == pcscd.name(1)
    assert rows["ESC token id"] == TOKEN_ID
    assert rows["Phone Home"] == f"ESC would fetch {URL}?cuid={TOKEN_ID} (URL from token)"


@pytest.mark.pcscd
def test_inspect_an_empty_or_unknown_reader(
    pcscd: PcscStack, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _run(capsys, "inspect", "--reader", pcscd.name(2))
    assert status == 2
    assert f"no card in '{pcscd.name(2)}': insert a token" in err

    status, _, err = _run(capsys, "inspect", "--reader", "Omnikey*")
    assert status == 2
    assert "no reader matches 'Omnikey*'" in err
