"""Cells with real processes (issue 16): `enactor cells init` gives each cell its own zone, plan
directory and capacity file; one cell's enactor process changes only its own zone; a move is
one CNAME UPSERT, and a caching resolver keeps the old cell for at most the CNAME's TTL."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enactor.cells.cellmap import CellMap, accounts
from enactor.cells.layout import CellLayout
from enactor.cells.outage import dig_answer, shared_dns
from enactor.checker.sim import active_plan
from enactor.client import Route53Http

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.realtime, pytest.mark.slow]


def enactor(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "enactor", *args], capture_output=True, text=True,
                         cwd=REPO, timeout=timeout)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


def test_one_cells_enactor_changes_only_its_zone_and_a_move_is_bounded_by_the_ttl(tmp_path: Path) -> None:
    if shutil.which("dig") is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    root = tmp_path / "cells"
    enactor("cells", "init", "--cells", "2", "--dir", str(root))
    layout = CellLayout.make(2)
    for c in layout.cells:
        assert (root / c.plan_dir / "plan-0001.json").exists() and (root / c.name / "capacity.json").exists()
    targets = json.loads((root / "targets.json").read_text())["targets"]
    assert [t["plans"] for t in targets] == [str(root / c.plan_dir) for c in layout.cells]
    ttl = 4
    with shared_dns(root, None, cache=True) as (dns_port, api_port, res_port):
        url = f"http://127.0.0.1:{api_port}"
        api = Route53Http(url)
        enactor("cells", "map", "--cells", "2", "--customers", "8", "--api", url, "--ttl", str(ttl))
        c1, c2 = (api.find_zone_by_name(c.zone).id for c in layout.cells)
        cell1_before = sorted(json.dumps(rs.to_route53(), sort_keys=True) for rs in api.record_sets(c1))

        # cell 2's own planner (its capacity file: az1 drained) and its own enactor process
        enactor("capacity", "drain", "--az", "az1", "--capacity", str(root / "cell-2" / "capacity.json"))
        enactor("planner", "--plans", str(root / "cell-2" / "plans"), "--capacity",
                str(root / "cell-2" / "capacity.json"), "--once")
        proc = subprocess.Popen([sys.executable, "-m", "enactor", "run", "--name", "enactor-a", "--plans",
                                 str(root / "cell-2" / "plans"), "--api", url, "--poll", "0.2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        try:
            deadline = time.monotonic() + 90
            target = layout.find_cell(2).target
            while active_plan(api, c2, target) != 2:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        cell1_after = sorted(json.dumps(rs.to_route53(), sort_keys=True) for rs in api.record_sets(c1))
        assert cell1_after == cell1_before  # cell 1's zone, locks and all, untouched
        assert active_plan(api, c1, layout.find_cell(1).target) == 1

        # a move: the resolver caches the old CNAME, the API already has the new one
        account = accounts(8)[0]
        old = CellMap(layout).cell_of(account)
        new = next(c for c in layout.cells if c is not old)
        name = layout.customer_name(account)
        t0 = time.monotonic()
        assert dig_answer(res_port, name)["chain"] == [old.target]  # cached from here, for ttl s
        enactor("cells", "map", "--cells", "2", "--api", url, "--move", f"{account}={new.name}")
        sets = api.get_record_sets(api.find_zone_by_name(layout.customer_zone).id, name, "CNAME")
        assert [rs.values for rs in sets] == [(new.target,)]
        seen = dig_answer(res_port, name)["chain"]
        if time.monotonic() - t0 < ttl - 0.5:  # still inside the cached copy's lifetime
            assert seen == [old.target]
        while seen != [new.target]:
            assert time.monotonic() - t0 < ttl + 20, "the move never reached the resolver's clients"
            time.sleep(0.2)
            seen = dig_answer(res_port, name)["chain"]
        assert time.monotonic() - t0 >= ttl - 1  # not before the old copy expired
