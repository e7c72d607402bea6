"""Seeding a store from zone files (`zones/`): every loaded zone becomes a hosted zone.

Pure core over the Store protocol (no I/O of its own; the caller loads the files with
`authd.zonefiles.zonefile`). The rule, so API changes survive restarts:

- a zone the store does not have is created, with the id its Route 53 export already uses
  in its alias targets (`Z0API0AWS`, `Z0AMAZONAWS`) or else one derived from the origin,
  and filled with the file's record sets in one journaled batch;
- a zone the store has, loaded from a file with the *same content hash*, is left alone:
  whatever the API changed since is kept;
- a zone whose file content changed is re-imported as ONE journaled batch that makes the
  zone equal to the file (deletes what the file lacks, upserts the rest; the SOA serial
  still moves forward), then the new hash is recorded in the zone's comment.

The hash covers the record sets, not the file bytes, so reformatting a file changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Protocol

from authd.model import changes as rules
from authd.model.records import RecordSet, route53_sort_key
from authd.store.contract import Action, Change, ChangeInfo, HostedZone, NoSuchHostedZone, Store
from authd.zonefiles.zonefile import LoadedZone

HASH_TAG = "sha256:"


class SeedableStore(Store, Protocol):
    def update_zone_comment(self, zone_id: str, comment: str) -> HostedZone: ...

    def change_batch(  # type: ignore[override]
        self, zone_id: str, changes: Any, comment: str = "", *, limits: bool = True
    ) -> ChangeInfo: ...


def content_hash(record_sets: Iterable[RecordSet]) -> str:
    doc = [rs.to_route53() for rs in sorted(record_sets, key=route53_sort_key)]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def zone_comment(zone: LoadedZone, digest: str) -> str:
    return f"loaded from {zone.source} {HASH_TAG}{digest}"


def recorded_hash(comment: str) -> str | None:
    _, tag, rest = comment.rpartition(HASH_TAG)
    return rest.split()[0] if tag and rest else None


def seed_zone(store: SeedableStore, zone: LoadedZone) -> str:
    """Bring one zone in; returns one log line saying what was decided and why."""
    digest = content_hash(zone.record_sets)
    try:
        existing = store.find_zone_by_name(zone.origin)
    except NoSuchHostedZone:
        existing = None
    if existing is not None and recorded_hash(existing.comment) == digest:
        return f"zone {zone.origin} ({existing.id}): {zone.source} unchanged, keeping the store's contents"
    if existing is None:
        zid = rules.zone_id_from_aliases(zone.origin, zone.record_sets) or rules.zone_id_for(zone.origin)
        existing, _ = store.create_zone(
            zone.origin, caller_reference=f"zonefile:{zone.origin}:{digest}",
            comment=zone_comment(zone, digest), zone_id=zid,
        )
        verb = "created"
    else:
        verb = "re-imported (file changed)"
    current = {rs.key: rs for rs in store.record_sets(existing.id)}
    wanted = {rs.key: rs for rs in zone.record_sets}
    batch: list[Change] = []
    for key, rs in current.items():
        if key not in wanted and rs.rtype != "SOA":
            batch.append(Change(Action.DELETE, rs))
    for key, rs in wanted.items():
        old = current.get(key)
        if old is None:
            batch.append(Change(Action.CREATE, rs))
        elif not old.same_as(rs) or rs.rtype == "SOA":
            batch.append(Change(Action.UPSERT, rs))
    info = store.change_batch(existing.id, batch, f"import {zone.source}", limits=False)
    store.update_zone_comment(existing.id, zone_comment(zone, digest))
    return (
        f"zone {zone.origin} ({existing.id}): {verb} from {zone.source}, "
        f"{len(wanted)} record sets, change {info.id}"
    )


def seed_store(store: SeedableStore, zones: Iterable[LoadedZone]) -> list[str]:
    """Seed every zone; returns the log lines, one per zone."""
    return [seed_zone(store, z) for z in zones]
