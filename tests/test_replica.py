"""Journal followers and propagation (a recording fake stands in for the serving index here;
end-to-end tests with the real server and dig live in test_replica_dns.py)."""

from __future__ import annotations

import os
import time

import pytest
import trio
import trio.testing

from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordSet
from authd.store.contract import Action, Change
from authd.store.memstore import MemoryStore
from authd.store.replica import DelayLine, Follower, Propagation
from authd.store.sqlstore import SQLiteStore


class RecordingIndex:
    """Records what it is fed; `seq` follows the entries, as ServingIndex's does."""

    def __init__(self) -> None:
        self.seq = 0
        self.entries: list[JournalEntry] = []

    def apply(self, entry: JournalEntry, built: object = None) -> None:
        assert entry.seq >= self.seq, "entries arrive in order"
        self.entries.append(entry)
        self.seq = entry.seq


def A(name: str) -> Change:
    return Change(Action.CREATE, RecordSet(name, "A", 60, ("192.0.2.1",)))


def test_delay_line_orders_and_delays():
    line = DelayLine(2.0)
    e = [JournalEntry(i, EntryKind.CHANGE, "Z", "z.", i, f"C{i}") for i in (1, 2, 3)]
    line.observe(e[:2], now=10.0)
    line.observe(e, now=11.0)  # seq 1, 2 again: ignored; 3 is new
    assert line.due(11.9) == [] and line.next_due() == 12.0
    assert [x.seq for x in line.due(12.0)] == [1, 2]
    assert line.due(12.5) == [] and [x.seq for x in line.due(13.0)] == [3]
    assert line.next_due() is None


async def test_follower_snapshot_then_journal_same_apply_path(autojump_clock):
    store = MemoryStore(clock=lambda: 0.0)
    zone, _ = store.create_zone("example.test", "r")
    store.change_batch(zone.id, [A("a.example.test.")])
    index = RecordingIndex()
    follower = Follower("primary", store, index, poll_interval=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(follower.run)
        assert [e.kind for e in index.entries] == [EntryKind.SNAPSHOT]
        assert index.seq == store.seq == 2
        info = store.change_batch(zone.id, [A("b.example.test.")])
        follower.wake()
        await follower.wait_applied(info.seq)
        assert index.entries[-1].change_id == info.id
        assert trio.current_time() < 0.001  # woken, not polled
        info2 = store.change_batch(zone.id, [A("c.example.test.")])
        await applied_by_the_loop(follower, info2.seq)  # nobody wakes it: the poll finds it
        assert 0.9 < trio.current_time() <= 1.01
        nursery.cancel_scope.cancel()


async def applied_by_the_loop(follower: Follower, seq: int) -> None:
    """Wait for the follow loop itself to apply `seq` (`wait_applied` would apply what the
    store holds in memory at once)."""
    async with follower.applied:
        while follower.index.seq < seq:
            await follower.applied.wait()


class CountingStore(SQLiteStore):
    """A SQLite store that counts its journal reads."""

    reads = 0

    def journal_since(self, seq, limit=None):
        self.reads += 1
        return super().journal_since(seq, limit)


async def test_wait_applied_applies_what_this_process_committed_without_the_loop(tmp_path, autojump_clock):
    """The control API's settle: the batch it just committed is applied from the store's
    memory, in order, with no journal read and no wake-up of the follow loop; the loop
    then finds nothing new to apply, and what another process wrote still comes through
    the journal."""
    store = CountingStore(tmp_path / "s.db")
    zone, _ = store.create_zone("example.test", "r")
    index = RecordingIndex()
    follower = Follower("primary", store, index, poll_interval=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(follower.run)
        reads = store.reads
        first = store.change_batch(zone.id, [A("a.example.test.")])
        second = store.change_batch(zone.id, [A("b.example.test.")])
        await follower.wait_applied(second.seq)  # not woken: no loop iteration ran
        assert trio.current_time() == 0.0 and store.reads == reads
        assert [e.seq for e in index.entries[-2:]] == [first.seq, second.seq]
        assert [e.change_id for e in index.entries[-2:]] == [first.id, second.id]
        other = SQLiteStore(tmp_path / "s.db")  # another process's writer: not in memory here
        third = other.change_batch(zone.id, [A("c.example.test.")])
        fourth = store.change_batch(zone.id, [A("d.example.test.")])
        await follower.wait_applied(fourth.seq)  # seq 3 is not held: the loop reads the journal
        assert [e.seq for e in index.entries[-2:]] == [third.seq, fourth.seq]
        assert len(index.entries) == len({e.seq for e in index.entries}), "each entry applied once"
        other.close()
        nursery.cancel_scope.cancel()
    store.close()


async def test_delayed_replica_lags_and_propagation_waits(autojump_clock):
    store = MemoryStore(clock=lambda: 0.0)
    zone, _ = store.create_zone("example.test", "r")
    primary_index, replica_index = RecordingIndex(), RecordingIndex()
    primary = Follower("primary", store, primary_index, poll_interval=0.05)
    replica = Follower("replica-1", store, replica_index, delay=3.0, poll_interval=0.05)
    prop = Propagation()
    prop.add(primary)
    prop.add(replica)
    async with trio.open_nursery() as nursery:
        await nursery.start(primary.run)
        await nursery.start(replica.run)
        info = store.change_batch(zone.id, [A("x.example.test.")])
        prop.wake_all()
        start = trio.current_time()
        await primary.wait_applied(info.seq)
        assert prop.applied_seq() < info.seq, "PENDING while the delayed replica lags"
        await replica.wait_applied(info.seq)
        assert 3.0 <= trio.current_time() - start <= 3.1
        assert prop.applied_seq() >= info.seq, "INSYNC once every replica applied it"
        nursery.cancel_scope.cancel()


async def test_replica_process_progress_files(tmp_path, autojump_clock):
    db = tmp_path / "a.db"
    writer = SQLiteStore(db)
    zone, _ = writer.create_zone("example.test", "r")
    status = tmp_path / "a.db.replicas"
    status.mkdir()
    reader = SQLiteStore(db, readonly=True)
    follower = Follower("replica-7", reader, RecordingIndex(), poll_interval=0.02, progress_path=status / "replica-7.seq")
    prop = Propagation(status_dir=status)
    async with trio.open_nursery() as nursery:
        await nursery.start(follower.run)
        assert prop.describe() == {"replica-7": writer.seq}
        info = writer.change_batch(zone.id, [A("x.example.test.")])
        await follower.wait_applied(info.seq)
        assert prop.applied_seq() == info.seq
        nursery.cancel_scope.cancel()
    # a replica that stopped reporting long ago no longer holds changes PENDING
    old = time.time() - 60
    os.utime(status / "replica-7.seq", (old, old))
    assert prop.describe() == {}
    reader.close()
    writer.close()


@pytest.mark.parametrize("delay", [0.0, 0.5])
async def test_follower_from_sqlite_matches_store(tmp_path, delay, autojump_clock):
    db = tmp_path / "a.db"
    store = SQLiteStore(db)
    zone, _ = store.create_zone("example.test", "r")
    index = RecordingIndex()
    follower = Follower("r", SQLiteStore(db, readonly=True), index, delay=delay, poll_interval=0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(follower.run)
        for i in range(5):
            store.change_batch(zone.id, [A(f"h{i}.example.test.")])
        await follower.wait_applied(store.seq)
        assert [e.seq for e in index.entries[1:]] == list(range(2, store.seq + 1))
        nursery.cancel_scope.cancel()
