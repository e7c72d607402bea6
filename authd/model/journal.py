"""The change journal entry: the one shape in which changes flow from the store to servers.

Pure core. The store appends one entry per accepted batch (and per zone creation/deletion,
and per write of a resource stored with `journal=True`, such as a health check's status);
the serving index applies entries in `seq` order, at startup (a SNAPSHOT per zone) and at
runtime alike, so there is one code path from the store to what DNS answers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from authd.model.records import RecordKey, RecordSet


class EntryKind(enum.Enum):
    SNAPSHOT = "snapshot"  # the zone's whole contents; replaces whatever the reader had
    CHANGE = "change"  # an accepted change batch: puts and deletes
    ZONE_DELETED = "zone-deleted"
    # a stored resource (a health check's status, a CIDR collection, ...) written with
    # journal=True: `resource` holds (kind, id, doc), doc None when it was deleted
    RESOURCE = "resource"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int  # global order across zones; readers apply entries in this order
    kind: EntryKind
    zone_id: str  # Route 53 hosted zone id, e.g. "Z0API0AWS"
    zone_name: str  # canonical origin, e.g. "api.aws."
    serial: int  # the zone's SOA serial after this entry
    change_id: str  # e.g. "C000000000017"; "" for snapshots
    puts: tuple[RecordSet, ...] = ()  # record sets created or replaced (the whole new value)
    deletes: tuple[RecordKey, ...] = ()  # record sets removed
    resource: tuple[str, str, dict[str, Any] | None] | None = None  # RESOURCE entries only


def resource_entry(seq: int, kind: str, rid: str, doc: dict[str, Any] | None) -> JournalEntry:
    """The journal entry of a resource write (doc None: the resource was deleted)."""
    return JournalEntry(seq, EntryKind.RESOURCE, "", "", 0, "", resource=(kind, rid, doc))
