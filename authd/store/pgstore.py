"""PostgresStore: the Store contract on PostgreSQL (15+), for many authd nodes on one database.

Blocking I/O shell (psycopg 3), no trio: like SQLiteStore it is called from the control API's
one worker thread (`trio.to_thread`), and followers call it through the same `call`.

Tables are SQLite's (`zones`, `rrsets`, `journal`, `resources`, same columns, same JSON
encodings, see `authd.store.sqlstore`), plus `journal_head` (one row: the newest journal seq) and
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
  the transaction's last step before COMMIT. That row lock is held until COMMIT or ROLLBACK,
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
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg

from authd.model import changes as rules
from authd.model.journal import EntryKind, JournalEntry, resource_entry
from authd.model.records import RecordKey, RecordSet, canonical_name
from authd.store.contract import (
    Change,
    ChangeInfo,
    ChangeStatus,
    HostedZone,
    HostedZoneAlreadyExists,
    HostedZoneNotEmpty,
    InvalidChangeBatch,
    InvalidInput,
    NoSuchChange,
    NoSuchHostedZone,
    NoSuchResource,
    Resource,
    StoreError,
    check_expected_version,
)
from authd.store.sqlstore import RECENT_ENTRIES, _decode, _decode_all, _dumps

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


class _View:
    """authd.model.changes.ZoneView over the rrsets table, inside the batch's transaction: every
    set at the batch's names in one `name = ANY(...)` query."""

    def __init__(self, conn: psycopg.Connection[Any], zone_id: str):
        self.conn, self.zone_id = conn, zone_id
        self._by_name: dict[str, list[RecordSet]] = {}

    def prefetch(self, names: set[str]) -> None:
        todo = [n for n in names if n not in self._by_name]
        for n in todo:
            self._by_name[n] = []
        if not todo:
            return
        rows = self.conn.execute(
            "SELECT name, data FROM rrsets WHERE zone_id=%s AND name = ANY(%s)", (self.zone_id, todo)
        ).fetchall()
        for (name, _), rs in zip(rows, _decode_all([d for _, d in rows]), strict=True):
            self._by_name[name].append(rs)

    def at(self, name: str) -> list[RecordSet]:
        if name not in self._by_name:
            self.prefetch({name})
        return self._by_name[name]

    def get(self, name: str, rtype: str) -> list[RecordSet]:
        return [rs for rs in self.at(name) if rs.rtype == rtype]


def _resource_doc(conn: psycopg.Connection[Any], kind: str, rid: str) -> dict[str, Any] | None:
    """For the batch rules, inside the batch's transaction: a resource's document, or None
    (health checks and CIDR collections that record sets name must exist)."""
    row = conn.execute("SELECT doc FROM resources WHERE kind=%s AND id=%s", (kind, rid)).fetchone()
    return None if row is None else json.loads(row[0])


class PostgresStore:
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

    def _run(self, fn: Callable[[psycopg.Connection[Any]], Any], *, write: bool) -> Any:
        """One transaction. Write transactions keep the journal entries they append for
        in-process followers once COMMIT returns."""
        with self._lock:
            conn = self._connection()
            self._pending = []
            try:
                with conn.transaction():
                    result = fn(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._pending = []
                self._drop()
                raise StoreUnavailable(f"lost PostgreSQL at {self.path}: {first_line(exc)}") from exc
            except BaseException:
                self._pending = []
                raise
            if write:
                for entry in self._pending:
                    self._recent[entry.seq] = entry
                while len(self._recent) > RECENT_ENTRIES:
                    del self._recent[next(iter(self._recent))]
                self._pending = []
            return result

    def _write(self, fn: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        return self._run(fn, write=True)

    def _read(self, fn: Callable[[psycopg.Connection[Any]], Any]) -> Any:
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

    @staticmethod
    def _lock_head(conn: psycopg.Connection[Any]) -> int:
        return conn.execute("SELECT seq FROM journal_head FOR UPDATE").fetchone()[0]

    # --- zones -------------------------------------------------------------------------

    _ZONE_COLS = "id, name, caller_reference, comment, serial, record_set_count"

    @staticmethod
    def _zone(row: Sequence[Any]) -> HostedZone:
        return HostedZone(row[0], row[1], row[2], row[3], row[4], row[5])

    def list_zones(self) -> list[HostedZone]:
        return self._read(lambda c: [
            self._zone(r) for r in c.execute(f"SELECT {self._ZONE_COLS} FROM zones ORDER BY name, id")
        ])

    def _get_zone(self, conn: psycopg.Connection[Any], zone_id: str, lock: bool = False) -> HostedZone | None:
        row = conn.execute(
            f"SELECT {self._ZONE_COLS} FROM zones WHERE id=%s" + (" FOR UPDATE" if lock else ""),
            (rules.clean_zone_id(zone_id),),
        ).fetchone()
        return self._zone(row) if row else None

    def _find(self, conn: psycopg.Connection[Any], zone_id: str, lock: bool = False) -> HostedZone:
        zone = self._get_zone(conn, zone_id, lock)
        if zone is None:
            raise NoSuchHostedZone(f"No hosted zone found with ID: {rules.clean_zone_id(zone_id)}")
        return zone

    def get_zone(self, zone_id: str) -> HostedZone | None:
        return self._read(lambda c: self._get_zone(c, zone_id))

    def find_zone(self, zone_id: str) -> HostedZone:
        return self._read(lambda c: self._find(c, zone_id))

    def find_zone_by_name(self, name: str) -> HostedZone:
        try:
            origin = canonical_name(name)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        row = self._read(lambda c: c.execute(
            f"SELECT {self._ZONE_COLS} FROM zones WHERE name=%s", (origin,)).fetchone())
        if row is None:
            raise NoSuchHostedZone(f"No hosted zone found with name: {origin}")
        return self._zone(row)

    def create_zone(
        self, name: str, caller_reference: str, comment: str = "", zone_id: str | None = None
    ) -> tuple[HostedZone, ChangeInfo]:
        try:
            origin = canonical_name(name)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        zid = zone_id or rules.zone_id_for(origin)
        soa, ns = rules.default_apex(origin)
        serial = rules.soa_serial(soa)

        def txn(conn: psycopg.Connection[Any]) -> tuple[HostedZone, ChangeInfo]:
            self._lock_head(conn)  # zone creations serialise here, so the clash check is exact
            clash = conn.execute(
                "SELECT id FROM zones WHERE id=%s OR name=%s OR caller_reference=%s",
                (zid, origin, caller_reference),
            ).fetchone()
            if clash:
                raise HostedZoneAlreadyExists(
                    f"A hosted zone has already been created with the specified caller "
                    f"reference or name {origin} (id {clash[0]})"
                )
            conn.execute(
                "INSERT INTO zones VALUES (%s, %s, %s, %s, %s, 2)",
                (zid, origin, caller_reference, comment, serial),
            )
            self._put(conn, zid, (soa, ns))
            info = self._journal(conn, EntryKind.SNAPSHOT, zid, origin, serial, comment, (soa, ns), ())
            return self._find(conn, zid), info

        return self._write(txn)

    def update_zone_comment(self, zone_id: str, comment: str) -> HostedZone:
        """Route 53 UpdateHostedZoneComment. Not journaled: DNS answers do not change."""

        def txn(conn: psycopg.Connection[Any]) -> HostedZone:
            zone = self._find(conn, zone_id, lock=True)
            conn.execute("UPDATE zones SET comment=%s WHERE id=%s", (comment, zone.id))
            return self._find(conn, zone.id)

        return self._write(txn)

    def delete_zone(self, zone_id: str) -> ChangeInfo:
        def txn(conn: psycopg.Connection[Any]) -> ChangeInfo:
            zone = self._find(conn, zone_id, lock=True)
            other = conn.execute(
                "SELECT 1 FROM rrsets WHERE zone_id=%s AND NOT (name=%s AND rtype IN ('SOA','NS')) LIMIT 1",
                (zone.id, zone.name),
            ).fetchone()
            if other:
                raise HostedZoneNotEmpty(
                    "The specified hosted zone contains non-required resource record sets "
                    "and so cannot be deleted."
                )
            conn.execute("DELETE FROM rrsets WHERE zone_id=%s", (zone.id,))
            conn.execute("DELETE FROM zones WHERE id=%s", (zone.id,))
            return self._journal(conn, EntryKind.ZONE_DELETED, zone.id, zone.name, zone.serial, "", (), ())

        return self._write(txn)

    # --- record sets -------------------------------------------------------------------

    def record_sets(self, zone_id: str) -> list[RecordSet]:
        def txn(conn: psycopg.Connection[Any]) -> list[RecordSet]:
            zone = self._find(conn, zone_id)
            rows = conn.execute("SELECT data FROM rrsets WHERE zone_id=%s ORDER BY sort_key", (zone.id,))
            return _decode_all([r[0] for r in rows])

        return self._read(txn)

    def record_sets_page(
        self, zone_id: str, start: tuple[str, str, str | None] | None, limit: int
    ) -> list[RecordSet]:
        """Up to `limit` record sets in listing order from (name, type, identifier) on."""

        def txn(conn: psycopg.Connection[Any]) -> list[RecordSet]:
            zone = self._find(conn, zone_id)
            key = _key(rules.listing_key(*start) if start else "")
            rows = conn.execute(
                "SELECT data FROM rrsets WHERE zone_id=%s AND sort_key>=%s ORDER BY sort_key LIMIT %s",
                (zone.id, key, limit),
            )
            return _decode_all([r[0] for r in rows])

        return self._read(txn)

    def get_record_sets(self, zone_id: str, name: str, rtype: str) -> list[RecordSet]:
        def txn(conn: psycopg.Connection[Any]) -> list[RecordSet]:
            zone = self._find(conn, zone_id)
            return _View(conn, zone.id).get(canonical_name(name), rtype.upper())

        return self._read(txn)

    def change_batch(
        self, zone_id: str, changes: Sequence[Change], comment: str = "", *, limits: bool = True,
        max_record_sets: int | None = None,
    ) -> ChangeInfo:
        """Apply all or none, in one transaction under the zone's row lock (module docstring).
        `max_record_sets`: the zone's MAX_RRSETS_BY_ZONE quota (None: none), as in SQLiteStore."""

        def txn(conn: psycopg.Connection[Any]) -> ChangeInfo:
            zone = self._find(conn, zone_id, lock=True)
            view = _View(conn, zone.id)
            names = {c.rrset.name for c in changes} | {zone.name}
            names |= {c.rrset.alias.dns_name for c in changes if c.rrset.alias is not None}
            view.prefetch(names)
            plan = rules.plan_batch(zone.id, zone.name, changes, view, limits=limits,
                                    resource=functools.partial(_resource_doc, conn),
                                    record_set_count=zone.record_set_count,
                                    max_record_sets=max_record_sets)
            if isinstance(plan, rules.Rejected):
                if plan.code == "InvalidInput":
                    raise InvalidInput("; ".join(plan.messages))
                raise InvalidChangeBatch(plan.messages, code=plan.code)
            old_soa = view.get(zone.name, "SOA")[0]
            soa = rules.bump_soa(old_soa, plan.puts)
            puts = tuple(rs for rs in plan.puts if rs.rtype != "SOA" or rs.name != zone.name)
            puts += (soa,)
            serial = rules.soa_serial(soa)
            if plan.deletes:  # one statement for the whole batch: arrays, not 1,000 round trips
                conn.execute(
                    "DELETE FROM rrsets WHERE zone_id=%s AND (name, rtype, set_id) IN "
                    "(SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]))",
                    (zone.id, [k.name for k in plan.deletes], [k.rtype for k in plan.deletes],
                     [k.set_identifier or "" for k in plan.deletes]),
                )
            encoded = self._put(conn, zone.id, puts)
            conn.execute(
                "UPDATE zones SET serial=%s, record_set_count=record_set_count+%s WHERE id=%s",
                (serial, plan.net_new, zone.id),
            )
            return self._journal(
                conn, EntryKind.CHANGE, zone.id, zone.name, serial, comment, puts, plan.deletes, encoded,
            )

        return self._write(txn)

    @staticmethod
    def _put(conn: psycopg.Connection[Any], zone_id: str, sets: Sequence[RecordSet]) -> list[str]:
        encoded = [_dumps(rs) for rs in sets]
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

    # --- changes and the journal -------------------------------------------------------

    def _append(self, conn: psycopg.Connection[Any], kind: str, zone_id: str, zone_name: str,
                serial: int, comment: str, puts: str, deletes: str) -> tuple[int, str, float]:
        """The journal append: the seq comes from the head row, locked until COMMIT, so
        commits happen in seq order with no gaps (module docstring)."""
        seq = conn.execute("UPDATE journal_head SET seq=seq+1 RETURNING seq").fetchone()[0]
        change_id = rules.change_id_for(seq)
        now = self._clock()
        conn.execute(
            "INSERT INTO journal VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (seq, kind, zone_id, zone_name, serial, change_id, now, comment, puts, deletes),
        )
        conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(seq)))  # sent at COMMIT
        return seq, change_id, now

    def _journal(
        self,
        conn: psycopg.Connection[Any],
        kind: EntryKind,
        zone_id: str,
        zone_name: str,
        serial: int,
        comment: str,
        puts: Sequence[RecordSet],
        deletes: Sequence[RecordKey],
        encoded_puts: Sequence[str] | None = None,
    ) -> ChangeInfo:
        if encoded_puts is None:
            encoded_puts = [_dumps(rs) for rs in puts]
        seq, change_id, now = self._append(
            conn, kind.value, zone_id, zone_name, serial, comment,
            "[" + ",".join(encoded_puts) + "]", json.dumps([list(k) for k in deletes]),
        )
        self._pending.append(
            JournalEntry(seq, kind, zone_id, zone_name, serial, change_id, tuple(puts), tuple(deletes))
        )
        return ChangeInfo(change_id, ChangeStatus.PENDING, now, comment, seq)

    def get_change(self, change_id: str) -> ChangeInfo:
        seq = rules.seq_of_change_id(change_id)
        row = None
        if seq is not None:
            row = self._read(lambda c: c.execute(
                "SELECT change_id, submitted_at, comment, seq FROM journal WHERE seq=%s", (seq,)
            ).fetchone())
        if row is None:
            raise NoSuchChange(f"Could not find resource with ID: {change_id.rsplit('/', 1)[-1]}")
        return ChangeInfo(row[0], ChangeStatus.PENDING, row[1], row[2], row[3])

    @staticmethod
    def _entry(row: Sequence[Any]) -> JournalEntry:
        seq, kind, zone_id, zone_name, serial, change_id, puts, deletes = row
        if kind == EntryKind.RESOURCE.value:
            rkind, rid, doc = json.loads(puts)
            return resource_entry(seq, rkind, rid, doc)
        return JournalEntry(
            seq, EntryKind(kind), zone_id, zone_name, serial, change_id,
            tuple(_decode(d) for d in json.loads(puts)),
            tuple(RecordKey(*k) for k in json.loads(deletes)),
        )

    def journal_since(self, seq: int, limit: int | None = None) -> list[JournalEntry]:
        """Entries with seq > `seq`, in order (at most `limit`). Entries this process
        committed recently come from memory; the database still says which seqs exist."""

        def txn(conn: psycopg.Connection[Any]) -> list[JournalEntry]:
            seqs = [r[0] for r in conn.execute(
                "SELECT seq FROM journal WHERE seq>%s ORDER BY seq LIMIT %s", (seq, limit))]
            if not seqs:
                return []
            if all(s in self._recent for s in seqs):
                return [self._recent[s] for s in seqs]
            rows = conn.execute(
                "SELECT seq, kind, zone_id, zone_name, serial, change_id, puts, deletes "
                "FROM journal WHERE seq>%s AND seq<=%s ORDER BY seq", (seq, seqs[-1]),
            ).fetchall()
            return [self._recent.get(r[0]) or self._entry(r) for r in rows]

        return self._read(txn)

    @property
    def seq(self) -> int:
        """The newest committed journal position."""
        return self._read(lambda c: c.execute("SELECT seq FROM journal_head").fetchone()[0])

    def snapshot(self) -> list[JournalEntry]:
        """One SNAPSHOT per zone, read in one REPEATABLE READ transaction at one position."""

        def txn(conn: psycopg.Connection[Any]) -> list[JournalEntry]:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            seq = conn.execute("SELECT seq FROM journal_head").fetchone()[0]
            zones = [self._zone(r) for r in conn.execute(
                f"SELECT {self._ZONE_COLS} FROM zones ORDER BY name")]
            out = [
                resource_entry(seq, k, i, json.loads(d))
                for k, i, d in conn.execute(
                    "SELECT kind, id, doc FROM resources WHERE journaled ORDER BY kind, id")
            ]
            for z in zones:
                rows = conn.execute("SELECT data FROM rrsets WHERE zone_id=%s", (z.id,))
                puts = tuple(_decode_all([r[0] for r in rows]))
                out.append(JournalEntry(seq, EntryKind.SNAPSHOT, z.id, z.name, z.serial, "", puts))
            return out

        return self._read(txn)

    # --- resources ---------------------------------------------------------------------

    def get_resource(self, kind: str, rid: str) -> Resource | None:
        row = self._read(lambda c: c.execute(
            "SELECT doc, version FROM resources WHERE kind=%s AND id=%s", (kind, rid)).fetchone())
        return None if row is None else Resource(kind, rid, json.loads(row[0]), row[1])

    def list_resources(self, kind: str) -> list[Resource]:
        rows = self._read(lambda c: c.execute(
            "SELECT id, doc, version FROM resources WHERE kind=%s ORDER BY id", (kind,)).fetchall())
        return [Resource(kind, i, json.loads(d), v) for i, d, v in rows]

    def count_resources(self, kind: str) -> int:
        return self._read(lambda c: c.execute(
            "SELECT COUNT(*) FROM resources WHERE kind=%s", (kind,)).fetchone()[0])

    def put_resource(
        self, kind: str, rid: str, doc: dict[str, Any], *,
        expect_version: int | None = None, journal: bool = False,
    ) -> Resource:
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True)

        def txn(conn: psycopg.Connection[Any]) -> Resource:
            self._lock_head(conn)  # resource writes serialise here: an exact compare-and-swap
            row = conn.execute(
                "SELECT version, journaled FROM resources WHERE kind=%s AND id=%s", (kind, rid)
            ).fetchone()
            check_expected_version(kind, rid, row[0] if row else None, expect_version)
            version = (row[0] if row else 0) + 1
            journaled = journal or bool(row and row[1])  # once journaled, always: readers follow it
            conn.execute(
                "INSERT INTO resources VALUES (%s, %s, %s, %s, %s) ON CONFLICT (kind, id) DO UPDATE "
                "SET doc=EXCLUDED.doc, version=EXCLUDED.version, journaled=EXCLUDED.journaled",
                (kind, rid, text, version, journaled),
            )
            if journaled:
                self._journal_resource(conn, kind, rid, text)
            return Resource(kind, rid, json.loads(text), version)

        return self._write(txn)

    def delete_resource(
        self, kind: str, rid: str, *, expect_version: int | None = None, journal: bool = False,
    ) -> None:
        def txn(conn: psycopg.Connection[Any]) -> None:
            self._lock_head(conn)
            row = conn.execute(
                "SELECT version, journaled FROM resources WHERE kind=%s AND id=%s", (kind, rid)
            ).fetchone()
            if row is None:
                raise NoSuchResource(f"No {kind} found with ID: {rid}")
            check_expected_version(kind, rid, row[0], expect_version)
            conn.execute("DELETE FROM resources WHERE kind=%s AND id=%s", (kind, rid))
            if journal or row[1]:
                self._journal_resource(conn, kind, rid, None)

        self._write(txn)

    def _journal_resource(self, conn: psycopg.Connection[Any], kind: str, rid: str, doc: str | None) -> None:
        seq, _, _ = self._append(
            conn, EntryKind.RESOURCE.value, "", "", 0, "",
            f'[{json.dumps(kind)},{json.dumps(rid)},{doc or "null"}]', "[]",
        )
        self._pending.append(resource_entry(seq, kind, rid, None if doc is None else json.loads(doc)))

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
