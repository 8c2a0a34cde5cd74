"""One token end to end on the simulator: each burn policy, wrong keys, verification."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from provision.batch import run_batch
from provision.burn import BurnPlan, Outcome, Step, burn_token
from provision.gp.keys import Key, StaticKeys
from provision.phonehome.server import PhoneHomeServer
from provision.profile import Overwrite, Profile, load_profile
from provision.simulated import url_host_port
from provision.transport import InProcessTransport
from provision.verify import VerifyConfig, VerifyStep
from simulator.card import CardModel, VirtualToken
from tests.simhost import Host

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "profiles" / "example-corp.yaml"
SERVICEINFO = Path(__file__).parent / "data" / "serviceinfo"
URL = "http://server.example.com:7888/cgi-bin/home/index.cgi"  # the RHCS guide's URL
TEST_KEY = bytes(range(0x40, 0x50))


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile(EXAMPLE)


def _serve(body: bytes) -> PhoneHomeServer:
    return PhoneHomeServer({"/cgi-bin/home/index.cgi": body})


@pytest.fixture
def server() -> Iterator[PhoneHomeServer]:
    # A ServiceInfo written by hand from the RHCS guide, not generated from the profile.
    with _serve((SERVICEINFO / "example-corp.xml").read_bytes()) as running:
        yield running


def _plan(profile: Profile, server: PhoneHomeServer, **changes: object) -> BurnPlan:
    connect_to = {url_host_port(URL): (server.host, server.port)}
    plan = BurnPlan.from_profile(profile, verify=VerifyConfig(connect_to=connect_to, timeout=2))
    return replace(plan, **changes)  # type: ignore[arg-type]


def _token(keys: bytes = TEST_KEY, issuer_info: bytes | None = None) -> VirtualToken:
    static = StaticKeys.from_bytes(keys, keys, keys, aes=False)
    token = VirtualToken.blank(model=CardModel(), key_sets={1: static})
    if issuer_info is not None:
        _write_directly(token, issuer_info)
    return token


def _write_directly(token: VirtualToken, value: bytes) -> None:
    # Writing it with the product's own burn path would hide a bug in that path; the
    # simulator's independent test host writes it instead.
    host = Host(token, StaticKeys.from_bytes(TEST_KEY, TEST_KEY, TEST_KEY, aes=False))
    host.send(bytes.fromhex("00A4040007627601FF000000"))
    host.open()
    _, sw = host.send(host.wrap(0xF4, data=value.ljust(224, b"\x00")))
    assert sw == 0x9000
    token.power_on()


EXTERNAL_AUTHENTICATE = (0x84, 0x82)


def test_blank_token_is_written_and_verified(profile: Profile, server: PhoneHomeServer) -> None:
    token = _token()

    result = burn_token(InProcessTransport(token), _plan(profile, server))

    assert result.outcome is Outcome.VERIFIED, result.reason
    assert result.step is Step.DONE
    assert token.issuer_info == URL.encode().ljust(224, b"\x00")
    assert result.token_id == token.cuid.hex()
    assert result.url_written == URL
    record = result.record()
    tid = token.cuid.hex()
    assert record["request_url"] == f"{URL}?cuid={tid}"
    assert record["prefs"] == {
        f"esc.key.{tid}.tps.url": "http://server.example.com:7888/nk_service",
        f"esc.key.{tid}.tps.enrollment-ui.url": "http://server.example.com:7888/cgi_bin/esc.cgi",
        f"esc.key.{tid}.issuer.name": "Example Corp",
        f"esc.key.{tid}.phone.home.url": URL,
        f"esc.key.{tid}.EnrolledTokenBrowserURL": "http://www.test.example.com",
    }
    assert server.requests[-1].path == f"/cgi-bin/home/index.cgi?cuid={tid}"


def test_token_with_our_url_is_not_written_again(
    profile: Profile, server: PhoneHomeServer
) -> None:
    token = _token(issuer_info=URL.encode())
    writes = token.nv_writes

    result = burn_token(InProcessTransport(token), _plan(profile, server))

    assert result.outcome is Outcome.ALREADY_BURNED, result.reason
    assert token.nv_writes == writes
    assert token.commands_seen[EXTERNAL_AUTHENTICATE] == 1  # only the one _token() sent


def test_foreign_issuer_info_is_refused_and_left_alone(
    profile: Profile, server: PhoneHomeServer
) -> None:
    foreign = b"http://old.example.org/tps/phoneHome"
    token = _token(issuer_info=foreign)
    before, writes = token.issuer_info, token.nv_writes
    auths = token.commands_seen[EXTERNAL_AUTHENTICATE]

    result = burn_token(InProcessTransport(token), _plan(profile, server))

    assert result.outcome is Outcome.REFUSED
    assert "old.example.org" in (result.reason or "")
    assert token.issuer_info == before
    assert token.nv_writes == writes
    assert token.commands_seen[EXTERNAL_AUTHENTICATE] == auths


def test_foreign_issuer_info_is_replaced_when_the_run_forces_it(
    profile: Profile, server: PhoneHomeServer
) -> None:
    token = _token(issuer_info=b"http://old.example.org/tps/phoneHome")

    plan = _plan(profile, server, overwrite=Overwrite.FORCE)
    result = burn_token(InProcessTransport(token), plan)

    assert result.outcome is Outcome.VERIFIED, result.reason
    assert token.issuer_info.rstrip(b"\x00") == URL.encode()


def test_wrong_key_sends_no_external_authenticate(
    profile: Profile, server: PhoneHomeServer
) -> None:
    token = _token(keys=bytes(range(0x50, 0x60)))
    before = token.issuer_info

    result = burn_token(InProcessTransport(token), _plan(profile, server))

    assert result.outcome is Outcome.FAILED
    assert result.step is Step.AUTHENTICATE
    assert result.key_mismatch
    assert "card cryptogram does not verify" in (result.reason or "")
    assert token.commands_seen[EXTERNAL_AUTHENTICATE] == 0
    assert token.failed_auth_count == 0
    assert token.issuer_info == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("example-corp-other-issuer.xml", "IssuerName"),
        ("example-corp-other-operation.xml", "Operation"),
        ("example-corp-no-ui.xml", "UI"),
    ],
)
def test_verification_catches_a_different_serviceinfo(
    profile: Profile, body: str, field: str
) -> None:
    token = _token()
    with _serve((SERVICEINFO / body).read_bytes()) as server:
        result = burn_token(InProcessTransport(token), _plan(profile, server))

    assert result.outcome is Outcome.FAILED
    assert result.step is Step.VERIFY
    assert result.verification is not None
    assert result.verification.step is VerifyStep.COMPARED
    assert any(m.startswith(f"{field}:") for m in result.verification.mismatches)
    assert result.url_written == URL  # written, then caught


def test_guide_example_body_is_refused_by_name(profile: Profile) -> None:
    with _serve((SERVICEINFO / "guide-example.xml").read_bytes()) as server:
        result = burn_token(InProcessTransport(_token()), _plan(profile, server))

    assert result.outcome is Outcome.FAILED
    assert result.verification is not None
    assert result.verification.step is VerifyStep.PARSE
    assert "<Operation>" in (result.reason or "")


def test_unreachable_phone_home_server_fails_verification(profile: Profile) -> None:
    with _serve(b"") as server:
        plan = _plan(profile, server)
    # The server is closed now: its port refuses connections.
    result = burn_token(InProcessTransport(_token()), plan)

    assert result.outcome is Outcome.FAILED
    assert result.verification is not None
    assert result.verification.step is VerifyStep.FETCH


def test_batch_halts_after_consecutive_key_mismatches(
    profile: Profile, server: PhoneHomeServer
) -> None:
    wrong = bytes(range(0x50, 0x60))
    tokens = [_token(), _token(wrong), _token(wrong), _token(), _token()]
    seen: list[Outcome] = []

    summary = run_batch(
        (InProcessTransport(t) for t in tokens),
        _plan(profile, server),
        halt_after_key_mismatches=2,
        on_result=lambda r: seen.append(r.outcome),
    )

    assert seen == [Outcome.VERIFIED, Outcome.FAILED, Outcome.FAILED]
    assert summary.halted and "2 consecutive key mismatches" in summary.halted
    assert tokens[3].commands_seen.total() == 0


def test_a_wrong_mac_key_costs_one_attempt_per_card_and_halts_the_batch(
    profile: Profile, server: PhoneHomeServer
) -> None:
    # SCP02's card cryptogram is computed with S-ENC only (GPC 2.3.1 E.4.2.1), so a wrong
    # MAC key shows only when the card checks EXTERNAL AUTHENTICATE's C-MAC.
    enc = Key(TEST_KEY)
    wrong_mac = StaticKeys(enc, Key(bytes(range(0x60, 0x70))), enc)
    tokens = [VirtualToken.blank(model=CardModel(), key_sets={1: wrong_mac}) for _ in range(4)]

    summary = run_batch(
        (InProcessTransport(t) for t in tokens),
        _plan(profile, server),
        halt_after_key_mismatches=2,
    )

    assert summary.halted
    assert [t.failed_auth_count for t in tokens] == [1, 1, 0, 0]
    assert [t.commands_seen[EXTERNAL_AUTHENTICATE] for t in tokens] == [1, 1, 0, 0]
