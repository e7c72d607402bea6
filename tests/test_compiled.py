"""Compiled answers (`authd.dns.compiled`) equal the reference pipeline's, byte for byte.

Generated zones hold names, wildcards, empty non-terminals, CNAME chains in and out of the
zone, delegations with glue, MX, weighted sets and aliases, with SOA names inside the zone or
outside; generated questions are existing, missing, under wildcards and under cuts, in random
0x20 case, with EDNS on or off, various UDP sizes, RD set or not, over UDP and TCP. One index
answers them all in turn (so templates rendered for one question serve the next), then a change
batch is applied to it, and it answers them again. Every response must be one the reference
pipeline (`ServingIndex.answer`, no tables) can give for that query: the only one, or for a
weighted question one of its outcomes (`enumerate_outcomes`). dnslib decodes both in one test.
"""

from __future__ import annotations

import random

import dns.exception
import dns.flags
import dns.message
import dnslib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authd.dns.answer import TCP_LIMIT, enumerate_outcomes
from authd.dns.compiled import name_key
from authd.dns.index import ServingIndex
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import AliasTarget, RecordSet

Z, ZID = "c.test.", "Z0C0TEST"
NAMES = ["c.test.", "a.c.test.", "b.a.c.test.", "*.c.test.", "*.a.c.test.", "x.*.w.c.test.",
         "ns1.c.test.", "sub.c.test.", "ns.sub.c.test.", "cn.c.test.", "e.f.c.test.",
         "mail.c.test.", "p.c.test.", "l1.p.c.test.", "l2.p.c.test."]
TARGETS = NAMES[1:] + ["gone.c.test.", "out.example.", "hostmaster.c.test."]
ASKED = NAMES + ["zz.c.test.", "q.b.a.c.test.", "deep.sub.c.test.", "x.ns.sub.c.test.",
                 "f.c.test.", "w.c.test.", "y.w.c.test.", "hostmaster.c.test.",
                 "x.hostmaster.c.test.", "x.ns1.c.test.", "r.e.f.c.test.", "gone.c.test.",
                 "a-much-longer-random-label.c.test.", "x.y.z.a.c.test.", "a.other.test.",
                 "n.mail.c.test."]
QTYPES = ["A", "AAAA", "TXT", "MX", "CNAME", "NS", "SOA", "SRV", "PTR"]


def soa(mname: str, rname: str, serial: int, minimum: int) -> RecordSet:
    return RecordSet(Z, "SOA", 300, (f"{mname} {rname} {serial} 7200 900 1209600 {minimum}",))


@st.composite
def record_sets(draw) -> RecordSet:
    name = draw(st.sampled_from(NAMES[1:]))
    kind = draw(st.sampled_from(["a", "a", "aaaa", "txt", "mx", "cname", "cname", "ns",
                                 "weighted", "alias", "weighted-alias", "glue"]))
    ttl = draw(st.sampled_from([60, 300]))
    ip = draw(st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.7"]))
    target = draw(st.sampled_from(TARGETS))
    ident = draw(st.sampled_from(["s1", "s2", "s3"]))
    weight = draw(st.integers(0, 3))
    if kind == "a":
        return RecordSet(name, "A", ttl, tuple(sorted({ip, draw(st.sampled_from([ip, "192.0.2.9"]))})))
    if kind == "aaaa":
        return RecordSet(name, "AAAA", ttl, ("2001:db8::1",))
    if kind == "txt":
        return RecordSet(name, "TXT", ttl, (f'"{ip}"', '"v=spf1 -all"'))
    if kind == "mx":
        return RecordSet(name, "MX", ttl, (f"10 {target}", "20 mail.c.test."))
    if kind == "cname":
        return RecordSet(name, "CNAME", ttl, (target,))
    if kind == "ns":
        return RecordSet(draw(st.sampled_from(["sub.c.test.", "b.a.c.test."])), "NS", ttl,
                         ("ns.sub.c.test.", "ns.elsewhere.example."))
    if kind == "glue":
        if draw(st.booleans()):
            return RecordSet("ns.sub.c.test.", "A", ttl, ("192.0.2.53",))
        return RecordSet("ns.sub.c.test.", "AAAA", ttl, ("2001:db8::53",))
    if kind == "weighted":
        return RecordSet(name, "A", ttl, (ip,), set_identifier=ident, weight=weight)
    alias = AliasTarget(draw(st.sampled_from(NAMES[1:])), ZID)
    if kind == "alias":
        return RecordSet(name, draw(st.sampled_from(["A", "AAAA"])), alias=alias)
    return RecordSet(name, "A", alias=alias, set_identifier=ident, weight=weight)


@st.composite
def soas(draw) -> RecordSet:
    mname = draw(st.sampled_from(["ns1.c.test.", "ns.elsewhere.example.", "ns.sub.c.test."]))
    rname = draw(st.sampled_from(["hostmaster.c.test.", "admin.example.", "a.c.test."]))
    return soa(mname, rname, draw(st.integers(1, 9)), draw(st.sampled_from([30, 60, 600])))


@st.composite
def questions(draw) -> tuple[bytes, bool]:
    name = draw(st.sampled_from(ASKED))
    case = draw(st.integers(0, 2**32))
    rnd = random.Random(case)
    name = "".join(ch.upper() if rnd.random() < 0.5 else ch for ch in name)  # 0x20
    qtype = draw(st.sampled_from(QTYPES))
    edns = draw(st.sampled_from([None, 512, 600, 1232, 4096, 100]))
    q = dns.message.make_query(name, qtype, use_edns=None if edns is None else 0,
                               payload=edns or 0, want_dnssec=edns is not None and draw(st.booleans()))
    q.id = draw(st.integers(0, 65535))
    if not draw(st.booleans()):
        q.flags &= ~dns.flags.RD
    if draw(st.booleans()):
        q.flags |= dns.flags.CD
    return q.to_wire(), draw(st.sampled_from([False, False, True]))


def snapshot(sets) -> JournalEntry:
    return JournalEntry(0, EntryKind.SNAPSHOT, ZID, Z, 1, "", tuple(sets))


def change(seq: int, puts, deletes) -> JournalEntry:
    return JournalEntry(seq, EntryKind.CHANGE, ZID, Z, seq, f"C{seq:012d}", tuple(puts),
                        tuple(deletes))


def reference_wires(ref: ServingIndex, wire: bytes, tcp: bool) -> set[bytes | None]:
    """Every response the reference pipeline can give this query (one per weighted outcome)."""
    out: set[bytes | None] = set()
    for _, reply in enumerate_outcomes(lambda picker: ref.answer(wire, tcp=tcp, rng=picker)):
        out.add(None if reply is None else reply.to_wire(TCP_LIMIT if tcp else reply.udp_limit))
    return out


def shown(wire: bytes | None) -> str:
    try:
        return dns.message.from_wire(wire).to_text() if wire else repr(wire)
    except dns.exception.DNSException:
        return repr(wire)


def check(index: ServingIndex, ref: ServingIndex, asked: list[tuple[bytes, bool]]) -> None:
    for wire, tcp in asked:
        got = index.respond(wire, tcp=tcp)
        want = reference_wires(ref, wire, tcp)
        assert got in want, (dns.message.from_wire(wire).question, tcp, shown(got),
                             [shown(w) for w in want])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_sets(), max_size=14), soas(), st.lists(questions(), min_size=1, max_size=40),
       st.lists(record_sets(), max_size=4), st.lists(st.integers(0, 30), max_size=3), soas())
def test_compiled_answers_equal_the_reference(sets, soa_rs, asked, puts, delete_picks, soa2):
    base = [soa_rs, RecordSet(Z, "NS", 300, ("ns1.c.test.",)),
            RecordSet("ns1.c.test.", "A", 300, ("192.0.2.1",))]
    contents = {rs.key: rs for rs in base + sets}
    index = ServingIndex(rng=random.Random(7).random)
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot(contents.values()))
    check(index, ref, asked)
    check(index, ref, asked)  # again: from the templates and the exact table
    present = sorted(contents, key=repr)
    deletes = [present[i % len(present)] for i in delete_picks if present[i % len(present)].rtype != "SOA"]
    entry = change(1, [*puts, soa2], deletes)
    for ix in (index, ref):
        ix.apply(entry)
    check(index, ref, asked)


def zone_sets() -> list[RecordSet]:
    return [soa("ns1.c.test.", "hostmaster.c.test.", 1, 60),
            RecordSet(Z, "NS", 300, ("ns1.c.test.",)),
            RecordSet("ns1.c.test.", "A", 300, ("192.0.2.1",)),
            RecordSet("a.c.test.", "A", 300, ("192.0.2.10",)),
            RecordSet("b.a.c.test.", "TXT", 300, ('"deep"',)),
            RecordSet("*.w.c.test.", "A", 60, ("192.0.2.20",)),
            RecordSet("cn.c.test.", "CNAME", 60, ("a.c.test.",)),
            RecordSet("sub.c.test.", "NS", 60, ("ns.sub.c.test.",)),
            RecordSet("ns.sub.c.test.", "A", 60, ("192.0.2.53",)),
            RecordSet("p.c.test.", "A", 60, ("192.0.2.31",), set_identifier="one", weight=1),
            RecordSet("p.c.test.", "A", 60, ("192.0.2.32",), set_identifier="two", weight=3)]


def test_every_shape_takes_the_compiled_path():
    """NXDOMAIN, NODATA (owner and empty non-terminal), wildcard, referral, CNAME and weighted
    questions are all compiled, and a second random name of a shape renders nothing new."""
    index = ServingIndex(rng=random.Random(1).random)
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot(zone_sets()))
    shapes = [("r1.c.test.", "A"), ("a.c.test.", "MX"), ("a.c.test.", "TXT"), ("x.w.c.test.", "A"),
              ("www.sub.c.test.", "A"), ("cn.c.test.", "A"), ("p.c.test.", "A"), ("a.c.test.", "A")]
    for name, qtype in shapes:
        wire = dns.message.make_query(name, qtype).to_wire()
        assert index.respond(wire, tcp=False) in reference_wires(ref, wire, False)
    assert index.stats["fast"] == len(shapes) and index.stats["fill"] == index.stats["slow"] == 0
    renders = index.compiled.stats["render"]
    for name, qtype in [("r2.c.test.", "A"), ("y.w.c.test.", "A"), ("ftp.sub.c.test.", "A"),
                        ("zz.c.test.", "TXT")]:  # same lengths as the first of their shape
        wire = dns.message.make_query(name, qtype).to_wire()
        assert index.respond(wire, tcp=False) in reference_wires(ref, wire, False)
    assert index.compiled.stats["render"] == renders  # spliced, not rendered


def test_dnslib_reads_compiled_answers_as_it_reads_the_reference():
    index = ServingIndex(rng=lambda: 0.5)
    ref = ServingIndex(cache=False, rng=lambda: 0.5)
    for ix in (index, ref):
        ix.apply(snapshot([rs for rs in zone_sets() if rs.set_identifier is None]))
    for name in ["zz.c.test.", "A.c.TEST.", "q.b.a.c.test.", "x.W.c.test.", "deep.sub.c.test.",
                 "cn.c.test.", "hostmaster.c.test."]:
        for qtype in ["A", "TXT", "SOA"]:
            wire = dns.message.make_query(name, qtype, use_edns=0, payload=1232).to_wire()
            got = index.respond(wire, tcp=False)
            want = ref.respond(wire, tcp=False)
            assert got == want
            assert str(dnslib.DNSRecord.parse(got)) == str(dnslib.DNSRecord.parse(want))
    assert index.stats["fill"] == index.stats["slow"] == 0  # every one compiled


@pytest.mark.parametrize("sets, wire", [
    ([RecordSet("d.c.test.", "DNAME", 60, ("a.c.test.",))],
     dns.message.make_query("x.d.c.test.", "A").to_wire()),  # a zone with a DNAME
    ([], dns.message.make_query("a.c.test.", "ANY").to_wire()),  # ANY (RFC 8482)
    ([], dns.message.make_query("sub.c.test.", "DS").to_wire()),  # DS at a cut
    ([RecordSet("t.c.test.", "TXT", 60, tuple(f'"{"x" * 200}{i}"' for i in range(4)))],
     dns.message.make_query("t.c.test.", "TXT").to_wire()),  # past 512 bytes: truncation
])
def test_rare_shapes_decline_to_the_pipeline(sets, wire):
    index = ServingIndex()
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot(zone_sets() + sets))
    assert index.compiled.respond(wire, tcp=False) is None
    assert index.respond(wire, tcp=False) in reference_wires(ref, wire, False)


def test_a_change_recompiles_only_the_names_it_touches():
    """CNAME answers hold their targets' data: a batch that changes 1,000 targets re-renders
    those 1,000 answers and no other (plain sets are spliced from the zone's own wire)."""
    index = ServingIndex(rng=lambda: 0.5)
    hosts = [RecordSet(f"h{i}.c.test.", "A", 60, (f"10.0.{i // 256}.{i % 256}",)) for i in range(2000)]
    aliases = [RecordSet(f"n{i}.c.test.", "CNAME", 60, (f"h{i}.c.test.",)) for i in range(2000)]
    index.apply(snapshot(zone_sets() + hosts + aliases))
    wires = [dns.message.make_query(rs.name, "A").to_wire() for rs in aliases + hosts]
    for w in wires:
        index.respond(w, tcp=False)
    assert index.stats["fill"] == index.stats["slow"] == 0
    index.exact_udp.clear()  # so every question asks the templates again
    renders = index.compiled.stats["render"]
    puts = [RecordSet(f"h{i}.c.test.", "A", 60, ("192.0.2.99",)) for i in range(1000)]
    index.apply(change(1, puts, []))
    for w in wires:
        index.respond(w, tcp=False)
    assert index.compiled.stats["render"] - renders == 1000
    for i in (0, 999, 1000):
        reply = dns.message.from_wire(index.respond(wires[i], tcp=False))
        assert reply.answer[-1][0].address == ("192.0.2.99" if i < 1000 else "10.0.3.232")


def test_one_step_cnames_are_spliced_without_the_pipeline_or_their_rdata():
    """A CNAME owner's answer (target with the type, without it, missing, out of the zone)
    is rendered from the CNAME's wire rdata: the reference pipeline is not run and the
    CNAME's dnspython rdata is never built (it cost ~100 us of the owner's first query)."""
    index = ServingIndex(rng=lambda: 0.5)
    ref = ServingIndex(cache=False)
    sets = zone_sets() + [RecordSet("Mixed.c.test.", "CNAME", 60, ("A.c.TEST.",)),
                          RecordSet("gone-cn.c.test.", "CNAME", 60, ("nowhere.c.test.",)),
                          RecordSet("out-cn.c.test.", "CNAME", 60, ("www.example.org.",)),
                          # spliced from the target's load-time tails (`_DirectReply._splice`):
                          # two RRs, a target below the owner's parent, one deeper than it
                          RecordSet("two.c.test.", "A", 60, ("192.0.2.7", "192.0.2.8")),
                          RecordSet("cn2.sub2.c.test.", "CNAME", 60, ("Two.c.test.",)),
                          RecordSet("cn3.c.test.", "CNAME", 60, ("b.A.c.test.",))]
    for ix in (index, ref):
        ix.apply(snapshot(sets))
    asked = [("mixed.c.test.", "A"), ("MIXED.c.test.", "TXT"), ("gone-cn.c.test.", "A"),
             ("out-cn.c.test.", "AAAA"), ("cn.c.test.", "A"), ("CN2.sub2.C.test.", "A"),
             ("cn3.c.test.", "TXT")]
    wires = [dns.message.make_query(name, qtype, use_edns=0).to_wire() for name, qtype in asked]
    got = [index.respond(wire, tcp=False) for wire in wires]
    assert index.compiled.stats["direct"] == index.compiled.stats["render"] == len(asked)
    assert index.stats["slow"] == 0
    zone = next(iter(index.table.zones.values()))
    for owner in (b"mixed", b"gone-cn", b"out-cn"):
        # the rdata were never made from their text (asked before the reference answers:
        # the two indexes may share the zone's record sets)
        assert zone.nodes[(owner, b"c", b"test", b"")][5].rrset._pending
    for wire, reply, question in zip(wires, got, asked, strict=True):
        assert reply in reference_wires(ref, wire, False), question


def test_name_key_is_key_of():
    from dns.name import from_text

    from authd.dns.answer import key_of
    for text in ["c.test.", "A.b.C.test.", "*.w.c.test.", "we\\.ird.c.test.", "."]:
        assert name_key(text) == key_of(from_text(text))


def test_the_udp_shells_lane_answers_as_respond_and_fills_the_exact_table():
    """`ServingIndex.compiled_udp` (what the UDP loop calls for queries without additional
    records) gives `respond`'s bytes, keeps an owner's own answer in the exact table when the
    query is asked a second time, and declines what the templates do not answer."""
    index = ServingIndex(rng=lambda: 0.5)
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot(zone_sets()))
    lane = index.compiled_udp
    assert lane is not None
    owner = dns.message.make_query("a.c.test.", "A").to_wire()
    missing = dns.message.make_query("nope.c.test.", "A").to_wire()
    assert lane(owner) == ref.respond(owner, tcp=False)
    assert owner[2:] not in index.exact_udp  # asked once: only marked (random names churn)
    assert lane(owner) == ref.respond(owner, tcp=False)
    assert owner[2:] in index.exact_udp  # asked again: the next one is a table hit in the loop
    assert lane(missing) == ref.respond(missing, tcp=False)
    assert missing[2:] not in index.exact_udp  # random names would only churn the table
    assert lane(dns.message.make_query("a.c.test.", "ANY").to_wire()) is None
    assert ServingIndex(cache=False).compiled_udp is None


def test_a_packet_the_udp_lane_declined_is_not_read_again_by_respond():
    """The UDP loop asks `compiled_udp` first and `respond` after a decline: `respond` does not
    run the compiled path on that same packet again, and still answers as the reference."""
    index = ServingIndex(rng=lambda: 0.5)
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot(zone_sets()))
    compiled = index.compiled
    assert compiled is not None
    calls: list[bytes] = []
    real = compiled.respond

    def counted(wire: bytes, tcp: bool):
        calls.append(wire)
        return real(wire, tcp)

    compiled.respond = counted  # type: ignore[method-assign]
    wire = dns.message.make_query("a.c.test.", "ANY").to_wire()  # ANY: the pipeline's (RFC 8482)
    assert index.compiled_udp(wire) is None  # type: ignore[misc]
    assert index.respond(wire, tcp=False) == ref.respond(wire, tcp=False)
    assert calls == [wire]  # read once
    # another packet (not the exact table's: other case): the compiled path is asked again
    again = dns.message.make_query("A.c.test.", "ANY").to_wire()
    assert index.respond(again, tcp=False) == ref.respond(again, tcp=False)
    assert len(calls) == 2


def test_a_wildcard_added_to_a_zone_without_one_is_synthesised():
    """A zone with no `*` label answers missing names NXDOMAIN without the closest-encloser
    walk; a change batch that adds a wildcard makes the same names synthesised (RFC 4592)."""
    sets = [s for s in zone_sets() if not s.name.startswith("*")]
    index = ServingIndex(rng=lambda: 0.5)
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot(sets))
    asked = [dns.message.make_query(n, "A").to_wire() for n in ("zz.c.test.", "x.zz.c.test.")]
    for wire in asked:
        got = index.respond(wire, tcp=False)
        assert got in reference_wires(ref, wire, False)
        assert dns.message.from_wire(got).rcode() == 3  # NXDOMAIN
    assert index.stats["slow"] == index.stats["fill"] == 0
    for ix in (index, ref):
        ix.apply(change(2, [RecordSet("*.c.test.", "A", 60, ("192.0.2.99",))], []))
    for wire in asked:
        wire = bytes([0x12, 0x34]) + wire[2:]  # not the exact table's packet
        got = index.respond(wire, tcp=False)
        assert got in reference_wires(ref, wire, False)
        assert [rr.to_text() for rr in dns.message.from_wire(got).answer[0]] == ["192.0.2.99"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_sets(), max_size=14), soas(), st.lists(questions(), min_size=1, max_size=30))
def test_udp_read_answers_as_the_reference(sets, soa_rs, asked):
    """`CompiledAnswers.udp_read` (the C UDP loop's entry: the question read in C, the zone
    found in C) shares `respond`'s decision: its answer, spliced as `_spliced` writes it (the
    C loop's rule), is one of the reference pipeline's responses, asked twice (the second
    time an owner's answer comes back as bytes, kept for the exact table)."""
    from authd.dns.wire import read_query

    base = [soa_rs, RecordSet(Z, "NS", 300, ("ns1.c.test.",)),
            RecordSet("ns1.c.test.", "A", 300, ("192.0.2.1",))]
    contents = {rs.key: rs for rs in base + sets}
    index = ServingIndex(rng=random.Random(7).random)
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot(contents.values()))
    compiled = index.compiled
    assert compiled is not None
    zones = compiled.table.zones
    for wire, _ in asked * 2:
        q = read_query(wire)
        if q is None or q[4]:  # the C loop reads questions without EDNS only
            continue
        k, qend, qtype = q[0], q[2], q[3]
        zone = next((zones[k[j:]] for j in range(len(k)) if k[j:] in zones), None)
        got = compiled.udp_read(wire, k, qtype, qend, zone)
        if type(got) is tuple:
            got = compiled._spliced(wire, qend, 0, got)
        if got is None:
            assert compiled.declined is wire  # the pipeline's: `respond` will not read it again
            continue
        want = reference_wires(ref, wire, False)
        assert got in want, (dns.message.from_wire(wire).question, shown(got),
                             [shown(w) for w in want])


def test_udp_read_keeps_an_owner_answer_on_its_second_asking():
    """The C loop's entry (`udp_read`) runs the doorkeeper too: an owner's answer is only
    marked the first time, and on the second comes back as the response's bytes, kept in the
    exact table (so the third is a table hit in C); an NXDOMAIN is never kept."""
    from authd.dns.wire import read_query

    index = ServingIndex(rng=lambda: 0.5)
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot(zone_sets()))
    compiled = index.compiled
    zone = next(iter(compiled.table.zones.values()))
    for name, kept in [("a.c.test.", True), ("cn.c.test.", True), ("nope.c.test.", False)]:
        wire = dns.message.make_query(name, "A", use_edns=False).to_wire()
        q = read_query(wire)
        compiled._seen = bytearray(len(compiled._seen))  # no mark shared with another name
        first = compiled.udp_read(wire, q[0], q[3], q[2], zone)
        assert type(first) is tuple and wire[2:] not in index.exact_udp
        second = compiled.udp_read(wire, q[0], q[3], q[2], zone)
        if kept:
            assert second == ref.respond(wire, tcp=False)
            assert index.exact_udp[wire[2:]] == second[2:]
        else:
            assert type(second) is tuple and wire[2:] not in index.exact_udp
