"""The store interface: hosted zones, record sets and the change journal.

This module holds the contract only (types, errors and the `Store` protocol). The rules of a
change batch live in `authd.model.changes` (pure), and every backend (`MemoryStore` for the
checker, `SQLiteStore` as the durable default, a PostgreSQL backend later) applies batches
through that one implementation, inside one transaction per batch.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from authd.model.journal import JournalEntry
from authd.model.records import RecordSet


class Action(enum.Enum):
    CREATE = "CREATE"
    DELETE = "DELETE"
    UPSERT = "UPSERT"


class ChangeStatus(enum.Enum):
    PENDING = "PENDING"
    INSYNC = "INSYNC"


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    rrset: RecordSet


@dataclass(frozen=True, slots=True)
class HostedZone:
    id: str  # Route 53 style, readable and stable: e.g. "Z0API0AWS"
    name: str  # canonical origin, "api.aws."
    caller_reference: str
    comment: str
    serial: int  # current SOA serial
    record_set_count: int


@dataclass(frozen=True, slots=True)
class ChangeInfo:
    id: str  # e.g. "C000000000017"
    status: ChangeStatus  # as recorded by the store; the control API upgrades it to INSYNC
    submitted_at: float  # epoch seconds
    comment: str
    seq: int  # the journal seq of this change; replicas that reached it have applied it


@dataclass(frozen=True, slots=True)
class NewZone:
    """`import_sets(create=...)`: the zone to create in the import's own transaction, as
    `create_zone(name, caller_reference, comment, zone_id)` would (zone_id is the import's)."""

    name: str
    caller_reference: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Resource:
    """A stored document that is not a record set: a health check, its status, a resource's
    tags, a reusable delegation set, a CIDR collection. One generic contract for all of them,
    so every backend stores them the same way, in one transaction per call."""

    kind: str  # "healthcheck", "healthcheck-status", "tags", "delegationset", "cidrcollection"
    id: str
    doc: dict[str, Any]  # JSON-serialisable; its shape belongs to the module that owns the kind
    version: int  # 1 when created, +1 on every put: the compare-and-swap handle


class StoreError(Exception):
    """Base of every error a store raises. `code` is the Route 53 error code."""

    code = "InternalFailure"


class NoSuchHostedZone(StoreError):
    code = "NoSuchHostedZone"


class HostedZoneAlreadyExists(StoreError):
    code = "HostedZoneAlreadyExists"


class HostedZoneNotEmpty(StoreError):
    code = "HostedZoneNotEmpty"


class NoSuchChange(StoreError):
    code = "NoSuchChange"


class NoSuchResource(StoreError):
    """No resource of that kind and id. Callers map it to their own Route 53 error code."""

    code = "NoSuchResource"


class ResourceConflict(StoreError):
    """A put or delete whose expect_version did not match the stored version."""

    code = "ConflictingRequest"


class InvalidInput(StoreError):
    code = "InvalidInput"


class InvalidChangeBatch(StoreError):
    """A rejected batch. `messages` are Route 53's wording, one per problem, in batch order."""

    code = "InvalidChangeBatch"

    def __init__(self, messages: Sequence[str], code: str = "InvalidChangeBatch"):
        self.messages = tuple(messages)
        self.code = code  # another code of ChangeResourceRecordSets' own: NoSuchHealthCheck
        super().__init__("; ".join(self.messages))


class Store(Protocol):
    """What authd's servers, the HTTP API, the CLI, the enactor and the checker all use."""

    def list_zones(self) -> list[HostedZone]: ...

    def get_zone(self, zone_id: str) -> HostedZone | None: ...

    def find_zone(self, zone_id: str) -> HostedZone:
        """Raises NoSuchHostedZone."""
        ...

    def find_zone_by_name(self, name: str) -> HostedZone:
        """Raises NoSuchHostedZone."""
        ...

    def create_zone(
        self, name: str, caller_reference: str, comment: str = "", zone_id: str | None = None
    ) -> tuple[HostedZone, ChangeInfo]:
        """A new zone with a default SOA and NS set. Raises HostedZoneAlreadyExists."""
        ...

    def delete_zone(self, zone_id: str) -> ChangeInfo:
        """Only when the zone holds nothing but SOA and NS; else HostedZoneNotEmpty."""
        ...

    def record_sets(self, zone_id: str) -> list[RecordSet]:
        """All record sets, in Route 53's ListResourceRecordSets order."""
        ...

    def get_record_sets(self, zone_id: str, name: str, rtype: str) -> list[RecordSet]:
        """The record sets at one name and type (every set identifier). A cheap point read."""
        ...

    def change_batch(
        self, zone_id: str, changes: Sequence[Change], comment: str = ""
    ) -> ChangeInfo:
        """Apply all changes or none (raises InvalidChangeBatch with every problem found).

        The accepted batch bumps the SOA serial and appends one journal entry, in the same
        durable transaction.

        The built-in stores also take `planned=fn`: `fn(puts)` is called, in the calling
        thread, with the accepted batch's puts (the very objects its journal entry will
        carry) once the rules have passed and just before the durable commit, so a caller
        may compile what the serving index will need while the commit waits on the disk
        (`authd.control.app`). It is a hint only: the commit may still fail, and nothing may
        be served from it before the entry is applied.
        """
        ...

    def get_change(self, change_id: str) -> ChangeInfo:
        """Raises NoSuchChange."""
        ...

    def import_sets(self, zone_id: str, sets: Sequence[RecordSet], comment: str = "", *,
                    zone_comment: str | None = None, built: Any = None,
                    create: NewZone | None = None) -> ChangeInfo:
        """Fill a zone holding only what `create_zone` gave it with a zone file's sets: the
        state, journal entry and errors of `change_batch` of their CREATEs (UPSERTs for the
        apex SOA and NS), in one transaction that also sets the zone's comment to
        `zone_comment` when given. SQL backends bulk-insert (`authd.store.sqlcore`).
        With `create`, that transaction first creates the zone (id `zone_id`), so no reader
        of the store (another node on the same database, a replica) ever sees it holding only
        its apex, and a crash mid-import leaves no zone at all.
        `built`: the served zone (`authd.dns.answer.Zone`) already built from `sets`, which
        a store may hand to its next snapshot's reader (`take_built`) instead of a rebuild."""
        ...

    def journal_since(self, seq: int) -> list[JournalEntry]:
        """Entries with seq > `seq`, in order."""
        ...

    def snapshot(self) -> list[JournalEntry]:
        """One RESOURCE entry per journaled resource, then one SNAPSHOT entry per zone (seq =
        the journal position they reflect), for startup."""
        ...

    # --- resources (health checks, tags, delegation sets, CIDR collections, ...) ----------

    def get_resource(self, kind: str, rid: str) -> Resource | None: ...

    def list_resources(self, kind: str) -> list[Resource]:
        """Every resource of one kind, sorted by id."""
        ...

    def count_resources(self, kind: str) -> int: ...

    def put_resource(
        self, kind: str, rid: str, doc: dict[str, Any], *,
        expect_version: int | None = None, journal: bool = False,
    ) -> Resource:
        """Create or replace, in one transaction. `expect_version`: None, no condition; 0, it
        must not exist yet; n, it must be at version n (else ResourceConflict). `journal`: also
        append a RESOURCE journal entry in the same transaction, so every serving index learns
        it through `apply`, and `snapshot()` carries it from then on."""
        ...

    def delete_resource(
        self, kind: str, rid: str, *, expect_version: int | None = None, journal: bool = False,
    ) -> None:
        """Raises NoSuchResource when absent, ResourceConflict on a version mismatch."""
        ...

    def close(self) -> None: ...


def check_expected_version(kind: str, rid: str, current: int | None, expect: int | None) -> None:
    """The one copy of the resource compare-and-swap rule every backend applies.

    `current` is the stored version (None when absent). Raises ResourceConflict."""
    if expect is None or expect == (current or 0):
        return
    have = "absent" if current is None else f"at version {current}"
    raise ResourceConflict(f"{kind} {rid} is {have}, not at version {expect}")
