"""Full liveness under weak fairness (`enactor.checker.liveness`): hand-made transition systems with
known answers, and the real checker (`enactor.checker.check --liveness full`)."""

from __future__ import annotations

import pytest

from enactor import machine as m
from enactor.checker import check as c
from enactor.checker import liveness as lv
from enactor.checker.invariants import Inv

GOOD = 9  # the goal state in the hand-made systems


def _states(g: lv.Graph, edges: list[int]) -> list[int]:
    return lv.walk_states(g, edges)


def test_unfair_cycle_is_not_a_violation() -> None:
    # 0 spins on actor 0 forever while actor 1, enabled all along, could reach the goal.
    g = lv.Graph.from_edges({0: [(0, 0), (GOOD, 1)], GOOD: [(GOOD, 0)]}, good={GOOD})
    res = lv.check(g, 2)
    assert res.ok and res.cycles == 1 and res.fair_cycles == 0
    assert "1 continuously enabled" in res.unfair_examples[0]


def test_fair_cycle_is_a_violation_with_a_lasso() -> None:
    # 0 -a0-> 1 -a1-> 2 -a0-> 1: both actors step inside {1, 2}; the goal is never reached.
    g = lv.Graph.from_edges({0: [(1, 0), (GOOD, 1)], 1: [(2, 1)], 2: [(1, 0)], GOOD: []},
                            good={GOOD})
    res = lv.check(g, 2)
    assert res.lasso is not None and res.lasso.kind == "cycle"
    la = res.lasso
    assert _states(g, la.prefix) == [1] and la.entry == 1
    assert _states(g, la.cycle)[-1] == la.entry  # the cycle closes
    assert {g.who[e] for e in la.cycle} == {0, 1}  # and both actors step on it


def test_weak_not_strong_fairness() -> None:
    # Actor 1 can escape to the goal from 0 but is disabled in 1: not continuously enabled,
    # so weak fairness (TLA+ WF) does not force it, and cycling 0 <-> 1 on actor 0 is fair.
    g = lv.Graph.from_edges({0: [(1, 0), (GOOD, 1)], 1: [(0, 0)], GOOD: [(GOOD, 0)]}, good={GOOD})
    res = lv.check(g, 2)
    assert res.lasso is not None and res.lasso.kind == "cycle"
    assert _states(g, res.lasso.cycle) in ([1, 0], [0, 1])


def test_deadlock_short_of_the_goal_is_a_violation_but_a_bound_is_not() -> None:
    dead = lv.Graph.from_edges({0: [(1, 0), (GOOD, 1)], 1: [], GOOD: [(GOOD, 0)]}, good={GOOD})
    res = lv.check(dead, 2)
    assert res.lasso is not None and res.lasso.kind == "deadlock"
    assert res.lasso.entry == 1 and res.lasso.cycle == [] and res.deadlocks == 1
    # state 1 beyond a bound (never expanded): nothing is known of it, nothing is reported
    cut = lv.Graph.from_edges({0: [(1, 0), (GOOD, 1)], GOOD: [(GOOD, 0)]}, good={GOOD})
    assert lv.check(cut, 2).ok
    # a good deadlock is fine
    assert lv.check(lv.Graph.from_edges({0: [(GOOD, 0)], GOOD: []}, good={GOOD}), 1).ok


def test_the_shallowest_bad_component_is_reported() -> None:
    # a deep fair cycle {5,6} and a shallow deadlock 2: the deadlock is the counterexample
    edges = {0: [(1, 0), (2, 1)], 1: [(3, 0)], 3: [(4, 0)], 4: [(5, 0)], 5: [(6, 0)], 6: [(5, 0)],
             2: []}
    res = lv.check(lv.Graph.from_edges(edges), 2)
    assert res.lasso is not None and res.lasso.kind == "deadlock" and res.lasso.entry == 2
    assert res.fair_cycles == 1 and res.deadlocks == 1


def test_sampling_misses_what_the_full_check_finds() -> None:
    # A fair cycle 3 -a0-> 4 -a1-> 3 that never reaches the goal. The round-robin schedule
    # the sampled check runs takes each actor's first edge, and actor 1's first edge out of
    # 4 goes to the goal: from every state, sampled or not, round-robin looks fine.
    edges = {0: [(1, 0), (2, 1)], 1: [(GOOD, 0)], 2: [(3, 1), (GOOD, 0)], 3: [(4, 0)],
             4: [(GOOD, 1), (3, 1)], GOOD: [(GOOD, 0)]}
    g = lv.Graph.from_edges(edges, good={GOOD})
    assert lv.sampled(g, every=4, actors=2) == []
    assert lv.sampled(g, every=1, actors=2) == []
    res = lv.check(g, 2)
    assert res.lasso is not None and res.lasso.kind == "cycle"
    assert _states(g, res.lasso.prefix) == [2, 3]
    assert _states(g, res.lasso.cycle) == [4, 3]


def test_symmetry_frames_follow_an_actor_around_the_cycle() -> None:
    # Two symmetric actors; one class-state 0 whose only edge moves position 0 and swaps the
    # positions (perm 1). Concretely the actors alternate, so the cycle is fair, but only
    # when the renaming is followed: read naively, position 1 never moves.
    g = lv.Graph(2)
    g.begin(0, 0b11, False)
    g.edge(0, 0, 1)  # who=0, successor positions swapped relative to the representative
    g.finish()
    res = lv.check(g, 2)
    assert res.lasso is not None and res.lasso.kind == "cycle"
    assert len(res.lasso.cycle) == 2  # the concrete cycle goes round twice to close
    # without the swap, actor 1 is enabled all along and never moves: unfair
    h = lv.Graph(2)
    h.begin(0, 0b11, False)
    h.edge(0, 0, 0)
    h.finish()
    assert lv.check(h, 2).ok


def test_graph_rejects_out_of_order_expansion() -> None:
    g = lv.Graph(0)
    g.begin(3, 0, False)
    with pytest.raises(ValueError):
        g.begin(1, 0, False)


# --- the real checker -----------------------------------------------------------------------


def test_fixed_design_has_no_fair_cycle_short_of_the_goal() -> None:
    rep = c.explore(c.Options(bounds=c.Bounds(enactors=2, plans=3, lock_losses=2, ticks=1),
                              liveness="full", time_budget=120))
    assert rep.exhausted and rep.ok, [f.violation.text() for f in rep.found]
    assert rep.liveness == "full" and rep.graph_edges >= rep.distinct - 1
    # there are cycles short of the goal (an idle enactor polling while the other holds
    # work), and weak fairness rules every one of them out
    assert rep.live_cycles > 0 and rep.live_fair_cycles == 0 and rep.live_deadlocks == 0


def test_fixed_design_same_verdict_without_symmetry_and_partial_order() -> None:
    on = c.explore(c.Options(bounds=c.Bounds(enactors=2, plans=2, ticks=1), time_budget=120))
    off = c.explore(c.Options(bounds=c.Bounds(enactors=2, plans=2, ticks=1), reduce=False,
                              time_budget=120))
    assert on.ok and off.ok and on.exhausted and off.exhausted
    assert off.distinct > on.distinct and off.live_fair_cycles == on.live_fair_cycles == 0


@pytest.fixture(scope="module")
def wedge() -> c.Report:
    """The 2025 crash loop: with 'eventually' the only target, the search goes on past the
    crashes, and both enactors end crashed on the dangling rollback, nothing repairing it."""
    return c.explore(c.Options(m.parse_defects("2025"), c.Bounds(enactors=2, plans=4, ticks=1),
                               frozenset({Inv.EVENTUALLY}), liveness="full", time_budget=150))


def test_2025_crash_loop_is_a_liveness_violation_with_a_lasso(wedge: c.Report) -> None:
    assert wedge.found, "the full check must find the wedge"
    f = wedge.found[0]
    assert f.violation.inv is Inv.EVENTUALLY and f.lasso == "deadlock"
    assert "enactor-a crashed, enactor-b crashed" in f.violation.detail
    assert "not the newest plan-0004" in f.violation.detail
    sched = c.to_schedule(f.trace, ["enactor-a", "enactor-b"], "wedge",
                          extra={"checker": {"lasso": f.lasso, "cycle_start": f.cycle_start}})
    rp = c.replay_in_process(sched, m.parse_defects("2025"))
    assert rp.outage and {Inv.EVENTUALLY, Inv.NO_CRASH} <= {v.inv for v in rp.violations}


def test_2025_crash_loop_is_missed_by_sampling() -> None:
    rep = c.explore(c.Options(m.parse_defects("2025"), c.Bounds(enactors=2, plans=4, ticks=1),
                              frozenset({Inv.EVENTUALLY}), liveness="sampled", liveness_every=64,
                              time_budget=150))
    assert rep.exhausted and rep.ok and rep.fair_runs > 0  # the sample saw no wedge


def test_without_fairness_the_fixed_design_has_a_cycle_and_it_replays() -> None:
    """--fairness none: every cycle short of the goal counts, so the fixed design shows one
    (an enactor polling while the planner is never scheduled). It is re-run step by step on
    concrete states (each step checked against the recorded graph) and closes exactly."""
    rep = c.explore(c.Options(bounds=c.Bounds(enactors=2, plans=2, ticks=1), fairness="none",
                              time_budget=60))
    assert rep.found and rep.live_fair_cycles == rep.live_cycles > 0
    f = rep.found[0]
    assert f.lasso == "cycle" and f.cycle_start is not None and f.depth > f.cycle_start
    assert "no fairness asked" in f.violation.detail and "up to a renaming" not in f.violation.detail
    sched = c.to_schedule(f.trace, ["enactor-a", "enactor-b"], "unfair cycle", extra={"checker": {
        "lasso": f.lasso, "cycle_start": f.cycle_start, "bounds": {"plans": 2}}})
    rp = c.replay_in_process(sched, frozenset())
    assert any(v.inv is Inv.EVENTUALLY for v in rp.violations) and not rp.outage


def _every_edge(g: lv.Graph, comp: set[int], entry: int) -> list[int]:
    """A closed walk from (entry, identity) through every edge of the component, in the
    product of states and renamings (so every recorded renaming is composed on the way)."""
    prod = lv._Product(g, comp)
    cur, walk = (entry, 0), []
    for u in sorted(comp):
        for e in range(g.start[u], g.start[u + 1]):
            if g.dst[e] not in comp:
                continue
            steps, cur = prod.path(cur, lambda node, u=u: node[0] == u)
            walk += [*steps, e]
            cur = (g.dst[e], g.comp[g.perm[e]][cur[1]])
    steps, _ = prod.path(cur, lambda node: node == (entry, 0))
    return walk + steps


@pytest.mark.parametrize("enactors,endpoints", [(2, "dual"), (3, "legacy")])
def test_every_cycle_closes_on_concrete_states_through_the_renamings(enactors: int, endpoints: str) -> None:
    """The symmetry frames, checked on every cycle of the real graph: with no fairness
    asked every cycle short of the goal is a candidate; each is re-run from the root on
    concrete states (every step must land on the recorded class) and must come back to
    exactly the concrete state it left, not merely to a renaming of it."""
    rep = c.explore(c.Options(bounds=c.Bounds(enactors=enactors, plans=2, ticks=0, endpoints=endpoints),
                              fairness="none", time_budget=60))
    g, run = rep.graph, rep.concretize
    assert g is not None and run is not None
    dist, via, pred = lv._bfs(g)
    inside = bytearray(1 if g.expanded[u] and not g.good[u] else 0 for u in range(g.n))
    comps = lv.sccs(g, inside)
    assert len(comps) == rep.live_cycles > 10
    swapped = 0
    for comp in comps:
        entry = min(comp, key=lambda v: (dist[v], v))
        prefix = []
        v = entry
        while via[v] >= 0:
            prefix.append(via[v])
            v = pred[v]
        cycle = _every_edge(g, set(comp), entry)
        swapped += any(g.perm[e] for e in cycle)
        _, end, start = run(prefix[::-1], cycle)
        assert start is not None
        assert (end.store, end.ids, end.planner, end.ticks) == (start.store, start.ids, start.planner, start.ticks)
    assert swapped, "some cycle must pass through a renaming, or the frames were not tested"


def test_cli_liveness_modes_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        c.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for word in ("--liveness {full,sampled,off}", "--fairness {weak,none}", "weak fairness", "lasso",
                 "round-robin"):
        assert word in out
