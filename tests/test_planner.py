"""The planner: a new plan exactly when the capacity input changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from enactor.plan import LoadBalancer, PlanStore
from enactor.planner import (
    add_capacity,
    default_capacity,
    drain_az,
    emit,
    load_capacity,
    next_plan,
    save_capacity,
    shift_weight,
)

DUAL = "dynamodb.us-east-1.api.aws."


def test_first_plan_and_no_change_means_no_plan() -> None:
    cap = default_capacity()
    p1 = next_plan(cap, None, 100.0)
    assert p1 is not None and p1.number == 1
    assert next_plan(cap, p1, 200.0) is None
    forced = next_plan(cap, p1, 200.0, force=True)
    assert forced is not None and forced.number == 2


def test_drain_az_sets_all_its_load_balancers_to_zero() -> None:
    cap = drain_az(default_capacity(), "az1")
    for e in cap:
        for lb in e.load_balancers:
            assert (lb.weight == 0) == (lb.az == "az1")
    with pytest.raises(ValueError, match="no load balancers in az9"):
        drain_az(cap, "az9")


def test_add_capacity_and_shift_weight() -> None:
    cap = add_capacity(default_capacity(), DUAL, LoadBalancer("az2-lb2", "198.51.100.22", "2001:db8:2::22", 80))
    dual = next(e for e in cap if e.name == DUAL)
    assert [lb.name for lb in dual.load_balancers][-1] == "az2-lb2"
    with pytest.raises(ValueError, match="IPv6"):
        add_capacity(cap, DUAL, LoadBalancer("az2-lb3", "198.51.100.23", None, 80))
    cap2 = shift_weight(cap, "az2-lb2", 10, DUAL)
    assert next(lb for e in cap2 if e.name == DUAL for lb in e.load_balancers if lb.name == "az2-lb2").weight == 10
    with pytest.raises(ValueError, match="0..255"):
        shift_weight(cap, "az2-lb2", 256)


def test_emit_writes_plan_n_plus_one_on_change(tmp_path: Path) -> None:
    store = PlanStore(tmp_path / "plans")
    capfile = tmp_path / "capacity.json"
    save_capacity(capfile, default_capacity())
    assert emit(store, load_capacity(capfile), 1.0).number == 1  # type: ignore[union-attr]
    assert emit(store, load_capacity(capfile), 2.0) is None
    save_capacity(capfile, drain_az(load_capacity(capfile), "az3"))
    p2 = emit(store, load_capacity(capfile), 3.0)
    assert p2 is not None and p2.number == 2 and store.latest() == p2


def test_capacity_file_errors_name_the_path(tmp_path: Path) -> None:
    capfile = tmp_path / "capacity.json"
    capfile.write_text('{"endpoints": [{"name": "x.api.aws.", "zone": "api.aws.", "dual_stack": false, "load_balancers": [{"name": "a", "ipv4": "1.2.3", "weight": 1}]}]}')
    with pytest.raises(ValueError, match=r"capacity.json: \$.endpoints\[0\].load_balancers\[0\].ipv4"):
        load_capacity(capfile)


def test_planner_and_capacity_commands(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    cap, plans = tmp_path / "capacity.json", tmp_path / "plans"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "enactor", *args], capture_output=True, text=True, cwd=repo, timeout=60)

    assert run("planner", "--plans", str(plans), "--capacity", str(cap), "--once").returncode == 0
    assert PlanStore(plans).numbers() == [1]
    out = run("capacity", "drain", "--capacity", str(cap), "--az", "az2")
    assert out.returncode == 0 and "az2-lb1=0" in out.stdout
    assert run("planner", "--plans", str(plans), "--capacity", str(cap), "--once").returncode == 0
    latest = PlanStore(plans).latest()
    assert latest is not None and latest.number == 2
    assert all(lb.weight == 0 for e in latest.endpoints for lb in e.load_balancers if lb.az == "az2")
    bad = run("capacity", "drain", "--capacity", str(cap), "--az", "az9")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "no load balancers in az9" in bad.stderr
