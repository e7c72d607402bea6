"""The lanes against real processes on loopback: `authd serve`, three `enactor run` and
`enactor lanes run`. An emergency AZ drain through the fast lane reaches real dig while the
slow lane is busy, by the same enactors' fenced flip; a stuck lock holder is found by the
heartbeat within one period, and the fast path comes back when it is released."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from enactor.lanes.lanerig import DUAL, LEGACY, Rig, drain
from enactor.plan import PlanStore

pytestmark = [pytest.mark.realtime, pytest.mark.slow]
PERIOD = 12.0  # a heartbeat every 6 s, each allowed 6 s: above a busy machine's plan time


@pytest.fixture
def rig(tmp_path: Path):  # type: ignore[no-untyped-def]
    if shutil.which("dig") is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    r = Rig(tmp_path, lanes_args=["--period", str(PERIOD), "--batch", "1", "--window", "20",
                                  "--gather", "1", "--bake", "5"])
    try:
        r.start()
        yield r
    finally:
        r.stop()


def test_fast_drain_with_the_slow_lane_busy_and_a_stuck_lock_found_by_the_heartbeat(rig: Rig) -> None:
    rig.wait_for(lambda: (rig.metric("lanes_heartbeat_delivered_timestamp_seconds") or 0) > 0,
                 45, "the first heartbeat seen over DNS")
    assert rig.metric("lanes_fast_path_up") == 1
    # A busy slow lane: a backlog of everyday changes to three different scopes.
    for i, ep in enumerate([DUAL, LEGACY, None, DUAL, LEGACY, None]):
        rig.submit("slow", [{"selector": "az2-lb1", "weight": 110 + i, "endpoint": ep}], f"everyday {i}")
    rig.wait_for(lambda: (rig.status().get("queued") or 0) >= 3, 15, "the slow backlog")
    t = time.monotonic()
    rig.submit("fast", drain("az1"), "emergency: get traffic out of az1")
    took = rig.seconds_until_az1_gone(t, timeout=30)
    assert took < 20, took
    # Through the same door: a plan in the same store, flipped by the same enactors.
    log = rig.log("lanes")
    m = re.search(r"fast lane wrote (plan-\d{4}) for region: fast change #\d+ \(az1=0\)", log)
    assert m, log
    fast_plan = int(m.group(1).split("-")[1])
    flips = "".join(rig.log(n) for n in ("enactor-a", "enactor-b", "enactor-c"))
    flipped = [int(n) for n in re.findall(rf"FLIPPED {re.escape(DUAL)} A/AAAA: \S+ -> plan-(\d+)", flips)]
    # The enactors take the newest plan, so a heartbeat written after the drain may carry it.
    first = min(n for n in flipped if n >= fast_plan)
    plan = PlanStore(rig.plans).find(first)
    dual = plan.endpoint(DUAL)
    assert dual is not None and all(lb.weight == 0 for lb in dual.load_balancers if lb.az == "az1")
    assert (rig.status().get("queued") or 0) >= 1  # the slow backlog was still waiting

    # A stuck holder on the lock: the heartbeat is not delivered, the alarm comes within a period.
    rig.wait_for(lambda: rig.metric("lanes_fast_path_up") == 1, 30, "a working fast path")
    value = rig.hold_lock(DUAL)
    t = time.monotonic()
    before = len(rig.log("lanes"))
    found = rig.wait_for(lambda: rig.metric("lanes_fast_path_up") == 0, PERIOD + 10, "the alarm")
    assert found - t <= PERIOD + 5  # one period, plus the poll and scrape on a busy machine
    assert "FAST PATH BROKEN: heartbeat" in rig.log("lanes")[before:]
    rig.release_lock(value, DUAL)
    rig.wait_for(lambda: rig.metric("lanes_fast_path_up") == 1, 30, "the fast path restored")
    assert "fast path restored" in rig.log("lanes")[before:]
    assert rig.metric("lanes_slow_halted") == 0
