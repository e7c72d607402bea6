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
`[kind, id, doc]` in `puts`) and `resources` (kind, id, JSON document, version). Followers in other
processes open the same file read-only and poll `journal_since(seq)` (WAL readers never
block the writer). Several writer processes are safe too: BEGIN IMMEDIATE serialises them.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from authd.model import changes as rules
from authd.model.journal import EntryKind, JournalEntry, resource_entry
from authd.model.records import (
    AliasTarget,
    GeoLocation,
    RecordKey,
    RecordSet,
    Routing,
    canonical_name,
)
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
    check_expected_version,
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
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,            -- "healthcheck", "healthcheck-status", "tags", ...
    id TEXT NOT NULL,
    doc TEXT NOT NULL,             -- JSON
    version INTEGER NOT NULL,      -- 1 when created, +1 per put
    journaled INTEGER NOT NULL,    -- 1: written with journal=True; snapshot() carries it
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
"""


def _encode(rs: RecordSet) -> list[Any]:
    alias = None
    if rs.alias is not None:
        alias = [rs.alias.dns_name, rs.alias.hosted_zone_id, rs.alias.evaluate_target_health]
    out = [rs.name, rs.rtype, rs.ttl, list(rs.values), rs.set_identifier, rs.weight, alias]
    if rs.routing is not None:  # an eighth element only when there is one: plain rows unchanged
        out.append(_encode_routing(rs.routing))
    return out


def _encode_routing(r: Routing) -> list[Any]:
    geo = None if r.geo is None else [r.geo.continent, r.geo.country, r.geo.subdivision]
    return [r.failover, geo, r.region, r.multivalue, r.health_check_id,
            None if r.cidr is None else list(r.cidr)]


def _decode_routing(d: list[Any]) -> Routing:
    failover, geo, region, multivalue, health, cidr = d
    return Routing(failover, None if geo is None else GeoLocation(*geo), region, multivalue,
                   health, None if cidr is None else (cidr[0], cidr[1]))


# Printable ASCII without `"` and `\`: JSON writes such a string as itself between quotes.
_JSON_PLAIN = re.compile(r'[ !#-\[\]-~]*')


def _dumps(rs: RecordSet) -> str:
    """`json.dumps(_encode(rs))`, byte for byte, without the encoder's per-call setup for the
    plain sets that make up a big batch (one name, values and no alias, nothing to escape).
    A 1,000-set batch writes 1,000 of these; `tests/test_store_fastpaths.py` checks this
    against json.dumps."""
    plain = _JSON_PLAIN.fullmatch
    if (rs.alias is None and rs.set_identifier is None and rs.weight is None
            and rs.routing is None and type(rs.ttl) is int and plain(rs.name) and plain(rs.rtype)
            and all(plain(v) for v in rs.values)):
        values = '", "'.join(rs.values)
        values = f'["{values}"]' if rs.values else "[]"
        return f'["{rs.name}", "{rs.rtype}", {rs.ttl}, {values}, null, null, null]'
    return json.dumps(_encode(rs))


def _resource_doc(conn: sqlite3.Connection, kind: str, rid: str) -> dict[str, Any] | None:
    """For the batch rules, inside the batch's transaction: a resource's document, or None."""
    row = conn.execute("SELECT doc FROM resources WHERE kind=? AND id=?", (kind, rid)).fetchone()
    return None if row is None else json.loads(row[0])


def _decode_all(datas: Sequence[str]) -> list[RecordSet]:
    """Decode many stored sets with one json.loads call instead of one per set."""
    return [_decode(d) for d in json.loads("[" + ",".join(datas) + "]")] if datas else []


_new = object.__new__
_set = object.__setattr__


def _decode(d: list[Any]) -> RecordSet:
    """Rebuild a record set the store wrote itself. It was canonicalised when it was first
    built, so skip re-parsing every value (this is what keeps a 1M-set startup fast)."""
    name, rtype, ttl, values, set_id, weight, alias = d[:7]
    rs = _new(RecordSet)
    _set(rs, "name", name)
    _set(rs, "rtype", rtype)
    _set(rs, "ttl", ttl)
    _set(rs, "values", tuple(values))
    _set(rs, "set_identifier", set_id)
    _set(rs, "weight", weight)
    if alias is not None:
        at = _new(AliasTarget)
        _set(at, "dns_name", alias[0])
        _set(at, "hosted_zone_id", alias[1])
        _set(at, "evaluate_target_health", alias[2])
        alias = at
    _set(rs, "alias", alias)
    _set(rs, "routing", _decode_routing(d[7]) if len(d) > 7 else None)
    _set(rs, "key", RecordKey(name, rtype, set_id))
    return rs


RECENT_ENTRIES = 64  # committed journal entries kept in memory for in-process followers


class _View:
    """authd.model.changes.ZoneView over the rrsets table, inside the batch's transaction.

    `prefetch` loads every set at the batch's names in a few `IN (...)` queries, so a
    1,000-change batch costs a handful of round trips instead of two per change."""

    def __init__(self, conn: sqlite3.Connection, zone_id: str):
        self.conn, self.zone_id = conn, zone_id
        self._by_name: dict[str, list[RecordSet]] = {}

    def prefetch(self, names: set[str]) -> None:
        todo = [n for n in names if n not in self._by_name]
        for n in todo:
            self._by_name[n] = []
        for i in range(0, len(todo), 500):
            chunk = todo[i:i + 500]
            rows = self.conn.execute(
                f"SELECT name, data FROM rrsets WHERE zone_id=? AND name IN ({','.join('?' * len(chunk))})",
                (self.zone_id, *chunk),
            )
            rows = rows.fetchall()
            for (name, _), rs in zip(rows, _decode_all([data for _, data in rows]), strict=True):
                self._by_name[name].append(rs)

    def at(self, name: str) -> list[RecordSet]:
        if name not in self._by_name:
            self.prefetch({name})
        return self._by_name[name]

    def get(self, name: str, rtype: str) -> list[RecordSet]:
        return [rs for rs in self.at(name) if rs.rtype == rtype]


class SQLiteStore:
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
            self._conn.executescript(SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Files written before `sort_key` existed get it filled in once."""
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
                self._conn.execute("ROLLBACK")
                self._pending = []
                raise
            self._conn.execute("COMMIT")
            for entry in self._pending:  # committed: in-process followers may skip the decode
                self._recent[entry.seq] = entry
            while len(self._recent) > RECENT_ENTRIES:
                del self._recent[next(iter(self._recent))]
            self._pending = []
            return result

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                return fn(self._conn)
            finally:
                self._conn.execute("COMMIT")

    # --- zones -------------------------------------------------------------------------

    @staticmethod
    def _zone(row: Sequence[Any]) -> HostedZone:
        return HostedZone(row[0], row[1], row[2], row[3], row[4], row[5])

    _ZONE_COLS = "id, name, caller_reference, comment, serial, record_set_count"

    def list_zones(self) -> list[HostedZone]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {self._ZONE_COLS} FROM zones ORDER BY name, id")
            return [self._zone(r) for r in rows]

    def get_zone(self, zone_id: str) -> HostedZone | None:
        with self._lock:
            return self._get_zone(self._conn, zone_id)

    def _get_zone(self, conn: sqlite3.Connection, zone_id: str) -> HostedZone | None:
        row = conn.execute(
            f"SELECT {self._ZONE_COLS} FROM zones WHERE id=?", (rules.clean_zone_id(zone_id),)
        ).fetchone()
        return self._zone(row) if row else None

    def _find(self, conn: sqlite3.Connection, zone_id: str) -> HostedZone:
        zone = self._get_zone(conn, zone_id)
        if zone is None:
            raise NoSuchHostedZone(f"No hosted zone found with ID: {rules.clean_zone_id(zone_id)}")
        return zone

    def find_zone(self, zone_id: str) -> HostedZone:
        with self._lock:
            return self._find(self._conn, zone_id)

    def find_zone_by_name(self, name: str) -> HostedZone:
        try:
            origin = canonical_name(name)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        with self._lock:
            row = self._conn.execute(
                f"SELECT {self._ZONE_COLS} FROM zones WHERE name=?", (origin,)
            ).fetchone()
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

        def txn(conn: sqlite3.Connection) -> tuple[HostedZone, ChangeInfo]:
            clash = conn.execute(
                "SELECT id FROM zones WHERE id=? OR name=? OR caller_reference=?",
                (zid, origin, caller_reference),
            ).fetchone()
            if clash:
                raise HostedZoneAlreadyExists(
                    f"A hosted zone has already been created with the specified caller "
                    f"reference or name {origin} (id {clash[0]})"
                )
            conn.execute(
                "INSERT INTO zones VALUES (?, ?, ?, ?, ?, 2)",
                (zid, origin, caller_reference, comment, serial),
            )
            self._put(conn, zid, (soa, ns))
            info = self._journal(conn, EntryKind.SNAPSHOT, zid, origin, serial, comment, (soa, ns), ())
            return self._find(conn, zid), info

        return self._write(txn)

    def update_zone_comment(self, zone_id: str, comment: str) -> HostedZone:
        """Route 53 UpdateHostedZoneComment. Not journaled: DNS answers do not change."""

        def txn(conn: sqlite3.Connection) -> HostedZone:
            zone = self._find(conn, zone_id)
            conn.execute("UPDATE zones SET comment=? WHERE id=?", (comment, zone.id))
            return self._find(conn, zone.id)

        return self._write(txn)

    def delete_zone(self, zone_id: str) -> ChangeInfo:
        def txn(conn: sqlite3.Connection) -> ChangeInfo:
            zone = self._find(conn, zone_id)
            other = conn.execute(
                "SELECT 1 FROM rrsets WHERE zone_id=? AND NOT (name=? AND rtype IN ('SOA','NS')) LIMIT 1",
                (zone.id, zone.name),
            ).fetchone()
            if other:
                raise HostedZoneNotEmpty(
                    "The specified hosted zone contains non-required resource record sets "
                    "and so cannot be deleted."
                )
            conn.execute("DELETE FROM rrsets WHERE zone_id=?", (zone.id,))
            conn.execute("DELETE FROM zones WHERE id=?", (zone.id,))
            return self._journal(conn, EntryKind.ZONE_DELETED, zone.id, zone.name, zone.serial, "", (), ())

        return self._write(txn)

    # --- record sets -------------------------------------------------------------------

    def record_sets(self, zone_id: str) -> list[RecordSet]:
        def txn(conn: sqlite3.Connection) -> list[RecordSet]:
            zone = self._find(conn, zone_id)
            rows = conn.execute("SELECT data FROM rrsets WHERE zone_id=? ORDER BY sort_key", (zone.id,))
            return _decode_all([r[0] for r in rows])

        return self._read(txn)

    def record_sets_page(
        self, zone_id: str, start: tuple[str, str, str | None] | None, limit: int
    ) -> list[RecordSet]:
        """Up to `limit` record sets in listing order from (name, type, identifier) on: one
        index range scan, whatever the zone's size (ListResourceRecordSets paging)."""

        def txn(conn: sqlite3.Connection) -> list[RecordSet]:
            zone = self._find(conn, zone_id)
            key = rules.listing_key(*start) if start else ""
            rows = conn.execute(
                "SELECT data FROM rrsets WHERE zone_id=? AND sort_key>=? ORDER BY sort_key LIMIT ?",
                (zone.id, key, limit),
            )
            return _decode_all([r[0] for r in rows])

        return self._read(txn)

    def get_record_sets(self, zone_id: str, name: str, rtype: str) -> list[RecordSet]:
        def txn(conn: sqlite3.Connection) -> list[RecordSet]:
            zone = self._find(conn, zone_id)
            return _View(conn, zone.id).get(canonical_name(name), rtype.upper())

        return self._read(txn)

    def change_batch(
        self, zone_id: str, changes: Sequence[Change], comment: str = "", *, limits: bool = True,
        max_record_sets: int | None = None,
    ) -> ChangeInfo:
        """Apply all or none, in one transaction; see Store.change_batch. `limits=False`
        lifts the per-request size limits, for importing zone files only. `max_record_sets`: the zone's
        MAX_RRSETS_BY_ZONE quota (None: none; the control API passes its configured one)."""

        def txn(conn: sqlite3.Connection) -> ChangeInfo:
            zone = self._find(conn, zone_id)
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
            conn.executemany(
                "DELETE FROM rrsets WHERE zone_id=? AND name=? AND rtype=? AND set_id=?",
                [(zone.id, k.name, k.rtype, k.set_identifier or "") for k in plan.deletes],
            )
            encoded = self._put(conn, zone.id, puts)
            conn.execute(
                "UPDATE zones SET serial=?, record_set_count=record_set_count+? WHERE id=?",
                (serial, plan.net_new, zone.id),
            )
            return self._journal(
                conn, EntryKind.CHANGE, zone.id, zone.name, serial, comment, puts, plan.deletes,
                encoded,
            )

        return self._write(txn)

    @staticmethod
    def _put(conn: sqlite3.Connection, zone_id: str, sets: Sequence[RecordSet]) -> list[str]:
        """Write the sets; returns their encodings, which the journal row reuses."""
        encoded = [_dumps(rs) for rs in sets]
        conn.executemany(
            "INSERT OR REPLACE INTO rrsets VALUES (?, ?, ?, ?, ?, ?)",
            [
                (zone_id, rs.name, rs.rtype, rs.set_identifier or "", e,
                 rules.listing_key(rs.name, rs.rtype, rs.set_identifier))
                for rs, e in zip(sets, encoded, strict=True)
            ],
        )
        return encoded

    # --- changes and the journal -------------------------------------------------------

    def _journal(
        self,
        conn: sqlite3.Connection,
        kind: EntryKind,
        zone_id: str,
        zone_name: str,
        serial: int,
        comment: str,
        puts: Sequence[RecordSet],
        deletes: Sequence[RecordKey],
        encoded_puts: Sequence[str] | None = None,
    ) -> ChangeInfo:
        row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()
        seq = row[0] + 1
        change_id = rules.change_id_for(seq)
        now = self._clock()
        if encoded_puts is None:
            encoded_puts = [_dumps(rs) for rs in puts]
        conn.execute(
            "INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq, kind.value, zone_id, zone_name, serial, change_id, now, comment,
                "[" + ",".join(encoded_puts) + "]",
                json.dumps([list(k) for k in deletes]),
            ),
        )
        # kept for in-process followers once the transaction commits (see _write)
        self._pending.append(
            JournalEntry(seq, kind, zone_id, zone_name, serial, change_id, tuple(puts), tuple(deletes))
        )
        return ChangeInfo(change_id, ChangeStatus.PENDING, now, comment, seq)

    def get_change(self, change_id: str) -> ChangeInfo:
        seq = rules.seq_of_change_id(change_id)
        with self._lock:
            row = None
            if seq is not None:
                row = self._conn.execute(
                    "SELECT change_id, submitted_at, comment, seq FROM journal WHERE seq=?", (seq,)
                ).fetchone()
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
        """Entries with seq > `seq`, in order (at most `limit` of them when given).

        Entries this process committed recently come from memory; the file is still asked
        which seqs exist, so entries other processes wrote are never missed."""
        with self._lock:
            seqs = [r[0] for r in self._conn.execute(
                "SELECT seq FROM journal WHERE seq>? ORDER BY seq LIMIT ?",
                (seq, -1 if limit is None else limit),
            )]
            if all(s in self._recent for s in seqs):
                return [self._recent[s] for s in seqs]
            rows = self._conn.execute(
                "SELECT seq, kind, zone_id, zone_name, serial, change_id, puts, deletes "
                "FROM journal WHERE seq>? ORDER BY seq LIMIT ?",
                (seq, -1 if limit is None else limit),
            ).fetchall()
        return [self._recent.get(r[0]) or self._entry(r) for r in rows]

    @property
    def seq(self) -> int:
        """The newest journal position."""
        with self._lock:
            return self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]

    def snapshot(self) -> list[JournalEntry]:
        """One SNAPSHOT per zone, all read in one transaction at one journal position."""

        def txn(conn: sqlite3.Connection) -> list[JournalEntry]:
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]
            zones = [self._zone(r) for r in conn.execute(f"SELECT {self._ZONE_COLS} FROM zones ORDER BY name")]
            out = [
                resource_entry(seq, k, i, json.loads(d))
                for k, i, d in conn.execute(
                    "SELECT kind, id, doc FROM resources WHERE journaled=1 ORDER BY kind, id")
            ]
            for z in zones:
                rows = conn.execute("SELECT data FROM rrsets WHERE zone_id=?", (z.id,))
                puts = tuple(_decode_all([r[0] for r in rows]))
                out.append(JournalEntry(seq, EntryKind.SNAPSHOT, z.id, z.name, z.serial, "", puts))
            return out

        return self._read(txn)

    # --- resources ---------------------------------------------------------------------

    def get_resource(self, kind: str, rid: str) -> Resource | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT doc, version FROM resources WHERE kind=? AND id=?", (kind, rid)
            ).fetchone()
        return None if row is None else Resource(kind, rid, json.loads(row[0]), row[1])

    def list_resources(self, kind: str) -> list[Resource]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, doc, version FROM resources WHERE kind=? ORDER BY id", (kind,)
            ).fetchall()
        return [Resource(kind, i, json.loads(d), v) for i, d, v in rows]

    def count_resources(self, kind: str) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM resources WHERE kind=?", (kind,)).fetchone()[0]

    def put_resource(
        self, kind: str, rid: str, doc: dict[str, Any], *,
        expect_version: int | None = None, journal: bool = False,
    ) -> Resource:
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True)

        def txn(conn: sqlite3.Connection) -> Resource:
            row = conn.execute(
                "SELECT version, journaled FROM resources WHERE kind=? AND id=?", (kind, rid)
            ).fetchone()
            check_expected_version(kind, rid, row[0] if row else None, expect_version)
            version = (row[0] if row else 0) + 1
            journaled = journal or bool(row and row[1])  # once journaled, always: readers follow it
            conn.execute(
                "INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?, ?)",
                (kind, rid, text, version, int(journaled)),
            )
            if journaled:
                self._journal_resource(conn, kind, rid, text)
            return Resource(kind, rid, json.loads(text), version)

        return self._write(txn)

    def delete_resource(
        self, kind: str, rid: str, *, expect_version: int | None = None, journal: bool = False,
    ) -> None:
        def txn(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT version, journaled FROM resources WHERE kind=? AND id=?", (kind, rid)
            ).fetchone()
            if row is None:
                raise NoSuchResource(f"No {kind} found with ID: {rid}")
            check_expected_version(kind, rid, row[0], expect_version)
            conn.execute("DELETE FROM resources WHERE kind=? AND id=?", (kind, rid))
            if journal or row[1]:
                self._journal_resource(conn, kind, rid, None)

        self._write(txn)

    def _journal_resource(self, conn: sqlite3.Connection, kind: str, rid: str, doc: str | None) -> None:
        seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0] + 1
        conn.execute(
            "INSERT INTO journal VALUES (?, ?, '', '', 0, ?, ?, '', ?, '[]')",
            (seq, EntryKind.RESOURCE.value, rules.change_id_for(seq), self._clock(),
             f'[{json.dumps(kind)},{json.dumps(rid)},{doc or "null"}]'),
        )
        self._pending.append(resource_entry(seq, kind, rid, None if doc is None else json.loads(doc)))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
