"""Seeding a store from zone files (`zones/`): every loaded zone becomes a hosted zone.

Over the Store protocol; the files are loaded with `authd.zonefiles.zonefile`, and `seed_dir`
also reads their bytes for a digest (its only I/O besides the store's). The rule, so API
changes survive restarts:

- a zone the store does not have is created, with the id its Route 53 export already uses
  in its alias targets (`Z0API0AWS`, `Z0AMAZONAWS`) or else one derived from the origin,
  and filled with the file's record sets in one journaled batch;
- a zone the store has, loaded from a file with the *same content hash*, is left alone:
  whatever the API changed since is kept;
- a zone whose file content changed is re-imported as ONE journaled batch that makes the
  zone equal to the file (deletes what the file lacks, upserts the rest; the SOA serial
  still moves forward), then the new hash is recorded in the zone's comment.

The hash covers the record sets, not the file bytes, so reformatting a file changes nothing.
Beside it the comment keeps the digest of the master file's bytes (`seed_dir`): a file with
the same bytes is not parsed again at all, which is most of a restart on a big zone.
A master file is read straight into its served zone (`authd.zonefiles.fastbuild`), which
goes with an import to the store's next snapshot, so the index need not build it again.
A new zone is created and filled in one transaction (`import_sets(create=...)`: SQLite and
PostgreSQL, `authd.store.sqlcore`), with the digests: a crash mid-seed leaves no zone at all,
which the next start creates and imports again.

`seed_dir` is `prepare_seed` (read the files, decide, and do every change to zones the store
already has) then `Seeding.run` (the new zones' imports). A node seeding a NEW store runs the
two apart (`Seeding.early`): it answers DNS from the zones the files were read into
(`Seeding.entries`) while the imports run in a thread, and opens the change API once they
have committed. The answers are the files' content, already on disk; other nodes on the same
database see a zone only at its commit, and a crash before it leaves no zone (issue 12).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

from authd import gcpause
from authd.model import changes as rules
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordSet
from authd.store.common import listing_keys
from authd.store.contract import (
    Action,
    Change,
    ChangeInfo,
    HostedZone,
    NewZone,
    NoSuchHostedZone,
    Store,
)
from authd.zonefiles.zonefile import (
    LoadedZone,
    ZoneLoadError,
    load_zone_files,
    origin_from_filename,
    zone_paths,
)

HASH_TAG = "sha256:"


class SeedableStore(Store, Protocol):
    def update_zone_comment(self, zone_id: str, comment: str) -> HostedZone: ...

    def change_batch(  # type: ignore[override]
        self, zone_id: str, changes: Any, comment: str = "", *, limits: bool = True
    ) -> ChangeInfo: ...


def content_hash(record_sets: Iterable[RecordSet]) -> str:
    """The first 16 hex digits of the SHA-256 of the sets' Route 53 JSON, sorted by
    `route53_sort_key`: `json.dumps([rs.to_route53() ...], sort_keys=True)`, written out by
    hand for plain sets (a million-set zone has a million of them; `tests/test_seed_fast.py`
    checks the two agree byte for byte) and hashed in pieces.

    The order costs no key object per set (a million listing keys and their index list were
    ~150 MB of a 1M-name seed's peak, issue 12): the sets are sorted by their own `key`
    tuples (name order), which for most zones already is Route 53's order, and each group of
    4,096 is checked against its `changes.listing_key`s as it is hashed. A zone where the two
    orders part (a child name, `www` beside `www-2`) is hashed again in `_listing_order`."""
    sets = list(record_sets)
    try:
        ordered = sorted(sets, key=_KEY)
    except TypeError:  # a plain and an identified set under one name and type: no key order
        ordered = None
    if ordered is not None:
        digest = _digest(ordered, check=True)
        if digest is not None:
            return digest
        del ordered
    return _digest(_listing_order(sets), check=False) or ""


_KEY = attrgetter("key")
_GROUP = 4096


def _digest(ordered: list[RecordSet], check: bool) -> str | None:
    """The hash of `ordered` in that order; with `check`, None as soon as two of them are
    not in strictly increasing `listing_key` order."""
    digest = hashlib.sha256()
    first = True
    last = ""
    for i in range(0, len(ordered), _GROUP):
        group = ordered[i:i + _GROUP]
        if check:
            keys = listing_keys(group)
            if not last < keys[0] or any(a >= b for a, b in pairwise(keys)):
                return None
            last = keys[-1]
        chunk = _plain_chunk(group) or [
            _plain_json(rs) or json.dumps(rs.to_route53(), sort_keys=True) for rs in group]
        digest.update((("[" if first else ", ") + ", ".join(chunk)).encode())
        first = False
    digest.update(("[]" if first else "]").encode())
    return digest.hexdigest()[:16]


def _listing_order(sets: list[RecordSet], run: int = 1 << 16) -> list[RecordSet]:
    """`sets` in `changes.listing_key` order (stable), with the keys of one run of `run`
    sets alive at a time: each run is sorted by its keys, then the runs are merged, each
    set's key made again as the merge reaches it."""
    runs = []
    for i in range(0, len(sets), run):
        part = sets[i:i + run]
        keys = listing_keys(part)
        runs.append([part[j] for j in sorted(range(len(part)), key=keys.__getitem__)])
        del keys
    if len(runs) == 1:
        return runs[0]
    key = rules.listing_key
    return list(heapq.merge(*runs, key=lambda rs: key(rs.name, rs.rtype, rs.set_identifier)))


def _plain_chunk(sets: list[RecordSet]) -> list[str] | None:
    """`_plain_json` of every set, written blind and checked once for the whole chunk (the
    names together of Route 53's plain characters; the texts printable ASCII with no
    backslash and only the layout's quotes), or None when any set is not plain."""
    texts: list[str] = []
    names: list[str] = []
    quotes = 0
    for rs in sets:
        if (rs.alias is not None or rs.set_identifier is not None or rs.weight is not None
                or rs.routing is not None or type(rs.ttl) is not int or not rs.values):
            return None
        values = '"}, {"Value": "'.join(rs.values)
        texts.append(f'{{"Name": "{rs.name}", "ResourceRecords": [{{"Value": "{values}"}}], '
                     f'"TTL": {rs.ttl}, "Type": "{rs.rtype}"}}')
        names.append(rs.name)
        quotes += 12 + 4 * len(rs.values)
    whole = "".join(texts)
    if (whole.isascii() and whole.isprintable() and "\\" not in whole
            and whole.count('"') == quotes and _R53_PLAIN.fullmatch("".join(names))):
        return texts
    return None


# Printable ASCII without `"` and `\`: JSON writes such a string as itself between quotes;
# names of these characters are their own Route 53 form (`records.route53_name`)
_JSON_PLAIN = re.compile(r'[ !#-\[\]-~]*')
_R53_PLAIN = re.compile(r"[a-z0-9_.-]+")


def _plain_json(rs: RecordSet) -> str | None:
    """`json.dumps(rs.to_route53(), sort_keys=True)` for a plain set, or None."""
    if (rs.alias is not None or rs.set_identifier is not None or rs.weight is not None
            or rs.routing is not None or type(rs.ttl) is not int or not _R53_PLAIN.fullmatch(rs.name)
            or not _JSON_PLAIN.fullmatch(rs.rtype)):
        return None
    plain = _JSON_PLAIN.fullmatch
    for v in rs.values:
        if not plain(v):
            return None
    values = ", ".join([f'{{"Value": "{v}"}}' for v in rs.values])
    return f'{{"Name": "{rs.name}", "ResourceRecords": [{values}], "TTL": {rs.ttl}, "Type": "{rs.rtype}"}}'


def zone_comment(zone: LoadedZone, digest: str, file_digest: str | None = None) -> str:
    text = f"loaded from {zone.source} {HASH_TAG}{digest}"
    return text + (f" {FILE_TAG}{file_digest}" if file_digest else "")


def recorded_hash(comment: str, tag: str = HASH_TAG) -> str | None:
    _, found, rest = comment.rpartition(tag)
    return rest.split()[0] if found and rest.strip() else None


FILE_TAG = "file-digest:"  # the zone file's bytes, so an unchanged file need not be read again


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def seed_dir(store: SeedableStore, directory: str | Path) -> list[str]:
    """`seed_store(store, load_zone_dir(directory))`, except that a master file whose bytes
    are those the store last imported (the digest its zone's comment records) is not parsed
    again: a restart on a million-name zone then costs the store's snapshot, not a parse and a
    hash of the whole zone (issue 12). Every file that is read is read and checked before any
    zone is seeded, so a bad file still changes nothing."""
    seeding = prepare_seed(store, directory)
    return seeding.lines + seeding.run(store)


@dataclass
class PendingImport:
    """A zone the store does not have, to be created and filled from its file in one
    transaction (`import_sets(create=...)`), decided by `prepare_seed`."""

    zone: LoadedZone
    zone_id: str
    file_digest: str | None
    built: Any = field(default=None, repr=False)  # the served zone the file was read into

    def entry(self) -> JournalEntry:
        """The SNAPSHOT an index serves the file's zone from until the import commits (seq 0:
        the store's own snapshot, at the import's seq, replaces it)."""
        soa = next((rs for rs in self.zone.record_sets
                    if rs.rtype == "SOA" and rs.name == self.zone.origin), None)
        serial = rules.soa_serial(soa) if soa is not None else 0
        return JournalEntry(0, EntryKind.SNAPSHOT, self.zone_id, self.zone.origin, serial, "",
                            self.zone.record_sets)

    def run(self, store: SeedableStore) -> str:
        with gcpause.paused(len(self.zone.record_sets)):
            zone = self.zone
            digest = content_hash(zone.record_sets)
            new = NewZone(zone.origin, f"zonefile:{zone.origin}:{digest}", f"loading from {zone.source}")
            # created and filled in one transaction: no other node on the same database (nor
            # a replica) ever serves the zone holding only its apex while the import runs, and
            # a crash mid-import leaves no zone at all
            info = store.import_sets(  # type: ignore[attr-defined]
                self.zone_id, zone.record_sets, f"import {zone.source}",
                zone_comment=zone_comment(zone, digest, self.file_digest), built=self.built,
                create=new)
            self.built = None
            return (f"zone {zone.origin} ({self.zone_id}): created from {zone.source}, "
                    f"{len(zone.record_sets)} record sets, change {info.id}")


@dataclass
class Seeding:
    """`prepare_seed`'s result: the log lines of what is done, and the new zones' imports."""

    lines: list[str]
    imports: list[PendingImport]  # emptied by `run`: a node keeps no zone file's text alive
    other_zones: bool  # the store holds zones no import creates
    seconds: float = 0.0  # the imports' wall time, once run
    record_sets: int = 0  # in the imports

    def __post_init__(self) -> None:
        self.record_sets = sum(len(p.zone.record_sets) for p in self.imports)

    @property
    def early(self) -> bool:
        """DNS may answer from the files' zones before `run`: there are imports, and the
        store holds nothing else an index would serve (a new store). Otherwise a node
        runs the imports first and serves the store's snapshot, as `seed_dir` does."""
        return bool(self.imports) and not self.other_zones

    def entries(self) -> list[tuple[JournalEntry, Any]]:
        """(SNAPSHOT entry, its built zone or None) per import, for `ServingIndex.apply`."""
        return [(p.entry(), p.built) for p in self.imports]

    def run(self, store: SeedableStore) -> list[str]:
        """The imports, one transaction each; returns their log lines. Blocking: a node runs
        it in a thread (SQLite's and PostgreSQL's C code releases the GIL).

        Every seed ends here (`seed_dir`, and a node's either way), so this is where a
        SQLite store's log is checkpointed and restarted if the seed wrote many pages
        (`SQLiteStore.reset_log(big_only=True)`): a new zone's import here, or a changed
        file's re-import in `prepare_seed`, leaves the whole zone in the WAL (~400 MB at 1M
        names), which the first change batches would otherwise append to while it is copied
        back beside their COMMITs' fsyncs."""
        t = time.perf_counter()
        lines: list[str] = []
        while self.imports:
            lines.append(self.imports[0].run(store))
            del self.imports[0]  # its file's text and sets: the store's snapshot has them now
        self.seconds = time.perf_counter() - t
        reset_log = getattr(store, "reset_log", None)
        if reset_log is not None:
            t = time.perf_counter()
            reset = reset_log(big_only=True)
            if reset is not None:
                lines.append(f"the import's log ({reset[0]} pages) checkpointed before the change "
                             f"API opens, in {time.perf_counter() - t:.1f} s")
        return lines


def prepare_seed(store: SeedableStore, directory: str | Path) -> Seeding:
    """`seed_dir` up to the new zones' imports: every file read and checked, every zone the
    store has brought to its file, and the imports of the zones it lacks left to
    `Seeding.run` (where the store has `import_sets`; without it they are seeded here)."""
    lines: list[str] = []
    todo: list[Path] = []
    kept: dict[str, str] = {}  # origin -> the file left unread
    digests: dict[str, str] = {}
    for p in zone_paths(directory):
        if p.suffix == ".zone":
            try:
                digest = file_digest(p.read_bytes())
            except OSError:
                todo.append(p)  # load_zone_files says what is wrong with it
                continue
            origin = origin_from_filename(p)
            try:
                existing: HostedZone | None = store.find_zone_by_name(origin)
            except NoSuchHostedZone:
                existing = None
            if existing is not None and recorded_hash(existing.comment, FILE_TAG) == digest:
                kept[origin] = str(p)
                lines.append(f"zone {origin} ({existing.id}): {p} unchanged (the same bytes), "
                             "keeping the store's contents")
                continue
            digests[str(p)] = digest
        todo.append(p)
    zones = load_zone_files(todo, build=True)  # a master file read into its served zone
    for z in zones:
        if z.origin in kept:
            raise ZoneLoadError(z.source, f"zone {z.origin} is also defined in {kept[z.origin]}")
    imports: list[PendingImport] = []
    bulk = getattr(store, "import_sets", None) is not None
    for z in zones:
        if bulk and _absent(store, z.origin):
            zid = rules.zone_id_from_aliases(z.origin, z.record_sets) or rules.zone_id_for(z.origin)
            built = z.take_built()
            # without its `lines`: they keep the file's whole text for error messages (44 MB
            # at 1M names), and the file was checked whole as it was read; an import's own
            # refusals (`InvalidChangeBatch`) name sets, not lines
            imports.append(PendingImport(replace(z, lines={}), zid, digests.get(z.source), built))
        else:
            lines.append(seed_zone(store, z, digests.get(z.source)))
    creating = {p.zone.origin for p in imports}
    other = any(zone.name not in creating for zone in store.list_zones())
    return Seeding(lines, imports, other)


def _absent(store: SeedableStore, origin: str) -> bool:
    try:
        store.find_zone_by_name(origin)
    except NoSuchHostedZone:
        return True
    return False


def seed_zone(store: SeedableStore, zone: LoadedZone, file_digest: str | None = None) -> str:
    """Bring one zone in; returns one log line saying what was decided and why.
    `file_digest` (of the file's bytes) is recorded beside the content hash (`seed_dir`)."""
    with gcpause.paused(len(zone.record_sets)):
        return _seed_zone(store, zone, file_digest)


def _seed_zone(store: SeedableStore, zone: LoadedZone, file_digest: str | None) -> str:
    try:
        existing = store.find_zone_by_name(zone.origin)
    except NoSuchHostedZone:
        existing = None
    bulk = getattr(store, "import_sets", None)
    if existing is None and bulk is not None:  # the import hashes the sets itself
        zid = rules.zone_id_from_aliases(zone.origin, zone.record_sets) or rules.zone_id_for(zone.origin)
        return PendingImport(zone, zid, file_digest, zone.take_built()).run(store)
    digest = content_hash(zone.record_sets)
    if existing is not None and recorded_hash(existing.comment) == digest:
        if file_digest is not None and recorded_hash(existing.comment, FILE_TAG) != file_digest:
            store.update_zone_comment(existing.id, zone_comment(zone, digest, file_digest))
        return f"zone {zone.origin} ({existing.id}): {zone.source} unchanged, keeping the store's contents"
    final = zone_comment(zone, digest, file_digest)
    if existing is None:
        zid = rules.zone_id_from_aliases(zone.origin, zone.record_sets) or rules.zone_id_for(zone.origin)
        new = NewZone(zone.origin, f"zonefile:{zone.origin}:{digest}", f"loading from {zone.source}")
        # no digest yet: only the batch that fills the zone records it, so a crash before
        # that leaves a zone the next start imports again (not one it calls seeded)
        existing, _ = store.create_zone(new.name, caller_reference=new.caller_reference,
                                        comment=new.comment, zone_id=zid)
        verb = "created"
    elif existing.record_set_count == 2 and recorded_hash(existing.comment) is None:
        verb = "imported (the zone held only its SOA and NS)"  # a start that crashed, before
    else:
        verb = "re-imported (file changed)"
    if verb != "re-imported (file changed)" and bulk is not None:
        # the zone holds only its apex: one bulk import with the batch's result and rules,
        # the digests recorded in the same transaction (`SQLCore.import_sets`)
        # and the served zone the file was read into goes along, for the index (`take_built`)
        info = bulk(existing.id, zone.record_sets, f"import {zone.source}", zone_comment=final,
                    built=zone.take_built())
        return (f"zone {zone.origin} ({existing.id}): {verb} from {zone.source}, "
                f"{len(zone.record_sets)} record sets, change {info.id}")
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
    store.update_zone_comment(existing.id, final)
    return (
        f"zone {zone.origin} ({existing.id}): {verb} from {zone.source}, "
        f"{len(wanted)} record sets, change {info.id}"
    )


def seed_store(store: SeedableStore, zones: Iterable[LoadedZone]) -> list[str]:
    """Seed every zone; returns the log lines, one per zone."""
    return [seed_zone(store, z) for z in zones]
