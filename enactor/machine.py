"""The enactor's decisions, as a pure state machine: lock, build, flip, clean, freeze.

Pure core: no I/O, no clock, no randomness of its own. Everything the enactor knows arrives
as a *result*; everything it wants to do leaves as an *action*. The trio runner
(`enactor.runner`), the in-process client (`enactor.client`) and the interleaving checker
all drive this same code, so the checker explores the real enactor, not a model of it.

Protocol
--------
    cfg = Config(name="enactor-a", defects=parse_defects("2025"))
    st = initial_state()
    out = step(cfg, st, None)                 # -> Step(state, action, log)
    while True:
        result = perform(out.action)          # the shell does the I/O (or the checker fakes it)
        out = step(cfg, out.state, result)    # every action is one scheduling point

Actions (what the shell must do)              Results (what it feeds back; all carry `now`)
    ReadPlan()                                    PlanRead(now, plan | None, error | None)
    FindZone(zone)                                ZoneFound(now, zone_id | None)
    ReadRecords(zone_id, name, rtype)             RecordsRead(now, record_sets)
      (a point read through the change API, never DNS: DNS is eventually consistent)
    ListRecords(zone_id)                          RecordsRead(now, record_sets)
    SubmitBatch(zone_id, changes, purpose)        BatchAccepted(now, change_id)
                                                  | BatchRejected(now, messages)
    Sleep(seconds, why)                           Slept(now)

`now` is epoch seconds at the moment the result was obtained (real time in the runner,
virtual time in tests and in the checker). The machine reads no other clock. Backoff jitter
is a pure function of (`Config.seed`, name, draw counter), so a seed fixes every delay.

`step` raises only when the `rollback-crash-on-missing` defect is on and the active tree is
gone (`RollbackTargetMissing`: the 2025 crash, which the runner lets kill the process). In
the fixed design every surprise becomes `Status.FROZEN`: it stops writing, says why in
`State.last_error`, and sleeps; it never crashes and never writes something worse.

State
-----
`State` is a frozen, hashable dataclass: the phase (a program counter), the plan being
enacted, the endpoint index, the lock value this enactor believes it holds, the batches
still to send, the reads gathered so far, and what it last did. Two enactors in the same
state make the same decisions given the same results.

The protocol, per endpoint E (the talk, DAT453, "The DNS management system"):
1. read the newest plan; peek at E's alias (lock-free): nothing to do if it already points
   at this plan or a newer one;
2. lock `_lock.E`, TXT `"<holder> <expiry-epoch-seconds>"`: CREATE it when absent; take
   over an expired one by DELETE-exact of the stale value + CREATE; otherwise back off
   (exponential, jitter); a `paused-by-...` holder is the operator's pause switch;
3. every later batch starts with the preamble DELETE-exact(lock as I hold it) + CREATE(lock
   with a new expiry), so if anyone else touched the lock the whole batch fails;
4. build the plan's tree with UPSERTs (idempotent): leaves `<lb>.plan-NNNN.E`, then the
   weighted root `plan-NNNN.E` whose members alias the leaves;
5. flip in ONE batch: the alias `E` (A, and AAAA when dual-stack) -> the new root, and the
   rollback alias `_rollback.E` -> the previously active root; release the lock;
6. lock again and run the record cleaner; release. The cleaner is also a reconciler: an
   enactor idle with the newest plan active lists the zone (lock-free) once per loop and,
   if an old unreachable tree is left (say a crash between flip and clean), locks and cleans.
   A clean batch rejected only because tree records it deletes are already gone (a retried
   request) re-lists and carries on: deleting what is gone is done.

Defects (`--defects`, each restores one 2025 behaviour; default = the fixed design):
- STALE_CHECK_BEFORE_LOCK: "is my plan newer" is checked only at step 1, before the
  (possibly very long) lock backoff; the flip is a blind UPSERT. Fixed: the flip re-reads
  the alias under the lock, refuses a plan older than the active one, and DELETEs the alias
  with the exact value it read (compare-and-swap), so the active plan never goes backwards.
- CLEANER_BY_AGE: delete every tree more than `keep_plans` behind the plan just installed,
  whatever points at it. Fixed: never delete a tree the alias or rollback reaches, and make
  each delete batch conditional on the alias and rollback still being as seen.
- ROLLBACK_CRASH_ON_MISSING: building the flip reads the active tree to point rollback at it
  and raises when it is gone, every time. Fixed: "nothing flows as nothing": with no active
  tree the rollback is left as it is and the newest plan is installed, which repairs the
  dangling alias.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from authd.model.changes import msg_not_found
from authd.model.records import AliasTarget, RecordSet
from authd.store.contract import Action, Change
from enactor.plan import (
    Endpoint,
    Plan,
    leaf_name,
    lock_name,
    plan_label,
    rollback_name,
    root_name,
    root_plan,
    tree_of,
)

# --- configuration -------------------------------------------------------------------------


class Defect(enum.Enum):
    STALE_CHECK_BEFORE_LOCK = "stale-check-before-lock"
    CLEANER_BY_AGE = "cleaner-by-age"
    ROLLBACK_CRASH_ON_MISSING = "rollback-crash-on-missing"


ALL_DEFECTS = frozenset(Defect)


def parse_defects(text: str | None) -> frozenset[Defect]:
    """`""`/`none`/`fixed` -> the fixed design; `2025` -> all; else a comma-separated list."""
    text = (text or "").strip()
    if text in ("", "none", "fixed"):
        return frozenset()
    if text == "2025":
        return ALL_DEFECTS
    out: set[Defect] = set()
    known = {d.value: d for d in Defect}
    for part in text.split(","):
        part = part.strip()
        if part == "2025":
            out |= ALL_DEFECTS
        elif part in known:
            out.add(known[part])
        else:
            raise ValueError(
                f"unknown defect {part!r}; known: 2025, {', '.join(sorted(known))}"
            )
    return frozenset(out)


def defects_text(defects: Iterable[Defect]) -> str:
    ds = frozenset(defects)
    if not ds:
        return "fixed"
    if ds == ALL_DEFECTS:
        return "2025"
    return ",".join(sorted(d.value for d in ds))


PAUSE_PREFIX = "paused-by-"  # a lock holder with this prefix is the operator's pause switch
LEAF_TTL = 60
LOCK_TTL_RECORD = 1  # DNS TTL of the lock TXT record (it is read through the API anyway)


@dataclass(frozen=True, slots=True)
class Config:
    name: str  # the lock holder name, e.g. "enactor-a"
    defects: frozenset[Defect] = frozenset()
    lock_ttl: float = 30.0  # seconds a lock lives after each batch refreshes it
    backoff_base: float = 0.2  # first backoff, doubled per consecutive failure
    backoff_cap: float = 5.0
    poll_interval: float = 1.0  # between looks at the plan store when idle
    keep_plans: int = 2  # the cleaner keeps trees of the newest `keep_plans` plans
    max_changes: int = 100  # per batch, an UPSERT counting twice (Route 53 allows 1,000)
    seed: int = 0  # backoff jitter is a pure function of the seed

    def has(self, defect: Defect) -> bool:
        return defect in self.defects


# --- actions and results --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadPlan:
    kind = "read-plan"


@dataclass(frozen=True, slots=True)
class FindZone:
    zone: str
    kind = "find-zone"


@dataclass(frozen=True, slots=True)
class ReadRecords:
    zone_id: str
    name: str
    rtype: str
    kind = "read"


@dataclass(frozen=True, slots=True)
class ListRecords:
    zone_id: str
    kind = "list"


class Purpose(enum.Enum):
    """What a batch is for; the schedule and the timeline key on these."""

    LOCK = "lock"  # CREATE the lock
    TAKEOVER = "takeover"  # DELETE-exact an expired lock + CREATE
    BUILD = "build"
    FLIP = "flip"
    CLEAN = "clean"
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class SubmitBatch:
    zone_id: str
    changes: tuple[Change, ...]
    purpose: Purpose
    comment: str = ""
    kind = "batch"


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float
    why: str  # "backoff", "poll", "paused", "frozen"
    kind = "sleep"


ActionT = ReadPlan | FindZone | ReadRecords | ListRecords | SubmitBatch | Sleep


@dataclass(frozen=True, slots=True)
class PlanRead:
    now: float
    plan: Plan | None
    error: str | None = None  # a refused plan: file, JSON path and reason


@dataclass(frozen=True, slots=True)
class ZoneFound:
    now: float
    zone_id: str | None


@dataclass(frozen=True, slots=True)
class RecordsRead:
    now: float
    records: tuple[RecordSet, ...]


@dataclass(frozen=True, slots=True)
class BatchAccepted:
    now: float
    change_id: str = ""


@dataclass(frozen=True, slots=True)
class BatchRejected:
    now: float
    messages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Slept:
    now: float


ResultT = PlanRead | ZoneFound | RecordsRead | BatchAccepted | BatchRejected | Slept


class RollbackTargetMissing(LookupError):
    """The 2025 crash: the flip looked up the active tree to point rollback at it; none."""


# --- state ------------------------------------------------------------------------------


class Status(enum.Enum):
    IDLE = "IDLE"  # nothing to do; polling the plan store
    WORKING = "WORKING"
    BACKING_OFF = "BACKING_OFF"  # the lock is held by another enactor
    PAUSED = "PAUSED"  # the operator's pause switch is on
    FROZEN = "FROZEN"  # met a state it does not understand; writes nothing until restarted


class Phase(enum.Enum):
    START = "START"
    AWAIT_PLAN = "AWAIT_PLAN"
    AWAIT_ZONE = "AWAIT_ZONE"
    PEEK = "PEEK"  # gathering the lock-free peek at the alias
    PEEK_ROOT = "PEEK_ROOT"  # ... and at the active tree's root
    AWAIT_LOCK_READ = "AWAIT_LOCK_READ"
    AWAIT_LOCK_WRITE = "AWAIT_LOCK_WRITE"
    BACKOFF = "BACKOFF"
    CHECK = "CHECK"  # under the lock, before building: alias and rollback reads
    CHECK_ROOT = "CHECK_ROOT"
    AWAIT_BUILD = "AWAIT_BUILD"
    FLIP_READ = "FLIP_READ"  # alias and rollback reads for the flip
    FLIP_READ_ROOT = "FLIP_READ_ROOT"  # the active tree's root (the rollback target)
    AWAIT_FLIP = "AWAIT_FLIP"
    CLEAN_PEEK = "CLEAN_PEEK"  # idle: a lock-free listing, is there an old tree to clean?
    CLEAN_LIST = "CLEAN_LIST"
    AWAIT_CLEAN = "AWAIT_CLEAN"
    AWAIT_RELEASE = "AWAIT_RELEASE"
    IDLE_SLEEP = "IDLE_SLEEP"
    FROZEN = "FROZEN"


class Task(enum.Enum):
    INSTALL = "install"
    CLEAN = "clean"


Key = tuple[str, str]  # (name, rtype)


@dataclass(frozen=True, slots=True)
class State:
    phase: Phase = Phase.START
    status: Status = Status.IDLE
    plan: Plan | None = None
    ep: int = 0  # index of the endpoint in plan.endpoints
    task: Task | None = None
    zone_ids: tuple[tuple[str, str], ...] = ()  # zone origin -> hosted zone id
    lock: str | None = None  # exact TXT value (quoted) of the lock this enactor holds
    attempt: int = 0  # consecutive failures to get the lock
    draws: int = 0  # jitter draws so far (the jitter sequence position)
    batches: tuple[tuple[Change, ...], ...] = ()  # batches still to send (without preamble)
    want: tuple[Key, ...] = ()  # point reads still to do in this group
    reads: tuple[tuple[Key, tuple[RecordSet, ...]], ...] = ()
    active: int | None = None  # the plan the alias pointed at when last read
    worked: bool = False  # wrote something this round (to log idle rounds once)
    installed: tuple[tuple[str, int], ...] = ()  # endpoint -> the plan this enactor flipped to
    pending_lock: str | None = None  # the lock value the batch in flight will leave
    note: str = ""  # what the flip in flight does to the rollback record (for its log line)
    last_error: str = ""
    now: float = 0.0


def initial_state() -> State:
    return State()


@dataclass(frozen=True, slots=True)
class Step:
    state: State
    action: ActionT
    log: tuple[str, ...] = field(default=())


# --- helpers -------------------------------------------------------------------------------


def clock_text(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%H:%M:%S")


_LOCK_VALUE = re.compile(r'^"(\S+) (\d+)"$')


def lock_value(holder: str, expiry: int) -> str:
    return f'"{holder} {expiry}"'


def parse_lock(value: str) -> tuple[str, int] | None:
    m = _LOCK_VALUE.match(value)
    return (m.group(1), int(m.group(2))) if m else None


def lock_record(endpoint: str, value: str) -> RecordSet:
    return RecordSet(lock_name(endpoint), "TXT", ttl=LOCK_TTL_RECORD, values=(value,))


def jitter(seed: int, name: str, draw: int) -> float:
    """A uniform-looking number in [0, 1), a pure function of its inputs."""
    h = hashlib.blake2b(f"{seed}/{name}/{draw}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def backoff_delay(cfg: Config, attempt: int, draw: int) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random."""
    d = min(cfg.backoff_cap, cfg.backoff_base * 2 ** max(0, attempt - 1))
    return round(d / 2 + d / 2 * jitter(cfg.seed, cfg.name, draw), 3)


def tree_records(plan: Plan, ep: Endpoint, zone_id: str) -> tuple[list[RecordSet], list[RecordSet]]:
    """The leaves and the weighted root members of `plan`'s tree for endpoint `ep`."""
    leaves, members = _tree_records(plan.number, ep, zone_id)
    return list(leaves), list(members)


@functools.lru_cache(maxsize=256)
def _tree_records(number: int, ep: Endpoint, zone_id: str) -> tuple[tuple[RecordSet, ...], tuple[RecordSet, ...]]:
    # Pure and called on every peek; RecordSet canonicalises names, so cache the result.
    plan = Plan(number, 0.0, (ep,))
    leaves: list[RecordSet] = []
    members: list[RecordSet] = []
    root = root_name(plan.number, ep.name)
    for lb in ep.load_balancers:
        leaf = leaf_name(lb.name, plan.number, ep.name)
        leaves.append(RecordSet(leaf, "A", ttl=LEAF_TTL, values=(lb.ipv4,)))
        if ep.dual_stack:
            assert lb.ipv6 is not None
            leaves.append(RecordSet(leaf, "AAAA", ttl=LEAF_TTL, values=(lb.ipv6,)))
        for t in ep.rtypes:
            members.append(
                RecordSet(root, t, set_identifier=lb.name, weight=lb.weight,
                          alias=AliasTarget(leaf, zone_id))
            )
    return tuple(leaves), tuple(members)


def alias_to(name: str, rtype: str, target: str, zone_id: str) -> RecordSet:
    return RecordSet(name, rtype, alias=AliasTarget(target, zone_id))


def _cost(c: Change) -> int:
    return 2 if c.action is Action.UPSERT else 1


def chunk(changes: Sequence[Change], budget: int) -> tuple[tuple[Change, ...], ...]:
    """Split into batches of at most `budget` (an UPSERT counting twice)."""
    out: list[tuple[Change, ...]] = []
    cur: list[Change] = []
    used = 0
    for c in changes:
        if cur and used + _cost(c) > budget:
            out.append(tuple(cur))
            cur, used = [], 0
        cur.append(c)
        used += _cost(c)
    if cur:
        out.append(tuple(cur))
    return tuple(out)


# --- the step function -------------------------------------------------------------------


class _Freeze(Exception):
    """Internal: a state the fixed design does not understand."""


def step(cfg: Config, st: State, result: ResultT | None) -> Step:
    """Feed the result of the last action (None at the start); get the next action.

    Raises RollbackTargetMissing only under the ROLLBACK_CRASH_ON_MISSING defect.
    """
    if result is not None:
        st = dataclasses.replace(st, now=result.now)
    m = _Machine(cfg, st)
    try:
        action = m.run(result)
    except _Freeze as exc:
        action = m.freeze(str(exc))
    except RollbackTargetMissing:
        raise
    except Exception as exc:  # noqa: BLE001 - the fixed design converts errors to FROZEN
        if cfg.has(Defect.ROLLBACK_CRASH_ON_MISSING):
            raise
        action = m.freeze(f"internal error {type(exc).__name__}: {exc}")
    return Step(m.st, action, tuple(m.log))


class _Machine:
    """One step's worth of decisions. Mutates a local copy of the state, then returns it."""

    def __init__(self, cfg: Config, st: State):
        self.cfg, self.st = cfg, st
        self.log: list[str] = []

    # --- small utilities ---

    def set(self, **kw: object) -> None:
        self.st = dataclasses.replace(self.st, **kw)  # type: ignore[arg-type]

    def say(self, text: str) -> None:
        self.log.append(f"{self.cfg.name} {text}")

    @property
    def plan(self) -> Plan:
        assert self.st.plan is not None
        return self.st.plan

    @property
    def endpoint(self) -> Endpoint:
        return self.plan.endpoints[self.st.ep]

    @property
    def e(self) -> str:
        return self.endpoint.name

    @property
    def zone_id(self) -> str:
        zid = dict(self.st.zone_ids).get(self.endpoint.zone)
        assert zid is not None
        return zid

    @property
    def mine(self) -> int:
        return self.plan.number

    def freeze(self, reason: str) -> ActionT:
        self.set(phase=Phase.FROZEN, status=Status.FROZEN, last_error=reason, batches=(),
                 want=(), reads=())
        self.say(f"FROZEN: {reason}; writing nothing until an operator looks (enactor status)")
        return Sleep(self.cfg.poll_interval * 10, "frozen")

    def read_group(self, phase: Phase, keys: Sequence[Key]) -> ActionT:
        self.set(phase=phase, want=tuple(keys), reads=())
        return self.next_read()

    def next_read(self) -> ActionT:
        name, rtype = self.st.want[0]
        return ReadRecords(self.zone_id, name, rtype)

    def got(self, key: Key) -> tuple[RecordSet, ...]:
        return dict(self.st.reads).get(key, ())

    def preamble(self) -> tuple[Change, ...]:
        """DELETE the lock with the exact value I hold; CREATE it with a fresh expiry."""
        assert self.st.lock is not None
        new = lock_value(self.cfg.name, int(self.st.now + self.cfg.lock_ttl))
        self.set(pending_lock=new)
        return (
            Change(Action.DELETE, lock_record(self.e, self.st.lock)),
            Change(Action.CREATE, lock_record(self.e, new)),
        )

    def submit(self, phase: Phase, changes: Sequence[Change], purpose: Purpose,
               preamble: bool = True) -> ActionT:
        body = (self.preamble() if preamble else ()) + tuple(changes)
        self.set(phase=phase, status=Status.WORKING)
        return SubmitBatch(self.zone_id, body, purpose,
                           f"{self.cfg.name} {purpose.value} {plan_label(self.mine)} {self.e}")

    # --- the dispatcher ---

    def run(self, r: ResultT | None) -> ActionT:
        ph = self.st.phase
        handler = getattr(self, "on_" + ph.value.lower())
        return handler(r)

    # START: read the newest plan
    def on_start(self, r: ResultT | None) -> ActionT:
        self.set(phase=Phase.AWAIT_PLAN, worked=False)
        return ReadPlan()

    def on_idle_sleep(self, r: ResultT | None) -> ActionT:
        return self.on_start(r)

    def on_frozen(self, r: ResultT | None) -> ActionT:
        # Sticky: a frozen enactor never writes again; restarting it is an operator's act.
        return Sleep(self.cfg.poll_interval * 10, "frozen")

    def on_await_plan(self, r: ResultT | None) -> ActionT:
        assert isinstance(r, PlanRead)
        if r.error is not None:
            if self.st.last_error != r.error:
                self.say(f"REFUSING the newest plan, enacting nothing of it: {r.error}")
            self.set(phase=Phase.IDLE_SLEEP, status=Status.IDLE, last_error=r.error)
            return Sleep(self.cfg.poll_interval, "poll")
        if r.plan is None:
            self.set(phase=Phase.IDLE_SLEEP, status=Status.IDLE)
            return Sleep(self.cfg.poll_interval, "poll")
        if self.st.plan is None or self.st.plan.number != r.plan.number:
            self.say(f"read newest plan {r.plan.label} ({len(r.plan.endpoints)} endpoints)")
        self.set(plan=r.plan, ep=0)
        return self.begin_endpoint()

    # --- per endpoint ---

    def begin_endpoint(self) -> ActionT:
        if self.st.ep >= len(self.plan.endpoints):
            if self.st.worked:
                self.say(f"{self.plan.label} enacted on every endpoint; idle")
            self.set(phase=Phase.IDLE_SLEEP, status=Status.IDLE, task=None, lock=None,
                     attempt=0, worked=False)
            return Sleep(self.cfg.poll_interval, "poll")
        missing = self.missing_zones()
        if missing:
            # Every endpoint's zone is found before anything is written, so a plan naming a
            # zone that does not exist freezes the enactor instead of being half enacted.
            self.set(phase=Phase.AWAIT_ZONE)
            return FindZone(missing[0])
        # Step 1 of the talk: is my plan newer than the active one? A lock-free peek. Under
        # STALE_CHECK_BEFORE_LOCK this is the *only* check (the 2025 defect).
        return self.read_group(Phase.PEEK, [(self.e, t) for t in self.endpoint.rtypes])

    def next_endpoint(self) -> ActionT:
        self.set(ep=self.st.ep + 1, task=None, lock=None, attempt=0, batches=(), want=(),
                 reads=())
        return self.begin_endpoint()

    def missing_zones(self) -> list[str]:
        known = dict(self.st.zone_ids)
        return [e.zone for e in self.plan.endpoints if e.zone not in known]

    def on_await_zone(self, r: ResultT | None) -> ActionT:
        assert isinstance(r, ZoneFound)
        zone = self.missing_zones()[0]
        if r.zone_id is None:
            raise _Freeze(f"hosted zone {zone} of {self.plan.label} does not exist; "
                          f"enacting none of the plan")
        self.set(zone_ids=self.st.zone_ids + ((zone, r.zone_id),))
        return self.begin_endpoint()

    def gather(self, r: ResultT | None) -> bool:
        """Record a point read; True when the group is complete."""
        assert isinstance(r, RecordsRead)
        key = self.st.want[0]
        self.set(want=self.st.want[1:], reads=self.st.reads + ((key, r.records),))
        return not self.st.want

    def alias_plans(self, name: str) -> dict[str, int | None]:
        """rtype -> plan number the alias at `name` points at (None: no alias there).

        Raises _Freeze for a record the fixed design does not understand (not an alias to a
        plan root of this endpoint), unless a defect makes the 2025 code take it blindly.
        """
        out: dict[str, int | None] = {}
        for t in self.endpoint.rtypes:
            sets = self.got((name, t))
            if not sets:
                out[t] = None
                continue
            rs = sets[0]
            n = root_plan(rs.alias.dns_name, self.e) if rs.alias is not None and len(sets) == 1 else None
            if n is None:
                what = rs.alias.dns_name if rs.alias else f"{rs.rtype} {' '.join(rs.values)}"
                raise _Freeze(f"{name} {t} is {what}, not an alias to a plan root of {self.e}")
            out[t] = n
        return out

    def active_of(self, plans: dict[str, int | None]) -> int | None:
        ns = [n for n in plans.values() if n is not None]
        return max(ns) if ns else None

    def read_root(self, phase: Phase, plans: dict[str, int | None]) -> ActionT | None:
        """Remember the active plan; read its root (one point read) unless there is none."""
        active = self.active_of(plans)
        self.set(active=active, want=(), reads=self.st.reads)
        if active is None:
            return None
        self.set(phase=phase, want=((root_name(active, self.e), self.endpoint.rtypes[0]),))
        return self.next_read()

    def root_state(self, r: ResultT | None) -> str:
        """'missing', 'partial' or 'complete': the active tree's root as just read."""
        assert isinstance(r, RecordsRead) and self.st.active is not None
        self.set(want=())
        if not r.records:
            return "missing"
        if self.st.active != self.mine:
            return "complete"
        _, members = tree_records(self.plan, self.endpoint, self.zone_id)
        want = {rs for rs in members if rs.rtype == self.endpoint.rtypes[0]}
        return "complete" if set(r.records) == want else "partial"

    def on_peek(self, r: ResultT | None) -> ActionT:
        if not self.gather(r):
            return self.next_read()
        try:
            plans = self.alias_plans(self.e)
        except _Freeze:
            if not self.cfg.has(Defect.STALE_CHECK_BEFORE_LOCK):
                raise
            plans = {}
        self.set(reads=())
        if self.cfg.has(Defect.STALE_CHECK_BEFORE_LOCK):
            # 2025: the one staleness check, on plan numbers alone, before the lock backoff.
            active = self.active_of(plans)
            self.set(active=active)
            if active is not None and active >= self.mine:
                if active > self.mine:
                    self.say(f"{self.e}: my {self.plan.label} is older than the active "
                             f"{plan_label(active)}; skipping")
                return self.next_endpoint()
            return self.acquire(Task.INSTALL)
        if self.active_of(plans) is not None and self.active_of(plans) > self.mine:  # type: ignore[operator]
            return self.next_endpoint()  # the flip would refuse anyway; no need to lock
        nxt = self.read_root(Phase.PEEK_ROOT, plans)
        if nxt is not None and all(n == self.mine for n in plans.values()):
            return nxt
        return self.acquire(Task.INSTALL)

    def on_peek_root(self, r: ResultT | None) -> ActionT:
        if self.root_state(r) == "complete":
            return self.peek_clean()  # my plan is active and its tree is whole
        self.say(f"{self.e}: the active {self.plan.label} tree is damaged; repairing it")
        return self.acquire(Task.INSTALL)

    # --- the lock ---

    def acquire(self, task: Task) -> ActionT:
        self.set(task=task, phase=Phase.AWAIT_LOCK_READ, lock=None, pending_lock=None)
        return ReadRecords(self.zone_id, lock_name(self.e), "TXT")

    def on_await_lock_read(self, r: ResultT | None) -> ActionT:
        assert isinstance(r, RecordsRead)
        lk = lock_name(self.e)
        now = self.st.now
        if not r.records:
            value = lock_value(self.cfg.name, int(now + self.cfg.lock_ttl))
            self.set(phase=Phase.AWAIT_LOCK_WRITE, status=Status.WORKING, pending_lock=value)
            return SubmitBatch(self.zone_id, (Change(Action.CREATE, lock_record(self.e, value)),),
                               Purpose.LOCK, f"{self.cfg.name} lock {self.e}")
        rs = r.records[0]
        parsed = parse_lock(rs.values[0]) if len(r.records) == 1 and len(rs.values) == 1 else None
        if parsed is None:
            raise _Freeze(f"lock {lk} holds {' '.join(rs.values)!r}, which is not "
                          f"'<holder> <expiry>'")
        holder, expiry = parsed
        if holder.startswith(PAUSE_PREFIX):
            if self.st.status is not Status.PAUSED:
                self.say(f"{self.e}: enactors are PAUSED ({holder}); DNS stays as it is")
            self.set(phase=Phase.BACKOFF, status=Status.PAUSED)
            return Sleep(self.cfg.poll_interval, "paused")
        if holder == self.cfg.name:
            # My own lock (e.g. I restarted): adopt its exact value; the next preamble
            # refreshes it. Nobody else can hold a lock in my name.
            self.set(lock=rs.values[0], attempt=0)
            return self.start_task()
        if expiry <= now:
            mine = lock_value(self.cfg.name, int(now + self.cfg.lock_ttl))
            self.say(f"lock {lk} held by {holder} expired at {clock_text(expiry)}; taking it over")
            self.set(phase=Phase.AWAIT_LOCK_WRITE, status=Status.WORKING, pending_lock=mine)
            return SubmitBatch(
                self.zone_id,
                (Change(Action.DELETE, rs), Change(Action.CREATE, lock_record(self.e, mine))),
                Purpose.TAKEOVER, f"{self.cfg.name} takes over {lk} from {holder}",
            )
        return self.backoff(f"lock {lk} held by {holder} until {clock_text(expiry)}")

    def backoff(self, why: str) -> ActionT:
        attempt = self.st.attempt + 1
        delay = backoff_delay(self.cfg, attempt, self.st.draws)
        self.say(f"{why}; backing off {delay}s (attempt {attempt})")
        self.set(phase=Phase.BACKOFF, status=Status.BACKING_OFF, attempt=attempt,
                 draws=self.st.draws + 1, lock=None)
        return Sleep(delay, "backoff")

    def on_backoff(self, r: ResultT | None) -> ActionT:
        assert self.st.task is not None
        return self.acquire(self.st.task)

    def on_await_lock_write(self, r: ResultT | None) -> ActionT:
        if isinstance(r, BatchRejected):
            return self.backoff(f"lost the race for lock {lock_name(self.e)}")
        assert isinstance(r, BatchAccepted)
        self.accepted()
        assert self.st.lock is not None
        holder, expiry = parse_lock(self.st.lock) or ("?", 0)
        self.say(f"took lock {lock_name(self.e)} until {clock_text(expiry)} "
                 f"({self.st.task.value if self.st.task else ''})")
        return self.start_task()

    def start_task(self) -> ActionT:
        self.set(attempt=0, status=Status.WORKING, worked=True)
        if self.st.task is Task.INSTALL:
            if self.cfg.has(Defect.STALE_CHECK_BEFORE_LOCK):
                return self.start_build()
            return self.read_group(Phase.CHECK, self.alias_keys())
        return self.start_clean()

    # --- install: check, build, flip ---

    def alias_keys(self) -> list[Key]:
        ts = self.endpoint.rtypes
        return [(self.e, t) for t in ts] + [(rollback_name(self.e), t) for t in ts]

    def on_check(self, r: ResultT | None) -> ActionT:
        """Fixed design: under the lock, re-read the alias before building anything."""
        if not self.gather(r):
            return self.next_read()
        plans = self.alias_plans(self.e)
        self.alias_plans(rollback_name(self.e))  # understood, or freeze
        active = self.active_of(plans)
        if active is not None and active > self.mine:
            self.say(f"{self.e}: active is {plan_label(active)}, newer than my "
                     f"{self.plan.label}; refusing to go backwards")
            return self.release(then_clean=False)
        if active is not None and all(n == self.mine for n in plans.values()):
            nxt = self.read_root(Phase.CHECK_ROOT, plans)
            assert nxt is not None
            return nxt
        return self.start_build()

    def on_check_root(self, r: ResultT | None) -> ActionT:
        if self.root_state(r) == "complete":
            self.say(f"{self.e}: {self.plan.label} is already active")
            return self.release(then_clean=False)
        return self.start_build()  # rebuilding the tree the alias points at repairs it

    def start_build(self) -> ActionT:
        leaves, members = tree_records(self.plan, self.endpoint, self.zone_id)
        # Leaves first, then the weighted root whose members alias them (Route 53 requires
        # alias targets to exist); UPSERT makes a rerun after a crash converge.
        changes = [Change(Action.UPSERT, rs) for rs in leaves + members]
        batches = chunk(changes, self.cfg.max_changes - 2)
        self.say(f"{self.e}: building {self.plan.label} tree ({len(leaves)} leaves, "
                 f"{len(members)} weighted members) in {len(batches)} batch(es)")
        self.set(batches=batches)
        return self.send_build()

    def send_build(self) -> ActionT:
        if not self.st.batches:
            return self.read_group(Phase.FLIP_READ, self.alias_keys())
        return self.submit(Phase.AWAIT_BUILD, self.st.batches[0], Purpose.BUILD)

    def on_await_build(self, r: ResultT | None) -> ActionT:
        if isinstance(r, BatchRejected):
            return self.rejected(r)
        self.accepted()
        self.set(batches=self.st.batches[1:])
        return self.send_build()

    def on_flip_read(self, r: ResultT | None) -> ActionT:
        if not self.gather(r):
            return self.next_read()
        if self.cfg.has(Defect.STALE_CHECK_BEFORE_LOCK):
            # 2025: the alias is read only to find the rollback target, never re-checked.
            try:
                plans = self.alias_plans(self.e)
            except _Freeze:
                plans = {}
        else:
            plans = self.alias_plans(self.e)
            self.alias_plans(rollback_name(self.e))  # understood, or freeze
            active = self.active_of(plans)
            if active is not None and active > self.mine:
                self.say(f"{self.e}: active became {plan_label(active)} while I built "
                         f"{self.plan.label}; refusing to go backwards")
                return self.release(then_clean=False)
            if active is not None and all(n == self.mine for n in plans.values()):
                self.say(f"{self.e}: {self.plan.label} tree rebuilt under the active alias")
                return self.release(then_clean=True)
        reads = self.st.reads
        nxt = self.read_root(Phase.FLIP_READ_ROOT, plans)
        self.set(reads=reads)  # the flip's compare-and-swap needs the alias values read
        if nxt is None:
            return self.flip(root_exists=False)
        return nxt

    def on_flip_read_root(self, r: ResultT | None) -> ActionT:
        assert isinstance(r, RecordsRead)
        self.set(want=())
        return self.flip(root_exists=bool(r.records))

    def flip(self, root_exists: bool) -> ActionT:
        ts = self.endpoint.rtypes
        new_root = root_name(self.mine, self.e)
        active = self.st.active
        zid = self.zone_id
        changes: list[Change] = []
        if self.cfg.has(Defect.ROLLBACK_CRASH_ON_MISSING) and not root_exists:
            # The 2025 code: look up the active tree to point the rollback at it; when
            # "current is nothing" the lookup throws, and every retry throws again.
            current = plan_label(active) if active is not None else "nothing"
            raise RollbackTargetMissing(
                f"{self.e}: cannot point {rollback_name(self.e)} at the active tree: "
                f"{current} {'has no records' if active is not None else ''}".rstrip()
            )
        if self.cfg.has(Defect.STALE_CHECK_BEFORE_LOCK):
            for t in ts:
                changes.append(Change(Action.UPSERT, alias_to(self.e, t, new_root, zid)))
        else:
            for t in ts:  # compare-and-swap: DELETE exactly what I read
                for old in self.got((self.e, t)):
                    changes.append(Change(Action.DELETE, old))
                changes.append(Change(Action.CREATE, alias_to(self.e, t, new_root, zid)))
        rb_note = "rollback left as it is"
        if active is not None and root_exists and active != self.mine:
            old_root = root_name(active, self.e)
            rb_note = f"rollback -> {plan_label(active)}"
            for t in ts:
                if self.cfg.has(Defect.STALE_CHECK_BEFORE_LOCK):
                    changes.append(Change(Action.UPSERT, alias_to(rollback_name(self.e), t, old_root, zid)))
                else:
                    for old in self.got((rollback_name(self.e), t)):
                        changes.append(Change(Action.DELETE, old))
                    changes.append(Change(Action.CREATE, alias_to(rollback_name(self.e), t, old_root, zid)))
        elif active is not None and not root_exists:
            # Nothing flows as nothing: the active tree is gone (the alias dangles). Installing
            # the newest plan is exactly the repair; there is no rollback target to record.
            rb_note = (f"active {plan_label(active)} tree is GONE (alias dangling): installing "
                       f"{self.plan.label} repairs it; rollback left as it is")
        self.set(note=rb_note)
        return self.submit(Phase.AWAIT_FLIP, changes, Purpose.FLIP)

    def on_await_flip(self, r: ResultT | None) -> ActionT:
        note = self.st.note
        self.set(note="")
        if isinstance(r, BatchRejected):
            return self.rejected(r)
        self.accepted()
        before = plan_label(self.st.active) if self.st.active is not None else "nothing"
        types = "/".join(self.endpoint.rtypes)
        self.say(f"FLIPPED {self.e} {types}: {before} -> {self.plan.label} ({note})")
        inst = dict(self.st.installed)
        inst[self.e] = self.mine
        self.set(installed=tuple(sorted(inst.items())), active=self.mine)
        return self.release(then_clean=True)

    # --- the cleaner ---

    def start_clean(self) -> ActionT:
        self.set(phase=Phase.CLEAN_LIST)
        return ListRecords(self.zone_id)

    def survey(self, records: Iterable[RecordSet]) -> tuple[list[int], dict[int, list[RecordSet]],
                                                          list[RecordSet], set[int]]:
        """What the cleaner would delete in a zone listing: (victims, trees, guards, reach).

        Fixed design: a victim is a tree at or below the keep horizon that neither the alias
        nor the rollback reaches; an alias or rollback the cleaner cannot read raises _Freeze.
        """
        e = self.e
        ts = self.endpoint.rtypes
        trees: dict[int, list[RecordSet]] = {}
        guards: list[RecordSet] = []
        reach: set[int] = set()
        for rs in records:
            n = tree_of(rs.name, e)
            if n is not None:
                trees.setdefault(n, []).append(rs)
            elif rs.name in (e, rollback_name(e)) and rs.rtype in ts:
                guards.append(rs)
                target = root_plan(rs.alias.dns_name, e) if rs.alias is not None else None
                if target is None and not self.cfg.has(Defect.CLEANER_BY_AGE):
                    raise _Freeze(f"{rs.name} {rs.rtype} is not an alias to a plan root of {e}; "
                                  f"the cleaner cannot tell what is reachable")
                if target is not None:
                    reach.add(target)
        horizon = self.mine - self.cfg.keep_plans  # trees at or below this are "old"
        if self.cfg.has(Defect.CLEANER_BY_AGE):
            victims = sorted(n for n in trees if n <= horizon)
        else:
            victims = sorted(n for n in trees if n <= horizon and n not in reach)
        return victims, trees, guards, reach

    def peek_clean(self) -> ActionT:
        """Idle with my plan active and whole: is there an old unreachable tree to clean?

        The cleaner is a reconciler, not only the tail of a flip: a crash between the flip and
        the clean batch (or a clean batch lost with its lock) would otherwise leave the old
        tree until the next plan's flip. One lock-free listing per loop; the cleaning itself
        happens under the lock, from a fresh listing. The 2025 cleaner (CLEANER_BY_AGE) ran
        only as the tail of a flip, so that defect keeps it so.
        """
        if self.cfg.has(Defect.CLEANER_BY_AGE):
            return self.next_endpoint()
        self.set(phase=Phase.CLEAN_PEEK)
        return ListRecords(self.zone_id)

    def on_clean_peek(self, r: ResultT | None) -> ActionT:
        assert isinstance(r, RecordsRead)
        try:
            victims = self.survey(r.records)[0]
        except _Freeze:
            # A lock-free listing may be torn (paginated); the cleaner decides under the lock,
            # from a fresh listing, and freezes there if it still does not understand it.
            self.say(f"cleaner {self.e}: the alias or rollback is not understood; "
                     f"taking the lock to look")
            return self.acquire(Task.CLEAN)
        if not victims:
            return self.next_endpoint()
        names = ", ".join(plan_label(n) for n in victims)
        self.say(f"cleaner {self.e}: {names} left behind, unreachable and old; cleaning")
        return self.acquire(Task.CLEAN)

    def on_clean_list(self, r: ResultT | None) -> ActionT:
        assert isinstance(r, RecordsRead)
        e = self.e
        victims, trees, guards, reach = self.survey(r.records)
        horizon = self.mine - self.cfg.keep_plans
        if not victims:
            return self.release(then_clean=False)
        deletes: list[Change] = []
        for n in victims:
            # Root members first, then leaves: never leave a member aliasing a missing leaf.
            recs = sorted(trees[n], key=lambda rs: (rs.weight is None, rs.name, rs.rtype, rs.set_identifier or ""))
            deletes.extend(Change(Action.DELETE, rs) for rs in recs)
        guard: tuple[Change, ...] = ()
        if not self.cfg.has(Defect.CLEANER_BY_AGE):
            # Conditional delete: the batch fails if the alias or rollback moved since I listed.
            guard = tuple(c for rs in guards for c in (Change(Action.DELETE, rs), Change(Action.CREATE, rs)))
        batches = tuple(guard + b for b in chunk(deletes, self.cfg.max_changes - 2 - len(guard)))
        names = ", ".join(plan_label(n) for n in victims)
        if self.cfg.has(Defect.CLEANER_BY_AGE):
            why = f"older than {plan_label(horizon + 1)}"
        else:
            kept = ", ".join(plan_label(n) for n in sorted(reach)) or "none"
            why = f"unreachable and older than {plan_label(horizon + 1)}; reachable: {kept}"
        self.say(f"cleaner {e}: deleting {names} ({why})")
        self.set(batches=batches)
        return self.send_clean()

    def send_clean(self) -> ActionT:
        if not self.st.batches:
            return self.release(then_clean=False)
        return self.submit(Phase.AWAIT_CLEAN, self.st.batches[0], Purpose.CLEAN)

    def on_await_clean(self, r: ResultT | None) -> ActionT:
        if isinstance(r, BatchRejected):
            return self.rejected(r)
        self.accepted()
        self.set(batches=self.st.batches[1:])
        return self.send_clean()

    # --- batch outcomes ---

    def accepted(self) -> None:
        # The batch re-created the lock with a fresh expiry: that is now its exact value.
        self.set(lock=self.st.pending_lock, pending_lock=None)

    def rejected(self, r: BatchRejected) -> ActionT:
        lk = f"name='{lock_name(self.e)}'"
        if any(lk in m for m in r.messages):
            self.say(f"lost lock {lock_name(self.e)} ({r.messages[0]}); starting "
                     f"{self.st.task.value if self.st.task else 'over'} again")
            assert self.st.task is not None
            self.set(batches=(), lock=None)
            return self.acquire(self.st.task)
        moved = (f"name='{self.e}'", f"name='{rollback_name(self.e)}'")
        if any(x in m for m in r.messages for x in moved):
            self.say(f"{self.e}: the alias or rollback moved under me ({r.messages[0]}); "
                     f"reading again")
            self.set(batches=())
            if self.st.task is Task.CLEAN:
                return self.start_clean()
            return self.read_group(Phase.FLIP_READ, self.alias_keys())
        if self.st.phase is Phase.AWAIT_CLEAN and self.st.batches and self.already_gone(r):
            # Deleting what is already gone is done (issue 4: every step idempotent), e.g. my
            # own batch applied, its answer lost and the request retried. The lock preamble
            # and the alias guard matched (no message names them), so nothing changed: the
            # lock is still mine as I hold it. List again and recompute.
            self.say(f"cleaner {self.e}: {len(r.messages)} record(s) already deleted "
                     f"(a retried batch?); listing again")
            self.set(batches=(), pending_lock=None)
            return self.start_clean()
        raise _Freeze(f"{self.e}: batch rejected for a reason I do not understand: "
                      f"{'; '.join(r.messages)}")

    def already_gone(self, r: BatchRejected) -> bool:
        """Is every message a "not found" for a tree record the clean batch meant to delete?"""
        gone = {msg_not_found(c.rrset.key) for c in self.st.batches[0]
                if c.action is Action.DELETE and tree_of(c.rrset.name, self.e) is not None}
        return bool(r.messages) and all(msg in gone for msg in r.messages)

    # --- release ---

    def release(self, then_clean: bool) -> ActionT:
        assert self.st.lock is not None
        self.set(phase=Phase.AWAIT_RELEASE, batches=(), want=(), reads=(),
                 task=Task.CLEAN if then_clean else None)
        return SubmitBatch(self.zone_id, (Change(Action.DELETE, lock_record(self.e, self.st.lock)),),
                           Purpose.RELEASE, f"{self.cfg.name} releases {lock_name(self.e)}")

    def on_await_release(self, r: ResultT | None) -> ActionT:
        self.set(lock=None)
        if self.st.task is Task.CLEAN:
            return self.acquire(Task.CLEAN)
        return self.next_endpoint()
