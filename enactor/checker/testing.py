"""Fixtures shared by the enactor's tests, the in-process outage and the checker.

Pure core over `authd.store.memstore.MemoryStore` (no sockets, no clock): a store seeded from the
shipped zones (plan-0001 active on both endpoints), plans made from the default capacity,
and a Sim with enactor-a, -b and -c.
"""

from __future__ import annotations

from pathlib import Path

from authd.store.contract import Action, Change
from authd.store.memstore import MemoryStore
from authd.zonefiles.seed import seed_store
from authd.zonefiles.zonefile import load_zone_dir
from enactor import machine as m
from enactor.checker.sim import DnsView, PlanList, Sim, SimDriver
from enactor.plan import Plan
from enactor.planner import Capacity, churn, default_capacity

ZONES = Path(__file__).resolve().parents[2] / "zones"
T0 = 1_760_940_000.0  # 2025-10-20 06:00:00 UTC
DUAL = "dynamodb.us-east-1.api.aws."
LEGACY = "dynamodb.us-east-1.amazonaws.com."
WATCH = [("api.aws.", DUAL, "A"), ("api.aws.", DUAL, "AAAA"), ("amazonaws.com.", LEGACY, "A")]
NAMES = ("enactor-a", "enactor-b", "enactor-c")
# A supervisor restarts a crashed enactor after this long (virtual): longer than two lock TTLs
# of the outage schedules, so while one crashed enactor is down the others get their turn.
RESTART_DELAY = 25.0


def seeded_store() -> MemoryStore:
    store = MemoryStore(clock=lambda: T0)
    zones = [z for z in load_zone_dir(ZONES) if z.origin in ("api.aws.", "amazonaws.com.")]
    seed_store(store, zones)
    return store


def plan_n(n: int, capacity: Capacity | None = None) -> Plan:
    """Plan n of the default capacity with a small weight change per plan (plan 1 = the zones)."""
    cap = capacity or default_capacity()
    return Plan(n, T0 - 3600 + n, cap if n == 1 else churn(cap, n))


def capacity_for(endpoints: str = "both") -> Capacity:
    """The default capacity restricted to `dual`, `legacy` or `both` endpoints."""
    dual, legacy = default_capacity()
    return {"dual": (dual,), "legacy": (legacy,), "both": (dual, legacy)}[endpoints]


def make_sim(defects: frozenset[m.Defect] = frozenset(), names: tuple[str, ...] = NAMES,
             store: MemoryStore | None = None, plans: int = 1, endpoints: str = "both",
             **cfg: object) -> Sim:
    store = store or seeded_store()
    pl = PlanList([plan_n(i, capacity_for(endpoints)) for i in range(1, plans + 1)])
    sim = Sim(store, pl, t0=T0, restart_delay=RESTART_DELAY)
    for n in names:
        sim.add(m.Config(n, defects=defects, **cfg))  # type: ignore[arg-type]
    return sim


def make_driver(sim: Sim, endpoints: str = "both") -> SimDriver:
    cap = capacity_for(endpoints)
    return SimDriver(sim, lambda n: Plan(n, sim.clock.t, churn(cap, n)), WATCH)


def zone_id(sim: Sim, zone: str = "api.aws.") -> str:
    return sim.api.find_zone_by_name(zone).id


def answers(sim: Sim, name: str = DUAL, rtype: str = "A") -> set[str]:
    """What authd's DNS would answer now (its real serving index, fed from the journal)."""
    view = getattr(sim, "_dns_view", None)
    if view is None or view.store is not sim.api:
        view = DnsView(sim.api)
        sim._dns_view = view  # type: ignore[attr-defined]
    return view.answers(name, rtype)


def delete_tree(sim: Sim, plan: int, endpoint: str = DUAL) -> None:
    """What an operator's typo does: delete a plan's tree by hand (not through an enactor)."""
    zone = "api.aws." if endpoint == DUAL else "amazonaws.com."
    zid = zone_id(sim, zone)
    recs = [rs for rs in sim.api.record_sets(zid) if rs.name.endswith(f"plan-{plan:04d}.{endpoint}")]
    recs.sort(key=lambda rs: rs.weight is None)
    sim.api.change_batch(zid, [Change(Action.DELETE, rs) for rs in recs], "operator typo")


def zone_contents(sim: Sim, zone: str = "api.aws.") -> frozenset[object]:
    """The zone's record sets, minus the SOA and the lock (which carry times)."""
    return frozenset(rs for rs in sim.api.record_sets(zone_id(sim, zone))
                     if rs.rtype != "SOA" and not rs.name.startswith("_lock."))
