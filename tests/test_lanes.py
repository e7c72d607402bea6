"""The lanes machine (enactor.lanes.core), pure: fast lane never queued behind the slow lane, a failed
check halts the slow rollout, the bake time and the rate limit are honoured, the newest intent
wins, and the synthetic heartbeat finds a broken fast path within one period."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enactor.lanes import core as ln
from enactor.lanes.core import Edit, Lane, LaneConfig, Lanes, Target
from enactor.planner import default_capacity

CAP = default_capacity()
DUAL = CAP[0].name


def make(n_targets: int = 2, **cfg: object) -> Lanes:
    targets = [(Target(f"cell-{i}", tuple(e.name for e in CAP), f"cells/cell-{i}/plans"), 1, CAP)
               for i in range(1, n_targets + 1)]
    return Lanes(LaneConfig(**cfg), targets)  # type: ignore[arg-type]


def writes(actions: list[ln.LaneAction], lane: Lane | None = None) -> list[ln.WritePlan]:
    return [a for a in actions if isinstance(a, ln.WritePlan) and (lane is None or a.lane is lane)]


def weight(plan_or_cap: object, lb: str, endpoint: str = DUAL) -> int:
    cap = plan_or_cap.endpoints if hasattr(plan_or_cap, "endpoints") else plan_or_cap  # type: ignore[attr-defined]
    ep = next(e for e in cap if e.name == endpoint)
    return next(x.weight for x in ep.load_balancers if x.name == lb)


@dataclass
class World:
    """Enactors and a checker, simulated: plans are delivered when the test says so."""

    lanes: Lanes
    now: float = 0.0
    log: list[tuple[float, ln.LaneAction]] = field(default_factory=list)
    written: dict[str, list[ln.WritePlan]] = field(default_factory=dict)
    checks: list[ln.RunCheck] = field(default_factory=list)
    check_ok_at: list[tuple[float, str]] = field(default_factory=list)
    halted_at: float | None = None

    def feed(self, actions: list[ln.LaneAction]) -> list[ln.LaneAction]:
        for a in actions:
            self.log.append((self.now, a))
            if isinstance(a, ln.WritePlan):
                self.written.setdefault(a.target, []).append(a)
            elif isinstance(a, ln.RunCheck):
                self.checks.append(a)
            elif isinstance(a, ln.Alarm) and a.kind == "slow-halted" and a.on:
                self.halted_at = self.now
        return actions

    def deliver(self, target: str) -> list[ln.LaneAction]:
        plans = self.written.get(target)
        if not plans:
            return []
        newest = plans[-1].plan
        hb = next((e for e in newest.endpoints if e.name.startswith("heartbeat.")), None)
        seq = ln.heartbeat_seq(hb.load_balancers[0].ipv4) if hb else None
        return self.feed(self.lanes.delivered(self.now, target, newest.number, seq))

    def answer_check(self, ok: bool) -> list[ln.LaneAction]:
        if not self.checks:
            return []
        c = self.checks.pop(0)
        if ok:
            self.check_ok_at.append((self.now, c.target))
        return self.feed(self.lanes.check_result(self.now, c.target, c.number,
                                                 () if ok else ("resolves: empty",)))


edit_st = st.builds(Edit, st.sampled_from(["az1", "az2", "az1-lb1", "az1-lb2", "az3-lb1"]),
                    st.integers(0, 255), st.sampled_from([None, DUAL]))
event_st = st.one_of(
    st.tuples(st.just("slow"), st.lists(edit_st, min_size=1, max_size=3)),
    st.tuples(st.just("fast"), st.lists(edit_st, min_size=1, max_size=2)),
    st.tuples(st.just("advance"), st.floats(0.1, 40.0)),
    st.tuples(st.just("advance"), st.floats(0.1, 40.0)),
    st.tuples(st.just("deliver"), st.integers(0, 2)),
    st.tuples(st.just("check"), st.sampled_from([True, True, True, False])),
    st.tuples(st.just("settle"), st.just(True)),  # every target delivered, every check passed
    st.tuples(st.just("settle"), st.just(True)),
)


def run(world: World, events: list[tuple[str, object]]) -> None:
    lanes = world.lanes
    world.feed(lanes.start(world.now))
    for kind, arg in events:
        if kind == "slow":
            world.feed(lanes.change(world.now, Lane.SLOW, arg)[1])  # type: ignore[arg-type]
        elif kind == "fast":
            before = {t.target.name: t.capacity for t in lanes.targets}
            _, acts = lanes.change(world.now, Lane.FAST, arg)  # type: ignore[arg-type]
            world.feed(acts)
            fast = {w.target for w in writes(acts, Lane.FAST)}
            for t in lanes.targets:
                # Never delayed by the slow lane: written in this very event, or it was a no-op.
                assert t.target.name in fast or t.capacity == before[t.target.name]
                for ed in arg:  # type: ignore[attr-defined]
                    for e in ln.real_endpoints(t.capacity):
                        for lb in e.load_balancers:
                            if ed.matches(e.name, lb) and ed is arg[-1]:  # type: ignore[index]
                                assert lb.weight == ed.weight
        elif kind == "advance":
            world.now += float(arg)  # type: ignore[arg-type]
            world.feed(lanes.tick(world.now))
        elif kind == "deliver":
            names = [t.target.name for t in lanes.targets]
            world.deliver(names[int(arg) % len(names)])  # type: ignore[call-overload]
        elif kind == "check":
            world.answer_check(bool(arg))
        elif kind == "settle":
            for t in lanes.targets:
                world.deliver(t.target.name)
            while world.checks:
                world.answer_check(True)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3), st.lists(event_st, min_size=30, max_size=80))
def test_the_fast_lane_is_never_queued_behind_the_slow_lane(n_targets: int, events: list[tuple[str, object]]) -> None:
    """Whatever the slow backlog, halts and steps in flight: a fast change is written to every
    target it changes in the very event that submits it (`run` asserts it at each one), so the
    only wait left is the enactors finishing the plan they hold (one in-flight step)."""
    world = World(make(n_targets, batch_max=1, window=50.0, gather=3.0, bake=30.0))
    run(world, events)
    # ... and each fast plan carries that change alone (never a slow batch riding along).
    for _, a in world.log:
        if isinstance(a, ln.WritePlan) and a.lane is Lane.FAST:
            assert len(a.changes) == 1


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 3), st.lists(event_st, min_size=30, max_size=80))
def test_the_slow_lane_honours_halt_bake_and_rate_limit(n_targets: int, events: list[tuple[str, object]]) -> None:
    cfg = {"batch_max": 2, "window": 30.0, "gather": 3.0, "bake": 20.0, "period": 60.0,
           "step_timeout": 100.0}
    world = World(make(n_targets, **cfg))  # type: ignore[arg-type]
    run(world, events)
    slow = [(t, a) for t, a in world.log if isinstance(a, ln.WritePlan) and a.lane is Lane.SLOW]
    # A failed check (or a step timeout) halts: nothing further is rolled out by the slow lane.
    if world.halted_at is not None:
        assert all(t <= world.halted_at for t, _ in slow)
    # Batches: at most batch_max changes after coalescing; starts at least `window` apart.
    starts: dict[tuple[int, ...], float] = {}
    for t, a in slow:
        starts.setdefault(a.changes, t)
    by_id = {c.id: c for _, a in slow for c in world.lanes.queue}  # queued ones are not in batches
    assert not set(by_id) & {i for _, a in slow for i in a.changes}
    # Done once per change, and only for changes that went out (or had nothing to change).
    done = [i for _, a in world.log if isinstance(a, ln.Done) for i in a.changes]
    assert len(done) == len(set(done))
    written = {i for _, a in world.log if isinstance(a, ln.WritePlan) for i in a.changes}
    assert set(done) <= written | {i for _, a in world.log if isinstance(a, ln.Log)
                                   for i in map(int, re.findall(r"#(\d+)", a.text))
                                   if "nothing to change" in a.text or "slow batch" in a.text}
    times = sorted(starts.values())
    assert all(b - a >= cfg["window"] for a, b in zip(times, times[1:], strict=False))
    # The bake: the next target's write comes at least `bake` after the previous target passed
    # its check (which itself came after that target's write).
    for changes in starts:
        steps = [(t, a.target) for t, a in slow if a.changes == changes]
        for (t1, tgt1), (t2, _tgt2) in zip(steps, steps[1:], strict=False):
            oks = [t for t, tg in world.check_ok_at if tg == tgt1 and t1 <= t <= t2]
            assert oks, f"{changes}: target after {tgt1} written without a passed check"
            assert t2 - oks[0] >= cfg["bake"] - 1e-9


def test_coalescing_and_rate_limit() -> None:
    lanes = make(1, batch_max=2, window=60.0, bake=0.0, gather=5.0, heartbeat=False)
    w = World(lanes)
    w.feed(lanes.start(0.0))
    for i in range(5):  # three to the dual endpoint (coalesce into one), two others
        w.feed(lanes.change(0.0, Lane.SLOW, [Edit("az1-lb1", 100 + i, DUAL)])[1])
    w.feed(lanes.change(0.0, Lane.SLOW, [Edit("az2", 7)])[1])
    w.feed(lanes.change(0.0, Lane.SLOW, [Edit("az3-lb1", 9, CAP[1].name)])[1])
    assert not writes([a for _, a in w.log])  # gathering
    w.now = 5.0
    first = writes(w.feed(lanes.tick(5.0)), Lane.SLOW)
    assert len(first) == 1 and first[0].changes == (1, 2, 3, 4, 5, 6)  # 2 scopes: dual and "*"
    assert weight(first[0].plan, "az1-lb1") == 104 and weight(first[0].plan, "az2-lb1") == 7
    assert len(lanes.queue) == 1  # the legacy endpoint's change waits for the next window
    w.deliver("cell-1")
    w.answer_check(True)
    w.now = 64.0
    assert not writes(w.feed(lanes.tick(64.0)), Lane.SLOW)
    w.now = 65.0
    second = writes(w.feed(lanes.tick(65.0)), Lane.SLOW)
    assert [x.changes for x in second] == [(7,)]


def test_fast_lane_skips_a_busy_slow_lane_and_the_newest_intent_wins() -> None:
    lanes = make(3, batch_max=1, window=1000.0, bake=500.0, heartbeat=False)
    w = World(lanes)
    w.feed(lanes.start(0.0))
    for i in range(20):
        w.feed(lanes.change(0.0, Lane.SLOW, [Edit("az1-lb1", 200, f"x{i}.api.aws.")])[1])
    w.feed(lanes.change(0.0, Lane.SLOW, [Edit("az1-lb1", 123, DUAL)])[1])  # queued, older
    _, acts = lanes.change(1.0, Lane.FAST, [Edit("az1", 0)], "drain az1")
    fast = writes(acts, Lane.FAST)
    assert [x.target for x in fast] == ["cell-1", "cell-2", "cell-3"]
    assert all(weight(x.plan, "az1-lb1") == 0 and weight(x.plan, "az1-lb2") == 0 for x in fast)
    # Much later, the older slow change to az1-lb1 comes up: it must not undo the drain.
    for t in lanes.targets:
        assert weight(t.capacity, "az1-lb1") == 0
    lanes.queue = [c for c in lanes.queue if c.edits[0].endpoint == DUAL]
    lanes.last_batch_start = None
    lanes.rollout = None
    later = writes(lanes.tick(5000.0), Lane.SLOW)
    assert not later or all(weight(x.plan, "az1-lb1") == 0 for x in later)
    assert weight(lanes.capacity("cell-1"), "az1-lb1") == 0


def test_a_failed_check_halts_until_resume_and_the_step_is_checked_again() -> None:
    lanes = make(2, batch_max=5, window=0.0, gather=0.0, bake=10.0, heartbeat=False)
    w = World(lanes)
    w.feed(lanes.start(0.0))
    w.feed(lanes.change(0.0, Lane.SLOW, [Edit("az2", 50)])[1])
    w.deliver("cell-1")
    acts = w.answer_check(False)
    assert any(isinstance(a, ln.Alarm) and a.kind == "slow-halted" and a.on for a in acts)
    w.feed(lanes.change(1.0, Lane.SLOW, [Edit("az3", 60)])[1])
    w.now = 1000.0
    assert not writes(w.feed(lanes.tick(1000.0)))
    assert "cell-2" not in w.written
    acts = w.feed(lanes.resume(1000.0))
    assert [type(a) for a in acts] == [ln.Alarm, ln.RunCheck]
    w.answer_check(True)
    w.now = 1009.0
    assert not writes(w.feed(lanes.tick(1009.0)))  # baking
    w.now = 1010.0
    out = writes(w.feed(lanes.tick(1010.0)), Lane.SLOW)
    assert [x.target for x in out] == ["cell-2"]


def test_a_slow_step_not_delivered_halts() -> None:
    lanes = make(1, step_timeout=30.0, gather=0.0, heartbeat=False)
    lanes.start(0.0)
    lanes.change(0.0, Lane.SLOW, [Edit("az2", 50)])
    assert lanes.halted is None
    acts = lanes.tick(31.0)
    assert lanes.halted and "not delivered" in lanes.halted
    assert any(isinstance(a, ln.Alarm) and a.on for a in acts)


def test_fast_and_slow_write_the_same_way() -> None:
    """No side door: the only write either lane makes is a plan for the target's own store."""
    lanes = make(2, window=0.0, gather=0.0, bake=0.0)
    acts = lanes.start(0.0) + lanes.change(0.0, Lane.FAST, [Edit("az1", 0)])[1] + \
        lanes.change(0.0, Lane.SLOW, [Edit("az2", 3)])[1]
    kinds = {type(a) for a in acts}
    assert kinds <= {ln.WritePlan, ln.Log, ln.RunCheck, ln.Delivered, ln.Alarm, ln.Done}
    numbers = [(a.target, a.plan.number) for a in acts if isinstance(a, ln.WritePlan)]
    for t in ("cell-1", "cell-2"):
        ns = [n for tg, n in numbers if tg == t]
        assert ns == list(range(2, 2 + len(ns)))  # one sequence of plans per target, both lanes


@settings(max_examples=100, deadline=None)
@given(st.floats(0.0, 300.0), st.floats(5.0, 120.0))
def test_heartbeat_reports_a_broken_fast_path_within_one_period(broken_at: float, period: float) -> None:
    lanes = make(2, period=period)
    w = World(lanes)
    w.feed(lanes.start(0.0))
    alarm_at = None
    while w.now < broken_at + 3 * period:
        w.now = round(w.now + 0.25, 2)
        acts = w.feed(lanes.tick(w.now))
        if any(isinstance(a, ln.Alarm) and a.kind == "fast-path" and a.on for a in acts):
            alarm_at = w.now
            break
        if w.now < broken_at:  # the fast path works: every plan is delivered at once
            for t in ("cell-1", "cell-2"):
                w.deliver(t)
    assert alarm_at is not None and alarm_at >= broken_at
    assert alarm_at - broken_at <= period + 0.25  # within one period (tick granularity)


def test_heartbeat_is_delivered_only_when_dns_shows_it() -> None:
    lanes = make(1, period=10.0)
    acts = lanes.start(0.0)
    plan = writes(acts)[0].plan
    hb = plan.endpoints[-1]
    assert hb.name == "heartbeat.api.aws." and ln.heartbeat_seq(hb.load_balancers[0].ipv4) == 1
    assert [e.endpoints for e in [plan]] and plan.endpoints[:-1] == CAP  # the real ones re-asserted
    assert not [a for a in lanes.delivered(1.0, "cell-1", plan.number, None) if isinstance(a, ln.Delivered)]
    got = lanes.delivered(1.0, "cell-1", plan.number, 1)
    assert [a.heartbeat for a in got if isinstance(a, ln.Delivered)] == [True]
    lanes.tick(5.0)  # the next heartbeat
    lanes.tick(11.0)
    assert lanes.fast_alarm  # heartbeat 2 was never seen


def test_heartbeat_addresses_round_trip() -> None:
    for seq in (0, 1, 255, 256, 131071, 131072 + 5):
        assert ln.heartbeat_seq(ln.heartbeat_address(seq)) == seq % 131072
    assert ln.heartbeat_seq("192.0.2.1") is None
    assert ln.seq_reached(3, 2) and ln.seq_reached(2, 2) and not ln.seq_reached(1, 2)
    assert ln.seq_reached(1, 131071)  # across the wrap


def test_bad_config_and_edits_are_refused() -> None:
    with pytest.raises(ValueError, match="weight must be 0..255"):
        Edit("az1", 300)
    with pytest.raises(ValueError, match="batch_max"):
        LaneConfig(batch_max=0)
    with pytest.raises(ValueError, match="unique"):
        Lanes(LaneConfig(), [(Target("a", (), "p"), 1, CAP), (Target("a", (), "q"), 1, CAP)])


def test_the_core_is_pure() -> None:
    tree = ast.parse(Path(ln.__file__).read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not mods & {"trio", "socket", "time", "subprocess", "os"}


def test_done_comes_once_a_change_is_delivered_everywhere() -> None:
    lanes = make(2, heartbeat=False, gather=0.0, window=0.0, bake=0.0)
    w = World(lanes)
    w.feed(lanes.start(0.0))
    cid, acts = lanes.change(0.0, Lane.FAST, [Edit("az1", 0)])
    w.feed(acts)
    assert not [a for a in w.deliver("cell-1") if isinstance(a, ln.Done)]
    assert [a.changes for a in w.deliver("cell-2") if isinstance(a, ln.Done)] == [(cid,)]
    sid, acts = lanes.change(1.0, Lane.SLOW, [Edit("az2", 9)])
    w.feed(acts)
    w.now = 1.0
    dones: list[tuple[int, ...]] = []
    for _ in range(4):
        for t in ("cell-1", "cell-2"):
            dones += [a.changes for a in w.deliver(t) if isinstance(a, ln.Done)]
        while w.checks:
            dones += [a.changes for a in w.answer_check(True) if isinstance(a, ln.Done)]
        w.now += 1.0
        dones += [a.changes for a in w.feed(lanes.tick(w.now)) if isinstance(a, ln.Done)]
    assert dones == [(sid,)]


def test_a_real_fast_change_stands_in_for_the_next_heartbeat() -> None:
    lanes = make(1, period=20.0)
    assert len(writes(lanes.start(0.0))) == 1  # heartbeat 1; the next is due at 10
    lanes.delivered(1.0, "cell-1", 2, 1)
    lanes.change(8.0, Lane.FAST, [Edit("az1", 0)])
    assert not writes(lanes.tick(10.0))  # the drain at 8 exercised the path: next due at 18
    assert [w.why for w in writes(lanes.tick(18.0))] == ["heartbeat"]
    # ...and it is held to the same deadline: never delivered, it raises the alarm.
    lanes2 = make(1, period=20.0)
    lanes2.start(0.0)
    lanes2.delivered(1.0, "cell-1", 2, 1)
    lanes2.change(8.0, Lane.FAST, [Edit("az1", 0)])
    assert any(isinstance(a, ln.Alarm) and "change #" in a.text for a in lanes2.tick(18.0))
