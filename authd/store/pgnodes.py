"""Many authd nodes on one PostgreSQL store: registration, heartbeats, LISTEN/NOTIFY (trio shell).

- `NodeRegistry` (blocking, psycopg): its own connection, so a heartbeat never queues behind
  a 1,000-change batch on the store's connection. Writes this node's row (seq, heartbeat by
  the database's clock) and reads every node's row. The rules live in `authd.store.nodes` (pure).
- `serve_registry`: heartbeats every `heartbeat` seconds and at once whenever the local
  seq moves, and keeps `peers()` (the live nodes' seqs) fresh for the control API, whose
  GetChange reads it without touching the database.
- `listen_journal`: a LISTEN connection in a worker thread; every `authd_journal`
  notification wakes the local followers, every `authd_nodes` one refreshes the peers. A
  notification sent while the listener is reconnecting is lost, which is why followers
  still poll (`--poll-interval`).
- `TolerantCall`: what the followers call the store through. When the database is gone
  the node keeps serving what it has (its index stays as it was), says so once in its log,
  and catches up from its last seq when the database is back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import trio

from authd.store.nodes import NodeRow, live_seqs
from authd.store.pgstore import NOTIFY_CHANNEL, StoreUnavailable, connect_kwargs, first_line, redact

log = logging.getLogger("authd.nodes")

NODES_CHANNEL = "authd_nodes"


class NodeRegistry:
    """The `nodes` table, through one connection of its own. Thread-safe."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._addresses: dict[str, tuple[str, str]] = {}  # name -> (dns, control) registered

    def _run(self, fn: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.dsn, autocommit=True, **connect_kwargs())
                return fn(self._conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        self._conn.close()
                self._conn = None
                raise StoreUnavailable(f"lost PostgreSQL at {redact(self.dsn)}: {first_line(exc)}") from exc

    def register(self, name: str, dns: str, control: str, seq: int) -> None:
        """Take the name (a restarted node takes its row over) and report `seq`."""
        self._addresses[name] = (dns, control)

        def txn(c: psycopg.Connection[Any]) -> None:
            with c.transaction():
                c.execute(
                    "INSERT INTO nodes VALUES (%s, %s, %s, %s, clock_timestamp(), clock_timestamp(), 'LIVE') "
                    "ON CONFLICT (name) DO UPDATE SET dns=EXCLUDED.dns, control=EXCLUDED.control, "
                    "seq=EXCLUDED.seq, started_at=EXCLUDED.started_at, heartbeat=EXCLUDED.heartbeat",
                    (name, dns, control, seq))
                # the others read the rows again at once: from now on their INSYNC waits for us
                c.execute("SELECT pg_notify(%s, %s)", (NODES_CHANNEL, name))
        self._run(txn)

    def heartbeat(self, name: str, seq: int, announce: bool) -> None:
        """Report `seq`; `announce`: tell the other nodes now (their GetChange waits on it)."""
        def txn(c: psycopg.Connection[Any]) -> None:
            with c.transaction():
                cur = c.execute("UPDATE nodes SET seq=%s, heartbeat=clock_timestamp() WHERE name=%s", (seq, name))
                if cur.rowcount == 0:  # an operator forgot this node while it ran: register again
                    dns, control = self._addresses.get(name, ("", ""))
                    c.execute("INSERT INTO nodes VALUES (%s, %s, %s, %s, clock_timestamp(), "
                              "clock_timestamp(), 'LIVE') ON CONFLICT (name) DO NOTHING",
                              (name, dns, control, seq))
                if announce:
                    c.execute("SELECT pg_notify(%s, %s)", (NODES_CHANNEL, name))
        self._run(txn)

    def rows(self) -> list[NodeRow]:
        return [NodeRow(*r) for r in self._run(lambda c: c.execute(
            "SELECT name, dns, control, seq, "
            "EXTRACT(EPOCH FROM clock_timestamp() - heartbeat)::float8, "
            "EXTRACT(EPOCH FROM clock_timestamp() - started_at)::float8 FROM nodes ORDER BY name"
        ).fetchall())]

    def head(self) -> int:
        return self._run(lambda c: c.execute("SELECT seq FROM journal_head").fetchone()[0])

    def forget(self, name: str) -> bool:
        """Remove a node's row (an operator retiring a machine)."""
        return bool(self._run(lambda c: c.execute("DELETE FROM nodes WHERE name=%s", (name,)).rowcount))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            self._conn = None


class DatabaseLink:
    """Whether this node can reach the database; logs each transition once."""

    def __init__(self, name: str):
        self.name = name
        self.up = True

    def lost(self, exc: BaseException, seq: int) -> None:
        if self.up:
            self.up = False
            log.warning("%s: lost the database (%s); still serving seq %d from memory, retrying",
                        self.name, exc, seq)

    def back(self, seq: int) -> None:
        if not self.up:
            self.up = True
            log.warning("%s: database reachable again; catching up from seq %d", self.name, seq)


class TolerantCall:
    """Wraps the store calls followers make: a lost database reads as "nothing new yet"
    for `journal_since`, so the index keeps serving; every other call still raises."""

    def __init__(self, call: Callable[..., Awaitable[Any]], link: DatabaseLink, seq: Callable[[], int]):
        self._call, self.link, self._seq = call, link, seq

    async def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            out = await self._call(fn, *args)
        except StoreUnavailable as exc:
            if getattr(fn, "__name__", "") != "journal_since":
                raise
            self.link.lost(exc, self._seq())
            return []
        if getattr(fn, "__name__", "") == "journal_since":
            self.link.back(self._seq())
        return out


class Peers:
    """The other nodes as last read: what GetChange consults, without I/O."""

    def __init__(self, own: str, timeout: float):
        self.own, self.timeout = own, timeout
        self.rows: list[NodeRow] = []
        self.read_at = 0.0  # trio time of the read: the rows' ages grow from there
        self.wakeup = trio.Event()
        self.stale = False  # another node announced a new seq: read the rows again

    def refresh(self) -> None:
        """Another node moved (its NOTIFY arrived): read the rows on the next turn."""
        self.stale = True
        self.wakeup.set()

    def kick(self) -> None:
        """The local index applied something: report it now."""
        self.wakeup.set()

    def update(self, rows: list[NodeRow]) -> None:
        self.rows, self.read_at = rows, trio.current_time()

    def seqs(self) -> dict[str, int]:
        """Live peers' seqs. Ages count from the read: rows that could not be read again
        (the database is gone) age on, so a dead peer cannot stay live in an old copy."""
        since = trio.current_time() - self.read_at
        rows = [dataclasses.replace(r, age=r.age + since) for r in self.rows]
        return live_seqs(rows, self.timeout, exclude=self.own)


async def serve_registry(
    registry: NodeRegistry, peers: Peers, *, name: str, dns: str, control: str,
    local_seq: Callable[[], int], link: DatabaseLink, heartbeat: float = 1.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Register, then heartbeat forever. `started()` once registered (so INSYNC waits for
    this node from then on)."""
    limiter = trio.CapacityLimiter(1)

    async def db(fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=limiter, abandon_on_cancel=True)

    await db(registry.register, name, dns, control, local_seq())
    peers.update(await db(registry.rows))
    log.info("%s: registered in the database (DNS %s, control %s, seq %d)", name, dns, control or "-", local_seq())
    task_status.started()
    reported = local_seq()
    last_beat = trio.current_time()
    while True:
        with trio.move_on_after(heartbeat / 4):
            await peers.wakeup.wait()
        # a new event before looking: a refresh or kick that lands during the database calls
        # below sets the new one, so the next turn sees it (none is lost)
        peers.wakeup = trio.Event()
        stale, peers.stale = peers.stale, False
        seq = local_seq()
        now = trio.current_time()
        due = now - last_beat >= heartbeat
        moved = seq != reported
        try:
            if moved or due:
                await db(registry.heartbeat, name, seq, moved)
                reported, last_beat = seq, now
            if due or stale:
                peers.update(await db(registry.rows))
            link.back(seq)
        except StoreUnavailable as exc:
            link.lost(exc, seq)
            peers.stale = peers.stale or stale
            last_beat = now  # retry at the heartbeat rate, not in a tight loop
            await trio.sleep(heartbeat / 4)


async def kick_on_apply(applied: trio.Condition, peers: Peers) -> None:
    """Report every local apply at once (GetChange elsewhere waits for it)."""
    while True:
        async with applied:
            await applied.wait()
        peers.kick()


async def listen_journal(
    dsn: str, on_journal: Callable[[], None], on_nodes: Callable[[], None], *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """LISTEN for journal and node notifications, reconnecting with backoff, forever."""
    started = False
    backoff = 0.5
    while True:
        try:
            conn = await trio.to_thread.run_sync(
                lambda: psycopg.connect(dsn, autocommit=True, **connect_kwargs()))
        except psycopg.OperationalError:
            if not started:
                task_status.started()
                started = True
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        try:
            await trio.to_thread.run_sync(conn.execute, f"LISTEN {NOTIFY_CHANNEL}")
            await trio.to_thread.run_sync(conn.execute, f"LISTEN {NODES_CHANNEL}")
            backoff = 0.5
            if not started:
                task_status.started()
                started = True
            on_journal()  # anything committed while we were not listening
            while True:
                got = await trio.to_thread.run_sync(
                    lambda: [n.channel for n in conn.notifies(timeout=1.0, stop_after=1)],  # noqa: B023
                    abandon_on_cancel=True)
                if NOTIFY_CHANNEL in got:
                    on_journal()
                if NODES_CHANNEL in got:
                    on_nodes()
        except (psycopg.OperationalError, psycopg.InterfaceError):
            await trio.sleep(backoff)
        finally:
            with contextlib.suppress(Exception):
                conn.close()
