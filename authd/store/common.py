"""The steps every Store backend takes the same way, whatever holds the data.

Pure core (no I/O): MemoryStore and the SQL backends (`authd.store.sqlcore`) call these so
that a batch is planned, rejected, SOA-bumped and reported identically everywhere, and every
error carries Route 53's one wording. The backends keep only how they read and write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from authd.model import changes as rules
from authd.model.records import RecordKey, RecordSet, canonical_name
from authd.store.contract import (
    Change,
    HostedZoneAlreadyExists,
    HostedZoneNotEmpty,
    InvalidChangeBatch,
    InvalidInput,
    NoSuchChange,
    NoSuchHostedZone,
    NoSuchResource,
    check_expected_version,
)


def origin_of(name: str) -> str:
    """A zone name in canonical form; InvalidInput when it is not a domain name."""
    try:
        return canonical_name(name)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


def no_such_zone(zone_id: str) -> NoSuchHostedZone:
    return NoSuchHostedZone(f"No hosted zone found with ID: {rules.clean_zone_id(zone_id)}")


def no_such_zone_name(origin: str) -> NoSuchHostedZone:
    return NoSuchHostedZone(f"No hosted zone found with name: {origin}")


def zone_exists(origin: str, zone_id: str) -> HostedZoneAlreadyExists:
    return HostedZoneAlreadyExists(
        f"A hosted zone has already been created with the specified caller "
        f"reference or name {origin} (id {zone_id})"
    )


def zone_not_empty() -> HostedZoneNotEmpty:
    """Route 53 DeleteHostedZone: only SOA and NS at the apex may remain."""
    return HostedZoneNotEmpty(
        "The specified hosted zone contains non-required resource record sets "
        "and so cannot be deleted."
    )


def no_such_change(change_id: str) -> NoSuchChange:
    return NoSuchChange(f"Could not find resource with ID: {change_id.rsplit('/', 1)[-1]}")


def no_such_resource(kind: str, rid: str) -> NoSuchResource:
    return NoSuchResource(f"No {kind} found with ID: {rid}")


def batch_names(zone_name: str, changes: Sequence[Change]) -> set[str]:
    """Every name the batch rules read: the changed names, the apex (its SOA is bumped) and
    the alias targets (an alias must reach a record set in the zone)."""
    names = {c.rrset.name for c in changes} | {zone_name}
    names |= {c.rrset.alias.dns_name for c in changes if c.rrset.alias is not None}
    return names


def plan(
    zone_id: str, zone_name: str, changes: Sequence[Change], view: rules.ZoneView, *,
    limits: bool, resource: Callable[[str, str], dict[str, Any] | None],
    record_set_count: int, max_record_sets: int | None,
) -> tuple[tuple[RecordSet, ...], tuple[RecordKey, ...], int, int]:
    """Plan a batch with `authd.model.changes.plan_batch` and bump the apex SOA (RFC 1996
    §2.2: a changed zone gets a greater serial).

    Returns (puts with the new SOA last, deletes, the new serial, the net count of new sets).
    Raises InvalidChangeBatch (or InvalidInput) with every problem, before anything is written.
    """
    planned = rules.plan_batch(zone_id, zone_name, changes, view, limits=limits, resource=resource,
                               record_set_count=record_set_count, max_record_sets=max_record_sets)
    if isinstance(planned, rules.Rejected):
        if planned.code == "InvalidInput":
            raise InvalidInput("; ".join(planned.messages))
        raise InvalidChangeBatch(planned.messages, code=planned.code)
    soa = rules.bump_soa(view.get(zone_name, "SOA")[0], planned.puts)
    puts = tuple(rs for rs in planned.puts if rs.rtype != "SOA" or rs.name != zone_name) + (soa,)
    return puts, tuple(planned.deletes), rules.soa_serial(soa), planned.net_new


def listing_keys(sets: Sequence[RecordSet]) -> list[str]:
    """`changes.listing_key` of every set, in one comprehension with no call per set: a zone
    import and its content hash each need 1M of them (`tests/test_store_common.py` checks
    the two agree)."""
    sep = "\x01"
    return [f"{sep.join(rs.name.rstrip('.').split('.')[::-1])}\x00{rs.rtype}\x00{rs.set_identifier or ''}"
            if rs.name != "." else f"\x00{rs.rtype}\x00{rs.set_identifier or ''}" for rs in sets]


def next_resource_version(
    kind: str, rid: str, old: tuple[int, bool] | None, expect_version: int | None, journal: bool,
) -> tuple[int, bool]:
    """For a put: the new (version, journaled) from the stored (version, journaled) or None.

    Raises ResourceConflict when `expect_version` does not hold."""
    check_expected_version(kind, rid, old[0] if old else None, expect_version)
    version = (old[0] if old else 0) + 1
    return version, journal or bool(old and old[1])  # once journaled, always: readers follow it
