"""The slow lane over the cells, on real processes: `enactor cells init --cells 2` (each cell
its own hosted zone, plan store and, here, one enactor) behind one `enactor lanes run
--targets cells/targets.json`. A slow
change goes to cell-1, is delivered and checked, bakes, and only then goes to cell-2; a step
that is never delivered (cell-2's enactor stopped) halts the slow lane, and nothing further is
rolled out, not even to the healthy cell-1. The check itself, on a damaged zone, names what is
wrong through the change API and over DNS."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from pathlib import Path

import pytest

from authd.store.contract import Action, Change
from enactor.client import Route53Http
from enactor.lanes.core import Target
from enactor.lanes.lanectl import Probe
from enactor.lanes.lanerig import Rig
from enactor.plan import PlanStore

pytestmark = [pytest.mark.realtime, pytest.mark.slow]
BAKE = 6.0


def at(log: str, pattern: str) -> float:
    """The time stamp of the first log line matching `pattern`."""
    m = re.search(rf"^(\S+) lanes {pattern}", log, re.M)
    assert m, f"no line matching {pattern!r} in:\n{log[-3000:]}"
    return dt.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()


def weight(rig: Rig, cell: int, lb: str) -> int:
    plan = PlanStore(rig.cell_plans(cell)).latest()
    assert plan is not None
    ep = plan.endpoint(rig.cell_endpoint(cell))
    assert ep is not None
    return next(x.weight for x in ep.load_balancers if x.name == lb)


@pytest.fixture
def rig(tmp_path: Path):  # type: ignore[no-untyped-def]
    if shutil.which("dig") is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    r = Rig(tmp_path, cells=2, lanes_args=["--period", "40", "--batch", "5", "--window", "0",
                                           "--gather", "1", "--bake", str(BAKE), "--step-timeout", "12"])
    try:
        r.start()
        yield r
    finally:
        r.stop()


def test_slow_rollout_goes_cell_by_cell_with_the_bake_and_a_stuck_step_halts_it(rig: Rig) -> None:
    def settled() -> bool:
        targets = rig.status().get("targets") or {}
        return len(targets) == 2 and all(not t["pending"] for t in targets.values())

    rig.wait_for(settled, 60, "the first heartbeat delivered to both cells")
    rig.submit("slow", [{"selector": "az2", "weight": 7}], "everyday")
    rig.wait_for(lambda: "rolled out to every target" in rig.log("lanes"), 60, "the rollout")
    log = rig.log("lanes")
    wrote1 = at(log, r"slow lane wrote plan-\d+ for cell-1")
    checked1 = at(log, r"slow batch 1: cell-1 checked; baking")
    wrote2 = at(log, r"slow lane wrote plan-\d+ for cell-2")
    assert wrote1 < checked1 < wrote2
    assert wrote2 - checked1 >= BAKE - 0.02  # the bake (log stamps are to 10 ms)
    assert weight(rig, 1, "az2-lb1") == 7 and weight(rig, 2, "az2-lb1") == 7

    # cell-2's enactor stops: the next batch reaches cell-1, then never cell-2's DNS; it halts.
    rig.stop("enactor-cell-2")
    rig.submit("slow", [{"selector": "az2", "weight": 8}], "everyday")
    rig.wait_for(lambda: "SLOW LANE HALTED" in rig.log("lanes"), 60, "the halt")
    assert "not delivered to cell-2" in rig.log("lanes")
    assert weight(rig, 1, "az2-lb1") == 8
    rig.submit("slow", [{"selector": "az2", "weight": 9}], "everyday, after the halt")
    rig.wait_for(lambda: (rig.status().get("queued") or 0) >= 1, 15, "the change queued")
    time.sleep(3)  # several gathers and polls: proving an absence needs some time to pass
    assert weight(rig, 1, "az2-lb1") == 8  # nothing further was rolled out
    assert rig.status()["halted"]


def test_the_check_names_a_damaged_target_through_the_api_and_dns(rig: Rig) -> None:
    rig.stop("enactor-cell-1")  # so nobody repairs it while we look
    api = Route53Http(rig.api_url)
    zid = api.find_zone_by_name(rig.cell_zone(1)).id
    active = api.get_record_sets(zid, rig.cell_endpoint(1), "A")[0].alias
    assert active is not None
    tree = [rs for rs in api.record_sets(zid) if rs.name.endswith(active.dns_name)]
    tree.sort(key=lambda rs: rs.weight is None)  # the weighted root before its leaves
    api.change_batch(zid, [Change(Action.DELETE, rs) for rs in tree], "operator typo")
    plans = PlanStore(rig.cell_plans(1)).latest()
    assert plans is not None
    probe = Probe(api, ("127.0.0.1", rig.dns_port))
    got = probe.check(Target("cell-1", (rig.cell_endpoint(1),), str(rig.cell_plans(1))), plans.endpoints)
    text = "\n".join(got)
    assert f"resolves: {rig.cell_endpoint(1)} A answers NOERROR with 0 addresses" in text, text
    assert f"answer: {rig.cell_endpoint(1)} A over DNS: NOERROR with 0 addresses" in text, text
