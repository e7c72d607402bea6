"""The live page's event feed: what the outage run records, as JSON messages for a browser.

Pure core (no trio, no sockets, no clock). `Translator` reads a `timeline.Recorder` (the same
one both schedule drivers fill) plus an observation of DNS (the active plan per endpoint and
what each authd node answers) and turns whatever is new into small JSON messages:

- `hello`: the run's title, enactors, endpoints (full DNS names) and the watched names;
- `event`: one enactor lane event (lock, release, backoff, flip, clean, crash, restart, ...)
  with the lane's state after it and, where the text names them, the endpoint and plan;
- `active`: the plan an endpoint's alias now points at (`plan-0002`);
- `answer`: what one authd node answers for one name and type: its addresses, or EMPTY
  (NOERROR with zero records, the outage's symptom);
- `end`: the run is over (headline and the exact empty-answer windows).

`Feed` numbers the messages and keeps them all, so a page loaded late replays the whole run
from the start (SSE `Last-Event-ID` resumes after a reconnect, WHATWG HTML "Server-sent
events" section 9.2), and `sse_frame` writes one message in the `text/event-stream` format.
The trio/ASGI shell that serves them is `enactor.drills.web`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from enactor.drills.timeline import Event, Recorder, clock_ms

# The lane states a page shows; each event kind moves an enactor's lane into one of them.
LANE_AFTER = {
    "lock": "HOLDS LOCK",
    "release": "IDLE",
    "backoff": "BACKING OFF",
    "rejected": "BACKING OFF",
    "crash": "CRASHED",
    "kill": "DOWN",
    "restart": "STARTING",
}
_FLIP = re.compile(r"^(?P<name>\S+?)\.? (?P<types>[A-Z/]+): (?:(?P<before>\S+) )?-> plan-(?P<plan>\d+)")
_OF = re.compile(r" of (?P<name>[a-z0-9.-]+?)\.?(?: |$)")
_PLAN = re.compile(r"plan-(\d+)")


def display(name: str) -> str:
    """A DNS name as an operator types it: the full name, no trailing dot."""
    return name.rstrip(".")


def plan_label(n: int | None) -> str | None:
    return None if n is None else f"plan-{n:04d}"


@dataclass(frozen=True)
class Answer:
    """What one authd node answers for (name, rtype): `addresses` None = not known (only that
    it is not empty); an empty tuple with rcode NOERROR is the outage's EMPTY."""

    node: str
    name: str
    rtype: str
    rcode: str
    addresses: tuple[str, ...] | None
    source: str  # "dig" (a real query), "index" (authd's serving index), "watch" (authd's log)

    @property
    def empty(self) -> bool:
        return self.rcode == "NOERROR" and self.addresses == ()


@dataclass(frozen=True)
class Observation:
    """DNS as the run's observer sees it after a step."""

    active: dict[str, int | None] = field(default_factory=dict)  # endpoint -> plan
    answers: tuple[Answer, ...] = ()
    events: tuple[Event, ...] = ()  # lane events the recorder does not keep (in-process restarts)


def event_message(e: Event, t0: float) -> dict[str, Any]:
    """One recorded event as a lane message (the endpoint and plan parsed from its text)."""
    endpoint: str | None = None
    plan: int | None = None
    if e.kind == "flip" and (mm := _FLIP.match(e.text)):
        endpoint, plan = display(mm["name"]), int(mm["plan"])
    elif e.kind in ("clean", "typo") and (mm := _OF.search(e.text)):
        endpoint = display(mm["name"])
        deleted = deleted_plans(e.text)
        plan = deleted[0] if deleted else None
    elif e.kind in ("empty", "back"):
        endpoint = display(e.text.rsplit(" ", 1)[0])
    msg: dict[str, Any] = {"type": "event", "t": round(e.t - t0, 3), "clock": clock_ms(e.t),
                           "actor": e.actor, "kind": e.kind, "text": e.text,
                           "endpoint": endpoint, "plan": plan, "plan_label": plan_label(plan)}
    if e.kind in LANE_AFTER:
        msg["lane"] = LANE_AFTER[e.kind]
    return msg


def deleted_plans(text: str) -> list[int]:
    """The plans a cleaner (`deleted plan-0001, plan-0002 (older than plan-0004) of NAME`) or
    an operator (`deleted the plan-0012 tree of NAME by hand`) deleted: not the ones named in
    the reason in parentheses."""
    head = text.split(" (", 1)[0].split(" of ", 1)[0]
    return [int(p) for p in _PLAN.findall(head)]


def answer_message(a: Answer, t: float, t0: float) -> dict[str, Any]:
    return {"type": "answer", "t": round(t - t0, 3), "clock": clock_ms(t), "node": a.node,
            "name": display(a.name), "rtype": a.rtype, "key": f"{display(a.name)} {a.rtype}",
            "rcode": a.rcode, "addresses": None if a.addresses is None else list(a.addresses),
            "empty": a.empty, "source": a.source}


class Translator:
    """Turns what is new in a Recorder (and in an Observation) into messages.

    Args:
        rec: the run's recorder; only read, from where the last `pull` stopped.
        observe: called at every `pull`: the active plans and answers now (None: no
            observer, only the recorded events and authd's empty/back transitions count).
        node: the node authd's `empty` / `back` transitions are recorded at.
    """

    def __init__(self, rec: Recorder, observe: Callable[[], Observation] | None = None,
                 node: str = "node-1"):
        self.rec = rec
        self.observe = observe
        self.node = node
        self._events = 0
        self._active: dict[str, int | None] = {}
        self._dangling: set[str] = set()  # endpoints whose active tree was deleted
        self._newest: dict[str, int] = {}  # endpoint -> the newest plan ever flipped to
        self._answers: dict[tuple[str, str, str], Answer] = {}

    def hello(self, title: str, actors: list[str], endpoints: list[tuple[str, tuple[str, ...]]],
              nodes: list[str], **extra: Any) -> dict[str, Any]:
        """The first message: what the page lays out (lanes, endpoint rows, node columns)."""
        return {"type": "hello", "title": title, "actors": list(actors),
                "endpoints": [{"name": display(n), "rtypes": list(ts)} for n, ts in endpoints],
                "keys": [f"{display(n)} {t}" for n, ts in endpoints for t in ts],
                "nodes": list(nodes), "start": clock_ms(self.rec.t0), **extra}

    def _now(self) -> float:
        ts = [self.rec.t0] + [e.t for e in self.rec.events[-1:]] + [s.t for s in self.rec.samples[-1:]]
        return max(ts)

    def _answer(self, a: Answer, t: float) -> list[dict[str, Any]]:
        key = (a.node, display(a.name), a.rtype)
        old = self._answers.get(key)
        if old is not None and (old.rcode, old.addresses) == (a.rcode, a.addresses):
            if a.source in old.source.split(" + "):
                return []
            # the same answer from a second witness: dig confirming authd's own record
            a = Answer(a.node, a.name, a.rtype, a.rcode, a.addresses, f"{old.source} + {a.source}")
        if old is not None and a.addresses is None and not a.empty and old.addresses and not old.empty:
            return []  # "not empty" adds nothing to addresses already shown
        self._answers[key] = a
        return [answer_message(a, t, self.rec.t0)]

    def pull(self) -> list[dict[str, Any]]:
        """Everything new since the last call, in the order it happened."""
        out: list[dict[str, Any]] = []
        t0 = self.rec.t0
        new = self.rec.events[self._events:]
        self._events = len(self.rec.events)
        obs = self.observe() if self.observe is not None else None
        if obs is not None and obs.events:
            new = sorted([*new, *obs.events], key=lambda e: e.t)  # stable: same-time order kept
        for e in new:
            msg = event_message(e, t0)
            out.append(msg)
            if e.kind == "flip" and (mm := _FLIP.match(e.text)):
                name, plan = display(mm["name"]), int(mm["plan"])
                # the race's trigger: a flip to a plan older than one already installed
                msg["backwards"] = plan < self._newest.get(name, 0)
                self._newest[name] = max(plan, self._newest.get(name, 0))
                out += self._set_active(name, plan, e.t)
            elif e.kind in ("clean", "typo") and (mm := _OF.search(e.text)):
                # the tree the alias points at is gone: the name now dangles (the outage)
                name = display(mm["name"])
                if self._active.get(name) in deleted_plans(e.text) and name not in self._dangling:
                    self._dangling.add(name)
                    out.append(self._active_message(name, e.t))
            elif e.kind in ("empty", "back"):
                # authd's serving index, at the change that did it (authd.dns.emptywatch): exact
                name, rtype = e.text.rsplit(" ", 1)
                out += self._answer(Answer(self.node, name, rtype, "NOERROR",
                                           () if e.kind == "empty" else None, "watch"), e.t)
        if obs is not None:
            t = self._now()
            for name, plan in obs.active.items():
                out += self._set_active(display(name), plan, t)
            for a in obs.answers:
                out += self._answer(a, t)
        return out

    def _set_active(self, endpoint: str, plan: int | None, t: float) -> list[dict[str, Any]]:
        if endpoint in self._active and self._active[endpoint] == plan:
            return []
        self._active[endpoint] = plan
        self._dangling.discard(endpoint)  # a flip to another plan points at a tree just built
        return [self._active_message(endpoint, t)]

    def _active_message(self, endpoint: str, t: float) -> dict[str, Any]:
        plan = self._active.get(endpoint)
        return {"type": "active", "t": round(t - self.rec.t0, 3), "clock": clock_ms(t),
                "endpoint": endpoint, "plan": plan, "label": plan_label(plan),
                "dangling": endpoint in self._dangling}


def end_message(summary: dict[str, Any], headline: str, error: str | None = None) -> dict[str, Any]:
    """The run is over: the page stops listening and shows how it ended."""
    return {"type": "end", "headline": headline, "error": error,
            "exact_empty_windows": summary.get("exact_empty_windows", {}),
            "crashes": summary.get("crashes", 0),
            "enactors": {n: st.get("state") for n, st in summary.get("enactors", {}).items()}}


class Feed:
    """Every message of a run, numbered from 1, kept for replay.

    Args:
        limit: keep only this many of the newest messages besides the first (`hello`, which
            every late page needs to lay itself out): a long-lived `enactor run --web` must
            not grow without bound. None keeps all (an outage run is a few thousand).
    """

    def __init__(self, limit: int | None = None) -> None:
        self.messages: list[dict[str, Any]] = []  # the kept ones, ids ascending
        self.limit = limit
        self.last_id = 0

    def publish(self, msg: dict[str, Any]) -> int:
        self.last_id += 1
        self.messages.append({**msg, "id": self.last_id})
        if self.limit is not None and len(self.messages) > self.limit + 1:
            del self.messages[1:len(self.messages) - self.limit]
        return self.last_id

    def since(self, last_id: int) -> list[dict[str, Any]]:
        """The messages after `last_id` (0: all kept ones, for a page loaded late). A client
        further behind than what is kept gets the `hello` and what is kept."""
        if last_id <= 0 or not self.messages:
            return list(self.messages)
        kept_from = self.messages[1]["id"] if len(self.messages) > 1 else self.last_id + 1
        if last_id + 1 < kept_from and last_id >= self.messages[0]["id"]:
            return list(self.messages)
        return [m for m in self.messages if m["id"] > last_id]

    @property
    def ended(self) -> bool:
        return bool(self.messages) and self.messages[-1]["type"] == "end"


def last_event_id(header: str | None) -> int:
    """The `Last-Event-ID` a reconnecting EventSource sends; anything unparsable is 0 (replay
    everything), never an error: the page then rebuilds its state from scratch."""
    try:
        return max(0, int((header or "0").strip()))
    except ValueError:
        return 0


def sse_frame(msg: dict[str, Any]) -> bytes:
    """One message as an SSE event: `id`, `event` (the message type) and one `data` line (JSON
    has no raw newlines, so one line suffices; HTML "Server-sent events" 9.2.6)."""
    return (f"id: {msg['id']}\nevent: {msg['type']}\ndata: "
            f"{json.dumps(msg, separators=(',', ':'))}\n\n").encode()


def parse_sse(body: str) -> list[dict[str, Any]]:
    """The messages in a `text/event-stream` body (for tests and command-line readers)."""
    out = []
    for block in body.split("\n\n"):
        data = [ln[len("data: "):] for ln in block.splitlines() if ln.startswith("data: ")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


# --- what each authd node answers, from the run's own observations -------------------------

_ANSWER_SECTION = ";; ANSWER SECTION:"


def dig_addresses(text: str, rtype: str) -> tuple[str, ...]:
    """The addresses of `rtype` in dig's ANSWER SECTION (none: the section is absent)."""
    if _ANSWER_SECTION not in text:
        return ()
    section = text.split(_ANSWER_SECTION, 1)[1].split("\n\n", 1)[0]
    out = []
    for line in section.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[3] == rtype:
            out.append(parts[4])
    return tuple(sorted(out))


_STATUS = re.compile(r"status: (\w+)")


def answers_from_digs(digs: list[tuple[float, str, str]]) -> list[Answer]:
    """One Answer per dig sample the process driver recorded, (t, "name TYPE[ @node-k]", text);
    a key without `@node-k` was asked of node 1."""
    out = []
    for _t, key, text in digs:
        head, _, node = key.partition(" @")
        name, rtype = head.rsplit(" ", 1)
        st = _STATUS.search(text)
        out.append(Answer(node or "node-1", name, rtype, st.group(1) if st else "NO-RESPONSE",
                          dig_addresses(text, rtype), "dig"))
    return out


# --- one enactor's own lane (`enactor run --web`) -------------------------------------------


def _flip_target(action: Any) -> tuple[str, str, int] | None:
    """(endpoint, "A/AAAA", plan) of a flip batch: the endpoint's own alias UPSERTs (the
    rollback record's are `_rollback.<endpoint>`)."""
    from enactor.plan import root_plan

    types: list[str] = []
    found: tuple[str, int] | None = None
    for c in action.changes:
        rs = c.rrset
        if rs.alias is None or rs.name.startswith("_"):
            continue
        plan = root_plan(rs.alias.dns_name, rs.name)
        if plan is not None:
            found = (rs.name, plan)
            if rs.rtype not in types:  # an UPSERT may come as DELETE + CREATE
                types.append(rs.rtype)
    return (found[0], "/".join(types), found[1]) if found else None


def _cleaned(action: Any) -> tuple[list[int], str] | None:
    """(plans whose trees the batch deletes, endpoint) of a cleaner batch."""
    from enactor.plan import tree_of

    plans: set[int] = set()
    endpoint = ""
    for c in action.changes:
        if c.action.value != "DELETE" or c.rrset.name.startswith("_lock."):
            continue
        _, sep, rest = c.rrset.name.partition("plan-")
        if not sep:
            continue
        endpoint = rest.split(".", 1)[1] if "." in rest else ""
        n = tree_of(c.rrset.name, endpoint)
        if n is not None:
            plans.add(n)
    return (sorted(plans), endpoint) if plans else None


def run_events(actor: str, t: float, action: Any, result: Any, status: Any) -> list[Event]:
    """What one performed action of a live enactor (`runner.run_enactor`'s `observe`) shows in
    its lane: the same kinds and texts as the outage timeline (`timeline.Recorder.step`)."""
    from enactor import machine as m

    if isinstance(action, m.Sleep):
        return [Event(t, actor, "backoff", "woke from a lock backoff")] if action.why == "backoff" else []
    if not isinstance(action, m.SubmitBatch):
        return []
    purpose = action.purpose.value
    if isinstance(result, m.BatchRejected):
        return [Event(t, actor, "rejected", f"{purpose} batch rejected")]
    if not isinstance(result, m.BatchAccepted):
        return []
    if purpose in ("lock", "takeover"):
        return [Event(t, actor, "lock", "took the lock" + (" (expired holder)" if purpose == "takeover" else ""))]
    if purpose == "release":
        return [Event(t, actor, "release", "released the lock")]
    if purpose == "flip" and (ft := _flip_target(action)):
        return [Event(t, actor, "flip", f"{ft[0]} {ft[1]}: -> plan-{ft[2]:04d}")]
    if purpose == "clean" and (cl := _cleaned(action)):
        return [Event(t, actor, "clean", f"deleted {', '.join(f'plan-{n:04d}' for n in cl[0])} of {cl[1]}")]
    return []
