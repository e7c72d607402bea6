"""PostgresStore against SQLiteStore and MemoryStore: the same random batches (hypothesis),
the same verdicts, messages, record sets, serials and journal entries after every batch.

One PostgreSQL database serves the whole run; each example works in a zone of its own.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from authd.model.records import AliasTarget, RecordSet
from authd.store.contract import Action, Change, InvalidChangeBatch, InvalidInput
from authd.store.memstore import MemoryStore
from authd.store.sqlstore import SQLiteStore

pgstore = pytest.importorskip("authd.store.pgstore")

LABELS = ["a", "b", "c", "_lock"]
_zones = itertools.count(1)

# (action, kind, label, variant): turned into a record set once the example's zone is known
change = st.tuples(st.sampled_from(list(Action)), st.sampled_from(["plain", "weighted", "alias", "txt"]),
                   st.sampled_from(LABELS), st.integers(0, 2))
batches = st.lists(st.lists(change, min_size=1, max_size=6), min_size=1, max_size=8)


def materialise(spec, origin: str, zone_id: str) -> Change:
    action, kind, label, v = spec
    name = f"{label}.{origin}"
    if kind == "plain":
        rs = RecordSet(name, "A", (60, 300, 60)[v], (("192.0.2.1",), ("192.0.2.1", "192.0.2.2"), ("192.0.2.3",))[v])
    elif kind == "weighted":
        rs = RecordSet(name, "A", 60, ("192.0.2.9",), set_identifier=f"lb{v % 2}", weight=(0, 1, 100)[v])
    elif kind == "alias":
        rs = RecordSet(name, "A", alias=AliasTarget(f"{LABELS[v]}.{origin}", zone_id))
    else:
        rs = RecordSet(name, "TXT", 60, (f'"lock {v}"',))
    return Change(action, rs)


@pytest.fixture(scope="module")
def pg_store(pg_cluster):
    store = pgstore.PostgresStore(pg_cluster.new_database("diff"))
    yield store
    store.close()


def outcome(store, zone_id: str, batch) -> tuple[str, tuple[str, ...]]:
    try:
        store.change_batch(zone_id, batch)
        return ("accepted", ())
    except InvalidChangeBatch as exc:
        return ("InvalidChangeBatch", exc.messages)
    except InvalidInput as exc:
        return ("InvalidInput", (str(exc),))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(history=batches)
def test_postgres_agrees_with_sqlite_and_memory(pg_store, history):
    origin = f"d{next(_zones)}.test."
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"memory": MemoryStore(), "sqlite": SQLiteStore(Path(tmp) / "d.db"), "postgresql": pg_store}
        zone_id = None
        for s in stores.values():
            zone, _ = s.create_zone(origin, f"ref-{origin}")
            zone_id = zone.id
        try:
            for specs in history:
                batch = [materialise(x, origin, zone_id) for x in specs]
                before = {k: s.seq for k, s in stores.items()}
                verdicts = {k: outcome(s, zone_id, batch) for k, s in stores.items()}
                assert len(set(verdicts.values())) == 1, verdicts
                event(verdicts["memory"][0])
                views = {k: (s.record_sets(zone_id), s.find_zone(zone_id).serial,
                             s.find_zone(zone_id).record_set_count) for k, s in stores.items()}
                assert views["postgresql"] == views["sqlite"] == views["memory"]
                entries = {k: [(e.kind, e.serial, frozenset(e.puts), frozenset(e.deletes))
                               for e in s.journal_since(before[k])] for k, s in stores.items()}
                assert entries["postgresql"] == entries["sqlite"] == entries["memory"]
        finally:
            stores["sqlite"].close()
