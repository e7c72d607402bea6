"""The interleaving checker: every schedule of N real enactors, a planner and a clock, explored.

Pure core (no sockets, no real clock). The actors are the real `enactor.machine` state
machines; their actions go through the real `enactor.client.perform` against the real
`authd.store.memstore.MemoryStore` and its change-batch rules (`authd.model.changes`). Nothing here models
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

Reductions (each argued where it is made):
- state hashing: a state is (store contents, each enactor's State and pending action,
  planner position, ticks), numbered so a key is a few small integers. Fields no decision
  reads are left out of an enactor's state: `now` (overwritten by the next result before it
  is read), jitter `draws` (sleep lengths only), log-only fields, and values dead in the
  current phase (`_state_key`); `Options.verify_memo` recomputes every memoized transition
  to test that claim against the real machine.
- memoized transitions: (enactor, its state, store contents, ticks, planner) decides the
  outcome, so each is run once; store snapshots are interned and restored only on a miss.
- invisible steps are fused into the step before them: a Sleep (no store access, time does
  not move), FindZone (zones are never created or deleted here), and a plan read once the
  planner has written its last plan (`_fuse`).
- symmetry: the enactors differ only by name, so a state and its renamings are one (`_canon`).
- partial order (fixed design only): a read by the live lock holder is taken alone, since
  nobody else can write until it releases (`reduced`). With defects on it is off, so a
  counterexample is a shortest one in the full interleaving graph.

Bounds: enactors, plans, depth (transitions), lock losses in a row (`State.attempt`: a state
where an enactor failed to get the lock more often than that is not expanded), and time
jumps. Exhaustive search is breadth-first, so the first counterexample found is a shortest.

Liveness (EVENTUALLY): by default the explored graph is recorded and, after the search,
`enactor.checker.liveness` looks for a reachable cycle a weakly fair run can stay in forever, or a
deadlock, short of the goal (`Explorer.converged`); the shallowest becomes a lasso
(`_full_liveness`). Fairness is `Explorer.fair_mask`. `liveness="sampled"` keeps the older
check: a round-robin `fair_finish` from every k-th state with all plans written.

Random mode runs seeded random schedules (no hashing, larger bounds) for a time budget; a
run is reproduced from its seed.

Counterexamples become `enactor.checker.schedule` documents ("step actor count N", "plan",
"advance"), which `enactor outage --schedule FILE` replays against real processes, and
`replay_in_process` replays through `enactor.checker.sim` to confirm the violation and render the
timeline.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
import random
import time
from array import array
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authd.store.memstore import MemoryStore
from authd.zonefiles.seed import seed_store
from authd.zonefiles.zonefile import load_zone_dir
from enactor import machine as m
from enactor.checker import liveness as lv
from enactor.checker.invariants import (
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
from enactor.checker.snapshots import StoreSnapshots
from enactor.client import perform
from enactor.plan import Endpoint, Plan, plan_label
from enactor.planner import churn, default_capacity

ZONES = Path(__file__).resolve().parents[2] / "zones"
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
    reduce: bool = True  # partial-order reduction (fixed design only; see Explorer.reduced)
    liveness: str = "full"  # full | sampled | off: how EVENTUALLY is checked (see LIVENESS_HELP)
    liveness_every: int = 64  # sampled: a fair finish from every k-th state with all plans written
    fairness: str = "weak"  # full liveness: "weak" (per actor, TLA+ WF) or "none" (diagnostic)
    verify_memo: bool = False  # recompute every memoized transition (tests the abstraction)


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


# State fields no decision reads: `now` is overwritten by the next result before anything
# reads it; `draws` only sets sleep lengths (ignored by the virtual clock); `worked`,
# `installed`, `note`, `last_error` and `status` feed log lines and `enactor status` only
# (machine.py: read solely to word or de-duplicate a log line). Two states that differ only
# there make the same actions forever, so they are one state for the search.
_UNREAD = ("now", "draws", "worked", "installed", "note", "last_error", "status")
_KEY_FIELDS = [f.name for f in dataclasses.fields(m.State) if f.name not in _UNREAD]
_getter = operator.attrgetter(*_KEY_FIELDS)
# Dead values, per phase (a liveness reading of machine.py): `active` is read only by the
# *_ROOT handlers and `flip`, and every path into them sets it first (`read_root`); `reads`
# is read only while gathering a group (PEEK, CHECK, FLIP_READ) and by `flip` (FLIP_READ_ROOT);
# every other path resets it (`read_group`) before reading it.
_P = m.Phase
_LIVE = {
    "active": frozenset({_P.PEEK_ROOT, _P.CHECK_ROOT, _P.FLIP_READ_ROOT}),
    "reads": frozenset({_P.PEEK, _P.CHECK, _P.FLIP_READ, _P.FLIP_READ_ROOT}),
}
_DEAD_AT = [(_KEY_FIELDS.index(f), live) for f, live in _LIVE.items()]


def _state_key(st: m.State) -> tuple[Any, ...]:
    k = _getter(st)
    dead = [i for i, live in _DEAD_AT if st.phase not in live]
    if not dead:
        return k
    out = list(k)
    for i in dead:
        out[i] = None
    return tuple(out)


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
        self.snaps = StoreSnapshots(self.store)
        self.agent_ids: dict[Hashable, int] = {}
        self.por = opts.reduce and not opts.defects
        self.symmetry = opts.reduce and len(self.names) > 1
        self.perms = list(itertools.permutations(range(len(self.names))))
        self.perm_index = {pi: k for k, pi in enumerate(self.perms)}
        # inv[k][j]: the agent that permutation k moves to position j
        self.inv = [[pi.index(j) for j in range(len(pi))] for pi in self.perms]
        self.sym_ids: dict[tuple[str, int], list[int]] = {}
        self.sym_space: dict[str, int] = {}
        self.agent_list: list[Hashable] = []
        self.facts_by_id: dict[int, StoreFacts] = {}
        self.store_done: dict[int, bool] = {}  # store number -> newest plan active, no lock
        # (enactor, its state number, store number, ticks, planner) -> the transition's outcome.
        # `machine.step` and the store are deterministic, so one run of a transition stands
        # for every state that shares those parts (the other enactors' states do not enter
        # it). Agent numbers leave out `draws` and `now`: the outcome's `draws` may then be
        # another path's, which only changes sleep lengths (ignored here; the in-process
        # replay recomputes them).
        self.memo: dict[tuple[int, int, int, int, int], tuple[Agent, int, int, Move]] = {}
        self.transitions = 0

    def _aid(self, agent: Agent) -> int:
        k = (_state_key(agent[0]), agent[1], agent[2])
        aid = self.agent_ids.get(k)
        if aid is None:
            aid = self.agent_ids[k] = len(self.agent_ids)
            self.agent_list.append(k)
        return aid

    def root(self) -> Node:
        agents = []
        for cfg in self.cfgs:
            out = m.step(cfg, m.initial_state(), None)
            agents.append(self._fuse(cfg, (out.state, out.action, False), T0, [])[0])
        return Node(self.snaps.intern(), tuple(agents), tuple(self._aid(a) for a in agents), 1, 0)

    def now(self, node: Node) -> float:
        return T0 + node.ticks * TICK

    # --- transitions ---

    def can_tick(self, node: Node) -> bool:
        if node.ticks >= self.opts.bounds.ticks:
            return False
        return any(v is not None for _, v in self.facts(node).locks)

    def choices(self, node: Node) -> list[int]:
        n = len(self.names)
        out = [i for i, (st, act, crashed) in enumerate(node.agents)
               if not crashed and act is not None and st.phase is not m.Phase.FROZEN]
        if node.planner < self.opts.bounds.plans:
            out.append(n)
        if self.can_tick(node):
            out.append(n + 1)
        return out

    def reduced(self, node: Node, cs: list[int]) -> list[int]:
        """Partial-order reduction (persistent set of one), fixed design only: a point read or
        listing by the enactor that holds its endpoint's live lock, when time can no longer
        jump. Nobody else can write the zone until that enactor releases (every other batch
        carries a preamble that DELETEs a lock value the store no longer has, and the lock
        cannot expire), so the read commutes with everything the others can do meanwhile;
        it changes no invariant's input, and a run of such reads always ends in a batch (no
        cycle ignores the others). One order stands for all.

        Full liveness: the goal predicate is false on both sides of such a read (a lock is in
        the zone), no cycle consists of them only (the cycle proviso, C3 in Clarke, Grumberg
        and Peled, "Model Checking", ch. 10), and the fairness mask of a reduced state is
        taken from the full choice set, so the others' obligations are kept; a check with
        reductions off agrees at a small bound (tests/test_liveness.py)."""
        if not self.por or len(self.names) + 1 in cs:
            return cs
        now = self.now(node)
        locks = None
        for i in cs:
            if i >= len(self.names):
                continue
            st, act, _ = node.agents[i]
            if not isinstance(act, m.ReadRecords | m.ListRecords) or st.lock is None or st.plan is None:
                continue
            parsed = m.parse_lock(st.lock)
            if parsed is None or parsed[1] <= now:
                continue
            if locks is None:
                locks = dict(self.facts(node).locks)
            if locks.get(st.plan.endpoints[st.ep].name) == st.lock:
                return [i]
        return cs

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
        mk = (choice, node.ids[choice], node.store, node.ticks, node.planner)
        hit = self.memo.get(mk)
        if hit is not None and self.opts.verify_memo:
            # Recompute from this path's own concrete state: the abstraction (dead and
            # log-only fields left out of agent numbers) must give the same numbered outcome.
            del self.memo[mk]
            fresh, mv = self.succ(Node(node.store, node.agents, node.ids, node.planner,
                                       node.ticks, node.depth), choice)
            self.transitions -= 1
            if (fresh.ids[choice], fresh.store) != (hit[1], hit[2]):
                raise AssertionError(
                    f"state abstraction unsound at {node.agents[choice][0].phase}: "
                    f"{self.agent_list[hit[1]]} vs {self.agent_list[fresh.ids[choice]]}")
            self.memo[mk] = hit
        if hit is not None:
            agent, aid, key, mv = hit
            return (Node(key, node.agents[:choice] + (agent,) + node.agents[choice + 1:],
                         node.ids[:choice] + (aid,) + node.ids[choice + 1:],
                         node.planner, node.ticks, node.depth + 1), mv)
        self.snaps.at(node.store)
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
        key = self.snaps.intern() if wrote else node.store
        aid = self._aid(agent)
        mv = Move(self.names[choice], tuple(done), tuple(log))
        self.memo[mk] = (agent, aid, key, mv)
        agents = node.agents[:choice] + (agent,) + node.agents[choice + 1:]
        ids = node.ids[:choice] + (aid,) + node.ids[choice + 1:]
        return Node(key, agents, ids, node.planner, node.ticks, node.depth + 1), mv

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
        return self.key_perm(node)[0]

    def key_perm(self, node: Node) -> tuple[Hashable, int]:
        """The state's key, and the number (in `self.perms`) of the renaming that takes the
        node to its canonical image: enactor i of the node is enactor perms[k][i] there (0,
        the identity, without symmetry). The liveness graph uses it to follow an enactor's
        identity around a cycle of symmetry classes."""
        if not self.symmetry:
            return (node.store, node.ids, node.planner, node.ticks), 0
        canon, k = self._canon(node.store, node.ids)
        return (canon, node.planner, node.ticks), k

    # --- symmetry: the enactors are identical up to their names ---

    def _canon(self, sid: int, ids: tuple[int, ...]) -> tuple[Hashable, int]:
        """The least of the state's images under the renamings of the enactors that list them
        in order of a name-blind signature (all renamings when signatures tie).

        Sound because an enactor's name enters its behaviour only as a string in lock values
        (its own, and the holder it reads) and batch comments: no decision orders or compares
        names except `holder == my name` (machine.py), and jitter, which depends on the name,
        only sets sleep lengths. Every invariant treats the enactors alike. The signature is
        the same for every image of a state, so the least image is a function of the orbit."""
        n = len(ids)
        rel = [self._vec(("a", aid))[0] for aid in ids]
        order = sorted(range(n), key=rel.__getitem__)
        if all(rel[order[j]] != rel[order[j + 1]] for j in range(n - 1)):
            pi = [0] * n
            for j, i in enumerate(order):
                pi[i] = j
            perms = [self.perm_index[tuple(pi)]]
        else:
            perms = [k for k, pi in enumerate(self.perms)
                     if all(rel[self.inv[k][j]] <= rel[self.inv[k][j + 1]] for j in range(n - 1))]
        best, best_k = None, 0
        for k in perms:
            inv = self.inv[k]
            cand = (self._vec(("s", sid))[k + 1], tuple(self._vec(("a", ids[i]))[k + 1] for i in inv))
            if best is None or cand < best:
                best, best_k = cand, k
        return best, best_k

    def _vec(self, what: tuple[str, int]) -> list[int]:
        """[name-blind id, id under each renaming] for a store or agent number."""
        out = self.sym_ids.get(what)
        if out is None:
            parts = self._parts(what)
            subs = [[(name, "\x00N\x00") for name in self.names]]
            subs += [[(name, f"\x00{pi[i]}\x00") for i, name in enumerate(self.names)] for pi in self.perms]
            out = []
            for sub in subs:
                renamed = []
                for t in parts:
                    for a, b in sub:
                        t = t.replace(a, b)
                    renamed.append(t)
                # record sets are a set: sort after renaming, so order never depends on names
                text = "\n".join(sorted(renamed)) if what[0] == "s" else renamed[0]
                out.append(self.sym_space.setdefault(text, len(self.sym_space)))
            self.sym_ids[what] = out
        return out

    def _parts(self, what: tuple[str, int]) -> list[str]:
        kind, n = what
        if kind == "s":
            self.snaps.at(n)
            return [f"{z.id} {rs!r}" for z in self.store.list_zones()
                    for rs in self.store.record_sets(z.id) if rs.rtype != "SOA"]
        return [repr(self.agent_list[n])]

    def facts(self, node: Node) -> StoreFacts:
        f = self.facts_by_id.get(node.store)
        if f is None:
            self.snaps.at(node.store)
            f = self.facts_by_id[node.store] = self.checker.facts(self.store)
        return f

    def violations(self, before: Node | None, node: Node) -> list[Violation]:
        f = self.facts(node)
        vs = list(f.violations)
        for name, (_, _, crashed) in zip(self.names, node.agents, strict=False):
            if crashed:
                vs.append(Violation(Inv.NO_CRASH, f"{name} crashed"))
        vs += check_locks(f, self.names, [a[0] for a in node.agents], self.now(node))
        if before is not None and before.store != node.store:
            vs += check_monotonic(self.facts(before), f)
        return vs

    def converged(self, node: Node) -> bool:
        """Every plan written; the newest active on every endpoint; no lock in the zone; every
        live enactor has read the newest plan and holds no lock and no task (its idle poll)."""
        if node.planner < self.opts.bounds.plans:
            return False
        done = self.store_done.get(node.store)
        if done is None:  # the store's part, once per store contents
            f = self.facts(node)
            done = self.store_done[node.store] = not check_newest(
                f, [e.name for e in self.eps], node.planner) and all(v is None for _, v in f.locks)
        if not done:
            return False
        live = [st for st, _, c in node.agents if not c and st.phase is not m.Phase.FROZEN]
        return all(st.plan is not None and st.plan.number == node.planner and st.lock is None
                   and st.task is None for st in live)

    def fair_mask(self, node: Node, cs: Sequence[int]) -> int:
        """The actors weak fairness obliges in this state, as a bit mask (bit i: enactor i,
        bit n: the planner, bit n+1: the clock), matching `fair_finish`: every live enactor
        and the planner are due a step while they can take one; time is due to pass only
        when a lock in the zone has no live holder (an orphan: its holder crashed or froze)
        and someone alive could take it over. A live holder's lock never expires under its
        feet in a fair run (operations take milliseconds), so that is not an obligation.
        The clock bit is set whatever the --ticks bound: a cycle that waits for an orphan
        lock to expire is unfair (time would pass), and beyond the bound not checked."""
        n = len(self.names)
        mask = 0
        for c in cs:
            if c <= n:
                mask |= 1 << c
        if mask & ((1 << n) - 1):
            locks = [v for _, v in self.facts(node).locks if v is not None]
            if locks:
                held = {st.lock for st, _, c in node.agents
                        if not c and st.lock is not None and st.phase is not m.Phase.FROZEN}
                if any(v not in held for v in locks):
                    mask |= 1 << (n + 1)
        return mask

    def cut(self, node: Node) -> bool:
        """Beyond the bounds: not expanded."""
        b = self.opts.bounds
        if b.depth and node.depth >= b.depth:
            return True
        return any(st.attempt > b.lock_losses for st, _, _ in node.agents)

    def frozen(self, node: Node) -> list[str]:
        return [f"{n}: {st.last_error}" for n, (st, _, c) in zip(self.names, node.agents, strict=False)
                if st.phase is m.Phase.FROZEN]


# --- results --------------------------------------------------------------------------------


@dataclass
class Found:
    violation: Violation
    trace: list[Move]
    depth: int
    after_states: int
    after_seconds: float
    cycle_start: int | None = None  # a lasso: trace[cycle_start:] repeats forever
    lasso: str = ""  # "cycle" or "deadlock" for a full liveness counterexample


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
    fair_runs: int = 0  # fair finishes run to check EVENTUALLY (sampled liveness)
    liveness: str = "off"  # how EVENTUALLY was checked: full, sampled or off
    graph_edges: int = 0  # full liveness: edges recorded
    graph_bytes: int = 0  # ... the arrays holding the graph
    live_cycles: int = 0  # SCCs of non-goal states holding a cycle
    live_fair_cycles: int = 0  # ... of which weak fairness lets a run stay in
    live_deadlocks: int = 0
    live_unfair: list[str] = field(default_factory=list)  # a few unfair cycles, described
    liveness_seconds: float = 0.0
    # full liveness: the recorded graph, and a function that re-runs a path of its edges on
    # concrete states from the root -> (moves, end node, node where the second part began)
    graph: lv.Graph | None = field(default=None, repr=False)
    concretize: Callable[[Sequence[int], Sequence[int]], tuple[list[Move], Node, Node | None]] | None = \
        field(default=None, repr=False)
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
                 "trace": [{"who": mv.who, "did": mv.text(), "log": list(mv.log)} for mv in f.trace],
                 **({"lasso": f.lasso, "cycle_start": f.cycle_start} if f.lasso else {})}
                for f in self.found],
            "other_invariants_broken": self.also, "frozen": self.frozen,
            "liveness": {"mode": self.liveness, "fair_finishes": self.fair_runs,
                         "graph_edges": self.graph_edges, "graph_bytes": self.graph_bytes,
                         "cycles_avoiding_goal": self.live_cycles,
                         "fair_cycles_avoiding_goal": self.live_fair_cycles,
                         "deadlocks": self.live_deadlocks, "unfair_examples": self.live_unfair,
                         "seconds": round(self.liveness_seconds, 3)},
            "runs": self.runs, "fair_runs": self.fair_runs, "seed": self.seed,
            "failing_seed": self.failing_seed,
        }


# --- exhaustive search ------------------------------------------------------------------------


def explore(opts: Options) -> Report:
    """Breadth-first over every interleaving within the bounds; the first violation of a
    target invariant is a shortest counterexample (fewest transitions). With
    `liveness="full"` the explored graph is recorded and, once the search is over, searched
    for fair cycles and deadlocks that never reach the goal (`_full_liveness`)."""
    ex = Explorer(opts)
    rep = Report("exhaustive", m.defects_text(opts.defects), opts.bounds,
                 sorted(i.value for i in opts.targets), liveness=_liveness_mode(opts))
    t0 = time.monotonic()
    last = t0
    root = ex.root()
    rk = ex.key(root)
    # State k -> its number; per number, how it was first reached (parent number, move).
    index: dict[Hashable, int] = {rk: 0}
    parent: list[tuple[int, Move] | None] = [None]
    queue: deque[tuple[Node, int]] = deque([(root, 0)])
    wanted = set(opts.targets)
    frozen: set[str] = set()
    live_seen = 0
    fair_steps = 0  # transitions taken by fair finishes (not counted as explored states)
    full = rep.liveness == "full"
    n = len(ex.names)
    graph = lv.Graph(n) if full else None
    kperm = array("B", [0])  # per state: its representative's canonicalising renaming
    if graph is not None:
        # rho[k_rep][k_node]: the renaming from a node's enactor positions to those of the
        # stored representative of its class (both canonicalise to the same image).
        rho = [[graph.comp[graph.inverse[a]][b] for b in range(len(ex.perms))] for a in range(len(ex.perms))]

    def trace_to(i: int) -> list[Move]:
        out: list[Move] = []
        p = parent[i]
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
        cs = ex.choices(node)
        if graph is not None:
            graph.begin(k, ex.fair_mask(node, cs) if opts.fairness == "weak" else 0,
                        ex.converged(node))
        for choice in ex.reduced(node, cs):
            nxt, mv = ex.succ(node, choice)
            if graph is not None:
                nk, kp = ex.key_perm(nxt)
            else:
                nk, kp = ex.key(nxt), 0
            old = index.get(nk)
            if old is not None:
                if graph is not None:
                    graph.edge(old, choice, rho[kperm[old]][kp])
                continue
            i = index[nk] = len(parent)
            parent.append((k, mv))
            if graph is not None:
                kperm.append(kp)
                graph.edge(i, choice, 0)
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
                rep.found.append(Found(hit, trace_to(i), nxt.depth, ex.transitions,
                                       time.monotonic() - t0))
                if opts.collect:
                    wanted = {w for w in wanted if w is not hit.inv}
                    # invariants broken on the same step are found at the same depth
                    for v in vs:
                        if v.inv in wanted:
                            rep.found.append(Found(v, trace_to(i), nxt.depth, ex.transitions,
                                                   time.monotonic() - t0))
                            wanted.discard(v.inv)
                    if not wanted:
                        stop = True
                        break
                else:
                    stop = True
                    break
                continue  # do not expand a violating state
            # A crashed enactor is a violation; the sampled check does not look past it. The
            # full check does (when no-crash is not a target): whether the others still get
            # the newest plan active is the liveness question.
            if any(v.inv is Inv.NO_CRASH for v in vs) and not full:
                continue
            if (rep.liveness == "sampled" and Inv.EVENTUALLY in wanted
                    and nxt.planner >= opts.bounds.plans):
                live_seen += 1
                if live_seen % opts.liveness_every == 1 or opts.liveness_every == 1:
                    rep.fair_runs += 1
                    before_fair = ex.transitions
                    _, moves, lv_vs = fair_finish(ex, nxt)
                    fair_steps += ex.transitions - before_fair
                    # The fair finish answers for EVENTUALLY only; the search itself finds the
                    # shortest trace to anything else (beyond the bounds, noted as such).
                    for v in lv_vs:
                        if v.inv is not Inv.EVENTUALLY:
                            rep.also.setdefault(f"{v.inv.value} (in a fair finish beyond the bounds)",
                                                nxt.depth + len(moves))
                    bad = next((v for v in lv_vs if v.inv is Inv.EVENTUALLY and v.inv in wanted), None)
                    if bad is not None:
                        rep.found.append(Found(bad, trace_to(i) + moves, nxt.depth + len(moves),
                                               ex.transitions, time.monotonic() - t0))
                        wanted.discard(bad.inv)
                        if not opts.collect or not wanted:
                            stop = True
                            break
            queue.append((nxt, i))
        now = time.monotonic()
        if opts.progress and now - last >= opts.progress_every:
            last = now
            opts.progress(f"exploring: {ex.transitions:,} states, {len(parent):,} distinct, "
                          f"depth {node.depth}, frontier {len(queue):,}, "
                          f"{ex.transitions / (now - t0):,.0f} states/s")
        if opts.time_budget and now - t0 > opts.time_budget:
            break
    rep.states = ex.transitions - fair_steps
    rep.distinct = len(parent)
    rep.seconds = time.monotonic() - t0
    rep.exhausted = not queue and not stop
    rep.frozen = sorted(frozen)
    if graph is not None and not stop and Inv.EVENTUALLY in wanted:
        graph.n = max(graph.n, len(parent))
        graph.finish()
        _full_liveness(ex, root, index, graph, rep, t0)
        rep.seconds = time.monotonic() - t0
    return rep


def _liveness_mode(opts: Options) -> str:
    if Inv.EVENTUALLY not in opts.targets or opts.liveness == "off":
        return "off"
    if opts.liveness == "sampled" and not opts.liveness_every:
        return "off"
    return opts.liveness


def _full_liveness(ex: Explorer, root: Node, index: dict[Hashable, int], graph: lv.Graph,
                   rep: Report, t0: float) -> None:
    """Search the recorded graph for a fair cycle or deadlock avoiding the goal; turn the
    shallowest into a concrete lasso of real moves (re-run from the root, following each
    enactor's identity through the symmetry renamings)."""
    t1 = time.monotonic()
    n = len(ex.names)
    rep.graph = graph
    rep.concretize = lambda prefix, cycle: _concretize(ex, root, index, graph, prefix, cycle)
    res = lv.check(graph, n + 2, names=[*ex.names, "planner", "clock"])
    rep.graph_edges = res.edges
    rep.graph_bytes = graph.nbytes()
    rep.live_cycles = res.cycles
    rep.live_fair_cycles = res.fair_cycles
    rep.live_deadlocks = res.deadlocks
    rep.live_unfair = res.unfair_examples
    if res.lasso is not None:
        la = res.lasso
        moves, node, entry_node = _concretize(ex, root, index, graph, la.prefix, la.cycle)
        closes = entry_node is None or (
            (node.store, node.ids, node.planner, node.ticks)
            == (entry_node.store, entry_node.ids, entry_node.planner, entry_node.ticks))
        f = ex.facts(node)
        why = [v.detail for v in check_newest(f, [e.name for e in ex.eps], node.planner)]
        who = [f"{nm} {'crashed' if c else st.phase.value}"
               for nm, (st, _, c) in zip(ex.names, node.agents, strict=True)]
        if node.planner < ex.opts.bounds.plans:
            why.append(f"plans written up to {node.planner}")
        if any(v is not None for _, v in f.locks):
            why.append("a lock is left in the zone")
        state = "; ".join(why) or "not every enactor idle on the newest plan"
        if la.kind == "deadlock":
            detail = (f"deadlock after {len(la.prefix)} steps: nobody can move and the goal is not "
                      f"reached ({state}; {', '.join(who)})")
        else:
            kind = "a fair cycle" if ex.opts.fairness == "weak" else "a cycle (no fairness asked)"
            detail = (f"{kind} of {len(la.cycle)} steps, entered after {len(la.prefix)}, "
                      f"repeats forever without reaching the goal ({state}; {', '.join(who)})"
                      + ("" if closes else "; the cycle closes up to a renaming of the enactors"))
        rep.found.append(Found(Violation(Inv.EVENTUALLY, detail), moves,
                               len(moves), ex.transitions, time.monotonic() - t0,
                               cycle_start=len(la.prefix) if la.kind == "cycle" else None,
                               lasso=la.kind))
    rep.liveness_seconds = time.monotonic() - t1


def _concretize(ex: Explorer, root: Node, index: dict[Hashable, int], graph: lv.Graph, prefix: Sequence[int],
                cycle: Sequence[int]) -> tuple[list[Move], Node, Node | None]:
    """Re-run a path of graph edges on concrete nodes from the root. An edge names an
    enactor by its position in the stored representative of its source; `frame` maps the
    concrete node's positions to the representative's, and each edge's renaming updates it.
    Returns the moves, the end node, and the node where the cycle began."""
    n = len(ex.names)
    node = root  # not ex.root(): that interns the store as it is now, not the seed
    frame = 0
    want = {graph.dst[e] for e in [*prefix, *cycle]}
    keys = {i: k for k, i in index.items() if i in want}  # to check each step lands right
    moves: list[Move] = []
    entry: Node | None = None
    for j, e in enumerate([*prefix, *cycle]):
        if j == len(prefix):
            entry = node
        who = graph.who[e]
        choice = graph.perms[graph.inverse[frame]][who] if who < n else who
        node, mv = ex.succ(node, choice)
        moves.append(mv)
        frame = graph.comp[graph.perm[e]][frame]
        if ex.key(node) != keys[graph.dst[e]]:
            raise AssertionError(f"lasso step {j + 1} does not reach the recorded state")
    if entry is None and cycle:
        entry = node
    return moves, node, entry


# --- random mode --------------------------------------------------------------------------------


def fair_finish(ex: Explorer, node: Node, rounds: int = 300) -> tuple[Node, list[Move], list[Violation]]:
    """Run every live enactor in turn (a fair schedule, the planner done) until each is idle
    with the newest plan; time passes when a whole round writes nothing while a lock is held.
    Returns the end node, the moves, and the violations on the way (EVENTUALLY if the newest
    plan never became active)."""
    moves: list[Move] = []
    n = len(ex.names)
    for _ in range(rounds):
        if ex.converged(node):
            return node, moves, []
        before = node.store
        for i in range(n):
            if i in ex.choices(node):
                prev = node
                node, mv = ex.succ(node, i)
                moves.append(mv)
                vs = ex.violations(prev, node)
                if vs:
                    return node, moves, vs
        if node.store == before:
            # Fair time: operations take milliseconds, so time jumps past a lock's expiry only
            # when nobody alive holds it (a dead or frozen holder's orphan lock), never under
            # a live holder's feet (that is the exhaustive search's slow-holder case).
            held = {st.lock for st, _, c in node.agents
                    if not c and st.lock is not None and st.phase is not m.Phase.FROZEN}
            orphans = [v for _, v in ex.facts(node).locks if v is not None and v not in held]
            if orphans:
                node = Node(node.store, node.agents, node.ids, node.planner, node.ticks + 1, node.depth + 1)
                moves.append(Move("clock"))
    f = ex.facts(node)
    vs = check_newest(f, [e.name for e in ex.eps], node.planner)
    if not vs:
        busy = [f"{n} ({st.phase.value}{', FROZEN: ' + st.last_error if st.last_error else ''})"
                for n, (st, _, _) in zip(ex.names, node.agents, strict=True)]
        vs = [Violation(Inv.EVENTUALLY, f"not converged after {rounds} fair rounds: {', '.join(busy)}")]
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
    """The trace as an `enactor.checker.schedule.Schedule`: one `step ... count` per run of moves by
    the same enactor, `plan` for the planner, `advance` for time; a DNS sample after every
    accepted batch; then a fair aftermath so the outage (or its repair) shows in the timeline."""
    from enactor.checker.schedule import Schedule

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


# --- in-process replay and the timeline ------------------------------------------------------


def clock_text(t: float) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%H:%M:%S.%f")[:-4]


def format_timeline(lines: Iterable[tuple[float, str]]) -> str:
    """One line per decision: `HH:MM:SS.ss  who what`, as `enactor outage` prints it."""
    return "\n".join(f"{clock_text(t)}  {text}" for t, text in lines)


@dataclass
class Replay:
    timeline: list[tuple[float, str]]
    violations: list[Violation]  # at the end of the counterexample (before the aftermath)
    outage: bool  # some stable name answered NOERROR with 0 addresses at some sample


def replay_in_process(sched: Any, defects: frozenset[m.Defect], endpoints: str = "dual") -> Replay:
    """Run a schedule through `enactor.checker.sim` (the enactor helper's in-process driver: same
    machine, client and store, virtual time with real sleep lengths), sampling DNS through the
    invariants' answer logic. The violation is taken where the aftermath begins."""
    from enactor.checker.schedule import Schedule, run_schedule
    from enactor.checker.sim import PlanList, Sim, SimDriver

    store = seeded_store()
    timeline: list[tuple[float, str]] = []
    sim = Sim(store, PlanList([plan_n(1, endpoints)]), t0=T0,
              on_log=lambda t, line: timeline.append((t, line)))
    for n in sched.actors:
        sim.add(m.Config(n, defects=defects))
    names = watched(endpoints_for("both"))
    checker = StoreChecker(names)
    drv = SimDriver(sim, lambda k: plan_n(k, endpoints), [(w.zone, w.name, t) for w in names for t in w.rtypes])
    outage = False
    last = [""]

    def sample(note: str = "") -> None:
        nonlocal outage
        parts = []
        for name, t, lo, hi in checker.resolver.counts(store):
            if lo == 0:
                outage = True
                parts.append(f"{name} {t}: NOERROR, ANSWER 0")
            else:
                parts.append(f"{name} {t}: {lo}" + (f"-{hi}" if hi != lo else "") + " address(es)")
        act = dict(checker.facts(store).active)
        actives = ", ".join(f"{e} -> {plan_label(n) if n is not None else 'nothing'}" for e, n in act.items())
        line = f"DNS {' | '.join(parts)}  [alias {actives}]"
        if line != last[0] or note:  # one line per change of what DNS answers
            timeline.append((sim.clock.t, line + (f"  ({note})" if note else "")))
            last[0] = line

    drv.sample = sample  # type: ignore[method-assign,assignment]
    body = [s for s in sched.steps if s.get("do") != "run"]
    cut = len(body)
    while cut and sched.steps[cut - 1].get("do") == "sample":
        cut -= 1
    main_part = Schedule(sched.actors, sched.steps[:cut] if cut < len(sched.steps) else sched.steps,
                         sched.description)
    rest = Schedule(sched.actors, sched.steps[len(main_part.steps):], sched.description)
    run_schedule(main_part, drv)
    facts = checker.facts(store)
    vs = list(facts.violations)
    meta = (getattr(sched, "extra", None) or {}).get("checker", {})
    if meta.get("lasso"):
        # A liveness lasso: where its cycle leaves the world, the goal (the bound's newest
        # plan active, no lock left) is not reached.
        newest = (meta.get("bounds") or {}).get("plans") or (
            1 + sum(1 for s in main_part.steps if s.get("do") == "plan"))
        vs += check_newest(facts, [e.name for e in endpoints_for(endpoints)], newest)
        if any(v is not None for _, v in facts.locks):
            vs.append(Violation(Inv.EVENTUALLY, "a lock is left in the zone"))
    for a in sim.actors.values():
        if a.crashed is not None:
            vs.append(Violation(Inv.NO_CRASH, f"{a.name} crashed"))
    run_schedule(rest, drv)
    return Replay(timeline, vs, outage)


# --- the command line -----------------------------------------------------------------------

HELP = """Explore the interleavings of the REAL enactor code (enactor.machine over the real
MemoryStore and change-batch rules), check the invariants after every step, and print the
shortest counterexample as a timeline plus a schedule file that `enactor outage --schedule`
replays against real processes.

Invariants: """ + "; ".join(f"{i.value}: {h}" for i, h in __import__(
    "enactor.checker.invariants", fromlist=["INV_HELP"]).INV_HELP.items())


def build_parser(prog: str = "enactor check") -> Any:

    from authd.clean_exit import OneLineParser, RawDefaultsFormatter

    p = OneLineParser(prog=prog, description=HELP, formatter_class=RawDefaultsFormatter,
                      epilog="exit status: 0 when the result is what the design predicts (the "
                             "fixed design: no violation; defects restored: a violation found and "
                             "saved), 1 when it is not, 2 for bad usage")
    p.add_argument("--defects", default="fixed", metavar="LIST",
                   help="which 2025 behaviours to switch on: 'fixed' (default: the fixed design), "
                        "'2025' (all three), or a comma list of stale-check-before-lock, "
                        "cleaner-by-age, rollback-crash-on-missing")
    p.add_argument("--each-defect", action="store_true",
                   help="check each single defect switch alone and report, per invariant, the "
                        "shortest violation or that none occurs within the bounds")
    p.add_argument("--enactors", type=int, default=2, metavar="N",
                   help="enactor instances (default 2, the Spin model's bound; a counterexample "
                        "with 2 is also one with more)")
    p.add_argument("--plans", type=int, default=4, metavar="P",
                   help="the newest plan the planner may write; plan 1 is active at the start "
                        "(default 4)")
    p.add_argument("--lock-losses", type=int, default=2, metavar="L",
                   help="most consecutive failures to get the lock per enactor; states beyond "
                        "are not expanded (default 2)")
    p.add_argument("--ticks", type=int, default=1, metavar="T",
                   help="times virtual time may jump 31 s so every held lock expires "
                        "(takeover paths; default 1)")
    p.add_argument("--depth", type=int, default=0, metavar="D",
                   help="most transitions per schedule (default 0: no bound)")
    p.add_argument("--endpoints", choices=("dual", "legacy", "both"), default="dual",
                   help="endpoints the plans carry: the dual-stack api.aws name (A+AAAA), the "
                        "IPv4-only amazonaws.com name (A), or both (default dual)")
    p.add_argument("--invariants", default="", metavar="LIST",
                   help="invariants whose violation ends the search (comma list or 'all'); "
                        "default: all for the fixed design, 'resolves' (the outage) with defects; "
                        "others broken on the way are reported")
    p.add_argument("--liveness", choices=("full", "sampled", "off"), default="full",
                   help="how 'eventually' is checked. full (default): record the explored state "
                        "graph and, after the search, report any reachable cycle that a weakly "
                        "fair run can stay in forever without the goal (every plan written, the "
                        "newest active, no lock, every live enactor idle), or any deadlock short "
                        "of it, as a lasso: a prefix plus a cycle (TLA+ weak fairness: an actor "
                        "enabled all along must step). sampled: from every K-th state with all "
                        "plans written (--liveness-every) run one round-robin schedule to the "
                        "end; misses bad cycles reachable only from unsampled states or off the "
                        "round-robin order. off: safety invariants only")
    p.add_argument("--fairness", choices=("weak", "none"), default="weak",
                   help="--liveness full: weak (default) obliges each live enactor, the planner "
                        "and, for an orphan lock, time to step when enabled all along; none "
                        "counts every cycle short of the goal (a diagnostic: shows a cycle weak "
                        "fairness rules out, such as an enactor never scheduled)")
    p.add_argument("--liveness-every", type=int, default=64, metavar="K",
                   help="--liveness sampled: run a fair finish from every K-th state that has all "
                        "plans written (default 64; 1 = every state, 0 = never)")
    p.add_argument("--random", type=float, default=0.0, metavar="SECONDS",
                   help="random mode: seeded random schedules for this many seconds, beyond the "
                        "exhaustive bounds (lock losses unbounded)")
    p.add_argument("--seed", type=int, default=1, help="first seed of random mode (run i uses seed+i)")
    p.add_argument("--max-steps", type=int, default=400, metavar="K",
                   help="transitions per random schedule before its fair finish (default 400)")
    p.add_argument("--budget", type=float, default=0.0, metavar="SECONDS",
                   help="stop exhaustive search after this long and say it was not exhausted "
                        "(default 0: none)")
    p.add_argument("--save", default="", metavar="FILE",
                   help="where to write the counterexample schedule (default "
                        "counterexample-<defects>.json when a violation is found; '-' for none)")
    p.add_argument("--no-timeline", action="store_true",
                   help="do not replay the counterexample in-process to print its timeline")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--cells", type=int, metavar="N",
                   help="check cells instead (enactor/cells/check.py): one cell replays the 2025 race, "
                        "the others must never answer empty; `enactor check --cells 2 --help` lists its flags")
    return p


def main(argv: list[str] | None = None) -> int:
    import json
    import sys

    from enactor.checker.invariants import parse_invariants

    if argv and any(a == "--cells" or a.startswith("--cells=") for a in argv):
        from enactor.cells.check import (
            main as cells_main,  # cells (issue 16): enactor/cells/check.py
        )

        return cells_main(list(argv))
    args = build_parser().parse_args(argv)
    try:
        defects = m.parse_defects(args.defects)
        targets = (parse_invariants(args.invariants) if args.invariants
                   else frozenset(Inv) if not defects else frozenset({Inv.RESOLVES}))
    except ValueError as exc:
        print(f"enactor check: {exc}", file=sys.stderr)
        return 2
    bounds = Bounds(args.enactors, args.plans, args.lock_losses, args.ticks, args.depth, args.endpoints)
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        if args.each_defect:
            reports = []
            for d in m.Defect:
                if progress:
                    progress(f"-- defect {d.value} alone")
                reports.append(explore(Options(frozenset({d}), bounds, frozenset(Inv), collect=True,
                                               time_budget=args.budget, progress=progress)))
            if args.json:
                print(json.dumps([r.to_json() for r in reports], indent=1))
            else:
                for r in reports:
                    print(_defect_summary(r))
            return 0
        opts = Options(defects, bounds, targets, time_budget=args.random or args.budget, progress=progress,
                       liveness=args.liveness, liveness_every=args.liveness_every,
                       fairness=args.fairness)
        rep = random_runs(opts, args.seed, args.max_steps) if args.random else explore(opts)
    except ValueError as exc:
        print(f"enactor check: {exc}", file=sys.stderr)
        return 2
    doc = rep.to_json()
    text = [_summary(rep)]
    if rep.found:
        f = rep.found[0]
        names = list(NAMES[: bounds.enactors])
        desc = (f"enactor check --defects {rep.defects}: {f.violation.text()}" if f.lasso else
                f"enactor check --defects {rep.defects}: {f.violation.text()} "
                f"after {f.depth} steps (shortest)" if rep.mode == "exhaustive" else
                f"enactor check --random, seed {rep.failing_seed}: {f.violation.text()}")
        sched = to_schedule(f.trace, names, desc, extra={
            "checker": {"defects": rep.defects, "bounds": dataclasses.asdict(bounds),
                        "invariant": f.violation.inv.value, "depth": f.depth,
                        **({"lasso": f.lasso, "cycle_start": f.cycle_start} if f.lasso else {})}})
        path = args.save or f"counterexample-{rep.defects.replace(',', '+')}.json"
        if path != "-":
            sched.dump(path)
            doc["schedule_file"] = path
            text.append(f"schedule saved to {path}; replay it against real processes with "
                        f"`enactor outage --schedule {path}`")
        text.append("")
        if f.lasso == "cycle":
            text.append(f"lasso counterexample: a prefix of {f.cycle_start} steps from the start, "
                        f"then a cycle of {f.depth - (f.cycle_start or 0)} steps that repeats forever "
                        f"(the schedule file holds the prefix and one pass of the cycle):")
        elif f.lasso == "deadlock":
            text.append(f"deadlock counterexample ({f.depth} steps to a state nobody can leave):")
        else:
            text.append(f"shortest counterexample ({f.depth} steps):" if rep.mode == "exhaustive"
                        else f"counterexample ({f.depth} steps):")
        for i, mv in enumerate(f.trace, 1):
            if f.cycle_start is not None and i == f.cycle_start + 1:
                text.append("  --- the cycle (repeats forever) ---")
            text.append(f"  {i:3d}. {mv.who:10s} {mv.text()}")
        if not args.no_timeline:
            rp = replay_in_process(sched, defects, bounds.endpoints)
            doc["replay"] = {"violations": [v.text() for v in rp.violations], "outage": rp.outage,
                             "timeline": [[round(t, 3), line] for t, line in rp.timeline]}
            try:  # the enactor's own outage report: the same timeline `enactor outage` prints
                from enactor.drills.outage import run_outage

                shown = run_outage(None, sched, inprocess=True).report
            except ImportError:
                shown = format_timeline(rp.timeline)
            text += ["", "timeline (`enactor outage --schedule FILE --inprocess`: the schedule, "
                     "then a free-running aftermath):", shown]
            same = any(v.inv is f.violation.inv for v in rp.violations)
            text.append(f"replay: {'reproduces' if same else 'DOES NOT reproduce'} "
                        f"{f.violation.inv.value}")
    # Exit status = did the check come out as the design predicts? The fixed design must show
    # no violation; with 2025 defects restored, finding the outage *is* the expected result
    # (the demo `check --defects 2025 --save cx.json && outage --schedule cx.json` chains on
    # it), and finding nothing means the reproduction broke. 0: as predicted, 1: a surprise.
    expected = bool(rep.found) == bool(defects)
    doc["as_predicted"] = expected
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        if not expected:
            text.append("UNEXPECTED: " + ("the fixed design broke an invariant" if rep.found else
                                          "no violation with the defects restored"))
        print("\n".join(text))
    return 0 if expected else 1


def _summary(rep: Report) -> str:
    b = rep.bounds
    losses = "lock losses unbounded" if rep.mode == "random" else f"<= {b.lock_losses} lock losses in a row"
    head = (f"enactor check ({rep.mode}, defects: {rep.defects}; {b.enactors} enactors, plans up to "
            f"{b.plans}, {losses}, {b.ticks} lock expiry jump(s), "
            f"endpoints {b.endpoints}; answers via {rep.answer_logic})")
    rate = f"{rep.states / rep.seconds:,.0f} states/s" if rep.seconds else ""
    if rep.mode == "random":
        counts = f"{rep.runs} runs (seed {rep.seed}), {rep.states:,} steps, deepest {rep.depth}, {rep.seconds:.1f}s"
    else:
        counts = (f"{rep.states:,} states explored, {rep.distinct:,} distinct, depth {rep.depth}, "
                  f"{rep.seconds:.1f}s, {rate}; {rep.cut:,} states at a bound; "
                  f"liveness ({rep.liveness}): "
                  + _liveness_text(rep))
    if rep.found:
        verdict = f"VIOLATION: {rep.found[0].violation.text()} (at depth {rep.found[0].depth})"
    elif rep.mode == "random":
        verdict = "no violation"
    else:
        verdict = "no violation" + ("" if rep.exhausted else " so far (NOT exhausted: budget ran out)")
    lines = [head, counts, verdict]
    if rep.also:
        lines.append("also broken on the way (not search targets): " +
                     ", ".join(f"{k} at depth {v}" for k, v in sorted(rep.also.items(), key=lambda kv: kv[1])))
    if rep.liveness == "full" and rep.live_unfair and not rep.found:
        lines.append(f"every cycle short of the goal is unfair, e.g. {rep.live_unfair[0]}")
    for fr in rep.frozen:
        lines.append(f"FROZEN (allowed): {fr}")
    return "\n".join(lines)


def _liveness_text(rep: Report) -> str:
    if rep.liveness == "sampled":
        return f"{rep.fair_runs:,} fair finishes checked 'eventually'"
    if rep.liveness == "off":
        return "'eventually' not checked"
    if not rep.graph_edges and rep.found:
        return "not run (a safety violation ended the search)"
    return (f"{rep.graph_edges:,} edges recorded ({rep.graph_bytes / 1e6:.1f} MB), "
            f"{rep.live_cycles:,} cycles short of the goal, {rep.live_fair_cycles:,} of them fair, "
            f"{rep.live_deadlocks:,} deadlocks ({rep.liveness_seconds:.2f}s)")


def _defect_summary(rep: Report) -> str:
    found = {f.violation.inv: f for f in rep.found}
    lines = [f"defect {rep.defects} alone: {rep.states:,} states, {rep.distinct:,} distinct, "
             f"{rep.seconds:.1f}s, {'exhausted' if rep.exhausted or len(found) == len(Inv) else 'NOT exhausted'}"]
    for inv in Inv:
        f = found.get(inv)
        if f is not None:
            lines.append(f"  {inv.value:10s} BREAKS at depth {f.depth}: {f.violation.detail}")
        else:
            lines.append(f"  {inv.value:10s} holds within the bounds")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
