"""The lanes shell without a server: the inbox (bad input is refused and kept), targets files,
`enactor lanes submit`, and the controller writing both lanes' plans into the target's store,
with a fake probe standing in for the change API and DNS."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from authd.clean_exit import Fatal
from enactor.lanes import core as ln
from enactor.lanes.lanectl import Controller, load_targets, main, parse_change, submit
from enactor.plan import Plan, PlanError, PlanStore
from enactor.planner import default_capacity

DUAL = "dynamodb.us-east-1.api.aws."


def test_parse_change_accepts_the_documented_shape_and_says_what_is_wrong() -> None:
    lane, edits, note = parse_change({"lane": "fast", "edits": [{"selector": "az1", "weight": 0,
                                                                 "endpoint": "dynamodb.us-east-1.api.aws"}],
                                      "note": "sick"})
    assert lane is ln.Lane.FAST and edits == [ln.Edit("az1", 0, DUAL)] and note == "sick"
    for doc, want in ((["x"], "JSON object"), ({"lane": "medium", "edits": []}, '"lane" must be'),
                      ({"lane": "slow", "edits": []}, "non-empty list"),
                      ({"lane": "slow", "edits": [{"selector": "az1", "weight": True}]}, "integer"),
                      ({"lane": "slow", "edits": [{"selector": "az1", "weight": 256}]}, "0..255")):
        with pytest.raises(ValueError, match=want):
            parse_change(doc)


def test_submit_command_writes_one_change_and_refuses_nonsense(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", "--inbox", str(tmp_path), "--lane", "fast", "--drain", "az1",
                 "--weight", "az2-lb1=7", "--endpoint", DUAL]) == 0
    (f,) = tmp_path.glob("*.json")
    assert capsys.readouterr().out.strip() == str(f)
    doc = json.loads(f.read_text())
    assert doc["lane"] == "fast" and [e["selector"] for e in doc["edits"]] == ["az1", "az2-lb1"]
    with pytest.raises(Fatal, match="LB=W"):
        main(["submit", "--inbox", str(tmp_path), "--lane", "slow", "--weight", "az2-lb1"])
    with pytest.raises(Fatal, match="0..255"):
        main(["submit", "--inbox", str(tmp_path), "--lane", "slow", "--weight", "az2-lb1=300"])
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_targets_file_and_the_default_single_target(tmp_path: Path) -> None:
    (t,) = load_targets(None, str(tmp_path / "plans"))
    assert t[0].name == "region" and t[1] == 1 and t[2] == default_capacity()
    assert PlanStore(tmp_path / "plans").latest() is not None  # plan 1 written: the zones' plan
    bad = tmp_path / "targets.json"
    bad.write_text(json.dumps({"targets": [{"name": "cell-1", "plans": str(tmp_path / "plans"),
                                            "endpoints": ["nope.api.aws."]}]}))
    with pytest.raises(PlanError, match="nope.api.aws"):
        load_targets(str(bad), "unused")


class FakeProbe:
    """Delivers whatever was written at once, heartbeat included; checks pass unless told."""

    def __init__(self, store: PlanStore):
        self.store = store
        self.violations: list[str] = []

    def delivery(self, cap: object) -> tuple[int | None, int | None]:
        plan = self.store.latest()
        assert plan is not None
        hb = [e for e in plan.endpoints if e.name.startswith("heartbeat.")]
        return plan.number, ln.heartbeat_seq(hb[0].load_balancers[0].ipv4) if hb else None

    def check(self, target: object, cap: object) -> list[str]:
        return list(self.violations)


async def test_controller_writes_both_lanes_into_the_targets_store_and_keeps_bad_input(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    targets = load_targets(None, str(plans))
    lanes = ln.Lanes(ln.LaneConfig(gather=0.0, window=0.0, bake=0.0), targets)
    clock = [1000.0]
    log = io.StringIO()
    probe = FakeProbe(PlanStore(plans))
    ctl = Controller(lanes, probe, tmp_path / "inbox", probe_every=0.0, log=log,  # type: ignore[arg-type]
                     status=tmp_path / "status.json", clock=lambda: clock[0])
    await ctl.start()
    submit(ctl.inbox, {"lane": "fast", "edits": [{"selector": "az1", "weight": 0}]})
    (ctl.inbox / "zz-bad.json").write_text("{not json")
    await ctl.once()
    store = PlanStore(plans)
    newest = store.latest()
    assert newest is not None and newest.number == 3  # 1: the zones, 2: heartbeat, 3: the drain
    ep = newest.endpoint(DUAL)
    assert ep is not None and {lb.weight for lb in ep.load_balancers if lb.az == "az1"} == {0}
    assert (ctl.inbox / "rejected" / "zz-bad.json").read_text() == "{not json"  # nothing lost
    assert "not JSON" in (ctl.inbox / "rejected" / "zz-bad.json.error").read_text()
    assert "REJECTED zz-bad.json" in log.getvalue()
    assert "fast change #2 delivered to region" in log.getvalue()
    assert json.loads((tmp_path / "status.json").read_text())["halted"] is None
    assert not list((ctl.inbox / "queued").glob("*.json"))  # delivered: forgotten
    # A plan number someone else took: nothing is overwritten, and the slow lane halts.
    store.put(Plan(4, 0.0, default_capacity()))
    submit(ctl.inbox, {"lane": "slow", "edits": [{"selector": "az2", "weight": 9}]})
    await ctl.once()
    assert lanes.halted is not None and "plan-0004" in lanes.halted
    assert store.find(4).endpoints == default_capacity()
    assert "SLOW LANE HALTED: could not write plan-0004" in log.getvalue()
    assert not lanes.fast_alarm  # that was a slow plan
    store.put(Plan(5, 0.0, default_capacity()))  # and the next: the heartbeat cannot be written
    clock[0] += 60.0
    await ctl.once()
    assert lanes.fast_alarm and "FAST PATH BROKEN: could not write plan-0005" in log.getvalue()
    # The slow change is not lost: a restarted controller takes it up from queued/.
    (kept,) = (ctl.inbox / "queued").glob("*.json")
    again = ln.Lanes(ln.LaneConfig(gather=0.0, window=0.0, bake=0.0), load_targets(None, str(plans)))
    ctl2 = Controller(again, probe, ctl.inbox, probe_every=0.0, log=log,  # type: ignore[arg-type]
                      clock=lambda: clock[0])
    await ctl2.start()
    assert f"accepted {kept.name} as slow change" in log.getvalue().split("plan-0004")[-1]
    assert again.queue or again.rollout is not None


async def test_a_failed_check_through_the_shell_halts_the_slow_lane(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    lanes = ln.Lanes(ln.LaneConfig(gather=0.0, window=0.0, bake=0.0, heartbeat=False),
                     load_targets(None, str(plans)))
    log = io.StringIO()
    probe = FakeProbe(PlanStore(plans))
    probe.violations = ["resolves: dynamodb.us-east-1.api.aws. A answers NOERROR with 0 addresses"]
    ctl = Controller(lanes, probe, tmp_path / "inbox", probe_every=0.0, log=log,  # type: ignore[arg-type]
                     clock=lambda: 5.0)
    await ctl.start()
    submit(ctl.inbox, {"lane": "slow", "edits": [{"selector": "az3", "weight": 1}]})
    await ctl.once()
    assert lanes.halted is not None and "resolves:" in lanes.halted
    assert "check of region at plan-0002: resolves:" in log.getvalue()
    assert "SLOW LANE HALTED: check failed on region at plan-0002" in log.getvalue()
    assert list((ctl.inbox / "queued").glob("*.json"))  # not done: kept


def test_lane_metrics_follow_the_alarms_and_pass_promtool() -> None:
    import shutil
    import subprocess

    from prometheus_client import generate_latest

    from enactor.lanes.lanectl import LaneMetrics

    mx = LaneMetrics()
    plan = Plan(2, 0.0, default_capacity())
    for a in (ln.WritePlan("region", plan, ln.Lane.FAST, (1,), "heartbeat"),
              ln.Delivered("region", 2, ln.Lane.FAST, 1, 1.5, heartbeat=True),
              ln.Alarm("fast-path", True, "FAST PATH BROKEN: ..."),
              ln.Alarm("slow-halted", True, "SLOW LANE HALTED: ...")):
        mx.observe(a, 100.0)
    text = generate_latest(mx.registry).decode()
    assert "lanes_fast_path_up 0.0" in text and "lanes_slow_halted 1.0" in text
    assert 'lanes_plans_written_total{lane="fast"} 1.0' in text
    assert "lanes_heartbeat_delivered_timestamp_seconds 100.0" in text
    mx.observe(ln.Alarm("fast-path", False, "fast path restored"), 101.0)
    mx.observe(ln.Alarm("slow-halted", False, "slow lane resumed"), 101.0)
    text = generate_latest(mx.registry).decode()
    assert "lanes_fast_path_up 1.0" in text and "lanes_slow_halted 0.0" in text
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    out = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
