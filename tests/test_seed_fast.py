"""The store side of loading big zones (issue 12), checked against the paths it replaces.

`seed.content_hash` writes the Route 53 JSON of plain sets by hand; `SQLiteStore.import_sets`
fills a new zone in one bulk insert; `zonefile._trusted` makes record sets without
re-canonicalising. Each must give exactly what the general path gives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authd.model.records import RecordSet, route53_sort_key
from authd.store.contract import InvalidChangeBatch, NoSuchHostedZone
from authd.store.sqlstore import SQLiteStore
from authd.zonefiles.seed import content_hash, seed_store
from authd.zonefiles.zonefile import LoadedZone, load_zone_dir, parse_master

ZONES = Path(__file__).resolve().parent.parent / "zones"


def old_hash(record_sets) -> str:
    doc = [rs.to_route53() for rs in sorted(record_sets, key=route53_sort_key)]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


label = st.text(alphabet="abz09-_*\\ .\"é", min_size=1, max_size=8)
value = st.one_of(st.just("192.0.2.1"), st.text(alphabet='a "\\é\t', min_size=1, max_size=8).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(label, min_size=1, max_size=3), st.sampled_from(["A", "TXT"]),
                          st.integers(0, 2**31 - 1), st.lists(value, min_size=1, max_size=3),
                          st.one_of(st.none(), st.integers(0, 255))), max_size=6))
def test_content_hash_is_the_json_of_the_route53_form(items):
    """Byte for byte the digest of `json.dumps([... to_route53() ...], sort_keys=True)`, for
    plain sets, weighted ones, and names and values that need escapes."""
    sets = {}
    for labels, _rtype, ttl, values, weight in items:
        try:
            rs = RecordSet(".".join(labels) + ".z.test.", "A" if values == ["192.0.2.1"] else "TXT",
                           ttl, tuple(dict.fromkeys(values)),
                           set_identifier=None if weight is None else f"w{weight}", weight=weight)
        except ValueError:
            continue
        sets[rs.key] = rs
    assert content_hash(sets.values()) == old_hash(sets.values())


def test_content_hash_of_the_shipped_zones_is_unchanged():
    """Stores seeded before the fast hash keep their recorded hashes valid (no re-import)."""
    for zone in load_zone_dir(ZONES):
        assert content_hash(zone.record_sets) == old_hash(zone.record_sets)


def generated(n: int) -> str:
    lines = ["$ORIGIN g.test.", "$TTL 300", "@ IN SOA ns1 host 7 7200 900 1209600 60", "@ NS ns1",
             "ns1 A 192.0.2.53", "www CNAME h1", "mx 60 MX 10 h2.g.test.", "t TXT \"a b\" c"]
    for i in range(n):
        lines.append(f"h{i} A 10.0.{i >> 8}.{i & 255}")
        if i % 3 == 0:
            lines.append(f"h{i} AAAA 2001:db8::{i:x}")
    return "\n".join(lines) + "\n"


def test_trusted_record_sets_equal_checked_ones():
    zone = parse_master(generated(300), "g.test.zone", "g.test.")
    for rs in zone.record_sets:
        again = RecordSet(rs.name, rs.rtype, rs.ttl, rs.values)
        assert again == rs and again.key == rs.key and again.values == rs.values


def state(store: SQLiteStore, zone_id: str):
    z = store.find_zone(zone_id)
    entries = store.journal_since(0)
    return (sorted(store.record_sets(zone_id), key=route53_sort_key), z.serial, z.record_set_count,
            [(e.kind, e.serial, sorted(e.puts, key=route53_sort_key), sorted(e.deletes))
             for e in entries])


def both(tmp_path: Path, zones: list[LoadedZone]):
    fast = SQLiteStore(tmp_path / "fast.sqlite3", clock=lambda: 1.0)
    slow = SQLiteStore(tmp_path / "slow.sqlite3", clock=lambda: 1.0)
    got_fast = seed_store(fast, zones)
    with mock.patch.object(SQLiteStore, "import_sets", None):
        got_slow = seed_store(slow, zones)
    return fast, slow, got_fast, got_slow


def test_bulk_import_equals_the_batch_import(tmp_path):
    """Same record sets, serial, count, and journal (the zone's SNAPSHOT, then one CHANGE with
    every set) as seeding through `change_batch`, for a generated zone and the shipped ones
    (Route 53 exports with aliases and weighted sets among them)."""
    zones = [*load_zone_dir(ZONES), parse_master(generated(500), "g.test.zone", "g.test.")]
    fast, slow, lines_fast, lines_slow = both(tmp_path, zones)
    assert lines_fast == lines_slow
    for z in fast.list_zones():
        assert state(fast, z.id) == state(slow, z.id)
    assert [e.puts for e in fast.snapshot()] != []
    # a restart with the same files changes nothing on either path
    assert all("unchanged" in line for line in seed_store(fast, zones))


def test_bulk_import_refuses_what_the_batch_refuses(tmp_path):
    """An alias to a type its target lacks, and a set with a TTL out of range: the same error
    on both paths, and nothing of the zone's sets written (the bulk path creates the zone in
    the import's transaction, so there is not even the zone; the batch path keeps its apex)."""
    soa = RecordSet("b.test.", "SOA", 60, ("ns.b.test. h.b.test. 1 7200 900 1209600 60",))
    ns = RecordSet("b.test.", "NS", 60, ("ns.b.test.",))
    a = RecordSet("x.b.test.", "A", 60, ("192.0.2.1",))
    bad_alias = RecordSet.from_route53({"Name": "y.b.test.", "Type": "AAAA", "AliasTarget": {
        "HostedZoneId": "Z0B0TEST", "DNSName": "x.b.test.", "EvaluateTargetHealth": False}})
    bad_ttl = RecordSet("z.b.test.", "A", 2**31, ("192.0.2.2",))
    for extra in (bad_alias, bad_ttl):
        zone = LoadedZone("b.test.", (soa, ns, a, extra), "b.test.json")
        errors = []
        for store in (SQLiteStore(tmp_path / f"f{id(extra)}.db"), SQLiteStore(tmp_path / f"s{id(extra)}.db")):
            ctx = mock.patch.object(SQLiteStore, "import_sets", None) if errors else mock.MagicMock()
            with ctx, pytest.raises(InvalidChangeBatch) as info:
                seed_store(store, [zone])
            if not errors:  # the bulk import
                with pytest.raises(NoSuchHostedZone):
                    store.find_zone_by_name("b.test.")
            else:
                zid = store.find_zone_by_name("b.test.").id
                assert {rs.rtype for rs in store.record_sets(zid)} == {"SOA", "NS"}
            errors.append(info.value.messages)
        assert errors[0] == errors[1]


def test_an_unchanged_file_is_not_read_again(tmp_path):
    """`seed_dir` records the file's digest; the next start with the same bytes reads nothing
    (the store's contents are kept), a reformatted file is read and found unchanged, and a
    changed one is re-imported."""
    from authd.zonefiles import seed as seed_mod
    from authd.zonefiles.seed import seed_dir

    zdir = tmp_path / "zones"
    zdir.mkdir()
    zfile = zdir / "g.test.zone"
    zfile.write_text(generated(50))
    store = SQLiteStore(tmp_path / "s.sqlite3")
    assert "created" in seed_dir(store, zdir)[0]
    read: list = []
    with mock.patch.object(seed_mod, "load_zone_files", side_effect=lambda paths, **_: read.extend(paths) or []):
        lines = seed_dir(store, zdir)
    assert "the same bytes" in lines[0] and read == []
    zfile.write_text(generated(50).replace(" A ", "  A "))  # the same records, reformatted
    assert "unchanged, keeping" in seed_dir(store, zdir)[0]
    assert "the same bytes" in seed_dir(store, zdir)[0]  # the new digest was recorded
    zfile.write_text(generated(51))
    assert "re-imported" in seed_dir(store, zdir)[0]
    zid = store.find_zone_by_name("g.test.").id
    assert any(rs.name == "h50.g.test." for rs in store.record_sets(zid))


def test_content_hash_of_names_whose_order_is_not_route53s():
    """Where name order and Route 53's part (a child name between its parent and the next
    sibling; `www` before `www-2`; a plain and a weighted set under one name and type), the
    sets are ordered by their listing keys run by run and merged: the same digest."""
    from authd.zonefiles import seed

    names = ["www", "www-2", "www0", "b", "a.b", "c", "x.y.b", "*.w", "w", "_dmarc", "@"]
    sets = [RecordSet((n + "." if n != "@" else "") + "o.test.", "A", 60, ("192.0.2.1",)) for n in names]
    sets += [RecordSet("b.o.test.", "TXT", 60, ('"t"',)),
             RecordSet("c.o.test.", "A", 60, ("192.0.2.2",), set_identifier="one", weight=1),
             RecordSet("c.o.test.", "A", 60, ("192.0.2.3",), set_identifier="two", weight=2)]
    assert content_hash(sets) == old_hash(sets)
    assert seed._listing_order(sets, run=2) == sorted(sets, key=route53_sort_key)
    mixed = [*sets, RecordSet("m.o.test.", "A", 60, ("192.0.2.4",)),
             RecordSet("m.o.test.", "A", 60, ("192.0.2.5",), set_identifier="w", weight=1)]
    assert content_hash(mixed) == old_hash(mixed)  # None and a text: no key order at all


def test_content_hash_of_a_flat_zone_makes_no_key_list():
    """A zone of one level of names, in any order, is hashed in its sets' own key order,
    checked as it goes: `_listing_order` (a listing key per set) is never needed."""
    from authd.zonefiles import seed

    zone = parse_master(generated(500), "g.test.zone", "g.test.")
    sets = list(reversed(zone.record_sets))
    with mock.patch.object(seed, "_listing_order", side_effect=AssertionError("not needed")):
        assert content_hash(sets) == old_hash(sets)
