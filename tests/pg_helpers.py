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

    def __init__(self, host: str = "127.0.0.1", fsync: bool = False, netns: str | None = None,
                 port: int | None = None):
        self.initdb, self.pg_ctl = require_pg()
        self.netns = netns  # run the server inside this network namespace (its own host)
        self.host, self.port = host, port or free_port("127.0.0.1" if netns else host)
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
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> Cluster:
        if not self.data.exists():
            self._as_owner(self.initdb, "-D", str(self.data), "-A", "trust", "-U", self._user,
                           "--locale=C", "-E", "UTF8")
            if not self.host.startswith("127."):  # a namespaced host: trust its test subnet only
                subnet = ".".join(self.host.split(".")[:3]) + ".0/24"
                with open(self.data / "pg_hba.conf", "a") as hba:
                    hba.write(f"host all all {subnet} trust\n")
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


# --- authd nodes as real processes ---------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


class NodeProcess:
    """`authd serve --store postgresql://...` as a real process, stopped by its PID.

    Its stderr is drained by a thread into `lines`, so logs never fill the pipe and tests
    can wait for a log line (an event, not a sleep)."""

    def __init__(self, url: str, host: str, name: str, *extra: str, zones: Path | None = None,
                 control: bool = True, netns: str | None = None):
        import sys
        import threading

        self.name, self.host = name, host
        cmd = [sys.executable, "-m", "authd", "serve", "--store", url, "--node-name", name,
               "--listen", f"{host}:0", "--control", f"{host}:0" if control else "off",
               "--zones", str(zones or ROOT / "zones"), *extra]
        if netns:  # `ip netns exec` execs the command: the PID is authd's own
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.netns = netns
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.dns_port = 0
        self.control_url = ""
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.wait_for("registered in the database", timeout=90)
        for line in self.lines:
            if "primary: DNS on " in line and not self.dns_port:
                self.dns_port = int(line.rsplit(" port ", 1)[1].split()[0].rstrip(","))
            if "control API (Route 53 2013-04-01) on " in line:
                self.control_url = line.rsplit(" on ", 1)[1].strip()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 60, start: int = 0) -> str:
        """The first log line from index `start` on containing `text`."""
        import time

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if text in line:
                        return line
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n" + "\n".join(self.lines[-20:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: no {text!r} in {timeout}s:\n" + "\n".join(self.lines[-20:]))
                self._cond.wait(min(left, 1.0))

    def dig(self, name: str, rtype: str = "A") -> list[str]:
        """The answer values real dig gets from this node."""
        out = subprocess.run([*(["ip", "netns", "exec", self.netns] if self.netns else []), "dig", f"@{self.host}", "-p", str(self.dns_port), "+norecurse", "+tries=1",
                              "+time=3", "+short", name, rtype], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout.split()

    def kill(self) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
