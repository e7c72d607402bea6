"""Journal entries too big for one row (a zone import) are kept in `journal_parts` and read
back part by part (`authd.store.sqlcore.PARTS`), on SQLite and PostgreSQL; stores written
before the parts existed still open and read (issue 12)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from authd.model.journal import EntryKind
from authd.model.records import RecordSet
from authd.store.contract import Action, Change, NewZone
from authd.store.sqlcore import PARTS, SQLCore


def A(name: str, value: str = "192.0.2.1") -> RecordSet:
    return RecordSet(name, "A", 60, (value,))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> Iterator[tuple[Any, Callable[[], Any]]]:
    """(a writable store, a function that opens the same database again)."""
    if request.param == "sqlite":
        from authd.store.sqlstore import SQLiteStore

        def reopen() -> Any:
            return SQLiteStore(tmp_path / "authd.db")
    else:
        pgstore = pytest.importorskip("authd.store.pgstore")
        url = request.getfixturevalue("pg_url")

        def reopen() -> Any:
            return pgstore.PostgresStore(url)
    store = reopen()
    yield store, reopen
    store.close()


def _rows(store: Any, sql: str, params: tuple = ()) -> list[Any]:
    return store._read(lambda c: list(c.execute(sql, params).fetchall()))


def test_big_entries_are_kept_in_parts_and_read_back_whole(backend, monkeypatch):
    """An import of more than JOURNAL_PART sets writes one part per chunk as it inserts it,
    a big change batch its puts JOURNAL_PART at a time, a small one a row as before; a
    store that did not write them (no entry in memory) reads each back as it was."""
    store, reopen = backend
    monkeypatch.setattr(SQLCore, "JOURNAL_PART", 5)
    monkeypatch.setattr(SQLCore, "IMPORT_CHUNK", 3)
    sets = [A(f"h{i}.parts.test.", f"192.0.2.{i}") for i in range(20)]
    imported = store.import_sets("Z0PARTS", sets, "import", zone_comment="done",
                                 create=NewZone("parts.test", "ref", "loading"))
    big = store.change_batch("Z0PARTS", [Change(Action.CREATE, A(f"b{i}.parts.test.")) for i in range(12)])
    small = store.change_batch("Z0PARTS", [Change(Action.DELETE, sets[0])])
    written = store.journal_since(0)
    other = reopen()  # nothing in memory: every entry is read from the database
    try:
        again = other.journal_since(0)
        assert [e.seq for e in again] == [e.seq for e in written]
        for mine, theirs in zip(written, again, strict=True):
            assert theirs.puts == mine.puts and theirs.deletes == mine.deletes
            assert (theirs.kind, theirs.serial, theirs.change_id) == (mine.kind, mine.serial, mine.change_id)
        entry = {e.seq: e for e in again}
        assert {rs.key for rs in sets} <= {rs.key for rs in entry[imported.seq].puts}
        assert len(entry[big.seq].puts) == 13  # the 12 creates and the bumped SOA
        assert entry[small.seq].deletes == (sets[0].key,) and entry[small.seq].kind is EntryKind.CHANGE
        # one part per import chunk (20 sets: seven chunks of 3) and one for the apex sets
        assert [r[0] for r in _rows(other, "SELECT part FROM journal_parts WHERE seq=? ORDER BY part",
                                    (imported.seq,))] == list(range(8))
        assert len(_rows(other, "SELECT part FROM journal_parts WHERE seq=?", (big.seq,))) == 3
        puts = dict(_rows(other, "SELECT seq, puts FROM journal"))
        assert puts[imported.seq] == PARTS == puts[big.seq]
        assert puts[small.seq].startswith("[") and not _rows(
            other, "SELECT 1 FROM journal_parts WHERE seq=?", (small.seq,))
        snap = [e for e in other.snapshot() if e.zone_id == "Z0PARTS"][0]
        assert {rs.key for rs in snap.puts} == {rs.key for e in again for rs in e.puts} - {sets[0].key}
    finally:
        other.close()


def test_a_store_written_before_the_parts_opens_and_reads(backend, monkeypatch):
    """A database from before `journal_parts` (every entry's puts in its row, no such
    table) opens: the table is created empty, the old rows read as they were, and the next
    big entry goes to parts beside them."""
    store, reopen = backend
    monkeypatch.setattr(SQLCore, "JOURNAL_PART", 1 << 30)  # what the old code wrote: one row
    sets = [A(f"h{i}.old.test.", f"192.0.2.{i}") for i in range(30)]
    old = store.import_sets("Z0OLD", sets, "import", create=NewZone("old.test", "ref-old"))
    written = store.journal_since(0)
    store._write(lambda c: c.execute("DROP TABLE journal_parts"))
    store.close()
    monkeypatch.setattr(SQLCore, "JOURNAL_PART", 5)
    reopened = reopen()
    try:
        again = reopened.journal_since(0)
        assert [(e.seq, e.puts, e.deletes) for e in again] == [(e.seq, e.puts, e.deletes) for e in written]
        assert {rs.key for rs in sets} <= {rs.key for rs in again[-1].puts}
        assert _rows(reopened, "SELECT COUNT(*) FROM journal_parts")[0][0] == 0
        new = reopened.import_sets("Z0NEW", [A(f"n{i}.new.test.") for i in range(12)], "import",
                                   create=NewZone("new.test", "ref-new"))
        assert _rows(reopened, "SELECT COUNT(*) FROM journal_parts WHERE seq=?", (new.seq,))[0][0] >= 2
        third = reopen()
        try:
            both = {e.seq: e for e in third.journal_since(0)}
            assert both[old.seq].puts == again[-1].puts and len(both[new.seq].puts) == 13  # and the bumped SOA
        finally:
            third.close()
    finally:
        reopened.close()
