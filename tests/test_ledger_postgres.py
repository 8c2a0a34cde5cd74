"""A PostgreSQL ledger shared by stations: rows, skips, busy tokens, resumes, and two
stations racing for the same CUIDs without ever burning a token twice.

Each test gets a fresh database in a throw-away cluster (``tests/pgcluster.py``); rows are
read back with plain SQL through psycopg.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provision import cli
from provision.burn import Outcome, burn_token
from provision.ledger import LedgerJournal, RunContext, open_ledger
from provision.phonehome.server import PhoneHomeServer
from provision.profile import Profile
from provision.transport import InProcessTransport
from simulator.card import VirtualToken
from tests import pgcluster
from tests.imagetray import load, save
from tests.linekit import (
    REPO,
    SET_ISSUER_INFO,
    URL,
    blank,
    example_profile,
    phone_home,
    plan_for,
    restore_logging,
)

pytestmark = [
    pytest.mark.skipif(pgcluster.why_not() is not None, reason=str(pgcluster.why_not())),
    pytest.mark.usefixtures(restore_logging.__name__),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[pgcluster.Cluster]:
    running = pgcluster.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def url(cluster: pgcluster.Cluster) -> str:
    return cluster.create_database(f"ledger_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def profile() -> Profile:
    return example_profile()


@pytest.fixture(scope="module")
def server() -> Iterator[PhoneHomeServer]:
    with phone_home() as running:
        yield running


def _context(profile: Profile, station: str) -> RunContext:
    return RunContext(profile.name, profile.content_hash, URL, station, "bob", "test")


def _rows(url: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as db:
        return db.execute("SELECT * FROM provision_attempts ORDER BY id").fetchall()


def _copy(token: VirtualToken) -> VirtualToken:
    """The same token as another station's reader would see it: same CUID, own state."""
    return blank(token.cuid)


def test_rows_and_their_states(url: str, profile: Profile, server: PhoneHomeServer) -> None:
    token = blank()
    with open_ledger(url) as ledger:
        journal = ledger.journal(_context(profile, "A"))
        result = burn_token(InProcessTransport(token), plan_for(profile, server), journal=journal)
        journal.close()

    assert result.outcome is Outcome.VERIFIED, result.reason
    (row,) = _rows(url)
    assert (row["token_id"], row["state"], row["station"]) == (token.cuid.hex(), "verified", "A")
    assert row["url_written"] == URL and row["written_at"] is not None


def test_a_token_verified_at_another_station_is_reported_and_left_alone(
    url: str, profile: Profile, server: PhoneHomeServer
) -> None:
    token = blank()
    plan = plan_for(profile, server)
    with open_ledger(url) as a, open_ledger(url) as b:
        at_a, at_b = a.journal(_context(profile, "A")), b.journal(_context(profile, "B"))
        burn_token(InProcessTransport(token), plan, journal=at_a)
        copy = _copy(token)
        result = burn_token(InProcessTransport(copy), plan, journal=at_b)
        at_a.close()
        at_b.close()

    assert result.outcome is Outcome.SKIPPED
    assert "already verified at station A" in (result.reason or "")
    assert copy.commands_seen[SET_ISSUER_INFO] == 0
    assert [row["state"] for row in _rows(url)] == ["verified"]


def test_a_token_held_by_a_live_station_is_busy_elsewhere(url: str, profile: Profile) -> None:
    token_id = "a0" * 10
    with open_ledger(url) as a, open_ledger(url) as b:
        at_a, at_b = a.journal(_context(profile, "A")), b.journal(_context(profile, "B"))
        held = at_a.claim(token_id, "A reader 1", record=True)

        busy = at_b.claim(token_id, "B reader 1", record=True)

        assert held.attempt is not None and busy.attempt is None
        assert (
            busy.skip is not None and "being burned at station A, reader A reader 1" in busy.skip
        )
        at_a.close()
        at_b.close()


def test_a_crashed_station_leaves_a_row_another_resumes(
    url: str, profile: Profile, server: PhoneHomeServer
) -> None:
    token = blank()
    with open_ledger(url) as a:
        dead = a.journal(_context(profile, "A"))
        claim = dead.claim(token.cuid.hex(), "A reader 1", record=True)
        _drop(dead)  # the station is gone: its session, and with it the token lock, ends
    assert claim.attempt is not None

    with open_ledger(url) as b:
        at_b = b.journal(_context(profile, "B"))
        result = burn_token(InProcessTransport(token), plan_for(profile, server), journal=at_b)
        at_b.close()

    assert result.outcome is Outcome.VERIFIED and result.resumed == "started"
    (row,) = _rows(url)
    assert row["id"] == claim.attempt and row["state"] == "verified"
    assert row["station"] == "A" and "station B" in row["note"]


def _drop(journal: LedgerJournal) -> None:
    # Close the connection under the journal, as a killed process's would be: no unlock sent.
    journal._db.close()


def test_the_database_itself_refuses_a_second_live_attempt(url: str, profile: Profile) -> None:
    import psycopg

    with open_ledger(url) as ledger:
        journal = ledger.journal(_context(profile, "A"))
        journal.claim("b0" * 10, "r", record=True)
        journal.close()
    with psycopg.connect(url) as db, pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(
            "INSERT INTO provision_attempts (token_id, state, profile, profile_hash, url, "
            "station, reader, operator, tool_version, run_id, started_at) VALUES "
            "(%s, 'started', 'p', 'h', %s, 'X', 'r', 'o', 'v', 'run', 'now')",
            ("b0" * 10, URL),
        )


def test_ledger_report_reads_postgresql(
    url: str, profile: Profile, server: PhoneHomeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_ledger(url) as ledger:
        journal = ledger.journal(_context(profile, "A"))
        burn_token(InProcessTransport(blank()), plan_for(profile, server), journal=journal)
        journal.close()

    assert cli.main(["ledger", "report", url, "--format", "jsonl"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["state"] == "verified"


# -- two stations, two processes, the same CUIDs -------------------------------------------------


TOKENS = 16


def _tray(directory: Path, cuids: list[bytes]) -> None:
    directory.mkdir()
    for cuid in cuids:
        save(directory / f"{cuid.hex()}.json", blank(cuid), 0)


def test_two_stations_racing_for_the_same_cuids_burn_each_token_once(
    tmp_path: Path, url: str
) -> None:
    cuids = [bytes.fromhex(f"C0FFEE00000000000{n:03X}") for n in range(TOKENS)]
    trays = {station: tmp_path / station for station in ("A", "B")}
    for tray in trays.values():
        _tray(tray, cuids)
    go = tmp_path / "go"

    stations = {
        station: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.imagetray",
                str(tray),
                "--ledger",
                url,
                "--station",
                station,
                "--readers",
                "4",
                "--delay",
                "0.002",
                "--go",
                str(go),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for station, tray in trays.items()
    }
    go.touch()
    outputs = {}
    for station, child in stations.items():
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        outputs[station] = json.loads(out)

    writes = Counter()
    for tray in trays.values():
        for cuid in cuids:
            _, count = load(tray / f"{cuid.hex()}.json")
            writes[cuid.hex()] += count
    assert writes == Counter({cuid.hex(): 1 for cuid in cuids})

    rows = _rows(url)
    verified = Counter(row["token_id"] for row in rows if row["state"] == "verified")
    assert verified == Counter({cuid.hex(): 1 for cuid in cuids})
    assert not [row for row in rows if row["state"] in ("started", "written", "failed")]

    skipped = [
        line for out in outputs.values() for line in out["results"] if line["result"] == "skipped"
    ]
    assert len(skipped) == TOKENS  # each token: burned by one station, skipped by the other
    for line in skipped:
        # Verified at the other station, or being burned there (named once its row is in).
        assert line["reason"].startswith(("already verified at station", "being burned at"))
