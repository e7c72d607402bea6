"""SQLCore: the Store contract over SQL tables, shared by SQLiteStore and PostgresStore.

Blocking I/O core with no driver of its own: it runs SQL through the `Conn` its backend hands
to each transaction, and writes it with sqlite3's `?` placeholders (PostgresStore's
connection translates them). What lives here is everything the two backends do the same way:
the row encoding of record sets and routing (byte-identical to `json.dumps`), the zone row
mapping, the change-batch flow around `authd.model.changes.plan_batch` (prefetch, plan, SOA
bump, delete, put, journal row), change lookup, journal reads and resources.

Each backend supplies the dialect (see the hooks on `SQLCore`): how a write transaction is
opened and which lock it takes, how the journal seq is assigned, how many sets are read,
deleted and upserted in a few statements, and the after-commit notification. Those choices,
and why, are documented in `authd.store.sqlstore` and `authd.store.pgstore`.

Tables (both backends): `zones`, `rrsets` (one row per record set; `data` is `_dumps`),
`journal` (seq, kind, zone, serial, change id, time, comment, puts and deletes as JSON; a
RESOURCE row keeps `[kind, id, doc]` in `puts`; a big entry keeps `PARTS` there and its puts
in `journal_parts`, seq and part number to a JSON array) and `resources` (kind, id, JSON,
version, journaled).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from operator import attrgetter
from typing import Any, Protocol

from authd import gcpause
from authd.model import changes as rules
from authd.model.journal import EntryKind, JournalEntry, resource_entry
from authd.model.records import (
    MAX_TTL,
    AliasTarget,
    GeoLocation,
    RecordKey,
    RecordSet,
    Routing,
    canonical_name,
)
from authd.store import common
from authd.store.contract import (
    Action,
    Change,
    ChangeInfo,
    ChangeStatus,
    HostedZone,
    InvalidChangeBatch,
    NewZone,
    Resource,
    check_expected_version,
)

RECENT_ENTRIES = 64  # committed journal entries kept in memory for in-process followers
RECENT_MAX_PUTS = 10_000  # bigger entries are read back from the store when a follower asks

# --- row encoding ------------------------------------------------------------------------


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


def _dumps_many(sets: Sequence[RecordSet]) -> list[str]:
    """`[_dumps(rs) for rs in sets]`, with the plainness of the texts checked once for the
    whole batch instead of by a regular expression per name, type and value: a plain set's
    encoding is written blind, and the batch is kept when its texts together are printable
    ASCII without a backslash and with exactly the quotes the layout puts there (a `"` in a
    value would add one). Anything else, or a failed check, goes through `_dumps`."""
    out: list[str] = []
    quotes = 0
    plain: list[str] = []
    for rs in sets:
        values = rs.values
        if (rs.alias is None and rs.set_identifier is None and rs.weight is None
                and rs.routing is None and type(rs.ttl) is int and values):
            joined = '", "'.join(values)
            text = f'["{rs.name}", "{rs.rtype}", {rs.ttl}, ["{joined}"], null, null, null]'
            quotes += 4 + 2 * len(values)
            plain.append(text)
        else:
            text = _dumps(rs)
        out.append(text)
    if plain:
        whole = "".join(plain)
        if not (whole.isascii() and whole.isprintable() and "\\" not in whole
                and whole.count('"') == quotes):
            return [_dumps(rs) for rs in sets]
    return out


def _decode_all(datas: Sequence[str]) -> list[RecordSet]:
    """Decode many stored sets with one json.loads call instead of one per set; a plain set
    (no identifier, weight, alias or routing: the bulk of a big zone) inline, through the
    slots' own setters (a restart of a 1M-set store makes a million of them)."""
    if not datas:
        return []
    return _decode_rows(json.loads("[" + ",".join(datas) + "]"))


def _decode_rows(rows: list[list[Any]]) -> list[RecordSet]:
    """`_decode` of every decoded JSON row, a plain set inline (see `_decode_all`)."""
    out: list[RecordSet] = []
    add = out.append
    name_, rtype_, ttl_, values_, sid_, weight_, alias_, routing_, key_ = _SLOT_SETTERS
    for d in rows:
        if len(d) != 7 or d[4] is not None or d[5] is not None or d[6] is not None:
            add(_decode(d))
            continue
        name, rtype, ttl, values = d[0], d[1], d[2], d[3]
        rs = _new(RecordSet)
        name_(rs, name)
        rtype_(rs, rtype)
        ttl_(rs, ttl)
        values_(rs, tuple(values))
        sid_(rs, None)
        weight_(rs, None)
        alias_(rs, None)
        routing_(rs, None)
        key_(rs, _tuple_new(RecordKey, (name, rtype, None)))
        add(rs)
    return out


def _row_order(rs: RecordSet) -> tuple[str, str, str]:
    """The rrsets primary key's order (zone, name, type, set id; text compared as bytes)."""
    return (rs.name, rs.rtype, rs.set_identifier or "")


_KEY = attrgetter("key")
_new = object.__new__
_set = object.__setattr__
_tuple_new = tuple.__new__
# what `object.__setattr__(rs, field, v)` calls for each of RecordSet's slots, looked up once
_SLOT_SETTERS = tuple(RecordSet.__dict__[f].__set__ for f in (
    "name", "rtype", "ttl", "values", "set_identifier", "weight", "alias", "routing", "key"))


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


def _matched(built: Any, state: Sequence[RecordSet]) -> Any:
    """The served zone built from a zone file's sets, brought to the sets `import_sets` left
    (the apex SOA's serial moved forward, RFC 1996 §2.2; another apex set as the batch rules
    made it) through its own `update`, or None when that fails: then the index builds the
    zone from `state`. Most sets are the very objects the zone was built from."""
    records = built.records
    get = records.get
    changed = [rs for rs in state if get(rs.key) is not rs]
    changed = [rs for rs in changed if get(rs.key) != rs]
    fresh = sum(1 for rs in changed if rs.key not in records)
    deletes: list[RecordKey] = []
    if len(state) - fresh != len(records):
        keep = {rs.key for rs in state}
        deletes = [k for k in records if k not in keep]
    if changed or deletes:
        try:
            built.update(changed, deletes)
        except Exception:  # noqa: BLE001 - whatever it refuses, the index's own build decides
            return None
    return built


# A journal row whose puts are too many for one text (a zone import: 1M sets made one
# ~100 MB string, joined, bound and copied by the driver at once, issue 12) keeps this in
# `puts`, and the puts themselves in `journal_parts` (seq, part, a JSON array of up to
# `SQLCore.JOURNAL_PART` encodings each), read back one part at a time. Not JSON: a reader
# that predates the parts fails on it instead of reading the entry as empty.
PARTS = "parts"


def _entry(conn: Conn, row: Sequence[Any]) -> JournalEntry:
    """A journal row (seq, kind, zone_id, zone_name, serial, change_id, puts, deletes)."""
    seq, kind, zone_id, zone_name, serial, change_id, puts, deletes = row
    if kind == EntryKind.RESOURCE.value:
        rkind, rid, doc = json.loads(puts)
        return resource_entry(seq, rkind, rid, doc)
    sets = _parted_puts(conn, seq) if puts == PARTS else _decode_rows(json.loads(puts))
    return JournalEntry(
        seq, EntryKind(kind), zone_id, zone_name, serial, change_id, tuple(sets),
        tuple(RecordKey(*k) for k in json.loads(deletes)),
    )


def _parted_puts(conn: Conn, seq: int) -> list[RecordSet]:
    """The puts of a journal entry kept in `journal_parts`, one statement and one
    `json.loads` per part (never the whole entry's text at once)."""
    out: list[RecordSet] = []
    part = 0
    while (row := conn.execute("SELECT puts FROM journal_parts WHERE seq=? AND part=?",
                               (seq, part)).fetchone()) is not None:
        out += _decode_rows(json.loads(row[0]))
        part += 1
    return out


# --- the connection a backend hands to a transaction -------------------------------------


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """What the core needs of a connection: sqlite3's `execute` with `?` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...


SetsAt = Callable[[Conn, str, list[str]], list[tuple[str, str]]]


class _View:
    """authd.model.changes.ZoneView over the rrsets table, inside the batch's transaction.

    `prefetch` loads every set at the batch's names through the backend's `sets_at` (a few
    statements), so a 1,000-change batch costs a handful of round trips, not two per change."""

    def __init__(self, conn: Conn, zone_id: str, sets_at: SetsAt):
        self.conn, self.zone_id, self._sets_at = conn, zone_id, sets_at
        self._by_name: dict[str, list[RecordSet]] = {}

    def prefetch(self, names: set[str]) -> None:
        todo = [n for n in names if n not in self._by_name]
        for n in todo:
            self._by_name[n] = []
        if not todo:
            return
        rows = self._sets_at(self.conn, self.zone_id, todo)
        for (name, _), rs in zip(rows, _decode_all([data for _, data in rows]), strict=True):
            self._by_name[name].append(rs)

    def at(self, name: str) -> list[RecordSet]:
        if name not in self._by_name:
            self.prefetch({name})
        return self._by_name[name]

    def get(self, name: str, rtype: str) -> list[RecordSet]:
        return [rs for rs in self.at(name) if rs.rtype == rtype]

    def held(self, sets: Sequence[RecordSet]) -> list[bool]:
        """For each set, whether the zone held its key when the batch began (its name was
        prefetched: every put's is, `common.batch_names`)."""
        by_name = self._by_name
        out = []
        for rs in sets:
            key = rs.key
            out.append(any(old.key == key for old in by_name.get(key.name) or self.at(key.name)))
        return out


def _resource_doc(conn: Conn, kind: str, rid: str) -> dict[str, Any] | None:
    """For the batch rules, inside the batch's transaction: a resource's document, or None
    (health checks and CIDR collections that record sets name must exist)."""
    row = conn.execute("SELECT doc FROM resources WHERE kind=? AND id=?", (kind, rid)).fetchone()
    return None if row is None else json.loads(row[0])


class SQLCore:
    """The Store operations both SQL backends share. A backend subclasses it, sets the
    attributes below in its constructor, and implements the dialect hooks."""

    _clock: Callable[[], float]
    _pending: list[JournalEntry]  # appended by this write transaction, kept once it commits
    _recent: dict[int, JournalEntry]  # the newest committed entries, by seq
    _handoff: dict[str, tuple[int, list[RecordSet], Any]]  # zone id -> (import seq, its sets, built)
    _prebuilt: dict[str, tuple[JournalEntry, Any]]  # zone id -> (snapshot entry, its built zone)

    _FOR_UPDATE = ""  # appended to the zone row read of a write that must hold its zone
    _NO_LIMIT: Any = None  # the LIMIT value that means "no limit"

    # --- dialect hooks -----------------------------------------------------------------

    def _write(self, fn: Callable[[Any], Any]) -> Any:
        """Run fn(conn) in one write transaction; call `_committed()` after COMMIT."""
        raise NotImplementedError

    def _read(self, fn: Callable[[Any], Any]) -> Any:
        """Run fn(conn) in one read transaction (one consistent view across statements)."""
        raise NotImplementedError

    def _reads(self, fn: Callable[[Any], Any]) -> Any:
        """Run fn(conn) for reads that need no common view (each statement stands alone)."""
        return self._read(fn)

    def _lock_writers(self, conn: Any) -> None:
        """Serialise zone creations and resource writes (their checks read more than a row)."""

    def _next_seq(self, conn: Any) -> int:
        """The journal seq of the row about to be appended, in this write transaction."""
        raise NotImplementedError

    def _head_seq(self, conn: Any) -> int:
        """The newest committed journal seq."""
        raise NotImplementedError

    def _notify(self, conn: Any, seq: int) -> None:
        """Tell other processes, once this transaction commits, that `seq` exists."""

    def _begin_snapshot(self, conn: Any) -> None:
        """First statement of `snapshot()`'s read transaction: whatever makes every later
        statement of it see one journal position (SQLite's BEGIN already does)."""

    def _sets_at(self, conn: Any, zone_id: str, names: list[str]) -> list[tuple[str, str]]:
        """(name, data) of every set at `names` in one zone."""
        raise NotImplementedError

    def _delete_sets(self, conn: Any, zone_id: str, keys: Sequence[RecordKey]) -> None:
        raise NotImplementedError

    def _put(self, conn: Any, zone_id: str, sets: Sequence[RecordSet]) -> list[str]:
        """Write (upsert) the sets; returns their encodings, which the journal row reuses."""
        raise NotImplementedError

    def _put_planned(self, conn: Any, zone_id: str, sets: Sequence[RecordSet],
                     held: Callable[[Sequence[RecordSet]], list[bool]]) -> list[str]:
        """A batch's puts, knowing which keys the zone holds (`held(sets)`): a backend may
        update those rows in place and insert only the rest. The default is `_put`."""
        return self._put(conn, zone_id, sets)

    def _insert_new(self, conn: Any, zone_id: str, sets: Sequence[RecordSet],
                    encoded: Sequence[str], sort_keys: Sequence[str]) -> None:
        """Bulk-insert sets whose keys the zone does not hold (`import_sets`), with their
        encodings and `changes.listing_key`s, in the backend's fastest way."""
        raise NotImplementedError

    @staticmethod
    def _sort_key(listing_key: str) -> Any:
        """changes.listing_key as the `sort_key` column stores it."""
        return listing_key

    def _committed(self) -> None:
        """After COMMIT: keep this transaction's entries for in-process followers."""
        for entry in self._pending:  # committed: in-process followers may skip the decode
            if len(entry.puts) <= RECENT_MAX_PUTS:
                # a zone import is left out: the index reads it from the snapshot, and
                # keeping it would hold a second copy of every record set
                self._recent[entry.seq] = entry
        while len(self._recent) > RECENT_ENTRIES:
            del self._recent[next(iter(self._recent))]
        self._pending = []

    # --- zones -------------------------------------------------------------------------

    _ZONE_COLS = "id, name, caller_reference, comment, serial, record_set_count"

    @staticmethod
    def _zone(row: Sequence[Any]) -> HostedZone:
        return HostedZone(row[0], row[1], row[2], row[3], row[4], row[5])

    def list_zones(self) -> list[HostedZone]:
        return self._reads(lambda c: [
            self._zone(r) for r in c.execute(f"SELECT {self._ZONE_COLS} FROM zones ORDER BY name, id")
        ])

    def _get_zone(self, conn: Conn, zone_id: str, lock: bool = False) -> HostedZone | None:
        row = conn.execute(
            f"SELECT {self._ZONE_COLS} FROM zones WHERE id=?" + (self._FOR_UPDATE if lock else ""),
            (rules.clean_zone_id(zone_id),),
        ).fetchone()
        return self._zone(row) if row else None

    def _find(self, conn: Conn, zone_id: str, lock: bool = False) -> HostedZone:
        zone = self._get_zone(conn, zone_id, lock)
        if zone is None:
            raise common.no_such_zone(zone_id)
        return zone

    def get_zone(self, zone_id: str) -> HostedZone | None:
        return self._reads(lambda c: self._get_zone(c, zone_id))

    def find_zone(self, zone_id: str) -> HostedZone:
        return self._reads(lambda c: self._find(c, zone_id))

    def find_zone_by_name(self, name: str) -> HostedZone:
        origin = common.origin_of(name)
        row = self._reads(lambda c: c.execute(
            f"SELECT {self._ZONE_COLS} FROM zones WHERE name=?", (origin,)).fetchone())
        if row is None:
            raise common.no_such_zone_name(origin)
        return self._zone(row)

    def create_zone(
        self, name: str, caller_reference: str, comment: str = "", zone_id: str | None = None
    ) -> tuple[HostedZone, ChangeInfo]:
        origin = common.origin_of(name)
        zid = zone_id or rules.zone_id_for(origin)

        def txn(conn: Conn) -> tuple[HostedZone, ChangeInfo]:
            info = self._create_in(conn, origin, zid, caller_reference, comment)
            return self._find(conn, zid), info

        return self._write(txn)

    def _create_in(self, conn: Conn, origin: str, zid: str, caller_reference: str,
                   comment: str) -> ChangeInfo:
        """`create_zone`'s writes, inside the caller's transaction (`import_sets` with
        `create` runs them in its own, so the zone appears already filled)."""
        soa, ns = rules.default_apex(origin)
        serial = rules.soa_serial(soa)
        self._lock_writers(conn)  # zone creations serialise here, so the clash check is exact
        clash = conn.execute(
            "SELECT id FROM zones WHERE id=? OR name=? OR caller_reference=?",
            (zid, origin, caller_reference),
        ).fetchone()
        if clash:
            raise common.zone_exists(origin, clash[0])
        conn.execute(
            "INSERT INTO zones VALUES (?, ?, ?, ?, ?, 2)",
            (zid, origin, caller_reference, comment, serial),
        )
        self._put(conn, zid, (soa, ns))
        return self._journal(conn, EntryKind.SNAPSHOT, zid, origin, serial, comment, (soa, ns), ())

    def update_zone_comment(self, zone_id: str, comment: str) -> HostedZone:
        """Route 53 UpdateHostedZoneComment. Not journaled: DNS answers do not change."""

        def txn(conn: Conn) -> HostedZone:
            zone = self._find(conn, zone_id, lock=True)
            conn.execute("UPDATE zones SET comment=? WHERE id=?", (comment, zone.id))
            return self._find(conn, zone.id)

        return self._write(txn)

    def delete_zone(self, zone_id: str) -> ChangeInfo:
        def txn(conn: Conn) -> ChangeInfo:
            zone = self._find(conn, zone_id, lock=True)
            other = conn.execute(
                "SELECT 1 FROM rrsets WHERE zone_id=? AND NOT (name=? AND rtype IN ('SOA','NS')) LIMIT 1",
                (zone.id, zone.name),
            ).fetchone()
            if other:
                raise common.zone_not_empty()
            conn.execute("DELETE FROM rrsets WHERE zone_id=?", (zone.id,))
            conn.execute("DELETE FROM zones WHERE id=?", (zone.id,))
            return self._journal(conn, EntryKind.ZONE_DELETED, zone.id, zone.name, zone.serial, "", (), ())

        return self._write(txn)

    # --- record sets -------------------------------------------------------------------

    def record_sets(self, zone_id: str) -> list[RecordSet]:
        def txn(conn: Conn) -> list[RecordSet]:
            zone = self._find(conn, zone_id)
            rows = conn.execute("SELECT data FROM rrsets WHERE zone_id=? ORDER BY sort_key", (zone.id,))
            return _decode_all([r[0] for r in rows])

        return self._read(txn)

    def record_sets_page(
        self, zone_id: str, start: tuple[str, str, str | None] | None, limit: int
    ) -> list[RecordSet]:
        """Up to `limit` record sets in listing order from (name, type, identifier) on: one
        index range scan, whatever the zone's size (ListResourceRecordSets paging)."""

        def txn(conn: Conn) -> list[RecordSet]:
            zone = self._find(conn, zone_id)
            key = self._sort_key(rules.listing_key(*start) if start else "")
            rows = conn.execute(
                "SELECT data FROM rrsets WHERE zone_id=? AND sort_key>=? ORDER BY sort_key LIMIT ?",
                (zone.id, key, limit),
            )
            return _decode_all([r[0] for r in rows])

        return self._read(txn)

    def get_record_sets(self, zone_id: str, name: str, rtype: str) -> list[RecordSet]:
        def txn(conn: Conn) -> list[RecordSet]:
            zone = self._find(conn, zone_id)
            return _View(conn, zone.id, self._sets_at).get(canonical_name(name), rtype.upper())

        return self._read(txn)

    def change_batch(
        self, zone_id: str, changes: Sequence[Change], comment: str = "", *, limits: bool = True,
        max_record_sets: int | None = None,
        planned: Callable[[Sequence[RecordSet]], None] | None = None,
    ) -> ChangeInfo:
        """Apply all or none, in one transaction holding the zone (the backend's lock); see
        Store.change_batch. `limits=False` lifts the per-request size limits, for importing
        zone files only. `max_record_sets`: the zone's MAX_RRSETS_BY_ZONE quota (None: none;
        the control API passes its configured one). `planned(puts)`: called with the
        accepted batch's puts (the journal entry's own objects) once everything is written,
        right before the COMMIT, in the calling thread (see Store.change_batch)."""

        def txn(conn: Conn) -> ChangeInfo:
            zone = self._find(conn, zone_id, lock=True)
            view = _View(conn, zone.id, self._sets_at)
            view.prefetch(common.batch_names(zone.name, changes))
            puts, deletes, serial, net_new = common.plan(
                zone.id, zone.name, changes, view, limits=limits,
                resource=lambda kind, rid: _resource_doc(conn, kind, rid),
                record_set_count=zone.record_set_count, max_record_sets=max_record_sets)
            if deletes:
                self._delete_sets(conn, zone.id, deletes)
            encoded = self._put_planned(conn, zone.id, puts, view.held)
            conn.execute(
                "UPDATE zones SET serial=?, record_set_count=record_set_count+? WHERE id=?",
                (serial, net_new, zone.id),
            )
            info = self._journal(
                conn, EntryKind.CHANGE, zone.id, zone.name, serial, comment, puts, deletes, encoded,
            )
            if planned is not None:
                planned(puts)
            return info

        return self._write(txn)

    # --- importing a zone file into a new zone -----------------------------------------

    def import_sets(self, zone_id: str, sets: Sequence[RecordSet], comment: str = "", *,
                    zone_comment: str | None = None, built: Any = None,
                    create: NewZone | None = None) -> ChangeInfo:
        """Fill a zone that holds only what `create_zone` gave it with a zone file's sets:
        the same result, journal entry and errors as `change_batch` of their CREATEs (and
        UPSERTs of the apex SOA and NS), in one transaction with one bulk insert
        (`_insert_new`). `zone_comment`, when given, becomes the zone's comment in that same
        transaction: `authd.zonefiles.seed` records the file's digests there, so a crash
        mid-import leaves neither the sets nor a digest that would call the zone seeded.

        The file was checked whole by `zonefile.check_zone` (CNAME exclusivity, SOA at the
        apex, plain and weighted sets apart), so the plain sets (no alias, identifier or
        routing policy: the bulk of a zone) need only their own checks (`problems()`); the
        rest (aliases, routing policies, the apex SOA and NS) go through the batch rules
        against the zone as the plain sets leave it, as a batch would check them.

        The zone's resulting sets are handed to the next `snapshot()` of this store, which
        then does not read back and decode what was just written (issue 12: a 1M-set seed
        spent a fifth of its time there), unless the journal says the zone changed since.
        `built` (the served zone the file was read into, `authd.zonefiles.fastbuild`) goes
        with them, and the snapshot's reader takes it (`take_built`, which brings it to the
        import's result: the bumped SOA, `_matched`) instead of building the zone again.
        """

        def txn(conn: Conn) -> tuple[ChangeInfo, str, list[RecordSet]]:
            if create is not None:  # the zone is created by this same transaction
                self._create_in(conn, common.origin_of(create.name), zone_id,
                                create.caller_reference, create.comment)
            zone = self._find(conn, zone_id, lock=True)
            before = {rs.key: rs for rs in _decode_all([r[0] for r in conn.execute(
                "SELECT data FROM rrsets WHERE zone_id=?", (zone.id,))])}
            plain: list[RecordSet] = []
            rest: list[Change] = []
            problems: list[str] = []
            seen: set = set()
            for rs in sets:
                if (rs.alias is None and rs.set_identifier is None and rs.routing is None
                        and rs.weight is None and rs.key not in before and rs.key not in seen):
                    seen.add(rs.key)
                    plain.append(rs)
                    ttl, values = rs.ttl, rs.values
                    if (type(ttl) is int and 0 <= ttl <= MAX_TTL and values
                            and (len(values) == 1 or len(set(values)) == len(values))):
                        continue  # what problems() finds nothing in, without the call
                    problems.extend(rs.problems())
                else:
                    rest.append(Change(Action.UPSERT if rs.key in before else Action.CREATE, rs))
            if problems:
                raise InvalidChangeBatch(list(dict.fromkeys(problems)))
            view = _View(conn, zone.id, self._sets_at)
            names = common.batch_names(zone.name, rest)
            view.prefetch(names)
            for rs in plain:  # the zone as the plain sets leave it, at the names the rules read
                if rs.name in names:
                    view.at(rs.name).append(rs)
            if rest or not plain:
                planned, deletes, serial, net_new = common.plan(
                    zone.id, zone.name, rest, view, limits=False,
                    resource=lambda kind, rid: _resource_doc(conn, kind, rid),
                    record_set_count=zone.record_set_count + len(plain), max_record_sets=None)
            else:  # only plain sets: what plan() adds to a batch is the bumped SOA (RFC 1996 §2.2)
                soa = rules.bump_soa(view.get(zone.name, "SOA")[0], ())
                planned, deletes, serial, net_new = (soa,), (), rules.soa_serial(soa), 0
            if deletes:
                self._delete_sets(conn, zone.id, deletes)
            # in chunks (issue 12): each chunk's sets encoded, inserted and, when the entry
            # is kept in parts (`PARTS`), written as one part of its puts, then dropped, so no
            # million encodings, nor the one text of them all, are ever alive at once. The
            # journal row goes first for its seq (in PostgreSQL that takes the head row,
            # which a creating import holds since `_create_in` anyway).
            parted = len(plain) + len(planned) > self.JOURNAL_PART
            kept: list[str] = []  # the encodings of an entry small enough for one row
            if parted:
                seq, change_id, now = self._append(
                    conn, EntryKind.CHANGE.value, zone.id, zone.name, serial, comment, PARTS,
                    json.dumps([list(k) for k in deletes]))
            part = 0
            for i in range(0, len(plain), self.IMPORT_CHUNK):
                chunk = plain[i:i + self.IMPORT_CHUNK]
                texts = _dumps_many(chunk)
                self._insert_new(conn, zone.id, chunk, texts, common.listing_keys(chunk))
                if parted:
                    self._journal_part(conn, seq, part, texts)
                    part += 1
                else:
                    kept += texts
                del chunk, texts
            texts = self._put(conn, zone.id, planned)
            conn.execute(
                "UPDATE zones SET serial=?, record_set_count=record_set_count+?, "
                "comment=COALESCE(?, comment) WHERE id=?",
                (serial, net_new + len(plain), zone_comment, zone.id),
            )
            puts = (*plain, *planned)
            if parted:
                if texts:
                    self._journal_part(conn, seq, part, texts)
                info = self._journaled(seq, change_id, now, EntryKind.CHANGE, zone.id, zone.name,
                                       serial, comment, puts, deletes)
            else:
                info = self._journal(conn, EntryKind.CHANGE, zone.id, zone.name, serial, comment,
                                     puts, deletes, kept + texts)
            del kept, texts
            # the zone's sets now: the plain ones are new keys (`seen`), so only the few the
            # batch rules planned can replace or delete one the zone held (no dict of them all)
            replaced = {rs.key for rs in planned}
            state = [rs for key, rs in before.items() if key not in replaced and key not in deletes]
            if replaced.isdisjoint(seen):  # always, as the rules refuse a set a plain one holds
                state += plain
            else:  # as the puts leave it: the planned set in place of the plain one
                state += [rs for rs in plain if rs.key not in replaced]
            state += planned
            # in the order the rrsets table keeps its rows (the primary key), so a restart
            # that reads them back gives the index the same sequence: the sets' own keys
            # order so (text compared by code point, as SQLite compares UTF-8 bytes) and make
            # no tuple per set; `_row_order` only where a plain and an identified set share
            # a name and type (None and a text do not compare)
            try:
                state.sort(key=_KEY)
            except TypeError:
                state.sort(key=_row_order)
            return info, zone.id, state

        with gcpause.paused(len(sets)):
            info, zid, state = self._write(txn)
        # `built` is brought to `state` by `take_built`, not here: a node may be answering DNS
        # from it while this runs in a thread (`zonefiles.seed.Seeding.early`), so it changes
        # only in the thread that serves it, at the moment the store's snapshot replaces it
        self._handoff[zid] = (info.seq, state, built)
        return info

    # --- changes and the journal -------------------------------------------------------

    def _append(self, conn: Conn, kind: str, zone_id: str, zone_name: str,
                serial: int, comment: str, puts: str, deletes: str) -> tuple[int, str, float]:
        """One journal row, with the seq the backend assigns (`_next_seq`)."""
        seq = self._next_seq(conn)
        change_id = rules.change_id_for(seq)
        now = self._clock()
        conn.execute(
            "INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, kind, zone_id, zone_name, serial, change_id, now, comment, puts, deletes),
        )
        self._notify(conn, seq)
        return seq, change_id, now

    def _journal(
        self,
        conn: Conn,
        kind: EntryKind,
        zone_id: str,
        zone_name: str,
        serial: int,
        comment: str,
        puts: Sequence[RecordSet],
        deletes: Sequence[RecordKey],
        encoded_puts: Sequence[str] | None = None,
    ) -> ChangeInfo:
        """One journal entry; more than `JOURNAL_PART` puts go to `journal_parts` (`PARTS`)."""
        if encoded_puts is None:
            encoded_puts = [_dumps(rs) for rs in puts]
        step = self.JOURNAL_PART
        parted = len(encoded_puts) > step
        seq, change_id, now = self._append(
            conn, kind.value, zone_id, zone_name, serial, comment,
            PARTS if parted else "[" + ",".join(encoded_puts) + "]",
            json.dumps([list(k) for k in deletes]),
        )
        if parted:
            for part, i in enumerate(range(0, len(encoded_puts), step)):
                self._journal_part(conn, seq, part, encoded_puts[i:i + step])
        return self._journaled(seq, change_id, now, kind, zone_id, zone_name, serial, comment,
                               puts, deletes)

    JOURNAL_PART = 1 << 16  # puts per `journal_parts` row; an entry with more is kept in parts

    @staticmethod
    def _journal_part(conn: Conn, seq: int, part: int, encoded: Sequence[str]) -> None:
        """Part `part` (from 0) of journal entry `seq`'s puts: a JSON array of `encoded`."""
        conn.execute("INSERT INTO journal_parts VALUES (?, ?, ?)",
                     (seq, part, "[" + ",".join(encoded) + "]"))

    def _journaled(self, seq: int, change_id: str, now: float, kind: EntryKind, zone_id: str,
                   zone_name: str, serial: int, comment: str, puts: Sequence[RecordSet],
                   deletes: Sequence[RecordKey]) -> ChangeInfo:
        """The appended entry, kept for in-process followers once the transaction commits
        (see _committed), and its ChangeInfo."""
        self._pending.append(
            JournalEntry(seq, kind, zone_id, zone_name, serial, change_id, tuple(puts), tuple(deletes))
        )
        return ChangeInfo(change_id, ChangeStatus.PENDING, now, comment, seq)

    def get_change(self, change_id: str) -> ChangeInfo:
        seq = rules.seq_of_change_id(change_id)
        row = None
        if seq is not None:
            row = self._reads(lambda c: c.execute(
                "SELECT change_id, submitted_at, comment, seq FROM journal WHERE seq=?", (seq,)
            ).fetchone())
        if row is None:
            raise common.no_such_change(change_id)
        return ChangeInfo(row[0], ChangeStatus.PENDING, row[1], row[2], row[3])

    def journal_since(self, seq: int, limit: int | None = None) -> list[JournalEntry]:
        """Entries with seq > `seq`, in order (at most `limit` of them when given).

        Entries this process committed recently come from memory; the database is still
        asked which seqs exist, so entries other processes wrote are never missed."""

        def txn(conn: Conn) -> list[JournalEntry]:
            seqs = [r[0] for r in conn.execute(
                "SELECT seq FROM journal WHERE seq>? ORDER BY seq LIMIT ?",
                (seq, self._NO_LIMIT if limit is None else limit))]
            if not seqs:
                return []
            if all(s in self._recent for s in seqs):
                return [self._recent[s] for s in seqs]
            rows = conn.execute(
                "SELECT seq, kind, zone_id, zone_name, serial, change_id, puts, deletes "
                "FROM journal WHERE seq>? AND seq<=? ORDER BY seq", (seq, seqs[-1]),
            ).fetchall()
            return [self._recent.get(r[0]) or _entry(conn, r) for r in rows]

        return self._reads(txn)

    def recent_entries(self, after: int, upto: int) -> list[JournalEntry] | None:
        """The committed entries after..upto (seqs `after`+1 to `upto`) from this process's
        memory when it holds every one of them, else None (ask `journal_since`). No statement
        and no lock, only dict lookups (atomic under the GIL), so the trio thread may call it
        while the store's worker thread commits: a seq is in `_recent` only once committed,
        and one missing (another process wrote it, or a PostgreSQL sequence gap) gives None."""
        recent = self._recent
        out = []
        for s in range(after + 1, upto + 1):
            entry = recent.get(s)
            if entry is None:
                return None
            out.append(entry)
        return out

    @property
    def seq(self) -> int:
        """The newest committed journal position."""
        return self._reads(self._head_seq)

    SNAPSHOT_CHUNK = 1 << 16  # rows per json.loads: a 1M-set zone never is one string
    IMPORT_CHUNK = 1 << 16  # sets encoded and inserted at a time by `import_sets`

    def snapshot(self) -> list[JournalEntry]:
        """One RESOURCE entry per journaled resource, then one SNAPSHOT per zone, all read in
        one transaction at one journal position (see Store.snapshot)."""

        handoff, self._handoff = self._handoff, {}  # once: a later snapshot reads the store

        def txn(conn: Conn) -> list[JournalEntry]:
            self._begin_snapshot(conn)
            seq = self._head_seq(conn)
            zones = [self._zone(r) for r in conn.execute(
                f"SELECT {self._ZONE_COLS} FROM zones ORDER BY name")]
            out = [
                resource_entry(seq, k, i, json.loads(d))
                for k, i, d in conn.execute(
                    "SELECT kind, id, doc FROM resources WHERE journaled=? ORDER BY kind, id", (True,))
            ]
            with gcpause.paused(sum(z.record_set_count for z in zones)):
                for z in zones:
                    handed = self._handed_off(conn, z.id, seq, handoff)
                    if handed is None:
                        rows = conn.execute("SELECT data FROM rrsets WHERE zone_id=?", (z.id,))
                        sets = []
                        while chunk := rows.fetchmany(self.SNAPSHOT_CHUNK):
                            sets += _decode_all([r[0] for r in chunk])
                    else:
                        sets, built = handed
                    entry = JournalEntry(seq, EntryKind.SNAPSHOT, z.id, z.name, z.serial, "",
                                         tuple(sets))
                    if handed is not None and built is not None:
                        prebuilt[z.id] = (entry, built)
                    out.append(entry)
            return out

        prebuilt: dict[str, tuple[JournalEntry, Any]] = {}
        out = self._read(txn)
        self._prebuilt = prebuilt
        return out

    def take_built(self, entry: JournalEntry) -> Any:
        """The served zone `import_sets` was given for this SNAPSHOT entry of the last
        `snapshot()`, brought to the entry's sets (`_matched`), once (the index that takes
        it changes it in place), or None: build it. The next `snapshot()` drops what was not
        taken, so at most one is ever kept."""
        got = self._prebuilt.get(entry.zone_id)
        if got is None or got[0] is not entry:
            return None
        del self._prebuilt[entry.zone_id]
        with gcpause.paused(len(entry.puts)):
            return _matched(got[1], entry.puts)

    @staticmethod
    def _handed_off(conn: Conn, zone_id: str, seq: int, handoff: dict[str, tuple[int, list[RecordSet], Any]]
                    ) -> tuple[list[RecordSet], Any] | None:
        """The sets `import_sets` left for this zone, if no journal entry after that import
        (by any process) touched the zone up to `seq`; else None: read the store."""
        handed = handoff.get(zone_id)
        if handed is None or handed[0] > seq:
            return None
        later = conn.execute("SELECT 1 FROM journal WHERE seq>? AND seq<=? AND zone_id=? LIMIT 1",
                             (handed[0], seq, zone_id)).fetchone()
        return None if later else (handed[1], handed[2])

    # --- resources ---------------------------------------------------------------------

    def get_resource(self, kind: str, rid: str) -> Resource | None:
        row = self._reads(lambda c: c.execute(
            "SELECT doc, version FROM resources WHERE kind=? AND id=?", (kind, rid)).fetchone())
        return None if row is None else Resource(kind, rid, json.loads(row[0]), row[1])

    def list_resources(self, kind: str) -> list[Resource]:
        rows = self._reads(lambda c: c.execute(
            "SELECT id, doc, version FROM resources WHERE kind=? ORDER BY id", (kind,)).fetchall())
        return [Resource(kind, i, json.loads(d), v) for i, d, v in rows]

    def count_resources(self, kind: str) -> int:
        return self._reads(lambda c: c.execute(
            "SELECT COUNT(*) FROM resources WHERE kind=?", (kind,)).fetchone()[0])

    def put_resource(
        self, kind: str, rid: str, doc: dict[str, Any], *,
        expect_version: int | None = None, journal: bool = False,
    ) -> Resource:
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True)

        def txn(conn: Conn) -> Resource:
            self._lock_writers(conn)  # resource writes serialise here: an exact compare-and-swap
            row = conn.execute(
                "SELECT version, journaled FROM resources WHERE kind=? AND id=?", (kind, rid)
            ).fetchone()
            version, journaled = common.next_resource_version(kind, rid, row, expect_version, journal)
            conn.execute(  # both SQLite (3.24+) and PostgreSQL spell the upsert this way
                "INSERT INTO resources VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE "
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
        def txn(conn: Conn) -> None:
            self._lock_writers(conn)
            row = conn.execute(
                "SELECT version, journaled FROM resources WHERE kind=? AND id=?", (kind, rid)
            ).fetchone()
            if row is None:
                raise common.no_such_resource(kind, rid)
            check_expected_version(kind, rid, row[0], expect_version)
            conn.execute("DELETE FROM resources WHERE kind=? AND id=?", (kind, rid))
            if journal or row[1]:
                self._journal_resource(conn, kind, rid, None)

        self._write(txn)

    def _journal_resource(self, conn: Conn, kind: str, rid: str, doc: str | None) -> None:
        seq, _, _ = self._append(
            conn, EntryKind.RESOURCE.value, "", "", 0, "",
            f'[{json.dumps(kind)},{json.dumps(rid)},{doc or "null"}]', "[]",
        )
        self._pending.append(resource_entry(seq, kind, rid, None if doc is None else json.loads(doc)))
