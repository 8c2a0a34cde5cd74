"""The SQLite ledger: one row per attempt, its states in order, resumes, skips and the lock.

Rows are read back with plain ``sqlite3`` queries, not through the ledger's own reader, and
the states are observed from inside the card, at the moment each APDU arrives.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from provision.burn import Claim, Outcome, TokenResult, burn_token
from provision.ledger import (
    LedgerBusyError,
    LedgerError,
    LedgerJournal,
    RunContext,
    SqliteLedger,
    open_ledger,
)
from provision.phonehome.server import PhoneHomeServer
from provision.profile import Profile
from provision.transport import InProcessTransport
from simulator.card import VirtualToken
from tests.linekit import (
    EXAMPLE,
    SET_ISSUER_INFO,
    TEST_KEY,
    URL,
    SlowCard,
    blank,
    example_profile,
    issuer_text,
    phone_home,
    plan_for,
    write_directly,
)


@pytest.fixture(scope="module")
def profile() -> Profile:
    return example_profile()


@pytest.fixture(scope="module")
def server() -> Iterator[PhoneHomeServer]:
    with phone_home() as running:
        yield running


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


def context(profile: Profile, station: str = "line-1") -> RunContext:
    return RunContext(
        profile=profile.name,
        profile_hash=profile.content_hash,
        url=profile.phone_home_url,
        station=station,
        operator="alice",
        tool_version=version("phonehome-provision"),
    )


def rows(path: Path, token: VirtualToken | None = None) -> list[dict[str, Any]]:
    """The rows as SQLite itself returns them."""
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        sql, params = "SELECT * FROM provision_attempts ORDER BY id", ()
        if token is not None:
            sql = "SELECT * FROM provision_attempts WHERE token_id = ? ORDER BY id"
            params = (token.cuid.hex(),)
        found = [dict(row) for row in db.execute(sql, params)]
    return found


def state_of(path: Path, token: VirtualToken) -> str | None:
    found = rows(path, token)
    return found[-1]["state"] if found else None


def burn(
    path: Path, profile: Profile, server: PhoneHomeServer, card: Any, station: str = "line-1"
) -> TokenResult:
    with open_ledger(str(path)) as ledger:
        journal = ledger.journal(context(profile, station))
        try:
            return burn_token(
                InProcessTransport(card, reader="reader 0"),
                plan_for(profile, server),
                journal=journal,
            )
        finally:
            journal.close()


def test_states_are_committed_before_each_next_step(
    path: Path, profile: Profile, server: PhoneHomeServer
) -> None:
    token = blank()
    seen: dict[str, str | None] = {}
    powers = []

    def before(apdu: bytes) -> None:
        if tuple(apdu[:2]) == SET_ISSUER_INFO:
            seen["at SET ISSUER INFO"] = state_of(path, token)

    def on_power() -> None:
        powers.append(1)
        if len(powers) == 2:  # the reset that begins verification
            seen["at verification"] = state_of(path, token)

    result = burn(path, profile, server, SlowCard(token, before=before, on_power=on_power))

    assert result.outcome is Outcome.VERIFIED, result.reason
    assert seen == {"at SET ISSUER INFO": "started", "at verification": "written"}
    (row,) = rows(path)
    assert row["state"] == "verified" and row["id"] == result.attempt


def test_a_row_holds_who_what_where_and_when(
    path: Path, profile: Profile, server: PhoneHomeServer
) -> None:
    token = blank()

    burn(path, profile, server, token)

    (row,) = rows(path)
    assert row["token_id"] == token.cuid.hex()
    assert row["profile"] == "example-corp"
    assert row["profile_hash"] == "sha256:" + hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert (row["url"], row["url_written"]) == (URL, URL)
    assert (row["station"], row["reader"], row["operator"]) == ("line-1", "reader 0", "alice")
    assert row["tool_version"] == version("phonehome-provision")
    assert row["started_at"] <= row["written_at"] <= row["finished_at"]
    assert row["finished_at"].endswith("+00:00")
    assert (row["reason"], row["step"]) == (None, "done")


def test_refused_and_failed_rows_keep_the_reason(
    path: Path, profile: Profile, server: PhoneHomeServer
) -> None:
    foreign = blank()
    write_directly(foreign, b"http://old.example.org/phoneHome")
    wrong_keys = blank(keys=bytes(range(0x50, 0x60)))

    burn(path, profile, server, foreign)
    burn(path, profile, server, wrong_keys)

    refused, failed = rows(path)
    assert refused["state"] == "refused" and "old.example.org" in refused["reason"]
    assert refused["found"] == "'http://old.example.org/phoneHome'"
    assert failed["state"] == "failed" and failed["step"] == "open secure channel"
    assert "card cryptogram" in failed["reason"] and failed["url_written"] is None


def test_no_key_material_reaches_the_ledger(
    path: Path, profile: Profile, server: PhoneHomeServer
) -> None:
    burn(path, profile, server, blank())
    burn(path, profile, server, blank(keys=bytes(range(0x50, 0x60))))

    raw = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith("ledger"))
    for key in (TEST_KEY, bytes(range(0x50, 0x60))):
        for form in (key.hex(), key.hex().upper()):
            assert form.encode() not in raw
        assert key not in raw


def test_a_verified_token_is_skipped_on_the_next_run(
    path: Path, profile: Profile, server: PhoneHomeServer
) -> None:
    token = blank()
    burn(path, profile, server, token, station="line-1")
    seen_before = token.commands_seen.copy()

    again = burn(path, profile, server, token, station="line-2")

    assert again.outcome is Outcome.SKIPPED
    assert again.reason is not None and "already verified at station line-1" in again.reason
    assert f"ledger attempt {rows(path)[0]['id']}" in again.reason
    # Identified, then left alone: SELECT card manager and GET DATA CPLC only.
    assert (token.commands_seen - seen_before).total() == 2
    assert len(rows(path)) == 1


# -- crashes: a journal that dies with its process ---------------------------------------------


class Crash(BaseException):
    """The process is gone: nothing after this reaches the ledger."""


class Dying:
    """A journal that stops recording once the card says the process died."""

    def __init__(self, journal: LedgerJournal) -> None:
        self.journal = journal
        self.dead = False

    def claim(self, token_id: str, reader: str, *, record: bool) -> Claim:
        return self.journal.claim(token_id, reader, record=record)

    def written(self, claim: Claim, result: TokenResult) -> None:
        if not self.dead:
            self.journal.written(claim, result)

    def finish(self, claim: Claim, result: TokenResult) -> None:
        if not self.dead:
            self.journal.finish(claim, result)


def crash(path: Path, profile: Profile, server: PhoneHomeServer, token: VirtualToken, at: str):
    """Burn ``token`` and kill the run at ``at``: before the card takes SET ISSUER INFO,
    just after it took it, or as verification begins."""
    ledger = SqliteLedger(path)
    dying = Dying(ledger.journal(context(profile)))
    powers = []

    def die() -> None:
        dying.dead = True
        raise Crash

    def before(apdu: bytes) -> None:
        if tuple(apdu[:2]) == SET_ISSUER_INFO:
            if at == "after write":
                token.process(apdu)
            if at in ("before write", "after write"):
                die()

    def on_power() -> None:
        powers.append(1)
        if at == "verifying" and len(powers) == 2:
            die()

    card = SlowCard(token, before=before, on_power=on_power)
    with pytest.raises(Crash):
        burn_token(InProcessTransport(card), plan_for(profile, server), journal=dying)
    ledger.close()  # what the kernel does for a killed process: the lock goes


@pytest.mark.parametrize(
    ("at", "left", "holds_url"),
    [
        ("before write", "started", False),
        ("after write", "started", True),
        ("verifying", "written", True),
    ],
)
def test_an_interrupted_attempt_is_resumed_and_the_token_written_once(
    path: Path, profile: Profile, server: PhoneHomeServer, at: str, left: str, holds_url: bool
) -> None:
    token = blank()
    crash(path, profile, server, token, at)
    assert [row["state"] for row in rows(path)] == [left]
    assert (issuer_text(token) == URL.encode()) is holds_url

    result = burn(path, profile, server, token, station="line-2")

    assert result.outcome is Outcome.VERIFIED, result.reason
    assert result.resumed == left
    (row,) = rows(path)
    assert row["state"] == "verified" and row["id"] == result.attempt
    assert f"stopped at state {left}" in row["note"] and "station line-2" in row["note"]
    assert row["url_written"] == (URL if left == "written" or not holds_url else None)
    assert token.commands_seen[SET_ISSUER_INFO] == 1
    assert issuer_text(token) == URL.encode()


def test_a_failed_attempt_leaves_the_token_free_for_the_next(
    path: Path, profile: Profile, server: PhoneHomeServer
) -> None:
    token = blank()
    with phone_home() as gone:
        pass  # closed: verification cannot fetch
    first = burn(path, profile, server=gone, card=token)
    second = burn(path, profile, server, token)

    assert first.outcome is Outcome.FAILED and first.url_written == URL
    assert second.outcome is Outcome.ALREADY_BURNED, second.reason
    assert [row["state"] for row in rows(path)] == ["failed", "verified"]
    assert token.commands_seen[SET_ISSUER_INFO] == 1


# -- the file ---------------------------------------------------------------------------------


def test_one_run_at_a_time_holds_a_sqlite_ledger(path: Path, profile: Profile) -> None:
    with SqliteLedger(path):
        with pytest.raises(LedgerBusyError) as busy:
            SqliteLedger(path)
        assert str(path) in str(busy.value) and "PostgreSQL" in str(busy.value)
        with open_ledger(str(path), exclusive=False) as reader:
            assert reader.rows() == []
    with SqliteLedger(path):
        pass  # free again


def test_a_file_that_is_not_a_ledger(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("not a database, though it is long enough to look like one\n" * 40)

    with pytest.raises(LedgerError, match=r"notes\.txt"):
        open_ledger(str(other))


def test_a_ledger_of_another_schema_version(path: Path) -> None:
    with SqliteLedger(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("UPDATE provision_meta SET value = '9' WHERE name = 'schema'")

    with pytest.raises(LedgerError, match="schema version 9"):
        SqliteLedger(path)


def test_an_unwritable_place(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="missing"):
        open_ledger(str(tmp_path / "missing" / "ledger.db"))


def test_a_report_never_makes_a_ledger_of_another_file(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")

    with pytest.raises(LedgerError, match="is not a ledger"):
        open_ledger(str(other), exclusive=False)
    with sqlite3.connect(other) as db:
        assert [name for (name,) in db.execute("SELECT name FROM sqlite_master")] == ["notes"]


def test_a_refused_ledger_lets_go_of_its_lock(path: Path) -> None:
    with SqliteLedger(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("UPDATE provision_meta SET value = '9' WHERE name = 'schema'")
    for _ in range(2):  # the second attempt would be "in use" if the first kept the lock
        with pytest.raises(LedgerError, match="schema version 9"):
            SqliteLedger(path)


def test_a_postgresql_password_never_shows_in_a_message() -> None:
    pytest.importorskip("psycopg")
    import socket

    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]

    with pytest.raises(LedgerError) as refused:
        open_ledger(f"postgresql://line:s3cr3t-pw@127.0.0.1:{port}/ledger")

    message = str(refused.value)
    assert f"postgresql://line:***@127.0.0.1:{port}/ledger" in message
    assert "s3cr3t-pw" not in message
