"""A restart's index built from the store's rows (`fastbuild.from_sets`, issue 12) is the
zone `Zone.build` makes from the same record sets: the same entries, names, wires, empty
non-terminals and cuts, and the same answers byte for byte through the serving index.

The record sets are `test_fastbuild`'s generated files read by the reference path, in the
order a store reads them back (its primary key: name, type) and in file order; sets the fast
build leaves alone (aliases, weighted members) make it say None.
"""

from __future__ import annotations

import gc
import random
import tracemalloc

from hypothesis import HealthCheck, given, settings

from authd.dns.answer import Zone
from authd.dns.index import ServingIndex, snapshot_entries
from authd.model.records import AliasTarget, RecordSet
from authd.zonefiles import fastbuild
from authd.zonefiles.zonefile import LoadedZone, ZoneLoadError, parse_master
from bench.scale import ORIGIN, generate_zone
from tests.test_fastbuild import _questions, _reference, _zone_shape, files


def _row_order(rs: RecordSet) -> tuple[bytes, bytes]:
    return (rs.name.encode(), rs.rtype.encode())


def _index(zone: LoadedZone, built: Zone | None) -> ServingIndex:
    index = ServingIndex(rng=random.Random(1))
    index.apply(snapshot_entries([zone])[0], built)
    return index


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files())
def test_rows_build_the_reference_zone(text):
    ref = _reference(text)
    if isinstance(ref, ZoneLoadError):
        return
    for sets in (ref.record_sets, tuple(sorted(ref.record_sets, key=_row_order))):
        got = fastbuild.from_sets(ref.origin, sets)
        if got is None:  # left to the reference: only a zone whose rules it reads itself
            assert any(rs.rtype == "DNAME" for rs in sets)
            continue
        assert _zone_shape(got) == _zone_shape(Zone.build(ref.origin, sets))
        zone = LoadedZone(ref.origin, sets, ref.source)
        fast, slow = _index(zone, got), _index(zone, None)
        for wire in _questions(ref):
            for tcp in (False, True):
                assert fast.respond(wire, tcp=tcp) == slow.respond(wire, tcp=tcp), wire


def test_sets_it_does_not_build_are_left_to_the_reference():
    origin = "gen.test."
    apex = [RecordSet(origin, "SOA", 300, ("ns1.gen.test. hm.gen.test. 1 2 3 4 5",)),
            RecordSet(origin, "NS", 300, ("ns1.gen.test.",)),
            RecordSet("ns1.gen.test.", "A", 300, ("192.0.2.1",))]
    assert fastbuild.from_sets(origin, apex) is not None
    weighted = RecordSet("w.gen.test.", "A", 60, ("192.0.2.2",), set_identifier="a", weight=1)
    alias = RecordSet("al.gen.test.", "A", None, (), alias=AliasTarget("ns1.gen.test.", "Z1", False))
    assert fastbuild.from_sets(origin, [*apex, weighted]) is None
    assert fastbuild.from_sets(origin, [*apex, alias]) is None


def test_a_restart_s_build_holds_no_transient_beside_the_zone():
    """`from_sets` (a restart, issue 12) allocates little more at its peak than the zone it
    returns: the A wire forms are made one at a time as the build reaches them, and
    `existing` is one table of its final size, not a list of every wire and a set resized up
    to the end (which were ~9% of the zone here, and set a 1M-name restart's VmHWM)."""
    sets = parse_master(generate_zone(20_000), "gen.zone", ORIGIN).record_sets
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        zone = fastbuild.from_sets(ORIGIN, sets)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert zone is not None and len(zone.records) == len(sets) > 20_000
    assert peak - kept < 0.02 * kept, (peak, kept)
