"""`authd.node`: the cyclic collector and the metrics fold wait while a change batch is in
flight, so neither adds to its INSYNC time (issue 12)."""

from __future__ import annotations

import gc

import trio

from authd import gcpause, node


async def test_the_collector_runs_after_the_batch_in_flight(autojump_clock, monkeypatch):
    calls: list[object] = []
    monkeypatch.setattr(gc, "get_count", lambda: (10_000, 0, 0))
    monkeypatch.setattr(gc, "collect", lambda generation=2: calls.append(generation) or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    in_flight = [True]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node._collect_between_batches, lambda: in_flight[0])
        await trio.sleep(3.5)  # three ticks due, all waiting for the batch
        assert calls == []
        in_flight[0] = False
        await trio.sleep(0.1)
        assert calls == [1]  # the young and middle generations; nothing frozen
        await trio.sleep(1.0)
        assert calls == [1, 1]  # and once a second after that
        await trio.sleep(gcpause.FULL_EVERY - 2)
        # every FULL_EVERY-th collection is a full one: a cycle that died old is freed too,
        # and what survives it is frozen
        assert calls == [1] * (gcpause.FULL_EVERY - 1) + [2, "freeze"]
        nursery.cancel_scope.cancel()


async def test_nothing_new_nothing_collected(autojump_clock, monkeypatch):
    calls: list[object] = []
    monkeypatch.setattr(gc, "get_count", lambda: (3, 0, 0))
    monkeypatch.setattr(gc, "collect", lambda generation=2: calls.append(generation) or 0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node._collect_between_batches, lambda: False)
        await trio.sleep(5.5)
        nursery.cancel_scope.cancel()
    assert calls == []


class _Tally:
    def __init__(self) -> None:
        self.slices = 0
        self.held = False

    def hold(self) -> None:
        self.held = True

    def fold(self, limit: int, hold: bool = True) -> bool:
        assert not hold and self.held  # held once per round, then sliced
        self.slices += 1
        return self.slices >= 3  # done after three slices


class _Metrics:
    def __init__(self) -> None:
        self.tally = _Tally()


async def test_the_fold_waits_for_the_batch_in_flight(autojump_clock):
    metrics = _Metrics()
    in_flight = [True]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node._fold_every_second, metrics, lambda: in_flight[0])
        await trio.sleep(2.5)
        assert metrics.tally.slices == 0
        in_flight[0] = False
        await trio.sleep(0.1)
        assert metrics.tally.slices == 3
        nursery.cancel_scope.cancel()


async def test_the_collector_runs_right_after_a_batch_is_answered(autojump_clock, monkeypatch):
    """Not at its own once-a-second tick, whose phase is random against the requests: right
    after a batch's response is sent, before the next batch is likely to come."""
    calls: list[float] = []
    monkeypatch.setattr(gc, "get_count", lambda: (10_000, 0, 0))
    monkeypatch.setattr(gc, "collect", lambda generation=2: calls.append(trio.current_time()) or 0)
    answered = [trio.Event()]

    async def wait_answered() -> None:
        await answered[0].wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(node._collect_between_batches, lambda: False, 1.0, wait_answered)
        await trio.sleep(0.3)
        start = trio.current_time()
        answered[0].set()
        answered[0] = trio.Event()
        await trio.sleep(0.01)
        assert calls == [start]  # at once, not at the next second
        await trio.sleep(1.5)
        assert len(calls) == 2  # and the tick still comes when no batch does
        nursery.cancel_scope.cancel()


async def test_batches_faster_than_the_tick_do_not_bring_full_collections_sooner(autojump_clock, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(gc, "get_count", lambda: (10_000, 0, 0))
    monkeypatch.setattr(gc, "collect", lambda generation=2: calls.append(generation) or 0)
    answered = [trio.Event()]

    async def wait_answered() -> None:
        await answered[0].wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(node._collect_between_batches, lambda: False, 1.0, wait_answered)
        for _ in range(5 * gcpause.FULL_EVERY):  # five batches a second, for FULL_EVERY seconds
            await trio.sleep(0.2)
            answered[0].set()
            answered[0] = trio.Event()
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert len(calls) >= 5 * gcpause.FULL_EVERY  # a young collection after each batch
    assert calls.count(2) == 1  # but one full one in FULL_EVERY seconds, as with the tick alone


async def test_what_survives_a_full_collection_is_frozen_and_a_young_one_freezes_nothing(
        autojump_clock, monkeypatch):
    """A full collection's survivors are frozen (the next full one would walk every set the
    batches changed again, 351 ms on the 1M-name zone after 200 batches); a young one's are
    not (what is in flight at a tick may die in a cycle later)."""
    calls: list[object] = []
    monkeypatch.setattr(gc, "get_count", lambda: (10_000, 0, 0))
    monkeypatch.setattr(gc, "collect", lambda generation=2: calls.append(generation) or 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node._collect_between_batches, lambda: False, 1.0)
        await trio.sleep(2 * gcpause.FULL_EVERY + 0.5)
        nursery.cancel_scope.cancel()
    assert calls.count(2) == 2 and calls.count("freeze") == 2
    assert all(calls[i + 1] == "freeze" for i, c in enumerate(calls) if c == 2)  # right after each full one
    assert all(calls[i - 1] == 2 for i, c in enumerate(calls) if c == "freeze")  # and only then
