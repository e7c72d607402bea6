"""The planner: capacity and operator intent in, the next plan out.

Pure core: `next_plan(capacity, previous, now)` and the capacity edits (`add_capacity`,
`shift_weight`, `drain_az`, `churn`) are plain functions. The shell (`run_planner`, used by
`enactor planner`) watches a capacity file and writes plan N+1 to the plan store whenever it
changes, or on a steady rate with `--every`. Plans are only ever added, never rewritten.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enactor.plan import Endpoint, LoadBalancer, Plan, PlanError, PlanStore, parse_plan

Capacity = tuple[Endpoint, ...]


def default_capacity() -> Capacity:
    """The load balancers the shipped zones (`zones/*.json`, plan-0001) describe."""
    dual = Endpoint(
        "dynamodb.us-east-1.api.aws.", "api.aws.", True,
        (
            LoadBalancer("az1-lb1", "192.0.2.11", "2001:db8:1::11", 100),
            LoadBalancer("az1-lb2", "192.0.2.12", "2001:db8:1::12", 50),
            LoadBalancer("az2-lb1", "198.51.100.21", "2001:db8:2::21", 100),
            LoadBalancer("az3-lb1", "203.0.113.31", "2001:db8:3::31", 100),
        ),
    )
    legacy = Endpoint(
        "dynamodb.us-east-1.amazonaws.com.", "amazonaws.com.", False,
        (
            LoadBalancer("az1-lb1", "192.0.2.111", None, 100),
            LoadBalancer("az2-lb1", "198.51.100.121", None, 100),
            LoadBalancer("az3-lb1", "203.0.113.131", None, 100),
        ),
    )
    return (dual, legacy)


def next_plan(capacity: Capacity, previous: Plan | None, now: float, force: bool = False) -> Plan | None:
    """Plan N+1 when the capacity differs from plan N (or `force`); None when nothing changed."""
    if previous is not None and previous.endpoints == capacity and not force:
        return None
    number = previous.number + 1 if previous is not None else 1
    return Plan(number, float(int(now)), capacity)


def _edit(capacity: Capacity, endpoint: str | None, fn: Callable[[Endpoint], Endpoint]) -> Capacity:
    out = tuple(fn(e) if endpoint in (None, e.name, e.name.rstrip(".")) else e for e in capacity)
    if out == capacity and endpoint is not None and not any(endpoint in (e.name, e.name.rstrip(".")) for e in capacity):
        raise ValueError(f"no endpoint {endpoint}")
    return out


def add_capacity(capacity: Capacity, endpoint: str, lb: LoadBalancer) -> Capacity:
    def fn(e: Endpoint) -> Endpoint:
        if any(x.name == lb.name for x in e.load_balancers):
            raise ValueError(f"{e.name} already has a load balancer {lb.name}")
        if e.dual_stack and lb.ipv6 is None:
            raise ValueError(f"{e.name} is dual-stack: {lb.name} needs an IPv6 address")
        new = lb if e.dual_stack else dataclasses.replace(lb, ipv6=None)
        return dataclasses.replace(e, load_balancers=e.load_balancers + (new,))
    return _edit(capacity, endpoint, fn)


def shift_weight(capacity: Capacity, lb_name: str, weight: int, endpoint: str | None = None) -> Capacity:
    if not 0 <= weight <= 255:
        raise ValueError(f"weight must be 0..255, got {weight}")
    found = False

    def fn(e: Endpoint) -> Endpoint:
        nonlocal found
        lbs = []
        for lb in e.load_balancers:
            if lb.name == lb_name:
                found = True
                lb = dataclasses.replace(lb, weight=weight)
            lbs.append(lb)
        return dataclasses.replace(e, load_balancers=tuple(lbs))
    out = _edit(capacity, endpoint, fn)
    if not found:
        raise ValueError(f"no load balancer {lb_name}")
    return out


def drain_az(capacity: Capacity, az: str, endpoint: str | None = None) -> Capacity:
    """Every load balancer of availability zone `az` to weight 0 (traffic shifts away)."""
    found = False

    def fn(e: Endpoint) -> Endpoint:
        nonlocal found
        lbs = []
        for lb in e.load_balancers:
            if lb.az == az:
                found = True
                lb = dataclasses.replace(lb, weight=0)
            lbs.append(lb)
        return dataclasses.replace(e, load_balancers=tuple(lbs))
    out = _edit(capacity, endpoint, fn)
    if not found:
        raise ValueError(f"no load balancers in {az}")
    return out


def churn(capacity: Capacity, n: int) -> Capacity:
    """A small deterministic weight change (the n-th), for steady-rate experiments and demos:
    the first load balancer of each endpoint gets weight 100 + (n mod 50)."""
    out = []
    for e in capacity:
        first, *rest = e.load_balancers
        out.append(dataclasses.replace(e, load_balancers=(dataclasses.replace(first, weight=100 + n % 50), *rest)))
    return tuple(out)


# --- capacity files --------------------------------------------------------------------


def capacity_to_json(capacity: Capacity) -> dict[str, Any]:
    doc = Plan(1, 0.0, capacity).to_json()
    return {"endpoints": doc["endpoints"]}


def load_capacity(path: str | Path) -> Capacity:
    """A capacity file: `{"endpoints": [...]}`, the same shape as a plan's endpoints."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise PlanError(str(p), "$", f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict) or set(doc) != {"endpoints"}:
        raise PlanError(str(p), "$", 'must be an object with exactly one field, "endpoints"')
    return parse_plan({"schema": 1, "plan": 1, "created": "1970-01-01T00:00:00Z", **doc}, str(p)).endpoints


def save_capacity(path: str | Path, capacity: Capacity) -> None:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(capacity_to_json(capacity), indent=2) + "\n")
    tmp.replace(p)


def emit(store: PlanStore, capacity: Capacity, now: float, force: bool = False) -> Plan | None:
    """Write the next plan if the capacity changed (or `force`); returns it, or None."""
    plan = next_plan(capacity, store.latest(), now, force=force)
    if plan is not None:
        store.put(plan)
    return plan
