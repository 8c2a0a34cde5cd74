"""The token-sim command line: new, show, and one-line errors with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provision.gp.keys import StaticKeys
from simulator import image
from simulator.cli import main
from tests.simhost import Host

CUID_HEX = "40906145C76224192D2B"
TEST_KEY = bytes(range(0x40, 0x50))
URL = b"http://[pki_hostname]:[pki_http_port]/tps/phoneHome"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def shown(out: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in out.splitlines())


def test_new_then_show_a_blank_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.json"

    status, out, _ = run(capsys, "new", str(path), "--cuid", CUID_HEX)
    assert status == 0 and CUID_HEX in out
    status, out, err = run(capsys, "show", str(path))

    fields = {k: v.strip() for k, v in shown(out).items()}
    assert status == 0 and err == ""
    assert fields == {
        "CUID": CUID_HEX,
        "ESC token id": "40906145c76224192d2b",
        "protocol": "SCP02 i=15",
        "life cycle": "07",
        "issuer info": "empty",
        "failed auth": "0 of 10",
        "locked": "no",
    }


@pytest.mark.parametrize(
    ("args", "protocol"),
    [
        (["--protocol", "scp03"], "SCP03 i=10"),
        (["--protocol", "scp03", "--i", "70"], "SCP03 i=70"),
    ],
)
def test_new_scp03(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], protocol: str
) -> None:
    path = tmp_path / "t.json"

    assert run(capsys, "new", str(path), *args)[0] == 0
    _, out, _ = run(capsys, "show", str(path))

    assert shown(out)["protocol"].strip() == protocol
    assert len(shown(out)["ESC token id"].strip()) == 20


def test_show_a_burned_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.json"
    run(capsys, "new", str(path))
    token = image.load(path)
    token.process(bytes.fromhex("00A4040007627601FF000000"))
    host = Host(token, StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=False))
    host.open()
    host.send(host.wrap(0xF4, data=URL + bytes(224 - len(URL))))
    host.initialize_update()
    host.external_authenticate(corrupt=True)
    image.save(token, path)

    _, out, _ = run(capsys, "show", str(path))

    fields = shown(out)
    assert fields["issuer info"].strip() == URL.decode()
    assert fields["failed auth"].strip() == "1 of 10"


def test_new_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.json"
    run(capsys, "new", str(path), "--cuid", CUID_HEX)

    status, _, err = run(capsys, "new", str(path))
    assert status == 2 and "exists" in err
    assert run(capsys, "new", str(path), "--force")[0] == 0
    assert json.loads(path.read_text(encoding="utf-8"))["cuid"] != CUID_HEX


def _corrupt(path: Path) -> str:
    path.write_text('{"format": "coolkey-token-image/1"}', encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["new", "{dir}/a.json", "--cuid", "4090"], "--cuid needs 10 bytes"),
        (["new", "{dir}/a.json", "--cuid", "zz"], "not hex"),
        (["new", "{dir}/a.json", "--protocol", "scp03", "--i", "15"], "i=15"),
        (["new", "{dir}/a.json", "--protocol", "scp01"], "invalid choice"),
        (["new", "{dir}/no/such/dir/a.json"], "No such file"),
        (["show", "{dir}/missing.json"], "No such file"),
        (["show", "{corrupt}"], "image field 'model': missing"),
        (["bogus"], "invalid choice"),
        ([], "required"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    corrupt = _corrupt(tmp_path / "corrupt.json")
    argv = [a.format(dir=tmp_path, corrupt=corrupt) for a in argv]

    status, out, err = run(capsys, *argv)

    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("token-sim: ")
    assert message in err and "Traceback" not in err
