"""Key sources: the syntax, environment variables, key files, the test-key rule, the profile
fields that name them, and the provider a burn asks."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from provision.errors import ConfigError
from provision.gp.diversify import Diversification, PlainMasterKey, diversify
from provision.gp.keys import Scp
from provision.keysource import (
    EnvSource,
    FileSource,
    KeySetSpec,
    Pkcs11Source,
    open_card_keys,
    parse_key_source,
)
from provision.profile import ProfileError, load_profile
from tests.burnkit import profile_text

BASE = Path("/profiles")
KDD = bytes(range(10))


# -- syntax ---------------------------------------------------------------------------------


def test_env_and_file_sources() -> None:
    assert parse_key_source("env:ACME_KMC", BASE) == EnvSource("ACME_KMC")
    assert parse_key_source("file:keys/acme.keys", BASE) == FileSource(BASE / "keys/acme.keys")
    assert parse_key_source("file:/etc/acme.keys", BASE) == FileSource(Path("/etc/acme.keys"))


def test_pkcs11_source() -> None:
    text = "pkcs11:token=acme%20hsm;object=kmc-1?module-path=/usr/lib/p11.so&pin-source=env:PIN"

    source = parse_key_source(text, BASE)

    assert source == Pkcs11Source(Path("/usr/lib/p11.so"), "acme hsm", "kmc-1", EnvSource("PIN"))
    assert str(source) == "pkcs11:token=acme hsm;object=kmc-1"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ACME_KMC", "names no kind of source"),
        ("vault:acme", "unknown kind of source 'vault'"),
        ("env:1BAD", "not an environment variable name"),
        ("file:", "names no file"),
        ("pkcs11:token=t;object=o?module-path=m", "needs pin-source"),
        ("pkcs11:object=o?module-path=m&pin-source=env:P", "needs token"),
        ("pkcs11:token=t;object=o?module-path=m&pin-value=1234", "a PIN written in the profile"),
        ("pkcs11:token=t;slot=1;object=o?module-path=m&pin-source=env:P", "attribute 'slot'"),
        ("pkcs11:token=t;object=o?module-path=m&pin-source=pkcs11:x", "pin-source takes"),
    ],
)
def test_bad_sources(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_key_source(text, BASE)


# -- environment variables and key files -------------------------------------------------


def _spec(
    source: EnvSource | FileSource, method: Diversification = Diversification.NONE
) -> KeySetSpec:
    protocol = Scp.SCP03 if method is Diversification.KDF3 else Scp.SCP02
    return KeySetSpec(1, protocol, method, False, "acme.yaml:9: key_sets[0].source", source=source)


def test_a_bare_variable_is_the_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    master = secrets.token_bytes(16)
    monkeypatch.setenv("ACME_KMC", master.hex())

    keys = open_card_keys([_spec(EnvSource("ACME_KMC"), Diversification.VISA2)])

    expected = diversify(Diversification.VISA2, PlainMasterKey(master, Diversification.VISA2), KDD)
    assert keys.card_keys(1, KDD).keys == expected  # type: ignore[union-attr]
    assert keys.card_keys(2, KDD) is None


def test_named_entries_in_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    enc, mac, dek = (secrets.token_bytes(16) for _ in range(3))
    monkeypatch.setenv("ACME_KEYS", f"enc={enc.hex()}; mac = {mac.hex()};dek={dek.hex().upper()}")

    key_set = open_card_keys([_spec(EnvSource("ACME_KEYS"))]).card_keys(1, KDD)

    assert key_set is not None
    assert [key_set.keys.enc.value, key_set.keys.mac.value, key_set.keys.dek.value] == [
        enc,
        mac,
        dek,
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "env:ACME is not set"),
        ("4041XY", "its value is not a key in hex digits"),
        ("enc=00", "takes enc, mac and dek"),
        ("colour=00", "unknown entry 'colour'"),
        ("00" * 15, "enc: 15 bytes; expected 16"),
    ],
)
def test_bad_variables(monkeypatch: pytest.MonkeyPatch, value: str | None, problem: str) -> None:
    if value is None:
        monkeypatch.delenv("ACME", raising=False)
    else:
        monkeypatch.setenv("ACME", value)

    with pytest.raises(ConfigError, match=problem) as caught:
        open_card_keys([_spec(EnvSource("ACME"))])

    assert str(caught.value).startswith("acme.yaml:9: key_sets[0].source: env:ACME")


def _key_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "acme.keys"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_a_private_key_file(tmp_path: Path) -> None:
    master = secrets.token_bytes(32)
    path = _key_file(tmp_path, f"# Acme KMC, ceremony 2024-05\n\nmaster = {master.hex()}\n")

    keys = open_card_keys([_spec(FileSource(path), Diversification.KDF3)])

    assert keys.card_keys(1, KDD) is not None
    assert "kdf3 from file:" in keys.describe(1)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660, 0o644])
def test_a_key_file_others_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path, f"master = {secrets.token_bytes(16).hex()}\n", mode)

    with pytest.raises(ConfigError, match=f"mode {mode:04o}.*chmod 600") as caught:
        open_card_keys([_spec(FileSource(path), Diversification.VISA2)])

    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("master 0011", "line 1: expected name = hex"),
        ("master = 00\nmaster = 11", "master is given twice"),
        ("enc = " + "00" * 16, "takes one master key"),
        ("master = zz", r"line 1 \(master\) is not a key"),
    ],
)
def test_bad_key_files(tmp_path: Path, text: str, problem: str) -> None:
    path = _key_file(tmp_path, text)

    with pytest.raises(ConfigError, match=problem):
        open_card_keys([_spec(FileSource(path), Diversification.VISA2)])


def test_a_missing_key_file_and_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        open_card_keys([_spec(FileSource(tmp_path / "none"), Diversification.VISA2)])
    tmp_path.chmod(0o700)
    with pytest.raises(ConfigError, match=r"cannot read it|not a regular file"):
        open_card_keys([_spec(FileSource(tmp_path), Diversification.VISA2)])


# -- the test-key rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "404142434445464748494A4B4C4D4E4F",
        "404142434445464748494A4B4C4D4E4F4041424344454647",
        "00" * 16,
        "303132333435363738393A3B3C3D3E3F",
    ],
)
def test_a_source_holding_a_well_known_test_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ACME_KMC", value)

    with pytest.raises(ConfigError, match=r"holds .*test_keys: true") as caught:
        open_card_keys([_spec(EnvSource("ACME_KMC"), Diversification.VISA2)])

    assert value.upper() not in str(caught.value).upper()


# -- the profile fields --------------------------------------------------------------------


def _load(
    tmp_path: Path, channel: dict[str, str | int | bool], key_set: dict[str, str | int | bool]
) -> object:
    path = tmp_path / "profile.yaml"
    path.write_text(profile_text(channel, [key_set]), encoding="utf-8")
    return load_profile(path)


def test_a_profile_names_a_source_and_a_method(tmp_path: Path) -> None:
    profile = _load(
        tmp_path,
        {"protocol": "SCP02", "i": "55"},
        {"kvn": 3, "diversification": "emv-cps-1.1", "source": "file:acme.keys"},
    )

    (key_set,) = profile.key_sets  # type: ignore[attr-defined]
    assert key_set.source == FileSource(tmp_path / "acme.keys")  # relative to the profile
    assert key_set.diversification is Diversification.EMV_CPS_11
    assert key_set.where == f"{tmp_path / 'profile.yaml'}:13: key_sets[0].source"


@pytest.mark.parametrize(
    ("protocol", "key_set", "field", "problem"),
    [
        (
            "SCP03",
            {"kvn": 1, "diversification": "visa2", "source": "env:K"},
            "diversification",
            "visa2 makes 3DES keys, for SCP01 and SCP02; SCP03 cannot use them",
        ),
        (
            "SCP02",
            {"kvn": 1, "diversification": "kdf3", "source": "env:K"},
            "diversification",
            "kdf3 makes AES keys, for SCP03",
        ),
        (
            "SCP02",
            {"kvn": 1, "diversification": "visa3", "source": "env:K"},
            "diversification",
            "expected none or visa2",
        ),
        ("SCP02", {"kvn": 1, "source": "env:1K"}, "source", "not an environment variable name"),
        (
            "SCP02",
            {"kvn": 1, "test_keys": True, "source": "env:K"},
            "source",
            "a test_keys: true set holds inline test keys",
        ),
        (
            "SCP02",
            {"kvn": 1, "test_keys": True, "diversification": "visa2", "enc": "00" * 16},
            "enc",
            "a visa2 key set holds one master key",
        ),
        (
            "SCP02",
            {"kvn": 1, "test_keys": True, "diversification": "emv-cps-1.1", "master": "00" * 8},
            "master",
            "8 bytes; expected 16 or 24",
        ),
        (
            "SCP02",
            {"kvn": 1, "source": "pkcs11:token=t;object=o?module-path=m&pin-source=env:P"},
            "source",
            "a pkcs11: key set needs a diversification method",
        ),
        (
            "SCP02",
            {"kvn": 1, "master": "00" * 16, "source": "env:K"},
            "master",
            "inline keys are only allowed with test_keys: true",
        ),
    ],
)
def test_bad_key_set_fields(
    tmp_path: Path, protocol: str, key_set: dict[str, str | int | bool], field: str, problem: str
) -> None:
    with pytest.raises(ProfileError) as caught:
        _load(tmp_path, {"protocol": protocol}, key_set)

    assert caught.value.field == f"key_sets[0].{field}"
    assert problem in str(caught.value)
    assert "00" * 8 not in str(caught.value)


@pytest.mark.parametrize(
    ("channel", "problem"),
    [
        (
            {"protocol": "SCP03", "i": "10", "security_level": "11"},
            "11 is not a level of SCP03 i=10",
        ),
        ({"protocol": "SCP01", "i": "55"}, "55 is not an SCP01 option this tool speaks"),
        ({"protocol": "SCP01", "security_level": "13"}, "expected 01 or 03"),
    ],
)
def test_levels_and_options_must_fit_the_protocol(
    tmp_path: Path, channel: dict[str, str | int | bool], problem: str
) -> None:
    key_set = {"kvn": 1, "source": "env:K"}
    if channel["protocol"] == "SCP03":
        key_set["diversification"] = "kdf3"

    with pytest.raises(ProfileError, match=problem):
        _load(tmp_path, channel, key_set)


def test_a_profile_of_every_kind_loads(tmp_path: Path) -> None:
    profile = _load(
        tmp_path,
        {"protocol": "SCP03", "i": "70", "security_level": "33"},
        {"kvn": 32, "test_keys": True, "diversification": "kdf3", "master": "11" * 32},
    )

    (key_set,) = profile.key_sets  # type: ignore[attr-defined]
    assert key_set.master == bytes.fromhex("11" * 32)
    assert "11" * 4 not in repr(key_set)
    assert key_set.check_value.startswith("kdf3 master KCV ")
    with pytest.raises(ConfigError, match="simulated tokens need inline keys"):
        _ = key_set.keys


# -- the provider ---------------------------------------------------------------------------


def test_the_provider_keeps_no_card_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_KMC", secrets.token_bytes(16).hex())
    keys = open_card_keys([_spec(EnvSource("ACME_KMC"), Diversification.VISA2)])

    first = keys.card_keys(1, KDD)
    second = keys.card_keys(1, bytes(reversed(KDD)))

    assert first is not None and second is not None
    assert first.keys != second.keys  # per card, from its KDD
    keys.close()
    assert keys.card_keys(1, KDD) is None and keys.kvns == ()


def test_a_variable_is_read_once_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_KMC", secrets.token_bytes(16).hex())
    keys = open_card_keys([_spec(EnvSource("ACME_KMC"), Diversification.VISA2)])
    before = keys.card_keys(1, KDD)

    os.environ["ACME_KMC"] = secrets.token_bytes(16).hex()

    assert keys.card_keys(1, KDD) == before
