"""The outage timeline: events and DNS samples in, a readable report, a JSON summary and a PNG out.

Pure core apart from `write_png` (matplotlib, Agg backend, writes one file). Both schedule
drivers (in-process `sim.SimDriver`, real-process `outage.ProcessDriver`) record into a
`Recorder` the same way, so the report reads the same whichever ran.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Any

T_LABEL = "%H:%M:%S"


@dataclass(frozen=True)
class Event:
    t: float
    actor: str
    kind: str  # lock, release, flip, clean, crash, restart, kill, plan, typo, note, log,
    # empty / back (text "name TYPE": authd's index lost / regained every answer for it)
    text: str


@dataclass(frozen=True)
class Sample:
    t: float
    answers: dict[str, int]  # "name TYPE" -> answer count (real dig, or the API walk)
    rcodes: dict[str, str]  # "name TYPE" -> NOERROR / SERVFAIL / ...
    active: int | None  # the plan the stable alias points at (control API)
    source: str = "dig"  # "dig" (real queries) or "index" (authd's serving index, in-process)
    note: str = ""


@dataclass
class Recorder:
    t0: float
    events: list[Event] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    _clean_note: dict[str, str] = field(default_factory=dict)

    def step(self, t: float, actor: str, label: str, outcome: str, log: list[str] | tuple[str, ...]) -> None:
        """One performed action: its label (schedule labels), outcome (`BatchAccepted`, ...),
        and the log lines the machine emitted right after it."""
        for line in log:
            if " cleaner " in line and "deleting" in line:
                where, what = line.split(" cleaner ", 1)[-1].split(": deleting ", 1)
                self._clean_note[actor] = f"{what} of {where}"
        accepted = outcome == "BatchAccepted"
        if label in ("lock", "takeover") and accepted:
            self.events.append(Event(t, actor, "lock", "took the lock" + (" (expired holder)" if label == "takeover" else "")))
        elif label == "release":
            self.events.append(Event(t, actor, "release", "released the lock"))
        elif label == "flip" and accepted:
            flipped = next((ln for ln in log if "FLIPPED" in ln), "flipped")
            self.events.append(Event(t, actor, "flip", flipped.split("FLIPPED ", 1)[-1]))
        elif label == "clean" and accepted:
            self.events.append(Event(t, actor, "clean", "deleted " + self._clean_note.get(actor, "old trees")))
        elif label == "backoff":
            self.events.append(Event(t, actor, "backoff", "woke from a lock backoff"))
        elif label in ("lock", "takeover", "build", "flip", "clean") and outcome == "BatchRejected":
            self.events.append(Event(t, actor, "rejected", f"{label} batch rejected"))
        if any(line.endswith("CRASHED") for line in log):
            self.events.append(Event(t, actor, "crash", "crashed (RollbackTargetMissing)"))
        for line in log:
            if "FLIPPED" in line:
                continue  # already the flip event
            if "FROZEN" in line or "REFUSING" in line or "refusing to go backwards" in line or "GONE" in line:
                self.events.append(Event(t, actor, "log", line.split(" ", 1)[-1]))

    def add(self, t: float, actor: str, kind: str, text: str) -> None:
        self.events.append(Event(t, actor, kind, text))

    def sample(self, s: Sample) -> None:
        self.samples.append(s)


def clock(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime(T_LABEL)


def clock_ms(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime(T_LABEL + ".%f")[:-3]


def exact_windows(rec: Recorder) -> dict[str, list[tuple[float, float | None]]]:
    """Per "name TYPE": (start, end) of every window in which authd's serving index had no
    answer for it, from the `empty` / `back` events recorded at the change that did it
    (`authd.dns.emptywatch`); end None = still empty at the end of the run."""
    out: dict[str, list[tuple[float, float | None]]] = {}
    open_at: dict[str, float] = {}
    for e in rec.events:
        if e.kind == "empty" and e.text not in open_at:
            open_at[e.text] = e.t
        elif e.kind == "back" and e.text in open_at:
            out.setdefault(e.text, []).append((open_at.pop(e.text), e.t))
    for key, t in open_at.items():
        out.setdefault(key, []).append((t, None))
    return out


def samples_agree(rec: Recorder, exact: dict[str, list[tuple[float, float | None]]]) -> bool:
    """Do the dig samples confirm the exact windows? Every sample taken inside a window has zero
    answers for that name, and every sample outside all of its windows has some."""
    for s in rec.samples:
        for key, n in s.answers.items():
            wins = exact.get(key, [])
            if any(s.t in (a, b) for a, b in wins):
                continue  # taken at the very instant of the change (virtual time): either way
            inside = any(a < s.t and (b is None or s.t < b) for a, b in wins)
            if inside != (n == 0):
                return False
    return True


def empty_windows(samples: list[Sample]) -> list[tuple[float, float | None]]:
    """(start, end) of every run of samples where some watched name had zero answers;
    end None = still empty at the last sample."""
    out: list[tuple[float, float | None]] = []
    start: float | None = None
    for s in samples:
        empty = any(n == 0 for n in s.answers.values())
        if empty and start is None:
            start = s.t
        elif not empty and start is not None:
            out.append((start, s.t))
            start = None
    if start is not None:
        out.append((start, None))
    return out


def summary(rec: Recorder, actors: dict[str, dict[str, Any]], defects: str, schedule: str) -> dict[str, Any]:
    wins = empty_windows(rec.samples)
    last = rec.samples[-1] if rec.samples else None
    installed: dict[str, list[str]] = {}
    for e in rec.events:
        if e.kind == "flip":
            installed.setdefault(e.actor, []).append(e.text)
    exact = exact_windows(rec)
    end_t = max([s.t for s in rec.samples] + [e.t for e in rec.events] + [rec.t0])
    return {
        "defects": defects,
        "schedule": schedule,
        "samples": len(rec.samples),
        # measured at the change that emptied the answer and the one that brought it back
        "exact_empty_windows": {
            key: [{"start": clock_ms(a), "end": clock_ms(b) if b is not None else None,
                   "seconds": round((b if b is not None else end_t) - a, 3)} for a, b in wins_]
            for key, wins_ in exact.items()},
        "samples_agree": samples_agree(rec, exact) if exact or rec.samples else True,
        "empty_answer_windows": [
            {"start": clock(a), "end": clock(b) if b is not None else None,
             "seconds": round((b if b is not None else rec.samples[-1].t) - a, 2)}
            for a, b in wins
        ],
        "ever_empty": bool(wins) or bool(exact),
        "empty_at_end": bool(wins) and wins[-1][1] is None,
        "final_answers": last.answers if last else {},
        "final_rcodes": last.rcodes if last else {},
        "final_active_plan": last.active if last else None,
        "enactors": actors,
        "flips": installed,
        "deletions": [{"t": clock(e.t), "actor": e.actor, "what": e.text} for e in rec.events if e.kind == "clean"],
        "crashes": sum(1 for e in rec.events if e.kind == "crash"),
    }


def report(rec: Recorder, summ: dict[str, Any]) -> str:
    """The timeline an SRE reads: one line per event, DNS samples inline."""
    items: list[tuple[float, int, str]] = []
    for i, e in enumerate(rec.events):
        if e.kind in ("release", "backoff"):
            continue
        mark = {"lock": "LOCK ", "flip": "FLIP ", "clean": "CLEAN", "crash": "CRASH", "plan": "PLAN ",
                "typo": "TYPO ", "kill": "KILL ", "restart": "START", "note": "  -- ", "log": "     ",
                "rejected": "REJ  ", "empty": "EMPTY", "back": "BACK ",
                "confirm": "DIG  "}.get(e.kind, "     ")
        who = f"{e.actor:<10}" if e.actor else " " * 10
        items.append((e.t, i, f"{clock(e.t)}  {mark} {who} {e.text}"))
    for j, s in enumerate(rec.samples):
        parts = []
        for k, n in s.answers.items():
            name, t = k.rsplit(" ", 1)
            short = name.rstrip(".")  # the full name: a tired operator greps for it
            rc = s.rcodes.get(k, "")
            parts.append(f"{short} {t}: {rc + ' ' if rc else ''}ANSWER {n}{'  <-- EMPTY' if n == 0 else ''}")
        act = f"active plan-{s.active:04d}" if s.active is not None else "active: none"
        items.append((s.t, 10**6 + j, f"{clock(s.t)}  {s.source.upper():<5} {act:<18} " + " | ".join(parts)))
    items.sort()
    lines = [line for _, _, line in items]
    lines.append("")
    lines.append(f"defects: {summ['defects']}   schedule: {summ['schedule']}")
    for key, ws in summ.get("exact_empty_windows", {}).items():
        for w in ws:
            end = w["end"] or "still empty at the end of the run"
            lines.append(f"EMPTY ANSWERS for {key.replace('. ', ' ')} from {w['start']} to {end} "
                         f"({w['seconds']} s of schedule time; exact: authd's serving index)")
    if summ["ever_empty"]:
        for w in summ["empty_answer_windows"]:
            end = w["end"] or "still empty at the end of the run"
            lines.append(f"dig samples: some name empty from {w['start']} to {end} "
                         f"({w['seconds']} s between samples)")
        if summ.get("exact_empty_windows"):
            lines.append("dig samples " + ("confirm the exact windows" if summ.get("samples_agree")
                                           else "DISAGREE with the exact windows"))
    if summ.get("transitions_checked_by_dig"):
        lines.append(f"real dig right after each of the {summ['transitions_checked_by_dig']} "
                     "transitions " + ("confirms it" if summ.get("transitions_confirmed_by_dig")
                                       else "CONTRADICTS one of them (see DIG lines)"))
    else:
        lines.append("answers never went empty")
    for name, st in summ["enactors"].items():
        err = f" - {st.get('last_error')}" if st.get("last_error") else ""
        lines.append(f"{name}: {st.get('state')} (crashes: {st.get('crashes', 0)}){err}")
    return "\n".join(lines)


def write_png(rec: Recorder, summ: dict[str, Any], actors: list[str], path: str, title: str,
              focus: str = "dynamodb.us-east-1.api.aws.") -> None:
    """A lane per enactor (lock holds, flips and deletions on `focus`, backoffs, crashes) over
    the answer count of every watched name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = rec.t0
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(13, 7), sharex=True, layout="constrained",
                                  gridspec_kw={"height_ratios": [3, 2]})
    lanes = {a: i for i, a in enumerate(actors)}
    end_t = max([s.t for s in rec.samples] + [e.t for e in rec.events] + [t0 + 1]) - t0
    for a, y in lanes.items():
        start = None
        for e in rec.events:
            if e.actor != a:
                continue
            x = e.t - t0
            if e.kind == "lock":
                start = x
            elif e.kind in ("release", "crash", "kill") and start is not None:
                ax.barh(y, max(x - start, end_t / 400), left=start, height=0.35, color="#9ecae1")
                start = None
            main = e.text.startswith(focus) or f"of {focus}" in e.text
            if e.kind == "flip" and main:
                ax.plot(x, y + 0.3, marker="v", color="#31a354", markersize=9)
                mm = re.search(r"-> plan-0*(\d+)", e.text)
                ax.annotate(mm.group(1) if mm else "?", (x, y + 0.4), fontsize=8, ha="center", color="#31a354")
            elif e.kind == "clean" and main:
                ax.plot(x, y - 0.3, marker="x", color="#e6550d", markersize=9, mew=2)
            elif e.kind == "backoff":
                ax.plot(x, y - 0.12, marker="|", color="#777777", markersize=8)
            elif e.kind == "crash":
                ax.plot(x, y, marker="X", color="#de2d26", markersize=11)
            elif e.kind in ("restart", "kill"):
                ax.plot(x, y + 0.12, marker="o" if e.kind == "restart" else "s", color="#636363",
                        markersize=5, fillstyle="none")
        if start is not None:
            ax.barh(y, end_t - start, left=start, height=0.35, color="#9ecae1")
    for e in rec.events:  # the operator's own hand (the typo variant): a line across the lanes
        if e.kind == "typo":
            ax.axvline(e.t - t0, color="#de2d26", linestyle="--", linewidth=1.5)
    _annotate_decisive(ax, rec, lanes, focus)
    ax.set_yticks(list(lanes.values()), list(lanes))
    ax.set_ylim(-1.3, len(lanes) + 0.3)  # room for the legend above and the labels below
    import textwrap

    fig.suptitle(headline(rec, title), fontsize=12, fontweight="bold")
    ax.set_title(textwrap.fill(title, 140), fontsize=9)  # long schedule names wrap, not clip
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="#9ecae1", label="holds a lock"),
                       Line2D([], [], marker="|", color="#777777", ls="", label="lost the lock, backed off"),
                       Line2D([], [], marker="v", color="#31a354", ls="", label=f"flip of {focus.rstrip('.')} (plan)"),
                       Line2D([], [], marker="x", color="#e6550d", ls="", mew=2, label="cleaner deleted trees"),
                       Line2D([], [], marker="X", color="#de2d26", ls="", label="crash"),
                       Line2D([], [], marker="o", color="#636363", ls="", fillstyle="none",
                              label="restarted (s: killed)"),
                       Line2D([], [], color="#de2d26", ls="--", label="operator deletes a tree")],
              loc="upper left", fontsize=8, ncol=4)
    keys = list(rec.samples[0].answers) if rec.samples else []
    for i, k in enumerate(keys):
        xs = [s.t - t0 for s in rec.samples]
        ys = [s.answers.get(k, 0) + 0.06 * (i - 1) for s in rec.samples]
        ax2.step(xs, ys, where="post", label=k.replace(". ", " "), linewidth=2)
    # the band: when some name had no answer at all, exactly (authd's index) when measured,
    # else between the dig samples that saw it
    exact = exact_windows(rec)
    spans = [w for ws in exact.values() for w in ws] or empty_windows(rec.samples)
    last_t = max([s.t for s in rec.samples] + [e.t for e in rec.events] + [t0])
    for w0, w1 in spans:
        ax2.axvspan(w0 - t0, (w1 if w1 is not None else last_t) - t0, color="#fcbba1", alpha=0.6)
    band = [Patch(color="#fcbba1", alpha=0.6, label="no answer (exact: authd's serving index)"
                  if exact else "no answer (between dig samples)")] if spans else []
    src = rec.samples[-1].source if rec.samples else "dig"
    ax2.set_ylabel("answers (real dig)" if src == "dig" else "answers (authd's index,\nevery weighted pick)")
    if not spans and rec.samples:
        ax2.text(0.5, 0.35, "never empty: every name kept its answers", transform=ax2.transAxes,
                 ha="center", fontsize=11, color="#31a354", fontweight="bold")
    ax2.set_xlabel("schedule time [s]")
    from matplotlib.ticker import MaxNLocator

    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.legend(handles=[*ax2.get_legend_handles_labels()[0], *band], fontsize=8, loc="upper left")
    ax2.set_ylim(-0.2, max([max(s.answers.values()) for s in rec.samples if s.answers] + [1]) + 0.5)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def headline(rec: Recorder, title: str) -> str:
    """The figure's first line: what happened to DNS, in a few words."""
    exact = exact_windows(rec)
    spans = sorted(w for ws in exact.values() for w in ws) or empty_windows(rec.samples)
    crashes = sum(1 for e in rec.events if e.kind == "crash")
    design = "The fixed design" if "--defects fixed" in title else "The 2025 defects"
    if not spans:
        what = "answers never went empty"
    else:
        start = min(w[0] for w in spans) - rec.t0
        open_end = any(w[1] is None for w in spans)
        what = (f"the endpoints answer NOERROR with zero records from {start:.1f} s"
                + (" and stay empty" if open_end else ", then come back"))
    tail = f"; {crashes} enactor crash{'es' if crashes != 1 else ''}" if crashes else ""
    return f"{design}: {what}{tail}"


def _annotate_decisive(ax: Any, rec: Recorder, lanes: dict[str, int], focus: str) -> None:
    """Label the moments a postmortem points at: the flip that went backwards, the cleaner
    deletion that removed the active tree, the first crash, the operator's deletion."""
    t0 = rec.t0
    marks: list[tuple[float, float, str]] = []
    best = 0
    for e in rec.events:
        if e.kind == "flip" and (e.text.startswith(focus) or f"of {focus}" in e.text):
            mm = re.search(r"-> plan-0*(\d+)", e.text)
            plan = int(mm.group(1)) if mm else 0
            if plan and plan < best and e.actor in lanes:
                marks.append((e.t - t0, lanes[e.actor], f"stale flip back to plan-{plan:04d}"))
                break
            best = max(best, plan)
    refused = next((e for e in rec.events if e.kind == "log" and "backwards" in e.text
                    and e.actor in lanes), None)
    if refused is not None:  # the fixed design's compare-and-swap at work
        marks.append((refused.t - t0, lanes[refused.actor], "stale flip refused: it would go backwards"))
    typo = next((e for e in rec.events if e.kind == "typo"), None)
    empty_from = min((w[0] for ws in exact_windows(rec).values() for w in ws), default=None)
    if empty_from is not None and typo is None:
        cleans = [e for e in rec.events if e.kind == "clean" and e.t <= empty_from + 1e-6 and e.actor in lanes]
        if cleans:
            e = cleans[-1]
            marks.append((e.t - t0, lanes[e.actor] - 0.3, "cleaner deletes the active tree"))
    crash = next((e for e in rec.events if e.kind == "crash" and e.actor in lanes), None)
    if crash is not None:
        marks.append((crash.t - t0, lanes[crash.actor], "first crash: RollbackTargetMissing"))
    if typo is not None:
        marks.append((typo.t - t0, len(lanes) - 0.6, "operator deletes the active tree"))
    # the labels sit in two rows, above the lanes and below them, moved right when they
    # would overlap the previous label in their row
    x0, x1 = ax.get_xlim() if ax.get_xlim()[1] > 1 else (0.0, max([m[0] for m in marks] + [1.0]))
    per_char = (x1 - x0) / 150  # about one character of bold 8.5 pt text on a 13-inch axis
    ends = {"up": -1e9, "down": -1e9}
    for x, y, text in sorted(marks):
        row = "up" if y >= (len(lanes) - 1) / 2 and len(lanes) > 1 else "down"
        tx = max(x + per_char, ends[row] + per_char)
        ends[row] = tx + per_char * (len(text) + 2)
        ty = len(lanes) - 0.45 if row == "up" else -1.05
        ax.annotate(text, (x, y), xytext=(tx, ty), textcoords="data", fontsize=8.5,
                    fontweight="bold", color="#a50f15", va="center",
                    arrowprops={"arrowstyle": "->", "color": "#a50f15", "lw": 1},
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#a50f15", "lw": 0.6})
