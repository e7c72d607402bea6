"""Ctrl-C while a NEW store is seeded from a big zone file exits at once and cleanly (the
mission: "Ctrl-C exits cleanly, with no traceback"; "a crash never leaves a half-applied
batch"): the import is interrupted or abandoned, the store keeps nothing of it, and the next
start seeds the whole zone. `authd.node._in_thread` is tested on its own first, with a fake
store whose `interrupt` the blocked call listens to."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio

from authd import node
from bench.scale import ORIGIN, generate_zone
from tests.serve_helpers import Served


class FakeStore:
    """A store whose `interrupt` ends the blocked call (as sqlite3_interrupt ends a statement)."""

    def __init__(self, obeys: bool = True):
        self.interrupted = threading.Event()
        self.release = threading.Event()
        self.obeys = obeys
        self.closed = 0

    def interrupt(self) -> None:
        self.interrupted.set()
        if self.obeys:
            self.release.set()

    def blocked_import(self) -> str:
        assert self.release.wait(30)
        if self.obeys:
            raise sqlite3.OperationalError("interrupted")
        return "done"

    def close(self) -> None:
        self.closed += 1


async def test_a_cancelled_call_interrupts_the_store_and_returns_once_it_has():
    store, unwinding = FakeStore(), []
    with trio.move_on_after(0.2) as scope:  # the stop
        await node._in_thread(store.blocked_import, store=store, unwinding=unwinding, grace=30)
    assert scope.cancelled_caught and store.interrupted.is_set()
    assert unwinding == []  # the thread returned inside the grace: the store may be closed
    node._close_unless_unwinding(store, unwinding)
    assert store.closed == 1


async def test_a_call_that_does_not_stop_is_abandoned_after_the_grace(autojump_clock):
    store, unwinding = FakeStore(obeys=False), []
    with trio.move_on_after(1) as scope:
        await node._in_thread(store.blocked_import, store=store, unwinding=unwinding, grace=0.5)
    assert scope.cancelled_caught and store.interrupted.is_set()
    assert len(unwinding) == 1 and not unwinding[0].is_set()
    node._close_unless_unwinding(store, unwinding)
    assert store.closed == 0  # not closed under a thread that is still using it
    store.release.set()
    # the abandoned thread still says when it is done; no trio deadline around the wait: the
    # autojump clock would jump to it before the released thread reports back (it did under
    # load), so pytest's timeout bounds it instead
    await unwinding[0].wait()


async def test_an_uncancelled_call_returns_its_result():
    store = FakeStore(obeys=False)
    store.release.set()
    assert await node._in_thread(store.blocked_import, store=store, unwinding=[]) == "done"
    assert not store.interrupted.is_set()


@pytest.mark.realtime
def test_sigint_during_a_new_stores_import_exits_at_once_and_keeps_nothing_of_it(tmp_path: Path) -> None:
    names = 200_000
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / f"{ORIGIN.rstrip('.')}.zone").write_text(generate_zone(names))
    db = tmp_path / "s.sqlite3"
    argv = ["--zones", str(zones), "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--store", str(db)]
    with Served(argv, tmp_path) as first:
        first.wait_for("answering from the zone files while the store is seeded")  # the import runs
        code, took = first.stop()
    text = "\n".join(first.lines)
    assert code == 0 and "Traceback" not in text, text
    stops = [ln for ln in first.lines if ": stopp" in ln]
    assert stops == ["authd: stopping on SIGINT"], first.lines[-3:]  # one line says why
    assert "store seeded" not in text  # it did not wait for the import to finish
    assert took < 5, took  # was the rest of the import (seconds); 0.2-1 s here, 5 s on a busy box
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM zones").fetchone()[0] == 0  # no half import
    assert conn.execute("SELECT COUNT(*) FROM rrsets").fetchone()[0] == 0
    conn.close()
    with Served(argv, tmp_path) as second:  # the next start seeds the whole zone
        second.wait_for("store seeded")
        code, _ = second.stop()
    assert code == 0
    conn = sqlite3.connect(db)
    (count,) = conn.execute("SELECT record_set_count FROM zones WHERE name=?", (ORIGIN,)).fetchone()
    conn.close()
    assert count > names  # every name, its AAAAs and the apex
