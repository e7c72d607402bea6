"""The blast-radius experiment (issue 16): the 2025 schedule in one cell's enactors empties only
that cell's customers; the same schedule with no cells empties everyone's. Real processes
(authd, a resolver, planners and enactors per cell) and real dig through the resolver; the
summary arithmetic is checked on its own first."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from enactor.cells.blast import Blast, BlastSample, table, write_figure
from tests.figure_checks import outside_canvas

REPO = Path(__file__).resolve().parent.parent
T0 = 1_760_940_000.0


def test_summary_counts_customers_windows_and_router_shares() -> None:
    b = Blast("cells")
    cell_of = {"a1": "cell-1", "a2": "cell-2", "a3": "cell-2"}
    b.add(BlastSample(T0, {"a1": False, "a2": False, "a3": False}, [False, False], {"cell-1": False, "cell-2": False},
                      router_targets={"cell-1": False, "cell-2": False}))
    b.add(BlastSample(T0 + 5, {"a1": False, "a2": True, "a3": False}, [True, False], {"cell-1": False, "cell-2": True},
                      router_targets={"cell-1": False, "cell-2": True}))
    b.add(BlastSample(T0 + 9, {"a1": False, "a2": True, "a3": True}, [False, False], {"cell-1": False, "cell-2": True},
                      router_targets={"cell-1": False, "cell-2": True}))
    b.add(BlastSample(T0 + 20, {"a1": False, "a2": False, "a3": True}, [False, True], {"cell-1": False, "cell-2": False},
                      failed=1, router_targets={"cell-1": False, "cell-2": False}))
    s = b.summary(cell_of, T0)
    assert s["affected_accounts"] == ["a2", "a3"] and s["share_affected"] == round(2 / 3, 4)
    assert s["cells"]["cell-1"]["affected"] == 0 and s["cells"]["cell-1"]["empty_answer_window"] is None
    w = s["cells"]["cell-2"]["empty_answer_window"]
    assert (w["from"], w["to"], w["seconds"], w["ongoing_at_end"]) == (5, 20, 15, False)
    assert s["longest_empty_seconds"] == 15  # a2: 5..20, a3: 9..20 (still empty at the end)
    r = s["router"]
    assert (r["clients"], r["clients_affected"], r["answers"], r["empty_answers"]) == (2, 2, 8, 2)
    assert r["share_empty_while_a_member_is_empty"] == 0.25  # 1 of 4 answers in samples 2 and 3
    assert s["failed_queries"] == 1
    assert [p["customers_empty"] for p in s["timeline"]] == [0, round(1 / 3, 4), round(2 / 3, 4), round(1 / 3, 4)]
    assert "own names" in table([s])


def test_figure_text_fits(tmp_path: Path) -> None:
    b = Blast("cells")
    b.add(BlastSample(T0, {"a": False}, [False], {"cell-1": False}))
    b.add(BlastSample(T0 + 30, {"a": True}, [True], {"cell-1": True}))
    f = Blast("no-cells")
    f.add(BlastSample(T0, {"a": False}, [False], {"regional": False}))
    f.add(BlastSample(T0 + 30, {"a": True}, [True], {"regional": True}))
    fig = write_figure([b.summary({"a": "cell-1"}, T0), f.summary({"a": "regional"}, T0)],
                       str(tmp_path / "f.png"), "enactor outage --cells 4 --defects 2025 --defect-cell 2: 200 customers")
    assert outside_canvas(fig) == []
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_cli_refuses_bad_cell_flags_with_one_line() -> None:
    for argv, want in ((["--cells", "4", "--defect-cell", "5"], "no cell 5"),
                       (["--cells", "13"], "1..12"),
                       (["--cells", "2", "--typo"], "takes none of")):
        out = subprocess.run([sys.executable, "-m", "enactor", "outage", *argv], capture_output=True,
                             text=True, cwd=REPO, timeout=60)
        assert out.returncode == 2 and want in out.stderr, (argv, out.stderr)


@pytest.mark.realtime
@pytest.mark.slow
def test_real_processes_only_the_defect_cells_customers_go_empty(tmp_path: Path) -> None:
    """Two cells, the 2025 schedule (4 plans) in cell 2: about a minute on a quiet machine."""
    if shutil.which("dig") is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    from enactor.cells.cellmap import CellMap, accounts
    from enactor.cells.layout import CellLayout
    from enactor.cells.outage import run_cells_outage

    png = tmp_path / "cells.png"
    run = run_cells_outage(2, 2, "2025", plans=4, customers=16, png=str(png), work=tmp_path / "work")
    cells, flat = run.results
    cmap = CellMap(CellLayout.make(2))
    in_cell2 = sorted(a for a in accounts(16) if cmap.cell_of(a).name == "cell-2")
    assert 0 < len(in_cell2) < 16
    # only cell 2's customers, all of them, and the whole time to the end (every enactor crashed)
    assert cells["affected_accounts"] == in_cell2
    assert cells["cells"]["cell-1"]["affected"] == 0
    assert cells["cells"]["cell-1"]["empty_answer_window"] is None
    w = cells["cells"]["cell-2"]["empty_answer_window"]
    assert w is not None and w["ongoing_at_end"] and w["seconds"] > 0
    assert all(p["status"] != "CRASHED" for p in cells["enactors"]["cell-1"].values())
    # real dig through the resolver at the end: cell 1's customer gets addresses, cell 2's a
    # CNAME to its cell's name and nothing else, NOERROR
    digs = {d["cell"]: d for d in cells["dig_through_resolver"]}
    assert digs["cell-1"]["rcode"] == "NOERROR" and digs["cell-1"]["addresses"]
    assert digs["cell-2"]["rcode"] == "NOERROR" and not digs["cell-2"]["addresses"]
    assert digs["cell-2"]["chain"] == ["dynamodb.cell-2.ddb.us-east-1.api.aws."]
    # the router: while cell 2's member dangles, about 1/2 of its answers are empty
    r = cells["router"]
    assert r["samples_with_a_member_empty"] >= 3
    assert 0.25 <= r["share_empty_while_a_member_is_empty"] <= 0.75, r
    # the same schedule with no cells: every customer
    assert flat["customers_affected"] == 16 and flat["share_affected"] == 1.0
    assert flat["router"]["share_empty_while_a_member_is_empty"] == 1.0
    assert [d["addresses"] for d in flat["dig_through_resolver"]] == [[]]
    assert flat["dig_through_resolver"][0]["chain"] == ["dynamodb.us-east-1.api.aws."]
    # every client got an answer (a rare timeout on a loaded machine is counted as failed, never
    # as empty, so it cannot make a cell look affected)
    for r in (cells, flat):
        assert r["failed_queries"] <= 0.02 * r["samples"] * (2 * r["customers"] + 2), r["failed_queries"]
    assert png.stat().st_size > 10_000
    json.dumps(run.results)  # what --json prints
