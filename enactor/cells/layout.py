"""Cells: N independent copies of the DNS management system, each with its own names.

Pure core (no I/O, no clock): the cell layout as data, and the zones and plans it implies.
The talk (DAT453, "Reducing Regional Blast Radius"): "every cell is getting its own
independent DNS name, top level, and critically also its own DNS management system", so that
"the only shared fate in this world is that list of cell names". Here a cell owns

- its hosted zone, `cell-3.ddb.us-east-1.api.aws.`;
- its endpoints in that zone: `dynamodb.cell-3.ddb.us-east-1.api.aws.` (dual-stack, where
  customers' CNAMEs point) and `ipv4.cell-3.ddb.us-east-1.api.aws.` (IPv4-only, where the
  legacy regional name's cell router points), the same two shapes as the regional layout, so
  the 2025 schedule (two endpoints, two delayed enactors) runs in one cell unchanged;
- its locks (`_lock.<endpoint>`, in its own zone), its plan directory (`cell-3/plans`) and
  its enactor set (`enactor-a`, `-b`, `-c`: separate processes, each given only that plan
  directory, so nothing can make it touch another cell's zone).

Nothing in a cell names another cell. Without `--cells` nothing here is used and the
single regional layout (`dynamodb.us-east-1.api.aws`, `zones/`) is exactly as before.

`CellLayout.make(4)` is what `enactor outage --cells 4` and `enactor check --cells 2` use;
`enactor.lanes.core` rolls changes out over `CellLayout.cells` in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from authd.model.changes import zone_id_for
from enactor.plan import Endpoint, LoadBalancer, Plan, lock_name

REGION = "us-east-1"
MAX_CELLS = 12  # the address plan below gives each cell 20 addresses per documentation range
ENACTORS = ("enactor-a", "enactor-b", "enactor-c")  # one per AZ, as in the regional layout
NS_TTL = 172800
SOA_TTL = 900
NEGATIVE_TTL = 60  # SOA MINIMUM: how long resolvers may cache "no such record" (RFC 2308 §5)


@dataclass(frozen=True, slots=True)
class Cell:
    """One cell's DNS management: zone, endpoint names, locks, plan directory, enactors."""

    index: int  # 1-based: cell-1 .. cell-N
    name: str  # "cell-3"
    zone: str  # "cell-3.ddb.us-east-1.api.aws."
    endpoints: tuple[str, ...]  # (dual-stack customer target, IPv4-only router target)
    plan_dir: str  # relative to the layout's root, e.g. "cell-3/plans"
    enactors: tuple[str, ...] = ENACTORS

    @property
    def zone_id(self) -> str:
        return zone_id_for(self.zone)

    @property
    def target(self) -> str:
        """The name a customer's CNAME points at (dual-stack: A and AAAA)."""
        return self.endpoints[0]

    @property
    def router_target(self) -> str:
        """The name the legacy regional router points at (IPv4-only, like the legacy name)."""
        return self.endpoints[1]

    @property
    def lock_names(self) -> tuple[str, ...]:
        return tuple(lock_name(e) for e in self.endpoints)

    def capacity(self) -> tuple[Endpoint, ...]:
        """The cell's load balancers: its own addresses, distinct from every other cell's
        (RFC 5737 / RFC 3849 documentation ranges, 20 per cell)."""
        base = 20 * self.index
        dual = Endpoint(self.endpoints[0], self.zone, True, tuple(
            LoadBalancer(lb, f"192.0.2.{base + k}", f"2001:db8:c{self.index:x}::{k}", w)
            for k, (lb, w) in enumerate((("az1-lb1", 100), ("az2-lb1", 100), ("az3-lb1", 100)), 1)))
        v4 = Endpoint(self.endpoints[1], self.zone, False, tuple(
            LoadBalancer(lb, f"198.51.100.{base + k}", None, w)
            for k, (lb, w) in enumerate((("az1-lb1", 100), ("az2-lb1", 100), ("az3-lb1", 100)), 1)))
        return (dual, v4)

    def first_plan(self, created_at: float) -> Plan:
        return Plan(1, created_at, self.capacity())


@dataclass(frozen=True, slots=True)
class CellLayout:
    """The list of cells (the only thing the cells share) and the two shared-name zones."""

    cells: tuple[Cell, ...]
    region: str = REGION
    customer_zone: str = f"ddb.{REGION}.api.aws."  # ACCOUNT.ddb.us-east-1.api.aws CNAMEs
    router_zone: str = "amazonaws.com."
    router_name: str = f"dynamodb.{REGION}.amazonaws.com."  # the legacy regional name

    @classmethod
    def make(cls, n: int, region: str = REGION) -> CellLayout:
        if not 1 <= n <= MAX_CELLS:
            raise ValueError(f"--cells must be 1..{MAX_CELLS}, got {n}")
        parent = f"ddb.{region}.api.aws."
        cells = tuple(
            Cell(i, f"cell-{i}", f"cell-{i}.{parent}",
                 (f"dynamodb.cell-{i}.{parent}", f"ipv4.cell-{i}.{parent}"),
                 str(PurePath(f"cell-{i}") / "plans"))
            for i in range(1, n + 1))
        return cls(cells, region, parent, "amazonaws.com.", f"dynamodb.{region}.amazonaws.com.")

    def __len__(self) -> int:
        return len(self.cells)

    def find_cell(self, which: int | str) -> Cell:
        """Cell by index (3) or name ("cell-3"); raises ValueError naming the valid ones."""
        for c in self.cells:
            if which in (c.index, c.name, str(c.index)):
                return c
        raise ValueError(f"no cell {which!r}: this layout has cell-1..cell-{len(self.cells)}")

    def customer_name(self, account: str) -> str:
        return f"{account}.{self.customer_zone}"

    def targets_json(self, root: str) -> dict[str, Any]:
        """The cells as `enactor lanes --targets FILE` reads them: one rollout target per cell,
        in order, each its own plan store under `root` and its own endpoints."""
        return {"targets": [{"name": c.name, "plans": str(PurePath(root) / c.plan_dir),
                             "endpoints": list(c.endpoints)} for c in self.cells]}

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "customer_zone": self.customer_zone,
                "router": self.router_name,
                "cells": [{"name": c.name, "zone": c.zone, "endpoints": list(c.endpoints),
                           "locks": list(c.lock_names), "plans": c.plan_dir,
                           "enactors": list(c.enactors)} for c in self.cells]}


# --- the zones a layout implies (Route 53 JSON, the format of zones/*.json) ----------------


def apex_records(origin: str) -> list[dict[str, Any]]:
    ns = [f"ns1.{origin}", f"ns2.{origin}"]
    return [
        {"Name": origin, "Type": "NS", "TTL": NS_TTL, "ResourceRecords": [{"Value": n} for n in ns]},
        {"Name": origin, "Type": "SOA", "TTL": SOA_TTL,
         "ResourceRecords": [{"Value": f"{ns[0]} hostmaster.{origin} 1 7200 900 1209600 {NEGATIVE_TTL}"}]},
        *({"Name": n, "Type": "A", "TTL": NS_TTL, "ResourceRecords": [{"Value": "127.0.0.1"}]} for n in ns),
    ]


def cell_zone(cell: Cell, plan: Plan) -> dict[str, Any]:
    """The cell's zone with `plan`'s tree installed and active (what plan-0001 looks like
    in zones/api.aws.json for the regional layout)."""
    from enactor.machine import alias_to, tree_records

    sets: list[dict[str, Any]] = apex_records(cell.zone)
    for ep in plan.endpoints:
        leaves, members = tree_records(plan, ep, cell.zone_id)
        sets += [rs.to_route53() for rs in (*leaves, *members)]
        sets += [alias_to(ep.name, t, f"{plan.label}.{ep.name}", cell.zone_id).to_route53() for t in ep.rtypes]
    return {"ResourceRecordSets": sets}


def customer_zone(layout: CellLayout) -> dict[str, Any]:
    """The customer zone, empty of customers (the cell map writes their CNAMEs through the
    change API), delegating each cell's zone to it (RFC 1034 §4.2.2: a zone cut needs NS
    records in the parent, so a resolver can find the cell's own zone)."""
    sets = apex_records(layout.customer_zone)
    for c in layout.cells:
        sets.append({"Name": c.zone, "Type": "NS", "TTL": NS_TTL,
                     "ResourceRecords": [{"Value": f"ns1.{c.zone}"}, {"Value": f"ns2.{c.zone}"}]})
        sets += [{"Name": f"{ns}.{c.zone}", "Type": "A", "TTL": NS_TTL,  # glue (RFC 9471 §2.1)
                  "ResourceRecords": [{"Value": "127.0.0.1"}]} for ns in ("ns1", "ns2")]
    return {"ResourceRecordSets": sets}


def router_zone(layout: CellLayout) -> dict[str, Any]:
    """The legacy regional name's zone, without the router (the cell map writes it)."""
    return {"ResourceRecordSets": apex_records(layout.router_zone)}


ROOT_HINTS = """; the cells universe: one authd serves the root and every zone below it
.                        3600000 IN NS a.root-servers.universe.
a.root-servers.universe. 3600000 IN A  127.0.0.1
"""


def root_zone(layout: CellLayout) -> dict[str, Any]:
    """A root zone for the resolver's iterative mode (zones/universe does the same over
    three servers): it delegates the customer zone and the router's zone, with glue."""
    sets: list[dict[str, Any]] = [
        {"Name": ".", "Type": "NS", "TTL": 518400, "ResourceRecords": [{"Value": "a.root-servers.universe."}]},
        {"Name": ".", "Type": "SOA", "TTL": 86400, "ResourceRecords": [
            {"Value": "a.root-servers.universe. hostmaster.root-servers.universe. 1 1800 900 604800 86400"}]},
        {"Name": "a.root-servers.universe.", "Type": "A", "TTL": 518400, "ResourceRecords": [{"Value": "127.0.0.1"}]},
    ]
    for z in (layout.customer_zone, layout.router_zone):
        sets += [{"Name": z, "Type": "NS", "TTL": NS_TTL, "ResourceRecords": [{"Value": f"ns1.{z}"}]},
                 {"Name": f"ns1.{z}", "Type": "A", "TTL": NS_TTL, "ResourceRecords": [{"Value": "127.0.0.1"}]}]
    return {"ResourceRecordSets": sets}


def zone_files(layout: CellLayout, created_at: float) -> dict[str, dict[str, Any]]:
    """file name -> Route 53 JSON document, for `authd serve --zones DIR` (`root.json` is
    the root zone `.`)."""
    out = {f"{c.zone}json": cell_zone(c, c.first_plan(created_at)) for c in layout.cells}
    out["root.json"] = root_zone(layout)
    out[f"{layout.customer_zone}json"] = customer_zone(layout)
    out[f"{layout.router_zone}json"] = router_zone(layout)
    return out
