"""`enactor gameday`, the pure core: client samples and enactor events in, per-layer windows,
the table and the figure out.

No sockets, no clock, no trio: the shell (`enactor.drills.gameday_run`) runs the 2025 schedule in
real time against real processes, with clients sampling the endpoint names through each layer
(straight at authd, through our resolver, through Unbound, through a stub cache), and hands
this module what they saw. Times are seconds since the game day started (wall clock).

A client is *failing* from a failed sample (an empty answer, NOERROR with no address or
NXDOMAIN, or an error: SERVFAIL, no answer in time) until its next good one. Its time "kept
failing after the repair" is its first good answer after its last failure, minus the moment
the operator's repair was on authd (0 when it had recovered before). Caches stretch it: a
resolver holds the empty answer for its negative TTL, min(SOA TTL, SOA MINIMUM) (RFC 2308 §5),
which is why clients recovered 09:25-09:40 UTC on 20 October 2025 when the records were back at
09:25.

`write_png` draws the talk's figure (matplotlib, Agg; the only output besides return values).
"""

from __future__ import annotations

import bisect
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from resolver.outage import Outcome

LAYERS = ("authd", "resolver", "unbound", "stub")
LAYER_TITLES = {
    "authd": "straight at authd",
    "resolver": "through our resolver",
    "unbound": "through Unbound",
    "stub": "stub cache -> our resolver",
}
NAMES = ("dynamodb.us-east-1.amazonaws.com.", "dynamodb.us-east-1.api.aws.")


@dataclass(frozen=True)
class ClientSample:
    """What one client got for one query: `t` is when it sent it (game-day seconds)."""

    t: float
    layer: str
    client: int
    name: str
    outcome: Outcome

    @property
    def failed(self) -> bool:
        return self.outcome is not Outcome.ADDRESSES


@dataclass(frozen=True)
class Mark:
    """A decisive moment, in game-day seconds: stale-flip, deletion, first-crash, refused,
    pause, repair (the kind), with the sentence the figure shows; `crash` marks each later
    crash of the loop (a marker, no label)."""

    t: float
    kind: str
    text: str


@dataclass(frozen=True)
class LayerResult:
    layer: str
    clients: int
    samples: int
    failed_clients: int  # clients with at least one failed sample
    empty_samples: int
    error_samples: int
    first_failure: float | None
    last_failure: float | None
    recovered: int  # clients whose last sample got addresses
    median_after_repair: float | None  # over the clients that failed
    max_after_repair: float | None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Settings:
    design: str = "2025"  # "2025": all three defects restored; "fixed": none
    speed: float = 2.0  # schedule seconds per wall-clock second
    plans: int = 12
    layers: tuple[str, ...] = LAYERS
    clients: int = 6  # per layer, half on each endpoint name
    rate: float = 2.0  # queries per second per client
    record_ttl: int = 5  # resolvers cap positive TTLs here (DynamoDB's endpoint TTL is 5 s)
    negative_ttl: int = 30  # the zones' SOA MINIMUM: RFC 2308 negative TTL min(900, this)
    stub_negative_ttl: int = 5
    warmup: float = 6.0  # clients run this long before the schedule starts
    tail: float | None = None  # seconds after the repair; default: every cache can let go
    timeout: float = 2.0  # a client query unanswered this long is an error

    @property
    def defects(self) -> str:
        return "2025" if self.design == "2025" else "fixed"

    @property
    def tail_seconds(self) -> float:
        if self.tail is not None:
            return self.tail
        stub = self.stub_negative_ttl if "stub" in self.layers else 0
        return self.negative_ttl + self.record_ttl + stub + 4.0


# --- the decisive events ------------------------------------------------------------------


_PLAN = re.compile(r"-> plan-0*(\d+)")


def decisive_marks(events: Iterable[Any], to_real: Callable[[float], float]) -> list[Mark]:
    """From the outage recorder's events (`enactor.drills.timeline.Event`, schedule time): the
    stale flip (the first flip to an older plan than its endpoint had), the cleaner deletion
    that left an alias dangling (the last one before authd first went empty), the first
    crash, a flip the fixed design refused, and the operator's pause and repair."""
    evs = list(events)
    marks: list[Mark] = []
    best: dict[str, int] = {}
    for e in evs:
        if e.kind != "flip":
            continue
        name = e.text.split(" ", 1)[0].rstrip(".")
        mm = _PLAN.search(e.text)
        plan = int(mm.group(1)) if mm else 0
        if plan and plan < best.get(name, 0):
            marks.append(Mark(to_real(e.t), "stale-flip",
                              f"stale flip: {e.actor} points {name} at plan-{plan:04d}"))
            break
        best[name] = max(best.get(name, 0), plan)
    refused = next((e for e in evs if e.kind == "log" and "backwards" in e.text), None)
    if refused is not None:
        marks.append(Mark(to_real(refused.t), "refused",
                          f"stale flip refused ({refused.actor}): it would go backwards"))
    empty_at = next((e.t for e in evs if e.kind == "empty"), None)
    if empty_at is not None:
        cleans = [e for e in evs if e.kind == "clean" and e.t <= empty_at + 1e-6]
        if cleans:
            marks.append(Mark(to_real(cleans[-1].t), "deletion",
                              f"{cleans[-1].actor}'s cleaner deletes the active tree"))
    crashes = [e for e in evs if e.kind == "crash"]
    if crashes:
        marks.append(Mark(to_real(crashes[0].t), "first-crash", f"first crash ({crashes[0].actor})"))
    # every later crash of the loop (restarted by the supervisor, crashed again): a marker only
    marks += [Mark(to_real(e.t), "crash", f"{e.actor} crashes again") for e in crashes[1:]]
    for kind in ("pause", "repair"):
        e = next((e for e in evs if e.kind == kind), None)
        if e is not None:
            marks.append(Mark(to_real(e.t), kind, e.text))
    return sorted(marks, key=lambda m: m.t)


def authd_windows(events: Iterable[Any], to_real: Callable[[float], float],
                  end: float) -> list[tuple[float, float]]:
    """When authd's serving index had no answer left for some watched name (its exact
    `empty` / `back` record, `authd.dns.emptywatch`), merged over the names, in game-day seconds."""
    open_at: dict[str, float] = {}
    spans: list[tuple[float, float]] = []
    for e in events:
        if e.kind == "empty" and e.text not in open_at:
            open_at[e.text] = to_real(e.t)
        elif e.kind == "back" and e.text in open_at:
            spans.append((open_at.pop(e.text), to_real(e.t)))
    spans += [(t, end) for t in open_at.values()]
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


# --- per layer -----------------------------------------------------------------------------


def _by_client(samples: Iterable[ClientSample], layer: str) -> dict[int, list[ClientSample]]:
    out: dict[int, list[ClientSample]] = {}
    for s in samples:
        if s.layer == layer:
            out.setdefault(s.client, []).append(s)
    for v in out.values():
        v.sort(key=lambda s: s.t)
    return out


def kept_failing(history: Sequence[ClientSample], t_repair: float) -> float | None:
    """How long after the repair one client kept failing: its first good answer after its
    last failure, minus `t_repair` (0 when that was before the repair); None when it never
    failed or never got an address again."""
    last = max((i for i, s in enumerate(history) if s.failed), default=None)
    if last is None:
        return None
    back = next((s.t for s in history[last + 1:] if not s.failed), None)
    return None if back is None else max(0.0, back - t_repair)


def analyse(samples: Sequence[ClientSample], t_repair: float,
            layers: Sequence[str] = LAYERS) -> dict[str, LayerResult]:
    out: dict[str, LayerResult] = {}
    for layer in layers:
        per = _by_client(samples, layer)
        mine = [s for hist in per.values() for s in hist]
        failures = [s.t for s in mine if s.failed]
        after = [d for d in (kept_failing(h, t_repair) for h in per.values()) if d is not None]
        out[layer] = LayerResult(
            layer=layer,
            clients=len(per),
            samples=len(mine),
            failed_clients=sum(1 for h in per.values() if any(s.failed for s in h)),
            empty_samples=sum(1 for s in mine if s.outcome is Outcome.EMPTY),
            error_samples=sum(1 for s in mine if s.outcome is Outcome.ERROR),
            first_failure=min(failures, default=None),
            last_failure=max(failures, default=None),
            recovered=sum(1 for h in per.values() if h and not h[-1].failed),
            median_after_repair=statistics.median(after) if after else None,
            max_after_repair=max(after) if after else None,
        )
    return out


def failing_share(samples: Sequence[ClientSample], layer: str,
                  times: Sequence[float]) -> tuple[list[float], list[float]]:
    """At each time, the share of the layer's clients whose latest answer was empty, and the
    share whose latest was an error (clients not yet started are not counted)."""
    per = _by_client(samples, layer)
    stamps = {c: [s.t for s in h] for c, h in per.items()}
    empty, error = [], []
    for t in times:
        n = e = x = 0
        for c, h in per.items():
            i = bisect.bisect_right(stamps[c], t) - 1
            if i < 0:
                continue
            n += 1
            e += h[i].outcome is Outcome.EMPTY
            x += h[i].outcome is Outcome.ERROR
        empty.append(e / n if n else 0.0)
        error.append(x / n if n else 0.0)
    return empty, error


def _fmt(x: float | None, unit: str = " s") -> str:
    return "-" if x is None else f"{x:.1f}{unit}"


TABLE_COLUMNS = """columns (times in seconds since the game day started; one row per layer):
  layer        where the clients' queries go; under it, one row per endpoint name
  clients      clients in the layer (half ask each endpoint name, A records)
  failed       clients that saw an empty answer or an error at least once
  first/last   the layer's first and last failed sample
  empty/error  failed samples: empty (NOERROR with no address, or NXDOMAIN) / error
  after repair how long the clients kept failing after the repair: median and slowest
  recovered    clients whose last answer had addresses"""


def analyse_by_name(samples: Sequence[ClientSample], t_repair: float,
                    layers: Sequence[str] = LAYERS) -> dict[str, dict[str, LayerResult]]:
    """`analyse` per layer and per endpoint name: the regional amazonaws.com name (the one
    AWS's summary says was left empty) and the api.aws name (the talk's)."""
    names = sorted({s.name for s in samples})
    return {layer: {n: analyse([s for s in samples if s.name == n], t_repair, (layer,))[layer]
                    for n in names} for layer in layers}


def _row(title: str, r: LayerResult) -> str:
    return (f"{title:36} {r.clients:7d} {r.failed_clients:6d} "
            f"{_fmt(r.first_failure):>8} {_fmt(r.last_failure):>8} "
            f"{f'{r.empty_samples}/{r.error_samples}':>11} {_fmt(r.median_after_repair):>20} "
            f"{_fmt(r.max_after_repair):>8} {f'{r.recovered}/{r.clients}':>9}")


def table(results: dict[str, LayerResult], t_repair: float,
          by_name: dict[str, dict[str, LayerResult]] | None = None) -> str:
    """One row per layer, and under it one per endpoint name when `by_name` is given."""
    head = (f"{'layer / endpoint name':36} {'clients':>7} {'failed':>6} {'first':>8} {'last':>8} "
            f"{'empty/error':>11} {'after repair: median':>20} {'slowest':>8} {'recovered':>9}")
    lines = [f"repair on authd at {t_repair:.1f} s", head, "-" * len(head)]
    for r in results.values():
        lines.append(_row(LAYER_TITLES.get(r.layer, r.layer), r))
        for name, rn in (by_name or {}).get(r.layer, {}).items():
            lines.append(_row(f"  {name.rstrip('.')}", rn))
    return "\n".join(lines)


def headline(design: str, results: dict[str, LayerResult], authd_empty: bool) -> str:
    """The figure's first line: what the clients saw, in a few words."""
    who = "The 2025 defects" if design == "2025" else "The fixed design"
    failed = [r for r in results.values() if r.failed_clients]
    if not failed and not authd_empty:
        return f"{who}: the same schedule, and no client of any layer ever failed"
    slowest = max((r.max_after_repair or 0.0 for r in failed), default=0.0)
    stuck = sum(r.clients - r.recovered for r in results.values())
    tail = (f"{stuck} client{'s' if stuck != 1 else ''} still failing at the end" if stuck else
            f"the slowest {slowest:.0f} s past the repair")
    return (f"{who}: authd answers empty, the enactors crash; clients of {len(failed)} of "
            f"{len(results)} layers fail, {tail}")


# --- the figure ----------------------------------------------------------------------------


_MARK_COLOURS = {"stale-flip": "#756bb1", "deletion": "#e6550d", "first-crash": "#de2d26",
                 "refused": "#74c476", "pause": "#636363", "repair": "#31a354"}


def write_png(path: str, samples: Sequence[ClientSample], marks: Sequence[Mark],
              results: dict[str, LayerResult], authd_spans: Sequence[tuple[float, float]],
              end: float, title: str, headline_text: str, step: float = 0.1) -> None:
    """One band per layer (share of clients failing, empty in red over errors in black),
    authd's exact empty window behind them, and the decisive moments as lines across all
    bands, labelled in an event lane on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    layers = list(results)
    fig, axes = plt.subplots(
        len(layers) + 1, 1, figsize=(13, 2.0 + 1.45 * len(layers)), sharex=True,
        layout="constrained", gridspec_kw={"height_ratios": [1.5] + [1] * len(layers)})
    lane, bands = axes[0], axes[1:]
    times = [i * step for i in range(int(end / step) + 1)]
    for ax, layer in zip(bands, layers, strict=True):
        for a, b in authd_spans:
            ax.axvspan(a, b, color="#fcbba1", alpha=0.45, lw=0)
        empty, error = failing_share(samples, layer, times)
        both = [100 * (e + x) for e, x in zip(empty, error, strict=True)]
        ax.fill_between(times, 0, [100 * x for x in error], step="post", color="#252525", lw=0)
        ax.fill_between(times, [100 * x for x in error], both, step="post", color="#cb181d", lw=0)
        r = results[layer]
        ax.set_ylim(0, 105)
        ax.set_yticks([0, 50, 100])
        ax.set_ylabel("failing [%]", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        note = (f"{r.failed_clients}/{r.clients} clients failed"
                + (f"; the slowest kept failing {r.max_after_repair:.1f} s after the repair"
                   if r.max_after_repair is not None else ""))
        ax.set_title(f"{LAYER_TITLES.get(layer, layer)}: {note}", fontsize=9, loc="left")
        if not r.failed_clients:  # a flat band says so, in words
            ax.text(0.5, 0.5, f"no failure: {r.samples} answers, every one with addresses",
                    transform=ax.transAxes, ha="center", va="center", fontsize=10,
                    color="#31a354", fontweight="bold")
        for m in marks:
            if m.kind != "crash":
                ax.axvline(m.t, color=_MARK_COLOURS.get(m.kind, "grey"), ls="--", lw=1)
    # the event lane: each label in the first of four rows where it does not overlap
    lane.set_ylim(0, 1)
    lane.set_yticks([])
    for side in ("left", "right", "top"):
        lane.spines[side].set_visible(False)
    per_char = end / 160  # about one character of bold 8 pt text on a 13-inch axis
    rows = 4
    row_end = [-1e9] * rows
    for m in marks:
        colour = _MARK_COLOURS.get(m.kind, "grey")
        if m.kind == "crash":
            lane.plot(m.t, 0.05, marker="X", color=_MARK_COLOURS["first-crash"], markersize=8, ls="")
            continue
        lane.axvline(m.t, color=colour, ls="--", lw=1)
        width = per_char * (len(m.text) + 2)
        want = max(0.0, min(m.t, end - width))  # left-aligned at its line, kept on the canvas
        row = next((i for i in range(rows) if row_end[i] <= want), None)
        if row is None:
            row = min(range(rows), key=lambda i: row_end[i])
        x = max(want, row_end[row])
        row_end[row] = x + width
        lane.annotate(m.text, (m.t, 0.0), xytext=(x, 0.86 - 0.23 * row), textcoords="data",
                      fontsize=8, fontweight="bold", color=colour, va="center",
                      arrowprops={"arrowstyle": "-", "color": "#bbbbbb", "lw": 0.6},
                      bbox={"boxstyle": "round,pad=0.2", "fc": "white", "lw": 0.6, "ec": colour})
    lane.set_title(title, fontsize=9)
    fig.suptitle(headline_text, fontsize=12, fontweight="bold")
    bands[-1].set_xlabel("time since the game day started [s] (wall clock)")
    bands[-1].set_xlim(0, end)
    handles = [Patch(color="#cb181d", label="share of clients getting an empty answer"),
               Patch(color="#252525", label="share of clients getting an error or no answer")]
    if authd_spans:
        handles.append(Patch(color="#fcbba1", alpha=0.45, label="authd itself answers empty (exact)"))
    handles += [Line2D([], [], color=_MARK_COLOURS[k], ls="--", label=label)
                for k, label in (("stale-flip", "stale flip"), ("refused", "stale flip refused"),
                                 ("deletion", "cleaner deletion"), ("first-crash", "first crash"),
                                 ("pause", "operator pauses the enactors"),
                                 ("repair", "operator's repair on authd"))
                if any(m.kind == k for m in marks)]
    if any(m.kind == "crash" for m in marks):
        handles.append(Line2D([], [], marker="X", color=_MARK_COLOURS["first-crash"], ls="",
                              label="an enactor crashes again (the crash loop)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
