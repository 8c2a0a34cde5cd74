"""The ledger: one durable row per burn attempt, for audits, resumes and shared stations.

A row follows its attempt: ``started`` once the token is identified and before anything is
written to it, ``written`` after SET ISSUER INFO succeeded, then ``verified``, or ``refused``
or ``failed`` with the reason. Each state is committed before the burn goes on, so a crash
(even kill -9) leaves a ``started`` or ``written`` row. When that token is seen again the
burn resumes the row: it reads the token, verifies it if it holds the URL, writes it only if
it is still blank. A ``verified`` row makes every later run skip the token.

Two back ends hold the same table. A SQLite file (stdlib ``sqlite3``, write-ahead log) serves
one run at a time, which a lock file next to it enforces. PostgreSQL (``psycopg``) serves
several stations at once: a station holds a session-level advisory lock on a token while it
burns it, so another station seeing the same token reports it as busy, and a unique index
over the live states (started, written, verified) of a token and URL makes a second live row
impossible whatever happens. A crashed station's locks end with its connection, which is how
a ``started`` row is known to be abandoned rather than in progress.

No key material is ever written here: rows hold token ids, URLs, names and reasons.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .burn import Claim, JournalError, Outcome, TokenResult

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
STATES = ("started", "written", "verified", "refused", "failed")

COLUMNS = (
    "id",
    "token_id",
    "state",
    "reason",
    "note",
    "step",
    "profile",
    "profile_hash",
    "url",
    "url_written",
    "found",
    "station",
    "reader",
    "operator",
    "tool_version",
    "run_id",
    "overrides",
    "started_at",
    "written_at",
    "finished_at",
)

_STATE_OF = {
    Outcome.VERIFIED: "verified",
    Outcome.ALREADY_BURNED: "verified",
    Outcome.REFUSED: "refused",
    Outcome.FAILED: "failed",
}

_LIVE_SQL = "('started', 'written', 'verified')"
_STATES_SQL = "('started', 'written', 'verified', 'refused', 'failed')"

# The columns a started row is inserted with, in the order of _INSERT's marks.
_INSERTED = (
    "token_id",
    "state",
    "step",
    "profile",
    "profile_hash",
    "url",
    "station",
    "reader",
    "operator",
    "tool_version",
    "run_id",
    "overrides",
    "started_at",
)
_INSERT = (
    "INSERT INTO provision_attempts (token_id, state, step, profile, profile_hash, url, "
    "station, reader, operator, tool_version, run_id, overrides, started_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"
)
_ROWS = "SELECT * FROM provision_attempts ORDER BY id"
_ROWS_ONE = "SELECT * FROM provision_attempts WHERE token_id = ? ORDER BY id"


def _schema(id_column: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE IF NOT EXISTS provision_attempts (
            id {id_column},
            token_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN {_STATES_SQL}),
            reason TEXT,
            note TEXT,
            step TEXT,
            profile TEXT NOT NULL,
            profile_hash TEXT NOT NULL,
            url TEXT NOT NULL,
            url_written TEXT,
            found TEXT,
            station TEXT NOT NULL,
            reader TEXT NOT NULL,
            operator TEXT NOT NULL,
            tool_version TEXT NOT NULL,
            run_id TEXT NOT NULL,
            overrides TEXT,
            started_at TEXT NOT NULL,
            written_at TEXT,
            finished_at TEXT
        )""",
        # At most one live attempt per token and URL: the guard against burning twice.
        "CREATE UNIQUE INDEX IF NOT EXISTS provision_attempts_live "
        f"ON provision_attempts (token_id, url) WHERE state IN {_LIVE_SQL}",
        "CREATE INDEX IF NOT EXISTS provision_attempts_token ON provision_attempts (token_id)",
        "CREATE TABLE IF NOT EXISTS provision_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO provision_meta (name, value) VALUES ('schema', ?) ON CONFLICT DO NOTHING",
    )


class LedgerError(JournalError):
    """The ledger cannot be opened, read or written; the message names it."""


class LedgerBusyError(LedgerError):
    """A SQLite ledger is in use by another run."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every row of one run shares."""

    profile: str
    profile_hash: str
    url: str
    station: str
    operator: str
    tool_version: str
    overrides: str | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True, slots=True)
class _Live:
    """A live row of a token: verified, or an attempt in progress or interrupted."""

    id: int
    state: str
    station: str
    reader: str
    started_at: str
    finished_at: str | None


def open_ledger(target: str, *, exclusive: bool = True) -> Ledger:
    """The ledger at ``target``: a PostgreSQL URL or a SQLite file path.

    ``exclusive`` (for burning) takes a SQLite file's lock; reports read without it.
    """
    if target.startswith(("postgresql://", "postgres://")):
        return PostgresLedger(target)
    return SqliteLedger(Path(target), exclusive=exclusive)


class Ledger(ABC):
    """A ledger back end. Journals (one per reader worker) do the recording."""

    @property
    @abstractmethod
    def name(self) -> str:
        """The ledger for messages: a path, or a URL without its password."""

    @abstractmethod
    def journal(self, context: RunContext) -> LedgerJournal:
        """A journal for one worker thread; close it when the worker ends."""

    @abstractmethod
    def rows(self, *, token_id: str | None = None) -> list[dict[str, Any]]:
        """Every attempt, oldest first, as column → value."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Connection(ABC):
    """One connection's statements and token locks, as the journal needs them."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def insert_started(self, values: Sequence[object]) -> int | None:
        """Insert a started row (values in :data:`_INSERTED` order); None when the live
        index already holds one."""

    @abstractmethod
    def try_lock(self, token_id: str) -> bool: ...

    @abstractmethod
    def unlock(self, token_id: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class LedgerJournal:
    """Records the attempts of one worker: :class:`provision.burn.Journal`."""

    def __init__(self, connection: _Connection, context: RunContext) -> None:
        self._db = connection
        self._context = context
        self._held: dict[int, str] = {}  # attempt → token id, while its lock is held

    def claim(self, token_id: str, reader: str, *, record: bool) -> Claim:
        if not self._db.try_lock(token_id):
            return Claim(skip=self._busy(token_id))
        keep = False
        try:
            live = self._live(token_id)
            if live is not None and live.state == "verified":
                return Claim(skip=self._verified(live))
            if not record:
                return Claim(resumed=live.state if live else None)
            claim = self._resume(live, reader) if live else self._start(token_id, reader)
            keep = claim.attempt is not None
            if keep:
                assert claim.attempt is not None
                self._held[claim.attempt] = token_id
            return claim
        finally:
            if not keep:
                self._db.unlock(token_id)

    def written(self, claim: Claim, result: TokenResult) -> None:
        self._db.query(
            "UPDATE provision_attempts SET state = 'written', url_written = ?, step = ?, "
            "written_at = ? WHERE id = ?",
            (result.url_written, result.step.value, now(), claim.attempt),
        )

    def finish(self, claim: Claim, result: TokenResult) -> None:
        assert claim.attempt is not None
        state = _STATE_OF.get(result.outcome, "failed")
        try:
            self._db.query(
                "UPDATE provision_attempts SET state = ?, reason = ?, step = ?, found = ?, "
                "url_written = COALESCE(?, url_written), finished_at = ? WHERE id = ?",
                (
                    state,
                    result.reason,
                    result.step.value,
                    result.found,
                    result.url_written,
                    now(),
                    claim.attempt,
                ),
            )
        finally:
            self._release(self._held.pop(claim.attempt, None))
        logger.debug("ledger attempt %d: %s", claim.attempt, state)

    def close(self) -> None:
        for token_id in self._held.values():
            self._release(token_id)
        self._held.clear()
        self._db.close()

    def _release(self, token_id: str | None) -> None:
        # A lock that cannot be released (a lost connection) goes with its session anyway.
        if token_id is not None:
            with suppress(LedgerError):
                self._db.unlock(token_id)

    def _live(self, token_id: str) -> _Live | None:
        # XXX: only this run's URL is looked at, so an attempt interrupted while burning
        # another URL stays 'started' or 'written' until a run burning that URL sees the token.
        rows = self._db.query(
            "SELECT id, state, station, reader, started_at, finished_at FROM provision_attempts "
            "WHERE token_id = ? AND url = ? AND state IN ('started', 'written', 'verified')",
            (token_id, self._context.url),
        )
        return _Live(*rows[0]) if rows else None

    def _start(self, token_id: str, reader: str) -> Claim:
        context = self._context
        values: dict[str, object] = {
            "token_id": token_id,
            "state": "started",
            "step": "identify",
            "profile": context.profile,
            "profile_hash": context.profile_hash,
            "url": context.url,
            "station": context.station,
            "reader": reader,
            "operator": context.operator,
            "tool_version": context.tool_version,
            "run_id": context.run_id,
            "overrides": context.overrides,
            "started_at": now(),
        }
        attempt = self._db.insert_started(tuple(values[name] for name in _INSERTED))
        if attempt is None:
            # Only a station that bypassed the token lock could have got here first.
            return Claim(skip=self._busy(token_id))
        return Claim(attempt=attempt)

    def _resume(self, live: _Live, reader: str) -> Claim:
        # The lock is ours, so whoever left this row is gone: a crash, a kill, a lost link.
        context = self._context
        note = (
            f"resumed at {now()} by station {context.station}, reader {reader}, run "
            f"{context.run_id}: the attempt had stopped at state {live.state}"
        )
        self._db.query("UPDATE provision_attempts SET note = ? WHERE id = ?", (note, live.id))
        logger.info("ledger attempt %d: resuming an interrupted attempt (%s)", live.id, live.state)
        return Claim(attempt=live.id, resumed=live.state)

    def _verified(self, live: _Live) -> str:
        here = live.station == self._context.station
        where = f"this station ({live.station})" if here else f"station {live.station}"
        return (
            f"already verified at {where}, reader {live.reader}, on {live.finished_at} "
            f"(ledger attempt {live.id}); left as it was"
        )

    def _busy(self, token_id: str) -> str:
        """Why a token whose lock another session holds is left alone."""
        rows = self._db.query(
            "SELECT id, state, station, reader, started_at, finished_at FROM provision_attempts "
            "WHERE token_id = ? AND state IN ('started', 'written', 'verified') "
            "ORDER BY id DESC",
            (token_id,),
        )
        live = _Live(*rows[0]) if rows else None
        if live is not None and live.state == "verified":
            return self._verified(live)  # finished a moment ago; its lock is going
        if live is not None:
            return (
                f"being burned at station {live.station}, reader {live.reader}, since "
                f"{live.started_at}; left as it was"
            )
        return "being burned at another station or reader (just started); left as it was"


# -- SQLite --------------------------------------------------------------------------------


class SqliteLedger(Ledger):
    """A ledger in one SQLite file; one run at a time holds it (``<file>.lock``)."""

    def __init__(self, path: Path, *, exclusive: bool = True) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._held: set[str] = set()
        self._lock_file = _take_lock(path) if exclusive else None
        try:
            self._connection = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=10
            )
        except sqlite3.Error as exc:
            self._release()
            raise LedgerError(f"cannot use the ledger {path}: {exc}") from None
        try:
            self._setup(create=exclusive)
        except (sqlite3.Error, LedgerError) as exc:
            self.close()
            if isinstance(exc, LedgerError):
                raise
            raise LedgerError(f"cannot use the ledger {path}: {exc}") from None

    @property
    def name(self) -> str:
        return str(self.path)

    def _setup(self, *, create: bool) -> None:
        """Create the tables for a run; a reader only checks they are there."""
        db = self._connection
        if create:
            # WAL: a commit is one append, and readers (reports) never block the batch.
            # FULL syncs every commit, so a row survives a power cut as well as kill -9.
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _schema("INTEGER PRIMARY KEY AUTOINCREMENT"):
                    params = (SCHEMA_VERSION,) if "?" in statement else ()
                    db.execute(statement, params)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if not {"provision_meta", "provision_attempts"} <= tables:
            raise LedgerError(f"{self.path} is not a ledger: it has no attempts table")
        (version,) = db.execute(
            "SELECT value FROM provision_meta WHERE name = 'schema'"
        ).fetchone()
        _check_version(self.name, version)

    def journal(self, context: RunContext) -> LedgerJournal:
        return LedgerJournal(_SqliteConnection(self), context)

    def rows(self, *, token_id: str | None = None) -> list[dict[str, Any]]:
        sql, params = (_ROWS_ONE, (token_id,)) if token_id else (_ROWS, ())
        with self._mutex:
            try:
                cursor = self._connection.execute(sql, params)
                return _as_dicts(cursor.description, cursor.fetchall())
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger {self.path}: {exc}") from None

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._mutex:
            try:
                return self._connection.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise LedgerError(f"ledger {self.path}: {exc}") from None

    def try_lock(self, token_id: str) -> bool:
        with self._mutex:
            if token_id in self._held:
                return False
            self._held.add(token_id)
            return True

    def unlock(self, token_id: str) -> None:
        with self._mutex:
            self._held.discard(token_id)

    def close(self) -> None:
        self._connection.close()
        self._release()

    def _release(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None


class _SqliteConnection(_Connection):
    # Workers share the ledger's one connection; statements are short and serialised.
    def __init__(self, ledger: SqliteLedger) -> None:
        self._ledger = ledger

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._ledger.execute(sql, params)

    def insert_started(self, values: Sequence[object]) -> int | None:
        rows = self._ledger.execute(_INSERT, values)
        return int(rows[0][0]) if rows else None

    def try_lock(self, token_id: str) -> bool:
        return self._ledger.try_lock(token_id)

    def unlock(self, token_id: str) -> None:
        self._ledger.unlock(token_id)

    def close(self) -> None:
        pass  # the connection is the ledger's, closed with it


def _take_lock(path: Path) -> int:
    """An exclusive lock on ``<path>.lock`` for the life of the run; the kernel drops it
    when the process dies, however it dies."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LedgerError(f"cannot use the ledger {path}: {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise LedgerBusyError(
            f"the ledger {path} is in use by another run (process {holder}); a SQLite ledger "
            "serves one run at a time: wait for it, or share a PostgreSQL ledger"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _as_dicts(description: Any, rows: list[Any]) -> list[dict[str, Any]]:
    names = [column[0] for column in description]
    return [dict(zip(names, row, strict=True)) for row in rows]


def _check_version(name: str, version: str) -> None:
    if version != SCHEMA_VERSION:
        raise LedgerError(
            f"the ledger {name} has schema version {version}; this tool reads version "
            f"{SCHEMA_VERSION}"
        )


# -- PostgreSQL ----------------------------------------------------------------------------


class PostgresLedger(Ledger):
    """A ledger in a PostgreSQL database, shared by any number of stations."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._name = _public_url(url)
        self._connection = self._connect()
        try:
            self._setup()
        except BaseException:
            self._connection.close()
            raise

    @property
    def name(self) -> str:
        return self._name

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            import psycopg
        except ImportError:
            raise LedgerError(
                "a PostgreSQL ledger needs psycopg: pip install 'phonehome-provision[postgresql]'"
            ) from None
        try:
            return psycopg.connect(
                self._url, autocommit=True, connect_timeout=10, application_name="provision"
            )
        except psycopg.Error as exc:
            raise LedgerError(f"cannot use the ledger {self._name}: {_pg_message(exc)}") from None

    def _setup(self) -> None:
        # Stations may start together: one creates the tables while the others wait.
        with self.errors(), self._connection.transaction():
            self._connection.execute(
                "SELECT pg_advisory_xact_lock(CAST(%s AS BIGINT))", (_lock_key("schema"),)
            )
            for statement in _schema("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"):
                params = (SCHEMA_VERSION,) if "?" in statement else ()
                self._connection.execute(_pg(statement), params)
            row = self._connection.execute(
                "SELECT value FROM provision_meta WHERE name = 'schema'"
            ).fetchone()
        assert row is not None
        _check_version(self._name, row[0])

    @contextmanager
    def errors(self) -> Iterator[None]:
        """psycopg's errors as LedgerError, naming the ledger."""
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise LedgerError(f"ledger {self._name}: {_pg_message(exc)}") from None

    def journal(self, context: RunContext) -> LedgerJournal:
        # Advisory locks belong to a session: each worker needs its own connection.
        return LedgerJournal(_PostgresConnection(self._connect(), self), context)

    def rows(self, *, token_id: str | None = None) -> list[dict[str, Any]]:
        sql, params = (_ROWS_ONE, (token_id,)) if token_id else (_ROWS, ())
        with self.errors():
            cursor = self._connection.execute(_pg(sql), params)
            return _as_dicts(cursor.description, cursor.fetchall())

    def close(self) -> None:
        self._connection.close()


class _PostgresConnection(_Connection):
    def __init__(
        self, connection: psycopg.Connection[tuple[Any, ...]], ledger: PostgresLedger
    ) -> None:
        self._connection = connection
        self._ledger = ledger

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._ledger.errors():
            cursor = self._connection.execute(_pg(sql), params)
            return cursor.fetchall() if cursor.description else []

    def insert_started(self, values: Sequence[object]) -> int | None:
        rows = self.query(_INSERT, values)
        return int(rows[0][0]) if rows else None

    def try_lock(self, token_id: str) -> bool:
        rows = self.query("SELECT pg_try_advisory_lock(CAST(? AS BIGINT))", (_lock_key(token_id),))
        return bool(rows[0][0])

    def unlock(self, token_id: str) -> None:
        self.query("SELECT pg_advisory_unlock(CAST(? AS BIGINT))", (_lock_key(token_id),))

    def close(self) -> None:
        self._connection.close()


def _pg(sql: str) -> str:
    # The statements are written with SQLite's ? marks and hold no literal '?' or '%'.
    return sql.replace("?", "%s")


def _lock_key(token_id: str) -> int:
    digest = hashlib.sha256(b"provision ledger token " + token_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _public_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ""
    return parts._replace(netloc=user + netloc).geturl()


def _pg_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
