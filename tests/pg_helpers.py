"""A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` in a temporary directory on a
free loopback port, stopped with `pg_ctl stop -m fast` (by the cluster's own PID file).

`initdb` refuses to run as root, so as root the cluster belongs to the `postgres` user (see
FIELD-NOTES). Tests skip, naming the missing tool and its Debian package, when PostgreSQL is
not installed. One cluster serves a whole test session; each test gets its own database.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

PG_PACKAGE = "postgresql"


def pg_bin(tool: str) -> str | None:
    """The path of a PostgreSQL server tool (Debian keeps them off PATH)."""
    found = shutil.which(tool)
    if found:
        return found
    for path in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), reverse=True):
        if os.access(path, os.X_OK):
            return path
    return None


def require_pg() -> tuple[str, str]:
    """(initdb, pg_ctl), or skip the test naming what is missing."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        missing = "initdb" if initdb is None else "pg_ctl"
        pytest.skip(f"{missing} not installed (Debian package {PG_PACKAGE})")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg not installed (pip install 'psycopg[binary]')")
    return initdb, pg_ctl


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Cluster:
    """One PostgreSQL server in a temporary directory.

    Args:
        host: the loopback address it listens on.
        fsync: off makes tests faster; a killed *client* loses nothing either way, and a
            `restart` here is a clean or an immediate (crash) stop of the server process,
            not of the machine, so the WAL in the page cache survives it.
    """

    def __init__(self, host: str = "127.0.0.1", fsync: bool = False):
        self.initdb, self.pg_ctl = require_pg()
        self.host, self.port = host, free_port(host)
        self.dir = Path(tempfile.mkdtemp(prefix="authd-pg-"))
        self.data = self.dir / "data"
        self.fsync = fsync
        self._user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._names = itertools.count(1)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _as_owner(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> Cluster:
        if not self.data.exists():
            self._as_owner(self.initdb, "-D", str(self.data), "-A", "trust", "-U", self._user,
                           "--locale=C", "-E", "UTF8")
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses={self.host} "
                f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200")
        out = self._as_owner(self.pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                             "-w", "-t", "60", "start", check=False)
        if out.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {out.stdout}{out.stderr}{self.log_tail()}")
        return self

    def stop(self, mode: str = "fast") -> None:
        """`mode` "immediate" is a crash: no checkpoint, recovery from the WAL on start."""
        self._as_owner(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.dir / "log").read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self._user}@{self.host}:{self.port}/{db}"

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"{prefix}{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway cluster for the whole session (started on first use)."""
    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> str:
    """A fresh database in the session's cluster."""
    return pg_cluster.new_database()
