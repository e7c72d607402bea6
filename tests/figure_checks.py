"""Test helper: what a matplotlib figure draws beyond its canvas (clipped in the PNG)."""

from __future__ import annotations

import matplotlib
import matplotlib.text


def outside_canvas(fig) -> list[str]:
    """The texts (or the drawn extent) of a figure that leave its canvas: titles, labels, tick
    labels, legends and annotations must all lie within the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tight = fig.get_tightbbox(renderer)  # inches, of everything drawn
    w, h = fig.get_size_inches()
    eps = 0.02
    out = []
    if tight.x0 < -eps or tight.y0 < -eps or tight.x1 > w + eps or tight.y1 > h + eps:
        for text in fig.findobj(matplotlib.text.Text):
            if text.get_visible() and text.get_text().strip():
                box = text.get_window_extent(renderer).transformed(fig.dpi_scale_trans.inverted())
                if box.x0 < -eps or box.y0 < -eps or box.x1 > w + eps or box.y1 > h + eps:
                    out.append(text.get_text())
        out = out or [f"drawn extent {tight} beyond {w}x{h} in"]
    return out


def capture(monkeypatch) -> list:
    """Keep every figure saved from now on open, as (path, figure) pairs, to inspect."""
    import matplotlib.figure
    import matplotlib.pyplot as plt

    saved: list = []
    real = matplotlib.figure.Figure.savefig

    def keep(fig, path, **kw):
        saved.append((path, fig))
        return real(fig, path, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    monkeypatch.setattr(plt, "close", lambda fig=None: None)
    return saved
