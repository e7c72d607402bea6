"""`enactor check --cells N`: a defect in one cell's enactors never empties another cell's names.

Pure core (no sockets, no real clock), over the real code as `enactor.checker.check` is: the real
`enactor.machine` enactors, their actions through the real `enactor.client.perform`, against
one real `authd.store.memstore.MemoryStore` holding every cell's zone (`enactor.cells.layout`). Nothing
here models an enactor; this module only chooses who goes next.

The world: N cells. Cell `defect_cell` runs its enactors with the 2025 defects, every other
cell the fixed design, each cell with its own plan source (its own planner transition) and
its own enactors; one shared virtual clock ("time passes" expires every lock). Every
interleaving of every cell's enactors, planners and the clock is explored breadth-first, with
state hashing (store contents, each enactor's decision-relevant state as `enactor.checker.check`
keys it, each planner's position, the clock), up to the bounds.

Checked in every reachable state and transition:
- ISOLATED: every endpoint name of every cell but the defect cell resolves (A, and AAAA
  when dual-stack) to at least one address;
- CONFINED: every action of a cell's enactor (zone lookup, point read, listing, batch) names
  that cell's own zone, never another's.
And, so the check is not vacuous: how many reachable states have the defect cell's own names
empty, and how many have a crashed enactor there (the 2025 outage happening inside the cell).

Per-cell independence is by construction (disjoint zones, plan sources, lock names); the
search shows that the real code keeps to it under every interleaving within the bounds. The
fixed cells' own safety is `enactor check`'s subject; here their design only makes any
emptiness there attributable to the other cell.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from authd.store.memstore import MemoryStore
from authd.zonefiles.seed import seed_store
from authd.zonefiles.zonefile import parse_route53_json
from enactor import machine as m
from enactor.cells.layout import CellLayout, zone_files
from enactor.checker.check import TICK, _state_key
from enactor.checker.sim import addresses
from enactor.checker.snapshots import StoreSnapshots
from enactor.client import describe_action, perform
from enactor.plan import Plan
from enactor.planner import churn

T0 = 1_760_940_000.0
NAMES = tuple(f"enactor-{c}" for c in "abcd")


@dataclass(frozen=True)
class CellBounds:
    cells: int = 2
    enactors: int = 2  # per cell
    plans: int = 3  # newest plan number per cell (plan 1 active at the start)
    lock_losses: int = 2  # consecutive failures to get the lock, per enactor
    ticks: int = 1  # times virtual time may jump past every lock's expiry
    depth: int = 0  # transitions; 0 = no bound
    defect_cell: int = 1


class _Plans:
    def __init__(self, plans: list[Plan]):
        self.all, self.n = plans, 1

    def latest(self) -> Plan | None:
        return self.all[self.n - 1]


# An enactor: (cell index 0-based, its State, its next action, crashed)
Agent = tuple[int, m.State, m.ActionT | None, bool]


@dataclass
class CellReport:
    bounds: CellBounds
    defects: str
    states: int = 0
    transitions: int = 0
    max_depth: int = 0
    complete: bool = False
    seconds: float = 0.0
    violations: list[dict[str, Any]] = field(default_factory=list)
    defect_cell_empty_states: int = 0
    defect_cell_crashed_states: int = 0
    mode: str = "product"  # product: every behaviour of every cell; race: the recorded race
    race_steps: int = 0
    race_plans: int = 0

    def to_json(self) -> dict[str, Any]:
        b = self.bounds
        bounds: dict[str, Any] = {"enactors_per_cell": b.enactors, "plans_per_cell": b.plans,
                                  "lock_losses": b.lock_losses}
        if self.mode == "race":
            bounds = {"other_cells": {"enactors": b.enactors, "plans": b.plans, "lock_losses": b.lock_losses},
                      "defect_cell": {"enactors": 3, "schedule": f"schedule_2025({self.race_plans}), "
                                      f"{self.race_steps} actions to the first crash"}}
        else:
            bounds.update(ticks=b.ticks, depth=b.depth)
        return {"mode": self.mode, "cells": b.cells, "defect_cell": f"cell-{b.defect_cell}", "defects": self.defects,
                "bounds": bounds,
                "states": self.states, "transitions": self.transitions, "max_depth": self.max_depth,
                "complete": self.complete, "seconds": round(self.seconds, 1),
                "violations": self.violations,
                "defect_cell_empty_states": self.defect_cell_empty_states,
                "defect_cell_crashed_states": self.defect_cell_crashed_states}

    def text(self) -> str:
        b = self.bounds
        if self.mode == "race":
            head = (f"enactor check --cells {b.cells}: cell-{b.defect_cell}'s three enactors replay the 2025 race "
                    f"(schedule_2025({self.race_plans}), {self.race_steps} actions to the first crash, the real "
                    f"machines checked at every action), interleaved in every way with the other cells' fixed "
                    f"enactors: {b.enactors} per cell, plans 1..{b.plans}, lock losses <= {b.lock_losses}")
        else:
            head = (f"enactor check --cells {b.cells} --mode product: cell-{b.defect_cell} with the {self.defects} "
                    f"defects, the others fixed; {b.enactors} enactors per cell, plans 1..{b.plans} per cell, "
                    f"lock losses <= {b.lock_losses}, time jumps <= {b.ticks}"
                    + (f", depth <= {b.depth}" if b.depth else ""))
        done = ("exhaustive within the bounds" if self.complete else
                "stopped at the first violation" if self.violations else
                "STOPPED by the time budget (not exhaustive)")
        lines = [head, f"  {self.states} states, {self.transitions} transitions, depth {self.max_depth}, "
                       f"{self.seconds:.1f} s: {done}"]
        lines.append(f"  defect cell-{b.defect_cell}: its names empty in {self.defect_cell_empty_states} states, "
                     f"an enactor crashed in {self.defect_cell_crashed_states} (the 2025 outage, inside the cell)")
        if self.violations:
            v = self.violations[0]
            lines.append(f"  VIOLATION {v['invariant']}: {v['what']}")
            lines += [f"    {i + 1}. {t}" for i, t in enumerate(v["trace"])]
        else:
            lines.append("  ISOLATED: no other cell's name ever answered empty; CONFINED: no enactor "
                         "touched another cell's zone"
                         + ("; INDEPENDENT: the race saw exactly what it saw alone" if self.mode == "race" else ""))
        return "\n".join(lines)


class CellExplorer:
    def __init__(self, bounds: CellBounds, defects: frozenset[m.Defect]):
        self.b = bounds
        self.layout = CellLayout.make(bounds.cells)
        self.layout.find_cell(bounds.defect_cell)
        if not 1 <= bounds.enactors <= len(NAMES):
            raise ValueError(f"enactors per cell must be 1..{len(NAMES)}")
        self.store = MemoryStore(clock=lambda: T0, keep_journal=False)
        files = zone_files(self.layout, T0 - 3600 + 1)
        zones = [parse_route53_json(json.dumps(files[f"{c.zone}json"]), f"{c.zone}json") for c in self.layout.cells]
        seed_store(self.store, zones)
        self.zone_ids = [self.store.find_zone_by_name(c.zone).id for c in self.layout.cells]
        self.plans = [_Plans([Plan(1, T0 - 3600 + 1, c.capacity())]
                             + [Plan(n, T0 - 3600 + n, churn(c.capacity(), n)) for n in range(2, bounds.plans + 1)])
                      for c in self.layout.cells]
        self.cfgs = [[m.Config(NAMES[i], defects=defects if k + 1 == bounds.defect_cell else frozenset())
                      for i in range(bounds.enactors)] for k in range(bounds.cells)]
        self.snaps = StoreSnapshots(self.store)
        self.empty_memo: dict[int, dict[int, list[str]]] = {}

    def empty_names(self, sid: int) -> dict[int, list[str]]:
        """cell index -> its names (with type) that resolve to no address, in store `sid`."""
        hit = self.empty_memo.get(sid)
        if hit is None:
            self.snaps.at(sid)
            hit = {}
            for k, c in enumerate(self.layout.cells):
                for ep in c.capacity():
                    for t in ep.rtypes:
                        if not addresses(self.store, self.zone_ids[k], ep.name, t):
                            hit.setdefault(k, []).append(f"{ep.name} {t}")
            self.empty_memo[sid] = hit
        return hit

    def confined(self, k: int, action: m.ActionT) -> str | None:
        """Why `action` by a cell-k enactor leaves its cell, or None."""
        zone_id = getattr(action, "zone_id", None)
        if zone_id is not None and zone_id != self.zone_ids[k]:
            return f"zone id {zone_id} is not cell-{k + 1}'s {self.zone_ids[k]}"
        if isinstance(action, m.FindZone) and action.zone != self.layout.cells[k].zone:
            return f"looks up zone {action.zone}, not cell-{k + 1}'s"
        return None

    def act(self, cfg: m.Config, agent: Agent, now: float, planner: int, done: list[m.ActionT]) -> Agent:
        k, st, action, _ = agent
        assert action is not None
        done.append(action)
        if isinstance(action, m.Sleep):
            result: m.ResultT = m.Slept(now)
        else:
            self.plans[k].n = planner
            result = perform(self.store, self.plans[k], action, lambda: now)
        try:
            out = m.step(cfg, st, result)
        except Exception:  # noqa: BLE001 - the 2025 crash is an outcome, recorded in the state
            return (k, st, None, True)
        return (k, out.state, out.action, False)

    def fuse(self, cfg: m.Config, agent: Agent, now: float, planner: int, done: list[m.ActionT]) -> Agent:
        # Sleep and FindZone read nothing another transition writes and write nothing
        # (zones are never created here, time moves only by the clock transition): run them
        # at once, as enactor.checker.check does (`_fuse`).
        for _ in range(50):
            if agent[3] or not isinstance(agent[2], m.Sleep | m.FindZone) or agent[1].phase is m.Phase.FROZEN:
                break
            agent = self.act(cfg, agent, now, planner, done)
        return agent


def explore_cells(bounds: CellBounds, defects: frozenset[m.Defect], budget: float = 0.0,
                  progress: Callable[[str], None] | None = None) -> CellReport:
    ex = CellExplorer(bounds, defects)
    rep = CellReport(bounds, m.defects_text(defects))
    t_start = time.monotonic()
    n_cells, per = bounds.cells, bounds.enactors
    ex.snaps.intern()
    cfg_of = [ex.cfgs[k][i] for k in range(n_cells) for i in range(per)]  # by agent position
    agents0: list[Agent] = []
    for pos, cfg in enumerate(cfg_of):
        out = m.step(cfg, m.initial_state(), None)
        agents0.append(ex.fuse(cfg, (pos // per, out.state, out.action, False), T0, 1, []))
    sid0 = ex.snaps.intern()

    def act_at(pos: int, agent: Agent, now: float, planner: int, done: list[m.ActionT]) -> Agent:
        agent = ex.act(cfg_of[pos], agent, now, planner, done)
        return ex.fuse(cfg_of[pos], agent, now, planner, done)

    def akey(a: Agent) -> Hashable:
        return (a[0], _state_key(a[1]), a[2], a[3])

    Node = tuple[int, tuple[Agent, ...], tuple[int, ...], int, int]  # store, agents, planners, ticks, depth
    root: Node = (sid0, tuple(agents0), (1,) * n_cells, 0, 0)

    def key(n: Node) -> Hashable:
        return (n[0], tuple(akey(a) for a in n[1]), n[2], n[3])

    parent: dict[Hashable, tuple[Hashable | None, str]] = {key(root): (None, "start")}
    queue: deque[Node] = deque([root])
    defect = bounds.defect_cell - 1

    def trace(k: Hashable) -> list[str]:
        out = []
        while k is not None:
            k, what = parent[k]
            out.append(what)
        return list(reversed(out))[1:]

    def violation(inv: str, what: str, k: Hashable, extra: str | None = None) -> None:
        t = trace(k) + ([extra] if extra else [])
        rep.violations.append({"invariant": inv, "what": what, "trace": t})

    last_note = time.monotonic()
    while queue:
        if budget and time.monotonic() - t_start > budget:
            break
        node = queue.popleft()
        sid, agents, planners, ticks, depth = node
        nk = key(node)
        rep.states += 1
        rep.max_depth = max(rep.max_depth, depth)
        empty = ex.empty_names(sid)
        others = {k: v for k, v in empty.items() if k != defect}
        if others:
            k, names = next(iter(others.items()))
            violation("ISOLATED", f"cell-{k + 1}'s {names[0]} answers empty", nk)
            break
        if defect in empty:
            rep.defect_cell_empty_states += 1
        if any(a[3] and a[0] == defect for a in agents):
            rep.defect_cell_crashed_states += 1
        if progress and time.monotonic() - last_note > 5:
            last_note = time.monotonic()
            progress(f"  {rep.states} states, queue {len(queue)}, depth {depth}")
        if bounds.depth and depth >= bounds.depth:
            continue
        now = T0 + ticks * TICK
        succs: list[tuple[Node, str]] = []
        for pos, a in enumerate(agents):
            k, st, action, crashed = a
            if crashed or action is None or st.phase is m.Phase.FROZEN or st.attempt > bounds.lock_losses:
                continue
            why = ex.confined(k, action)
            if why:
                violation("CONFINED", f"cell-{k + 1} {cfg_of[pos].name}: {why}", nk)
                queue.clear()
                break
            ex.snaps.at(sid)
            done: list[m.ActionT] = []
            b = act_at(pos, a, now, planners[k], done)
            bad = next((w for w in (ex.confined(k, d) for d in done) if w), None)
            if bad:
                violation("CONFINED", f"cell-{k + 1} {cfg_of[pos].name}: {bad}", nk)
                queue.clear()
                break
            new_sid = ex.snaps.intern()

            succs.append(((new_sid, agents[:pos] + (b,) + agents[pos + 1:], planners, ticks, depth + 1),
                          f"cell-{k + 1} {cfg_of[pos].name}: {describe_action(action)}"
                          + (" -> CRASHED" if b[3] else "")))
        if rep.violations:
            break
        for k in range(n_cells):
            if planners[k] < bounds.plans:
                ps = planners[:k] + (planners[k] + 1,) + planners[k + 1:]
                succs.append(((sid, agents, ps, ticks, depth + 1), f"cell-{k + 1} planner writes plan {planners[k] + 1}"))
        if ticks < bounds.ticks:
            succs.append(((sid, agents, planners, ticks + 1, depth + 1), f"time passes {TICK:.0f} s"))
        for s, what in succs:
            rep.transitions += 1
            sk = key(s)
            if sk not in parent:
                parent[sk] = (nk, what)
                queue.append(s)
    else:
        rep.complete = not rep.violations
    rep.seconds = time.monotonic() - t_start
    return rep


# --- the 2025 race in one cell, interleaved in every way with another cell's enactors -------


Event = tuple[str, int, m.ActionT | None, m.ResultT | None]  # ("plan", n, ..) | ("act", agent, action, result)


class _StopRecording(Exception):
    pass


def record_race(layout: CellLayout, cell: int, plans: int = 4) -> tuple[list[Event], list[m.Config]]:
    """The scripted 2025 race (`enactor.checker.schedule.schedule_2025`) run in-process in cell `cell`
    alone, recorded action by action up to the first crash: what its enactors do when nothing
    else exists. Returns the events and the three enactors' configs."""
    from enactor.checker.schedule import ScheduleError, run_schedule, schedule_2025
    from enactor.checker.sim import PlanList, Sim, SimDriver
    from enactor.checker.testing import RESTART_DELAY

    c = layout.find_cell(cell)
    store = MemoryStore(clock=lambda: T0, keep_journal=False)
    doc = zone_files(layout, T0 - 3600 + 1)[f"{c.zone}json"]
    seed_store(store, [parse_route53_json(json.dumps(doc), f"{c.zone}json")])
    sched = schedule_2025(plans)
    sim = Sim(store, PlanList([c.first_plan(T0 - 3600 + 1)]), t0=T0, restart_delay=RESTART_DELAY)
    cfgs = [m.Config(n, defects=m.ALL_DEFECTS, lock_ttl=float(sched.extra["lock_ttl"])) for n in sched.actors]
    for cfg in cfgs:
        sim.add(cfg)
    drv = SimDriver(sim, lambda n: Plan(n, T0 - 3600 + n, churn(c.capacity(), n)), [])
    events: list[Event] = []
    index = {cfg.name: i for i, cfg in enumerate(cfgs)}

    def seen(t: float, actor: str, action: m.ActionT, result: m.ResultT, log: list[str]) -> None:
        events.append(("act", index[actor], action, result))
        if sim.actors[actor].crashed is not None:
            raise _StopRecording

    sim.observers.append(seen)
    emit = drv.emit_plan

    def emit_plan() -> int:
        n = emit()
        events.append(("plan", n, None, None))
        return n

    drv.emit_plan = emit_plan  # type: ignore[method-assign]
    drv.sample = lambda note="": None  # type: ignore[assignment,method-assign,misc]
    with contextlib.suppress(_StopRecording, ScheduleError):
        run_schedule(sched, drv)
    if not events or events[-1][0] != "act" or sim.actors[cfgs[events[-1][1]].name].crashed is None:
        raise RuntimeError("the recorded 2025 schedule did not end in a crash")
    return events, cfgs


def _same(a: m.ResultT, b: m.ResultT) -> bool:
    """The same outcome for the enactor (change ids are global counters, so not compared)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, m.RecordsRead):  # the SOA serial is the store's batch counter; no decision reads it
        return ([r for r in a.records if r.rtype != "SOA"]
                == [r for r in b.records if r.rtype != "SOA"])  # type: ignore[attr-defined]
    if isinstance(a, m.BatchRejected):
        return a.messages == b.messages  # type: ignore[attr-defined]
    if isinstance(a, m.PlanRead):
        return (a.plan.number if a.plan else None) == (b.plan.number if b.plan else None)  # type: ignore[attr-defined]
    if isinstance(a, m.ZoneFound):
        return a.zone_id == b.zone_id  # type: ignore[attr-defined]
    return True


def explore_race(bounds: CellBounds, race_plans: int = 4, budget: float = 0.0,
                 progress: Callable[[str], None] | None = None) -> CellReport:
    """Cell `defect_cell` replays its recorded 2025 race (the real machines, checked at every
    step to propose the recorded action and get the recorded result), while every other
    cell's fixed enactors and planner take every possible turn in between."""
    ex = CellExplorer(bounds, frozenset())
    rep = CellReport(bounds, "2025", mode="race", race_plans=race_plans)
    t_start = time.monotonic()
    d = bounds.defect_cell - 1
    events, race_cfgs = record_race(ex.layout, bounds.defect_cell, race_plans)
    bad_cell = ex.layout.cells[d]
    race_source = _Plans([bad_cell.first_plan(T0 - 3600 + 1)]
                         + [Plan(n, T0 - 3600 + n, churn(bad_cell.capacity(), n)) for n in range(2, race_plans + 1)])
    others = [k for k in range(bounds.cells) if k != d]
    cfg_of = [ex.cfgs[k][i] for k in others for i in range(bounds.enactors)]
    cell_of = [k for k in others for _ in range(bounds.enactors)]
    ex.snaps.intern()
    race0 = []
    for cfg in race_cfgs:
        out = m.step(cfg, m.initial_state(), None)
        race0.append((d, out.state, out.action, False))
    other0 = []
    for pos, cfg in enumerate(cfg_of):
        out = m.step(cfg, m.initial_state(), None)
        other0.append(ex.fuse(cfg, (cell_of[pos], out.state, out.action, False), T0, 1, []))
    sid0 = ex.snaps.intern()
    times = [T0] + [e[3].now if e[3] is not None else T0 for e in events]
    for i in range(1, len(times)):
        times[i] = max(times[i], times[i - 1])

    def akey(a: Agent) -> Hashable:
        return (a[0], _state_key(a[1]), a[2], a[3])

    # node: (i, store, race agents, other agents, race planner, other planners)
    root = (0, sid0, tuple(race0), tuple(other0), 1, (1,) * len(others))

    def key(n: Any) -> Hashable:
        return (n[0], n[1], tuple(akey(a) for a in n[2]), tuple(akey(a) for a in n[3]), n[4], n[5])

    parent: dict[Hashable, tuple[Hashable | None, str]] = {key(root): (None, "start")}
    queue: deque[Any] = deque([root])

    def trace(k: Hashable | None) -> list[str]:
        out = []
        while k is not None:
            k, what = parent[k]
            out.append(what)
        return list(reversed(out))[1:]

    def fail(inv: str, what: str, k: Hashable) -> None:
        rep.violations.append({"invariant": inv, "what": what, "trace": trace(k)})

    while queue and not rep.violations:
        if budget and time.monotonic() - t_start > budget:
            break
        node = queue.popleft()
        i, sid, race, other, rplan, oplans = node
        nk = key(node)
        rep.states += 1
        rep.max_depth = max(rep.max_depth, i)
        empty = ex.empty_names(sid)
        bad = {k: v for k, v in empty.items() if k != d}
        if bad:
            k, names = next(iter(bad.items()))
            fail("ISOLATED", f"cell-{k + 1}'s {names[0]} answers empty", nk)
            break
        if d in empty:
            rep.defect_cell_empty_states += 1
        if any(a[3] for a in race):
            rep.defect_cell_crashed_states += 1
        if progress and rep.states % 5000 == 0:
            progress(f"  {rep.states} states, queue {len(queue)}, race step {i}/{len(events)}")
        now = times[i]
        succs: list[tuple[Any, str]] = []
        if i < len(events):
            kind, who, action, result = events[i]
            if kind == "plan":
                succs.append(((i + 1, sid, race, other, rplan + 1, oplans),
                              f"cell-{d + 1} planner writes plan {who}"))
            else:
                a = race[who]
                assert action is not None and result is not None
                if a[2] != action:
                    fail("INDEPENDENT", f"cell-{d + 1} {race_cfgs[who].name} would do "
                                        f"{a[2]!r}, not the recorded {action!r}", nk)
                    break
                why = ex.confined(d, action)
                if why:
                    fail("CONFINED", f"cell-{d + 1} {race_cfgs[who].name}: {why}", nk)
                    break
                ex.snaps.at(sid)
                if isinstance(action, m.Sleep):
                    got: m.ResultT = m.Slept(result.now)
                else:
                    race_source.n = rplan
                    got = perform(ex.store, race_source, action, lambda r=result: r.now)
                if not _same(got, result):
                    fail("INDEPENDENT", f"cell-{d + 1} {race_cfgs[who].name}: {describe_action(action)} "
                                        f"got {got!r}, alone it got {result!r}", nk)
                    break
                try:
                    out = m.step(race_cfgs[who], a[1], got)
                    b: Agent = (d, out.state, out.action, False)
                except Exception:  # noqa: BLE001 - the recorded crash
                    b = (d, a[1], None, True)
                succs.append(((i + 1, ex.snaps.intern(), race[:who] + (b,) + race[who + 1:], other, rplan, oplans),
                              f"cell-{d + 1} {race_cfgs[who].name}: {describe_action(action)}"
                              + (" -> CRASHED" if b[3] else "")))
        for pos, a in enumerate(other):
            k, st, action, crashed = a
            if crashed or action is None or st.phase is m.Phase.FROZEN or st.attempt > bounds.lock_losses:
                continue
            ex.snaps.at(sid)
            done: list[m.ActionT] = []
            b = ex.fuse(cfg_of[pos], ex.act(cfg_of[pos], a, now, oplans[others.index(k)], done),
                        now, oplans[others.index(k)], done)
            why = next((w for w in (ex.confined(k, x) for x in done) if w), None)
            if why:
                fail("CONFINED", f"cell-{k + 1} {cfg_of[pos].name}: {why}", nk)
                break
            succs.append(((i, ex.snaps.intern(), race, other[:pos] + (b,) + other[pos + 1:], rplan, oplans),
                          f"cell-{k + 1} {cfg_of[pos].name}: {describe_action(action)}"))
        for j, k in enumerate(others):
            if oplans[j] < bounds.plans:
                ps = oplans[:j] + (oplans[j] + 1,) + oplans[j + 1:]
                succs.append(((i, sid, race, other, rplan, ps), f"cell-{k + 1} planner writes plan {oplans[j] + 1}"))
        for s_, what in succs:
            rep.transitions += 1
            sk = key(s_)
            if sk not in parent:
                parent[sk] = (nk, what)
                queue.append(s_)
    else:
        rep.complete = not rep.violations
    rep.race_steps = len(events)
    rep.seconds = time.monotonic() - t_start
    return rep


def build_parser(prog: str = "enactor check --cells") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Explore every interleaving of N cells' real enactors (one cell with the 2025 "
                    "defects, the others fixed) over one store holding every cell's zone, and check "
                    "that no other cell's name ever answers empty and no enactor touches another "
                    "cell's zone. Breadth-first with state hashing, within the bounds given.")
    p.add_argument("--cells", type=int, default=2, metavar="N", help="cells (default 2)")
    p.add_argument("--mode", choices=("race", "product"), default="race",
                   help="race (default): the defect cell replays the scripted 2025 race (to its first "
                        "crash) while every interleaving of the other cells' enactors and planners is "
                        "explored around it; product: every behaviour of every cell, to --depth")
    p.add_argument("--race-plans", type=int, default=4, metavar="P",
                   help="race mode: the race's plans, as `enactor outage --plans` (default 4)")
    p.add_argument("--defect-cell", type=int, default=1, metavar="K",
                   help="the cell whose enactors run --defects (default 1)")
    p.add_argument("--defects", default="2025", metavar="LIST",
                   help="product mode: defects of the defect cell's enactors (default 2025; the other "
                        "cells are fixed; the race is always the 2025 defects)")
    p.add_argument("--enactors", type=int, default=1, metavar="E",
                   help="enactors per cell (race mode: per other cell) (default 1)")
    p.add_argument("--plans", type=int, default=2, metavar="P",
                   help="newest plan per cell (race mode: per other cell) (default 2)")
    p.add_argument("--lock-losses", type=int, default=2, metavar="L",
                   help="consecutive lock failures per enactor explored (default 2)")
    p.add_argument("--ticks", type=int, default=1, metavar="T",
                   help="times time may jump past every lock's expiry (default 1)")
    p.add_argument("--depth", type=int, default=12, metavar="D",
                   help="product mode: transitions (default 12; 0: no bound)")
    p.add_argument("--budget", type=float, default=0.0, metavar="SECONDS",
                   help="stop after this long (then the result says it is not exhaustive)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        defects = m.parse_defects(args.defects)
        bounds = CellBounds(args.cells, args.enactors, args.plans, args.lock_losses, args.ticks,
                            args.depth, args.defect_cell)
        if args.cells < 2:
            raise ValueError("--cells must be at least 2 (a defect cell and another)")
        if args.plans < 1:
            raise ValueError("--plans must be at least 1")
        progress = None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
        if args.mode == "race":
            if args.race_plans < 4:
                raise ValueError("--race-plans must be at least 4 (as enactor outage --plans)")
            rep = explore_race(bounds, args.race_plans, args.budget, progress)
        else:
            rep = explore_cells(bounds, defects, args.budget, progress)
    except ValueError as exc:
        print(f"enactor check: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(rep.to_json(), indent=1) if args.json else rep.text())
    return 1 if rep.violations else 0
