"""The shared store steps: `authd.store.common` is pure, `authd.store.sqlcore` names no driver,
and the one batch flow rejects and bumps the SOA as every backend relies on."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import authd.store.common
import authd.store.sqlcore
from authd.model import changes as rules
from authd.model.records import RecordSet
from authd.store import common
from authd.store.contract import Action, Change, InvalidChangeBatch, InvalidInput
from authd.store.memstore import MemoryStore


def _imports(module: object) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_common_is_pure_and_sqlcore_names_no_driver():
    assert not _imports(authd.store.common) & {"trio", "socket", "time", "asyncio", "sqlite3", "psycopg"}
    assert not _imports(authd.store.sqlcore) & {"trio", "socket", "time", "sqlite3", "psycopg"}


def _zone() -> tuple[MemoryStore, str]:
    store = MemoryStore()
    zone, _ = store.create_zone("api.aws.", "ref")
    return store, zone.id


def test_plan_bumps_the_soa_and_puts_it_last():
    store, zid = _zone()
    z = store._find(zid)
    a = RecordSet("www.api.aws.", "A", 60, ("192.0.2.1",))
    puts, deletes, serial, net_new = common.plan(
        zid, "api.aws.", [Change(Action.CREATE, a)], z, limits=True, resource=lambda k, i: None,
        record_set_count=z.count, max_record_sets=None)
    assert puts[0] == a and puts[-1].rtype == "SOA" and deletes == ()
    assert serial == rules.soa_serial(puts[-1]) > store.find_zone(zid).serial
    assert net_new == 1


def test_plan_raises_route53s_errors_before_anything_is_written():
    store, zid = _zone()
    z = store._find(zid)
    gone = RecordSet("www.api.aws.", "A", 60, ("192.0.2.1",))
    with pytest.raises(InvalidChangeBatch, match="not found"):
        common.plan(zid, "api.aws.", [Change(Action.DELETE, gone)], z, limits=True,
                    resource=lambda k, i: None, record_set_count=z.count, max_record_sets=None)
    with pytest.raises(InvalidInput, match="at least one change"):
        common.plan(zid, "api.aws.", [], z, limits=True, resource=lambda k, i: None,
                    record_set_count=z.count, max_record_sets=None)
    assert [rs.rtype for rs in store.record_sets(zid)] == ["NS", "SOA"]


def test_next_resource_version_once_journaled_stays_journaled():
    assert common.next_resource_version("tags", "x", None, 0, False) == (1, False)
    assert common.next_resource_version("tags", "x", (3, True), 3, False) == (4, True)


def test_postgres_placeholders_leave_psycopgs_own_alone():
    pgstore = pytest.importorskip("authd.store.pgstore")
    assert pgstore._pyformat("SELECT 1 WHERE a=? AND b=%b AND c=%s") == \
        "SELECT 1 WHERE a=%s AND b=%b AND c=%s"


def test_listing_keys_are_listing_key_of_each_set():
    """The bulk form equals `changes.listing_key` set by set: the root, the apex, deep names,
    weighted sets with identifiers, and every set of the shipped zones."""
    from authd.zonefiles.zonefile import load_zone_dir

    sets = [RecordSet(".", "NS", 60, ("a.root.test.",)),
            RecordSet("z.test.", "SOA", 60, ("ns.z.test. h.z.test. 1 2 3 4 5",)),
            RecordSet("a.b-c.d_e.z.test.", "A", 60, ("192.0.2.1",)),
            RecordSet("w.z.test.", "A", 60, ("192.0.2.2",), set_identifier="lb 1", weight=1)]
    for zone in load_zone_dir(Path(__file__).resolve().parent.parent / "zones"):
        sets += zone.record_sets
    assert common.listing_keys(sets) == [
        rules.listing_key(rs.name, rs.rtype, rs.set_identifier) for rs in sets]
