"""The interleaving checker: every schedule of N real enactors, a planner and a clock, explored.

Pure core (no sockets, no real clock). The actors are the real `enactor.machine` state
machines; their actions go through the real `enactor.client.perform` against the real
`authd.memstore.MemoryStore` and its change-batch rules (`authd.changes`). Nothing here models
the enactor: this module only chooses *who goes next*.

The world
---------
- Enactors `enactor-a`, `enactor-b`, ... Every action is a scheduling point: each change-API
  call (point read, listing, batch) is one transition. A plan read is one too (the planner
  may write in between).
- The planner: a transition that writes plan N+1 (up to `Bounds.plans`; plan 1 is active in
  the shipped zones).
- Virtual time: `now = T0 + ticks * TICK`. Time does not pass while actors work or sleep; a
  "time passes" transition jumps it by `TICK` (lock TTL + 1 s), so every lock written before
  it has expired. Sleep *durations* therefore never decide anything: the scheduler may run
  any actor at any point, which covers every timing of the backoffs (a superset of what
  real clocks allow). Lock expiry and takeover follow the virtual clock.

Reductions (each sound for the invariants checked, see `_fuse`):
- state hashing: a state is (store contents, each enactor's State and pending action,
  planner position, ticks). The enactor's `now` and jitter `draws` are left out: `now` is
  overwritten by the next result before it is read, and `draws` only sets sleep durations,
  which the virtual clock ignores.
- invisible steps are fused into the step before them: a Sleep (no store access, time does
  not move) and FindZone (zones are never created or deleted here) commute with every other
  transition and change no invariant, so one order of them stands for all.

Bounds: enactors, plans, depth (transitions), lock losses in a row (`State.attempt`: a state
where an enactor failed to get the lock more often than that is not expanded), and time
jumps. Exhaustive search is breadth-first, so the first counterexample found is a shortest.

Random mode runs seeded random schedules (no hashing, larger bounds) for a time budget; a
run is reproduced from its seed.

Counterexamples become `enactor.schedule` documents ("step actor count N", "plan",
"advance"), which `enactor outage --schedule FILE` replays against real processes, and
`replay_in_process` replays through `enactor.sim` to confirm the violation and render the
timeline.
"""

from __future__ import annotations

import dataclasses
import operator
import random
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authd.memstore import MemoryStore
from authd.seed import seed_store
from authd.zonefile import load_zone_dir
from enactor import machine as m
from enactor.client import perform
from enactor.invariants import (
    ANSWER_LOGIC,
    Inv,
    StoreChecker,
    StoreFacts,
    Violation,
    check_locks,
    check_monotonic,
    check_newest,
    watched,
)
from enactor.plan import Endpoint, Plan, plan_label
from enactor.planner import churn, default_capacity

ZONES = Path(__file__).resolve().parent.parent / "zones"
T0 = 1_760_940_000.0  # 2025-10-20 06:00:00 UTC, as in the in-process outage
NAMES = tuple(f"enactor-{c}" for c in "abcdefgh")


@dataclass(frozen=True, slots=True)
class Bounds:
    enactors: int = 3
    plans: int = 4  # the newest plan number; plan 1 is active at the start
    lock_losses: int = 2  # consecutive failures to get the lock, per enactor
    ticks: int = 1  # times virtual time may jump past every lock's expiry
    depth: int = 0  # transitions; 0 = no bound
    endpoints: str = "dual"  # dual | legacy | both: which endpoints the plans carry


@dataclass(frozen=True, slots=True)
class Options:
    defects: frozenset[m.Defect] = frozenset()
    bounds: Bounds = Bounds()
    targets: frozenset[Inv] = frozenset(Inv)  # a violation of these ends the search
    collect: bool = False  # keep exploring; report the shortest violation of each target
    time_budget: float = 0.0  # seconds; 0 = none
    progress: Callable[[str], None] | None = None
    progress_every: float = 5.0
    use_index: bool | None = None  # None: the real answer logic when installed


# --- the world -----------------------------------------------------------------------------


def endpoints_for(which: str) -> tuple[Endpoint, ...]:
    dual, legacy = default_capacity()
    return {"dual": (dual,), "legacy": (legacy,), "both": (dual, legacy)}[which]


def plan_n(n: int, which: str = "dual") -> Plan:
    """Plan n: the shipped capacity (plan 1 = the zones), a small weight change per plan."""
    cap = endpoints_for(which)
    return Plan(n, T0 - 3600 + n, cap if n == 1 else churn(cap, n))


def seeded_store() -> MemoryStore:
    store = MemoryStore(clock=lambda: T0, keep_journal=False)
    zones = [z for z in load_zone_dir(ZONES) if z.origin in ("api.aws.", "amazonaws.com.")]
    seed_store(store, zones)
    return store


class _Plans:
    """The plan store as the planner transition leaves it: plans 1..n exist."""

    def __init__(self, plans: Sequence[Plan]):
        self.all, self.n = list(plans), 1

    def latest(self) -> Plan | None:
        return self.all[self.n - 1]


# --- states and transitions ------------------------------------------------------------------

# An enactor's part of a state: its machine state, its next action, and whether it crashed.
Agent = tuple[m.State, m.ActionT | None, bool]


@dataclass(slots=True)
class Node:
    store: int  # the store contents' number (its snapshot is interned in Explorer.snaps)
    agents: tuple[Agent, ...]
    ids: tuple[int, ...]  # each agent's interned number (for cheap state keys)
    planner: int  # newest plan written
    ticks: int
    depth: int = 0


@dataclass(frozen=True, slots=True)
class Move:
    """One transition: who moved, and what they did (for the trace and the schedule)."""

    who: str  # an enactor name, "planner" or "clock"
    actions: tuple[tuple[m.ActionT, m.ResultT | None], ...] = ()
    log: tuple[str, ...] = ()

    def text(self) -> str:
        if self.who == "planner":
            return "planner writes the next plan"
        if self.who == "clock":
            return f"time passes {TICK:.0f}s (every lock written so far expires)"
        from enactor.client import describe_action

        return "; ".join(describe_action(a) + _outcome(r) for a, r in self.actions)


def _outcome(r: m.ResultT | None) -> str:
    if isinstance(r, m.BatchRejected):
        return " -> REJECTED"
    if isinstance(r, m.BatchAccepted):
        return " -> ok"
    if isinstance(r, m.RecordsRead) and len(r.records) <= 1:
        return " -> " + (r.records[0].alias.dns_name if r.records and r.records[0].alias
                         else " ".join(r.records[0].values) if r.records else "nothing")
    return ""


TICK = 31.0  # lock TTL (30 s) + 1: a jump that expires every lock written before it


_KEY_FIELDS = [f.name for f in dataclasses.fields(m.State) if f.name not in ("now", "draws")]
_state_key = operator.attrgetter(*_KEY_FIELDS)  # State without `now` and `draws`


class Explorer:
    """Runs transitions of the real enactors over one MemoryStore, with save/restore."""

    def __init__(self, opts: Options):
        self.opts = opts
        b = opts.bounds
        if not 1 <= b.enactors <= len(NAMES):
            raise ValueError(f"enactors must be 1..{len(NAMES)}")
        if b.plans < 1:
            raise ValueError("plans must be >= 1")
        self.names = NAMES[: b.enactors]
        self.cfgs = [m.Config(n, defects=opts.defects) for n in self.names]
        self.plans = _Plans([plan_n(i, b.endpoints) for i in range(1, b.plans + 1)])
        self.store = seeded_store()
        self.eps = endpoints_for(b.endpoints)
        # Watch every stable name in the store, including ones no plan touches.
        self.checker = StoreChecker(watched(endpoints_for("both")), opts.use_index)
        self.store_ids: dict[Hashable, int] = {}
        self.snaps: list[Any] = []
        self.agent_ids: dict[Hashable, int] = {}
        self.cur = -1
        self.transitions = 0

    # --- store snapshots ---

    def _intern(self) -> int:
        key = self.store.state_key()
        sid = self.store_ids.get(key)
        if sid is None:
            sid = self.store_ids[key] = len(self.snaps)
            self.snaps.append(self.store.save())
        self.cur = sid
        return sid

    def _at(self, sid: int) -> None:
        if self.cur != sid:
            self.store.restore(self.snaps[sid])
            self.cur = sid

    def _aid(self, agent: Agent) -> int:
        k = (_state_key(agent[0]), agent[1], agent[2])
        aid = self.agent_ids.get(k)
        if aid is None:
            aid = self.agent_ids[k] = len(self.agent_ids)
        return aid

    def root(self) -> Node:
        agents = []
        for cfg in self.cfgs:
            out = m.step(cfg, m.initial_state(), None)
            agents.append(self._fuse(cfg, (out.state, out.action, False), T0, [])[0])
        return Node(self._intern(), tuple(agents), tuple(self._aid(a) for a in agents), 1, 0)

    def now(self, node: Node) -> float:
        return T0 + node.ticks * TICK

    # --- transitions ---

    def can_tick(self, node: Node) -> bool:
        if node.ticks >= self.opts.bounds.ticks:
            return False
        self._at(node.store)
        return any(v is not None for _, v in self.checker.facts(self.store).locks)

    def choices(self, node: Node) -> list[int]:
        n = len(self.names)
        out = [i for i, (st, act, crashed) in enumerate(node.agents)
               if not crashed and act is not None and st.phase is not m.Phase.FROZEN]
        if node.planner < self.opts.bounds.plans:
            out.append(n)
        if self.can_tick(node):
            out.append(n + 1)
        return out

    def who(self, choice: int) -> str:
        n = len(self.names)
        return self.names[choice] if choice < n else ("planner" if choice == n else "clock")

    def succ(self, node: Node, choice: int) -> tuple[Node, Move]:
        self.transitions += 1
        n = len(self.names)
        if choice == n:
            return Node(node.store, node.agents, node.ids, node.planner + 1, node.ticks, node.depth + 1), Move("planner")
        if choice == n + 1:
            return Node(node.store, node.agents, node.ids, node.planner, node.ticks + 1, node.depth + 1), Move("clock")
        self._at(node.store)
        self.plans.n = node.planner
        now = self.now(node)
        cfg = self.cfgs[choice]
        st, action, _ = node.agents[choice]
        assert action is not None
        log: list[str] = []
        done: list[tuple[m.ActionT, m.ResultT | None]] = []
        agent = self._act(cfg, st, action, now, log, done)
        if not agent[2]:
            agent, _ = self._fuse(cfg, agent, now, log, done,
                                  plans_done=node.planner >= self.opts.bounds.plans)
        wrote = isinstance(action, m.SubmitBatch) and isinstance(done[0][1], m.BatchAccepted)
        key = self._intern() if wrote else node.store
        agents = node.agents[:choice] + (agent,) + node.agents[choice + 1:]
        ids = node.ids[:choice] + (self._aid(agent),) + node.ids[choice + 1:]
        return (Node(key, agents, ids, node.planner, node.ticks, node.depth + 1),
                Move(self.names[choice], tuple(done), tuple(log)))

    def _act(self, cfg: m.Config, st: m.State, action: m.ActionT, now: float, log: list[str],
             done: list[tuple[m.ActionT, m.ResultT | None]]) -> Agent:
        if isinstance(action, m.Sleep):
            result: m.ResultT = m.Slept(now)
        else:
            result = perform(self.store, self.plans, action, lambda: now)
        done.append((action, result))
        try:
            out = m.step(cfg, st, result)
        except Exception as exc:  # noqa: BLE001 - a crash is the outcome we check for
            log.append(f"{cfg.name} CRASHED: {type(exc).__name__}: {exc}")
            return (st, None, True)
        log.extend(out.log)
        return (out.state, out.action, False)

    def _fuse(self, cfg: m.Config, agent: Agent, now: float, log: list[str],
              done: list[tuple[m.ActionT, m.ResultT | None]] | None = None,
              plans_done: bool = False) -> tuple[Agent, int]:
        """Run the invisible actions that follow (Sleep, FindZone) at once.

        Sound: they read nothing another transition writes (zones are never created or
        deleted; time moves only by the clock transition), write nothing, and change no
        invariant's inputs, so they commute with every transition; fusing them picks one
        representative order. Once the planner has written its last plan, a plan read is
        invisible too (nothing writes the plan store any more). A FROZEN enactor's sleep is
        not fused: it never ends.
        """
        done = done if done is not None else []
        fused = 0
        kinds: Any = (m.Sleep, m.FindZone, m.ReadPlan) if plans_done else (m.Sleep, m.FindZone)
        while (not agent[2] and isinstance(agent[1], kinds)
               and agent[0].phase is not m.Phase.FROZEN and fused < 50):
            agent = self._act(cfg, agent[0], agent[1], now, log, done)
            fused += 1
        return agent, fused

    # --- keys and invariants ---

    def key(self, node: Node) -> Hashable:
        return (node.store, node.ids, node.planner, node.ticks)

    def facts(self, node: Node) -> StoreFacts:
        self._at(node.store)
        return self.checker.facts(self.store)

    def violations(self, before: Node | None, node: Node) -> list[Violation]:
        f = self.facts(node)
        vs = list(f.violations)
        for name, (_, _, crashed) in zip(self.names, node.agents):
            if crashed:
                vs.append(Violation(Inv.NO_CRASH, f"{name} crashed"))
        vs += check_locks(f, self.names, [a[0] for a in node.agents], self.now(node))
        if before is not None and before.store != node.store:
            vs += check_monotonic(self.facts(before), f)
            self._at(node.store)
        if self.quiescent(node):
            vs += check_newest(f, [e.name for e in self.eps], node.planner)
        return vs

    def quiescent(self, node: Node) -> bool:
        """Every plan written, and every live enactor idle with the newest plan read."""
        if node.planner < self.opts.bounds.plans:
            return False
        live = [st for st, _, c in node.agents if not c and st.phase is not m.Phase.FROZEN]
        return bool(live) and all(
            st.phase is m.Phase.IDLE_SLEEP and st.plan is not None and st.plan.number == node.planner
            for st in live)

    def cut(self, node: Node) -> bool:
        """Beyond the bounds: not expanded."""
        b = self.opts.bounds
        if b.depth and node.depth >= b.depth:
            return True
        return any(st.attempt > b.lock_losses for st, _, _ in node.agents)

    def frozen(self, node: Node) -> list[str]:
        return [f"{n}: {st.last_error}" for n, (st, _, c) in zip(self.names, node.agents)
                if st.phase is m.Phase.FROZEN]


# --- results --------------------------------------------------------------------------------


@dataclass
class Found:
    violation: Violation
    trace: list[Move]
    depth: int
    after_states: int
    after_seconds: float


@dataclass
class Report:
    mode: str
    defects: str
    bounds: Bounds
    targets: list[str]
    answer_logic: str = ANSWER_LOGIC
    states: int = 0  # transitions taken (states explored, with repeats)
    distinct: int = 0
    depth: int = 0  # the deepest state reached
    seconds: float = 0.0
    exhausted: bool = False  # the whole bounded space was explored
    cut: int = 0  # states not expanded because they are beyond a bound
    found: list[Found] = field(default_factory=list)
    also: dict[str, int] = field(default_factory=dict)  # non-target invariant -> first depth
    frozen: list[str] = field(default_factory=list)  # FROZEN reasons seen (allowed)
    runs: int = 0  # random mode
    seed: int | None = None
    failing_seed: int | None = None

    @property
    def ok(self) -> bool:
        return not self.found

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "defects": self.defects, "bounds": dataclasses.asdict(self.bounds),
            "invariants": self.targets, "answer_logic": self.answer_logic,
            "states": self.states, "distinct": self.distinct, "depth": self.depth,
            "seconds": round(self.seconds, 3),
            "states_per_second": round(self.states / self.seconds) if self.seconds else None,
            "exhausted": self.exhausted, "cut_by_bounds": self.cut,
            "verdict": "no violation" if self.ok else "violation",
            "violations": [
                {"invariant": f.violation.inv.value, "detail": f.violation.detail,
                 "depth": f.depth, "after_states": f.after_states,
                 "after_seconds": round(f.after_seconds, 3),
                 "trace": [{"who": mv.who, "did": mv.text(), "log": list(mv.log)} for mv in f.trace]}
                for f in self.found],
            "other_invariants_broken": self.also, "frozen": self.frozen,
            "runs": self.runs, "seed": self.seed, "failing_seed": self.failing_seed,
        }


# --- exhaustive search ------------------------------------------------------------------------


def explore(opts: Options) -> Report:
    """Breadth-first over every interleaving within the bounds; the first violation of a
    target invariant is a shortest counterexample (fewest transitions)."""
    ex = Explorer(opts)
    rep = Report("exhaustive", m.defects_text(opts.defects), opts.bounds,
                 sorted(i.value for i in opts.targets))
    t0 = time.monotonic()
    last = t0
    root = ex.root()
    rk = ex.key(root)
    parent: dict[Hashable, tuple[Hashable, Move] | None] = {rk: None}
    queue: deque[tuple[Node, Hashable]] = deque([(root, rk)])
    wanted = set(opts.targets)
    frozen: set[str] = set()

    def trace_to(k: Hashable) -> list[Move]:
        out: list[Move] = []
        p = parent[k]
        while p is not None:
            out.append(p[1])
            p = parent[p[0]]
        return out[::-1]

    stop = False
    while queue and not stop:
        node, k = queue.popleft()
        if ex.cut(node):
            rep.cut += 1
            continue
        for choice in ex.choices(node):
            nxt, mv = ex.succ(node, choice)
            nk = ex.key(nxt)
            if nk in parent:
                continue
            parent[nk] = (k, mv)
            rep.depth = max(rep.depth, nxt.depth)
            vs = ex.violations(node, nxt)
            frozen.update(ex.frozen(nxt))
            hit = None
            for v in vs:
                if v.inv in wanted:
                    hit = v
                    break
                rep.also.setdefault(v.inv.value, nxt.depth)
            if hit is not None:
                rep.found.append(Found(hit, trace_to(nk), nxt.depth, ex.transitions,
                                       time.monotonic() - t0))
                if opts.collect:
                    wanted = {i for i in wanted if i is not hit.inv}
                    # invariants broken on the same step are found at the same depth
                    for v in vs:
                        if v.inv in wanted:
                            rep.found.append(Found(v, trace_to(nk), nxt.depth, ex.transitions,
                                                   time.monotonic() - t0))
                            wanted.discard(v.inv)
                    if not wanted:
                        stop = True
                        break
                else:
                    stop = True
                    break
                continue  # do not expand a violating state
            if any(v.inv is Inv.NO_CRASH for v in vs):
                continue
            queue.append((nxt, nk))
        now = time.monotonic()
        if opts.progress and now - last >= opts.progress_every:
            last = now
            opts.progress(f"exploring: {ex.transitions:,} states, {len(parent):,} distinct, "
                          f"depth {node.depth}, frontier {len(queue):,}, "
                          f"{ex.transitions / (now - t0):,.0f} states/s")
        if opts.time_budget and now - t0 > opts.time_budget:
            break
    rep.states = ex.transitions
    rep.distinct = len(parent)
    rep.seconds = time.monotonic() - t0
    rep.exhausted = not queue and not stop
    rep.frozen = sorted(frozen)
    return rep


# --- random mode --------------------------------------------------------------------------------


def fair_finish(ex: Explorer, node: Node, rounds: int = 300) -> tuple[Node, list[Move], list[Violation]]:
    """Run every live enactor in turn (a fair schedule, the planner done) until each is idle
    with the newest plan; time passes when a whole round writes nothing while a lock is held.
    Returns the end node, the moves, and the violations on the way (EVENTUALLY if the newest
    plan never became active)."""
    moves: list[Move] = []
    n = len(ex.names)
    for r in range(rounds):
        if ex.quiescent(node):
            return node, moves, ex.violations(None, node)
        before = node.store
        for i in range(n):
            if i in ex.choices(node):
                prev = node
                node, mv = ex.succ(node, i)
                moves.append(mv)
                vs = ex.violations(prev, node)
                if vs:
                    return node, moves, vs
        if node.store == before and r % 5 == 4:
            facts = ex.facts(node)
            if any(v is not None for _, v in facts.locks):
                node = Node(node.store, node.agents, node.ids, node.planner, node.ticks + 1, node.depth + 1)
                moves.append(Move("clock"))
    f = ex.facts(node)
    vs = check_newest(f, [e.name for e in ex.eps], node.planner)
    if not vs:
        vs = [Violation(Inv.EVENTUALLY, f"enactors still busy after {rounds} fair rounds")]
    return node, moves, vs


def random_runs(opts: Options, seed: int, max_steps: int = 400) -> Report:
    """Seeded random schedules until the time budget runs out; each run i uses seed+i."""
    rep = Report("random", m.defects_text(opts.defects), opts.bounds,
                 sorted(i.value for i in opts.targets), seed=seed)
    t0 = time.monotonic()
    last = t0
    budget = opts.time_budget or 10.0
    frozen: set[str] = set()
    run = 0
    while time.monotonic() - t0 < budget:
        found = random_run(opts, seed + run, max_steps, frozen)
        rep.runs += 1
        rep.states += found[1]
        rep.depth = max(rep.depth, found[2])
        if found[0] is not None:
            rep.found.append(found[0])
            rep.failing_seed = seed + run
            break
        run += 1
        now = time.monotonic()
        if opts.progress and now - last >= opts.progress_every:
            last = now
            opts.progress(f"random: {rep.runs} runs, {rep.states:,} steps, no violation yet")
    rep.seconds = time.monotonic() - t0
    rep.frozen = sorted(frozen)
    return rep


def random_run(opts: Options, seed: int, max_steps: int = 400,
               frozen: set[str] | None = None) -> tuple[Found | None, int, int]:
    """One random schedule: a random enabled choice per step (the clock rarely), then a fair
    finish. Returns (the first target violation or None, steps, depth)."""
    rng = random.Random(seed)
    ex = Explorer(opts)
    t0 = time.monotonic()
    node = ex.root()
    trace: list[Move] = []
    n = len(ex.names)
    for _ in range(max_steps):
        cs = ex.choices(node)
        if not cs:
            break
        weights = [0.05 if c == n + 1 else (0.3 if c == n else 1.0) for c in cs]
        c = rng.choices(cs, weights)[0]
        prev = node
        node, mv = ex.succ(node, c)
        trace.append(mv)
        if frozen is not None:
            frozen.update(ex.frozen(node))
        hit = next((v for v in ex.violations(prev, node) if v.inv in opts.targets), None)
        if hit is not None:
            return Found(hit, trace, node.depth, ex.transitions, time.monotonic() - t0), ex.transitions, node.depth
    while node.planner < opts.bounds.plans:
        node, mv = ex.succ(node, n)
        trace.append(mv)
    if Inv.EVENTUALLY in opts.targets or opts.targets:
        node, moves, vs = fair_finish(ex, node)
        trace += moves
        hit = next((v for v in vs if v.inv in opts.targets), None)
        if hit is not None:
            return Found(hit, trace, node.depth, ex.transitions, time.monotonic() - t0), ex.transitions, node.depth
    return None, ex.transitions, node.depth


# --- counterexample -> schedule ----------------------------------------------------------------


def to_schedule(trace: Iterable[Move], names: Sequence[str], description: str,
                extra: dict[str, Any] | None = None, aftermath: bool = True) -> Any:
    """The trace as an `enactor.schedule.Schedule`: one `step ... count` per run of moves by
    the same enactor, `plan` for the planner, `advance` for time; a DNS sample after every
    accepted batch; then a fair aftermath so the outage (or its repair) shows in the timeline."""
    from enactor.schedule import Schedule

    steps: list[dict[str, Any]] = [{"do": "sample", "note": "before"}]
    for mv in trace:
        if mv.who == "planner":
            steps.append({"do": "plan"})
            continue
        if mv.who == "clock":
            steps.append({"do": "advance", "seconds": TICK})
            continue
        wrote = any(isinstance(r, m.BatchAccepted) for _, r in mv.actions)
        prev = steps[-1]
        if prev.get("do") == "step" and prev.get("actor") == mv.who and "_wrote" not in prev:
            prev["count"] += len(mv.actions)
        else:
            steps.append({"do": "step", "actor": mv.who, "count": len(mv.actions)})
        if wrote:
            steps[-1]["_wrote"] = True
            steps.append({"do": "sample"})
    for s in steps:
        s.pop("_wrote", None)
    if aftermath:
        for _ in range(3):
            steps += [{"do": "run", "seconds": 4}, {"do": "sample"}]
    return Schedule(list(names), steps, description, extra=dict(extra or {}))
