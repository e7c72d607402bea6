"""PostgresStore: the Store contract on PostgreSQL (15+), for many authd nodes on one database.

Blocking I/O shell (psycopg 3), no trio: like SQLiteStore it is called from the control API's
one worker thread (`trio.to_thread`), and followers call it through the same `call`.

The operations (batch flow, journal, resources, the JSON row encoding) are the ones
SQLiteStore runs, in `authd.store.sqlcore`; this module keeps the connection, the schema, the
transactions, the locks and the PostgreSQL statements (arrays for bulk reads and writes).

Tables are SQLite's (`zones`, `rrsets`, `journal`, `journal_parts`, `resources`, same columns, same JSON
encodings, see `authd.store.sqlcore`), plus `journal_head` (one row: the newest journal seq) and
`nodes` (see `authd.store.pgnodes`). Text that is sorted is `COLLATE "C"`, so listings come out in
Route 53's byte order whatever the database's locale.

Concurrency (issue 15: two nodes accepting conflicting batches at once give exactly one winner).
- Every write transaction runs at READ COMMITTED and first takes an explicit row lock:
  a change batch or a zone deletion locks its zone row (`SELECT ... FOR UPDATE`); zone
  creation and resource writes lock the `journal_head` row. Only a holder of a zone's lock
  ever writes that zone's record sets, and under READ COMMITTED every statement after the
  lock sees everything committed before it was granted. So the second of two conflicting
  batches is planned (by `authd.model.changes.plan_batch`, exactly as SQLiteStore does) against
  the first one's result, and its DELETE with the old value fails with Route 53's message.
  One winner, deterministically, with no retry loop. SERIALIZABLE would also give one
  winner, but by aborting the loser with a serialization failure that we would have to
  retry and re-plan, and under contention a 1,000-change batch could keep losing.
- The journal seq is assigned by `UPDATE journal_head SET seq = seq + 1 RETURNING seq`, as
  the transaction's last step before COMMIT (a zone import of more than one journal part
  takes it before writing its sets, whose parts are keyed by it; a creating import holds the
  row from its start anyway, `_lock_writers`). That row lock is held until COMMIT or ROLLBACK,
  so the next writer cannot take seq N+1 until the transaction holding N has ended: commits
  happen in seq order, and a rolled-back transaction rolls its increment back too. There are
  no gaps and no overtaking: PostgreSQL makes a commit visible before it releases the
  transaction's locks, so any reader that sees N+1 also sees N. (A SEQUENCE would not do:
  its values are handed out outside transactions, so N+1 may commit before N, and a follower
  reading `seq > N-1` would skip N for ever.) Lock order is always zone row, then head row,
  so there is no deadlock; different zones plan and write their record sets in parallel and
  serialise only on the short journal append.
- `pg_notify('authd_journal', seq)` in the same transaction tells LISTENing nodes after
  COMMIT (`authd.store.pgnodes.listen_journal`); followers still poll, because a notification sent while a
  listener was reconnecting is lost.
- Durability: every connection asks for `synchronous_commit=on` (PostgreSQL's default, set
  explicitly so a server configured otherwise cannot weaken it): the COMMIT that
  acknowledges a batch is in the WAL on disk before we answer. A lost connection mid-transaction is a
  rollback; a lost connection during COMMIT leaves the outcome unknown to us, and we answer
  an error (the batch may be there, unacknowledged, which Route 53 clients tolerate: they
  retry with the same DELETE/CREATE and get a clear InvalidChangeBatch).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg

from authd.model import changes as rules
from authd.model.journal import JournalEntry
from authd.model.records import RecordKey, RecordSet
from authd.store.contract import StoreError
from authd.store.sqlcore import SQLCore, _dumps_many

NOTIFY_CHANNEL = "authd_journal"
SCHEMA_LOCK = 0x61757468  # pg_advisory_xact_lock key: nodes starting together create tables once
SEED_LOCK = 0x61757469  # pg_advisory_lock key: nodes starting together seed zone files one at a time

SCHEMA = """
CREATE TABLE IF NOT EXISTS zones (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    caller_reference TEXT NOT NULL UNIQUE,
    comment TEXT NOT NULL,
    serial BIGINT NOT NULL,
    record_set_count BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rrsets (
    zone_id TEXT NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    rtype TEXT NOT NULL,
    set_id TEXT NOT NULL,
    data TEXT NOT NULL,
    sort_key BYTEA NOT NULL,      -- changes.listing_key in UTF-8: it holds NUL, and bytes sort as SQLite does
    PRIMARY KEY (zone_id, name, rtype, set_id)
);
CREATE INDEX IF NOT EXISTS rrsets_order ON rrsets (zone_id, sort_key);
CREATE TABLE IF NOT EXISTS journal (
    seq BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    zone_id TEXT NOT NULL,
    zone_name TEXT NOT NULL,
    serial BIGINT NOT NULL,
    change_id TEXT NOT NULL,
    submitted_at DOUBLE PRECISION NOT NULL,
    comment TEXT NOT NULL,
    puts TEXT NOT NULL,
    deletes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS journal_parts (
    seq BIGINT NOT NULL,
    part INTEGER NOT NULL,
    puts TEXT NOT NULL,
    PRIMARY KEY (seq, part)
);
CREATE TABLE IF NOT EXISTS journal_head (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    seq BIGINT NOT NULL
);
INSERT INTO journal_head VALUES (TRUE, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    doc TEXT NOT NULL,
    version BIGINT NOT NULL,
    journaled BOOLEAN NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT COLLATE "C" PRIMARY KEY,
    dns TEXT NOT NULL,
    control TEXT NOT NULL,
    seq BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat TIMESTAMPTZ NOT NULL,
    state TEXT NOT NULL
);
"""


class StoreUnavailable(StoreError):
    """The database cannot be reached (or went away mid-call). Nothing was acknowledged."""

    code = "InternalFailure"


def connect_kwargs(timeout: float = 5.0) -> dict[str, Any]:
    """libpq options for every authd connection: give up connecting after `timeout`, and
    notice a silently dead link (a cut cable, a partition) within ~10 s through TCP
    keepalives and a TCP user timeout, instead of the kernel's two hours."""
    return {"connect_timeout": max(1, int(timeout)), "application_name": "authd",
            "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
            "keepalives_count": 3, "tcp_user_timeout": 10_000,
            "options": "-c synchronous_commit=on"}


def redact(dsn: str) -> str:
    """The DSN without its password, for logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://?"
    user, host, port, db = info.get("user", ""), info.get("host", ""), info.get("port", ""), info.get("dbname", "")
    return f"postgresql://{user}@{host}:{port}/{db}"

@functools.lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    return sql.replace("?", "%s")


class _Qmark:
    """A psycopg connection that also takes sqlite3's `?` placeholders, so the SQL in
    `authd.store.sqlcore` runs unchanged here. Statements of this module may still use
    psycopg's own `%s` and `%b` (no statement here uses `?` for anything else)."""

    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.Connection[Any]):
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        return self.conn.execute(_pyformat(sql), params)


class PostgresStore(SQLCore):
    """The Store on PostgreSQL. Thread-safe (one connection behind a lock); reconnects on the
    next call after the database went away.

    Args:
        dsn: `postgresql://USER@HOST:PORT/DB` (any libpq connection string).
        clock: epoch seconds for ChangeInfo.submitted_at.
        connect_timeout: seconds to wait for the database on each (re)connect.
    """

    def __init__(self, dsn: str, clock: Callable[[], float] = time.time, connect_timeout: float = 5.0):
        self.dsn = dsn
        self.path = redact(dsn)  # what logs print where SQLiteStore has a file path
        self._clock = clock
        self._timeout = connect_timeout
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pending: list[JournalEntry] = []
        self._recent: dict[int, JournalEntry] = {}
        self._handoff: dict[str, tuple[int, list[RecordSet], Any]] = {}  # see SQLCore.import_sets
        self._prebuilt: dict[str, tuple[JournalEntry, Any]] = {}  # see SQLCore.take_built
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                conn.execute(SCHEMA)

    # --- connection and transactions ---------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.dsn, autocommit=True, **connect_kwargs(self._timeout))
            except psycopg.OperationalError as exc:
                self._conn = None
                raise StoreUnavailable(f"cannot reach PostgreSQL at {self.path}: {first_line(exc)}") from exc
        return self._conn

    def _run(self, fn: Callable[[_Qmark], Any], *, write: bool) -> Any:
        """One transaction. Write transactions keep the journal entries they append for
        in-process followers once COMMIT returns."""
        with self._lock:
            conn = self._connection()
            self._pending = []
            try:
                with conn.transaction():
                    result = fn(_Qmark(conn))
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._pending = []
                self._drop()
                raise StoreUnavailable(f"lost PostgreSQL at {self.path}: {first_line(exc)}") from exc
            except BaseException:
                self._pending = []
                raise
            if write:
                self._committed()
            return result

    def _write(self, fn: Callable[[_Qmark], Any]) -> Any:
        return self._run(fn, write=True)

    def _read(self, fn: Callable[[_Qmark], Any]) -> Any:
        return self._run(fn, write=False)

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a dead connection may fail to close; gone either way
                self._conn.close()
        self._conn = None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """One holder across every node (a session advisory lock), e.g. while seeding zone
        files, so two nodes starting at once do not both create the same zone."""
        with self._lock:
            conn = self._connection()
            conn.execute("SELECT pg_advisory_lock(%s)", (SEED_LOCK,))
            try:
                yield
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (SEED_LOCK,))

    # --- the dialect (see authd.store.sqlcore and the module docstring) -----------------

    _FOR_UPDATE = " FOR UPDATE"  # a change batch or zone deletion holds its zone's row
    _NO_LIMIT = None  # LIMIT NULL

    @staticmethod
    def _lock_writers(conn: _Qmark) -> None:
        """Zone creations and resource writes serialise on the head row (module docstring)."""
        conn.execute("SELECT seq FROM journal_head FOR UPDATE")

    @staticmethod
    def _next_seq(conn: _Qmark) -> int:
        """The seq comes from the head row, locked until COMMIT, so commits happen in seq
        order with no gaps (module docstring)."""
        return conn.execute("UPDATE journal_head SET seq=seq+1 RETURNING seq").fetchone()[0]

    @staticmethod
    def _head_seq(conn: _Qmark) -> int:
        return conn.execute("SELECT seq FROM journal_head").fetchone()[0]

    @staticmethod
    def _notify(conn: _Qmark, seq: int) -> None:
        conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(seq)))  # sent at COMMIT

    @staticmethod
    def _sort_key(listing_key: str) -> bytes:
        return _key(listing_key)

    @staticmethod
    def _sets_at(conn: _Qmark, zone_id: str, names: list[str]) -> list[tuple[str, str]]:
        """Every set at the batch's names in one `name = ANY(...)` query."""
        return conn.execute(
            "SELECT name, data FROM rrsets WHERE zone_id=%s AND name = ANY(%s)", (zone_id, names)
        ).fetchall()

    @staticmethod
    def _delete_sets(conn: _Qmark, zone_id: str, keys: Sequence[RecordKey]) -> None:
        # one statement for the whole batch: arrays, not 1,000 round trips
        conn.execute(
            "DELETE FROM rrsets WHERE zone_id=%s AND (name, rtype, set_id) IN "
            "(SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]))",
            (zone_id, [k.name for k in keys], [k.rtype for k in keys],
             [k.set_identifier or "" for k in keys]),
        )

    @staticmethod
    def _put(conn: _Qmark, zone_id: str, sets: Sequence[RecordSet]) -> list[str]:
        encoded = _dumps_many(sets)
        # one row per key (ON CONFLICT may touch a row once per statement); the last one wins,
        # as it would row by row
        last = {(rs.name, rs.rtype, rs.set_identifier or ""): i for i, rs in enumerate(sets)}
        rows = [sets[i] for i in last.values()]
        conn.execute(
            "INSERT INTO rrsets SELECT %s, * FROM unnest(%b::text[], %b::text[], %b::text[], "
            "%b::text[], %b::bytea[]) ON CONFLICT (zone_id, name, rtype, set_id) DO UPDATE "
            "SET data=EXCLUDED.data, sort_key=EXCLUDED.sort_key",
            (zone_id, [rs.name for rs in rows], [rs.rtype for rs in rows],
             [rs.set_identifier or "" for rs in rows], [encoded[i] for i in last.values()],
             [_key(rules.listing_key(rs.name, rs.rtype, rs.set_identifier)) for rs in rows]),
        )
        return encoded

    @staticmethod
    def _insert_new(conn: _Qmark, zone_id: str, sets: Sequence[RecordSet],
                    encoded: Sequence[str], sort_keys: Sequence[str]) -> None:
        """COPY, inside the import's transaction: a zone file's sets reach the table in one
        stream instead of one statement's arrays (and a key already there fails the COPY, as
        a CREATE of an existing set fails the batch)."""
        with conn.conn.cursor() as cur, cur.copy(
            "COPY rrsets (zone_id, name, rtype, set_id, data, sort_key) FROM STDIN"
        ) as copy:
            copy.set_types(["text", "text", "text", "text", "text", "bytea"])
            write = copy.write_row
            for rs, data, key in zip(sets, encoded, sort_keys, strict=True):
                write((zone_id, rs.name, rs.rtype, rs.set_identifier or "", data, _key(key)))

    # --- reads of whole zones (snapshot(): authd.store.sqlcore) ---------------------------

    @staticmethod
    def _begin_snapshot(conn: _Qmark) -> None:
        # one position across statements (READ COMMITTED would see each statement's own)
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def close(self) -> None:
        with self._lock:
            self._drop()


def _key(listing_key: str) -> bytes:
    return listing_key.encode("utf-8", "surrogatepass")


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def is_postgres_url(text: str | None) -> bool:
    """`--store` takes a file path or a PostgreSQL URL."""
    return bool(text) and str(text).startswith(("postgresql://", "postgres://"))
