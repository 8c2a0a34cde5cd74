"""Master keys held in a real SoftHSM2 token, reached through python-pkcs11.

The fixture makes a throw-away token under a temporary directory (SOFTHSM2_CONF), imports
random master keys into it sensitive and non-extractable, and checks that their values
cannot be read back. Tokens are then burned with profiles whose key sets name those keys:
the diversification runs inside the token. Only a machine without softhsm2 skips this file;
tests/run.sh installs it when run as root, as CI does.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from provision.burn import Outcome, burn_token
from provision.errors import ConfigError
from provision.gp.keys import Key, Scp
from provision.keysource.pkcs11 import library
from provision.transport import InProcessTransport
from provision.verify import VerifyConfig
from simulator.card import CardModel, MasterKey, VirtualToken, diversified_keys
from tests.burnkit import (
    EXTERNAL_AUTHENTICATE,
    padded_url,
    phone_home,
    plan_for,
    profile_text,
    write_profile,
)

MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
TOKEN = "provision-test"
PIN = "246810"
PIN_VARIABLE = "PROVISION_TEST_HSM_PIN"
TEST_KEY = bytes(range(0x40, 0x50))


@dataclass(frozen=True)
class Hsm:
    module: str
    masters: dict[str, bytes]  # object label -> the value imported (known to the test only)

    def source(self, label: str, pin: str = f"env:{PIN_VARIABLE}") -> str:
        return f"pkcs11:token={TOKEN};object={label}?module-path={self.module}&pin-source={pin}"


# label, key type, value; SoftHSM2 takes HMAC keys of 32 bytes and more only.
KEYS: tuple[tuple[str, KeyType, bytes], ...] = (
    ("kmc-visa2", KeyType.DES2, secrets.token_bytes(16)),
    ("kmc-emv", KeyType.DES3, secrets.token_bytes(24)),
    ("kmc-kdf3", KeyType.AES, secrets.token_bytes(32)),
    ("kmc-nist", KeyType.GENERIC_SECRET, secrets.token_bytes(32)),
    ("kmc-test", KeyType.DES2, TEST_KEY),
    ("kmc-loose", KeyType.DES2, secrets.token_bytes(16)),
)


def _softhsm() -> tuple[str, str]:
    """The module and softhsm2-util, or a skip naming what is missing."""
    module = next((path for path in MODULES if Path(path).is_file()), None)
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        pytest.skip(
            "softhsm2 is not installed (apt-get install softhsm2; tests/run.sh does it as root)"
        )
    return module, util


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    module, util = _softhsm()
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\n")
    with pytest.MonkeyPatch.context() as patch:
        # SoftHSM2 reads its configuration when the module is first initialised.
        patch.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run(
            [
                util,
                "--init-token",
                "--free",
                "--label",
                TOKEN,
                "--so-pin",
                "13579",
                "--pin",
                PIN,
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        )
        _import_keys(module)
        yield Hsm(module, {label: value for label, _, value in KEYS})


def _import_keys(module: str) -> None:
    token = library(module).get_token(token_label=TOKEN)
    with token.open(rw=True, user_pin=PIN) as session:
        for label, key_type, value in KEYS:
            loose = label == "kmc-loose"
            key = session.create_object(
                {
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.KEY_TYPE: key_type,
                    Attribute.VALUE: value,
                    Attribute.LABEL: label,
                    Attribute.TOKEN: True,
                    Attribute.SENSITIVE: not loose,
                    Attribute.EXTRACTABLE: loose,
                    Attribute.ENCRYPT: key_type is not KeyType.GENERIC_SECRET,
                    Attribute.SIGN: key_type in (KeyType.AES, KeyType.GENERIC_SECRET),
                }
            )
            if not loose:
                _assert_unreadable(key)


def _assert_unreadable(key: Any) -> None:
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[Attribute.VALUE]


@pytest.fixture
def pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_VARIABLE, PIN)


@pytest.fixture(scope="module")
def verify() -> Iterator[VerifyConfig]:
    with phone_home() as config:
        yield config


CASES = [
    ("SCP02", "15", "visa2", "kmc-visa2"),
    ("SCP02", "55", "emv-cps-1.1", "kmc-emv"),
    ("SCP03", "70", "kdf3", "kmc-kdf3"),
    ("SCP01", "05", "nist-sp800-108", "kmc-nist"),
]


@pytest.mark.parametrize(("protocol", "i", "method", "label"), CASES)
@pytest.mark.usefixtures("pin")
def test_a_token_is_burned_with_its_master_key_in_the_hsm(
    hsm: Hsm, verify: VerifyConfig, tmp_path: Path, protocol: str, i: str, method: str, label: str
) -> None:
    key_set = {"kvn": 2, "diversification": method, "source": hsm.source(label)}
    profile = write_profile(tmp_path, profile_text({"protocol": protocol, "i": i}, [key_set]))
    model = CardModel(protocol=Scp[protocol], i=int(i, 16))
    token = VirtualToken.blank(
        model=model,
        key_sets={2: MasterKey(method, hsm.masters[label])},
        kdd=secrets.token_bytes(10),
    )

    plan = plan_for(profile, verify)
    result = burn_token(InProcessTransport(token), plan)

    assert result.outcome is Outcome.VERIFIED, result.reason
    assert token.issuer_info == padded_url()
    assert token.commands_seen[EXTERNAL_AUTHENTICATE] == 1
    assert hsm.masters[label].hex().upper() not in repr(plan).upper()


@pytest.mark.usefixtures("pin")
def test_the_hsm_computes_the_master_kcv(hsm: Hsm, verify: VerifyConfig, tmp_path: Path) -> None:
    key_set = {"kvn": 2, "diversification": "visa2", "source": hsm.source("kmc-visa2")}
    profile = write_profile(tmp_path, profile_text({"protocol": "SCP02"}, [key_set]))

    described = plan_for(profile, verify).keys.describe(2)

    assert f"master KCV {Key(hsm.masters['kmc-visa2']).kcv}" in described


@pytest.mark.usefixtures("pin")
def test_a_test_key_in_the_hsm_is_refused(hsm: Hsm, verify: VerifyConfig, tmp_path: Path) -> None:
    key_set = {"kvn": 2, "diversification": "visa2", "source": hsm.source("kmc-test")}
    profile = write_profile(tmp_path, profile_text({"protocol": "SCP02"}, [key_set]))

    with pytest.raises(ConfigError, match=re.escape("holds the GlobalPlatform test key 40..4F")):
        plan_for(profile, verify)


@pytest.mark.usefixtures("pin")
@pytest.mark.parametrize(
    ("label", "method", "problem"),
    [
        ("kmc-none", "visa2", "no single secret key 'kmc-none'"),
        ("kmc-kdf3", "visa2", "is a AES key; visa2 needs DES2 or DES3"),
    ],
)
def test_bad_hsm_key_sets(
    hsm: Hsm, verify: VerifyConfig, tmp_path: Path, label: str, method: str, problem: str
) -> None:
    key_set = {"kvn": 2, "diversification": method, "source": hsm.source(label)}
    profile = write_profile(tmp_path, profile_text({"protocol": "SCP02"}, [key_set]))

    with pytest.raises(ConfigError, match=problem) as caught:
        plan_for(profile, verify)

    assert "key_sets[0].source" in str(caught.value)


def test_a_wrong_pin(
    hsm: Hsm, verify: VerifyConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_VARIABLE, "000000")
    key_set = {"kvn": 2, "diversification": "visa2", "source": hsm.source("kmc-visa2")}
    profile = write_profile(tmp_path, profile_text({"protocol": "SCP02"}, [key_set]))

    with pytest.raises(ConfigError, match=f"cannot log in to token '{TOKEN}'") as caught:
        plan_for(profile, verify)

    assert "000000" not in str(caught.value)


def test_a_pin_file(hsm: Hsm, verify: VerifyConfig, tmp_path: Path) -> None:
    pin_file = tmp_path / "hsm.pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    key_set = {
        "kvn": 2,
        "diversification": "visa2",
        "source": hsm.source("kmc-visa2", f"file:{pin_file}"),
    }
    profile = write_profile(tmp_path, profile_text({"protocol": "SCP02"}, [key_set]))

    assert plan_for(profile, verify).keys.kvns == (2,)


@pytest.mark.usefixtures("pin")
def test_an_extractable_master_key_is_named(
    hsm: Hsm, verify: VerifyConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_set = {"kvn": 2, "diversification": "visa2", "source": hsm.source("kmc-loose")}
    profile = write_profile(tmp_path, profile_text({"protocol": "SCP02"}, [key_set]))

    with caplog.at_level(logging.WARNING):
        plan_for(profile, verify)

    assert "is extractable" in caplog.text


@pytest.mark.usefixtures("pin")
def test_workers_share_the_token_safely(hsm: Hsm, verify: VerifyConfig, tmp_path: Path) -> None:
    # A batch runs one worker thread per reader; all of them ask the one session.
    key_set = {"kvn": 2, "diversification": "kdf3", "source": hsm.source("kmc-kdf3")}
    profile = write_profile(tmp_path, profile_text({"protocol": "SCP03"}, [key_set]))
    keys = plan_for(profile, verify).keys
    kdds = [secrets.token_bytes(10) for _ in range(40)]
    master = MasterKey("kdf3", hsm.masters["kmc-kdf3"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(lambda kdd: keys.card_keys(2, kdd), kdds))

    assert [k.keys if k else None for k in found] == [
        diversified_keys(master, kdd) for kdd in kdds
    ]


@pytest.mark.usefixtures("pin")
def test_two_key_sets_in_one_token(hsm: Hsm, verify: VerifyConfig, tmp_path: Path) -> None:
    # The second session finds the user logged in already (PKCS#11 logs in per token).
    key_sets = [
        {"kvn": 2, "diversification": "visa2", "source": hsm.source("kmc-visa2")},
        {"kvn": 3, "diversification": "emv-cps-1.1", "source": hsm.source("kmc-emv")},
    ]
    profile = write_profile(tmp_path, profile_text({"protocol": "SCP02"}, key_sets))
    kept_open = plan_for(profile, verify)  # a first run's provider, still open
    token = VirtualToken.blank(key_sets={3: MasterKey("emv-cps-1.1", hsm.masters["kmc-emv"])})

    result = burn_token(InProcessTransport(token), plan_for(profile, verify))

    assert result.outcome is Outcome.VERIFIED, result.reason
    assert kept_open.keys.kvns == (2, 3)
