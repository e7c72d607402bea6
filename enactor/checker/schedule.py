"""Deterministic schedules: which actor takes which step in which order, plus fault injection.

Pure core (no clock, no sockets). A schedule is a JSON document; `run_schedule` executes it
over any `Driver`: `enactor.checker.sim.Sim` (in-process, virtual time) or the real-process driver
of `enactor.drills.outage` (each enactor a process in `--stepped` mode talking HTTP to authd). The
interleaving checker emits its counterexamples in this format, and `enactor outage
--schedule FILE` replays them against real processes.

Format (schema 1):

    {"schema": 1,
     "description": "enactor-c loses the lock 10 times, then flips to its ancient plan",
     "actors": ["enactor-a", "enactor-b", "enactor-c"],
     "steps": [
       {"do": "plan"},                                      # the planner emits plan N+1
       {"do": "step", "actor": "enactor-a", "until": "lock"},
       {"do": "step", "actor": "enactor-c", "until": "read-lock", "note": "c loses the lock"},
       {"do": "step", "actor": "enactor-a", "until_next": "poll"},
       {"do": "sample"},                                    # query DNS now, for the timeline
       {"do": "delete-tree", "plan": 12},                   # an operator deletes a tree by hand
       {"do": "kill", "actor": "enactor-b"}, {"do": "restart", "actor": "enactor-b"},
       {"do": "advance", "seconds": 5},                     # time passes (locks may expire)
       {"do": "run", "seconds": 10}                         # everyone runs freely, in time order
     ]}

A `step` runs the actor one action at a time. `until: LABEL` stops right after the actor
performed an action with that label, `times` times (default 1); `until_next: LABEL` performs at
least one action, then stops when the *next* action has that label (without performing it); `count: N` runs N actions.
Labels: read-plan, find-zone, read, read-lock, list, lock, takeover, build, flip, clean,
release (batches, by purpose), backoff, poll, paused, frozen (sleeps, by reason), and crash
(the actor crashed). A step that never reaches its label within `max` actions (default 500)
fails the run with the step number, so a schedule cannot silently drift.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from enactor import machine as m

SCHEMA = 1
LABELS = frozenset({
    "read-plan", "find-zone", "read", "read-lock", "list", "lock", "takeover", "build", "flip",
    "clean", "release", "backoff", "poll", "paused", "frozen", "crash",
})


def label(action: m.ActionT) -> str:
    if isinstance(action, m.ReadPlan):
        return "read-plan"
    if isinstance(action, m.FindZone):
        return "find-zone"
    if isinstance(action, m.ReadRecords):
        return "read-lock" if action.name.startswith("_lock.") else "read"
    if isinstance(action, m.ListRecords):
        return "list"
    if isinstance(action, m.SubmitBatch):
        return action.purpose.value
    return action.why


class ScheduleError(ValueError):
    pass


class Driver(Protocol):
    """What a schedule needs from the world it drives."""

    def pending_label(self, actor: str) -> str | None:
        """The label of the actor's next action (None when it is down: crashed or killed)."""
        ...

    def go(self, actor: str) -> tuple[str, bool]:
        """Perform the actor's next action; returns its label and whether the actor crashed."""
        ...

    def emit_plan(self) -> int: ...

    def sample(self, note: str = "") -> object: ...

    def delete_tree(self, plan: int) -> None: ...

    def kill(self, actor: str) -> None: ...

    def restart(self, actor: str) -> None: ...

    def advance(self, seconds: float) -> None: ...

    def run_free(self, seconds: float) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass
class Schedule:
    actors: list[str]
    steps: list[dict[str, Any]]
    description: str = ""
    schema: int = SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"schema": self.schema, "description": self.description, "actors": self.actors,
                "steps": self.steps, **self.extra}

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")


_STEP_FIELDS = {
    "step": {"actor"}, "plan": set(), "sample": set(), "delete-tree": {"plan"},
    "kill": {"actor"}, "restart": {"actor"}, "advance": {"seconds"}, "run": {"seconds"},
}


def parse_schedule(doc: Any, source: str = "<schedule>") -> Schedule:
    if not isinstance(doc, dict):
        raise ScheduleError(f"{source}: $: must be an object")
    if doc.get("schema") != SCHEMA:
        raise ScheduleError(f"{source}: $.schema: unknown schema version {doc.get('schema')!r}")
    actors = doc.get("actors")
    if not isinstance(actors, list) or not all(isinstance(a, str) for a in actors):
        raise ScheduleError(f"{source}: $.actors: must be a list of enactor names")
    steps = doc.get("steps")
    if not isinstance(steps, list):
        raise ScheduleError(f"{source}: $.steps: must be a list")
    for i, s in enumerate(steps):
        where = f"{source}: $.steps[{i}]"
        if not isinstance(s, dict) or s.get("do") not in _STEP_FIELDS:
            raise ScheduleError(f"{where}.do: must be one of {', '.join(sorted(_STEP_FIELDS))}")
        for f in _STEP_FIELDS[s["do"]]:
            if f not in s:
                raise ScheduleError(f"{where}.{f}: missing")
        if "actor" in s and s["actor"] not in actors:
            raise ScheduleError(f"{where}.actor: {s['actor']!r} is not in $.actors")
        for k in ("until", "until_next"):
            if k in s and s[k] not in LABELS:
                raise ScheduleError(f"{where}.{k}: unknown label {s[k]!r}; known: {', '.join(sorted(LABELS))}")
    extra = {k: v for k, v in doc.items() if k not in ("schema", "description", "actors", "steps")}
    return Schedule(list(actors), list(steps), str(doc.get("description", "")), SCHEMA, extra)


def load_schedule(path: str | Path) -> Schedule:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"{p}: not JSON: {exc}") from None
    return parse_schedule(doc, str(p))


def run_schedule(sched: Schedule, drv: Driver, on_step: Callable[[int, dict[str, Any]], None] | None = None) -> None:
    """Execute every step in order. Raises ScheduleError when a step cannot complete."""
    for i, s in enumerate(sched.steps):
        if on_step:
            on_step(i, s)
        if s.get("note"):
            drv.note(str(s["note"]))
        do = s["do"]
        if do == "plan":
            drv.emit_plan()
        elif do == "sample":
            drv.sample(str(s.get("note", "")))
        elif do == "delete-tree":
            drv.delete_tree(int(s["plan"]))
        elif do == "kill":
            drv.kill(s["actor"])
        elif do == "restart":
            drv.restart(s["actor"])
        elif do == "advance":
            drv.advance(float(s["seconds"]))
        elif do == "run":
            drv.run_free(float(s["seconds"]))
        elif do == "step":
            _run_step(i, s, drv)


def _run_step(i: int, s: dict[str, Any], drv: Driver) -> None:
    actor = s["actor"]
    limit = int(s.get("max", 500))
    if "count" in s:
        for _ in range(int(s["count"])):
            if drv.pending_label(actor) is None:
                return
            drv.go(actor)
        return
    want_done, want_next = s.get("until"), s.get("until_next")
    times = int(s.get("times", 1))
    seen = 0
    for i_action in range(limit):
        nxt = drv.pending_label(actor)
        if want_next is not None and i_action > 0 and nxt == want_next:
            return
        if nxt is None:
            if want_done == "crash":
                return
            raise ScheduleError(f"schedule step {i}: {actor} has crashed; it cannot reach "
                                f"{want_done or want_next!r}")
        done, crashed = drv.go(actor)
        if want_done is not None and (done == want_done or (crashed and want_done == "crash")):
            seen += 1
            if seen >= times:
                return
    raise ScheduleError(f"schedule step {i}: {actor} never reached {want_done or want_next!r} "
                        f"in {limit} actions")


# --- the 2025 schedule ------------------------------------------------------------------


DUAL_NAME = "dynamodb.us-east-1.api.aws."
LEGACY_NAME = "dynamodb.us-east-1.amazonaws.com."


def schedule_2025(plans: int = 12, typo: bool = False) -> Schedule:
    """The October 2025 race, scaled down: plan 1 is active; enactor-c reads plan 2 for the
    dual-stack endpoint and enactor-b for the regional one, then each loses that endpoint's
    lock every time it tries while enactor-a installs plans 3..N; when each finally gets the
    lock it flips to plan 2, and enactor-a's cleaner (which just installed N) deletes trees
    older than N - keep, plan 2 among them. Both names answer empty, the regional
    `dynamodb.us-east-1.amazonaws.com` as in AWS's summary, `dynamodb.us-east-1.api.aws` as
    in the talk. Then everyone tries to make progress, and crashes.

    With `typo`, there is no race: a and b install 2..N, then an operator deletes the active
    plan N's tree by hand (`authd change`), and the planner emits N+1.
    """
    steps: list[dict[str, Any]] = [{"do": "sample", "note": "before"}]
    a, b, c = "enactor-a", "enactor-b", "enactor-c"
    if typo:
        for k in range(2, plans + 1):
            who = a if k % 2 == 0 else b
            steps += [{"do": "plan"}, {"do": "step", "actor": who, "until_next": "poll"},
                      {"do": "sample"}]
        steps += [
            {"do": "delete-tree", "plan": plans, "note": f"an operator deletes the active plan-{plans:04d} tree by hand"},
            {"do": "sample", "note": "after the typo"},
            {"do": "plan"},
        ]
    else:
        # Two endpoints, two delayed enactors: enactor-c is stuck on the dual-stack
        # dynamodb.us-east-1.api.aws (the talk's name), enactor-b on the regional
        # dynamodb.us-east-1.amazonaws.com (the record AWS's summary says was left empty).
        # Each read plan 2 and saw it newer than plan 1 before its lock backoffs; enactor-a
        # installs plans 3..N meanwhile, holding each endpoint's lock when they try theirs.
        steps += [
            {"do": "plan", "note": "plan 2: all three enactors race for it"},
            {"do": "step", "actor": a, "until": "lock"},
            {"do": "step", "actor": c, "until": "read-lock",
             "note": f"enactor-c loses the lock of {DUAL_NAME} (1)"},
            {"do": "step", "actor": a, "until": "lock", "times": 2},
            {"do": "step", "actor": b, "until": "read-lock",
             "note": f"enactor-b loses the lock of {LEGACY_NAME} (1)"},
            {"do": "step", "actor": a, "until_next": "poll"},
            {"do": "sample"},
        ]
        for k in range(3, plans + 1):
            last = k == plans
            steps += [
                {"do": "plan"},
                {"do": "step", "actor": a, "until": "lock"},
                {"do": "step", "actor": c, "until": "read-lock",
                 "note": f"enactor-c loses the lock of {DUAL_NAME} ({k - 1})"},
            ]
            if not last:
                steps += [
                    {"do": "step", "actor": a, "until": "lock", "times": 2},
                    {"do": "step", "actor": b, "until": "read-lock",
                     "note": f"enactor-b loses the lock of {LEGACY_NAME} ({k - 1})"},
                    {"do": "step", "actor": a, "until_next": "poll"}, {"do": "sample"}]
            else:
                for who, name in ((c, DUAL_NAME), (b, LEGACY_NAME)):
                    steps += [
                        {"do": "step", "actor": a, "until": "release",
                         "note": f"enactor-a installs plan-{k:04d} on {name}, flips to it, "
                                 "releases the lock"},
                        {"do": "sample"},
                        {"do": "step", "actor": who, "until": "release",
                         "note": f"{who} finally gets the lock of {name}, still holding its "
                                 "ancient plan-0002"},
                        {"do": "sample"},
                        {"do": "step", "actor": a, "until": "release",
                         "note": f"enactor-a runs its record cleaner on {name}, right after "
                                 f"its flip to plan-{k:04d}"},
                        {"do": "sample", "note": f"after the cleaner ({name})"},
                    ]
    # Aftermath: everyone keeps trying, the planner keeps planning.
    for _ in range(3):
        steps += [{"do": "run", "seconds": 5}, {"do": "sample"}]
    steps += [{"do": "plan", "note": "the planner keeps planning"}]
    for _ in range(5):
        steps += [{"do": "run", "seconds": 5}, {"do": "sample"}]
    desc = ("operator typo: the active tree deleted by hand" if typo else
            f"October 2025, scaled: enactor-c (api.aws) and enactor-b (the regional "
            f"amazonaws.com endpoint) lose the lock {plans - 1} times, flip to plan-0002 after "
            f"plan-{plans:04d}, the cleaner deletes it")
    # Short locks so that after the crash the others take over within the run.
    return Schedule([a, b, c], steps, desc,
                    extra={"plans": plans, "typo": typo, "lock_ttl": 10, "endpoints": "both"})
