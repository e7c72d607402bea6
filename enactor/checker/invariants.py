"""The invariants the interleaving checker (`enactor.checker.check`) and the saga tests hold the enactor to.

Pure core: functions over a Store's contents and the enactors' frozen `machine.State`s; no
clock, no I/O. Each check returns `Violation`s naming the invariant and saying what is wrong
in an operator's words. The invariants (issue 6):

- RESOLVES: each stable name resolves, through the answer logic, to at least one address, for
  A and AAAA (A only for an IPv4-only endpoint), whichever weighted member a query picks.
- MONOTONIC: the active plan never goes backwards (the fixed design's fenced flip).
- NO_CRASH: no enactor crashed. A FROZEN enactor is allowed; the checker reports it.
- ONE_LOCK: at most one live lock holder per endpoint, as seen through the change API: the
  lock record holds one well-formed value, and every enactor that believes it holds a live
  lock holds exactly that value.
- ROLLBACK: the rollback record points at an existing tree, or is absent (explicitly empty).
- EVENTUALLY: under a fair schedule the newest plan becomes active (checked at quiescence and
  at the end of fair runs).

Resolution uses the data plane's answer logic (`authd.dns.index.ServingIndex.resolve_all`, fed
the store's snapshot journal entries) when it is installed, and otherwise a small alias and
weighted-member walk over the store (`walk_outcomes`) with the same rules (aliases followed
like symlinks; a weighted set answers one member with weight > 0, any member when all are 0).
Both are cached by the store's `state_key()`: far fewer distinct zone contents than states.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from authd.model.records import RecordSet
from enactor import machine as m
from enactor.plan import Endpoint, lock_name, rollback_name, root_plan


class Inv(enum.Enum):
    RESOLVES = "resolves"
    MONOTONIC = "monotonic"
    NO_CRASH = "no-crash"
    ONE_LOCK = "one-lock"
    ROLLBACK = "rollback"
    EVENTUALLY = "eventually"


INV_HELP = {
    Inv.RESOLVES: "each stable name answers >= 1 address for A (and AAAA when dual-stack)",
    Inv.MONOTONIC: "the active plan number never decreases",
    Inv.NO_CRASH: "no enactor crashed (FROZEN is allowed and reported)",
    Inv.ONE_LOCK: "at most one live lock holder per endpoint, as the change API shows it",
    Inv.ROLLBACK: "the rollback record points at an existing tree or is absent",
    Inv.EVENTUALLY: "under a fair schedule the newest plan ends up active",
}


def parse_invariants(text: str) -> frozenset[Inv]:
    if text.strip() in ("", "all"):
        return frozenset(Inv)
    known = {i.value: i for i in Inv}
    out = set()
    for part in text.split(","):
        part = part.strip()
        if part not in known:
            raise ValueError(f"unknown invariant {part!r}; known: all, {', '.join(known)}")
        out.add(known[part])
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Violation:
    inv: Inv
    detail: str

    def text(self) -> str:
        return f"{self.inv.value}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Watched:
    """A stable name the checker watches: its zone, and the types it must answer."""

    name: str
    zone: str
    rtypes: tuple[str, ...]


def watched(endpoints: Iterable[Endpoint]) -> tuple[Watched, ...]:
    return tuple(Watched(e.name, e.zone, e.rtypes) for e in endpoints)


# --- resolution ----------------------------------------------------------------------------


class StoreLike(Protocol):
    """What the invariants read: the Store protocol's point reads plus `state_key`/`snapshot`."""

    def find_zone_by_name(self, name: str) -> Any: ...
    def get_record_sets(self, zone_id: str, name: str, rtype: str) -> list[RecordSet]: ...
    def snapshot(self) -> list[Any]: ...
    def state_key(self) -> Hashable: ...


def walk_outcomes(get: Callable[[str, str], Sequence[RecordSet]], name: str, rtype: str,
                  depth: int = 8) -> list[tuple[str, ...]]:
    """Every answer (tuple of addresses) a query for (name, rtype) can get: aliases followed
    like symlinks, one weighted member per outcome (weight > 0, or any when all are 0, as
    Route 53 does). An empty tuple is NOERROR with zero answers: the outage."""
    if depth == 0:
        return [()]
    sets = list(get(name, rtype))
    if not sets:
        return [()]
    if any(rs.weight is not None for rs in sets):
        live = [rs for rs in sets if rs.weight] or sets
        out: list[tuple[str, ...]] = []
        for rs in live:
            out.extend(_one(get, rs, rtype, depth))
        return out
    return _one(get, sets[0], rtype, depth)


def _one(get: Callable[[str, str], Sequence[RecordSet]], rs: RecordSet, rtype: str,
         depth: int) -> list[tuple[str, ...]]:
    if rs.alias is not None:
        return walk_outcomes(get, rs.alias.dns_name, rtype, depth - 1)
    return [tuple(rs.values)]


def _serving_index() -> Any:
    try:
        from authd.dns.index import ServingIndex  # the data plane's real answer logic
    except ImportError:
        return None
    return ServingIndex if hasattr(ServingIndex, "resolve_all") else None


ANSWER_LOGIC = "authd.dns.index.ServingIndex.resolve_all" if _serving_index() else "enactor.checker.invariants.walk_outcomes"


class Resolver:
    """Answers 'does every pick give >= 1 address?' per watched name, cached by store contents."""

    def __init__(self, names: Sequence[Watched], use_index: bool | None = None):
        self.names = tuple(names)
        self.index_cls = _serving_index() if use_index in (None, True) else None
        if use_index and self.index_cls is None:
            raise RuntimeError("authd.dns.index.ServingIndex.resolve_all is not installed")
        self.cache: dict[Hashable, tuple[tuple[str, str, int, int], ...]] = {}
        self.zone_ids: dict[str, str] = {}

    def counts(self, store: StoreLike) -> tuple[tuple[str, str, int, int], ...]:
        """Per (name, type): (name, type, fewest addresses over picks, most addresses)."""
        key = store.state_key()
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        if self.index_cls is not None:
            idx = self.index_cls()
            for entry in store.snapshot():
                idx.apply(entry)

            def outcomes(name: str, rtype: str) -> list[tuple[str, ...]]:
                res = idx.resolve_all(name, rtype)
                return [vals if rcode == "NOERROR" else () for rcode, vals in res] or [()]
        else:
            def outcomes(name: str, rtype: str) -> list[tuple[str, ...]]:
                zid = self._zid(store, name)
                return walk_outcomes(lambda n, t: store.get_record_sets(zid, n, t), name, rtype)
        out = []
        for w in self.names:
            for t in w.rtypes:
                lens = [len(o) for o in outcomes(w.name, t)]
                out.append((w.name, t, min(lens), max(lens)))
        res = tuple(out)
        self.cache[key] = res
        return res

    def _zid(self, store: StoreLike, name: str) -> str:
        w = next(w for w in self.names if w.name == name)
        zid = self.zone_ids.get(w.zone)
        if zid is None:
            zid = self.zone_ids[w.zone] = store.find_zone_by_name(w.zone).id
        return zid


# --- store-level invariants ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """What one store content means for the invariants (cached by state_key)."""

    violations: tuple[Violation, ...]
    active: tuple[tuple[str, int | None], ...]  # endpoint -> plan its A alias points at
    locks: tuple[tuple[str, str | None], ...]  # endpoint -> the lock value (None: no lock)


class StoreChecker:
    def __init__(self, names: Sequence[Watched], use_index: bool | None = None):
        self.names = tuple(names)
        self.resolver = Resolver(names, use_index)
        self.cache: dict[Hashable, StoreFacts] = {}

    def facts(self, store: StoreLike) -> StoreFacts:
        key = store.state_key()
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        vs: list[Violation] = []
        for name, t, lo, _hi in self.resolver.counts(store):
            if lo == 0:
                vs.append(Violation(Inv.RESOLVES, f"{name} {t} answers NOERROR with 0 addresses "
                                                   f"(for at least one weighted pick)"))
        active: list[tuple[str, int | None]] = []
        locks: list[tuple[str, str | None]] = []
        for w in self.names:
            zid = self.resolver._zid(store, w.name)
            get = lambda n, t, zid=zid: store.get_record_sets(zid, n, t)  # noqa: E731
            a = get(w.name, "A")
            active.append((w.name, root_plan(a[0].alias.dns_name, w.name)
                           if len(a) == 1 and a[0].alias is not None else None))
            for t in w.rtypes:
                for rs in get(rollback_name(w.name), t):
                    if rs.alias is None:
                        vs.append(Violation(Inv.ROLLBACK, f"{rollback_name(w.name)} {t} is not an alias"))
                    elif not get(rs.alias.dns_name, t):
                        vs.append(Violation(Inv.ROLLBACK, f"{rollback_name(w.name)} {t} points at "
                                                          f"{rs.alias.dns_name}, which does not exist"))
            lk = get(lock_name(w.name), "TXT")
            if not lk:
                locks.append((w.name, None))
            elif len(lk) != 1 or len(lk[0].values) != 1 or m.parse_lock(lk[0].values[0]) is None:
                vals = " ".join(v for rs in lk for v in rs.values)
                vs.append(Violation(Inv.ONE_LOCK, f"{lock_name(w.name)} holds {vals!r}: not one holder"))
                locks.append((w.name, None))
            else:
                locks.append((w.name, lk[0].values[0]))
        f = StoreFacts(tuple(vs), tuple(active), tuple(locks))
        self.cache[key] = f
        return f


# --- enactor-level invariants -----------------------------------------------------------------


def lock_believers(names: Sequence[str], states: Sequence[m.State], now: float) -> dict[str, list[tuple[str, str]]]:
    """endpoint -> [(enactor, lock value)] for every enactor that believes it holds a live lock."""
    out: dict[str, list[tuple[str, str]]] = {}
    for who, st in zip(names, states, strict=False):
        if st.lock is None or st.plan is None or st.ep >= len(st.plan.endpoints):
            continue
        parsed = m.parse_lock(st.lock)
        if parsed is not None and parsed[1] > now:
            out.setdefault(st.plan.endpoints[st.ep].name, []).append((who, st.lock))
    return out


def check_locks(facts: StoreFacts, names: Sequence[str], states: Sequence[m.State],
                now: float) -> list[Violation]:
    vs = []
    store_locks = dict(facts.locks)
    for ep, holders in lock_believers(names, states, now).items():
        if len(holders) > 1:
            vs.append(Violation(Inv.ONE_LOCK, f"{', '.join(h for h, _ in holders)} all believe "
                                              f"they hold a live {lock_name(ep)}"))
        for who, value in holders:
            if store_locks.get(ep) != value:
                vs.append(Violation(Inv.ONE_LOCK, f"{who} believes it holds {lock_name(ep)} as "
                                                  f"{value}, the change API shows {store_locks.get(ep)}"))
    return vs


def check_monotonic(before: StoreFacts, after: StoreFacts) -> list[Violation]:
    vs = []
    prev = dict(before.active)
    for ep, n in after.active:
        p = prev.get(ep)
        if p is not None and (n is None or n < p):
            now_txt = f"plan-{n:04d}" if n is not None else "nothing"
            vs.append(Violation(Inv.MONOTONIC, f"{ep} went backwards: plan-{p:04d} -> {now_txt}"))
    return vs


def check_newest(facts: StoreFacts, endpoints: Iterable[str], newest: int) -> list[Violation]:
    act = dict(facts.active)
    out = []
    for ep in endpoints:
        n = act.get(ep)
        if n != newest:
            at = f"plan-{n:04d}" if n is not None else "nothing"
            out.append(Violation(Inv.EVENTUALLY, f"{ep} is at {at}, not the newest plan-{newest:04d}"))
    return out
