"""Blast radius: what the clients of each layout saw, from samples to numbers and a figure.

Pure core (no I/O, no clock; matplotlib only in `write_figure`). `enactor outage --cells`
(`enactor.cells.outage`) resolves every customer's own name, the regional name and each cell's
name through a real resolver at each sample of the schedule; this module turns those samples
into the blast radius:

- per customer: did it ever see an empty answer (NOERROR with no address: the dangling
  alias), from when, and for how long (until its name answered again, or the end of the run);
- per cell: the window in which the cell's own name answered empty, and its customers hit;
- for the regional name's clients: the share of router answers that were empty at each sample,
  and the share of clients that saw at least one empty answer.

A client that got no answer at all (timeout, SERVFAIL) is counted as failed, not as empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BlastSample:
    t: float  # schedule time (virtual, epoch seconds)
    customers: Mapping[str, bool]  # account -> its name answered empty
    router: Sequence[bool]  # one per regional-name client: its answer was empty
    cells: Mapping[str, bool]  # cell name -> the cell's own name answered empty
    failed: int = 0  # queries with no answer at all
    note: str = ""
    router_targets: Mapping[str, bool] = field(default_factory=dict)  # cell -> what the router
    # leads to there (its IPv4-only name) answered empty


@dataclass
class Window:
    start: float | None = None
    end: float | None = None  # first sample answering again; None while still empty
    samples: int = 0

    def add(self, t: float, empty: bool) -> None:
        if empty:
            self.samples += 1
            if self.start is None:
                self.start = t
            self.end = None
        elif self.start is not None and self.end is None:
            self.end = t

    def to_json(self, t0: float, t_last: float) -> dict[str, Any] | None:
        if self.start is None:
            return None
        end = self.end if self.end is not None else t_last
        return {"from": round(self.start - t0, 2), "to": round(end - t0, 2),
                "seconds": round(end - self.start, 2), "ongoing_at_end": self.end is None,
                "empty_samples": self.samples}


@dataclass
class Blast:
    """One layout's run, summarised."""

    layout: str  # "cells" or "no-cells"
    samples: list[BlastSample] = field(default_factory=list)

    def add(self, s: BlastSample) -> None:
        self.samples.append(s)

    def summary(self, cell_of: Mapping[str, str], t0: float) -> dict[str, Any]:
        """`cell_of`: account -> cell name ("regional" everywhere without cells)."""
        if not self.samples:
            return {"layout": self.layout, "samples": 0}
        t_last = self.samples[-1].t
        per_customer: dict[str, Window] = {a: Window() for a in cell_of}
        per_cell: dict[str, Window] = {}
        for s in self.samples:
            for a, empty in s.customers.items():
                per_customer.setdefault(a, Window()).add(s.t, empty)
            for c, empty in s.cells.items():
                per_cell.setdefault(c, Window()).add(s.t, empty)
        affected = sorted(a for a, w in per_customer.items() if w.start is not None)
        n_router = max((len(s.router) for s in self.samples), default=0)
        router_hit = [any(s.router[i] for s in self.samples if i < len(s.router)) for i in range(n_router)]
        router_queries = sum(len(s.router) for s in self.samples)
        router_empty = sum(sum(s.router) for s in self.samples)
        # the router's share while at least one of its members dangles (1/N by its design)
        during = [s for s in self.samples if any(s.router_targets.values())]
        cells_out: dict[str, Any] = {}
        for c in sorted(set(cell_of.values()) | set(per_cell)):
            mine = [a for a, cc in cell_of.items() if cc == c]
            hit = [a for a in mine if a in affected]
            cells_out[c] = {"customers": len(mine), "affected": len(hit),
                            "affected_accounts": hit,
                            "empty_answer_window": per_cell.get(c, Window()).to_json(t0, t_last)}
        durations = [w.to_json(t0, t_last) for a, w in per_customer.items() if w.start is not None]
        return {
            "layout": self.layout,
            "samples": len(self.samples),
            "customers": len(cell_of),
            "customers_affected": len(affected),
            "share_affected": round(len(affected) / len(cell_of), 4) if cell_of else 0.0,
            "affected_accounts": affected,
            "longest_empty_seconds": max((d["seconds"] for d in durations if d), default=0.0),
            "cells": cells_out,
            "router": {
                "clients": n_router,
                "clients_affected": sum(router_hit),
                "share_clients_affected": round(sum(router_hit) / n_router, 4) if n_router else 0.0,
                "answers": router_queries,
                "empty_answers": router_empty,
                "share_empty_answers": round(router_empty / router_queries, 4) if router_queries else 0.0,
                "samples_with_a_member_empty": len(during),
                "share_empty_while_a_member_is_empty": round(
                    sum(sum(s.router) for s in during) / max(1, sum(len(s.router) for s in during)), 4),
            },
            "failed_queries": sum(s.failed for s in self.samples),
            "timeline": [self.point(s, t0) for s in self.samples],
        }

    @staticmethod
    def point(s: BlastSample, t0: float) -> dict[str, Any]:
        n = len(s.customers) or 1
        return {"t": round(s.t - t0, 2),
                "customers_empty": round(sum(s.customers.values()) / n, 4),
                "router_empty": round(sum(s.router) / max(1, len(s.router)), 4)}


def table(results: Sequence[dict[str, Any]]) -> str:
    """The blast-radius table, one row per layout and name."""
    rows = [("layout", "clients of", "clients", "affected", "share", "")]
    for r in results:
        name = "no cells (one system)" if r["layout"] == "no-cells" else f"{len(r['cells'])} cells"
        rows.append((name, "own names (ACCOUNT.ddb)", str(r["customers"]), str(r["customers_affected"]),
                     f"{100 * r['share_affected']:.0f} %", f"longest empty {r['longest_empty_seconds']:.0f} s"))
        rt = r["router"]
        via = "regional name (router)" if r["layout"] != "no-cells" else "regional name"
        rows.append((name, via, str(rt["clients"]), str(rt["clients_affected"]),
                     f"{100 * rt['share_clients_affected']:.0f} %",
                     f"{100 * rt['share_empty_while_a_member_is_empty']:.0f} % of answers empty "
                     "while a member was"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_figure(results: Sequence[dict[str, Any]], path: str, title: str) -> Any:
    """Share of clients whose answer was empty, over schedule time, one line per layout and
    name. Returns the figure (tests check that its text fits)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    styles = {("cells", "own"): ("tab:green", "-"), ("cells", "router"): ("tab:orange", "--"),
              ("no-cells", "own"): ("tab:red", "-"), ("no-cells", "router"): ("tab:purple", ":")}
    for r in results:
        pts = r.get("timeline", [])
        ts = [p["t"] / 60 for p in pts]
        n = len(r["cells"])
        for key, field_, label in (("own", "customers_empty", "own names"),
                                   ("router", "router_empty", "regional name" + (" via router" if r["layout"] == "cells" else ""))):
            color, ls = styles[(r["layout"], key)]
            who = f"{n} cells" if r["layout"] == "cells" else "no cells"
            ax.step(ts, [100 * p[field_] for p in pts], where="post", color=color, linestyle=ls,
                    label=f"{who}: {label}", linewidth=2)
    ax.set_xlabel("schedule time (minutes after 06:00 UTC, virtual)")
    ax.set_ylabel("clients answered empty (%)")
    ax.set_ylim(-3, 103)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig
