"""A new store's seed in two steps (`zonefiles.seed.prepare_seed`, then `Seeding.run`), so a
node can answer DNS from the zones the files were read into while the imports run in a
thread (issue 12), on SQLite and PostgreSQL:

- `prepare_seed` writes nothing for a zone the store lacks; `run` then leaves exactly what
  `seed_dir` leaves;
- `early` only for a store that serves nothing else (otherwise the node seeds first);
- the zone an index serves from `entries()` is not touched by the import running beside it
  (its answers stay the file's), and the store's first snapshot then takes that very zone
  over, brought to the import's SOA, answering as one built from a fresh read of the store.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from unittest import mock

import pytest
import trio

from authd.dns.answer import Zone, make_query_wire
from authd.dns.index import ServingIndex
from authd.model.journal import EntryKind
from authd.store.replica import Follower
from authd.zonefiles.seed import prepare_seed, seed_dir
from tests.test_seed_built import EXTRA, ORIGIN, _questions, _reference, _same_answers, _serial
from tests.test_seed_fast import generated
from tests.test_seed_import import make, state  # noqa: F401  (the fixture: SQLite and PostgreSQL)


def _dir(tmp_path: Path, name: str = "zones", serial: int = 7) -> Path:
    d = tmp_path / name
    d.mkdir()
    text = generated(300).replace(" host 7 ", f" host {serial} ")
    (d / "g.test.zone").write_text(text + "\n".join(EXTRA) + "\n")
    (d / "o.test.zone").write_text(generated(20).replace("g.test.", "o.test."))
    return d


def test_prepare_writes_nothing_and_run_seeds_as_seed_dir_does(make, tmp_path):  # noqa: F811
    zdir = _dir(tmp_path)
    store = make("two")
    seeding = prepare_seed(store, zdir)
    assert seeding.early and seeding.lines == []
    assert [p.zone.origin for p in seeding.imports] == ["g.test.", "o.test."]
    assert store.list_zones() == [] and store.journal_since(0) == []
    ids = [e.zone_id for e, _ in seeding.entries()]
    assert all(built is not None for _, built in seeding.entries())  # master files: prebuilt
    # nor the files' text while the imports wait (`LoadedZone.lines` reads it for errors)
    assert all(p.zone.lines == {} and p.zone.record_sets for p in seeding.imports)
    count = sum(len(p.zone.record_sets) for p in seeding.imports)
    lines = seeding.run(store)
    assert seeding.seconds > 0 and seeding.record_sets == count > 0
    assert seeding.imports == []  # nothing of the files is kept once they are in the store
    clean = make("clean")
    assert lines == seed_dir(clean, zdir)
    assert ids == [z.id for z in store.list_zones()] == [z.id for z in clean.list_zones()]
    for zid in ids:
        assert state(store, zid) == state(clean, zid)
    again = prepare_seed(store, zdir)  # a restart: the same bytes, nothing to import
    assert not again.early and again.imports == [] and all("the same bytes" in line for line in again.lines)


def test_not_early_when_the_store_serves_other_zones(make, tmp_path):  # noqa: F811
    store = make("other")
    first = tmp_path / "first"
    first.mkdir()
    (first / "o.test.zone").write_text(generated(20).replace("g.test.", "o.test."))
    seed_dir(store, first)
    second = tmp_path / "second"
    second.mkdir()
    (second / "g.test.zone").write_text(generated(30))
    seeding = prepare_seed(store, second)
    assert [p.zone.origin for p in seeding.imports] == ["g.test."]
    assert not seeding.early  # o.test. is the store's: an index fed early would not serve it


@pytest.mark.parametrize("file_serial", [7, 0])
def test_the_file_s_zone_serves_during_the_import_and_the_snapshot_takes_it_over(
        make, tmp_path, file_serial):  # noqa: F811
    """Serial 0 is below a new zone's own SOA: the import moves it forward (RFC 1996 §2.2),
    and the zone served meanwhile takes the store's SOA only with the snapshot."""
    zdir = _dir(tmp_path, serial=file_serial)
    store = make("early")
    seeding = prepare_seed(store, zdir)
    index = ServingIndex(rng=random.Random(1))
    for entry, built in seeding.entries():
        index.apply(entry, built)
    zid = next(e.zone_id for e, _ in seeding.entries() if e.zone_name == ORIGIN)
    served = index._by_id[zid]
    soa = make_query_wire(ORIGIN, "SOA")
    from_file = index.respond(soa, tcp=False)
    questions = [make_query_wire(f"h{i}.{ORIGIN}", "A") for i in range(0, 300, 7)]
    before = [index.respond(q, tcp=False) for q in questions]

    done = threading.Event()
    lines: list[str] = []
    worker = threading.Thread(target=lambda: (lines.extend(seeding.run(store)), done.set()))
    worker.start()
    answered = 0
    while not done.is_set():  # DNS on this thread while the import runs on the other
        assert index.respond(soa, tcp=False)[2:] == from_file[2:]
        answered += 1
    worker.join()
    assert lines and all("created from" in line for line in lines)
    assert answered > 0
    # the import did not touch the zone being served: still the file's serial
    assert index._by_id[zid] is served and _serial_of(index, zid) == file_serial
    assert [index.respond(q, tcp=False)[2:] for q in questions] == [b[2:] for b in before]

    follower = Follower("primary", store, index)
    with mock.patch.object(Zone, "build", side_effect=AssertionError("Zone.build called")):
        trio.run(follower.bootstrap)  # the store's snapshot: the file's zone, taken over
    assert index._by_id[zid] is served
    assert index.seq == store.seq and index.seq > 0
    serial = store.find_zone(zid).serial
    assert (serial == file_serial) is (file_serial == 7)
    assert _serial_of(index, zid) == serial
    ref = _reference(store)
    _same_answers(index, ref, _questions(store))
    assert [e.kind for e in store.snapshot()] == [EntryKind.SNAPSHOT] * 2


def _serial_of(index: ServingIndex, zone_id: str) -> int:
    return int(index._by_id[zone_id].soa.texts[0].split()[2])


def test_the_early_entry_carries_the_file_s_serial(make, tmp_path):  # noqa: F811
    """What an index serves before the import is the file as written, SOA serial included."""
    store = make("one")
    d = tmp_path / "one"
    d.mkdir()
    (d / "g.test.zone").write_text(generated(10))
    seeding = prepare_seed(store, d)
    index = ServingIndex(rng=random.Random(1))
    for entry, built in seeding.entries():
        index.apply(entry, built)
    (entry, _), = seeding.entries()
    assert _serial(index) == _serial_of(index, entry.zone_id) == entry.serial == 7
