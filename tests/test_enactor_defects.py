"""One test per 2025 defect switch: exactly which bad outcome that defect alone produces,
and that the fixed design does not produce it. In-process, virtual time, deterministic."""

from __future__ import annotations

import pytest

from enactor import machine as m
from enactor.checker.schedule import run_schedule, schedule_2025
from enactor.checker.sim import SimDriver, active_plan, addresses, rollback_plan
from enactor.checker.testing import (
    DUAL,
    LEGACY,
    delete_tree,
    make_driver,
    make_sim,
    plan_n,
    zone_id,
)

D = m.Defect


def run_2025(defects: frozenset[m.Defect], typo: bool = False) -> SimDriver:
    sim = make_sim(defects, lock_ttl=10)
    drv = make_driver(sim)
    run_schedule(schedule_2025(12, typo=typo), drv)
    return drv


def active_series(drv: SimDriver) -> list[int | None]:
    return [s.active for s in drv.samples]


def min_answers(drv: SimDriver) -> int:
    return min(min(s.answers.values()) for s in drv.samples)


def test_all_2025_defects_reproduce_the_outage() -> None:
    drv = run_2025(m.ALL_DEFECTS)
    last = drv.samples[-1]
    assert last.answers[f"{DUAL} A"] == 0 and last.answers[f"{DUAL} AAAA"] == 0
    assert last.active == 2  # the alias still points at the deleted plan-0002 tree
    assert all(a.crashes >= 1 for a in drv.sim.actors.values()), {n: a.crashes for n, a in drv.sim.actors.items()}
    assert "RollbackTargetMissing" in (drv.sim.actors["enactor-a"].crashed or "") or any(
        a.crashed for a in drv.sim.actors.values())
    # No progress afterwards: the planner wrote plan 13, nobody could install it.
    assert drv.sim.plans.latest().number == 13


def test_fixed_design_survives_the_same_schedule() -> None:
    drv = run_2025(frozenset())
    assert min_answers(drv) > 0
    series = [a for a in active_series(drv) if a is not None]
    assert series == sorted(series)  # never backwards
    assert drv.samples[-1].active == 13
    assert all(a.crashes == 0 and a.state.status is m.Status.IDLE for a in drv.sim.actors.values())
    c = "\n".join(drv.sim.actors["enactor-c"].log)
    assert "refusing to go backwards" in c


def test_stale_check_before_lock_alone_makes_the_active_plan_go_backwards() -> None:
    drv = run_2025(frozenset({D.STALE_CHECK_BEFORE_LOCK}))
    series = [a for a in active_series(drv) if a is not None]
    assert 12 in series and series[series.index(12) + 1] == 2  # flipped back to ancient plan 2
    # ...but the fixed cleaner (reachability) never deletes what the alias points at, and the
    # fixed flip never crashes, so the answers never go empty and the next plan moves forward.
    assert min_answers(drv) > 0
    assert drv.samples[-1].active == 13


def test_cleaner_by_age_alone_deletes_the_rollback_target() -> None:
    """Fenced flips never go backwards, but the age rule ignores what the rollback record
    points at: after a jump from plan 3 straight to plan 9 (the planner emitted several
    while the enactors were paused), the cleaner deletes plan 3, the rollback target, and
    "rollback is one alias flip away" no longer holds."""
    for defects, expect_dangling in ((frozenset({D.CLEANER_BY_AGE}), True), (frozenset(), False)):
        sim = make_sim(defects, names=("enactor-a",), plans=3)
        sim.run_for(20)
        assert active_plan(sim.api, zone_id(sim), DUAL) == 3
        for n in range(4, 10):
            sim.plans.add(plan_n(n))
        sim.run_for(20)
        zid = zone_id(sim)
        assert active_plan(sim.api, zid, DUAL) == 9
        assert rollback_plan(sim.api, zid, DUAL) == 3
        rb = addresses(sim.api, zid, f"_rollback.{DUAL}", "A")
        assert (not rb) is expect_dangling, defects
        assert addresses(sim.api, zid, DUAL, "A")  # the active tree is fine either way


def test_rollback_crash_on_missing_alone_turns_a_typo_into_a_permanent_outage() -> None:
    for defects, expect_outage in ((frozenset({D.ROLLBACK_CRASH_ON_MISSING}), True), (frozenset(), False)):
        sim = make_sim(defects, plans=3, lock_ttl=10)
        sim.run_for(20)
        assert active_plan(sim.api, zone_id(sim), DUAL) == 3
        # Between polls (nobody is mid-cycle on plan 3), the planner writes plan 4 and an
        # operator deletes the active plan-0003 tree by hand.
        assert sim.run_until(lambda s=sim: all(isinstance(a.action, m.Sleep) for a in s.actors.values()))
        sim.plans.add(plan_n(4))
        delete_tree(sim, 3)
        sim.run_for(120)
        zid = zone_id(sim)
        empty = not addresses(sim.api, zid, DUAL, "A")
        assert empty is expect_outage, defects
        if expect_outage:
            assert all(a.crashes >= 1 for a in sim.actors.values())
            assert active_plan(sim.api, zid, DUAL) == 3
        else:
            assert active_plan(sim.api, zid, DUAL) == 4
            assert all(a.crashes == 0 for a in sim.actors.values())
            assert any("GONE" in line for a in sim.actors.values() for line in a.log)


def test_fixed_design_repairs_a_deleted_active_tree_without_a_new_plan() -> None:
    sim = make_sim(plans=3)
    sim.run_for(20)
    delete_tree(sim, 3)
    assert not addresses(sim.api, zone_id(sim), DUAL, "A")
    sim.run_for(10)
    assert addresses(sim.api, zone_id(sim), DUAL, "A") and addresses(sim.api, zone_id(sim), DUAL, "AAAA")
    assert active_plan(sim.api, zone_id(sim), DUAL) == 3
    assert any("damaged; repairing" in line for a in sim.actors.values() for line in a.log)


@pytest.mark.parametrize("defects", [m.ALL_DEFECTS, frozenset()], ids=["2025", "fixed"])
def test_operator_typo_variant(defects: frozenset[m.Defect]) -> None:
    drv = run_2025(defects, typo=True)
    final = drv.samples[-1].answers
    if defects:
        assert final[f"{DUAL} A"] == 0 and final[f"{LEGACY} A"] == 0
        assert all(a.crashes >= 1 or a.state.status is m.Status.BACKING_OFF for a in drv.sim.actors.values())
    else:
        assert min(final.values()) > 0
        assert all(a.crashes == 0 for a in drv.sim.actors.values())
