"""ESC's own libraries meet every simulated token through pcscd, as ESC would.

After the tool has burned the tokens, Debian's coolkey PKCS#11 module must list each one as
a CoolKey token whose token info rebuilds the token id the tool recorded, and libckyapplet's
``CKYApplet_GetIssuerInfo`` must read back the URL the tool wrote (esc-phone-home.md §8).
The libraries run in a child process (``tests/esclibs.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from ctypes.util import find_library
from typing import Any

import pytest

from provision.burn import BurnPlan, Outcome, TokenResult
from simulator.bridge import ServeOptions
from simulator.cli import make_token
from tests.esclibs import COOLKEY_MODULE, esc_token_id
from tests.pcscd import URL, PcscStack, burn

pytestmark = pytest.mark.pcscd
PROBE_TIMEOUT = 60


@pytest.fixture
def coolkey_libs() -> None:
    if not COOLKEY_MODULE.is_file() or find_library("ckyapplet") is None:
        pytest.skip("ESC's libraries are not installed (Debian package coolkey)")


def _probe(*args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "tests.esclibs", *args],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _burn_all(pcscd: PcscStack, plan: BurnPlan) -> dict[str, TokenResult]:
    for index in range(len(pcscd.names)):
        pcscd.insert(index, make_token(), ServeOptions(t0=index % 2 == 1))
    readers = [pcscd.reader(index) for index in range(len(pcscd.names))]
    with ThreadPoolExecutor(len(readers)) as pool:
        results = list(pool.map(lambda reader: burn(reader, plan), readers))
    for reader in readers:
        reader.close()
    assert all(result.outcome is Outcome.VERIFIED for result in results)
    return {result.reader: result for result in results}


@pytest.mark.usefixtures("coolkey_libs")
def test_coolkey_lists_each_token_with_the_id_the_tool_recorded(
    pcscd: PcscStack, example_plan: BurnPlan
) -> None:
    recorded = _burn_all(pcscd, example_plan)

    tokens = {token["slot"]: token for token in _probe("pkcs11")}

    assert set(tokens) == set(pcscd.names)  # T=0 and T=1 tokens alike
    for name, result in recorded.items():
        token = tokens[name]
        # A CoolKey token: label "CoolKey <serial>" and the applet's protocol version as
        # firmware (0.0 would be ESC's "no applet"), esc-phone-home.md §8.
        assert token["label"] == f"CoolKey {token['serial']}"
        assert token["firmware"] == [1, 1]
        assert esc_token_id(token["manufacturer"], token["model"]) == result.token_id


@pytest.mark.usefixtures("coolkey_libs")
def test_libckyapplet_reads_back_the_url_the_tool_wrote(
    pcscd: PcscStack, example_plan: BurnPlan
) -> None:
    _burn_all(pcscd, example_plan)

    read = _probe("issuer-info", *pcscd.names)

    for name, found in zip(pcscd.names, read, strict=True):
        assert (found["select"], found["select_sw"]) == (0, 0x9000), name
        assert (found["status"], found["sw"]) == (0, 0x9000), name
        assert found["url"] == URL, name
        assert bytes.fromhex(found["raw"]) == URL.encode().ljust(224, b"\x00"), name


@pytest.mark.usefixtures("coolkey_libs")
def test_libckyapplet_reads_a_blank_token_as_empty(pcscd: PcscStack) -> None:
    pcscd.insert(0, make_token())
    reader = pcscd.reader(0)
    transport = reader.wait_for_card(5)
    assert transport is not None
    transport.close()

    (found,) = _probe("issuer-info", pcscd.name(0))

    assert found["url"] == ""
