"""Card images: round trips, atomic saves, and errors that name the bad field."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from provision.gp.keys import Scp, StaticKeys
from simulator import image
from simulator.card import CardModel, VirtualToken
from tests.simhost import Host

CUID = bytes.fromhex("ef890c6baf38e41a5cac")  # esc-phone-home.md §5
TEST_KEY = bytes(range(0x40, 0x50))
URL = b"http://server.example.com"


def _used_token(model: CardModel) -> VirtualToken:
    """A token with issuer info, life cycle 0F, a moved counter and one failed attempt."""
    aes = model.protocol == Scp.SCP03
    token = VirtualToken.blank(CUID, model=model)
    token.process(bytes.fromhex("00A4040007627601FF000000"))
    host = Host(token, StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=aes))
    host.open()
    host.send(host.wrap(0xF4, data=URL + bytes(224 - len(URL))))
    host.send(host.wrap(0xF0, p1=0x0F))
    host.initialize_update()
    host.external_authenticate(corrupt=True)
    return token


@pytest.mark.parametrize(
    "model",
    [CardModel(auth_failure_limit=5), CardModel.for_protocol(Scp.SCP03, 0x70)],
    ids=["scp02", "scp03"],
)
def test_round_trip_through_a_file(tmp_path: Path, model: CardModel) -> None:
    token = _used_token(model)
    path = tmp_path / "token.json"

    image.save(token, path)
    loaded = image.load(path)

    assert image.to_image(loaded) == image.to_image(token)
    assert loaded.model == token.model
    assert loaded.issuer_info.startswith(URL) and loaded.life_cycle == 0x0F
    assert loaded.failed_auth_count == 1
    assert loaded.sequence_counters == token.sequence_counters


def test_a_loaded_token_still_opens_a_channel(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    image.save(_used_token(CardModel()), path)
    token = image.load(path)

    Host(token, StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=False)).open()

    assert token.failed_auth_count == 0


def test_image_is_plain_json_with_hex(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    image.save(VirtualToken.blank(CUID), path)

    data = json.loads(path.read_text(encoding="utf-8"))

    assert data["cuid"] == CUID.hex().upper()
    assert data["issuer_info"] == "00" * 224
    assert data["key_sets"][0]["enc"] == TEST_KEY.hex().upper()
    assert data["model"]["protocol"] == "scp02" and data["model"]["i"] == "15"


def test_save_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token.json"
    image.save(VirtualToken.blank(CUID), path)
    before = path.read_bytes()

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        image.save(_used_token(CardModel()), path)

    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["token.json"]


def _break(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    target: Any = broken
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return broken


_DELETE = object()


@pytest.mark.parametrize(
    ("dotted", "value", "field"),
    [
        ("format", "something/2", "format"),
        ("cplc", _DELETE, "cplc"),
        ("cplc", "00" * 41, "cplc"),
        ("kdd", "not hex", "kdd"),
        ("issuer_info", 7, "issuer_info"),
        ("life_cycle", "0707", "life_cycle"),
        ("life_cycle", "03", "life_cycle"),
        ("locked", "no", "locked"),
        ("failed_auth_count", True, "failed_auth_count"),
        ("cuid", "00" * 10, "cuid"),
        ("model.protocol", "scp99", "model.protocol"),
        ("model.i", "1A", "model"),
        ("model.applet_levels", ["1"], "model.applet_levels"),
        ("model.atr", "3B", "model"),
        ("key_sets.0.enc", "4041", "key_sets[0]"),
        ("key_sets.0.kvn", _DELETE, "key_sets[0].kvn"),
        ("key_sets.0.sequence_counter", "0", "key_sets[0].sequence_counter"),
        ("key_sets", [], "key_sets"),
    ],
)
def test_bad_images_name_the_field(dotted: str, value: Any, field: str) -> None:
    good = image.to_image(VirtualToken.blank(CUID))

    with pytest.raises(ValueError, match=re.escape(f"image field '{field}'")):
        image.from_image(_break(good, dotted, value))


def test_duplicate_key_versions_are_refused() -> None:
    good = image.to_image(VirtualToken.blank(CUID))
    good["key_sets"].append(dict(good["key_sets"][0]))

    with pytest.raises(ValueError, match=r"key_sets\[1\]\.kvn"):
        image.from_image(good)


def test_not_an_object() -> None:
    with pytest.raises(ValueError, match="expected an object"):
        image.from_image([1, 2])


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{", encoding="utf-8")

    with pytest.raises(ValueError, match=re.escape("bad.json: not JSON")):
        image.load(path)
