"""No secret shown: burns with random canary keys at the most verbose log level, and a search
of everything they wrote for those keys, the card keys diversified from them and the session
keys, as upper- and lower-case hex, as a Python bytes repr and as base64.

The card keys come from the simulator's own diversification and the session keys are
recomputed here from the challenges the APDU trace recorded, so the search does not trust
the code under test to say what its secrets were.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision import cli
from provision.batch import run_batch
from provision.burn import Outcome
from provision.errors import ConfigError
from provision.gp import crypto
from provision.gp.keys import Scp, StaticKeys
from provision.log import TRAFFIC
from provision.report import JsonlReport
from provision.trace import ApduTrace
from provision.transport import InProcessTransport
from simulator.card import CardModel, MasterKey, VirtualToken, diversified_keys
from tests.burnkit import phone_home, plan_for, profile_text, write_profile


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def forms(secret: bytes) -> list[str]:
    """Every way the secret could be written out."""
    hex_text = secret.hex()
    return [
        hex_text.upper(),
        hex_text.lower(),
        repr(secret)[2:-1],
        base64.b64encode(secret).decode().rstrip("="),
    ]


def assert_absent(secrets_: list[bytes], texts: dict[str, str]) -> None:
    for secret in secrets_:
        for form in forms(secret):
            for where, text in texts.items():
                assert form not in text, f"a secret appears in {where}"


# -- the secrets a run had, recomputed from its trace ----------------------------------------


def _exchanges(trace: str) -> list[tuple[bytes, bytes]]:
    """(INITIALIZE UPDATE command, its response) pairs, in trace order.

    Readers run in parallel, so a command's response is the next line of the same reader.
    """
    lines = [line.split() for line in trace.splitlines()]
    lines = [parts for parts in lines if len(parts) >= 4 and parts[2] in "<>"]
    pairs = []
    for n, parts in enumerate(lines):
        if parts[2] == ">" and parts[3].startswith("8050"):
            reply = next(later for later in lines[n + 1 :] if later[1] == parts[1])
            pairs.append((bytes.fromhex(parts[3]), bytes.fromhex(reply[3])))
    return pairs


def session_keys(trace: str, card_keys: dict[bytes, StaticKeys]) -> list[bytes]:
    """S-ENC, S-MAC (and SCP03 S-RMAC) of every channel in the trace (GPC E.4.1, Amd D §6.2.1)."""
    found: list[bytes] = []
    for command, response in _exchanges(trace):
        keys = card_keys[response[:10]]
        host = command[5:13]
        if response[11] == Scp.SCP02:
            seq = response[12:14]
            found += [
                crypto.des3_cbc_encrypt(keys.enc.value, b"\x01\x82" + seq + bytes(12)),
                crypto.des3_cbc_encrypt(keys.mac.value, b"\x01\x01" + seq + bytes(12)),
            ]
        else:
            context, bits = host + response[13:21], 8 * len(keys.enc.value)
            found += [
                crypto.scp03_kdf(keys.enc.value, 0x04, context, bits),
                crypto.scp03_kdf(keys.mac.value, 0x06, context, bits),
                crypto.scp03_kdf(keys.mac.value, 0x07, context, bits),
            ]
    assert found, "the trace holds no secure channel"
    return found


# -- through the command line -----------------------------------------------------------


def test_a_verbose_cli_run_shows_no_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enc, mac, dek = (secrets.token_bytes(32) for _ in range(3))
    key_set = {"kvn": 48, "test_keys": True, "enc": enc.hex(), "mac": mac.hex(), "dek": dek.hex()}
    text = profile_text({"protocol": "SCP03", "i": "70", "security_level": "03"}, [key_set])
    profile = tmp_path / "canary.yaml"
    profile.write_text(text)
    log, trace, report = tmp_path / "run.log", tmp_path / "run.trace", tmp_path / "run.jsonl"

    status = cli.main(
        [
            "-vvv",
            "--log-file",
            str(log),
            "burn",
            str(profile),
            "--simulated",
            "3",
            "--json",
            "--report",
            str(report),
            "--trace",
            str(trace),
            "--no-progress",
        ]
    )

    out, err = capsys.readouterr()
    assert status == 0, err
    assert json.loads(out)["verified"] == 3
    texts = {
        "log": log.read_text(),
        "trace": trace.read_text(),
        "report": report.read_text(),
        "stdout": out,
        "stderr": err,
    }
    assert " TRAFFIC " in texts["log"]  # the most verbose level did run
    card_keys = {
        r[:10]: StaticKeys.from_bytes(enc, mac, dek, aes=True)
        for _, r in _exchanges(texts["trace"])
    }
    assert len(card_keys) == 3
    assert_absent([enc, mac, dek, *session_keys(texts["trace"], card_keys)], texts)


# -- through the library, with diversified keys and failures ------------------------------


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(TRAFFIC)
    yield stream
    root.removeHandler(handler)


@pytest.mark.parametrize(
    ("protocol", "method", "length"),
    [(Scp.SCP02, "visa2", 16), (Scp.SCP03, "kdf3", 32)],
)
def test_diversified_keys_and_their_failures_show_no_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    captured: io.StringIO,
    protocol: Scp,
    method: str,
    length: int,
) -> None:
    master, wrong = secrets.token_bytes(length), secrets.token_bytes(length)
    monkeypatch.setenv("CANARY_KMC", master.hex())
    key_set = {"kvn": 5, "diversification": method, "source": "env:CANARY_KMC"}
    profile = write_profile(tmp_path, profile_text({"protocol": protocol.name}, [key_set]))
    model = CardModel.for_protocol(protocol, 0x70 if protocol is Scp.SCP03 else None)
    tokens = [
        VirtualToken.blank(
            model=model, key_sets={5: MasterKey(method, m)}, kdd=secrets.token_bytes(10)
        )
        for m in (master, master, wrong)
    ]
    trace_path, report_path = tmp_path / "t.trace", tmp_path / "r.jsonl"

    with (
        phone_home() as verify,
        ApduTrace(trace_path) as trace,
        JsonlReport(report_path, {}) as report,
    ):
        plan = plan_for(profile, verify)
        results = []
        summary = run_batch(
            (trace.transport(InProcessTransport(t)) for t in tokens),
            plan,
            halt_after_key_mismatches=2,
            on_result=lambda r: (results.append(r), report.write(r.record())),
        )

    assert (summary.verified, summary.failed) == (2, 1)
    assert results[2].outcome is Outcome.FAILED and results[2].key_mismatch
    # What the host derived for every token (the third is not the card's), and the third
    # card's own keys.
    hosts = {t.kdd: diversified_keys(MasterKey(method, master), t.kdd) for t in tokens}
    cards = {**hosts, tokens[2].kdd: diversified_keys(MasterKey(method, wrong), tokens[2].kdd)}
    texts = {
        "log": captured.getvalue(),
        "trace": trace_path.read_text(),
        "report": report_path.read_text(),
        "reasons": "\n".join(r.reason or "" for r in results),
        "reprs": repr(plan) + repr(profile) + repr(plan.keys),
    }
    derived = [
        k.value
        for keys in [*hosts.values(), *cards.values()]
        for k in (keys.enc, keys.mac, keys.dek)
    ]
    channels = session_keys(texts["trace"], hosts) + session_keys(texts["trace"], cards)
    assert_absent([master, wrong, *derived, *channels], texts)


def test_key_source_errors_show_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = secrets.token_bytes(16)
    open_file = tmp_path / "open.keys"
    open_file.write_text(f"master = {canary.hex()}\n")
    open_file.chmod(0o644)
    errors = []
    for source, value in [
        ("env:CANARY", canary.hex()[:-1]),  # an odd number of digits
        ("env:CANARY", canary.hex() + "00"),  # 17 bytes
        ("env:CANARY", f"master={canary.hex()};enc={canary.hex()}"),
        (f"file:{open_file}", None),
    ]:
        if value is not None:
            monkeypatch.setenv("CANARY", value)
        key_set = {"kvn": 1, "diversification": "visa2", "source": source}
        profile = write_profile(tmp_path, profile_text({"protocol": "SCP02"}, [key_set]))
        with phone_home() as verify, pytest.raises(ConfigError) as caught:
            plan_for(profile, verify)
        errors.append(str(caught.value))

    assert_absent([canary, canary[:-1]], {"errors": "\n".join(errors)})
