"""Operator tools over the real HTTP API: status, pause/resume, recover."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import trio

from authd.control.app import ControlAPI, serve_control
from enactor import machine as m
from enactor.checker.sim import active_plan, addresses, rollback_plan
from enactor.checker.testing import DUAL, LEGACY, plan_n, seeded_store
from enactor.cli import main
from enactor.client import Route53Http
from enactor.plan import PlanStore, lock_name
from enactor.runner import run_enactor


async def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out):
            return main(list(argv))
    code = await trio.to_thread.run_sync(run)
    return code, out.getvalue()


async def setup(nursery: trio.Nursery, tmp_path: Path, plans: int = 1):
    store = seeded_store()
    url = await nursery.start(serve_control, ControlAPI(store), "127.0.0.1", 0)
    ps = PlanStore(tmp_path / "plans")
    for n in range(1, plans + 1):
        ps.put(plan_n(n))
    return store, url, ps


async def test_pause_freezes_dns_and_resume_lets_enactors_continue(nursery: trio.Nursery, tmp_path: Path) -> None:
    store, url, ps = await setup(nursery, tmp_path)
    code, out = await cli("pause", "--api", url, "--plans", str(ps.dir), "--by", "alice")
    assert code == 0 and "PAUSED by alice" in out
    zid = store.find_zone_by_name("api.aws.").id
    lock = store.get_record_sets(zid, lock_name(DUAL), "TXT")[0].values[0]
    assert lock.startswith('"paused-by-alice ')
    ps.put(plan_n(2))
    before = store.record_sets(zid)
    log = io.StringIO()
    with trio.fail_after(30):
        await run_enactor(m.Config("enactor-a", poll_interval=0.01), Route53Http(url), ps,
                          log=log, max_steps=30, status_dir=str(tmp_path / "status"))
    assert store.record_sets(zid) == before  # DNS frozen as it is
    assert "PAUSED (paused-by-alice)" in log.getvalue()
    code, out = await cli("status", "--api", url, "--plans", str(ps.dir), "--status-dir", str(tmp_path / "status"))
    assert "lock PAUSED (paused-by-alice)" in out and "enactor-a" in out
    code, out = await cli("resume", "--api", url, "--plans", str(ps.dir))
    assert code == 0 and "resumed (was paused-by-alice)" in out
    with trio.fail_after(30):
        await run_enactor(m.Config("enactor-a", poll_interval=0.01), Route53Http(url), ps,
                          log=log, max_steps=80)
    assert active_plan(store, zid, DUAL) == 2


async def test_recover_installs_a_known_good_plan_without_any_enactor(nursery: trio.Nursery, tmp_path: Path) -> None:
    store, url, ps = await setup(nursery, tmp_path, plans=3)
    zid = store.find_zone_by_name("api.aws.").id
    # The outage: the alias points at a tree that is gone.
    recs = [rs for rs in store.record_sets(zid) if "plan-0001." in rs.name]
    recs.sort(key=lambda rs: rs.weight is None)
    store.change_batch(zid, [m.Change(m.Action.DELETE, rs) for rs in recs])
    assert not addresses(store, zid, DUAL, "A")
    # Not paused: running enactors would flip it straight back, so recover refuses and says so.
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code, out = await cli("recover", "--api", url, "--plans", str(ps.dir), "--plan", "3")
    assert code == 2 and "not paused" in err.getvalue() and "enactor pause" in err.getvalue()
    assert not addresses(store, zid, DUAL, "A")  # nothing was written
    code, out = await cli("pause", "--api", url, "--plans", str(ps.dir), "--by", "oncall")
    assert code == 0
    code, out = await cli("recover", "--api", url, "--plans", str(ps.dir), "--plan", "3")
    assert code == 0 and "stay paused" in out, out
    assert active_plan(store, zid, DUAL) == 3 and addresses(store, zid, DUAL, "AAAA")
    assert rollback_plan(store, zid, DUAL) is None  # nothing to roll back to: nothing flows as nothing
    lz = store.find_zone_by_name("amazonaws.com.").id
    assert active_plan(store, lz, LEGACY) == 3 and rollback_plan(store, lz, LEGACY) == 1
    code, out = await cli("status", "--api", url, "--plans", str(ps.dir), "--json")
    doc = json.loads(out)
    ep = {e["endpoint"]: e for e in doc["endpoints"]}
    assert ep[DUAL]["active"] == "plan-0003" and ep[DUAL]["answers"] == {"A": 4, "AAAA": 4}
    assert ep[LEGACY]["rollback"] == "plan-0001" and ep[DUAL]["lock"] == "PAUSED (paused-by-oncall)"


async def test_enactor_run_crash_exits_70_with_the_traceback(nursery: trio.Nursery, tmp_path: Path) -> None:
    store, url, ps = await setup(nursery, tmp_path, plans=2)
    zid = store.find_zone_by_name("api.aws.").id
    recs = [rs for rs in store.record_sets(zid) if "plan-0001." in rs.name]
    recs.sort(key=lambda rs: rs.weight is None)
    store.change_batch(zid, [m.Change(m.Action.DELETE, rs) for rs in recs])
    import sys

    proc = await trio.run_process(
        [sys.executable, "-m", "enactor", "run", "--name", "enactor-a", "--plans", str(ps.dir),
         "--api", url, "--defects", "2025", "--status-dir", str(tmp_path / "st")],
        capture_stderr=True, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 70
    assert "Traceback" in err and "RollbackTargetMissing" in err
    st = json.loads((tmp_path / "st" / "enactor-a.json").read_text())
    assert st["status"] == "CRASHED" and "RollbackTargetMissing" in st["last_error"]
