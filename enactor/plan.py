"""Plans: the planner's flat JSON description of every endpoint's desired tree, and their store.

Parsing and the record names a plan implies are pure core. `PlanStore` is the thin file shell
(a directory of `plan-0145.json` files; the talk keeps plan history in S3 "so we can go
forwards and back to old plans"); it reads no clock.

A plan is refused whole, with the file and the JSON path at fault, before anything is enacted:

    plans/plan-0145.json: $.endpoints[0].load_balancers[2].weight: must be an integer 0..255, got 300
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authd.model.records import MAX_WEIGHT, RecordError, canonical_name

SCHEMA_VERSION = 1
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PLAN_FILE = re.compile(r"^plan-(\d{4,})\.json$")


class PlanError(ValueError):
    """A plan that must not be enacted. `str()` reads `file: $.path: reason`."""

    def __init__(self, source: str, path: str, reason: str):
        self.source, self.path, self.reason = source, path, reason
        super().__init__(f"{source}: {path}: {reason}")


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    name: str  # a DNS label, e.g. "az1-lb1"; becomes the leaf `az1-lb1.plan-0145.<endpoint>`
    ipv4: str
    ipv6: str | None
    weight: int  # Route 53 weight 0..255; an AZ is drained by setting all its LBs to 0

    @property
    def az(self) -> str:
        """The availability zone, by naming convention `<az>-<lb>` (e.g. `az1-lb1` -> `az1`)."""
        return self.name.split("-", 1)[0]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str  # canonical, e.g. "dynamodb.us-east-1.api.aws."
    zone: str  # canonical hosted zone origin, e.g. "api.aws."
    dual_stack: bool  # A and AAAA; the legacy name is IPv4-only (A only)
    load_balancers: tuple[LoadBalancer, ...]

    @property
    def rtypes(self) -> tuple[str, ...]:
        return ("A", "AAAA") if self.dual_stack else ("A",)


@dataclass(frozen=True, slots=True)
class Plan:
    number: int
    created_at: float  # epoch seconds (the planner's clock, recorded; never read here)
    endpoints: tuple[Endpoint, ...]
    schema: int = SCHEMA_VERSION

    @property
    def label(self) -> str:
        return plan_label(self.number)

    def endpoint(self, name: str) -> Endpoint | None:
        name = canonical_name(name)
        return next((e for e in self.endpoints if e.name == name), None)

    # --- JSON ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "plan": self.number,
            "created": _dt.datetime.fromtimestamp(self.created_at, _dt.UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "endpoints": [
                {
                    "name": e.name,
                    "zone": e.zone,
                    "dual_stack": e.dual_stack,
                    "load_balancers": [
                        {"name": lb.name, "ipv4": lb.ipv4, "ipv6": lb.ipv6, "weight": lb.weight}
                        if e.dual_stack
                        else {"name": lb.name, "ipv4": lb.ipv4, "weight": lb.weight}
                        for lb in e.load_balancers
                    ],
                }
                for e in self.endpoints
            ],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"


def plan_label(number: int) -> str:
    """Readable plan names for operators at 3 a.m. (the talk's lesson about UUIDs)."""
    return f"plan-{number:04d}"


# --- the record names a plan implies (the project's naming convention, COMMON.md) ----------


def root_name(number: int, endpoint: str) -> str:
    return f"{plan_label(number)}.{endpoint}"


def leaf_name(lb: str, number: int, endpoint: str) -> str:
    return f"{lb}.{plan_label(number)}.{endpoint}"


def lock_name(endpoint: str) -> str:
    return f"_lock.{endpoint}"


def rollback_name(endpoint: str) -> str:
    return f"_rollback.{endpoint}"


_TREE_NAME = re.compile(r"^(?:([a-z0-9-]+)\.)?plan-(\d{4,})\.(.+)$")


def tree_of(name: str, endpoint: str) -> int | None:
    """The plan number whose tree `name` belongs to (root or leaf of `endpoint`), else None."""
    m = _TREE_NAME.match(name)
    if m is None or m.group(3) != endpoint:
        return None
    return int(m.group(2))


def root_plan(name: str, endpoint: str) -> int | None:
    """The plan number if `name` is exactly a plan root of `endpoint` (`plan-NNNN.<endpoint>`)."""
    m = _TREE_NAME.match(name)
    if m is None or m.group(1) is not None or m.group(3) != endpoint:
        return None
    return int(m.group(2))


# --- strict parsing ---------------------------------------------------------------------


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, reason: str) -> PlanError:
        return PlanError(self.source, path, reason)

    def obj(self, v: Any, path: str, required: set[str], optional: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
        if not isinstance(v, dict):
            raise self.fail(path, f"must be an object, got {_show(v)}")
        for k in v:
            if k not in required and k not in optional:
                raise self.fail(f"{path}.{k}", "unknown field")
        for k in sorted(required):
            if k not in v:
                raise self.fail(f"{path}.{k}", "missing")
        return v

    def int_in(self, v: Any, path: str, lo: int, hi: int | None) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise self.fail(path, f"must be an integer {rng}, got {_show(v)}")
        return v

    def string(self, v: Any, path: str) -> str:
        if not isinstance(v, str) or not v:
            raise self.fail(path, f"must be a non-empty string, got {_show(v)}")
        return v


def _show(v: Any) -> str:
    return json.dumps(v) if isinstance(v, str | int | float | bool | type(None)) else type(v).__name__


def parse_plan(data: Any, source: str = "<plan>") -> Plan:
    """Validate a decoded plan document. Raises PlanError naming the source and JSON path."""
    c = _Checker(source)
    doc = c.obj(data, "$", {"schema", "plan", "created", "endpoints"})
    if doc["schema"] != SCHEMA_VERSION:
        raise c.fail("$.schema", f"unknown schema version {_show(doc['schema'])} (this enactor reads {SCHEMA_VERSION})")
    number = c.int_in(doc["plan"], "$.plan", 1, 9999_9999)
    created_text = c.string(doc["created"], "$.created")
    try:
        created = _dt.datetime.fromisoformat(created_text.replace("Z", "+00:00"))
    except ValueError:
        raise c.fail("$.created", f"must be an ISO 8601 UTC time, got {_show(created_text)}") from None
    if created.tzinfo is None:
        raise c.fail("$.created", f"must carry a time zone (e.g. Z), got {_show(created_text)}")
    eps = doc["endpoints"]
    if not isinstance(eps, list) or not eps:
        raise c.fail("$.endpoints", f"must be a non-empty list, got {_show(eps)}")
    endpoints: list[Endpoint] = []
    seen_eps: set[str] = set()
    for i, e in enumerate(eps):
        ep = f"$.endpoints[{i}]"
        e = c.obj(e, ep, {"name", "zone", "dual_stack", "load_balancers"})
        try:
            name = canonical_name(c.string(e["name"], f"{ep}.name"))
        except RecordError as exc:
            raise c.fail(f"{ep}.name", str(exc)) from None
        try:
            zone = canonical_name(c.string(e["zone"], f"{ep}.zone"))
        except RecordError as exc:
            raise c.fail(f"{ep}.zone", str(exc)) from None
        if name == zone or not name.endswith("." + zone):
            raise c.fail(f"{ep}.name", f"{name} is not below its zone {zone}")
        if name in seen_eps:
            raise c.fail(f"{ep}.name", f"endpoint {name} is listed twice")
        seen_eps.add(name)
        if not isinstance(e["dual_stack"], bool):
            raise c.fail(f"{ep}.dual_stack", f"must be true or false, got {_show(e['dual_stack'])}")
        dual = e["dual_stack"]
        lbs_doc = e["load_balancers"]
        if not isinstance(lbs_doc, list) or not lbs_doc:
            raise c.fail(f"{ep}.load_balancers", f"must be a non-empty list, got {_show(lbs_doc)}")
        lbs: list[LoadBalancer] = []
        seen_lbs: set[str] = set()
        for j, lb in enumerate(lbs_doc):
            lp = f"{ep}.load_balancers[{j}]"
            lb = c.obj(lb, lp, {"name", "ipv4", "weight"} | ({"ipv6"} if dual else set()), {"ipv6"})
            lb_name = c.string(lb["name"], f"{lp}.name")
            if not _LABEL.match(lb_name):
                raise c.fail(f"{lp}.name", f"must be one lower-case DNS label (a-z, 0-9, -), got {_show(lb_name)}")
            if lb_name in seen_lbs:
                raise c.fail(f"{lp}.name", f"load balancer {lb_name} is listed twice")
            seen_lbs.add(lb_name)
            v4 = c.string(lb["ipv4"], f"{lp}.ipv4")
            try:
                v4 = str(ipaddress.IPv4Address(v4))
            except ValueError:
                raise c.fail(f"{lp}.ipv4", f"must be an IPv4 address, got {_show(v4)}") from None
            v6 = lb.get("ipv6")
            if dual:
                v6s = c.string(v6, f"{lp}.ipv6")
                try:
                    v6 = str(ipaddress.IPv6Address(v6s))
                except ValueError:
                    raise c.fail(f"{lp}.ipv6", f"must be an IPv6 address, got {_show(v6s)}") from None
            elif v6 is not None:
                raise c.fail(f"{lp}.ipv6", "this endpoint is IPv4-only (dual_stack is false)")
            weight = c.int_in(lb["weight"], f"{lp}.weight", 0, MAX_WEIGHT)
            lbs.append(LoadBalancer(lb_name, v4, v6, weight))
        endpoints.append(Endpoint(name, zone, dual, tuple(lbs)))
    return Plan(number, created.timestamp(), tuple(endpoints))


def loads_plan(text: str, source: str = "<plan>") -> Plan:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(source, "$", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return parse_plan(data, source)


# --- the plan store (file shell) -----------------------------------------------------------


class PlanStore:
    """A directory of immutable plans, `plan-0145.json`, with full history.

    Writes are atomic (write a temporary file, fsync, rename), so a reader sees a whole plan
    or none. A plan number, once written, never changes: writing a different plan under an
    existing number raises, writing the identical plan again is a no-op (idempotent).
    """

    def __init__(self, directory: str | os.PathLike[str]):
        self.dir = Path(directory)

    def path(self, number: int) -> Path:
        return self.dir / f"{plan_label(number)}.json"

    def numbers(self) -> list[int]:
        if not self.dir.is_dir():
            return []
        out = []
        for p in self.dir.iterdir():
            m = _PLAN_FILE.match(p.name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def latest_number(self) -> int | None:
        ns = self.numbers()
        return ns[-1] if ns else None

    def get(self, number: int) -> Plan | None:
        """The plan, or None when there is no such file. Raises PlanError if it is invalid."""
        p = self.path(number)
        try:
            text = p.read_text()
        except FileNotFoundError:
            return None
        plan = loads_plan(text, str(p))
        if plan.number != number:
            raise PlanError(str(p), "$.plan", f"file name says {number}, document says {plan.number}")
        return plan

    def find(self, number: int) -> Plan:
        plan = self.get(number)
        if plan is None:
            raise PlanError(str(self.path(number)), "$", "no such plan")
        return plan

    def latest(self) -> Plan | None:
        """The newest plan, or None when the store is empty. Raises PlanError if it is invalid
        (the newest plan is refused; an older one is never enacted in its place)."""
        n = self.latest_number()
        return None if n is None else self.get(n)

    def history(self) -> Iterator[Plan]:
        for n in self.numbers():
            plan = self.get(n)
            if plan is not None:
                yield plan

    def put(self, plan: Plan) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        p = self.path(plan.number)
        text = plan.dumps()
        if p.exists():
            if p.read_text() == text:
                return p
            raise PlanError(str(p), "$.plan", f"{plan.label} already exists with different contents; plans are immutable")
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        return p
