"""`authd.store.checkpointer`: a SQLiteStore's COMMIT no longer checkpoints the WAL; a thread
does once writes go idle, and what it copies is the committed state (issue 12)."""

from __future__ import annotations

import shutil
import sqlite3

from authd.model.records import RecordSet
from authd.store import checkpointer
from authd.store.contract import Action, Change
from authd.store.sqlstore import SQLiteStore


def _batch(store: SQLiteStore, zone_id: str, k: int, n: int = 200) -> None:
    store.change_batch(zone_id, [Change(Action.CREATE, RecordSet(f"n{k}-{i}.example.test.", "A", 60,
                                                                  (f"192.0.2.{i % 250 + 1}",)))
                                 for i in range(n)])


def _names_in_main_file(db, tmp_path) -> int:
    """Rows of rrsets in the database file alone, as if its WAL were lost: what checkpoints
    have copied back (the copy is opened without the -wal file beside it)."""
    lone = tmp_path / "lone.db"
    shutil.copyfile(db, lone)
    conn = sqlite3.connect(lone)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='rrsets'").fetchall():
            return 0  # not even the schema has been copied back yet
        return conn.execute("SELECT COUNT(*) FROM rrsets WHERE name LIKE 'n%'").fetchone()[0]
    finally:
        conn.close()


def test_commit_leaves_the_checkpoint_to_the_idle_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpointer, "IDLE", 3600.0)  # never idle long enough in this test
    db = tmp_path / "a.db"
    store = SQLiteStore(db)
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == checkpointer.BACKSTOP_PAGES
    zone, _ = store.create_zone("example.test", "r")
    for k in range(30):  # ~2,000+ WAL pages: past SQLite's default autocheckpoint of 1,000
        _batch(store, zone.id, k)
    assert store._checkpointer.checkpoints == 0
    assert _names_in_main_file(db, tmp_path) == 0  # all of it still only in the (synced) WAL
    assert len(store.record_sets(zone.id)) == 30 * 200 + 2  # and served from it
    store.close()  # the last connection's close checkpoints, as SQLite always did
    assert _names_in_main_file(db, tmp_path) == 30 * 200


def test_idle_thread_checkpoints_the_committed_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpointer, "IDLE", 0.01)
    db = tmp_path / "a.db"
    store = SQLiteStore(db)
    zone, _ = store.create_zone("example.test", "r")
    for k in range(3):
        _batch(store, zone.id, k)
    done = store._checkpointer.done
    while True:  # checkpoints may have run between the batches: until one after the last
        done.clear()  # (cleared before looking, so a checkpoint finishing now is not missed)
        try:
            if _names_in_main_file(db, tmp_path) == 3 * 200:
                break
        except sqlite3.DatabaseError:  # copied while a checkpoint was writing it: torn, look
            pass  # again once that checkpoint is done (it sets `done`, cleared before the copy)
        assert done.wait(timeout=30), "no checkpoint within 30 s of the last commit"
    assert store._checkpointer.checkpoints >= 1
    reopened = SQLiteStore(db, readonly=True)
    assert len(reopened.record_sets(zone.id)) == 3 * 200 + 2
    reopened.close()
    store.close()


def test_reset_log_copies_an_import_back_and_the_next_commit_cuts_the_file(tmp_path, monkeypatch):
    """A new store's import leaves the whole zone in the WAL; `reset_log` (the node calls it
    before the change API opens) copies it into the database file, and the next COMMIT starts
    the log again and cuts the file to `LOG_LIMIT`, so batches do not run beside that
    checkpoint or append to a log the size of the zone."""
    monkeypatch.setattr(checkpointer, "IDLE", 3600.0)  # only reset_log checkpoints here
    monkeypatch.setattr(checkpointer, "LOG_LIMIT", 64 * 1024)
    db = tmp_path / "a.db"
    wal = tmp_path / "a.db-wal"
    store = SQLiteStore(db)
    zone, _ = store.create_zone("example.test", "r")
    for k in range(10):
        _batch(store, zone.id, k)
    big = wal.stat().st_size
    assert big > 8 * 64 * 1024 and _names_in_main_file(db, tmp_path) == 0
    frames, copied = store.reset_log()
    assert frames == copied > 0
    assert _names_in_main_file(db, tmp_path) == 10 * 200  # all of it in the database file
    _batch(store, zone.id, 10, n=5)  # the next commit restarts the log ...
    assert wal.stat().st_size <= 64 * 1024  # ... and cuts the file back
    assert len(store.record_sets(zone.id)) == 10 * 200 + 5 + 2
    store.close()
    assert len(SQLiteStore(db, readonly=True).record_sets(zone.id)) == 10 * 200 + 5 + 2


def _zone_file(directory, n: int, address: str) -> None:
    lines = ["$ORIGIN example.test.", "$TTL 300",
             "@ SOA ns1 hostmaster 1 3600 600 86400 300", "@ NS ns1", "ns1 A 192.0.2.53"]
    lines += [f"n{i} A {address}" for i in range(n)]
    (directory / "example.test.zone").write_text("\n".join(lines) + "\n")


def test_every_seed_that_wrote_a_big_log_restarts_it(tmp_path, monkeypatch):
    """`Seeding.run` ends every seed with `reset_log(big_only=True)`: a restart that
    re-imports a changed file (`prepare_seed`, a `change_batch` of the whole zone) leaves
    its log checkpointed and restarted as a new store's import does, so the next commit cuts
    the file back; a restart with the file unchanged writes (almost) nothing and leaves the
    log alone."""
    from authd.zonefiles.seed import seed_dir

    monkeypatch.setattr(checkpointer, "IDLE", 3600.0)  # only reset_log checkpoints here
    monkeypatch.setattr(checkpointer, "LOG_LIMIT", 64 * 1024)
    zones = tmp_path / "zones"
    zones.mkdir()
    db = tmp_path / "a.db"
    wal = tmp_path / "a.db-wal"
    _zone_file(zones, 2000, "192.0.2.1")
    store = SQLiteStore(db)
    lines = seed_dir(store, zones)
    assert any("created from" in line for line in lines)
    assert "checkpointed before the change API opens" in lines[-1]  # a new store's import
    store.close()

    _zone_file(zones, 2000, "192.0.2.2")  # every set changed: re-imported by change_batch
    store = SQLiteStore(db)
    lines = seed_dir(store, zones)
    assert "re-imported (file changed)" in lines[0]
    assert "checkpointed before the change API opens" in lines[-1]
    lone = tmp_path / "lone.db"  # the new addresses are in the database file alone
    shutil.copyfile(db, lone)
    conn = sqlite3.connect(lone)
    assert conn.execute("SELECT COUNT(*) FROM rrsets WHERE data LIKE '%192.0.2.2\"%'").fetchone()[0] == 2000
    conn.close()
    zone = store.find_zone_by_name("example.test.")
    _batch(store, zone.id, 0, n=5)  # the next commit restarts the log and cuts the file back
    assert wal.stat().st_size <= 64 * 1024
    store.close()

    store = SQLiteStore(db)
    lines = seed_dir(store, zones)  # unchanged: nothing written, the log is left alone
    assert len(lines) == 1 and "unchanged" in lines[0]
    assert store.reset_log(big_only=True) is None
    store.close()
