"""Saga-style step tests for the enactor: crash at every step, run every step twice.

Pure core (virtual time, in-process store). From Oxide's distributed-sagas talk (Steno): an
action sequence is safe to resume only if each step is idempotent and a crash between any two
steps can be carried on from by whoever comes next. This helper takes the enactor's real step
sequence (`enactor.machine` through `enactor.checker.sim.Sim`, the real client and MemoryStore):

1. a clean run: one enactor installs the newest plan from a given starting store, until it is
   idle; its action count K and the end state (zone contents without SOA and lock) are kept;
2. for every i in 0..K: the same run is crashed after i actions (SIGKILL: memory lost, its lock
   left in the zone), then carried on by a restart of the same enactor, or by another enactor
   (which must wait out the dead one's lock), until idle;
3. for every i: the i-th action is performed twice (a request whose response was lost and was
   retried: the store sees it twice, the machine sees the second answer); and a run with every
   action performed twice.

After every step the invariants of `enactor.checker.invariants` are checked (names resolve, rollback
points at a tree, the lock is well-formed, the active plan never goes backwards, nobody
crashed); each run must end idle with the same zone contents as the clean run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from authd.store.memstore import MemoryStore
from enactor import machine as m
from enactor.checker.invariants import Inv, StoreChecker, Violation, check_monotonic, watched
from enactor.checker.sim import PlanList, Sim
from enactor.plan import Plan

T0 = 1_760_940_000.0


class _Twice:
    """A ChangeApi proxy that performs the next call twice when `armed` (or always)."""

    def __init__(self, api: Any):
        self.api = api
        self.armed = False
        self.always = False

    def _call(self, name: str, *a: Any, **kw: Any) -> Any:
        fn = getattr(self.api, name)
        if self.armed or self.always:
            self.armed = False
            with contextlib.suppress(Exception):  # the first answer is lost either way
                fn(*a, **kw)
        return fn(*a, **kw)

    def find_zone_by_name(self, name: str) -> Any:
        return self._call("find_zone_by_name", name)

    def get_record_sets(self, zone_id: str, name: str, rtype: str) -> Any:
        return self._call("get_record_sets", zone_id, name, rtype)

    def record_sets(self, zone_id: str) -> Any:
        return self._call("record_sets", zone_id)

    def change_batch(self, zone_id: str, changes: Any, comment: str = "") -> Any:
        return self._call("change_batch", zone_id, changes, comment)


@dataclass
class Outcome:
    """One run of the saga: what was done to it and what went wrong (empty = fine)."""

    what: str
    steps: int
    problems: list[str] = field(default_factory=list)
    end: frozenset[Any] = frozenset()

    @property
    def ok(self) -> bool:
        return not self.problems


def zone_contents(store: MemoryStore) -> frozenset[Any]:
    """Every record set except the SOA (serials move) and the lock (its expiry moves)."""
    return frozenset(rs for z in store.list_zones() for rs in store.record_sets(z.id)
                     if rs.rtype != "SOA" and not rs.name.startswith("_lock."))


class Saga:
    """Crash-at-every-step and run-every-step-twice over the enactor.

    Args:
        start: makes the starting store (a fresh copy per run).
        plans: the plan store contents (the newest is the one to install).
        defects: the enactor's defect switches.
        max_steps: per run, a bound that turns a livelock into a reported problem.
    """

    def __init__(self, start: Callable[[], MemoryStore], plans: Sequence[Plan],
                 defects: frozenset[m.Defect] = frozenset(), max_steps: int = 2000):
        self.start, self.plans, self.defects, self.max_steps = start, list(plans), defects, max_steps
        self.newest = max(p.number for p in self.plans)
        eps = {e.name: e for p in self.plans for e in p.endpoints}
        self.eps = list(eps.values())

    def _world(self) -> tuple[Sim, _Twice, MemoryStore, StoreChecker]:
        store = self.start()
        api = _Twice(store)
        sim = Sim(api, PlanList(list(self.plans)), t0=T0, restart_crashed=False)  # type: ignore[arg-type]
        return sim, api, store, StoreChecker(watched(self.eps))

    def _done(self, sim: Sim, store: MemoryStore, checker: StoreChecker) -> bool:
        live = [a for a in sim.actors.values() if a.action is not None]
        if not live or not all(a.state.phase is m.Phase.IDLE_SLEEP and a.state.plan is not None
                               and a.state.plan.number == self.newest for a in live):
            return False
        act = dict(checker.facts(store).active)
        return all(act.get(e.name) == self.newest for e in self.eps)

    def _run(self, what: str, crash_at: int | None = None, carry_on: str = "restart",
             twice_at: int | None = None, twice_all: bool = False) -> Outcome:
        sim, api, store, checker = self._world()
        api.always = twice_all
        a = sim.add(m.Config("enactor-a", defects=self.defects))
        out = Outcome(what, 0)
        before = checker.facts(store)

        def check() -> None:
            nonlocal before
            f = checker.facts(store)
            vs: list[Violation] = list(f.violations) + check_monotonic(before, f)
            before = f
            for actor in sim.actors.values():
                if actor.crashed is not None:
                    vs.append(Violation(Inv.NO_CRASH, f"{actor.name} crashed: {actor.crashed.splitlines()[-1]}"))
            texts = [v.text() for v in vs]
            for actor in sim.actors.values():
                if actor.state.phase is m.Phase.FROZEN:  # allowed by the invariants, but the
                    # saga must still reach the clean run's end state, which a frozen one cannot
                    texts.append(f"{actor.name} FROZE: {actor.state.last_error}")
            for t in texts:
                text = f"after step {out.steps}: {t}"
                if text not in out.problems:
                    out.problems.append(text)

        for _ in range(self.max_steps):
            if crash_at is not None and out.steps == crash_at and a.action is not None:
                sim.kill("enactor-a")
                if carry_on == "restart":
                    sim.restart("enactor-a")
                else:
                    sim.add(m.Config("enactor-b", defects=self.defects))
            if self._done(sim, store, checker) and (crash_at is None or out.steps >= crash_at):
                break
            n = sim.next_actor()
            if n is None:
                out.problems.append(f"after step {out.steps}: nobody can move")
                break
            if twice_at is not None and out.steps == twice_at:
                api.armed = True
            sim.step(n)
            out.steps += 1
            check()
            if out.problems:
                break
        else:
            out.problems.append(f"not idle with plan-{self.newest:04d} active after {self.max_steps} steps")
        out.end = zone_contents(store)
        return out

    def clean(self) -> Outcome:
        return self._run("clean run")

    def crash_every_step(self, carry_on: str = "restart") -> list[Outcome]:
        """Crash after i actions for every i, carried on by a restart or by `enactor-b`."""
        clean = self.clean()
        k = self._steps_to_idle(clean)
        outs = []
        for i in range(k + 1):
            o = self._run(f"crash after step {i}, carried on by "
                          f"{'a restart' if carry_on == 'restart' else 'enactor-b'}", crash_at=i,
                          carry_on=carry_on)
            if o.ok and o.end != clean.end:
                o.problems.append(f"end state differs from the clean run: {_diff(clean.end, o.end)}")
            outs.append(o)
        return outs

    def every_step_twice(self) -> list[Outcome]:
        """Each action performed twice, one at a time; then every action twice."""
        clean = self.clean()
        k = self._steps_to_idle(clean)
        outs = [self._run(f"step {i} performed twice", twice_at=i) for i in range(k)]
        outs.append(self._run("every step performed twice", twice_all=True))
        for o in outs:
            if o.ok and o.end != clean.end:
                o.problems.append(f"end state differs from the clean run: {_diff(clean.end, o.end)}")
        return outs

    def _steps_to_idle(self, clean: Outcome) -> int:
        if not clean.ok:
            raise AssertionError(f"the clean run itself fails: {clean.problems}")
        return clean.steps


def _diff(want: frozenset[Any], got: frozenset[Any]) -> str:
    missing = sorted(f"{rs.name} {rs.rtype}" for rs in want - got)
    extra = sorted(f"{rs.name} {rs.rtype}" for rs in got - want)
    return f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}, extra {extra[:4]}{'...' if len(extra) > 4 else ''}"
