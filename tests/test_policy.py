"""The policy section: its schema and what each policy does to a token.

CUID ranges are checked against integer arithmetic on the 10-byte values, written out here;
tokens are prepared with the simulator's independent test host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision import cli
from provision.burn import Outcome, burn_token
from provision.ledger import open_ledger
from provision.phonehome.server import PhoneHomeServer
from provision.profile import (
    DEFAULT_HALT_AFTER_FAILURES,
    CuidRange,
    Overwrite,
    Profile,
    ProfileError,
    parse_cuid,
    parse_cuid_range,
)
from provision.transport import InProcessTransport
from tests.linekit import (
    EXAMPLE,
    EXTERNAL_AUTHENTICATE,
    INITIALIZE_UPDATE,
    SET_ISSUER_INFO,
    URL,
    blank,
    example_profile,
    issuer_text,
    phone_home,
    plan_for,
    restore_logging,
    write_directly,
)
from tests.profilefiles import MINIMAL, edit, error, line_of, load

pytestmark = pytest.mark.usefixtures(restore_logging.__name__)

OLD_URL = "http://old.example.org/cgi-bin/home/index.cgi"
CUID_HEX = "40906145C76224192D2B"


@pytest.fixture(scope="module")
def profile() -> Profile:
    return example_profile()


@pytest.fixture(scope="module")
def server() -> Iterator[PhoneHomeServer]:
    with phone_home() as running:
        yield running


# -- CUIDs and ranges ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "40906145C76224192D2B",
        "40906145c76224192d2b",
        "4090 6145 C762 2419 2D2B",
        "40:90:61:45:C7:62:24:19:2D:2B",
        "40-90-61-45-c7-62-24-19-2d-2b",
    ],
)
def test_a_cuid_is_its_ten_bytes_whatever_the_spelling(spelling: str) -> None:
    assert parse_cuid(spelling) == bytes.fromhex(CUID_HEX)


def _as_bytes(number: int) -> bytes:
    return number.to_bytes(10, "big")


def test_a_range_compares_cuids_as_unsigned_ten_byte_numbers() -> None:
    low, high = 0x4090_6145_0000_0000_0100, 0x4090_6145_0000_0000_02FF
    allowed = parse_cuid_range("4090 6145 0000 0000 0100 .. 4090614500000000 02ff")

    assert allowed == CuidRange(_as_bytes(low), _as_bytes(high))
    for number, inside in [
        (low - 1, False),
        (low, True),
        (low + 0x80, True),
        (high, True),
        (high + 1, False),
        (0xFF << 72 | low, False),  # a larger first byte, same tail
    ]:
        assert (_as_bytes(number) in allowed) is inside, hex(number)


def test_a_prefix_covers_every_cuid_that_starts_with_it() -> None:
    allowed = parse_cuid_range("40906*")

    assert allowed.low == _as_bytes(0x40906 << 60)
    assert allowed.high == _as_bytes((0x40906 << 60) | ((1 << 60) - 1))
    assert bytes.fromhex(CUID_HEX) in allowed
    assert bytes.fromhex("40907000000000000000") not in allowed


def test_a_single_cuid_is_a_range_of_one() -> None:
    allowed = parse_cuid_range(CUID_HEX.lower())

    assert bytes.fromhex(CUID_HEX) in allowed
    assert _as_bytes(int(CUID_HEX, 16) + 1) not in allowed


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("40906145C76224192D2C..40906145C76224192D2B", "runs backwards"),
        ("40906145C76224192D2B-40906145C76224192D2C", "write a range as LOW..HIGH"),
        ("40906145C76224192D", "has 18 hex digits"),
        ("40906145C76224192D2G", "not a CUID"),
        ("40906145C76224192D2B*", "not a CUID prefix"),
        ("*", "not a CUID prefix"),
    ],
)
def test_bad_ranges_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_cuid_range(text)


# -- the schema ------------------------------------------------------------------------------


POLICY = """\
policy:
  overwrite: replace-listed
  replaces:
    - "http://old.example.org/cgi-bin/home/index.cgi"
    - "legacy"
  halt_after_failures: 3
  cuid_ranges:
    - "4090 6145 0000 0000 0000 .. 4090 6145 FFFF FFFF FFFF"
    - "A0*"
  dry_run: true
"""


def test_every_policy_field(tmp_path: Path) -> None:
    policy = load(tmp_path, MINIMAL + POLICY).policy

    assert policy.overwrite is Overwrite.REPLACE_LISTED
    assert policy.replaces == (OLD_URL, "legacy")
    assert policy.halt_after_failures == 3
    assert policy.halt_after_key_mismatches == 2
    assert policy.cuid_ranges == (
        CuidRange(bytes.fromhex("40906145000000000000"), bytes.fromhex("40906145FFFFFFFFFFFF")),
        CuidRange(bytes.fromhex("A0" + "00" * 9), bytes.fromhex("A0" + "FF" * 9)),
    )
    assert policy.dry_run is True


def test_policy_defaults(tmp_path: Path) -> None:
    policy = load(tmp_path, MINIMAL).policy

    assert (policy.overwrite, policy.replaces, policy.cuid_ranges) == (Overwrite.NEVER, (), ())
    assert policy.halt_after_failures == DEFAULT_HALT_AFTER_FAILURES == 5
    assert policy.dry_run is False
    assert policy.allows(bytes(10)) and policy.allows(b"\xff" * 10)


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ('    - "legacy"\n', "", None, None),  # fine: one value is enough
        (
            '  replaces:\n    - "http://old.example.org/cgi-bin/home/index.cgi"\n    - "legacy"\n',
            "",
            "policy.overwrite",
            "replace-listed needs policy.replaces",
        ),
        ('"legacy"', f'"{URL.replace("server", "tps")}"', None, None),
        (
            '"legacy"',
            '"http://tps.acme.test:7888/cgi-bin/home/index.cgi"',
            "policy.replaces[1]",
            "the profile's own phone_home_url",
        ),
        ('"legacy"', '"caf\\u00e9"', "policy.replaces[1]", "printable ASCII"),
        ('"legacy"', f'"{"x" * 224}"', "policy.replaces[1]", "224 bytes"),
        ('    - "A0*"', '    - "A0"', "policy.cuid_ranges[1]", "has 2 hex digits"),
        (
            "halt_after_failures: 3",
            "halt_after_failures: 0",
            "policy.halt_after_failures",
            "0 is out of range",
        ),
        ("dry_run: true", "dry_run: yes", "policy.dry_run", "write true or false"),
        (
            '  replaces:\n    - "http://old.example.org/cgi-bin/home/index.cgi"\n    - "legacy"\n',
            "  replaces: legacy\n",
            "policy.replaces",
            "expected a list",
        ),
    ],
)
def test_policy_errors_name_the_field_and_line(
    tmp_path: Path, old: str, new: str, field: str | None, words: str | None
) -> None:
    text = edit(old, new, MINIMAL + POLICY)
    if field is None:
        assert load(tmp_path, text).policy.overwrite is Overwrite.REPLACE_LISTED
        return
    path, problem = error(tmp_path, text)
    assert problem.field == field
    assert words is not None and words in problem.problem
    assert problem.line is not None and problem.path == path


def test_a_cuid_range_error_points_at_its_line(tmp_path: Path) -> None:
    text = edit('    - "A0*"', '    - "A0..0A"', MINIMAL + POLICY)

    _, problem = error(tmp_path, text)

    assert problem.line == line_of('"A0..0A"', text)
    assert isinstance(problem, ProfileError)


# -- what the policies do ----------------------------------------------------------------------


def test_replace_listed_overwrites_a_listed_value(
    profile: Profile, server: PhoneHomeServer
) -> None:
    token = blank()
    write_directly(token, OLD_URL.encode())
    plan = plan_for(
        profile, server, overwrite=Overwrite.REPLACE_LISTED, replaces=_encoded(OLD_URL)
    )

    result = burn_token(InProcessTransport(token), plan)

    assert result.outcome is Outcome.VERIFIED, result.reason
    assert issuer_text(token) == URL.encode()
    assert result.found == repr(OLD_URL)


@pytest.mark.parametrize(
    "held", [OLD_URL + "/", OLD_URL.upper(), "http://other.example.net/phoneHome"]
)
def test_replace_listed_leaves_any_other_value_alone(
    profile: Profile, server: PhoneHomeServer, held: str
) -> None:
    token = blank()
    write_directly(token, held.encode())
    auths = token.commands_seen[EXTERNAL_AUTHENTICATE]
    plan = plan_for(
        profile, server, overwrite=Overwrite.REPLACE_LISTED, replaces=_encoded(OLD_URL)
    )

    result = burn_token(InProcessTransport(token), plan)

    assert result.outcome is Outcome.REFUSED
    assert "policy.replaces does not list" in (result.reason or "")
    assert issuer_text(token) == held.encode()
    assert token.commands_seen[EXTERNAL_AUTHENTICATE] == auths


def _encoded(*values: str) -> frozenset[bytes]:
    return frozenset(value.encode().ljust(224, b"\x00") for value in values)


def test_a_token_outside_the_cuid_ranges_is_refused_untouched(
    profile: Profile, server: PhoneHomeServer
) -> None:
    token = blank(bytes.fromhex("40906145C76224192D2B"))
    plan = plan_for(profile, server, cuid_ranges=(parse_cuid_range("4091*"),))

    result = burn_token(InProcessTransport(token), plan)

    assert result.outcome is Outcome.REFUSED
    assert "CUID 40906145C76224192D2B is outside the allowed CUID ranges" in (result.reason or "")
    assert token.commands_seen[INITIALIZE_UPDATE] == 0
    assert token.nv_writes == 0


def test_a_token_inside_the_cuid_ranges_is_burned(
    profile: Profile, server: PhoneHomeServer
) -> None:
    token = blank(bytes.fromhex("40906145C76224192D2B"))
    low, high = "40906145 C7622419 2D00", "4090614F FFFFFFFF FFFF"
    ranges = (parse_cuid_range("00*"), parse_cuid_range(f"{low}..{high}"))
    result = burn_token(InProcessTransport(token), plan_for(profile, server, cuid_ranges=ranges))

    assert result.outcome is Outcome.VERIFIED, result.reason


@pytest.mark.parametrize(
    ("held", "overwrite", "outcome", "words"),
    [
        (None, Overwrite.NEVER, Outcome.PLANNED, "blank; a run would write"),
        (URL, Overwrite.NEVER, Outcome.PLANNED, "a run would verify it"),
        (OLD_URL, Overwrite.FORCE, Outcome.PLANNED, "a run would overwrite it"),
        (OLD_URL, Overwrite.NEVER, Outcome.REFUSED, "left as it was"),
    ],
)
def test_a_dry_run_reads_and_plans_and_writes_nothing(
    profile: Profile,
    server: PhoneHomeServer,
    held: str | None,
    overwrite: Overwrite,
    outcome: Outcome,
    words: str,
) -> None:
    token = blank()
    if held is not None:
        write_directly(token, held.encode())
    before, writes, channels = token.issuer_info, token.nv_writes, token.commands_seen.copy()

    plan = plan_for(profile, server, dry_run=True, overwrite=overwrite)
    result = burn_token(InProcessTransport(token), plan)

    assert result.outcome is outcome
    assert words in (result.reason or "")
    assert (token.issuer_info, token.nv_writes) == (before, writes)
    for command in (INITIALIZE_UPDATE, EXTERNAL_AUTHENTICATE, SET_ISSUER_INFO):
        assert token.commands_seen[command] == channels[command]


def test_a_dry_run_leaves_the_ledger_empty(
    tmp_path: Path, profile: Profile, server: PhoneHomeServer
) -> None:
    from provision.ledger import RunContext

    context = RunContext("example-corp", "sha256:x", URL, "s", "o", "v")
    with open_ledger(str(tmp_path / "ledger.db")) as ledger:
        journal = ledger.journal(context)
        plan = plan_for(profile, server, dry_run=True)
        result = burn_token(InProcessTransport(blank()), plan, journal=journal)
        journal.close()
        assert result.outcome is Outcome.PLANNED
        assert ledger.rows() == []


# -- overrides on the command line -------------------------------------------------------------


def _burn(tmp_path: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, dict]:
    argv = ["burn", str(EXAMPLE), "--simulated", "3", "--json"]
    status = cli.main([*argv, "--report", str(tmp_path / "r.jsonl"), *options])
    return status, json.loads(capsys.readouterr().out)


def test_cuid_range_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Random CUIDs never all fall on one value: every token is refused.
    status, summary = _burn(tmp_path, capsys, "--cuid-range", "00000000000000000000")

    assert status == 1
    assert (summary["refused"], summary["verified"]) == (3, 0)


def test_dry_run_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, summary = _burn(tmp_path, capsys, "--dry-run")

    assert status == 0
    assert (summary["planned"], summary["verified"]) == (3, 0)


def test_no_dry_run_overrides_a_profile_that_asks_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dry = tmp_path / "dry.yaml"
    dry.write_text(EXAMPLE.read_text().replace("policy:\n", "policy:\n  dry_run: true\n"))

    argv = ["burn", str(dry), "--simulated", "2", "--json", "--report", str(tmp_path / "r.jsonl")]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["planned"] == 2
    assert cli.main([*argv, "--no-dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] == 2


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--cuid-range", "12"], "--cuid-range: '12' has 2 hex digits"),
        (["--overwrite", "replace-listed"], "lists none"),
        (["--halt-after-failures", "0"], "--halt-after-failures takes a number"),
    ],
)
def test_bad_policy_options_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], words: str
) -> None:
    report = tmp_path / "r.jsonl"

    status = cli.main(
        ["burn", str(EXAMPLE), "--simulated", "1", "--report", str(report), *options]
    )

    err = capsys.readouterr().err
    assert status == 2
    assert words in err and err.count("\n") == 1
    assert not report.exists()
