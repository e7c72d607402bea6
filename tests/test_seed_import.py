"""The bulk zone import (`SQLCore.import_sets`) on SQLite and PostgreSQL (issue 12).

- It leaves what the slow path (`change_batch` of every set) leaves: record sets, serial,
  count, journal.
- A process killed in the middle of a seed leaves no half-seeded zone: the zone holds only
  its SOA and NS and no digest, and the next start imports the file again, to the same state
  a clean seed gives.
- The sets it hands to the next `snapshot()` equal what a fresh reader of the store gets,
  in the same order; after a later change the snapshot reads the store again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest

from authd.model.journal import EntryKind
from authd.model.records import RecordSet, route53_sort_key
from authd.store import sqlcore
from authd.store.contract import Action, Change, NoSuchHostedZone
from authd.store.sqlcore import SQLCore
from authd.store.sqlstore import SQLiteStore
from authd.zonefiles.seed import recorded_hash, seed_dir, seed_store
from authd.zonefiles.zonefile import load_zone_dir, parse_master
from tests.test_seed_fast import generated

ROOT = Path(__file__).resolve().parent.parent
ZONES = ROOT / "zones"


def _sqlite(request, tmp_path: Path, name: str = "s"):
    return SQLiteStore(tmp_path / f"{name}.sqlite3", clock=lambda: 1.0)


def _postgres(request, tmp_path: Path, name: str = "s"):
    pgstore = pytest.importorskip("authd.store.pgstore")
    cluster = request.getfixturevalue("pg_cluster")
    return pgstore.PostgresStore(cluster.new_database(name), clock=lambda: 1.0)


@pytest.fixture(params=[_sqlite, _postgres], ids=["sqlite", "postgresql"])
def make(request, tmp_path):
    opened: list = []

    def new(name: str = "s"):
        s = request.param(request, tmp_path, name)
        opened.append(s)
        return s

    yield new
    for s in opened:
        s.close()


def state(store, zone_id: str):
    z = store.find_zone(zone_id)
    return (sorted(store.record_sets(zone_id), key=route53_sort_key), z.serial, z.record_set_count,
            [(e.kind, e.serial, sorted(e.puts, key=route53_sort_key), sorted(e.deletes))
             for e in store.journal_since(0)])


def test_bulk_import_equals_the_batch_import(make):
    zones = [*load_zone_dir(ZONES), parse_master(generated(500), "g.test.zone", "g.test.")]
    fast, slow = make("fast"), make("slow")
    lines_fast = seed_store(fast, zones)
    with mock.patch.object(SQLCore, "import_sets", None), \
            mock.patch.object(type(slow), "import_sets", None, create=True):
        lines_slow = seed_store(slow, zones)
    assert lines_fast == lines_slow
    for z in fast.list_zones():
        assert state(fast, z.id) == state(slow, z.id)
        assert recorded_hash(z.comment) == recorded_hash(slow.find_zone(z.id).comment) is not None
    assert all("unchanged" in line for line in seed_store(fast, zones))


def test_handed_off_snapshot_equals_a_read_back(make, tmp_path):
    zone = parse_master(generated(300), "g.test.zone", "g.test.")
    store = make("h")
    seed_store(store, [zone])
    decoded: list[int] = []
    real = sqlcore._decode_all
    with mock.patch.object(sqlcore, "_decode_all", lambda datas: decoded.append(len(datas)) or real(datas)):
        handed = store.snapshot()
    assert sum(decoded) == 0  # nothing of the zone was read back and decoded
    read_back = store.snapshot()  # the hand-off is used once; this one reads the store
    # SQLite reads rows in primary-key order, and the hand-off is in that order too;
    # PostgreSQL's snapshot has no ORDER BY (heap order), so there only the sets must agree
    ordered = isinstance(store, SQLiteStore)

    def shape(entries):
        return [(e.kind, e.zone_id, e.seq, e.serial,
                 e.puts if ordered else sorted(e.puts, key=route53_sort_key)) for e in entries]

    assert shape(handed) == shape(read_back)
    assert len(handed[-1].puts) == len(zone.record_sets)


def test_a_change_after_the_import_makes_the_snapshot_read_the_store(make):
    zone = parse_master(generated(50), "g.test.zone", "g.test.")
    store = make("c")
    seed_store(store, [zone])
    zid = store.find_zone_by_name("g.test.").id
    extra = RecordSet("new.g.test.", "A", 60, ("192.0.2.9",))
    store.change_batch(zid, [Change(Action.CREATE, extra)])
    snap = [e for e in store.snapshot() if e.kind is EntryKind.SNAPSHOT and e.zone_id == zid][0]
    assert extra in snap.puts and snap.seq == store.seq


CHILD = textwrap.dedent("""
    import os, sys
    from authd.store import sqlcore
    from authd.zonefiles.seed import seed_dir
    real = sqlcore.SQLCore._journal

    def crash(self, *args, **kwargs):  # the sets are written, the transaction not committed
        if len(args) > 8:  # the import passes its encodings: the create_zone before does not
            os._exit(17)
        return real(self, *args, **kwargs)

    sqlcore.SQLCore._journal = crash
    target = sys.argv[1]
    if target.startswith("postgresql://"):
        from authd.store.pgstore import PostgresStore
        store = PostgresStore(target)
    else:
        from authd.store.sqlstore import SQLiteStore
        store = SQLiteStore(target)
    seed_dir(store, sys.argv[2])
    print("not reached")
""")


def test_a_crash_mid_seed_leaves_no_half_seeded_zone(make, tmp_path):
    """The seeding process dies (os._exit) after writing every set of the import, before
    COMMIT. Nothing of it is kept, not even the zone (it is created in the import's own
    transaction, so no node ever serves it holding only its apex); the next start creates
    and imports it again, to the state a clean seed gives."""
    zdir = tmp_path / "zones"
    zdir.mkdir()
    (zdir / "g.test.zone").write_text(generated(400))
    store = make("crash")
    target = str(store.path) if isinstance(store, SQLiteStore) else store.dsn
    store.close()
    child = subprocess.run([sys.executable, "-c", CHILD, target, str(zdir)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.returncode == 17, child.stderr
    again = make("crash") if isinstance(store, SQLiteStore) else type(store)(store.dsn)
    with pytest.raises(NoSuchHostedZone):
        again.find_zone_by_name("g.test.")
    assert all(e.zone_name != "g.test." for e in again.journal_since(0))  # nor its creation
    line = seed_dir(again, zdir)[0]
    assert "created from" in line
    z = again.find_zone_by_name("g.test.")
    clean = make("clean")
    seed_dir(clean, zdir)
    got, want = state(again, z.id), state(clean, z.id)
    assert got[:3] == want[:3]  # sets, serial, count (the journal also has the first SOA/NS)
    assert "the same bytes" in seed_dir(again, zdir)[0]
    again.close()


def test_an_import_in_chunks_writes_the_rows_and_journal_of_one_in_a_piece(tmp_path, monkeypatch):
    """`import_sets` encodes and inserts `IMPORT_CHUNK` sets at a time: the rrsets rows and
    the journal row's text (an entry of at most `JOURNAL_PART` puts, in one row) are byte for
    byte those of an import in one piece. Bigger entries are kept in parts, one per chunk:
    tests/test_store_journal_parts.py."""
    zone = parse_master(generated(300), "g.test.zone", "g.test.")

    def rows(chunk: int, name: str) -> tuple[list, list]:
        monkeypatch.setattr(SQLCore, "IMPORT_CHUNK", chunk)
        store = SQLiteStore(tmp_path / f"{name}.sqlite3", clock=lambda: 1.0)
        seed_store(store, [zone])
        got = (store._conn.execute("SELECT * FROM rrsets ORDER BY zone_id, name, rtype, set_id").fetchall(),
               store._conn.execute("SELECT * FROM journal ORDER BY seq").fetchall())
        store.close()
        return got

    whole, chunked = rows(1 << 20, "whole"), rows(7, "chunked")
    assert len(whole[0]) == len(zone.record_sets)
    assert chunked == whole
