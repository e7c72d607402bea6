"""A zone file built straight into its served zone (`authd.zonefiles.fastbuild`, issue 12)
is the zone the reference path builds: the same record sets, the same entries, names, wires,
empty non-terminals and cuts, the same answers byte for byte, and for a bad file the same
error, line and all.

The reference is `parse_master` without `build` (record sets only), then `check_zone`, then
`Zone.build` / an index fed from the record sets; the files are `test_masterfile`'s generated
ones, with lines mixed in that break the zone-level rules.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authd.dns import rdatawire
from authd.dns.answer import Plain, Zone, make_query_wire
from authd.dns.index import index_from_zones
from authd.zonefiles.masterfile import MasterFileError, NeedsFullReader, read_wired
from authd.zonefiles.zonefile import LoadedZone, ZoneLoadError, check_zone, parse_master
from tests.test_masterfile import ORIGIN, zone_texts

# lines that break a rule, or take a path the fast build leaves to the reference
ODD_LINES = [
    "c1 CNAME target", "c1 A 192.0.2.1",  # a CNAME beside other data
    "c2 CNAME t1", "c2 CNAME t2",  # two CNAMEs
    "sub SOA ns1 hm 1 2 3 4 5",  # an SOA below the apex
    "@ SOA ns2 hm 2 2 3 4 5",  # a second SOA value at the apex
    "d DNAME elsewhere.example.", "x.d A 192.0.2.9",  # data below a DNAME
    "d2 DNAME elsewhere.example.",  # a DNAME alone (valid)
    "out.other.example. A 192.0.2.1", "sib.test. A 192.0.2.1", "test. A 192.0.2.1",  # outside
    "deleg NS ns.deleg", "ns.deleg A 192.0.2.7",  # a cut with glue
    "ns NS A.example.", "ns NS a.example.",  # duplicates by RFC 4343 case only
    "v6 AAAA 2001:DB8::1", "v6 AAAA 2001:db8::1", "v6 AAAA 2001:db8::2",  # one spelled oddly
    "v4 A 192.0.2.1", "v4 300 A 192.0.2.1", "v4 60 A 192.0.2.2",  # a duplicate, TTLs merged
    "m AAAA ::ffff:192.0.2.1",  # printed with an embedded IPv4 address
    "*.w A 192.0.2.5", "e\\.scaped A 192.0.2.6",  # a wildcard, an escaped owner
    "r SSHFP 1 1 123456789abcdef67890123456789abcdef67890",  # no fast wire form
    "low.deep.ent A 192.0.2.8",  # empty non-terminals
]


@st.composite
def files(draw) -> str:
    text = draw(zone_texts())
    extra = draw(st.lists(st.sampled_from(ODD_LINES), max_size=6))
    if draw(st.booleans()):
        extra.insert(0, f"$ORIGIN {ORIGIN}")  # back at the origin: the odd lines are relative to it
    return text + "".join(line + "\n" for line in extra)


def _reference(text: str) -> LoadedZone | ZoneLoadError:
    try:
        zone = parse_master(text, "gen.test.zone", ORIGIN)
        check_zone(zone)
    except ZoneLoadError as exc:
        return exc
    return zone


def _entry_shape(entry: object) -> tuple:
    assert type(entry) is Plain
    rr = entry.rrset
    return (type(rr).__name__, entry.key, rr.name.labels, int(rr.rdtype), int(rr.rdclass), rr.ttl,
            rr.texts, rr.wires, rr.tails, len(rr))


def _zone_shape(zone: Zone) -> tuple:
    nodes = [(k, [(t, _entry_shape(e)) for t, e in node.items()]) for k, node in zone.nodes.items()]
    return (zone.okey, nodes, zone.existing, zone.kids, zone.cuts, zone.dnames, zone.weighted,
            zone.soa.texts, zone.soa.ttl, zone.negative_soa.texts, zone.negative_soa.ttl,
            list(zone.records.items()))


def _questions(zone: LoadedZone) -> list[bytes]:
    owners = sorted({rs.name for rs in zone.record_sets})
    qnames = [*owners, f"nx.{ORIGIN}", f"a.b.w.{ORIGIN}", f"Deep.{ORIGIN}", f"x.deleg.{ORIGIN}"]
    return [make_query_wire(q, t, edns=e) for q in qnames
            for t in ("A", "AAAA", "CNAME", "NS", "SOA", "TXT", "MX", "ANY") for e in (False, True)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files())
def test_built_zone_equals_the_reference(text):
    ref = _reference(text)
    if isinstance(ref, ZoneLoadError):
        with pytest.raises(ZoneLoadError) as info:
            parse_master(text, "gen.test.zone", ORIGIN, build=True)
        assert str(info.value) == str(ref)
        assert info.value.line == ref.line
        return
    got = parse_master(text, "gen.test.zone", ORIGIN, build=True)
    assert got.record_sets == ref.record_sets
    assert [rs.key for rs in got.record_sets] == [rs.key for rs in ref.record_sets]
    if got.built is None:  # left to the reference (a DNAME): the index builds it as before
        assert any(rs.rtype == "DNAME" for rs in ref.record_sets)
        return
    assert _zone_shape(got.built) == _zone_shape(Zone.build(ref.origin, ref.record_sets))
    # the answers, byte for byte, through the whole serving index (compiled paths included)
    fast = index_from_zones([got], rng=random.Random(1))
    slow = index_from_zones([ref], rng=random.Random(1))
    assert got.built is None  # handed over to the index, not kept by the zone file
    for wire in _questions(ref):
        for tcp in (False, True):
            assert fast.respond(wire, tcp=tcp) == slow.respond(wire, tcp=tcp), wire


def test_a_clean_file_is_built_and_a_bad_one_says_where():
    head = f"$ORIGIN {ORIGIN}\n$TTL 300\n@ SOA ns1 hm 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n"
    zone = parse_master(head + "www AAAA 2001:db8::1\n", "gen.test.zone", ORIGIN, build=True)
    assert zone.built is not None and zone.built.records == {rs.key: rs for rs in zone.record_sets}
    with pytest.raises(ZoneLoadError, match=r"gen\.test\.zone:7: CNAME at c\.gen\.test\. beside "
                                            r"other data \(A\)"):
        parse_master(head + "c CNAME x\nc A 192.0.2.2\n", "gen.test.zone", ORIGIN, build=True)
    with pytest.raises(ZoneLoadError, match="no NS records at the zone apex"):
        parse_master(head.replace("@ NS ns1\n", ""), "gen.test.zone", ORIGIN, build=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files())
def test_the_reader_s_wire_forms_are_rdatawire_s(text):
    """An A or AAAA wire handed over by the reader is the one `rdatawire` (checked against
    dnspython in `test_rdatawire`) makes from the value's text."""
    try:
        rows = list(read_wired(text, ORIGIN))
    except (MasterFileError, NeedsFullReader):
        return
    for _line, _owner, _ttl, rtype, value, wire in rows:
        if wire is not None:
            assert rtype in ("A", "AAAA")
            assert wire == rdatawire.one(1 if rtype == "A" else 28, value)[1]
