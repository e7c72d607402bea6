"""Liveness under weak fairness over an explored state graph: fair cycles and deadlocks that
never reach the goal. Pure core: integer arrays in, a lasso (edge numbers) out; no I/O, no clock.

The property is "always eventually good" (TLA+ `[]<>Good`, in `enactor.checker.check` the EVENTUALLY
invariant: every plan written, the newest active, no lock, every live enactor idle). A
behaviour violates it iff, from some point on, it never visits a good state. In a finite graph
such a behaviour ends in a strongly connected component (SCC) of the non-good states, or in
a deadlock (a state with no successor, which a behaviour stutters in forever). So, as model
checkers do (SPIN's acceptance cycles, TLC's liveness checking), after the exhaustive search:

1. drop the good states and the states not expanded (beyond a bound: nothing is known of
   their successors, so no cycle may pass through them and they are not deadlocks);
2. find the SCCs of what is left (iterative Tarjan: no recursion limit);
3. keep the SCCs that a *fair* behaviour can stay in forever, and the deadlocks;
4. the shallowest one (breadth-first distance from the initial state) is the counterexample:
   a prefix from the initial state, then a cycle that repeats forever (a lasso).

Fairness is weak fairness per actor, as TLA+ defines WF_vars(A) (Lamport, "Specifying
Systems", 2002, section 8.4; "The Temporal Logic of Actions", TOPLAS 16(3), 1994): a behaviour
is fair to actor A iff A is not *continuously* enabled from some point on without taking a
step, i.e. `[]<>~ENABLED <A>_v \\/ []<><A>_v`. An infinite path that stays inside an SCC C and
uses every edge of C infinitely often is the fairest one C has, so C admits a fair behaviour
iff every actor either takes a step on some edge of C or is disabled in some state of C (for
weak fairness no decomposition into sub-SCCs is needed; strong fairness would need one).
Which actors weak fairness applies to, and when each counts as enabled, is the caller's
choice: `Graph.enabled` holds, per state, the bit mask of the actors fairness obliges there.

Symmetry. A graph over symmetry classes (the checker merges states that differ only by a
renaming of the enactors) labels an edge with the *position* of the actor that moved in the
stored representative of its source, plus the permutation from the successor's positions to
its own stored representative's. Actor identity around a cycle is then tracked as a frame (a
permutation: concrete actor -> position in the representative). The fairness test and the
cycle are computed in the product (state, frame), whose part reachable inside C is strongly
connected and finite (the frames form a group), so "some concrete actor is enabled
everywhere in the product and moves nowhere" is exactly the unfair case. Actors numbered
`permuted` and up (the planner, the clock) are never renamed.
"""

from __future__ import annotations

import itertools
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field


class Graph:
    """A recorded state graph. States are 0..n-1, 0 the initial one. Expand states in
    increasing order (`begin`, then its `edge`s); states never begun are unexpanded."""

    def __init__(self, permuted: int = 0):
        self.permuted = permuted  # actors 0..permuted-1 are renamed by symmetry
        self.perms: list[tuple[int, ...]] = list(itertools.permutations(range(permuted))) or [()]
        self.perm_index = {p: k for k, p in enumerate(self.perms)}
        # comp[a][b]: the permutation "b, then a"; inverse[a]
        self.comp = [[self.perm_index[tuple(a[b[i]] for i in range(permuted))] for b in self.perms]
                     for a in self.perms]
        self.inverse = [self.perm_index[tuple(p.index(j) for j in range(permuted))] for p in self.perms]
        self.start = array("q")  # CSR: edges of state u are start[u]..start[u+1]-1
        self.dst = array("i")
        self.who = array("B")  # the actor (position in the source's representative)
        self.perm = array("B")  # successor positions -> its representative's positions
        self.enabled = array("Q")  # per state: bit mask of actors weak fairness obliges there
        self.good = bytearray()
        self.expanded = bytearray()
        self.n = 0  # states known (begun or not)

    # --- building ---

    def _grow(self, u: int) -> None:
        while len(self.start) <= u:
            self.start.append(len(self.dst))
            self.enabled.append(0)
            self.good.append(0)
            self.expanded.append(0)

    def begin(self, u: int, enabled: int, good: bool) -> None:
        """Expand state u: its edges follow. `enabled`: bit a set iff actor a is enabled here
        (in the sense fairness uses); `good`: the goal holds here."""
        if u < len(self.start) - 1 or (len(self.start) == u + 1 and self.expanded[u]):
            raise ValueError(f"state {u} expanded out of order")
        self._grow(u)
        self.start[u] = len(self.dst)
        self.enabled[u] = enabled
        self.good[u] = 1 if good else 0
        self.expanded[u] = 1
        self.n = max(self.n, u + 1)

    def edge(self, dst: int, who: int, perm: int = 0) -> None:
        self.dst.append(dst)
        self.who.append(who)
        self.perm.append(perm)
        self.n = max(self.n, dst + 1)

    def finish(self) -> None:
        """Close the last state's edge list; states named only as successors (and states
        skipped by `begin`) are unexpanded and own no edges."""
        self._grow(self.n)

    def nbytes(self) -> int:
        return sum(a.itemsize * len(a) for a in (self.start, self.dst, self.who, self.perm, self.enabled)) \
            + len(self.good) + len(self.expanded)

    @classmethod
    def from_edges(cls, edges: dict[int, Sequence[tuple[int, int]]], good: Iterable[int] = (),
                   enabled: dict[int, int] | None = None,
                   expanded: Iterable[int] | None = None) -> Graph:
        """A hand-made graph (tests): state -> [(successor, actor)]. Enabled defaults to the
        actors that have an edge out of the state; expanded to every state in `edges`."""
        g = cls(0)
        good = set(good)
        exp = set(edges) if expanded is None else set(expanded)
        last = max([*edges, *(d for es in edges.values() for d, _ in es), 0])
        for u in range(last + 1):
            if u not in exp:
                continue
            es = edges.get(u, ())
            en = enabled[u] if enabled and u in enabled else sum({1 << a for _, a in es})
            g.begin(u, en, u in good)
            for d, a in es:
                g.edge(d, a)
        g.n = max(g.n, last + 1)
        g.finish()
        return g


# --- analysis ---------------------------------------------------------------------------------


@dataclass
class Lasso:
    kind: str  # "cycle" (a fair cycle avoiding the goal) or "deadlock" (no successor, not good)
    prefix: list[int]  # edge numbers from state 0 to `entry`
    cycle: list[int]  # edge numbers from `entry` back to it (empty for a deadlock)
    entry: int
    scc_size: int = 1


@dataclass
class Result:
    states: int = 0
    edges: int = 0
    reachable_bad: int = 0  # expanded, non-good states reachable from the initial state
    cycles: int = 0  # SCCs of non-good states with a cycle
    fair_cycles: int = 0  # ... of which a fair behaviour can stay in forever
    deadlocks: int = 0
    lasso: Lasso | None = None
    unfair_examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lasso is None


def _bfs(g: Graph) -> tuple[array, array, array]:
    """Distance, incoming edge and its source, for every state reachable from 0 (shortest
    prefixes)."""
    dist = array("i", [-1]) * g.n
    via = array("i", [-1]) * g.n
    pred = array("i", [-1]) * g.n
    if g.n == 0:
        return dist, via, pred
    dist[0] = 0
    q = deque([0])
    start, dst = g.start, g.dst
    while q:
        u = q.popleft()
        du = dist[u] + 1
        for e in range(start[u], start[u + 1]):
            v = dst[e]
            if dist[v] < 0:
                dist[v] = du
                via[v] = e
                pred[v] = u
                q.append(v)
    return dist, via, pred


def sccs(g: Graph, inside: bytearray) -> list[list[int]]:
    """Tarjan's SCCs of the subgraph on states with inside[u], iteratively; only the SCCs
    that hold a cycle (more than one state, or a self-loop)."""
    n = g.n
    index = array("i", [-1]) * n
    low = array("i", [0]) * n
    on = bytearray(n)
    stack: list[int] = []
    out: list[list[int]] = []
    start, dst = g.start, g.dst
    counter = 0
    for s in range(n):
        if not inside[s] or index[s] >= 0:
            continue
        index[s] = low[s] = counter
        counter += 1
        stack.append(s)
        on[s] = 1
        call = [(s, start[s])]
        while call:
            v, ei = call[-1]
            end = start[v + 1]
            pushed = False
            while ei < end:
                w = dst[ei]
                ei += 1
                if not inside[w]:
                    continue
                if index[w] < 0:
                    call[-1] = (v, ei)
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on[w] = 1
                    call.append((w, start[w]))
                    pushed = True
                    break
                if on[w] and index[w] < low[v]:
                    low[v] = index[w]
            if pushed:
                continue
            call.pop()
            if call:
                u = call[-1][0]
                if low[v] < low[u]:
                    low[u] = low[v]
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on[w] = 0
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1 or any(dst[e] == v for e in range(start[v], start[v + 1])):
                    out.append(comp)
    return out


class _Product:
    """(state, frame) inside one SCC: frame = concrete actor -> position in the state's
    representative. Edges move concrete actor frame^-1(who)."""

    def __init__(self, g: Graph, members: set[int]):
        self.g, self.members = g, members

    def concrete(self, frame: int, who: int) -> int:
        g = self.g
        return g.perms[g.inverse[frame]][who] if who < g.permuted else who

    def enabled(self, u: int, frame: int) -> int:
        g = self.g
        mask = g.enabled[u]
        if not g.permuted or frame == 0:
            return mask
        p = g.perms[frame]
        out = mask >> g.permuted << g.permuted
        for x in range(g.permuted):
            if mask >> p[x] & 1:
                out |= 1 << x
        return out

    def succ(self, u: int, frame: int) -> Iterable[tuple[int, int, int, int]]:
        """(edge, successor, its frame, concrete mover) for edges staying inside."""
        g = self.g
        for e in range(g.start[u], g.start[u + 1]):
            v = g.dst[e]
            if v in self.members:
                yield e, v, g.comp[g.perm[e]][frame], self.concrete(frame, g.who[e])

    def judge(self, entry: int) -> tuple[bool, int, int]:
        """(fair?, actors continuously enabled, actors that move) over the product reachable
        from (entry, identity)."""
        seen = {(entry, 0)}
        q = deque(seen)
        always = -1
        moved = 0
        while q:
            u, f = q.popleft()
            always &= self.enabled(u, f)
            for _e, v, f2, who in self.succ(u, f):
                moved |= 1 << who
                if (v, f2) not in seen:
                    seen.add((v, f2))
                    q.append((v, f2))
        return always & ~moved == 0, always, moved

    def path(self, frm: tuple[int, int], node_ok: Callable[[tuple[int, int]], bool],
             mover_ok: Callable[[int], bool] = lambda who: False) -> tuple[list[int], tuple[int, int]]:
        """Shortest edge list from `frm` to a product node with node_ok, or through an edge
        whose concrete mover has mover_ok (the walk then ends after that edge)."""
        back: dict[tuple[int, int], tuple[tuple[int, int], int] | None] = {frm: None}
        q = deque([frm])
        while q:
            cur = q.popleft()
            if node_ok(cur):
                return self._unwind(back, cur), cur
            for e, v, f2, who in self.succ(*cur):
                if mover_ok(who):
                    return self._unwind(back, cur) + [e], (v, f2)
                if (v, f2) not in back:
                    back[(v, f2)] = (cur, e)
                    q.append((v, f2))
        raise AssertionError("goal unreachable inside a strongly connected component")

    @staticmethod
    def _unwind(back: dict[tuple[int, int], tuple[tuple[int, int], int] | None],
                node: tuple[int, int]) -> list[int]:
        out = []
        p = back[node]
        while p is not None:
            out.append(p[1])
            p = back[p[0]]
        return out[::-1]

    def fair_cycle(self, entry: int, actors: int) -> list[int]:
        """A closed walk from (entry, identity) back to it, fair to every actor: each actor
        moves on it or is disabled somewhere on it."""
        home = (entry, 0)
        cur = home
        walk: list[int] = []
        moved, disabled = self._tally(entry, walk)
        for a in range(actors):
            if (moved | disabled) >> a & 1:
                continue
            steps, cur = self.path(cur, lambda node, a=a: not self.enabled(*node) >> a & 1,
                                   lambda who, a=a: who == a)
            walk += steps
            moved, disabled = self._tally(entry, walk)
        if not walk:  # a cycle needs at least one step: take one, then come back
            e, v, f2, _ = next(iter(self.succ(entry, 0)))
            walk, cur = [e], (v, f2)
        steps, cur = self.path(cur, lambda node: node == home)
        walk += steps
        return walk

    def _tally(self, entry: int, walk: list[int]) -> tuple[int, int]:
        """(actors that move on the walk, actors disabled somewhere on it)."""
        g = self.g
        u, f = entry, 0
        moved, disabled = 0, ~self.enabled(entry, 0)
        for e in walk:
            moved |= 1 << self.concrete(f, g.who[e])
            u, f = g.dst[e], g.comp[g.perm[e]][f]
            disabled |= ~self.enabled(u, f)
        return moved, disabled


def check(g: Graph, actors: int, describe_unfair: int = 3,
          names: Sequence[str] | None = None) -> Result:
    """Find the shallowest fair cycle or deadlock that avoids the good states (see module
    docstring). `actors`: how many actor bits there are (for the fairness walk); `names`:
    what to call them in the descriptions of unfair cycles (their numbers otherwise)."""
    res = Result(states=g.n, edges=len(g.dst))
    dist, via, pred = _bfs(g)
    inside = bytearray(g.n)
    best: tuple[int, int, str, list[int]] | None = None  # (depth, entry, kind, scc)
    for u in range(g.n):
        if dist[u] >= 0 and g.expanded[u] and not g.good[u]:
            inside[u] = 1
            res.reachable_bad += 1
            if g.start[u] == g.start[u + 1]:
                res.deadlocks += 1
                if best is None or dist[u] < best[0]:
                    best = (dist[u], u, "deadlock", [u])
    for comp in sccs(g, inside):
        res.cycles += 1
        entry = min(comp, key=lambda v: (dist[v], v))
        prod = _Product(g, set(comp))
        fair, always, moved = prod.judge(entry)
        if not fair:
            if len(res.unfair_examples) < describe_unfair:
                res.unfair_examples.append(
                    f"{len(comp)} state(s) at depth {dist[entry]}: actor(s) "
                    f"{_bits(always & ~moved, names)} continuously enabled but never step")
            continue
        res.fair_cycles += 1
        if best is None or dist[entry] < best[0]:
            best = (dist[entry], entry, "cycle", comp)
    if best is None:
        return res
    depth, entry, kind, comp = best
    prefix: list[int] = []
    v = entry
    while via[v] >= 0:
        e = via[v]
        prefix.append(e)
        v = pred[v]
    prefix.reverse()
    cycle = _Product(g, set(comp)).fair_cycle(entry, actors) if kind == "cycle" else []
    res.lasso = Lasso(kind, prefix, cycle, entry, len(comp))
    return res


def _bits(mask: int, names: Sequence[str] | None = None) -> str:
    return ", ".join(names[i] if names and i < len(names) else str(i)
                     for i in range(mask.bit_length()) if mask >> i & 1) or "none"


def walk_states(g: Graph, edges: Sequence[int]) -> list[int]:
    """The states a list of edges visits after the first (for tests and reports)."""
    return [g.dst[e] for e in edges]


def sampled(g: Graph, every: int, actors: int, rounds: int = 50) -> list[int]:
    """The sampled check `enactor.checker.check` had before this module, over a recorded graph (for
    comparison and tests): from every `every`-th expanded state, run one round-robin schedule
    (each actor in turn takes its first edge) for up to `rounds` rounds; a start state from
    which it never reaches a good state is reported. It sees one schedule from a few states:
    a fair cycle off that schedule, or reachable only from unsampled states, is missed."""
    bad = []
    seen = 0
    for u in range(g.n):
        if not g.expanded[u]:
            continue
        seen += 1
        if (seen - 1) % every:
            continue
        v = u
        for _ in range(rounds):
            if g.good[v]:
                break
            for a in range(actors):
                e = next((e for e in range(g.start[v], g.start[v + 1]) if g.who[e] == a), None)
                if e is not None:
                    v = g.dst[e]
                if g.good[v]:
                    break
        if not g.good[v]:
            bad.append(u)
    return bad
