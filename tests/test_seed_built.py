"""The index a store's first snapshot feeds, without `Zone.build` (issue 12), on SQLite and
PostgreSQL:

- after a new store is seeded from a master file, the index takes the zone the file was
  read into (`import_sets(built=)`, `take_built`), brought to the import's result (`sqlcore._matched`);
- after a restart (the store read back), the index is built from the snapshot's plain sets
  (`fastbuild.from_sets`);
- a change between the import and the snapshot makes the hand-off void;

and in each case the index answers byte for byte as one fed by `Zone.build` from what a
fresh reader of the store gets.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from unittest import mock

import pytest
import trio

from authd.dns.answer import Zone, make_query_wire
from authd.dns.index import ServingIndex
from authd.model.journal import EntryKind
from authd.model.records import RecordSet
from authd.store.contract import Action, Change
from authd.store.replica import Follower
from authd.zonefiles.seed import seed_dir
from tests.test_seed_fast import generated
from tests.test_seed_import import make  # noqa: F401  (the fixture: SQLite and PostgreSQL)

ORIGIN = "g.test."
EXTRA = ["multi A 192.0.2.1", "multi A 192.0.2.2", "multi AAAA 2001:db8::1",
         "multi AAAA 2001:db8::2", "*.w A 192.0.2.5", "deleg NS ns.deleg", "ns.deleg A 192.0.2.7",
         "low.deep.ent TXT \"x\"", "srv SRV 1 2 3 h1.g.test.", "caa CAA 0 issue \"ca.test\""]


def _zone_dir(tmp_path: Path, serial: int = 7) -> Path:
    d = tmp_path / "zones"
    d.mkdir()
    text = generated(200).replace(" host 7 ", f" host {serial} ")
    (d / "g.test.zone").write_text(text + "\n".join(EXTRA) + "\n")
    return d


def _fed(store, *, build: bool, index: ServingIndex | None = None) -> ServingIndex:
    """An index a Follower bootstraps from the store's next snapshot; `build=False`: with
    `Zone.build` refusing, so any zone it serves came another way."""
    index = index if index is not None else ServingIndex(rng=random.Random(1))
    follower = Follower("primary", store, index)
    if build:
        trio.run(follower.bootstrap)
    else:
        with mock.patch.object(Zone, "build", side_effect=AssertionError("Zone.build called")):
            trio.run(follower.bootstrap)
    return index


def _reference(store) -> ServingIndex:
    index = ServingIndex(rng=random.Random(1))
    for entry in store.snapshot():
        index.apply(entry)  # Zone.build from the sets the store gives
    return index


def _questions(store) -> list[bytes]:
    zid = store.find_zone_by_name(ORIGIN).id
    owners = sorted({rs.name for rs in store.record_sets(zid)})
    qnames = [*owners, f"nx.{ORIGIN}", f"a.b.w.{ORIGIN}", f"Deep.{ORIGIN}", f"x.deleg.{ORIGIN}"]
    return [make_query_wire(q, t, edns=e) for q in qnames
            for t in ("A", "AAAA", "CNAME", "NS", "SOA", "TXT", "MX", "SRV", "CAA", "ANY")
            for e in (False, True)]


def _same_answers(got: ServingIndex, ref: ServingIndex, questions: list[bytes]) -> None:
    for wire in questions:
        for tcp in (False, True):
            assert got.respond(wire, tcp=tcp) == ref.respond(wire, tcp=tcp), wire


def _serial(index: ServingIndex) -> int:
    (zone,) = index._by_id.values()
    return int(zone.soa.texts[0].split()[2])


@pytest.mark.parametrize("file_serial", [7, 0])
def test_a_seeded_index_takes_the_file_s_zone(make, tmp_path, file_serial):  # noqa: F811
    """Serial 0 is below the new zone's own SOA: the import moves it forward (RFC 1996
    §2.2), and the zone the file was read into is updated to the store's SOA."""
    store = make("seed")
    seed_dir(store, _zone_dir(tmp_path, file_serial))
    serial = store.find_zone_by_name(ORIGIN).serial
    assert (serial == file_serial) is (file_serial == 7)
    taken: list[object] = []
    real = type(store).take_built
    with mock.patch.object(type(store), "take_built",
                           lambda self, e: taken.append(real(self, e)) or taken[-1]):
        index = _fed(store, build=False)
    assert [z is not None for z in taken] == [True]  # the file's zone, not one built again
    assert index._by_id[store.find_zone_by_name(ORIGIN).id] is taken[0]
    assert _serial(index) == serial  # brought to the store's SOA
    _same_answers(index, _reference(store), _questions(store))


def test_a_restarted_index_is_built_from_the_rows(make, tmp_path):  # noqa: F811
    store = make("restart")
    seed_dir(store, _zone_dir(tmp_path))
    store.snapshot()  # the hand-off is used once: the next snapshot reads the store back
    index = _fed(store, build=False)
    assert _serial(index) == store.find_zone_by_name(ORIGIN).serial
    _same_answers(index, _reference(store), _questions(store))


def test_a_change_after_the_import_voids_the_hand_off(make, tmp_path):  # noqa: F811
    store = make("change")
    seed_dir(store, _zone_dir(tmp_path))
    zid = store.find_zone_by_name(ORIGIN).id
    new = RecordSet(f"h1.{ORIGIN}", "A", 60, ("192.0.2.99",))
    store.change_batch(zid, [Change(Action.UPSERT, new)])
    index = _fed(store, build=True)
    assert index._by_id[zid].records[new.key] == new
    assert not store._prebuilt  # nothing left to hand over
    assert [e.kind for e in store.snapshot()][-1] is EntryKind.SNAPSHOT
    _same_answers(index, _reference(store), _questions(store))


def test_the_inline_decode_of_plain_sets_equals_the_general_one():
    """`sqlcore._decode_all` writes a plain set's slots itself: the result is the set that was
    stored, as `_decode` rebuilds it, key and all; other sets go through `_decode`."""
    from authd.model.records import AliasTarget, RecordKey
    from authd.store import sqlcore

    sets = [RecordSet(f"h{i}.{ORIGIN}", "A", 60 + i, (f"192.0.2.{i}", f"192.0.2.{i + 100}"))
            for i in range(3)]
    sets += [RecordSet(f"t.{ORIGIN}", "TXT", 0, ('"a b"', '"c"')),
             RecordSet(f"w.{ORIGIN}", "A", 60, ("192.0.2.1",), set_identifier="one", weight=3),
             RecordSet(f"al.{ORIGIN}", "A", None, (), alias=AliasTarget(f"h1.{ORIGIN}", "Z1", True))]
    datas = sqlcore._dumps_many(sets)
    got = sqlcore._decode_all(datas)
    general = [sqlcore._decode(d) for d in json.loads("[" + ",".join(datas) + "]")]
    assert got == sets == general
    assert [rs.key for rs in got] == [rs.key for rs in sets]
    assert all(type(rs.key) is RecordKey and hash(rs) == hash(g) for rs, g in zip(got, general, strict=True))


def test_the_metrics_hold_passes_the_built_zone_on(tmp_path):
    """`authd serve --store` counts queries (`AuthdMetrics.count_queries` wraps the index's
    apply): the wrapper hands the snapshot's built zone on, so the zone loads at bootstrap
    and not, after a failed apply, from the journal's import entry with `Zone.build`."""
    from authd.metrics import AuthdMetrics
    from authd.store.sqlstore import SQLiteStore

    store = SQLiteStore(tmp_path / "m.sqlite3", clock=lambda: 1.0)
    try:
        seed_dir(store, _zone_dir(tmp_path))
        index = ServingIndex(rng=random.Random(1))
        AuthdMetrics().count_queries(index)
        _fed(store, build=False, index=index)
        zid = store.find_zone_by_name(ORIGIN).id
        assert zid in index._by_id and index.seq == store.seq
        _same_answers(index, _reference(store), _questions(store)[:200])
    finally:
        store.close()
