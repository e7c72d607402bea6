"""MemoryStore: the Store protocol in memory, for the enactor's in-process client and the
interleaving checker.

Pure core apart from an injectable clock (`clock`, default `time.time`, only used for the
ChangeInfo timestamp). Batches go through `authd.model.changes.plan_batch`, the one copy of
Route 53's rules, so a MemoryStore accepts and rejects exactly what SQLiteStore and the HTTP
API do. Every read is a dict lookup; a batch costs O(changes), never O(zone size).

For the checker: `state_key()` is a hashable value equal for stores whose zones hold the
same record sets (SOA serials excluded, so two orders of the same writes meet), and
`save()` / `restore()` capture and roll back the whole store (contents, journal, counters).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from authd.model import changes as rules
from authd.model.journal import EntryKind, JournalEntry, resource_entry
from authd.model.records import RecordKey, RecordSet, canonical_name, route53_sort_key
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
    StoreError,
    check_expected_version,
)

# name -> type -> set identifier (None for a plain set) -> record set
Sets = dict[str, dict[str, dict[str | None, RecordSet]]]


class _Zone:
    __slots__ = ("id", "name", "caller_reference", "comment", "serial", "sets", "count", "listing", "listing_keys")

    def __init__(self, zone_id: str, name: str, caller_reference: str, comment: str):
        self.id, self.name = zone_id, name
        self.caller_reference, self.comment = caller_reference, comment
        self.serial = 0
        self.sets: Sets = {}
        self.count = 0
        self.listing: list[RecordSet] | None = None  # sorted for paging; None after a change
        self.listing_keys: list[str] = []

    # ZoneView, for authd.model.changes
    def at(self, name: str) -> list[RecordSet]:
        return [rs for by_id in self.sets.get(name, {}).values() for rs in by_id.values()]

    def get(self, name: str, rtype: str) -> list[RecordSet]:
        return list(self.sets.get(name, {}).get(rtype, {}).values())

    def put(self, rs: RecordSet) -> None:
        self.listing = None
        at = self.sets.setdefault(rs.name, {}).setdefault(rs.rtype, {})
        if rs.set_identifier not in at:
            self.count += 1
        at[rs.set_identifier] = rs

    def delete(self, key: RecordKey) -> None:
        self.listing = None
        by_type = self.sets.get(key.name)
        if by_type is None or key.rtype not in by_type:
            return
        if by_type[key.rtype].pop(key.set_identifier, None) is not None:
            self.count -= 1
        if not by_type[key.rtype]:
            del by_type[key.rtype]
            if not by_type:
                del self.sets[key.name]

    def all_sets(self) -> list[RecordSet]:
        return [rs for by_type in self.sets.values() for at in by_type.values() for rs in at.values()]

    def copy(self) -> _Zone:
        z = _Zone(self.id, self.name, self.caller_reference, self.comment)
        z.serial, z.count = self.serial, self.count
        z.sets = {n: {t: dict(at) for t, at in bt.items()} for n, bt in self.sets.items()}
        return z

    def info(self) -> HostedZone:
        return HostedZone(self.id, self.name, self.caller_reference, self.comment, self.serial, self.count)


@dataclass(frozen=True, slots=True)
class MemoryState:
    """An opaque saved copy of a MemoryStore (see `MemoryStore.save`)."""

    zones: dict[str, _Zone]
    journal: tuple[JournalEntry, ...]
    changes: dict[int, ChangeInfo]
    seq: int
    resources: dict[tuple[str, str], tuple[Resource, bool]]


class MemoryStore:
    """An in-memory Store. Not thread-safe: use it from one thread (trio's, or the checker's).

    Args:
        clock: returns epoch seconds for ChangeInfo.submitted_at.
        instant_insync: report accepted changes as INSYNC at once (nothing to propagate
            in-process). With False they stay PENDING, like SQLiteStore, and the control
            API decides from its replicas.
        keep_journal: keep every journal entry for `journal_since`. The checker can turn
            this off; `snapshot()` works either way.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        instant_insync: bool = True,
        keep_journal: bool = True,
    ):
        self._clock = clock
        self._status = ChangeStatus.INSYNC if instant_insync else ChangeStatus.PENDING
        self._keep_journal = keep_journal
        self._zones: dict[str, _Zone] = {}
        self._journal: list[JournalEntry] = []
        self._changes: dict[int, ChangeInfo] = {}
        self._seq = 0
        self._state_key: Hashable | None = None
        # (kind, id) -> (resource, journaled); documents are copied in and out (JSON-like)
        self._resources: dict[tuple[str, str], tuple[Resource, bool]] = {}

    # --- zones -------------------------------------------------------------------------

    def list_zones(self) -> list[HostedZone]:
        return sorted((z.info() for z in self._zones.values()), key=lambda z: (z.name, z.id))

    def get_zone(self, zone_id: str) -> HostedZone | None:
        z = self._zones.get(rules.clean_zone_id(zone_id))
        return z.info() if z else None

    def find_zone(self, zone_id: str) -> HostedZone:
        return self._find(zone_id).info()

    def find_zone_by_name(self, name: str) -> HostedZone:
        origin = common.origin_of(name)
        for z in self._zones.values():
            if z.name == origin:
                return z.info()
        raise common.no_such_zone_name(origin)

    def _find(self, zone_id: str) -> _Zone:
        z = self._zones.get(rules.clean_zone_id(zone_id))
        if z is None:
            raise common.no_such_zone(zone_id)
        return z

    def create_zone(
        self, name: str, caller_reference: str, comment: str = "", zone_id: str | None = None
    ) -> tuple[HostedZone, ChangeInfo]:
        origin = common.origin_of(name)
        zid = zone_id or rules.zone_id_for(origin)
        for z in self._zones.values():
            if z.name == origin or z.id == zid or z.caller_reference == caller_reference:
                raise common.zone_exists(origin, z.id)
        zone = _Zone(zid, origin, caller_reference, comment)
        soa, ns = rules.default_apex(origin)
        zone.put(soa)
        zone.put(ns)
        zone.serial = rules.soa_serial(soa)
        self._invalidate()
        self._zones[zid] = zone
        seq = self._next_seq()
        info = self._record_change(seq, comment)
        self._append(
            JournalEntry(seq, EntryKind.SNAPSHOT, zid, origin, zone.serial, info.id, puts=(soa, ns))
        )
        return zone.info(), info

    def update_zone_comment(self, zone_id: str, comment: str) -> HostedZone:
        """Route 53 UpdateHostedZoneComment. Not journaled: DNS answers do not change."""
        z = self._find(zone_id)
        z.comment = comment
        return z.info()

    def delete_zone(self, zone_id: str) -> ChangeInfo:
        z = self._find(zone_id)
        if any(k != z.name or set(bt) - {"SOA", "NS"} for k, bt in z.sets.items()):
            raise common.zone_not_empty()
        self._invalidate()
        del self._zones[z.id]
        seq = self._next_seq()
        info = self._record_change(seq, "")
        self._append(JournalEntry(seq, EntryKind.ZONE_DELETED, z.id, z.name, z.serial, info.id))
        return info

    # --- record sets -------------------------------------------------------------------

    def record_sets(self, zone_id: str) -> list[RecordSet]:
        return sorted(self._find(zone_id).all_sets(), key=route53_sort_key)

    def record_sets_page(
        self, zone_id: str, start: tuple[str, str, str | None] | None, limit: int
    ) -> list[RecordSet]:
        """Up to `limit` record sets in listing order from (name, type, identifier) on."""
        z = self._find(zone_id)
        if z.listing is None:
            z.listing = sorted(z.all_sets(), key=lambda rs: rules.listing_key(rs.name, rs.rtype, rs.set_identifier))
            z.listing_keys = [rules.listing_key(rs.name, rs.rtype, rs.set_identifier) for rs in z.listing]
        i = bisect.bisect_left(z.listing_keys, rules.listing_key(*start)) if start else 0
        return z.listing[i:i + limit]

    def get_record_sets(self, zone_id: str, name: str, rtype: str) -> list[RecordSet]:
        return self._find(zone_id).get(canonical_name(name), rtype.upper())

    def change_batch(
        self, zone_id: str, changes: Sequence[Change], comment: str = "", *, limits: bool = True,
        max_record_sets: int | None = None,
        planned: Callable[[Sequence[RecordSet]], None] | None = None,
    ) -> ChangeInfo:
        """Apply all or none; see Store.change_batch. `limits=False` lifts the per-request
        size limits, for importing zone files only. `max_record_sets`: the zone's
        MAX_RRSETS_BY_ZONE quota (None: none; the control API passes its configured one).
        `planned(puts)`: called with the accepted batch's puts before they are applied."""
        z = self._find(zone_id)
        puts, deletes, serial, _ = common.plan(
            z.id, z.name, changes, z, limits=limits, resource=self._resource_doc,
            record_set_count=z.count, max_record_sets=max_record_sets)
        if planned is not None:
            planned(puts)
        self._invalidate()
        for key in deletes:
            z.delete(key)
        for rs in puts:
            z.put(rs)
        z.serial = serial
        seq = self._next_seq()
        info = self._record_change(seq, comment)
        self._append(JournalEntry(seq, EntryKind.CHANGE, z.id, z.name, z.serial, info.id, puts, deletes))
        return info

    def import_sets(self, zone_id: str, sets: Sequence[RecordSet], comment: str = "", *,
                    zone_comment: str | None = None, built: Any = None,
                    create: NewZone | None = None) -> ChangeInfo:
        """Store.import_sets: here simply the batch of the sets' CREATEs (UPSERTs where the
        zone has the key, as its apex SOA and NS), and the comment with it (nothing here
        can stop between the two). With `create`, the zone is created first, and deleted
        again if the import is refused (no other process reads this store)."""
        if create is not None:
            for rs in sets:  # refuse before creating, as one transaction would
                if problems := rs.problems():
                    raise InvalidChangeBatch(problems)
            self.create_zone(create.name, create.caller_reference, create.comment, zone_id)
            try:
                return self.import_sets(zone_id, sets, comment, zone_comment=zone_comment)
            except Exception:  # nothing of the import was written: the zone holds its apex only
                self.delete_zone(zone_id)  # journaled, so in-process followers drop it too
                raise
        z = self._find(zone_id)
        present = {rs.key for rs in z.all_sets()}
        info = self.change_batch(z.id, [
            Change(Action.UPSERT if rs.key in present else Action.CREATE, rs) for rs in sets],
            comment, limits=False)
        if zone_comment is not None:
            z.comment = zone_comment
        return info

    # --- changes and the journal -------------------------------------------------------

    def get_change(self, change_id: str) -> ChangeInfo:
        seq = rules.seq_of_change_id(change_id)
        info = self._changes.get(seq) if seq is not None else None
        if info is None:
            raise common.no_such_change(change_id)
        return info

    def journal_since(self, seq: int) -> list[JournalEntry]:
        if not self._keep_journal:
            raise StoreError("this MemoryStore keeps no journal (keep_journal=False)")
        # seqs are dense from 1, so entry seq s sits at index s - 1
        return self._journal[max(seq, 0):]

    def recent_entries(self, after: int, upto: int) -> list[JournalEntry] | None:
        """The entries after..upto, as `journal_since` has them (None without a journal)."""
        if not self._keep_journal or upto > len(self._journal):
            return None
        return self._journal[max(after, 0):upto]

    def snapshot(self) -> list[JournalEntry]:
        resources = [
            resource_entry(self._seq, r.kind, r.id, _copy(r.doc))
            for (r, journaled) in sorted(self._resources.values(), key=lambda v: (v[0].kind, v[0].id))
            if journaled
        ]
        return resources + [
            JournalEntry(
                self._seq, EntryKind.SNAPSHOT, z.id, z.name, z.serial, "",
                puts=tuple(sorted(z.all_sets(), key=route53_sort_key)),
            )
            for z in sorted(self._zones.values(), key=lambda z: z.name)
        ]

    @property
    def seq(self) -> int:
        """The newest journal position."""
        return self._seq

    # --- resources ---------------------------------------------------------------------

    def _resource_doc(self, kind: str, rid: str) -> dict[str, Any] | None:
        """For the batch rules: the document of a resource a record set names, or None."""
        got = self._resources.get((kind, rid))
        return None if got is None else got[0].doc

    def get_resource(self, kind: str, rid: str) -> Resource | None:
        got = self._resources.get((kind, rid))
        return None if got is None else _copy_resource(got[0])

    def list_resources(self, kind: str) -> list[Resource]:
        return [_copy_resource(r) for (k, _), (r, _j) in sorted(self._resources.items()) if k == kind]

    def count_resources(self, kind: str) -> int:
        return sum(1 for k, _ in self._resources if k == kind)

    def put_resource(
        self, kind: str, rid: str, doc: dict[str, Any], *,
        expect_version: int | None = None, journal: bool = False,
    ) -> Resource:
        old = self._resources.get((kind, rid))
        version, journaled = common.next_resource_version(
            kind, rid, None if old is None else (old[0].version, old[1]), expect_version, journal)
        res = Resource(kind, rid, _copy(doc), version)
        self._resources[(kind, rid)] = (res, journaled)
        if journaled:
            self._append(resource_entry(self._next_seq(), kind, rid, _copy(doc)))
        return _copy_resource(res)

    def delete_resource(
        self, kind: str, rid: str, *, expect_version: int | None = None, journal: bool = False,
    ) -> None:
        old = self._resources.get((kind, rid))
        if old is None:
            raise common.no_such_resource(kind, rid)
        check_expected_version(kind, rid, old[0].version, expect_version)
        del self._resources[(kind, rid)]
        if journal or old[1]:
            self._append(resource_entry(self._next_seq(), kind, rid, None))

    def close(self) -> None:
        pass

    # --- for the checker ---------------------------------------------------------------

    def state_key(self) -> Hashable:
        """Equal for equal contents (zones and their record sets, SOA serials excluded)."""
        if self._state_key is None:
            self._state_key = frozenset(
                (z.id, frozenset(rs for rs in z.all_sets() if rs.rtype != "SOA"))
                for z in self._zones.values()
            )
        return self._state_key

    def save(self) -> MemoryState:
        """A copy of everything, for `restore`. O(record sets + journal), no deep copies:
        record sets and journal entries are immutable and shared."""
        return MemoryState(
            {k: z.copy() for k, z in self._zones.items()},
            tuple(self._journal),
            dict(self._changes),
            self._seq,
            dict(self._resources),
        )

    def restore(self, state: MemoryState) -> None:
        self._zones = {k: z.copy() for k, z in state.zones.items()}
        self._journal = list(state.journal)
        self._changes = dict(state.changes)
        self._seq = state.seq
        self._resources = dict(state.resources)
        self._state_key = None

    # --- internals ---------------------------------------------------------------------

    def _invalidate(self) -> None:
        self._state_key = None

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _record_change(self, seq: int, comment: str) -> ChangeInfo:
        info = ChangeInfo(rules.change_id_for(seq), self._status, self._clock(), comment, seq)
        self._changes[seq] = info
        return info

    def _append(self, entry: JournalEntry) -> None:
        if self._keep_journal:
            self._journal.append(entry)


def _copy(doc: Any) -> Any:
    """A deep copy of a JSON-like document, so callers never share the stored one."""
    if isinstance(doc, dict):
        return {k: _copy(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_copy(v) for v in doc]
    return doc


def _copy_resource(r: Resource) -> Resource:
    return Resource(r.kind, r.id, _copy(r.doc), r.version)
