"""The outage-recovery figures are deck-ready: one point per negative TTL, grouped CDFs, a legend
entry for every mark and band, and every text inside the canvas (issue 14)."""

from __future__ import annotations

import random

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from resolver.experiment import BatchResult, CellRun, ExperimentResult, Settings, plot  # noqa: E402
from resolver.outage import Cell, ClientResult, Impl, Layer, Outcome, Sample  # noqa: E402
from tests.figure_checks import outside_canvas  # noqa: E402


@pytest.fixture
def synthetic() -> tuple[ExperimentResult, Settings]:
    settings = Settings()
    rng = random.Random(3)
    clients, runs = [], []
    for soa_ttl, minimum in settings.negatives:
        for layer in Layer:
            cell = Cell(soa_ttl, minimum, False, layer, 8.0, Impl.OURS)
            neg = cell.negative_ttl
            for c in range(settings.clients):
                delay = 0.05 if layer is Layer.NONE else rng.uniform(0, neg)
                clients.append((cell, ClientResult(c, 6.2, 14.0 + delay), 14.0))
            run = CellRun(cell, len(runs), f"z{len(runs)}.test.", t_gone=6.0, t_back=14.0)
            for i in range(200):
                t = i * 0.1
                run.probe.append(Sample(t, -1, Outcome.EMPTY if 6 <= t < 14 else Outcome.ADDRESSES))
                for c in range(settings.clients):
                    empty = 6 <= t < 14 + (0 if layer is Layer.NONE else neg * c / settings.clients)
                    run.samples.append(Sample(t, c, Outcome.EMPTY if empty else Outcome.ADDRESSES))
            runs.append(run)
    return ExperimentResult([], clients, [BatchResult(runs, 6.0, 14.0)]), settings


def test_figures_render_with_every_text_inside(tmp_path, synthetic, monkeypatch):
    result, settings = synthetic
    figures = []
    real_savefig = matplotlib.figure.Figure.savefig

    def keep(fig, path, **kw):
        figures.append((path, fig))
        return real_savefig(fig, path, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    closed = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: None)  # keep them open to inspect
    paths = plot(tmp_path, result, settings)
    assert [p.name for p in paths] == ["recovery_delay_vs_negative_ttl.png", "recovery_cdf.png",
                                       "timeline.png"]
    for path, fig in figures:
        assert path.exists() and path.stat().st_size > 10_000
        assert outside_canvas(fig) == [], path.name
        for ax in fig.axes:
            assert ax.get_xlabel() and (ax.get_ylabel() or ax is not fig.axes[0])
    delay_fig = figures[0][1]
    (ax,) = delay_fig.axes
    # one point per negative TTL: (10, 3) and (3, 10) pooled, so x values never repeat
    for line in ax.get_lines():
        xs = list(line.get_xdata())
        assert len(xs) == len(set(xs)), line.get_label()
    assert len(figures[1][1].axes) == len(Layer)  # the CDF: one panel per cache layer
    labels = [t.get_text() for t in figures[2][1].axes[0].get_legend().get_texts()]
    assert any("negative TTL" in t for t in labels) and any("empty" in t for t in labels)
    for _, fig in figures:
        closed(fig)
