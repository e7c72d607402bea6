"""Saga-style step tests (Oxide/Steno): crash at every step, run every step twice."""

from __future__ import annotations

import pytest

from enactor import machine as m
from enactor.checker import check as c
from enactor.checker.saga import Outcome, Saga
from enactor.checker.sim import PlanList, Sim


def _plan2_active() -> object:
    """The shipped zones with plan-0002 installed by a clean run (plan-0001 is rollback)."""
    store = c.seeded_store()
    sim = Sim(store, PlanList([c.plan_n(1), c.plan_n(2)]), t0=c.T0)
    sim.add(m.Config("enactor-a"))
    sim.run_for(5)
    return store


@pytest.fixture(scope="module")
def saga() -> Saga:
    # Installing plan-0003 over plan-0002: build, fenced flip (rollback -> plan-0002), and a
    # cleaner that deletes the now unreachable plan-0001 tree: every kind of write.
    return Saga(_plan2_active, [c.plan_n(1), c.plan_n(2), c.plan_n(3)])  # type: ignore[arg-type]


def _flip_step(saga: Saga) -> int:
    """The number of actions up to and including the flip in the clean run."""
    sim, _, _, _ = saga._world()
    a = sim.add(m.Config("enactor-a"))
    for i in range(200):
        action = a.action
        sim.step("enactor-a")
        if isinstance(action, m.SubmitBatch) and action.purpose is m.Purpose.FLIP:
            return i + 1
    raise AssertionError("no flip")


def _invariant_problems(outs: list[Outcome]) -> list[str]:
    return [f"{o.what}: {p}" for o in outs for p in o.problems if "end state differs" not in p]


def test_clean_run_installs_and_cleans(saga: Saga) -> None:
    o = saga.clean()
    assert o.ok, o.problems
    names = {rs.name for rs in o.end if rs.name.endswith("dynamodb.us-east-1.api.aws.")}
    assert any("plan-0003" in n for n in names) and any("plan-0002" in n for n in names)
    assert not any("plan-0001" in n for n in names)  # unreachable and old: cleaned


@pytest.mark.parametrize("carry_on", ["restart", "enactor-b"])
def test_crash_at_every_step_keeps_the_invariants(saga: Saga, carry_on: str) -> None:
    outs = saga.crash_every_step("restart" if carry_on == "restart" else "other")
    assert len(outs) == saga.clean().steps + 1
    assert not _invariant_problems(outs)
    flip = _flip_step(saga)
    # up to and including the flip, carrying on ends exactly where the clean run does
    before = [o for i, o in enumerate(outs) if i < flip]
    assert all(o.ok for o in before), [(o.what, o.problems) for o in before if not o.ok]


@pytest.mark.parametrize("carry_on", ["restart", "other"])
def test_crash_between_flip_and_clean_resumes_to_the_clean_end_state(saga: Saga, carry_on: str) -> None:
    """Once a finding: the cleaner ran only as the tail of this enactor's own flip, so a crash
    between the flip and the clean batch left plan-0001 until the next plan. Now an idle
    enactor with the newest plan active lists the zone and cleans what is old and unreachable."""
    outs = saga.crash_every_step(carry_on)
    assert all(o.ok for o in outs), [(o.what, o.problems[0]) for o in outs if not o.ok]


def test_every_step_twice_keeps_the_invariants_except_freezing(saga: Saga) -> None:
    outs = saga.every_step_twice()
    assert len(outs) == saga.clean().steps + 1
    bad = [p for p in _invariant_problems(outs) if "FROZE" not in p]
    assert not bad  # nothing resolves to nothing, nothing goes backwards, nobody crashes
    reads_and_early_writes = [o for o in outs[:_flip_step(saga)]]
    assert all(o.ok for o in reads_and_early_writes), [(o.what, o.problems) for o in reads_and_early_writes if not o.ok]


def test_clean_batch_performed_twice_does_not_freeze(saga: Saga) -> None:
    """Once a finding: a clean batch delivered twice (first answer lost, request retried) was
    rejected for tree records already gone, and the enactor FROZE. Deleting what is gone is
    done: it lists again and carries on."""
    outs = saga.every_step_twice()
    assert all(o.ok for o in outs), [(o.what, o.problems[0][:200]) for o in outs if not o.ok]
