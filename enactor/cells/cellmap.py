"""The cell map: which cell each customer is in, and the DNS names that say so.

Pure core (`assign`, `CellMap`, `customer_changes`, `router_changes`), and a thin shell
(`write_cellmap`) that writes the result through the same Route 53 change API the enactors
use, in UPSERT batches.

Per-customer names (DAT453, "Reducing Regional Blast Radius"): every customer resolves
`ACCOUNT.ddb.us-east-1.api.aws`, a CNAME to its cell's name
(`dynamodb.cell-3.ddb.us-east-1.api.aws`). The cell is chosen by rendezvous hashing
(highest random weight): stable across runs and processes, and adding a cell moves only the
customers that the new cell wins (about 1/(N+1) of them), never one between two old cells.
An explicit move overrides the hash.

A move is one CNAME UPSERT. A resolver that cached the old CNAME keeps sending that customer to
the old cell until the cached copy expires: at most `CNAME_TTL` seconds after the UPSERT is
served (RFC 1035 §3.2.1, TTL is how long a record may be cached; RFC 2181 §5.2 / §8). So the
CNAME TTL is the bound on how long a moved customer can still reach the old cell, and the old
cell must keep serving that customer at least that long (tests/test_cells.py checks the bound
with the resolver's own cache).

The cell router is the standard design the talk compares against: the legacy regional name
`dynamodb.us-east-1.amazonaws.com` as a weighted CNAME set, one member per cell (Route 53
weighted routing: each answer picks one member with probability weight/sum). Not an alias
set: a Route 53 alias to another record set must name "a resource record set in the current
hosted zone" (AliasTarget.DNSName in the API model), and every cell has its own zone. The
router has no health of its own, so a cell whose name answers empty (the 2025 dangling alias)
is still picked: with N equal weights, 1/N of router answers end in an empty answer, for every
client of the regional name, whichever cell its data lives in. That is the shared regional
fate of the router; `enactor outage --cells` measures it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from authd.model.records import RecordSet
from authd.store.contract import Action, Change
from enactor.cells.layout import Cell, CellLayout

CNAME_TTL = 60  # seconds: a move reaches every client within this (plus propagation)
ROUTER_TTL = 60
ROUTER_WEIGHT = 1
MAX_BATCH_COST = 1000  # Route 53: at most 1,000 changes per batch, an UPSERT counting twice


def accounts(n: int) -> tuple[str, ...]:
    """A deterministic population of `n` 12-digit account ids (readable, distinct)."""
    return tuple(f"{111100000000 + 7919 * i:012d}" for i in range(1, n + 1))


def _score(cell: str, account: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{cell}/{account}".encode()).digest()[:8], "big")


def assign(account: str, cells: Sequence[str]) -> str:
    """Rendezvous hashing: the cell with the highest hash of (cell, account)."""
    if not cells:
        raise ValueError("no cells to assign to")
    return max(cells, key=lambda c: (_score(c, account), c))


@dataclass(frozen=True)
class CellMap:
    """Customer -> cell: the hash, plus explicit moves (which win)."""

    layout: CellLayout
    moves: Mapping[str, str] = field(default_factory=dict)

    def cell_of(self, account: str) -> Cell:
        name = self.moves.get(account) or assign(account, [c.name for c in self.layout.cells])
        return self.layout.find_cell(name)

    def move(self, account: str, cell: str) -> CellMap:
        """The map with `account` in `cell` (raises ValueError for an unknown cell)."""
        target = self.layout.find_cell(cell).name
        return CellMap(self.layout, {**self.moves, account: target})

    def by_cell(self, population: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {c.name: [] for c in self.layout.cells}
        for a in population:
            out[self.cell_of(a).name].append(a)
        return out


def customer_record(cmap: CellMap, account: str, ttl: int = CNAME_TTL) -> RecordSet:
    return RecordSet(cmap.layout.customer_name(account), "CNAME", ttl=ttl,
                     values=(cmap.cell_of(account).target,))


def customer_changes(cmap: CellMap, population: Iterable[str], ttl: int = CNAME_TTL) -> list[Change]:
    """UPSERT every customer's CNAME: idempotent, so writing the whole map again is safe."""
    return [Change(Action.UPSERT, customer_record(cmap, a, ttl)) for a in population]


def legacy_changes(layout: CellLayout, population: Iterable[str], target: str,
                   ttl: int = CNAME_TTL) -> list[Change]:
    """Today's uncellularised shape (the talk: "right now is a CNAME to the legacy name"):
    every customer name a CNAME to one regional name."""
    return [Change(Action.UPSERT, RecordSet(layout.customer_name(a), "CNAME", ttl=ttl, values=(target,)))
            for a in population]


def router_records(layout: CellLayout, ttl: int = ROUTER_TTL,
                   weights: Mapping[str, int] | None = None) -> list[RecordSet]:
    """The cell router: one weighted CNAME member per cell at the legacy regional name."""
    return [RecordSet(layout.router_name, "CNAME", ttl=ttl, set_identifier=c.name,
                      weight=(weights or {}).get(c.name, ROUTER_WEIGHT), values=(c.router_target,))
            for c in layout.cells]


def router_changes(layout: CellLayout, ttl: int = ROUTER_TTL,
                   weights: Mapping[str, int] | None = None) -> list[Change]:
    return [Change(Action.UPSERT, rs) for rs in router_records(layout, ttl, weights)]


def batches(changes: Sequence[Change], budget: int = MAX_BATCH_COST) -> list[list[Change]]:
    """Split into Route 53-sized batches (an UPSERT costs two of the 1,000)."""
    out: list[list[Change]] = []
    cur: list[Change] = []
    cost = 0
    for c in changes:
        k = 2 if c.action is Action.UPSERT else 1
        if cur and cost + k > budget:
            out.append(cur)
            cur, cost = [], 0
        cur.append(c)
        cost += k
    if cur:
        out.append(cur)
    return out


# --- the shell: write through the change API ---------------------------------------------


def write_changes(api: object, zone: str, changes: Sequence[Change], comment: str) -> int:
    """Submit `changes` to `zone` in UPSERT batches; returns the number of batches."""
    zid = api.find_zone_by_name(zone).id  # type: ignore[attr-defined]
    parts = batches(changes)
    for i, part in enumerate(parts, 1):
        api.change_batch(zid, part, f"{comment} ({i}/{len(parts)})")  # type: ignore[attr-defined]
    return len(parts)


def write_cellmap(api: object, cmap: CellMap, population: Sequence[str], *, router: bool = True,
                  ttl: int = CNAME_TTL) -> int:
    """Every customer's CNAME, then (optionally) the router; returns the batches sent."""
    n = write_changes(api, cmap.layout.customer_zone, customer_changes(cmap, population, ttl),
                      "cellmap: customer names")
    if router:
        n += write_changes(api, cmap.layout.router_zone, router_changes(cmap.layout), "cellmap: cell router")
    return n
