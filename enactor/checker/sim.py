"""In-process runs of real enactor machines against a Store, on virtual time.

Pure core (no real clock, no sockets): a small discrete-event driver. Each actor is one
enactor (`machine.step` over its own frozen state) whose actions go through the same
`client.perform` as production, against an in-process Store (`authd.store.memstore.MemoryStore`).
Time is virtual: an action costs `op_time` seconds, a `Sleep` wakes the actor later, and the
driver always runs the actor that is ready first (ties by name), so every run is the same.

Tests use it directly; `enactor.checker.schedule` uses it to replay exact interleavings; the
interleaving checker can use `Actor` and `perform` the same way.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authd.model.records import RecordSet
from enactor import machine as m
from enactor.checker.schedule import label
from enactor.client import ChangeApi, perform
from enactor.drills.timeline import Recorder, Sample
from enactor.plan import Plan, lock_name, rollback_name, root_plan


class PlanList:
    """An in-memory plan store: `latest()` like PlanStore, plus `add`."""

    def __init__(self, plans: list[Plan] | None = None):
        self.plans: list[Plan] = list(plans or [])

    def add(self, plan: Plan) -> None:
        self.plans.append(plan)

    def latest(self) -> Plan | None:
        return max(self.plans, key=lambda p: p.number) if self.plans else None

    def get(self, number: int) -> Plan | None:
        return next((p for p in self.plans if p.number == number), None)


class VirtualClock:
    def __init__(self, t0: float):
        self.t = t0

    def now(self) -> float:
        return self.t


@dataclass
class Actor:
    cfg: m.Config
    state: m.State
    action: m.ActionT | None = None
    ready_at: float = 0.0
    crashed: str | None = None  # the traceback of the last crash
    crashes: int = 0
    steps: int = 0
    log: list[str] = field(default_factory=list)
    history: list[tuple[float, m.ActionT, m.ResultT]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.cfg.name


class Sim:
    """Drive several enactors against one store on a virtual clock.

    Args:
        api: the store (in-process) every actor talks to.
        plans: the plan source every actor reads.
        t0: virtual epoch seconds at the start.
        op_time: virtual seconds each non-sleep action takes.
        restart_crashed: a crashed actor restarts from a fresh state on its next turn (as a
            supervisor would restart the process), and may crash again.
    """

    def __init__(self, api: ChangeApi, plans: PlanList, t0: float = 1_760_940_000.0,
                 op_time: float = 0.01, restart_crashed: bool = True,
                 on_log: Callable[[float, str], None] | None = None,
                 restart_delay: float = 1.0):
        self.api, self.plans = api, plans
        self.clock = VirtualClock(t0)
        self.op_time = op_time
        self.restart_crashed = restart_crashed
        self.restart_delay = restart_delay
        self.actors: dict[str, Actor] = {}
        self.on_log = on_log
        self.timeline: list[tuple[float, str]] = []
        # called after every performed action: (t, actor, action, result, log lines)
        self.observers: list[Callable[[float, str, m.ActionT, m.ResultT, list[str]], None]] = []

    def add(self, cfg: m.Config) -> Actor:
        a = Actor(cfg, m.initial_state(), ready_at=self.clock.t)
        self.actors[cfg.name] = a
        self._advance(a, None)
        return a

    def _say(self, lines: tuple[str, ...] | list[str]) -> None:
        for line in lines:
            self.timeline.append((self.clock.t, line))
            if self.on_log:
                self.on_log(self.clock.t, line)

    def _advance(self, a: Actor, result: m.ResultT | None) -> None:
        try:
            out = m.step(a.cfg, a.state, result)
        except Exception as exc:  # noqa: BLE001 - a crash is an outcome we record
            a.crashed = "".join(traceback.format_exception(exc))
            a.crashes += 1
            a.action = None
            a.ready_at = self.clock.t + self.restart_delay
            self._say([f"{a.name} CRASHED: {type(exc).__name__}: {exc}"])
            return
        a.state, a.action = out.state, out.action
        a.log.extend(out.log)
        self._say(out.log)
        if isinstance(out.action, m.Sleep):
            a.ready_at = self.clock.t + out.action.seconds
        else:
            a.ready_at = self.clock.t

    def restart(self, name: str) -> None:
        """The process restarts: all memory is lost, the machine starts from scratch."""
        a = self.actors[name]
        a.state, a.action, a.crashed = m.initial_state(), None, None
        a.ready_at = self.clock.t
        self._say([f"{name} (re)started"])
        self._advance(a, None)

    def kill(self, name: str) -> None:
        """The process dies (no traceback: SIGKILL); it stays down until `restart`."""
        a = self.actors[name]
        a.action, a.crashed = None, None
        self._say([f"{name} KILLED"])

    def step(self, name: str) -> tuple[m.ActionT, m.ResultT] | None:
        """Run one action of actor `name` (restarting it first if it crashed)."""
        a = self.actors[name]
        if a.action is None:
            if a.crashed is not None and self.restart_crashed:
                self.clock.t = max(self.clock.t, a.ready_at)
                self.restart(name)
            if a.action is None:
                return None
        action = a.action
        self.clock.t = max(self.clock.t, a.ready_at)
        if isinstance(action, m.Sleep):
            result: m.ResultT = m.Slept(self.clock.t)
        else:
            result = perform(self.api, self.plans, action, self.clock.now)
            self.clock.t += self.op_time
        a.steps += 1
        a.history.append((self.clock.t, action, result))
        n_log = len(a.log)
        self._advance(a, result)
        for obs in self.observers:
            obs(self.clock.t, name, action, result, a.log[n_log:] + ([f"{name} CRASHED"] if a.crashed and a.action is None else []))
        return action, result

    def next_actor(self) -> str | None:
        ready = [(a.ready_at, n) for n, a in self.actors.items() if self.runnable(a)]
        return min(ready)[1] if ready else None

    def runnable(self, a: Actor) -> bool:
        return a.action is not None or (a.crashed is not None and self.restart_crashed)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            n = self.next_actor()
            if n is None:
                return
            self.step(n)

    def run_until(self, pred: Callable[[], bool], max_steps: int = 10_000) -> bool:
        for _ in range(max_steps):
            if pred():
                return True
            n = self.next_actor()
            if n is None:
                return pred()
            self.step(n)
        return pred()

    def run_for(self, seconds: float, max_steps: int = 100_000) -> None:
        end = self.clock.t + seconds
        for _ in range(max_steps):
            n = self.next_actor()
            if n is None or self.actors[n].ready_at > end:
                self.clock.t = max(self.clock.t, end)
                return
            self.step(n)


# --- observing the zone the way DNS would (for assertions and the timeline) ------------------


class DnsView:
    """What authd's DNS would answer: its real serving index (`authd.dns.index.ServingIndex`), fed
    from the store's journal like every authd server. `answers()` catches up first."""

    def __init__(self, store: Any):
        from authd.dns.index import ServingIndex

        self.store = store
        self.index = ServingIndex()
        for entry in store.snapshot():
            self.index.apply(entry)

    def answers(self, name: str, rtype: str) -> set[str]:
        """Every address some query for (name, rtype) could get; empty = NOERROR, ANSWER: 0."""
        for entry in self.store.journal_since(self.index.seq):
            self.index.apply(entry)
        return {v for rcode, values in self.index.resolve_all(name, rtype) if rcode == "NOERROR"
                for v in values}


def addresses(api: ChangeApi, zone_id: str, name: str, rtype: str, depth: int = 8) -> set[str]:
    """The addresses reachable from (name, rtype) in the control plane's view: aliases
    followed, every weighted member included. Empty = the name dangles. (For what DNS would
    actually answer in-process, use `DnsView`; over HTTP, ask authd with dig.)"""
    if depth == 0:
        return set()
    sets = api.get_record_sets(zone_id, name, rtype)
    if not sets:
        return set()
    out: set[str] = set()
    for rs in sets:
        if rs.alias is not None:
            out |= addresses(api, zone_id, rs.alias.dns_name, rtype, depth - 1)
        else:
            out |= set(rs.values)
    return out


def active_plan(api: ChangeApi, zone_id: str, endpoint: str, rtype: str = "A") -> int | None:
    return _alias_plan(api.get_record_sets(zone_id, endpoint, rtype), endpoint)


def rollback_plan(api: ChangeApi, zone_id: str, endpoint: str, rtype: str = "A") -> int | None:
    return _alias_plan(api.get_record_sets(zone_id, rollback_name(endpoint), rtype), endpoint)


def _alias_plan(sets: list[RecordSet], endpoint: str) -> int | None:
    if len(sets) != 1 or sets[0].alias is None:
        return None
    return root_plan(sets[0].alias.dns_name, endpoint)


def lock_holder(api: ChangeApi, zone_id: str, endpoint: str) -> tuple[str, int] | None:
    sets = api.get_record_sets(zone_id, lock_name(endpoint), "TXT")
    if not sets or not sets[0].values:
        return None
    return m.parse_lock(sets[0].values[0])


# --- the schedule driver over a Sim -------------------------------------------------------


class SimDriver:
    """`enactor.checker.schedule.Driver` over an in-process Sim (the outage without processes)."""

    def __init__(self, sim: Sim, capacity_fn: Callable[[int], Plan],
                 watch: list[tuple[str, str, str]]):
        """`capacity_fn(n)` makes plan n; `watch` lists (zone, name, rtype) to sample."""
        self.sim, self.capacity_fn, self.watch = sim, capacity_fn, watch
        self.rec = Recorder(sim.clock.t)
        self.dns: DnsView | None = None
        sim.observers.append(self._observe)

    @property
    def samples(self) -> list[Sample]:
        return self.rec.samples

    def _observe(self, t: float, actor: str, action: m.ActionT, result: m.ResultT, log: list[str]) -> None:
        self.rec.step(t, actor, label(action), type(result).__name__, log)

    def pending_label(self, actor: str) -> str | None:
        a = self.sim.actors[actor]
        if a.action is None and a.crashed is not None and self.sim.restart_crashed:
            self.sim.clock.t = max(self.sim.clock.t, a.ready_at)
            self.sim.restart(actor)
        return label(a.action) if a.action is not None else None

    def go(self, actor: str) -> tuple[str, bool]:
        out = self.sim.step(actor)
        assert out is not None
        return label(out[0]), self.sim.actors[actor].crashed is not None

    def emit_plan(self) -> int:
        latest = self.sim.plans.latest()
        n = latest.number + 1 if latest else 1
        self.sim.plans.add(self.capacity_fn(n))
        self.sim._say([f"planner wrote plan-{n:04d}"])
        self.rec.add(self.sim.clock.t, "planner", "plan", f"wrote plan-{n:04d}")
        return n

    def zone_id(self, zone: str) -> str:
        return self.sim.api.find_zone_by_name(zone).id

    def sample(self, note: str = "") -> Sample:
        counts = {}
        active = None
        if self.dns is None:
            self.dns = DnsView(self.sim.api)
        for zone, name, rtype in self.watch:
            zid = self.zone_id(zone)
            counts[f"{name} {rtype}"] = len(self.dns.answers(name, rtype))
            if active is None:
                active = active_plan(self.sim.api, zid, name, rtype)
        s = Sample(self.sim.clock.t, counts, {}, active, "index", note)
        self.rec.sample(s)
        return s

    def delete_tree(self, plan: int) -> None:
        from authd.store.contract import Action, Change  # local: only the operator path needs it

        for zone, name, _ in {(z, n, "") for z, n, _ in self.watch}:
            zid = self.zone_id(zone)
            recs = [rs for rs in self.sim.api.record_sets(zid)
                    if rs.name.endswith(f"plan-{plan:04d}.{name}")]
            recs.sort(key=lambda rs: rs.weight is None)
            if recs:
                self.sim.api.change_batch(zid, [Change(Action.DELETE, rs) for rs in recs],
                                          "operator: delete a tree by hand")
                self.sim._say([f"OPERATOR deleted the plan-{plan:04d} tree of {name} by hand"])
                self.rec.add(self.sim.clock.t, "operator", "typo", f"deleted the plan-{plan:04d} tree of {name} by hand")

    def kill(self, actor: str) -> None:
        self.sim.kill(actor)

    def restart(self, actor: str) -> None:
        self.sim.restart(actor)

    def advance(self, seconds: float) -> None:
        self.sim.clock.t += seconds

    def run_free(self, seconds: float) -> None:
        self.sim.run_for(seconds)

    def note(self, text: str) -> None:
        self.sim._say([f"-- {text}"])
        self.rec.add(self.sim.clock.t, "", "note", text)
