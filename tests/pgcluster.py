"""A throw-away PostgreSQL cluster for the shared-ledger tests.

``initdb`` makes a cluster in a temporary directory, ``pg_ctl`` starts it on a free loopback
port (no Unix socket outside that directory) and stops it again. The server refuses to run
as root, so as root the cluster belongs to the ``postgres`` user that Debian's ``postgresql``
package creates. Nothing outside the temporary directory is touched.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PG_ROOTS = (Path("/usr/lib/postgresql"),)


def find_bindir() -> Path | None:
    """The newest PostgreSQL with both initdb and pg_ctl: Debian's layout, then PATH."""
    found = []
    for root in PG_ROOTS:
        for bindir in root.glob("*/bin"):
            if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
                major = re.match(r"\d+", bindir.parent.name)
                found.append((int(major.group()) if major else 0, bindir))
    if found:
        return max(found)[1]
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def why_not() -> str | None:
    """Why no cluster can be made here, or None when one can."""
    if find_bindir() is None:
        return "PostgreSQL is not installed (initdb and pg_ctl; tests/run.sh installs it as root)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    bindir: Path
    port: int
    as_user: Callable[[list[str]], None]

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.as_user(
                [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
            )
        shutil.rmtree(self.root, ignore_errors=True)


def start() -> Cluster:
    """A running cluster; the caller stops it. Check :func:`why_not` first."""
    bindir = find_bindir()
    assert bindir is not None
    root = Path(tempfile.mkdtemp(prefix="provision-pg-"))
    run = _runner(root)
    cluster = Cluster(root, bindir, _free_port(), run)
    try:
        run(
            [
                str(bindir / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ]
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {cluster.port} "
            f"-c unix_socket_directories={root} -c fsync=off -c max_connections=60"
        )
        run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(cluster.data),
                "-l",
                str(root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _runner(root: Path) -> Callable[[list[str]], None]:
    user: dict[str, object] = {}
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(root, postgres.pw_uid, postgres.pw_gid)
        user = {"user": postgres.pw_uid, "group": postgres.pw_gid, "extra_groups": []}

    def run(command: list[str]) -> None:
        done = subprocess.run(
            command,
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            **user,  # type: ignore[call-overload]
        )
        if done.returncode != 0:
            log = root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {done.stderr or done.stdout}{tail}")

    return run
