"""SQLiteStore: the durable default Store, one SQLite file in WAL mode.

Blocking I/O shell (sqlite3), no trio: the control API calls it from one worker thread.
Batches go through `authd.model.changes.plan_batch` (the one copy of Route 53's rules) inside ONE
`BEGIN IMMEDIATE` transaction that also bumps the SOA serial and appends the journal row;
the COMMIT that acknowledges a change runs with `synchronous=FULL`, so an acknowledged batch
survives power loss, and a crash before COMMIT leaves no trace of it (SQLite's WAL gives
atomic commit). Restarting on the same file gives the same state.

Tables: `zones` (id, name, caller reference, comment, serial, count), `rrsets` (one row per
record set, keyed by zone, name, type, set identifier), `journal` (seq, kind, zone,
serial, change id, time, comment, the puts and deletes as JSON; a RESOURCE row keeps
`[kind, id, doc]` in `puts`; an entry with more puts than one part holds `parts` there and its
puts in `journal_parts`, see `authd.store.sqlcore.PARTS`) and `resources` (kind, id, JSON document, version). Followers in other
processes open the same file read-only and poll `journal_since(seq)` (WAL readers never
block the writer). Several writer processes are safe too: BEGIN IMMEDIATE serialises them.

The operations themselves (the batch flow, the journal, resources, the row encoding) are
`authd.store.sqlcore`'s, shared with PostgresStore; this module keeps the connection and its
threading, the schema and its migration, the transactions and the SQLite dialect.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from authd.model import changes as rules
from authd.model.journal import JournalEntry
from authd.model.records import RecordKey, RecordSet
from authd.store import checkpointer
from authd.store.sqlcore import (  # noqa: F401  (the encoders, re-exported for their old importers)
    RECENT_ENTRIES,
    SQLCore,
    _decode,
    _decode_all,
    _dumps,
    _dumps_many,
    _encode,
    _resource_doc,
    _View,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS zones (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    caller_reference TEXT NOT NULL UNIQUE,
    comment TEXT NOT NULL,
    serial INTEGER NOT NULL,
    record_set_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rrsets (
    zone_id TEXT NOT NULL,
    name TEXT NOT NULL,
    rtype TEXT NOT NULL,
    set_id TEXT NOT NULL,          -- '' for a plain set (real identifiers are 1..128 chars)
    data TEXT NOT NULL,            -- the record set, compact JSON (see _encode)
    sort_key TEXT NOT NULL DEFAULT '',  -- changes.listing_key: Route 53's listing order
    PRIMARY KEY (zone_id, name, rtype, set_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    zone_id TEXT NOT NULL,
    zone_name TEXT NOT NULL,
    serial INTEGER NOT NULL,
    change_id TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    comment TEXT NOT NULL,
    puts TEXT NOT NULL,
    deletes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS journal_parts (  -- the puts of a journal row whose puts are 'parts'
    seq INTEGER NOT NULL,
    part INTEGER NOT NULL,         -- from 0
    puts TEXT NOT NULL,            -- a JSON array of up to SQLCore.JOURNAL_PART encodings
    PRIMARY KEY (seq, part)
);
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,            -- "healthcheck", "healthcheck-status", "tags", ...
    id TEXT NOT NULL,
    doc TEXT NOT NULL,             -- JSON
    version INTEGER NOT NULL,      -- 1 when created, +1 per put
    journaled INTEGER NOT NULL,    -- 1: written with journal=True; snapshot() carries it
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
"""


class SQLiteStore(SQLCore):
    """The durable Store. Thread-safe (one connection behind a lock).

    Args:
        path: the database file; created with its schema if missing.
        readonly: open for reading only (journal followers, `authd records --store`).
        clock: epoch seconds for ChangeInfo.submitted_at.
    """

    def __init__(
        self,
        path: str | Path,
        readonly: bool = False,
        clock: Callable[[], float] = time.time,
    ):
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        self._pending: list[JournalEntry] = []
        self._recent: dict[int, JournalEntry] = {}  # the newest committed entries, by seq
        self._handoff: dict[str, tuple[int, list[RecordSet], Any]] = {}  # see SQLCore.import_sets
        self._prebuilt: dict[str, tuple[JournalEntry, Any]] = {}  # see SQLCore.take_built
        self.last_commit_ms = 0.0  # the newest write's COMMIT (its fsync, any checkpoint)
        self._checkpointer: checkpointer.IdleCheckpointer | None = None
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=10000")
        if not readonly:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the COMMIT that acknowledges a batch reaches the disk before we answer.
            self._conn.execute("PRAGMA synchronous=FULL")
            # Checkpoints off the COMMIT that acknowledges a batch: a thread runs them once
            # writes go idle (`authd.store.checkpointer`, which says why durability is the
            # same); SQLite's own, at COMMIT, only past a far backstop.
            self._conn.execute(f"PRAGMA wal_autocheckpoint={checkpointer.BACKSTOP_PAGES}")
            self._conn.execute(f"PRAGMA journal_size_limit={checkpointer.LOG_LIMIT}")
            self._checkpointer = checkpointer.IdleCheckpointer(self.path)
            self._conn.executescript(SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Files written before `sort_key` existed get it filled in once. Files written
        before `journal_parts` existed get the (empty) table from SCHEMA's `IF NOT EXISTS`:
        their journal rows keep all their puts in `puts`, which readers still decode."""
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(rrsets)")}
        if "sort_key" not in cols:
            self._conn.execute("ALTER TABLE rrsets ADD COLUMN sort_key TEXT NOT NULL DEFAULT ''")
        stale = self._conn.execute("SELECT zone_id, name, rtype, set_id FROM rrsets WHERE sort_key=''").fetchall()
        if stale:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "UPDATE rrsets SET sort_key=? WHERE zone_id=? AND name=? AND rtype=? AND set_id=?",
                [(rules.listing_key(n, t, i or None), z, n, t, i) for z, n, t, i in stale],
            )
            self._conn.execute("COMMIT")
        self._conn.execute("CREATE INDEX IF NOT EXISTS rrsets_order ON rrsets(zone_id, sort_key)")

    # --- transactions ------------------------------------------------------------------

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            self._pending = []
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._conn)
            except BaseException:
                # an interrupted INSERT/UPDATE/DELETE has had its transaction rolled back by
                # SQLite already (sqlite.org/c3ref/interrupt.html): a second ROLLBACK would
                # fail and hide why the write stopped
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self._pending = []
                raise
            t = time.perf_counter()
            self._conn.execute("COMMIT")
            self.last_commit_ms = (time.perf_counter() - t) * 1e3  # logged with the batch
            if self._checkpointer is not None:
                self._checkpointer.committed()
            self._committed()
            return result

    def interrupt(self) -> None:
        """Make the statement running in another thread fail now (`sqlite3.OperationalError:
        interrupted`, from sqlite3_interrupt), so a stop need not wait for a long import:
        its transaction rolls back and nothing of it is committed. Safe from any thread,
        without the lock; a no-op when nothing runs (a statement started later is not
        interrupted: a caller that must stop a loop of statements calls it again)."""
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed already
            self._conn.interrupt()

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                return fn(self._conn)
            finally:
                self._conn.execute("COMMIT")

    def _reads(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Single-statement reads need no BEGIN: each statement is its own snapshot."""
        with self._lock:
            return fn(self._conn)

    # --- the dialect (see authd.store.sqlcore) -------------------------------------------
    # BEGIN IMMEDIATE already holds the one database write lock, so a write needs no row
    # lock (`_FOR_UPDATE` is empty and `_lock_writers` does nothing), and MAX(seq)+1 inside
    # it is the next journal seq with no gap and no race.

    _NO_LIMIT = -1

    def _next_seq(self, conn: sqlite3.Connection) -> int:
        return self._head_seq(conn) + 1

    @staticmethod
    def _head_seq(conn: sqlite3.Connection) -> int:
        return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]

    @staticmethod
    def _sets_at(conn: sqlite3.Connection, zone_id: str, names: list[str]) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        for i in range(0, len(names), 500):  # SQLite's host-parameter limit is 999 (older builds)
            chunk = names[i:i + 500]
            rows += conn.execute(
                f"SELECT name, data FROM rrsets WHERE zone_id=? AND name IN ({','.join('?' * len(chunk))})",
                (zone_id, *chunk),
            ).fetchall()
        return rows

    @staticmethod
    def _delete_sets(conn: sqlite3.Connection, zone_id: str, keys: Sequence[RecordKey]) -> None:
        conn.executemany(
            "DELETE FROM rrsets WHERE zone_id=? AND name=? AND rtype=? AND set_id=?",
            [(zone_id, k.name, k.rtype, k.set_identifier or "") for k in keys],
        )

    @staticmethod
    def _put(conn: sqlite3.Connection, zone_id: str, sets: Sequence[RecordSet]) -> list[str]:
        """Write the sets; returns their encodings, which the journal row reuses."""
        encoded = _dumps_many(sets)
        # An upsert, not INSERT OR REPLACE: SQLite carries a REPLACE out as a delete and an
        # insert, which rewrites the row's page of the rrsets_order index too. sort_key is a
        # function of the key, so only data changes (500 random UPSERTs on a 1M-row table:
        # ~1,070 pages written per commit -> ~510; bench/_scale_insync.py --profile).
        conn.executemany(
            "INSERT INTO rrsets VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (zone_id, name, rtype, set_id) DO UPDATE SET data=excluded.data",
            [
                (zone_id, rs.name, rs.rtype, rs.set_identifier or "", e,
                 rules.listing_key(rs.name, rs.rtype, rs.set_identifier))
                for rs, e in zip(sets, encoded, strict=True)
            ],
        )
        return encoded

    def _put_planned(self, conn: sqlite3.Connection, zone_id: str, sets: Sequence[RecordSet],
                     held: Callable[[Sequence[RecordSet]], list[bool]]) -> list[str]:
        """A batch's puts: the rows of keys the zone holds updated in place (`data` only:
        `sort_key` is a function of the key), in key order, and only the new ones inserted.
        An UPSERT of 500 existing owners then needs no listing key and no conflict check
        per row (~0.5-0.9 ms CPU of ~6 per batch on a 1M-row table).

        An update always finds its row: `held` is the plan's view, read in this same
        transaction after BEGIN IMMEDIATE took the database's one write lock (no other
        connection writes until COMMIT), and the only rows this transaction removes before
        it are the plan's deletes, which never share a key with its puts (`plan_batch`
        keeps one final write per key). So a short count is a bug in the plan or the view:
        it fails the batch (its transaction rolls back) rather than being papered over."""
        encoded = _dumps_many(sets)
        known = held(sets)
        old = sorted((rs.name, rs.rtype, rs.set_identifier or "", e)
                     for rs, e, k in zip(sets, encoded, known, strict=True) if k)
        if old:
            cur = conn.executemany(
                "UPDATE rrsets SET data=? WHERE zone_id=? AND name=? AND rtype=? AND set_id=?",
                [(e, zone_id, name, rtype, sid) for name, rtype, sid, e in old],
            )
            if cur.rowcount != len(old):  # not `assert`: it must hold under -O too
                raise AssertionError(
                    f"zone {zone_id}: the plan said {len(old)} of the batch's keys are held, but "
                    f"{cur.rowcount} rows were updated (the batch's view of the zone was stale)")
        new = [(rs, e) for rs, e, k in zip(sets, encoded, known, strict=True) if not k]
        if new:
            self._insert_new(conn, zone_id, [rs for rs, _ in new], [e for _, e in new],
                             [rules.listing_key(rs.name, rs.rtype, rs.set_identifier) for rs, _ in new])
        return encoded

    @staticmethod
    def _insert_new(conn: sqlite3.Connection, zone_id: str, sets: Sequence[RecordSet],
                    encoded: Sequence[str], sort_keys: Sequence[str]) -> None:
        # plain INSERT, no REPLACE: these keys are new, and a clash must fail, not overwrite
        conn.executemany(
            "INSERT INTO rrsets VALUES (?, ?, ?, ?, ?, ?)",
            zip([zone_id] * len(sets), [rs.name for rs in sets], [rs.rtype for rs in sets],
                [rs.set_identifier or "" for rs in sets], encoded, sort_keys, strict=True),
        )

    # --- reads of whole zones (here, not in SQLCore: tuned for million-set zones) ---------

    def record_sets(self, zone_id: str) -> list[RecordSet]:
        def txn(conn: sqlite3.Connection) -> list[RecordSet]:
            zone = self._find(conn, zone_id)
            rows = conn.execute("SELECT data FROM rrsets WHERE zone_id=? ORDER BY sort_key", (zone.id,))
            return _decode_all([r[0] for r in rows])

        return self._read(txn)

    def reset_log(self, big_only: bool = False) -> tuple[int, int] | None:
        """Copy the whole WAL back into the database file now and restart the log (`PRAGMA
        wal_checkpoint(RESTART)`, which waits for readers and for an idle checkpoint in
        progress), for the end of a big write that is not on a batch's path: a new store's
        import. Its log holds the whole zone (~100,000 pages for 1M names). Left to the idle
        thread, that checkpoint and the kernel's write-back of its ~400 MB may still run when
        the first change batches come, and their COMMITs' fsyncs queue behind it; here it
        is done first (in the 1M-name runs of 2026-12-03 the idle thread had finished
        it already: RESTART found every frame copied, in 0.0 s, so what this buys there is the order,
        and the 414 MB log file cut back). The next COMMIT writes from the start of the log
        and cuts the file to `LOG_LIMIT`.
        Returns (frames in the log, frames checkpointed). Durability is unchanged: the
        checkpoint copies committed pages only and syncs the database file.

        With `big_only` (the end of every seed, `zonefiles.seed.Seeding.run`: a new zone's
        import or a changed file's re-import) it first runs a PASSIVE checkpoint, which
        copies what the idle thread would have and says how many frames the log holds since
        it last started again, and restarts the log only if they are more than the file is
        cut back to (`LOG_LIMIT`); otherwise returns None, having waited for nobody. A
        restart whose files are unchanged writes a handful of pages and pays one PASSIVE."""
        with self._lock:
            if big_only:
                _busy, frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                page = self._conn.execute("PRAGMA page_size").fetchone()[0]
                if frames * page <= checkpointer.LOG_LIMIT:
                    return None
            _busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            return frames, copied

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            self._conn.close()
