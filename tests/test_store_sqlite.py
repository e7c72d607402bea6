"""SQLiteStore specifics: restart gives the same state, readers follow, writers race safely."""

from __future__ import annotations

import threading

import pytest

from authd.model.records import RecordSet
from authd.store.contract import Action, Change, InvalidChangeBatch
from authd.store.memstore import MemoryStore
from authd.store.sqlstore import SQLiteStore


def test_restart_gives_the_same_state(tmp_path):
    db = tmp_path / "a.db"
    s = SQLiteStore(db)
    zone, _ = s.create_zone("example.test", "r")
    s.change_batch(zone.id, [Change(Action.CREATE, RecordSet("x.example.test.", "A", 60, ("192.0.2.1",)))])
    before = (s.list_zones(), s.record_sets(zone.id), s.journal_since(0), s.snapshot())
    s.close()
    s2 = SQLiteStore(db)
    assert (s2.list_zones(), s2.record_sets(zone.id), s2.journal_since(0), s2.snapshot()) == before
    s2.close()


def test_wal_and_full_sync(tmp_path):
    s = SQLiteStore(tmp_path / "a.db")
    assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s.close()


def test_readonly_follower_sees_commits(tmp_path):
    db = tmp_path / "a.db"
    writer = SQLiteStore(db)
    zone, _ = writer.create_zone("example.test", "r")
    reader = SQLiteStore(db, readonly=True)
    seq = reader.seq
    info = writer.change_batch(
        zone.id, [Change(Action.CREATE, RecordSet("x.example.test.", "A", 60, ("192.0.2.1",)))]
    )
    [entry] = reader.journal_since(seq)
    assert entry.seq == info.seq and entry.change_id == info.id
    assert reader.snapshot() == writer.snapshot()
    reader.close()
    writer.close()


def test_same_answers_as_memory_store(tmp_path):
    """Both backends run the same rules: a mixed history gives identical contents."""
    stores = [MemoryStore(), SQLiteStore(tmp_path / "a.db")]
    for s in stores:
        s.create_zone("example.test", "r")
    lock = RecordSet("_lock.example.test.", "TXT", 60, ('"a 1"',))
    history = [
        [Change(Action.CREATE, lock)],
        [Change(Action.DELETE, lock.replace(values=('"b 1"',))), Change(Action.CREATE, lock)],
        [Change(Action.DELETE, lock), Change(Action.CREATE, lock.replace(values=('"a 2"',)))],
        [Change(Action.UPSERT, RecordSet("w.example.test.", "A", 60, ("192.0.2.1",), set_identifier="x", weight=1))],
        [Change(Action.CREATE, RecordSet("w.example.test.", "A", 60, ("192.0.2.2",)))],
    ]
    outcomes = []
    for s in stores:
        got = []
        for batch in history:
            try:
                got.append(s.change_batch("Z0EXAMPLE0TEST", batch).seq)
            except InvalidChangeBatch as exc:
                got.append(exc.messages)
        outcomes.append((got, s.record_sets("Z0EXAMPLE0TEST")))
    assert outcomes[0] == outcomes[1]


def test_racing_writers_exactly_one_wins_each_round(tmp_path):
    """The lock's foundation at the store level: DELETE-exact + CREATE from many threads and
    two connections (as two processes would have)."""
    db = tmp_path / "a.db"
    first = SQLiteStore(db)
    zone, _ = first.create_zone("example.test", "r")
    second = SQLiteStore(db)
    lock = RecordSet("_lock.example.test.", "TXT", 60, ('"nobody 0"',))
    first.change_batch(zone.id, [Change(Action.CREATE, lock)])
    for rnd in range(10):
        current = first.get_record_sets(zone.id, "_lock.example.test.", "TXT")[0]
        wins: list[str] = []
        losses: list[tuple[str, ...]] = []
        barrier = threading.Barrier(8)

        def writer(i: int, store: SQLiteStore, current=current, wins=wins, losses=losses, barrier=barrier, rnd=rnd) -> None:
            barrier.wait()
            new = current.replace(values=(f'"writer-{i} {rnd}"',))
            try:
                store.change_batch(zone.id, [Change(Action.DELETE, current), Change(Action.CREATE, new)])
                wins.append(new.values[0])
            except InvalidChangeBatch as exc:
                losses.append(exc.messages)

        threads = [threading.Thread(target=writer, args=(i, (first, second)[i % 2])) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1 and len(losses) == 7
        assert all("do not match the current values" in m[0] for m in losses)
        assert first.get_record_sets(zone.id, "_lock.example.test.", "TXT")[0].values == (wins[0],)
    first.close()
    second.close()


def _rows(store: SQLiteStore) -> list[tuple]:
    return store._conn.execute("SELECT * FROM rrsets ORDER BY zone_id, name, rtype, set_id").fetchall()


def _mixed_batches(store: SQLiteStore) -> None:
    zone, _ = store.create_zone("example.test", "r")
    a = [RecordSet(f"h{i}.example.test.", "A", 60, (f"192.0.2.{i + 1}",)) for i in range(6)]
    store.change_batch(zone.id, [Change(Action.CREATE, rs) for rs in a])
    store.change_batch(zone.id, [
        Change(Action.UPSERT, a[0].replace(values=("198.51.100.1",))),  # held: updated in place
        Change(Action.UPSERT, RecordSet("h9.example.test.", "A", 60, ("198.51.100.9",))),  # new
        Change(Action.DELETE, a[1]),
        Change(Action.CREATE, a[1].replace(ttl=300)),  # held, deleted and created: updated
        Change(Action.DELETE, a[2]),
        Change(Action.CREATE, RecordSet("h3.example.test.", "AAAA", 60, ("2001:db8::3",))),  # new type
    ])


def test_puts_of_held_keys_update_their_rows_as_the_upsert_did(tmp_path, monkeypatch):
    """`_put_planned` updates the rows of keys the zone holds and inserts only new ones: the
    table ends as `_put`'s INSERT ... ON CONFLICT DO UPDATE leaves it, sort keys included."""
    fast = SQLiteStore(tmp_path / "fast.db", clock=lambda: 1.0)
    _mixed_batches(fast)
    with monkeypatch.context() as m:
        m.setattr(SQLiteStore, "_put_planned", lambda self, conn, zid, sets, held: self._put(conn, zid, sets))
        plain = SQLiteStore(tmp_path / "plain.db", clock=lambda: 1.0)
        _mixed_batches(plain)
    assert _rows(fast) == _rows(plain)
    zone = fast.find_zone_by_name("example.test.")
    got = {(rs.name, rs.rtype): rs for rs in fast.record_sets(zone.id)}
    assert got[("h0.example.test.", "A")].values == ("198.51.100.1",)
    assert got[("h1.example.test.", "A")].ttl == 300 and ("h2.example.test.", "A") not in got
    assert zone.record_set_count == 2 + 6 + 1  # SOA and NS, the six, h9 (h2 A gone, h3 AAAA new)
    fast.close()
    plain.close()


def test_an_update_that_finds_no_row_fails_the_batch_and_writes_nothing(tmp_path, monkeypatch):
    """Under BEGIN IMMEDIATE the plan's view cannot go stale, so an update that finds fewer
    rows than planned is a bug: the batch fails and rolls back (it used to write every set
    again with `_put`, which hid it)."""
    store = SQLiteStore(tmp_path / "a.db")
    zone, _ = store.create_zone("example.test", "r")
    seq = store.seq
    # the plan's view claims every key is held, so the new set's UPDATE finds no row
    monkeypatch.setattr("authd.store.sqlcore._View.held", lambda self, sets: [True] * len(sets))
    with pytest.raises(AssertionError, match="2 of the batch's keys are held, but 1 rows were updated"):
        store.change_batch(zone.id, [Change(Action.CREATE, RecordSet("new.example.test.", "A", 60, ("192.0.2.1",)))])
    assert store.get_record_sets(zone.id, "new.example.test.", "A") == []
    assert store.seq == seq and store.get_zone(zone.id).serial == zone.serial  # nothing committed
    store.close()
