"""An idle follower costs next to nothing and still sees every write: the backoff policy
(`IdlePoll`), the data-version probe that spares the journal query, the WAL watch's event
parser, and `SQLiteStore.interrupt` + `_write`'s rollback (what a Ctrl-C during an import
relies on). Mock time (autojump_clock) for the follow loop; real processes are in
test_replica_idle_process.py."""

from __future__ import annotations

import functools
import sqlite3
import struct
import threading

import pytest
import trio
import trio.testing

from authd.model.records import RecordSet
from authd.store.contract import Action, Change
from authd.store.memstore import MemoryStore
from authd.store.replica import Follower, IdlePoll
from authd.store.sqlstore import SQLiteStore
from authd.store.walwatch import IN_MODIFY, IN_Q_OVERFLOW, DataVersion, WalWatch, parse_events
from tests.test_replica import RecordingIndex


def A(name: str) -> Change:
    return Change(Action.CREATE, RecordSet(name, "A", 60, ("192.0.2.1",)))


def test_idle_poll_backs_off_to_its_ceiling_and_is_fast_again_on_activity():
    poll = IdlePoll(0.05, 0.5)
    assert poll.after(busy=True) == 0.05
    assert [poll.after(busy=False) for _ in range(6)] == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    assert poll.after(busy=True) == 0.05  # the first entry: fast at once
    assert poll.after(busy=False) == 0.1
    # a PostgreSQL node's 1 s fallback poll is never made faster by the idle ceiling
    slow = IdlePoll(1.0, 0.5)
    assert slow.after(busy=False) == 1.0 and slow.idle == 1.0


def test_idle_poll_looks_again_soon_after_a_wake_that_found_nothing_committed():
    poll = IdlePoll(0.05, 0.5)
    for _ in range(4):
        poll.after(busy=False)
    waits = [poll.after(busy=True, expecting=True)]  # the wake-up's look found nothing
    while poll.settling:  # the follower keeps expecting while nothing is found
        waits.append(poll.after(busy=False, expecting=True))
    assert waits[0] == IdlePoll.SETTLE
    assert waits == sorted(waits) and waits[1] == pytest.approx(1.25 * IdlePoll.SETTLE)
    assert waits[-1] == 0.05 and len(waits) < 30  # never slower than the active poll
    assert sum(waits[:8]) < 0.02  # a commit's fsync of a few ms is caught within a few ms more
    assert poll.after(busy=False) == 0.1  # then it backs off from the active poll again


async def test_an_idle_follower_with_a_probe_reads_no_journal_and_backs_off(tmp_path, autojump_clock):
    db = tmp_path / "a.db"
    writer = SQLiteStore(db)
    zone, _ = writer.create_zone("example.test", "r")
    reader = SQLiteStore(db, readonly=True)
    version = DataVersion(db)
    looks = 0

    def probe() -> int:
        nonlocal looks
        looks += 1
        return version()

    index = RecordingIndex()
    follower = Follower("replica-1", reader, index, poll_interval=0.05, idle_poll=0.5, probe=probe)
    async with trio.open_nursery() as nursery:
        await nursery.start(follower.run)
        await trio.sleep(60)
        # one journal read (the first look); about one look per 0.5 s, not 20 a second
        assert follower.journal_reads == 1
        assert looks <= 60 / 0.5 + 10
        # another connection's commit (as another process's) is found by the probe alone,
        # within the idle ceiling
        info = writer.change_batch(zone.id, [A("x.example.test.")])
        t = trio.current_time()
        await follower.wait_applied(info.seq)
        assert trio.current_time() - t <= 0.5 + 1e-6
        assert follower.journal_reads == 2
        nursery.cancel_scope.cancel()
    version.close()
    reader.close()
    writer.close()


async def test_a_follower_without_a_probe_still_reads_every_look(autojump_clock):
    store = MemoryStore()
    follower = Follower("primary", store, RecordingIndex(), poll_interval=0.05, idle_poll=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(follower.run)
        await trio.sleep(10)
        # backed off: ~20 looks in 10 s of idleness instead of 200
        assert 10 <= follower.journal_reads <= 30
        nursery.cancel_scope.cancel()


class JournalOnly:
    """A store seen as another process sees it: its journal, not this process's memory."""

    def __init__(self, store: MemoryStore):
        self.snapshot, self.journal_since = store.snapshot, store.journal_since


async def test_a_wake_before_the_commit_is_visible_looks_again_within_milliseconds(autojump_clock):
    """inotify reports a WAL write before the commit's fsync: the woken follower sees the old
    version, and must not then sleep for its idle poll."""
    store = MemoryStore()
    zone, _ = store.create_zone("example.test", "r")
    version = 0
    follower = Follower("primary", JournalOnly(store), RecordingIndex(), poll_interval=0.05,
                        idle_poll=0.5, probe=lambda: version)
    async with trio.open_nursery() as nursery:
        await nursery.start(follower.run)
        await trio.sleep(30)  # idle: the wait is at its 0.5 s ceiling
        reads = follower.journal_reads
        follower.wake()  # the frame is written ...
        await trio.sleep(0.004)
        info = store.change_batch(zone.id, [A("x.example.test.")])  # ... the commit lands
        version = 1
        t = trio.current_time()
        await follower.wait_applied(info.seq)
        assert trio.current_time() - t < 0.005
        assert follower.journal_reads == reads + 1
        nursery.cancel_scope.cancel()


def test_data_version_changes_on_any_other_connections_commit(tmp_path):
    db = tmp_path / "a.db"
    writer = SQLiteStore(db)
    version = DataVersion(db)
    before = version()
    assert version() == before  # nothing committed: the same
    writer.create_zone("example.test", "r")
    after = version()
    assert after != before
    other = SQLiteStore(db)  # another writer (as another process)
    other.create_zone("other.test", "r2")
    assert version() != after
    version.close()
    other.close()
    writer.close()


def _event(wd: int, mask: int, name: str) -> bytes:
    raw = name.encode() + b"\0"
    raw += b"\0" * (-len(raw) % 16)  # the kernel pads names to alignment
    return struct.pack("iIII", wd, mask, 0, len(raw) if name else 0) + (raw if name else b"")


def test_inotify_events_are_parsed_and_only_the_wal_counts():
    buf = _event(1, IN_MODIFY, "s.sqlite3") + _event(1, IN_MODIFY, "s.sqlite3-wal") + _event(1, IN_MODIFY, "x")
    assert parse_events(buf) == [(1, IN_MODIFY, "s.sqlite3"), (1, IN_MODIFY, "s.sqlite3-wal"), (1, IN_MODIFY, "x")]
    watch = WalWatch(-1, "s.sqlite3-wal")
    assert watch.changed(buf)
    assert not watch.changed(_event(1, IN_MODIFY, "s.sqlite3") + _event(1, IN_MODIFY, "t.sqlite3-wal"))
    assert watch.changed(_event(-1, IN_Q_OVERFLOW, ""))  # events were lost: look


async def test_the_wal_watch_wakes_on_a_commit_by_another_connection(tmp_path):
    from authd.store.walwatch import serve_wal_watch

    db = tmp_path / "a.db"
    writer = SQLiteStore(db)
    watch = WalWatch.open(db)
    if watch is None:
        pytest.skip("no inotify here")
    woke = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_wal_watch, watch, woke.set)
            (tmp_path / "unrelated").write_text("x")  # another file of the directory: no wake
            other = SQLiteStore(db)
            other.create_zone("example.test", "r")
            await woke.wait()
            nursery.cancel_scope.cancel()
    other.close()
    writer.close()


def test_interrupt_stops_a_long_write_and_nothing_of_it_is_committed(tmp_path):
    store = SQLiteStore(tmp_path / "a.db")
    started = threading.Event()
    failed: list[BaseException] = []

    def long_write(conn: sqlite3.Connection) -> None:
        started.set()
        conn.execute("INSERT INTO resources SELECT 'bulk', x, '{}', 1, 0 FROM (WITH RECURSIVE c(x) AS "
                     "(SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c LIMIT 200000000)")

    def run() -> None:
        try:
            store._write(long_write)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10)
    while thread.is_alive():  # an interrupt before the statement starts is a no-op: repeat
        store.interrupt()
        thread.join(0.01)
    assert len(failed) == 1 and isinstance(failed[0], sqlite3.OperationalError), failed
    assert "interrupt" in str(failed[0])  # SQLite's own error, not a failed second ROLLBACK
    assert store._conn.execute("SELECT COUNT(*) FROM resources WHERE kind='bulk'").fetchone()[0] == 0
    zone, _ = store.create_zone("example.test", "r")  # and the store writes on
    assert store.find_zone_by_name("example.test.").id == zone.id
    store.close()
    store.interrupt()  # closed: nothing to interrupt, no error


async def test_a_follower_reporting_progress_keeps_its_heartbeat_however_long_the_idle_poll(
        tmp_path, autojump_clock):
    store = MemoryStore()
    path = tmp_path / "replica-1.seq"
    follower = Follower("replica-1", store, RecordingIndex(), poll_interval=30, idle_poll=60,
                        progress_path=path)
    async with trio.open_nursery() as nursery:
        await nursery.start(follower.run)
        await trio.sleep(1)
        written = follower._last_progress
        await trio.sleep(8)  # past the 1 s heartbeat: the next look is at most 5 s away
        assert follower._last_progress > written
        assert follower.journal_reads >= 2  # looked within 5 s, not 30
        nursery.cancel_scope.cancel()


def _create(name: str) -> Change:
    return Change(Action.CREATE, RecordSet(name, "A", 60, ("192.0.2.1",)))


async def test_a_burst_of_wal_writes_wakes_the_followers_at_its_start_and_once_after(tmp_path, mock_clock):
    """A commit writes its WAL frames one by one: the watch wakes at the first write, reads
    nothing while it waits `coalesce` (the kernel coalesces what comes meanwhile), and then
    wakes once for all the rest, not once per write (issue 12: ~50 wake-ups a batch)."""
    from authd.store.walwatch import serve_wal_watch

    db = tmp_path / "a.db"
    writer = SQLiteStore(db)
    other = SQLiteStore(db)
    zone, _ = other.create_zone("example.test", "r")
    watch = WalWatch.open(db)  # after the writes above: none of theirs is pending
    if watch is None:
        pytest.skip("no inotify here")
    calls: list[float] = []
    woke = trio.Event()

    def on_change() -> None:
        calls.append(trio.current_time())
        woke.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(serve_wal_watch, watch, on_change, coalesce=1.0))
        other.change_batch(zone.id, [_create("a.example.test.")])
        await woke.wait()  # the first write's wake-up (the fd is real: wait for its event)
        assert len(calls) == 1
        woke = trio.Event()
        for k in range(5):  # five more commits, many WAL writes, while the watch waits
            other.change_batch(zone.id, [_create(f"b{k}.example.test.")])
        await trio.testing.wait_all_tasks_blocked()
        assert len(calls) == 1  # nothing read during the wait
        mock_clock.jump(1.0)
        await woke.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert len(calls) == 2 and calls[1] - calls[0] >= 1.0  # all of them: one wake-up
        nursery.cancel_scope.cancel()
    other.close()
    writer.close()
