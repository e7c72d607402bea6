"""The interleaving checker over the real enactor code (issue 6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from authd.model.records import AliasTarget, RecordSet
from authd.store.contract import Action, Change
from enactor import machine as m
from enactor.checker import check as c
from enactor.checker.invariants import (
    Inv,
    StoreChecker,
    StoreFacts,
    check_locks,
    check_monotonic,
    walk_outcomes,
    watched,
)
from enactor.checker.schedule import load_schedule

DUAL = "dynamodb.us-east-1.api.aws."
OUTAGE = frozenset({Inv.RESOLVES})
Y2025 = m.parse_defects("2025")


def _explore(defects: frozenset[m.Defect] = frozenset(), targets: frozenset[Inv] = frozenset(Inv),
             **bounds: object) -> c.Report:
    return c.explore(c.Options(defects, c.Bounds(**bounds), targets, time_budget=150))  # type: ignore[arg-type]


# --- defects mode: the 2025 outage, shortest -------------------------------------------------


@pytest.fixture(scope="module")
def outage() -> c.Report:
    return _explore(Y2025, OUTAGE, enactors=2, plans=4)


def test_2025_defects_reach_the_outage(outage: c.Report) -> None:
    assert outage.found, "the 2025 defects must reach a dangling alias"
    f = outage.found[0]
    assert f.violation.inv is Inv.RESOLVES and DUAL in f.violation.detail
    whos = [mv.who for mv in f.trace]
    assert "planner" in whos and {"enactor-a", "enactor-b"} <= set(whos)
    # the trace ends with a cleaner batch deleting the tree the alias points at
    last = f.trace[-1].actions[-1][0]
    assert isinstance(last, m.SubmitBatch) and last.purpose is m.Purpose.CLEAN
    # on the way the 2025 code also went backwards and deleted the rollback target
    assert {"monotonic", "rollback"} <= set(outage.also)


def test_the_counterexample_is_a_shortest_one(outage: c.Report) -> None:
    depth = outage.found[0].depth
    shorter = _explore(Y2025, OUTAGE, enactors=2, plans=4, depth=depth - 1)
    assert shorter.exhausted and not shorter.found, "breadth-first must not miss a shorter trace"


def test_reductions_keep_the_shortest_length(outage: c.Report) -> None:
    plain = c.explore(c.Options(Y2025, c.Bounds(enactors=2, plans=4), OUTAGE, reduce=False,
                                time_budget=150))
    assert plain.found and plain.found[0].depth == outage.found[0].depth
    assert plain.distinct > outage.distinct  # symmetry merged states


def test_counterexample_schedule_replays_in_process(outage: c.Report, tmp_path: Path) -> None:
    sched = c.to_schedule(outage.found[0].trace, ["enactor-a", "enactor-b"], "2025 shortest")
    path = tmp_path / "ce.json"
    sched.dump(path)
    loaded = load_schedule(path)  # the enactor's own parser accepts it
    assert loaded.actors == ["enactor-a", "enactor-b"]
    assert any(s["do"] == "plan" for s in loaded.steps)
    rp = c.replay_in_process(loaded, Y2025)
    assert rp.outage
    invs = {v.inv for v in rp.violations}
    assert Inv.RESOLVES in invs
    text = c.format_timeline(rp.timeline)
    assert "NOERROR, ANSWER 0" in text and "CRASHED" in text  # the crash loop of the aftermath


def test_each_defect_alone_names_the_invariant_it_breaks() -> None:
    broken = {}
    for d in m.Defect:
        rep = c.explore(c.Options(frozenset({d}), c.Bounds(enactors=2, plans=4, ticks=0),
                                  frozenset(Inv), collect=True, time_budget=120))
        assert rep.exhausted or len(rep.found) == len(Inv)
        broken[d] = {f.violation.inv for f in rep.found}
    assert broken[m.Defect.STALE_CHECK_BEFORE_LOCK] == {Inv.MONOTONIC}
    assert broken[m.Defect.CLEANER_BY_AGE] == {Inv.ROLLBACK}
    # Without lock expiry the crash needs a dangling alias first; with one expiry jump a
    # stale enactor does reach it (see README, enactor check findings).
    assert broken[m.Defect.ROLLBACK_CRASH_ON_MISSING] == set()


# --- fixed design: exhaust the bounds ------------------------------------------------------


def test_fixed_design_exhausts_three_enactors_four_plans_two_lock_losses() -> None:
    rep = _explore(enactors=3, plans=4, lock_losses=2, ticks=0, endpoints="legacy")
    assert rep.exhausted and rep.ok, [f.violation.text() for f in rep.found]
    assert rep.distinct > 10_000 and rep.cut > 0  # the lock-loss bound was reached
    assert not rep.also and not rep.frozen


def test_fixed_design_exhausts_with_lock_expiry_and_dual_stack() -> None:
    rep = _explore(enactors=2, plans=3, lock_losses=2, ticks=1, endpoints="dual")
    assert rep.exhausted and rep.ok, [f.violation.text() for f in rep.found]
    assert not rep.also


def test_random_mode_fixed_design_short_budget() -> None:
    rep = c.random_runs(c.Options(bounds=c.Bounds(enactors=3, plans=6, lock_losses=99, ticks=3),
                                  time_budget=8.0), seed=7, max_steps=300)
    assert rep.runs >= 1 and rep.ok, [f.violation.text() for f in rep.found]


def test_random_mode_is_reproducible_from_the_seed() -> None:
    opts = c.Options(Y2025, c.Bounds(enactors=2, plans=4), OUTAGE)
    a = c.random_run(opts, seed=5, max_steps=300)
    b = c.random_run(opts, seed=5, max_steps=300)
    assert a[1:] == b[1:]
    assert (a[0] is None) == (b[0] is None)
    if a[0] is not None and b[0] is not None:
        assert [mv.text() for mv in a[0].trace] == [mv.text() for mv in b[0].trace]


# --- invariants, each able to fail ------------------------------------------------------------


def _dangle(store: object) -> None:
    zid = store.find_zone_by_name("api.aws.").id  # type: ignore[attr-defined]
    recs = [rs for rs in store.record_sets(zid)  # type: ignore[attr-defined]
            if rs.name.endswith(f"plan-0001.{DUAL}")]
    recs.sort(key=lambda rs: rs.weight is None)
    store.change_batch(zid, [Change(Action.DELETE, rs) for rs in recs])  # type: ignore[attr-defined]


def test_invariants_see_a_dangling_alias_and_a_dangling_rollback() -> None:
    store = c.seeded_store()
    names = watched(c.endpoints_for("both"))
    assert not StoreChecker(names).facts(store).violations
    zid = store.find_zone_by_name("api.aws.").id
    store.change_batch(zid, [Change(Action.CREATE, RecordSet(
        f"_rollback.{DUAL}", "A", alias=AliasTarget(f"plan-0001.{DUAL}", zid)))])
    _dangle(store)
    vs = StoreChecker(names).facts(store).violations
    kinds = {v.inv for v in vs}
    assert kinds == {Inv.RESOLVES, Inv.ROLLBACK}
    assert sum(v.inv is Inv.RESOLVES for v in vs) == 2  # A and AAAA; the legacy name is fine


def test_walk_outcomes_counts_every_weighted_pick() -> None:
    sets = {
        ("w.", "A"): [RecordSet("w.", "A", set_identifier="x", weight=1, alias=AliasTarget("x.", "Z")),
                      RecordSet("w.", "A", set_identifier="y", weight=1, alias=AliasTarget("y.", "Z")),
                      RecordSet("w.", "A", set_identifier="z", weight=0, alias=AliasTarget("z.", "Z"))],
        ("x.", "A"): [RecordSet("x.", "A", ttl=1, values=("192.0.2.1",))],
    }
    outs = walk_outcomes(lambda n, t: sets.get((n, t), []), "w.", "A")
    assert sorted(outs) == [(), ("192.0.2.1",)]  # y dangles; z has weight 0 and is never picked


def test_lock_invariant_and_monotonic() -> None:
    plan = c.plan_n(2)
    st = m.State(plan=plan, lock=m.lock_value("enactor-a", int(c.T0) + 30))
    st_b = m.State(plan=plan, lock=m.lock_value("enactor-b", int(c.T0) + 30))
    facts = StoreFacts((), ((DUAL, 3),), ((DUAL, st.lock),))
    assert not check_locks(facts, ["enactor-a"], [st], c.T0)
    two = check_locks(facts, ["enactor-a", "enactor-b"], [st, st_b], c.T0)
    assert {v.inv for v in two} == {Inv.ONE_LOCK} and len(two) == 2  # two believers; b's is not in the API
    assert not check_locks(facts, ["enactor-a", "enactor-b"], [st, st_b], c.T0 + 31)  # both expired
    older = StoreFacts((), ((DUAL, 2),), ())
    assert [v.inv for v in check_monotonic(facts, older)] == [Inv.MONOTONIC]
    assert not check_monotonic(older, facts)


# --- the command line ------------------------------------------------------------------------


def test_cli_json_and_schedule_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ce.json"
    code = c.main(["--defects", "2025", "--json", "--quiet", "--save", str(out)])
    doc = json.loads(capsys.readouterr().out)
    # finding the outage with the 2025 defects restored is the predicted result: exit 0, so
    # `check --defects 2025 --save cx.json && outage --schedule cx.json` replays it
    assert code == 0 and doc["verdict"] == "violation" and doc["as_predicted"] is True
    assert doc["violations"][0]["invariant"] == "resolves"
    assert doc["states"] > 0 and doc["distinct"] > 0 and doc["depth"] >= doc["violations"][0]["depth"]
    assert doc["replay"]["outage"] is True
    assert load_schedule(out).steps


def test_cli_fixed_reports_no_violation_with_counts(capsys: pytest.CaptureFixture[str]) -> None:
    code = c.main(["--enactors", "2", "--plans", "3", "--ticks", "0", "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert "no violation" in text and "NOT exhausted" not in text and "distinct" in text


def test_cli_rejects_unknown_defect(capsys: pytest.CaptureFixture[str]) -> None:
    assert c.main(["--defects", "typo-defect"]) == 2
    assert "unknown defect" in capsys.readouterr().err


def test_cli_help_explains_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        c.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--defects", "--each-defect", "--enactors", "--plans", "--lock-losses", "--ticks",
                 "--depth", "--endpoints", "--invariants", "--random", "--seed", "--max-steps",
                 "--budget", "--save", "--no-timeline", "--json", "--quiet"):
        assert flag in text


# --- the counterexample as a real outage ------------------------------------------------------


@pytest.mark.realtime
@pytest.mark.slow
def test_replayed_counterexample_is_a_real_dig_outage(outage: c.Report, tmp_path: Path) -> None:
    """The shortest counterexample, saved as a schedule, replayed by `enactor outage
    --schedule` against real processes (authd, planner, enactors) and queried with real dig."""
    if shutil.which("dig") is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    from enactor.drills.outage import run_outage

    sched = c.to_schedule(outage.found[0].trace, ["enactor-a", "enactor-b"], "2025 shortest",
                          extra={"checker": {"defects": "2025", "bounds": {"endpoints": "dual"}}})
    path = tmp_path / "ce.json"
    sched.dump(path)
    real = run_outage(None, load_schedule(path))
    assert real.summary["ever_empty"], real.report
    digs = [text for _, k, text in real.digs if k == f"{DUAL} A"]
    assert any("status: NOERROR" in t and "ANSWER: 0" in t for t in digs), digs[-1:]


@pytest.mark.parametrize("defects", [frozenset(), Y2025])
def test_state_abstraction_agrees_with_the_real_machine(defects: frozenset[m.Defect]) -> None:
    """Every memoized transition recomputed from its own path's concrete enactor state gives
    the same outcome: the fields left out of a state (now, draws, log-only fields, values dead
    in the current phase) really decide nothing. Guards the abstraction against machine changes."""
    rep = c.explore(c.Options(defects, c.Bounds(enactors=2, plans=3, ticks=1),
                              frozenset() if defects else frozenset(Inv), verify_memo=True,
                              time_budget=120))
    assert rep.exhausted


def test_rollback_crash_alone_crashes_a_stale_enactor_after_lock_expiry() -> None:
    """With one lock-expiry jump, the rollback-crash defect alone kills an enactor that resumes
    a flip with an alias it read before losing its lock (the tree was cleaned meanwhile)."""
    d = frozenset({m.Defect.ROLLBACK_CRASH_ON_MISSING})
    rep = c.explore(c.Options(d, c.Bounds(enactors=2, plans=4, ticks=1),
                              frozenset({Inv.NO_CRASH}), time_budget=120))
    assert [f.violation.inv for f in rep.found] == [Inv.NO_CRASH]
    fixed = c.explore(c.Options(frozenset(), c.Bounds(enactors=2, plans=4, ticks=1),
                                frozenset({Inv.NO_CRASH}), time_budget=120))
    assert fixed.exhausted and not fixed.found
