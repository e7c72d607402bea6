"""The enactor state machine, in-process against MemoryStore on virtual time.

Fast and deterministic: every test drives the real `enactor.machine.step` through the real
`enactor.client.perform` against the real change-batch rules (`authd.model.changes`).
"""

from __future__ import annotations

import ast
import contextlib
from pathlib import Path

import pytest

from authd.model.records import AliasTarget, RecordSet
from authd.store.contract import Action, Change
from enactor import machine as m
from enactor.checker.sim import PlanList, Sim, active_plan, lock_holder, rollback_plan
from enactor.checker.testing import (
    DUAL,
    LEGACY,
    T0,
    answers,
    make_sim,
    plan_n,
    zone_contents,
    zone_id,
)
from enactor.client import perform
from enactor.plan import lock_name, rollback_name, root_name

FIXED: frozenset[m.Defect] = frozenset()


def add_plans(sim: Sim, *ns: int) -> None:
    for n in ns:
        sim.plans.add(plan_n(n))


def test_pure_modules_import_no_io() -> None:
    for mod in ("machine", "plan", "planner", "checker/schedule", "checker/sim", "client", "checker/testing"):
        tree = ast.parse((Path(__file__).parent.parent / "enactor" / f"{mod}.py").read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & {"trio", "socket", "time", "random"}, (mod, names)


def test_three_enactors_converge_and_active_never_decreases() -> None:
    sim = make_sim()
    seen: list[int | None] = []
    for n in range(2, 7):
        add_plans(sim, n)
        for _ in range(400):
            sim.run(1)
            seen.append(active_plan(sim.api, zone_id(sim), DUAL))
            assert answers(sim, DUAL, "A") and answers(sim, DUAL, "AAAA")
        assert active_plan(sim.api, zone_id(sim), DUAL) == n
        assert active_plan(sim.api, zone_id(sim, "amazonaws.com."), LEGACY) == n
    vals = [v for v in seen if v is not None]
    assert vals == sorted(vals)
    assert rollback_plan(sim.api, zone_id(sim), DUAL) == 5
    # The cleaner kept the active and rollback trees and deleted the old ones.
    names = {rs.name for rs in sim.api.record_sets(zone_id(sim))}
    assert root_name(6, DUAL) in names and root_name(5, DUAL) in names
    assert root_name(2, DUAL) not in names and root_name(1, DUAL) not in names
    assert all(a.state.status is m.Status.IDLE for a in sim.actors.values())
    assert lock_holder(sim.api, zone_id(sim), DUAL) is None  # released


def test_every_batch_starts_with_the_lock_preamble_and_respects_the_limit() -> None:
    sim = make_sim(names=("enactor-a",), max_changes=10)
    add_plans(sim, 2)
    sim.run_for(5)
    batches = [act for _, act, _ in sim.actors["enactor-a"].history if isinstance(act, m.SubmitBatch)]
    builds = [b for b in batches if b.purpose is m.Purpose.BUILD]
    assert len(builds) >= 4  # 16 + 6 UPSERTs at 8 per batch (UPSERT counts twice)
    for b in batches:
        if b.purpose in (m.Purpose.LOCK, m.Purpose.TAKEOVER, m.Purpose.RELEASE):
            continue
        assert b.changes[0].action is Action.DELETE and b.changes[0].rrset.name.startswith("_lock.")
        assert b.changes[1].action is Action.CREATE and b.changes[1].rrset.name == b.changes[0].rrset.name
        assert sum(2 if c.action is Action.UPSERT else 1 for c in b.changes) <= 10
    assert active_plan(sim.api, zone_id(sim), DUAL) == 2


def test_backoff_is_exponential_with_deterministic_jitter() -> None:
    cfg = m.Config("enactor-c", backoff_base=0.2, backoff_cap=5.0, seed=7)
    delays = [m.backoff_delay(cfg, a, a) for a in range(1, 9)]
    assert delays == [m.backoff_delay(cfg, a, a) for a in range(1, 9)]
    for a, d in enumerate(delays, start=1):
        full = min(5.0, 0.2 * 2 ** (a - 1))
        assert full / 2 <= d <= full
    assert delays[4] > delays[0] * 4
    assert m.backoff_delay(m.Config("enactor-c", seed=8), 3, 3) != m.backoff_delay(cfg, 3, 3)


def test_log_lines_read_as_a_timeline() -> None:
    sim = make_sim(names=("enactor-a", "enactor-c"))
    add_plans(sim, 2)
    sim.run_for(3)
    text = "\n".join(line for _, line in sim.timeline)
    assert "enactor-a took lock _lock.dynamodb.us-east-1.api.aws. until 06:00:" in text
    assert "FLIPPED dynamodb.us-east-1.api.aws. A/AAAA: plan-0001 -> plan-0002 (rollback -> plan-0001)" in text
    assert "enactor-c lock _lock.dynamodb.us-east-1.amazonaws.com. held by enactor-a until 06:00:30" in text
    assert "backing off" in text and "(attempt 1)" in text


# --- the lock ---------------------------------------------------------------------------


def test_expired_lock_is_taken_over_and_the_paused_holder_loses_its_next_batch() -> None:
    sim = make_sim(names=("enactor-a", "enactor-b"), lock_ttl=10)
    add_plans(sim, 2)
    # enactor-a takes the lock and is about to send its first build batch, then stalls
    # (a GC pause, a stuck VM) well past the lock's expiry.
    sim.run_until(lambda: isinstance(sim.actors["enactor-a"].action, m.SubmitBatch)
                  and sim.actors["enactor-a"].action.purpose is m.Purpose.BUILD)
    stalled = sim.actors.pop("enactor-a")
    sim.clock.t += 60
    b = sim.actors["enactor-b"]
    sim.run_until(lambda: any(isinstance(act, m.SubmitBatch) and act.purpose is m.Purpose.TAKEOVER
                              and isinstance(res, m.BatchAccepted) for _, act, res in b.history))
    assert "expired" in "\n".join(b.log) and "taking it over" in "\n".join(b.log)
    # enactor-a wakes up and sends the batch it prepared: the preamble's DELETE-exact fails.
    sim.actors["enactor-a"] = stalled
    sim.step("enactor-a")
    _, act, res = stalled.history[-1]
    assert isinstance(act, m.SubmitBatch) and act.purpose is m.Purpose.BUILD
    assert isinstance(res, m.BatchRejected)
    assert any(lock_name(DUAL) in msg for msg in res.messages)
    assert "lost lock" in stalled.log[-2] or "lost lock" in "\n".join(stalled.log)
    sim.run_for(30)
    assert active_plan(sim.api, zone_id(sim), DUAL) == 2
    assert answers(sim)


def test_pause_switch_freezes_dns_and_resume_continues() -> None:
    sim = make_sim()
    api, zid = sim.api, zone_id(sim)
    for zone, e in (("api.aws.", DUAL), ("amazonaws.com.", LEGACY)):
        api.change_batch(zone_id(sim, zone), [Change(Action.CREATE, m.lock_record(e, m.lock_value("paused-by-alice", 4102444800)))])
    before = zone_contents(sim)
    add_plans(sim, 2, 3)
    sim.run_for(30)
    assert zone_contents(sim) == before
    assert all(a.state.status is m.Status.PAUSED for a in sim.actors.values())
    assert all(not isinstance(act, m.SubmitBatch) for a in sim.actors.values() for _, act, _ in a.history)
    for zone, e in (("api.aws.", DUAL), ("amazonaws.com.", LEGACY)):
        z = zone_id(sim, zone)
        api.change_batch(z, [Change(Action.DELETE, api.get_record_sets(z, lock_name(e), "TXT")[0])])
    sim.run_for(30)
    assert active_plan(api, zid, DUAL) == 3


# --- idempotency and crashes --------------------------------------------------------------


class Twice:
    """Performs every batch twice (as a retry after a lost response would); the machine
    sees the second outcome."""

    def __init__(self, api):
        self.api = api

    def __getattr__(self, name):
        return getattr(self.api, name)

    def change_batch(self, zone_id, changes, comment=""):
        with contextlib.suppress(Exception):  # the first outcome is lost on purpose
            self.api.change_batch(zone_id, changes, comment)
        return self.api.change_batch(zone_id, changes, comment)


def test_every_step_twice_converges_to_the_same_records() -> None:
    once = make_sim(names=("enactor-a",))
    add_plans(once, 2, 3)
    once.run_for(20)
    twice = make_sim(names=("enactor-a",))
    twice.api = Twice(twice.api)  # type: ignore[assignment]
    add_plans(twice, 2, 3)
    twice.run_for(20)
    assert active_plan(once.api, zone_id(once), DUAL) == 3
    assert zone_contents(twice) == zone_contents(once)
    assert zone_contents(twice, "amazonaws.com.") == zone_contents(once, "amazonaws.com.")


def batches_of(sim: Sim, name: str) -> int:
    return sum(1 for _, act, res in sim.actors[name].history
               if isinstance(act, m.SubmitBatch) and isinstance(res, m.BatchAccepted))


def converged(sim: Sim, n: int) -> bool:
    return (active_plan(sim.api, zone_id(sim), DUAL) == n
            and active_plan(sim.api, zone_id(sim, "amazonaws.com."), LEGACY) == n
            and all(a.state.status is m.Status.IDLE for a in sim.actors.values() if a.action is not None))


@pytest.mark.parametrize("kill_after", range(0, 12))
def test_crash_after_every_batch_others_converge_and_nothing_dangles(kill_after: int) -> None:
    """Kill enactor-a right after its k-th accepted batch (lock, build, flip, release, clean
    ... of plan 2); the other two must finish the job, and no query ever comes back empty."""
    sim = make_sim(lock_ttl=5)
    add_plans(sim, 2)
    killed = False
    for _ in range(2000):
        sim.run(1)
        assert answers(sim, DUAL, "A") and answers(sim, DUAL, "AAAA") and answers(sim, LEGACY, "A")
        if not killed and batches_of(sim, "enactor-a") > kill_after:
            sim.kill("enactor-a")
            killed = True
            add_plans(sim, 3)
        if killed and converged(sim, 3):
            break
    assert killed, f"enactor-a made only {batches_of(sim, 'enactor-a')} batches"
    assert converged(sim, 3)
    sim.restart("enactor-a")  # the restarted process finds its old lock, if any, and carries on
    sim.run_for(30)
    assert converged(sim, 3)


# --- the cleaner as a reconciler (issue 4: a crash between flip and clean loses nothing) ----


def _tree(sim: Sim, plan: int) -> list[RecordSet]:
    return [rs for rs in sim.api.record_sets(zone_id(sim)) if rs.name.endswith(f"plan-{plan:04d}.{DUAL}")]


def install_2_then_3(sim: Sim) -> None:
    """Plan 2, then plan 3: the flip to 3 leaves plan-0001 old and unreachable (cleaned)."""
    for n in (2, 3):
        add_plans(sim, n)
        sim.run_for(10)


def test_idle_enactor_cleans_an_old_unreachable_tree_but_never_a_reachable_one() -> None:
    sim = make_sim(names=("enactor-a",))
    zid = zone_id(sim)
    old = sorted(_tree(sim, 1), key=lambda rs: rs.weight is not None)  # leaves first
    install_2_then_3(sim)
    assert active_plan(sim.api, zid, DUAL) == 3 and not _tree(sim, 1)  # the flip's own clean
    # plan-0001's tree is back, and the rollback reaches it (an operator's recovery, say):
    # idle, with no new plan, the enactor must keep it ...
    rb = [rs for t in ("A", "AAAA") for rs in sim.api.get_record_sets(zid, rollback_name(DUAL), t)]
    to_1 = [RecordSet(rs.name, rs.rtype, alias=AliasTarget(root_name(1, DUAL), zid)) for rs in rb]
    sim.api.change_batch(zid, [Change(Action.CREATE, rs) for rs in old]
                         + [c for a, b in zip(rb, to_1, strict=True)
                            for c in (Change(Action.DELETE, a), Change(Action.CREATE, b))])
    sim.run_for(20)
    assert len(_tree(sim, 1)) == len(old)
    # ... and once nothing reaches it, the next idle loop cleans it (no new plan needed).
    sim.api.change_batch(zid, [c for a, b in zip(to_1, rb, strict=True)
                               for c in (Change(Action.DELETE, a), Change(Action.CREATE, b))])
    sim.run_for(20)
    assert not _tree(sim, 1)
    assert _tree(sim, 2) and _tree(sim, 3)  # rollback and active trees stay
    assert sim.actors["enactor-a"].state.status is m.Status.IDLE


class MeddleBeforeClean:
    """Before each clean batch reaches the store, apply someone else's `changes` (once)."""

    def __init__(self, api, changes):
        self.api, self.changes = api, changes

    def __getattr__(self, name):
        return getattr(self.api, name)

    def change_batch(self, zone_id, changes, comment=""):
        if " clean " in comment and self.changes:
            self.api.change_batch(zone_id, self.changes, "someone else")
            self.changes = []
        return self.api.change_batch(zone_id, changes, comment)


def test_clean_batch_finding_tree_records_already_gone_relists_instead_of_freezing() -> None:
    sim = make_sim(names=("enactor-a",))
    members = [rs for rs in _tree(sim, 1) if rs.weight is not None]
    sim.api = MeddleBeforeClean(sim.api, [Change(Action.DELETE, rs) for rs in members])  # type: ignore[assignment]
    install_2_then_3(sim)
    a = sim.actors["enactor-a"]
    assert a.state.status is m.Status.IDLE, a.state.last_error
    assert active_plan(sim.api, zone_id(sim), DUAL) == 3 and not _tree(sim, 1)


def test_clean_batch_meeting_a_changed_tree_record_still_freezes() -> None:
    """Only "already gone" counts as done: a tree record with other values than listed is a
    state the cleaner does not understand, so it freezes (and deletes nothing)."""
    sim = make_sim(names=("enactor-a",))
    leaf = next(rs for rs in _tree(sim, 1) if rs.rtype == "A" and rs.weight is None)
    odd = RecordSet(leaf.name, "A", ttl=leaf.ttl, values=("192.0.2.99",))
    sim.api = MeddleBeforeClean(sim.api, [Change(Action.DELETE, leaf), Change(Action.CREATE, odd)])  # type: ignore[assignment]
    install_2_then_3(sim)
    a = sim.actors["enactor-a"]
    assert a.state.status is m.Status.FROZEN and "do not match" in a.state.last_error
    assert _tree(sim, 1)  # the cleaner deleted nothing of it
    assert active_plan(sim.api, zone_id(sim), DUAL) == 3 and answers(sim, DUAL, "A")


# --- freezing on what it does not understand -----------------------------------------------


def test_fixed_design_freezes_on_an_alias_it_does_not_understand() -> None:
    sim = make_sim()
    zid = zone_id(sim)
    api = sim.api
    old = api.get_record_sets(zid, DUAL, "A")[0]
    odd = RecordSet(DUAL, "A", alias=AliasTarget("ns1.api.aws.", zid))
    api.change_batch(zid, [Change(Action.DELETE, old), Change(Action.CREATE, odd)])
    add_plans(sim, 2)
    before = zone_contents(sim)
    sim.run_for(20)
    assert zone_contents(sim) == before  # wrote nothing
    for a in sim.actors.values():
        assert a.state.status is m.Status.FROZEN
        assert "not an alias to a plan root" in a.state.last_error
        assert a.crashed is None


def test_fixed_design_freezes_on_a_garbage_lock() -> None:
    sim = make_sim(names=("enactor-a",))
    zid = zone_id(sim)
    sim.api.change_batch(zid, [Change(Action.CREATE, RecordSet(lock_name(DUAL), "TXT", ttl=1, values=('"who knows"',)))])
    add_plans(sim, 2)
    sim.run_for(10)
    a = sim.actors["enactor-a"]
    assert a.state.status is m.Status.FROZEN and "_lock" in a.state.last_error
    assert active_plan(sim.api, zid, DUAL) == 1


def test_refused_plan_is_never_partly_enacted() -> None:
    class Bad(PlanList):
        def latest(self):
            from enactor.plan import PlanError

            raise PlanError("plans/plan-0002.json", "$.endpoints[1].load_balancers[0].weight", "must be an integer 0..255, got 300")

    sim = make_sim(names=("enactor-a",))
    before = zone_contents(sim)
    sim.plans = Bad()
    sim.run_for(10)
    assert zone_contents(sim) == before
    a = sim.actors["enactor-a"]
    assert "REFUSING the newest plan" in "\n".join(a.log)
    assert "plan-0002.json" in a.state.last_error


def test_perform_maps_rejections_to_route53_messages() -> None:
    sim = make_sim(names=())
    zid = zone_id(sim)
    bad = m.SubmitBatch(zid, (Change(Action.DELETE, m.lock_record(DUAL, '"x 1"')),), m.Purpose.RELEASE)
    res = perform(sim.api, PlanList(), bad, lambda: T0)
    assert isinstance(res, m.BatchRejected)
    assert "Tried to delete resource record set [name='_lock.dynamodb.us-east-1.api.aws.', type='TXT']" in res.messages[0]
    assert rollback_name(DUAL).startswith("_rollback.")


def test_states_are_hashable_and_runs_are_deterministic() -> None:
    """The interleaving checker hashes states to prune; two identical runs must agree."""
    def run() -> list[int]:
        sim = make_sim()
        add_plans(sim, 2, 3)
        sim.run_for(10)
        return [hash(a.state) for a in sim.actors.values()] + [len(sim.timeline)]

    first = run()
    assert first == run()
    sim = make_sim(names=("enactor-a",))
    add_plans(sim, 2)
    seen = set()
    for _ in range(60):
        sim.run(1)
        seen.add(sim.actors["enactor-a"].state)
    assert len(seen) > 20


def test_a_plan_naming_a_missing_zone_is_not_half_enacted() -> None:
    import dataclasses

    from enactor.plan import Endpoint

    sim = make_sim(names=("enactor-a",))
    p2 = plan_n(2)
    ghost = Endpoint("dynamodb.us-east-1.nowhere.test.", "nowhere.test.", False, p2.endpoints[1].load_balancers)
    sim.plans.add(dataclasses.replace(p2, endpoints=p2.endpoints + (ghost,)))
    before = zone_contents(sim), zone_contents(sim, "amazonaws.com.")
    sim.run_for(10)
    assert (zone_contents(sim), zone_contents(sim, "amazonaws.com.")) == before
    a = sim.actors["enactor-a"]
    assert a.state.status is m.Status.FROZEN and "nowhere.test." in a.state.last_error
