"""The outage timelines are deck-ready (issue 14): a headline that says what DNS did, the
decisive moments labelled, a legend entry for every mark, and nothing clipped."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402

from enactor.checker.schedule import schedule_2025  # noqa: E402
from enactor.drills.outage import run_outage  # noqa: E402
from tests.figure_checks import capture, outside_canvas  # noqa: E402


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip()]


@pytest.mark.parametrize(("defects", "typo", "headline", "labels"), [
    ("2025", False, "The 2025 defects: the endpoints answer NOERROR with zero records",
     ["stale flip back to plan-0002", "cleaner deletes the active tree",
      "first crash: RollbackTargetMissing"]),
    ("fixed", False, "The fixed design: answers never went empty",
     ["never empty: every name kept its answers"]),
    ("2025", True, "The 2025 defects: the endpoints answer NOERROR with zero records",
     ["operator deletes the active tree", "first crash: RollbackTargetMissing"]),
])
def test_outage_figure_tells_the_story(tmp_path, monkeypatch, defects, typo, headline, labels):
    saved = capture(monkeypatch)
    png = tmp_path / "outage.png"
    run_outage(defects, schedule_2025(typo=typo), inprocess=True, png=str(png))
    ((path, fig),) = [(p, f) for p, f in saved if str(p) == str(png)]
    assert png.stat().st_size > 20_000
    texts = _texts(fig)
    assert any(t.startswith(headline) for t in texts), texts[:3]
    for label in labels:
        assert label in texts, f"{label!r} not drawn"
    if defects == "fixed":
        assert "cleaner deletes the active tree" not in texts
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert {"holds a lock", "crash", "cleaner deleted trees", "operator deletes a tree"} <= set(legend)
    assert outside_canvas(fig) == []
