"""The Store contract, run against every backend (MemoryStore, SQLiteStore, PostgresStore)."""

from __future__ import annotations

from pathlib import Path

import pytest

from authd.model.journal import EntryKind
from authd.model.records import AliasTarget, RecordSet
from authd.store.contract import (
    Action,
    Change,
    HostedZoneAlreadyExists,
    HostedZoneNotEmpty,
    InvalidChangeBatch,
    InvalidInput,
    NewZone,
    NoSuchChange,
    NoSuchHostedZone,
)
from authd.store.memstore import MemoryStore
from authd.zonefiles.seed import seed_store
from authd.zonefiles.zonefile import load_zone_dir, parse_route53_json

ZONES = Path(__file__).resolve().parent.parent / "zones"


def _memory(request, tmp_path):
    return MemoryStore()


def _sqlite(request, tmp_path):
    sqlstore = pytest.importorskip("authd.store.sqlstore")
    return sqlstore.SQLiteStore(tmp_path / "authd.db")


def _postgres(request, tmp_path):
    pgstore = pytest.importorskip("authd.store.pgstore")
    return pgstore.PostgresStore(request.getfixturevalue("pg_url"))


@pytest.fixture(params=[_memory, _sqlite, _postgres], ids=["memory", "sqlite", "postgresql"])
def store(request, tmp_path):
    s = request.param(request, tmp_path)
    yield s
    s.close()


def A(name, *values, **kw):
    return RecordSet(name, "A", 60, values or ("192.0.2.1",), **kw)


def test_create_zone_has_soa_and_ns(store):
    zone, info = store.create_zone("example.test", "ref-1", "hello")
    assert zone.id == "Z0EXAMPLE0TEST" and zone.name == "example.test."
    assert zone.record_set_count == 2 and zone.serial == 1 and zone.comment == "hello"
    assert [rs.rtype for rs in store.record_sets(zone.id)] == ["NS", "SOA"]
    assert info.id == "C000000000001" and store.get_change(info.id).seq == info.seq
    assert store.find_zone_by_name("EXAMPLE.test.") == zone
    assert store.find_zone("/hostedzone/Z0EXAMPLE0TEST") == zone
    assert store.get_zone("Z0NOPE") is None
    with pytest.raises(NoSuchHostedZone):
        store.find_zone("Z0NOPE")
    with pytest.raises(NoSuchHostedZone):
        store.find_zone_by_name("nope.test.")
    with pytest.raises(HostedZoneAlreadyExists):
        store.create_zone("example.test.", "ref-2")
    with pytest.raises(HostedZoneAlreadyExists):
        store.create_zone("other.test.", "ref-1")
    with pytest.raises(InvalidInput):
        store.create_zone("bad..name", "ref-3")


def test_batches_journal_and_bump_serial(store):
    zone, _ = store.create_zone("example.test", "r")
    info = store.change_batch(zone.id, [Change(Action.CREATE, A("www.example.test."))], "first")
    assert info.comment == "first" and store.get_change(info.id) == info
    assert store.find_zone(zone.id).serial == 2
    assert store.find_zone(zone.id).record_set_count == 3
    entries = store.journal_since(0)
    assert [e.kind for e in entries] == [EntryKind.SNAPSHOT, EntryKind.CHANGE]
    last = entries[-1]
    assert last.seq == info.seq and last.change_id == info.id and last.serial == 2
    assert A("www.example.test.") in last.puts
    soa = [rs for rs in last.puts if rs.rtype == "SOA"]
    assert len(soa) == 1 and soa[0].values[0].split()[2] == "2"
    assert store.journal_since(info.seq) == []
    info2 = store.change_batch(zone.id, [Change(Action.DELETE, A("www.example.test."))])
    [e] = store.journal_since(info.seq)
    assert e.deletes == (A("www.example.test.").key,) and e.seq == info2.seq
    with pytest.raises(NoSuchChange):
        store.get_change("C999999999999")


def test_rejected_batch_leaves_everything_untouched(store):
    zone, _ = store.create_zone("example.test", "r")
    store.change_batch(zone.id, [Change(Action.CREATE, A("a.example.test."))])
    before = (store.record_sets(zone.id), store.journal_since(0), store.find_zone(zone.id))
    with pytest.raises(InvalidChangeBatch) as info:
        store.change_batch(
            zone.id,
            [
                Change(Action.CREATE, A("b.example.test.")),
                Change(Action.CREATE, A("a.example.test.")),
                Change(Action.DELETE, A("c.example.test.")),
            ],
        )
    assert info.value.messages == (
        "Tried to create resource record set [name='a.example.test.', type='A'] but it already exists",
        "Tried to delete resource record set [name='c.example.test.', type='A'] but it was not found",
    )
    assert (store.record_sets(zone.id), store.journal_since(0), store.find_zone(zone.id)) == before


def test_point_reads_and_listing_order(store):
    zone, _ = store.create_zone("example.test", "r")
    sets = [
        A("b.example.test."),
        A("a.b.example.test."),
        A("w.example.test.", set_identifier="two", weight=2),
        A("w.example.test.", set_identifier="one", weight=1),
        RecordSet("a.example.test.", "TXT", 60, ('"t"',)),
        RecordSet("a.example.test.", "A", alias=AliasTarget("b.example.test.", zone.id)),
    ]
    store.change_batch(zone.id, [Change(Action.CREATE, rs) for rs in sets])
    names = [(rs.name, rs.rtype, rs.set_identifier) for rs in store.record_sets(zone.id)]
    assert names == [
        ("example.test.", "NS", None),
        ("example.test.", "SOA", None),
        ("a.example.test.", "A", None),
        ("a.example.test.", "TXT", None),
        ("b.example.test.", "A", None),
        ("a.b.example.test.", "A", None),
        ("w.example.test.", "A", "one"),
        ("w.example.test.", "A", "two"),
    ]
    got = store.get_record_sets(zone.id, "W.example.test", "a")
    assert sorted(rs.set_identifier for rs in got) == ["one", "two"]
    assert store.get_record_sets(zone.id, "nothing.example.test.", "A") == []


def test_delete_zone_only_when_empty(store):
    zone, _ = store.create_zone("example.test", "r")
    store.change_batch(zone.id, [Change(Action.CREATE, A("x.example.test."))])
    with pytest.raises(HostedZoneNotEmpty):
        store.delete_zone(zone.id)
    store.change_batch(zone.id, [Change(Action.DELETE, A("x.example.test."))])
    info = store.delete_zone(zone.id)
    assert store.get_zone(zone.id) is None and store.list_zones() == []
    assert store.journal_since(info.seq - 1)[0].kind is EntryKind.ZONE_DELETED
    with pytest.raises(NoSuchHostedZone):
        store.change_batch(zone.id, [Change(Action.CREATE, A("x.example.test."))])


def test_snapshot_reflects_every_zone(store):
    z1, _ = store.create_zone("one.test", "r1")
    z2, _ = store.create_zone("two.test", "r2")
    info = store.change_batch(z2.id, [Change(Action.CREATE, A("x.two.test."))])
    snap = {e.zone_id: e for e in store.snapshot()}
    assert set(snap) == {z1.id, z2.id}
    assert all(e.kind is EntryKind.SNAPSHOT and e.seq == info.seq for e in snap.values())
    assert set(snap[z2.id].puts) == set(store.record_sets(z2.id))
    assert snap[z2.id].serial == store.find_zone(z2.id).serial


def test_seed_from_zone_files_keeps_api_changes(store, tmp_path):
    zones = load_zone_dir(ZONES)
    log = seed_store(store, zones)
    assert len(log) == 3 and all("created" in line for line in log)
    ids = {z.name: z.id for z in store.list_zones()}
    assert ids["api.aws."] == "Z0API0AWS" and ids["amazonaws.com."] == "Z0AMAZONAWS"
    api = next(z for z in zones if z.origin == "api.aws.")
    assert set(store.record_sets("Z0API0AWS")) - set(api.record_sets) == {
        rs for rs in store.record_sets("Z0API0AWS") if rs.rtype == "SOA"
    }
    # an API change survives a restart with the same files
    extra = A("extra.api.aws.")
    store.change_batch("Z0API0AWS", [Change(Action.CREATE, extra)])
    seq = store.journal_since(0)[-1].seq
    log = seed_store(store, zones)
    assert all("unchanged" in line for line in log)
    assert extra in store.record_sets("Z0API0AWS") and store.journal_since(seq) == []
    # a changed file is re-imported as one batch, making the zone equal to the file
    text = (ZONES / "api.aws.json").read_text().replace('"Weight": 50', '"Weight": 51')
    changed = parse_route53_json(text, "api.aws.json")
    [line] = seed_store(store, [changed])
    assert "re-imported" in line
    [entry] = store.journal_since(seq)
    assert extra not in store.record_sets("Z0API0AWS")
    assert {rs for rs in store.record_sets("Z0API0AWS") if rs.rtype != "SOA"} == {
        rs for rs in changed.record_sets if rs.rtype != "SOA"
    }
    assert entry.serial > 1


def test_import_sets_is_the_batch_of_their_creates(store):
    """Store.import_sets on every backend: the apex SOA and NS upserted, the rest created,
    one CHANGE entry, the zone comment set with it; a bad set refuses the whole import with
    the batch's message and writes nothing (nor the comment)."""
    zone, _ = store.create_zone("imp.test", "r", "loading")
    soa = RecordSet("imp.test.", "SOA", 60, ("ns.imp.test. h.imp.test. 5 7200 900 1209600 60",))
    sets = [soa, RecordSet("imp.test.", "NS", 60, ("ns.imp.test.",)),
            A("ns.imp.test."), A("w.imp.test.", "192.0.2.7", set_identifier="one", weight=3),
            RecordSet("v6.imp.test.", "AAAA", 60, ("2001:db8::1",))]
    for bad, message in ((RecordSet("x.imp.test.", "A", 2**31, ("192.0.2.2",)),
                          "TTL 2147483648 is out of range 0..2147483647"),
                         (RecordSet("y.imp.test.", "A", 60, ("192.0.2.3", "192.0.2.3")),
                          "Duplicate Resource Record"),
                         # the same key twice: the batch's refusal, not the database's own
                         # IntegrityError / UniqueViolation (a second plain set goes through
                         # the batch rules against the zone holding the first)
                         (A("ns.imp.test.", "192.0.2.9"), None)):
        with pytest.raises(InvalidChangeBatch) as info:
            store.import_sets(zone.id, [*sets, bad], "import", zone_comment="done")
        assert message is None or message in info.value.messages
    assert store.find_zone(zone.id).comment == "loading"
    assert {rs.rtype for rs in store.record_sets(zone.id)} == {"SOA", "NS"}
    change = store.import_sets(zone.id, sets, "import", zone_comment="done")
    z = store.find_zone(zone.id)
    assert z.comment == "done" and z.record_set_count == 5 and z.serial >= 5
    got = {rs.key: rs for rs in store.record_sets(zone.id)}
    assert {k: v for k, v in got.items() if k.rtype != "SOA"} == {
        rs.key: rs for rs in sets if rs.rtype != "SOA"}
    [entry] = store.journal_since(change.seq - 1)
    assert entry.kind is EntryKind.CHANGE and entry.serial == z.serial
    assert set(entry.puts) == set(got.values())
    snap = [e for e in store.snapshot() if e.zone_id == zone.id][0]
    assert set(snap.puts) == set(got.values()) and snap.seq == change.seq
    other, _ = store.create_zone("imp2.test", "r2", "kept")
    store.import_sets(other.id, [A("a.imp2.test.")])  # no zone_comment: the comment stays
    z2 = store.find_zone(other.id)
    assert z2.comment == "kept" and z2.record_set_count == 3 and z2.serial == 2  # RFC 1996 §2.2


def test_import_sets_can_create_the_zone_in_the_same_transaction(store):
    """import_sets(create=...): the zone and its sets appear together (its creation's
    SNAPSHOT and the import's CHANGE in one transaction), and a refused import leaves no
    zone behind, so the name can be created again."""
    sets = [A("a.new.test."), RecordSet("v6.new.test.", "AAAA", 60, ("2001:db8::1",))]
    bad = RecordSet("x.new.test.", "A", 2**31, ("192.0.2.2",))
    with pytest.raises(InvalidChangeBatch):
        store.import_sets("Z0NEW0TEST", [*sets, bad], "import",
                          create=NewZone("new.test", "ref-new", "loading"))
    assert [z for z in store.list_zones() if z.name == "new.test."] == []
    change = store.import_sets("Z0NEW0TEST", sets, "import", zone_comment="done",
                               create=NewZone("new.test", "ref-new", "loading"))
    z = store.find_zone("Z0NEW0TEST")
    assert z.name == "new.test." and z.comment == "done" and z.record_set_count == 4
    entries = [e for e in store.journal_since(0) if e.zone_id == "Z0NEW0TEST"]
    if not isinstance(store, MemoryStore):  # one transaction: nothing of a refused try
        assert [e.kind for e in entries] == [EntryKind.SNAPSHOT, EntryKind.CHANGE]
    assert entries[-1].seq == change.seq and set(sets) <= set(entries[-1].puts)
    with pytest.raises(HostedZoneAlreadyExists):
        store.import_sets("Z0NEW1TEST", sets, create=NewZone("new.test", "ref-other"))


def test_record_sets_page_matches_the_listing(store):
    zone, _ = store.create_zone("example.test", "r")
    names = ["b", "a.b", "w", "a", "z.a", "m"]
    store.change_batch(zone.id, [Change(Action.CREATE, A(f"{n}.example.test.")) for n in names])
    full = store.record_sets(zone.id)
    assert store.record_sets_page(zone.id, None, 100) == full
    for i, rs in enumerate(full):
        assert store.record_sets_page(zone.id, (rs.name, rs.rtype, rs.set_identifier), 2) == full[i:i + 2]
    # a start between record sets begins at the next one
    assert store.record_sets_page(zone.id, ("a.example.test.", "AAAA", None), 1) == [
        rs for rs in full if rs.name == "z.a.example.test."
    ]


# --- resources: the one generic contract for health checks, tags, CIDR collections, ... ----


def test_resource_create_get_list_count_delete(store):
    from authd.store.contract import NoSuchResource

    assert store.get_resource("healthcheck", "hc-1") is None
    assert store.list_resources("healthcheck") == [] and store.count_resources("healthcheck") == 0
    r = store.put_resource("healthcheck", "hc-2", {"type": "TCP", "port": 9001}, expect_version=0)
    assert (r.kind, r.id, r.doc, r.version) == ("healthcheck", "hc-2", {"type": "TCP", "port": 9001}, 1)
    store.put_resource("healthcheck", "hc-1", {"type": "HTTP"})
    store.put_resource("tags", "hostedzone/Z1", {"env": "test"})
    assert [x.id for x in store.list_resources("healthcheck")] == ["hc-1", "hc-2"]
    assert store.count_resources("healthcheck") == 2 and store.count_resources("tags") == 1
    r2 = store.put_resource("healthcheck", "hc-2", {"type": "TCP", "port": 9002}, expect_version=1)
    assert r2.version == 2 and store.get_resource("healthcheck", "hc-2").doc["port"] == 9002
    store.delete_resource("healthcheck", "hc-2", expect_version=2)
    assert store.get_resource("healthcheck", "hc-2") is None
    with pytest.raises(NoSuchResource):
        store.delete_resource("healthcheck", "hc-2")


def test_resource_version_conflicts_change_nothing(store):
    from authd.store.contract import ResourceConflict

    store.put_resource("cidrcollection", "c1", {"v": 1})
    with pytest.raises(ResourceConflict):
        store.put_resource("cidrcollection", "c1", {"v": 2}, expect_version=0)  # exists
    with pytest.raises(ResourceConflict):
        store.put_resource("cidrcollection", "c1", {"v": 2}, expect_version=7)
    with pytest.raises(ResourceConflict):
        store.delete_resource("cidrcollection", "c1", expect_version=3)
    with pytest.raises(ResourceConflict):
        store.put_resource("cidrcollection", "c9", {"v": 2}, expect_version=1)  # absent
    got = store.get_resource("cidrcollection", "c1")
    assert got.doc == {"v": 1} and got.version == 1
    assert store.get_resource("cidrcollection", "c9") is None


def test_resource_documents_are_copies(store):
    doc = {"list": [1, 2], "nested": {"a": 1}}
    store.put_resource("tags", "t", doc)
    doc["list"].append(3)
    got = store.get_resource("tags", "t")
    got.doc["nested"]["a"] = 99
    assert store.get_resource("tags", "t").doc == {"list": [1, 2], "nested": {"a": 1}}


def test_journaled_resources_reach_an_index_by_journal_and_by_snapshot(store):
    from authd.dns.index import ServingIndex

    store.create_zone("example.test", "ref-1")
    store.put_resource("tags", "quiet", {"not": "journaled"})  # no journal entry
    before = store.seq
    store.put_resource("healthcheck-status", "hc-1", {"healthy": False}, journal=True)
    store.put_resource("healthcheck-status", "hc-2", {"healthy": True}, journal=True)
    entries = store.journal_since(before)
    assert [e.kind for e in entries] == [EntryKind.RESOURCE, EntryKind.RESOURCE]
    assert entries[0].resource == ("healthcheck-status", "hc-1", {"healthy": False})
    assert entries[1].seq == entries[0].seq + 1 == store.seq

    live = ServingIndex()
    for e in store.snapshot():
        live.apply(e)
    assert live.resources == {"healthcheck-status": {"hc-1": {"healthy": False}, "hc-2": {"healthy": True}}}
    seq = store.seq
    # a journaled resource stays journaled: its later puts and its delete reach the indexes
    store.put_resource("healthcheck-status", "hc-1", {"healthy": True})
    store.delete_resource("healthcheck-status", "hc-2")
    for e in store.journal_since(seq):
        assert live.apply(e)
    assert live.resources["healthcheck-status"] == {"hc-1": {"healthy": True}}
    # a new index from the snapshot agrees, and still serves the zone
    fresh = ServingIndex()
    for e in store.snapshot():
        fresh.apply(e)
    assert fresh.resources == live.resources and fresh.seq == live.seq == store.seq
    assert fresh.table.find(__import__("dns.name").name.from_text("example.test.")) is not None


def test_resources_survive_reopen(tmp_path):
    sqlstore = pytest.importorskip("authd.store.sqlstore")
    s = sqlstore.SQLiteStore(tmp_path / "r.db")
    s.put_resource("healthcheck", "hc-1", {"port": 1}, journal=True)
    s.close()
    s = sqlstore.SQLiteStore(tmp_path / "r.db")
    assert s.get_resource("healthcheck", "hc-1").doc == {"port": 1}
    reader = sqlstore.SQLiteStore(tmp_path / "r.db", readonly=True)
    assert [e.resource for e in reader.journal_since(0)] == [("healthcheck", "hc-1", {"port": 1})]
    reader.close()
    s.close()


def test_memory_store_save_restore_covers_resources():
    s = MemoryStore()
    s.put_resource("healthcheck", "hc-1", {"port": 1})
    saved = s.save()
    s.put_resource("healthcheck", "hc-1", {"port": 2})
    s.put_resource("healthcheck", "hc-2", {"port": 3})
    s.restore(saved)
    assert [(r.id, r.doc, r.version) for r in s.list_resources("healthcheck")] == [("hc-1", {"port": 1}, 1)]
