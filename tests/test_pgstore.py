"""PostgresStore beyond the shared contract: many writers at once on one database.

Each "node" here is its own PostgresStore (its own connection), as separate authd processes
would be. Conflicting batches must have exactly one winner; the journal must never show a
follower seq N+1 before N; losing the database is a clear error, and the store reconnects.
"""

from __future__ import annotations

import threading

import pytest

from authd.model.records import RecordSet
from authd.store.contract import Action, Change, InvalidChangeBatch

pgstore = pytest.importorskip("authd.store.pgstore")

PAIRS = 50


def TXT(name: str, value: str) -> RecordSet:
    return RecordSet(name, "TXT", 60, (f'"{value}"',))


def _race(fns):
    """Run the callables at the same moment; their results (or exceptions)."""
    barrier = threading.Barrier(len(fns))
    out: list[object] = [None] * len(fns)

    def run(i, fn):
        barrier.wait()
        try:
            out[i] = fn()
        except Exception as exc:  # the loser's InvalidChangeBatch is a result here
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_conflicting_batches_from_two_nodes_have_one_winner(pg_url):
    """The enactor's lock preamble (DELETE the exact value, CREATE a new one), sent by two
    nodes at once: the zone row lock makes the second see the first's lock value."""
    a, b = pgstore.PostgresStore(pg_url), pgstore.PostgresStore(pg_url)
    try:
        zone, _ = a.create_zone("race.test", "r")
        lock = "_lock.race.test."
        a.change_batch(zone.id, [Change(Action.CREATE, TXT(lock, "v0"))])
        held = "v0"
        wins = {"a": 0, "b": 0}
        for i in range(PAIRS):
            def take(store, who, i=i, held=held):
                return store.change_batch(zone.id, [
                    Change(Action.DELETE, TXT(lock, held)),
                    Change(Action.CREATE, TXT(lock, f"{who}{i}")),
                    Change(Action.UPSERT, TXT(f"plan.{who}.race.test.", str(i))),
                ])
            ra, rb = _race([lambda: take(a, "a"), lambda: take(b, "b")])
            winners = [w for w, r in (("a", ra), ("b", rb)) if not isinstance(r, Exception)]
            losers = [r for r in (ra, rb) if isinstance(r, Exception)]
            assert len(winners) == 1, (ra, rb)
            assert isinstance(losers[0], InvalidChangeBatch)
            assert "values provided do not match" in losers[0].messages[0], losers[0].messages
            wins[winners[0]] += 1
            held = f"{winners[0]}{i}"
            [got] = a.get_record_sets(zone.id, lock, "TXT")
            assert got.values == (f'"{held}"',)
        assert wins["a"] + wins["b"] == PAIRS
        serial = a.find_zone(zone.id).serial
        assert serial == 2 + PAIRS  # create, the first lock, then one bump per winner only
    finally:
        a.close()
        b.close()


def test_the_journal_has_no_gaps_while_many_nodes_write(pg_url):
    """Writers on four zones (parallel zone locks) and a follower reading as they go: every
    read continues exactly where the last one ended, so nothing is ever skipped."""
    writers = [pgstore.PostgresStore(pg_url) for _ in range(4)]
    reader = pgstore.PostgresStore(pg_url)
    zones = [w.create_zone(f"z{i}.test", f"r{i}")[0] for i, w in enumerate(writers)]
    start = reader.seq
    per_writer = 40
    done = threading.Event()
    seen: list[int] = []

    def follow():
        pos = start
        while True:
            finished = done.is_set()
            entries = reader.journal_since(pos)
            for e in entries:
                assert e.seq == pos + 1, f"follower at {pos} was shown {e.seq}"
                pos = e.seq
                seen.append(e.seq)
            if finished and not entries:
                return

    def write(store, zone):
        for n in range(per_writer):
            store.change_batch(zone.id, [Change(Action.CREATE, TXT(f"n{n}.{zone.name}", "x"))])

    follower = threading.Thread(target=follow)
    follower.start()
    threads = [threading.Thread(target=write, args=(w, z)) for w, z in zip(writers, zones, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    follower.join(60)
    assert seen == list(range(start + 1, start + 1 + 4 * per_writer))
    for s in (*writers, reader):
        s.close()


def test_losing_the_database_is_a_clear_error_and_the_store_reconnects(pg_cluster):
    url = pg_cluster.new_database()
    store = pgstore.PostgresStore(url)
    zone, _ = store.create_zone("gone.test", "r")
    pg_cluster.stop("immediate")
    try:
        with pytest.raises(pgstore.StoreUnavailable, match="PostgreSQL"):
            store.change_batch(zone.id, [Change(Action.CREATE, TXT("a.gone.test.", "1"))])
    finally:
        pg_cluster.start()
    info = store.change_batch(zone.id, [Change(Action.CREATE, TXT("a.gone.test.", "1"))])
    assert store.get_change(info.id).seq == info.seq == store.seq
    store.close()


def test_node_registry_rows_forget_and_reregistering(pg_url):
    from authd.store.nodes import NodeState, state_of
    from authd.store.pgnodes import NodeRegistry

    pgstore.PostgresStore(pg_url).close()  # the schema
    reg = NodeRegistry(pg_url)
    try:
        reg.register("node-1", "198.18.0.11:53", "http://198.18.0.11:8053", 5)
        [row] = reg.rows()
        assert (row.name, row.dns, row.seq) == ("node-1", "198.18.0.11:53", 5)
        assert 0 <= row.age < 5 and state_of(row, 10.0) is NodeState.LIVE
        reg.heartbeat("node-1", 9, announce=True)
        assert reg.rows()[0].seq == 9
        assert reg.forget("node-1") and reg.rows() == [] and not reg.forget("node-1")
        reg.heartbeat("node-1", 10, announce=False)  # still running: it registers again
        [row] = reg.rows()
        assert (row.seq, row.control) == (10, "http://198.18.0.11:8053")
    finally:
        reg.close()


def test_connections_insist_on_synchronous_commit(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:  # a server configured to weaken it
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET synchronous_commit = off')
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
    store = pgstore.PostgresStore(pg_url)
    try:
        assert store._read(lambda c: c.execute("SHOW synchronous_commit").fetchone()[0]) == "on"
    finally:
        store.close()
