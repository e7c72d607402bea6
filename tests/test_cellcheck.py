"""`enactor check --cells` (issue 16): the interleaving checker over two cells of the real
enactor code: the 2025 race in one cell never empties the other's names, and the check can
fail (a cell wired to another's plans is caught)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from enactor import machine as m
from enactor.cells import check as cellcheck
from enactor.cells.check import CellBounds, explore_cells, explore_race, record_race
from enactor.cells.layout import CellLayout

REPO = Path(__file__).resolve().parent.parent


def test_the_recorded_race_ends_in_the_2025_crash_inside_its_own_zone() -> None:
    layout = CellLayout.make(2)
    events, cfgs = record_race(layout, 1, 4)
    assert [c.name for c in cfgs] == ["enactor-a", "enactor-b", "enactor-c"]
    acts = [e for e in events if e[0] == "act"]
    zone_id = layout.find_cell(1).zone_id
    assert all(getattr(e[2], "zone_id", zone_id) == zone_id for e in acts)
    assert any(isinstance(e[2], m.SubmitBatch) and e[2].purpose is m.Purpose.CLEAN for e in acts)


@pytest.mark.slow
def test_race_in_cell_1_interleaved_every_way_with_cell_2_installing_a_plan() -> None:
    """About a minute: cell 2's enactor installs its plan 2 at every point of cell 1's race."""
    rep = explore_race(CellBounds(cells=2, enactors=1, plans=2, lock_losses=1, defect_cell=1), race_plans=4)
    assert rep.violations == [] and rep.complete
    assert rep.defect_cell_empty_states > 0  # the race did empty cell 1, in many interleavings
    assert rep.defect_cell_crashed_states > 0  # and crashed its enactor (the 2025 crash)
    assert rep.race_steps > 100 and rep.states > rep.race_steps  # interleavings, not one path
    doc = rep.to_json()
    assert doc["mode"] == "race" and doc["bounds"]["other_cells"]["plans"] == 2


def test_product_of_both_cells_within_a_depth_bound() -> None:
    rep = explore_cells(CellBounds(cells=2, enactors=1, plans=2, depth=8, defect_cell=2),
                        m.parse_defects("2025"))
    assert rep.violations == [] and rep.complete and rep.states > 100


def test_a_cell_wired_to_another_cells_plans_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real_init = cellcheck.CellExplorer.__init__

    def miswired(self: cellcheck.CellExplorer, *a: object, **kw: object) -> None:
        real_init(self, *a, **kw)  # type: ignore[arg-type]
        self.plans[1] = self.plans[0]  # cell 2's enactors read cell 1's plans: a shared plan file

    monkeypatch.setattr(cellcheck.CellExplorer, "__init__", miswired)
    rep = explore_cells(CellBounds(cells=2, enactors=1, plans=1, depth=6, defect_cell=1), frozenset())
    assert rep.violations and rep.violations[0]["invariant"] == "CONFINED"
    assert "cell-2 enactor-a: looks up zone cell-1.ddb.us-east-1.api.aws." in rep.violations[0]["what"]
    assert "stopped at the first violation" in rep.text()


def test_cli_prints_the_bounds_and_json() -> None:
    out = subprocess.run([sys.executable, "-m", "enactor", "check", "--cells", "2", "--plans", "1",
                          "--json", "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["violations"] == [] and doc["complete"] and doc["defect_cell_empty_states"] > 0
    bad = subprocess.run([sys.executable, "-m", "enactor", "check", "--cells", "1"], capture_output=True,
                         text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "at least 2" in bad.stderr
