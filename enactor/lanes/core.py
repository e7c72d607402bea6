"""Lanes: a fast lane for emergencies and a slow lane for everyday changes, as one pure machine.

Pure core: no I/O, no clock, no sockets. The shell (`enactor.lanes.lanectl`) feeds it events and
carries out the actions it returns, as `enactor.machine` does for one enactor.

The talk (DAT453, "Temporal Isolation"): "All the everyday stuff goes through the slow lane.
It's okay if these changes take hours ... And we've got the fast lane for the emergencies ...
But the challenge then is emergencies don't happen every day. If you're not exercising the
emergency path all the time, how do you know it's going to work when you need it?"

So both lanes end in the same place: a plan written to a target's plan store, which the same
enactors enact under the same lock with the same fenced flip. There is no other write action
(`WritePlan` is the only one): the fast lane has no side door. What differs is *when*:

- SLOW: changes queue up; a batch starts once the oldest has waited `gather` seconds, and at
  most `batch_max` changes start per `window` (changes to the same endpoint coalesce into one); a batch rolls out target by target (each cell is one target),
  and after each target it waits for delivery, runs the check (the fixed design's invariants,
  `enactor.checker.invariants`, and every endpoint answering non-empty), then bakes for `bake` seconds
  before the next target. A failed check, or a step not delivered in `step_timeout`, HALTS the
  slow lane: nothing further is rolled out until `resume`.
- FAST: written to every target at once, in the event that submits it: no batching, no bake,
  never queued behind the slow lane (an enactor finishing the slow plan it is enacting is the
  only delay, "one in-flight step"). The newest intent wins: a later change to a load balancer
  supersedes an earlier one from either lane, so an emergency drain is never undone by an
  older everyday change that was still queued.
- THE DAILY EXERCISE: every `period / 2` a synthetic fast change (a heartbeat) goes through the
  fast lane (a real fast change counts as one: the next heartbeat is due period/2 after it). It moves only the target's heartbeat name (`heartbeat.<zone>`, listed last in the
  plan, so an enactor reaches it only after every real endpoint), whose one address encodes the
  heartbeat's sequence number; the real endpoints are re-asserted as they are (a new plan with
  the same weights). Delivery counts only when DNS answers the heartbeat's address. Any fast
  change not delivered within `period / 2` raises the fast-path alarm, so a fast path broken at
  any moment is reported within one period.

Events (methods)                                   Actions (returned, in order)
    start(now)                                         WritePlan(target, plan, lane, changes, why)
    tick(now)                                          RunCheck(target, number)
    change(now, lane, edits, note) -> (id, actions)    Delivered(target, number, lane, change, seconds)
    delivered(now, target, active, heartbeat)          Alarm(kind, on, text)
    check_result(now, target, number, violations)      Log(text), Done(changes)
    write_failed(now, target, number, error)
    resume(now)
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from enactor.plan import Endpoint, LoadBalancer, Plan, plan_label
from enactor.planner import Capacity


class Lane(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True, slots=True)
class Target:
    """One unit of rollout: today's single layout is one target; with cells, each cell is one.

    `endpoints` are the canonical endpoint names it owns (its plans describe exactly these,
    plus its heartbeat name); `plan_dir` is the plan store its own enactors read."""

    name: str
    endpoints: tuple[str, ...]
    plan_dir: str


@dataclass(frozen=True, slots=True)
class Edit:
    """Set the weight of the load balancers `selector` names: one load balancer (`az1-lb2`)
    or a whole availability zone (`az1`: the talk's "get traffic out of an Availability
    Zone"). `endpoint` None means every endpoint of every target."""

    selector: str
    weight: int
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 255:  # Route 53 weights are 0..255
            raise ValueError(f"weight must be 0..255, got {self.weight}")
        if not self.selector:
            raise ValueError("an edit needs a load balancer or availability zone")

    def matches(self, endpoint: str, lb: LoadBalancer) -> bool:
        return (self.endpoint in (None, endpoint)) and self.selector in (lb.name, lb.az)


@dataclass(frozen=True, slots=True)
class LaneConfig:
    batch_max: int = 5  # K: slow changes (after coalescing) started per window
    window: float = 60.0  # seconds
    gather: float = 5.0  # a batch starts once its oldest change has waited this long (a burst coalesces)
    bake: float = 30.0  # seconds between a target's good check and the next target's write
    period: float = 60.0  # a broken fast path is reported within this many seconds
    step_timeout: float = 120.0  # a slow step not delivered in this long halts the slow lane
    heartbeat: bool = True

    def __post_init__(self) -> None:
        if self.batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        for f in ("window", "gather", "bake", "period", "step_timeout"):
            if getattr(self, f) < 0 or (f == "period" and self.period <= 0):
                raise ValueError(f"{f} must be positive, got {getattr(self, f)}")

    @property
    def fast_deadline(self) -> float:
        return self.period / 2


# --- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WritePlan:
    target: str
    plan: Plan
    lane: Lane
    changes: tuple[int, ...]  # the change ids this plan carries (heartbeats included)
    why: str


@dataclass(frozen=True, slots=True)
class RunCheck:
    target: str
    number: int


@dataclass(frozen=True, slots=True)
class Delivered:
    target: str
    number: int
    lane: Lane
    change: int
    seconds: float  # from submission to verified delivery
    heartbeat: bool = False


@dataclass(frozen=True, slots=True)
class Alarm:
    kind: str  # "fast-path" or "slow-halted"
    on: bool
    text: str


@dataclass(frozen=True, slots=True)
class Log:
    text: str


@dataclass(frozen=True, slots=True)
class Done:
    """These changes are delivered everywhere they apply: the shell may forget them (until
    then it keeps each one durably, so a restarted controller takes it up again)."""

    changes: tuple[int, ...]


LaneAction = WritePlan | RunCheck | Delivered | Alarm | Log | Done


# --- heartbeat names -------------------------------------------------------------------------

HEARTBEAT_LB = "hb"
_HB_BASE = int(ipaddress.IPv4Address("198.18.0.0"))  # RFC 2544 benchmarking range, 198.18.0.0/15
_HB_SPAN = 1 << 17


def heartbeat_address(seq: int) -> str:
    """The address that says "heartbeat `seq` arrived" (modulo 2**17)."""
    return str(ipaddress.IPv4Address(_HB_BASE + seq % _HB_SPAN))


def heartbeat_seq(address: str) -> int | None:
    """The sequence number (modulo 2**17) an address encodes, or None if it is not one."""
    try:
        v = int(ipaddress.IPv4Address(address)) - _HB_BASE
    except ValueError:
        return None
    return v if 0 <= v < _HB_SPAN else None


def seq_reached(seen: int | None, want: int) -> bool:
    """Has heartbeat `want` (or a later one) arrived, given the seen value modulo 2**17?"""
    if seen is None:
        return False
    return (seen - want) % _HB_SPAN < _HB_SPAN // 2


def heartbeat_name(capacity: Capacity) -> str:
    return f"heartbeat.{capacity[0].zone}"


def with_heartbeat(capacity: Capacity, seq: int) -> Capacity:
    """The capacity with its heartbeat endpoint (last: enactors go through endpoints in order,
    so they reach it only after every real endpoint is flipped) carrying heartbeat `seq`."""
    real = tuple(e for e in capacity if e.name != heartbeat_name(capacity))
    hb = Endpoint(heartbeat_name(capacity), capacity[0].zone, False,
                  (LoadBalancer(HEARTBEAT_LB, heartbeat_address(seq), None, 1),))
    return (*real, hb)


def real_endpoints(capacity: Capacity) -> tuple[Endpoint, ...]:
    return tuple(e for e in capacity if e.name != heartbeat_name(capacity))


# --- state -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LaneChange:
    id: int
    lane: Lane
    edits: tuple[Edit, ...]
    submitted: float
    note: str = ""
    heartbeat: int | None = None  # the heartbeat sequence number, for the synthetic change

    @property
    def scope(self) -> str:
        """What coalesces: changes to the same endpoint (or to every endpoint, "*")."""
        eps = sorted({e.endpoint or "*" for e in self.edits})
        return ",".join(eps) if eps else "*"


@dataclass
class _Pending:
    number: int
    lane: Lane
    changes: tuple[LaneChange, ...]
    written: float
    heartbeat: int | None
    alarmed: bool = False


@dataclass
class _TargetState:
    target: Target
    number: int  # the newest plan written to its store
    capacity: Capacity
    pending: list[_Pending] = field(default_factory=list)


class SlowPhase(enum.Enum):
    IDLE = "IDLE"
    AWAIT_DELIVERY = "AWAIT_DELIVERY"
    AWAIT_CHECK = "AWAIT_CHECK"
    BAKING = "BAKING"


@dataclass
class _Rollout:
    batch: int
    changes: tuple[LaneChange, ...]
    started: float
    index: int = 0  # the target being rolled out to
    phase: SlowPhase = SlowPhase.IDLE
    number: int = 0  # the plan written for the target at `index`
    since: float = 0.0  # when the phase began
    bake_until: float = 0.0


class Lanes:
    """The fast and slow lanes over an ordered list of targets. See the module docstring.

    A plain object rather than a frozen state (unlike `enactor.machine`): it is still pure and
    deterministic, the same events in the same order give the same actions, and the shell,
    the tests and the hypothesis runs drive it alike."""

    def __init__(self, cfg: LaneConfig, targets: Sequence[tuple[Target, int, Capacity]]):
        if not targets:
            raise ValueError("lanes need at least one target")
        self.cfg = cfg
        self.targets = [_TargetState(t, n, cap) for t, n, cap in targets]
        names = [t.target.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"target names must be unique: {names}")
        self.next_id = 1
        self.hb_seq = 0
        self.next_heartbeat: float | None = None
        self.queue: list[LaneChange] = []
        self.rollout: _Rollout | None = None
        self.batches = 0
        self.last_batch_start: float | None = None
        self.halted: str | None = None
        self.fast_alarm = False
        # (target, endpoint, load balancer) -> id of the newest change applied to it
        self.stamps: dict[tuple[str, str, str], int] = {}
        self.fast_open: dict[int, set[str]] = {}  # fast change -> targets not yet delivered
        self.now = 0.0

    # --- events ------------------------------------------------------------------------------

    def start(self, now: float) -> list[LaneAction]:
        self.now = now
        out: list[LaneAction] = [Log(f"lanes: {len(self.targets)} target(s) "
                                     f"({', '.join(t.target.name for t in self.targets)}); slow: "
                                     f"{self.cfg.batch_max} per {self.cfg.window:g}s, bake "
                                     f"{self.cfg.bake:g}s; fast-path period {self.cfg.period:g}s")]
        if self.cfg.heartbeat:
            self.next_heartbeat = now
        return out + self.tick(now)

    def change(self, now: float, lane: Lane, edits: Sequence[Edit], note: str = "",
               ) -> tuple[int, list[LaneAction]]:
        self.now = now
        if not edits:
            raise ValueError("a change needs at least one edit")
        ch = LaneChange(self.next_id, lane, tuple(edits), now, note)
        self.next_id += 1
        if lane is Lane.FAST:
            out = self._fast(ch, now)
        else:
            self.queue.append(ch)
            out = [Log(f"slow change #{ch.id} queued ({_edits_text(ch.edits)}"
                       f"{'; ' + note if note else ''}); {len(self.queue)} waiting")]
            out += self.tick(now)
        return ch.id, out

    def tick(self, now: float) -> list[LaneAction]:
        self.now = now
        out: list[LaneAction] = []
        if self.next_heartbeat is not None and now >= self.next_heartbeat:
            out += self._heartbeat(now)
        out += self._timeouts(now)
        out += self._advance_slow(now)
        return out

    def delivered(self, now: float, target: str, active: int | None,
                  heartbeat: int | None) -> list[LaneAction]:
        """What the shell saw for `target`: `active` is the oldest plan any of its endpoints'
        aliases point at (through the change API); `heartbeat` the sequence number DNS
        answered for its heartbeat name (None: no answer or not a heartbeat address)."""
        self.now = now
        ts = self._target(target)
        out: list[LaneAction] = []
        done = [p for p in ts.pending if active is not None and active >= p.number
                and (p.heartbeat is None or seq_reached(heartbeat, p.heartbeat))]
        if not done:
            return out
        ts.pending = [p for p in ts.pending if p not in done]
        for p in done:
            for ch in p.changes:
                out.append(Delivered(target, p.number, p.lane, ch.id, now - ch.submitted,
                                     ch.heartbeat is not None))
                what = f"heartbeat {ch.heartbeat}" if ch.heartbeat is not None else \
                    f"{p.lane.value} change #{ch.id}"
                out.append(Log(f"{what} delivered to {target} in {now - ch.submitted:.1f}s "
                               f"({plan_label(p.number)})"))
                left = self.fast_open.get(ch.id)
                if left is not None:
                    left.discard(target)
                    if not left:
                        del self.fast_open[ch.id]
                        out.append(Done((ch.id,)))
        if self.fast_alarm and any(p.lane is Lane.FAST for p in done) and \
                not any(p.alarmed for t in self.targets for p in t.pending):
            self.fast_alarm = False
            out.append(Alarm("fast-path", False, f"fast path restored: {target} took "
                                                 f"{plan_label(max(p.number for p in done))}"))
        r = self.rollout
        slow_step = r is not None and r.phase is SlowPhase.AWAIT_DELIVERY and \
            self._current_target(r).target.name == target and active is not None and active >= r.number
        if slow_step:
            assert r is not None
            r.phase, r.since = SlowPhase.AWAIT_CHECK, now
        # Every real change is checked; a heartbeat alone was already verified over DNS, and
        # checking it too would cost the change API a full read of the target every period/2.
        if slow_step or any(ch.heartbeat is None for p in done for ch in p.changes):
            out.append(RunCheck(target, max(p.number for p in done)))
        return out

    def check_result(self, now: float, target: str, number: int,
                     violations: Sequence[str]) -> list[LaneAction]:
        """The check after a step: the invariants and the answer check, as violation texts."""
        self.now = now
        out: list[LaneAction] = []
        if violations:
            out += self._halt(f"check failed on {target} at {plan_label(number)}: "
                              + "; ".join(violations))
            return out
        r = self.rollout
        if r is not None and r.phase is SlowPhase.AWAIT_CHECK and \
                self._current_target(r).target.name == target and number >= r.number:
            last = r.index == len(self.targets) - 1
            if last:
                out.append(Log(f"slow batch {r.batch} ({_ids(r.changes)}) rolled out to every "
                               f"target; checks passed"))
                out.append(Done(tuple(c.id for c in r.changes)))
                self.rollout = None
            else:
                r.phase, r.since, r.bake_until = SlowPhase.BAKING, now, now + self.cfg.bake
                out.append(Log(f"slow batch {r.batch}: {target} checked; baking "
                               f"{self.cfg.bake:g}s before {self.targets[r.index + 1].target.name}"))
            out += self._advance_slow(now)
        return out

    def write_failed(self, now: float, target: str, number: int, error: str) -> list[LaneAction]:
        """The shell could not write the plan: nothing was written. The slow lane halts; a fast
        plan that could not be written is a broken fast path, and says so at once. (Someone
        else wrote to the target's plan store: restart the controller once it is the only
        writer again; it starts from the store's newest plan.)"""
        self.now = now
        ts = self._target(target)
        lost = [p for p in ts.pending if p.number == number]
        ts.pending = [p for p in ts.pending if p.number != number]
        why = f"could not write {plan_label(number)} for {target}: {error}"
        out: list[LaneAction] = []
        if any(p.lane is Lane.FAST for p in lost) and not self.fast_alarm:
            self.fast_alarm = True
            out.append(Alarm("fast-path", True, f"FAST PATH BROKEN: {why}"))
        return out + self._halt(why)

    def resume(self, now: float) -> list[LaneAction]:
        """The operator's word that the halt is understood: the slow lane carries on with the
        target it halted on (its queued changes were never lost)."""
        self.now = now
        if self.halted is None:
            return [Log("slow lane is not halted")]
        self.halted = None
        out: list[LaneAction] = [Alarm("slow-halted", False, "slow lane resumed")]
        r = self.rollout
        if r is not None and r.phase in (SlowPhase.AWAIT_DELIVERY, SlowPhase.AWAIT_CHECK):
            # The halted step is checked again before anything moves on: its plan stays the
            # newest of its target, so a pass lets the rollout bake and go on.
            ts = self._current_target(r)
            if any(p.number == r.number for p in ts.pending):
                r.phase, r.since = SlowPhase.AWAIT_DELIVERY, now  # a fresh step_timeout
                return out
            r.phase, r.since, r.number = SlowPhase.AWAIT_CHECK, now, ts.number
            return out + [RunCheck(ts.target.name, ts.number)]
        return out + self._advance_slow(now)

    # --- views -------------------------------------------------------------------------------

    def capacity(self, target: str) -> Capacity:
        return self._target(target).capacity

    def watching(self) -> list[tuple[Target, int]]:
        """The targets with plans not yet delivered, and the newest such plan."""
        return [(t.target, max(p.number for p in t.pending)) for t in self.targets if t.pending]

    def status(self) -> dict[str, object]:
        r = self.rollout
        return {
            "halted": self.halted,
            "fast_alarm": self.fast_alarm,
            "queued": len(self.queue),
            "rollout": None if r is None else {
                "batch": r.batch, "changes": [c.id for c in r.changes],
                "target": self.targets[r.index].target.name, "phase": r.phase.value},
            "targets": {t.target.name: {"plan": t.number, "pending": [p.number for p in t.pending]}
                        for t in self.targets},
            "heartbeat": self.hb_seq,
        }

    # --- the fast lane -----------------------------------------------------------------------

    def _fast(self, ch: LaneChange, now: float) -> list[LaneAction]:
        out: list[LaneAction] = []
        if ch.heartbeat is None:
            self.fast_open[ch.id] = set()
        for ts in self.targets:
            cap = self._apply(ts, (ch,))
            if ch.heartbeat is not None:
                cap = with_heartbeat(cap, ch.heartbeat)
            if cap == ts.capacity:
                out.append(Log(f"fast change #{ch.id}: nothing to change on {ts.target.name}"))
                continue
            out.append(self._write(ts, cap, Lane.FAST, (ch,), now,
                                   "heartbeat" if ch.heartbeat is not None else
                                   f"fast change #{ch.id} ({_edits_text(ch.edits)})"))
            if ch.heartbeat is None:
                self.fast_open[ch.id].add(ts.target.name)
        if ch.heartbeat is None and not self.fast_open[ch.id]:
            del self.fast_open[ch.id]
            out.append(Done((ch.id,)))
        if ch.heartbeat is None and self.next_heartbeat is not None and any(
                isinstance(a, WritePlan) for a in out):
            # A real fast change exercises the same path under the same deadline, so the next
            # heartbeat can wait period/2 from it: the bound holds, the enactors do less.
            self.next_heartbeat = max(self.next_heartbeat, now + self.cfg.period / 2)
        return out

    def _heartbeat(self, now: float) -> list[LaneAction]:
        self.hb_seq += 1
        # On the schedule, not `now + period/2`: late ticks must not stretch the bound.
        assert self.next_heartbeat is not None
        self.next_heartbeat = max(self.next_heartbeat + self.cfg.period / 2, now)
        ch = LaneChange(self.next_id, Lane.FAST, (), now, "heartbeat", heartbeat=self.hb_seq)
        self.next_id += 1
        return self._fast(ch, now)

    def _timeouts(self, now: float) -> list[LaneAction]:
        out: list[LaneAction] = []
        for ts in self.targets:
            for p in ts.pending:
                if p.lane is Lane.FAST and not p.alarmed and now - p.written >= self.cfg.fast_deadline:
                    p.alarmed = True
                    what = "heartbeat" if p.heartbeat is not None else \
                        "change " + _ids(tuple(c for c in p.changes if c.heartbeat is None))
                    if not self.fast_alarm:
                        self.fast_alarm = True
                        out.append(Alarm("fast-path", True,
                                         f"FAST PATH BROKEN: {what} ({plan_label(p.number)}) not "
                                         f"delivered to {ts.target.name} within "
                                         f"{self.cfg.fast_deadline:g}s"))
        r = self.rollout
        if r is not None and self.halted is None and r.phase is SlowPhase.AWAIT_DELIVERY and \
                now - r.since > self.cfg.step_timeout:
            out += self._halt(f"slow batch {r.batch}: {plan_label(r.number)} not delivered to "
                              f"{self._current_target(r).target.name} within {self.cfg.step_timeout:g}s")
        return out

    # --- the slow lane -----------------------------------------------------------------------

    def _advance_slow(self, now: float) -> list[LaneAction]:
        if self.halted is not None:
            return []
        out: list[LaneAction] = []
        r = self.rollout
        if r is None:
            if not self.queue:
                return out
            if self.last_batch_start is not None and now < self.last_batch_start + self.cfg.window:
                return out  # the rate limit: at most batch_max per window
            if now < self.queue[0].submitted + self.cfg.gather:
                return out  # let a burst gather, so changes to one endpoint coalesce
            r = self.rollout = self._next_batch(now)
            out.append(Log(f"slow batch {r.batch}: {_ids(r.changes)} "
                           f"({len({c.scope for c in r.changes})} after coalescing); "
                           f"{len(self.queue)} still waiting"))
        if r.phase is SlowPhase.BAKING:
            if now < r.bake_until:
                return out
            r.index += 1
            r.phase = SlowPhase.IDLE
        while r.phase is SlowPhase.IDLE:
            ts = self._current_target(r)
            cap = self._apply(ts, r.changes)
            if cap == ts.capacity:
                out.append(Log(f"slow batch {r.batch}: nothing to change on {ts.target.name}"))
                if r.index == len(self.targets) - 1:
                    out.append(Done(tuple(c.id for c in r.changes)))
                    self.rollout = None
                    return out
                r.index += 1  # nothing written, nothing to bake
                continue
            out.append(self._write(ts, cap, Lane.SLOW, r.changes, now,
                                   f"slow batch {r.batch} ({_ids(r.changes)}), target "
                                   f"{r.index + 1}/{len(self.targets)}"))
            r.phase, r.number, r.since = SlowPhase.AWAIT_DELIVERY, ts.number, now
        return out

    def _next_batch(self, now: float) -> _Rollout:
        scopes: list[str] = []
        for ch in self.queue:
            if ch.scope not in scopes and len(scopes) < self.cfg.batch_max:
                scopes.append(ch.scope)
        take = tuple(ch for ch in self.queue if ch.scope in scopes)
        self.queue = [ch for ch in self.queue if ch.scope not in scopes]
        self.batches += 1
        self.last_batch_start = now
        return _Rollout(self.batches, take, now)

    def _halt(self, why: str) -> list[LaneAction]:
        if self.halted is not None:
            return [Log(f"(slow lane already halted) {why}")]
        self.halted = why
        return [Alarm("slow-halted", True, f"SLOW LANE HALTED: {why}; nothing further is rolled "
                                          "out until `enactor lanes resume`")]

    # --- shared ------------------------------------------------------------------------------

    def _write(self, ts: _TargetState, cap: Capacity, lane: Lane, changes: tuple[LaneChange, ...],
               now: float, why: str) -> WritePlan:
        ts.number += 1
        ts.capacity = cap
        for ch in changes:
            for e in real_endpoints(cap):
                for lb in e.load_balancers:
                    if any(ed.matches(e.name, lb) for ed in ch.edits):
                        key = (ts.target.name, e.name, lb.name)
                        self.stamps[key] = max(self.stamps.get(key, 0), ch.id)
        hb = next((c.heartbeat for c in changes if c.heartbeat is not None), None)
        ts.pending.append(_Pending(ts.number, lane, changes, now, hb))
        return WritePlan(ts.target.name, Plan(ts.number, float(int(now)), cap), lane,
                         tuple(c.id for c in changes), why)

    def _apply(self, ts: _TargetState, changes: Sequence[LaneChange]) -> Capacity:
        """The target's capacity with `changes` applied in id order, each edit only where no
        newer change has already set that load balancer (the newest intent wins)."""
        out = []
        for e in ts.capacity:
            lbs = []
            for lb in e.load_balancers:
                for ch in sorted(changes, key=lambda c: c.id):
                    key = (ts.target.name, e.name, lb.name)
                    if self.stamps.get(key, 0) > ch.id:
                        continue
                    for ed in ch.edits:
                        if ed.matches(e.name, lb):
                            lb = dataclasses.replace(lb, weight=ed.weight)
                lbs.append(lb)
            out.append(dataclasses.replace(e, load_balancers=tuple(lbs)))
        return tuple(out)

    def _target(self, name: str) -> _TargetState:
        for t in self.targets:
            if t.target.name == name:
                return t
        raise KeyError(f"no target {name!r}")

    def _current_target(self, r: _Rollout) -> _TargetState:
        return self.targets[r.index]


def _ids(changes: Sequence[LaneChange]) -> str:
    return ", ".join(f"#{c.id}" for c in changes) or "none"


def _edits_text(edits: Sequence[Edit]) -> str:
    return ", ".join(f"{e.selector}={e.weight}" + (f" on {e.endpoint}" if e.endpoint else "")
                     for e in edits)
