"""Cells (issue 16): the layout shares no lock, zone, plan directory or enactor between cells;
the cell map is stable and moves few customers; a move is bounded by the CNAME TTL."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import pytest

from authd.zonefiles.zonefile import check_zone, parse_route53_json
from enactor.cells.cellmap import (
    CNAME_TTL,
    CellMap,
    accounts,
    assign,
    batches,
    customer_changes,
    router_records,
)
from enactor.cells.layout import CellLayout, zone_files
from enactor.machine import tree_records
from enactor.plan import loads_plan
from resolver.cache import Cache, CachePolicy, cache_key

REPO = Path(__file__).resolve().parent.parent


def test_pure_modules_import_no_io() -> None:
    for mod in ("cells/layout", "cells/cellmap"):
        tree = ast.parse((REPO / "enactor" / f"{mod}.py").read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & {"trio", "socket", "time", "random"}, (mod, names)


def test_cells_share_no_zone_lock_plan_dir_or_name() -> None:
    layout = CellLayout.make(4)
    assert [c.name for c in layout.cells] == ["cell-1", "cell-2", "cell-3", "cell-4"]
    for kind in ("zone", "plan_dir", "zone_id"):
        values = [getattr(c, kind) for c in layout.cells]
        assert len(set(values)) == 4, kind
    locks = [lk for c in layout.cells for lk in c.lock_names]
    assert len(set(locks)) == 8
    for c in layout.cells:
        # every name a cell's enactors write is inside its own zone, and no other cell's zone
        for name in (*c.endpoints, *c.lock_names):
            assert name.endswith("." + c.zone)
            assert not any(name.endswith("." + o.zone) for o in layout.cells if o is not c)
        addrs = {lb.ipv4 for e in c.capacity() for lb in e.load_balancers}
        others = {lb.ipv4 for o in layout.cells if o is not c for e in o.capacity() for lb in e.load_balancers}
        assert not addrs & others
    assert layout.find_cell(2) is layout.find_cell("cell-2")
    targets = layout.targets_json("cells")["targets"]  # what `enactor lanes --targets` reads
    assert [(t["name"], t["plans"]) for t in targets][1] == ("cell-2", "cells/cell-2/plans")
    assert targets[2]["endpoints"] == list(layout.find_cell(3).endpoints)
    with pytest.raises(ValueError, match="cell-1..cell-4"):
        layout.find_cell(5)
    with pytest.raises(ValueError, match="1..12"):
        CellLayout.make(13)


def test_zone_files_load_and_carry_plan_0001() -> None:
    layout = CellLayout.make(3)
    files = zone_files(layout, 1_760_936_401.0)
    assert set(files) == {"root.json", "ddb.us-east-1.api.aws.json", "amazonaws.com.json",
                          *(f"{c.zone}json" for c in layout.cells)}
    for fname, doc in files.items():
        z = parse_route53_json(json.dumps(doc), fname, None if fname != "root.json" else ".")
        check_zone(z)
    c2 = layout.find_cell(2)
    plan = c2.first_plan(0.0)
    assert loads_plan(plan.dumps()).endpoints == plan.endpoints  # a valid plan document
    sets = files[f"{c2.zone}json"]["ResourceRecordSets"]
    leaves, members = tree_records(plan, plan.endpoints[0], c2.zone_id)
    assert {rs.to_route53()["Name"] for rs in (*leaves, *members)} <= {s["Name"] for s in sets}
    alias = [s for s in sets if s["Name"] == c2.target]
    assert {s["Type"] for s in alias} == {"A", "AAAA"}
    assert all(s["AliasTarget"]["DNSName"] == f"plan-0001.{c2.target}" for s in alias)


def test_assignment_is_stable_spread_and_moves_few_when_a_cell_is_added() -> None:
    pop = accounts(400)
    four = [f"cell-{i}" for i in range(1, 5)]
    five = [*four, "cell-5"]
    by4 = {a: assign(a, four) for a in pop}
    assert by4 == {a: assign(a, list(reversed(four))) for a in pop}  # order does not matter
    counts = {c: sum(1 for v in by4.values() if v == c) for c in four}
    assert all(60 <= n <= 140 for n in counts.values()), counts  # about 100 each
    by5 = {a: assign(a, five) for a in pop}
    moved = [a for a in pop if by4[a] != by5[a]]
    assert all(by5[a] == "cell-5" for a in moved)  # never between two old cells
    assert 40 <= len(moved) <= 130, len(moved)  # about 1/5 of 400


def test_a_move_is_one_cname_upsert_and_the_router_has_one_member_per_cell() -> None:
    layout = CellLayout.make(4)
    cmap = CellMap(layout)
    a = accounts(1)[0]
    old = cmap.cell_of(a)
    new = next(c for c in layout.cells if c is not old)
    moved = cmap.move(a, new.name)
    before, after = customer_changes(cmap, [a]), customer_changes(moved, [a])
    assert [c.action.value for c in after] == ["UPSERT"]
    assert before[0].rrset.values == (old.target,) and after[0].rrset.values == (new.target,)
    assert after[0].rrset.ttl == CNAME_TTL
    with pytest.raises(ValueError):
        cmap.move(a, "cell-9")
    router = router_records(layout)
    assert [(r.set_identifier, r.values) for r in router] == [(c.name, (c.router_target,)) for c in layout.cells]
    assert {r.name for r in router} == {layout.router_name} and {r.weight for r in router} == {1}


def test_batches_respect_route53s_thousand_with_upserts_counting_twice() -> None:
    changes = customer_changes(CellMap(CellLayout.make(2)), accounts(1201))
    parts = batches(changes)
    assert [len(p) for p in parts] == [500, 500, 201]


def _cname_answer(account: str, target: str, ttl: int) -> dns.message.Message:
    q = dns.message.make_query(account, "A")
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(account, ttl, "IN", "CNAME", target))
    r.answer.append(dns.rrset.from_text(target, ttl, "IN", "A", "192.0.2.41"))
    return r


def test_the_cname_ttl_bounds_how_long_a_resolver_keeps_the_old_cell() -> None:
    """A resolver that cached the answer just before the move keeps the old cell for at most
    CNAME_TTL seconds (RFC 1035 §3.2.1), then asks again and gets the new CNAME."""
    layout = CellLayout.make(4)
    a = accounts(1)[0]
    name = layout.customer_name(a)
    old = CellMap(layout).cell_of(a).target
    cache = Cache(CachePolicy())
    key = cache_key(dns.name.from_text(name), dns.rdatatype.A)
    cache.put(key, _cname_answer(name, old, CNAME_TTL), now=0.0)
    # the move is UPSERTed right after t=0: until expiry the resolver still answers the old cell
    hit = cache.get(key, now=CNAME_TTL - 0.5)
    assert hit is not None
    cached = dns.message.from_wire(hit.entry.wire)
    assert cached.answer[0].rdtype == dns.rdatatype.CNAME and str(cached.answer[0][0].target) == old
    assert hit.entry.remaining(CNAME_TTL - 0.5) <= 1
    # ...and not a moment longer: the next query goes upstream and sees the new CNAME
    assert cache.get(key, now=float(CNAME_TTL)) is None
