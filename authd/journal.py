"""The change journal entry: the one shape in which changes flow from the store to servers.

Pure core. The store appends one entry per accepted batch (and per zone creation/deletion);
the serving index applies entries in `seq` order, at startup (a SNAPSHOT per zone) and at
runtime alike, so there is one code path from the store to what DNS answers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from authd.records import RecordKey, RecordSet


class EntryKind(enum.Enum):
    SNAPSHOT = "snapshot"  # the zone's whole contents; replaces whatever the reader had
    CHANGE = "change"  # an accepted change batch: puts and deletes
    ZONE_DELETED = "zone-deleted"


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
