"""Random interleavings of the fixed design (hypothesis): whatever the order of steps, plans,
kills, restarts and stalls past the lock's expiry, DNS never goes empty, the active plan
never goes backwards, and no enactor crashes or freezes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enactor import machine as m
from enactor.checker.sim import active_plan
from enactor.checker.testing import DUAL, LEGACY, answers, make_sim, plan_n, zone_id

NAMES = ("enactor-a", "enactor-b", "enactor-c")

op = st.one_of(
    st.tuples(st.just("step"), st.sampled_from(NAMES), st.integers(1, 6)),
    st.tuples(st.just("plan"), st.just(""), st.just(0)),
    st.tuples(st.just("kill"), st.sampled_from(NAMES), st.just(0)),
    st.tuples(st.just("stall"), st.just(""), st.integers(1, 40)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=5, max_size=60), seed=st.integers(0, 1000))
def test_fixed_design_invariants_under_random_interleavings(ops: list[tuple[str, str, int]], seed: int) -> None:
    sim = make_sim(lock_ttl=5, seed=seed)
    next_plan = 2
    last_active = 1
    for kind, who, n in ops:
        if kind == "plan":
            sim.plans.add(plan_n(next_plan))
            next_plan += 1
        elif kind == "kill":
            sim.kill(who)
            sim.restart(who)  # the supervisor brings it back with no memory
        elif kind == "stall":
            sim.clock.t += n  # everyone stalls: locks may expire under their holders
        else:
            for _ in range(n):
                if sim.actors[who].action is None:
                    break
                sim.step(who)
                active = active_plan(sim.api, zone_id(sim), DUAL)
                assert active is not None and active >= last_active, (active, last_active)
                last_active = active
                assert answers(sim, DUAL, "A") and answers(sim, DUAL, "AAAA") and answers(sim, LEGACY, "A")
    # Then let everyone run: they converge on the newest plan.
    sim.run_for(120)
    assert active_plan(sim.api, zone_id(sim), DUAL) == next_plan - 1
    assert active_plan(sim.api, zone_id(sim, "amazonaws.com."), LEGACY) == next_plan - 1
    for a in sim.actors.values():
        assert a.crashes == 0 and a.state.status is not m.Status.FROZEN, a.state.last_error
