"""A CNAME owner's compiled answer, written without the renderer, equals the reference's.

`CompiledAnswers._direct` answers an owner's CNAME followed one step (RFC 1034 §4.3.2 step 3a)
without the pipeline: out of the zone (the CNAME alone), to a missing name (NXDOMAIN, the SOA
in authority, RFC 2308 §2.1), to a name or an empty non-terminal without the type (NODATA,
RFC 2308 §2.2), or to a plain RRset with load-time tails (spliced). The CNAME and SOA are
written by `_cname_body`, compressing as `authd.dns.wire.Renderer` does (RFC 1035 §4.1.4), so
the bytes depend on where the question's, the target's and the SOA's names share suffixes.
Generated zones (origins of several lengths, labels of mixed case and lengths that move the
pointers, SOA names inside and outside the zone and sharing suffixes with the targets, CNAME
chains, wildcards, empty non-terminals, cuts) are asked every CNAME owner in random case, and
each response must be one the reference pipeline (`ServingIndex.answer`) gives; dnslib decodes
both alike, and `_cname_body` equals `Renderer`'s own writing of the same RRsets.
"""

from __future__ import annotations

import random

import dns.message
import dnslib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authd.dns import compiled
from authd.dns.answer import enumerate_outcomes
from authd.dns.compiled import _cname_body, _SoaParts, name_key, question_key
from authd.dns.index import ServingIndex
from authd.dns.wire import Renderer
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordSet

ORIGINS = ["c.test.", "Zone.EXAMPLE.", "a.b.c.d.test.", "x."]
LABELS = ["a", "B", "cc", "Dd", "www", "ns1", "hostmaster", "mail", "Big", "h0001234",
          "a-long-label-that-moves-every-pointer-along", "ent"]
OUTSIDE = ["out.example.", "Www.Example.Org.", "c.test.other.", "ns1.elsewhere.example.",
           "hostmaster.elsewhere.example."]


@st.composite
def names(draw, origin: str) -> str:
    labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=3))
    return ".".join(labels) + "." + origin


def swapped(name: str) -> str:
    """The name with every other letter's case swapped (a target spelled as no owner is)."""
    return "".join(ch.swapcase() if i % 2 else ch for i, ch in enumerate(name))


@st.composite
def zones(draw) -> tuple[str, list[RecordSet], list[str]]:
    """An origin, its record sets, and the CNAME owners among them."""
    origin = draw(st.sampled_from(ORIGINS))
    inside = names(origin)
    anywhere = st.one_of(inside, st.sampled_from(OUTSIDE), st.just(origin))
    mname, rname = draw(anywhere), draw(anywhere)
    sets = {(origin, "SOA"): RecordSet(origin, "SOA", draw(st.sampled_from([300, 3600])), (
        f"{mname} {rname} {draw(st.integers(1, 9))} 7200 900 1209600 "
        f"{draw(st.sampled_from([30, 600]))}",)),
        (origin, "NS"): RecordSet(origin, "NS", 300, (f"ns1.{origin}",))}
    owners: list[str] = []
    with_data: list[str] = []  # owners of an A or TXT set (no name in their rdata)
    for _ in range(draw(st.integers(1, 12))):
        name = draw(inside)
        kind = draw(st.sampled_from(["cname", "cname", "cname", "a", "txt", "mx", "wild",
                                     "cut"]))
        if any(k[0].lower() == name.lower() for k in sets):
            continue  # one kind per owner (a CNAME owner holds nothing else, RFC 1034 §3.6.2)
        if kind == "cname":
            # an owner with data drawn too (as a spelling of its own): the CNAME and the
            # target's RRset spliced (`_DirectReply._spliced`), most CNAMEs in service
            target = draw(st.one_of(inside, inside, st.sampled_from(OUTSIDE), st.just(origin),
                                    st.just(mname), st.just(rname),
                                    *([st.sampled_from(with_data).map(swapped)] * 2
                                      if with_data else [])))
            sets[(name, "CNAME")] = RecordSet(name, "CNAME", draw(st.sampled_from([60, 600])),
                                              (target,))
            owners.append(name)
        elif kind == "a":
            sets[(name, "A")] = RecordSet(name, "A", 60, ("192.0.2.1", "192.0.2.2"))
            with_data.append(name)
        elif kind == "txt":
            sets[(name, "TXT")] = RecordSet(name, "TXT", 60, ('"t"',))
            with_data.append(name)
        elif kind == "mx":
            sets[(name, "MX")] = RecordSet(name, "MX", 60, (f"10 {draw(anywhere)}",))
        elif kind == "wild":
            sets[("*." + name, "A")] = RecordSet("*." + name, "A", 60, ("192.0.2.9",))
        elif name.lower() != origin.lower():  # a cut, with glue below it
            sets[(name, "NS")] = RecordSet(name, "NS", 60, (f"ns.{name}",))
            sets[(f"ns.{name}", "A")] = RecordSet(f"ns.{name}", "A", 60, ("192.0.2.53",))
    return origin, list(sets.values()), owners


def snapshot(origin: str, sets: list[RecordSet]) -> JournalEntry:
    return JournalEntry(0, EntryKind.SNAPSHOT, "Z0CNAME", origin, 1, "", tuple(sets))


def reference_wires(ref: ServingIndex, wire: bytes) -> set[bytes | None]:
    out: set[bytes | None] = set()
    for _, reply in enumerate_outcomes(lambda picker: ref.answer(wire, tcp=False, rng=picker)):
        out.add(None if reply is None else reply.to_wire(reply.udp_limit))
    return out


def spelled(name: str, seed: int) -> str:
    rnd = random.Random(seed)
    return "".join(ch.swapcase() if rnd.random() < 0.5 else ch for ch in name)  # 0x20


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zones(), st.lists(st.tuples(st.sampled_from(["A", "AAAA", "TXT", "MX", "CNAME", "NS"]),
                                   st.integers(0, 2**32), st.booleans()),
                         min_size=1, max_size=6))
def test_cname_owners_answer_as_the_reference(zone, asks):
    origin, sets, owners = zone
    index = ServingIndex(rng=lambda: 0.5)
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot(origin, sets))
    for _ in range(2):  # the second time from the owner's template, then the exact table
        for owner in owners:
            for qtype, seed, edns in asks:
                wire = dns.message.make_query(spelled(owner, seed), qtype,
                                              use_edns=0 if edns else None).to_wire()
                got = index.respond(wire, tcp=False)
                want = reference_wires(ref, wire)
                assert got in want, (owner, qtype, got, want)
                if got is not None and len(want) == 1:
                    assert str(dnslib.DNSRecord.parse(got)) == \
                        str(dnslib.DNSRecord.parse(want.pop()))
    assert index.compiled.stats["mismatch"] == 0


def renderer_body(question: bytes, cname, soa) -> bytes:
    """The reference: `Renderer` writing the CNAME RRset and then the SOA RRset."""
    r = Renderer(bytes(12), question, tuple(question_key(question)[:-1]))
    r.rrset(cname)
    if soa is not None:
        r.rrset(soa)
    return bytes(r.out[12 + len(question):])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zones(), st.integers(0, 2**32))
def test_cname_body_writes_as_the_renderer(zone, seed):
    """`_cname_body` against `Renderer.rrset` for every CNAME of the zone and its SOA: the
    same octets for the CNAME alone and for the CNAME followed by the negative SOA."""
    origin, sets, owners = zone
    index = ServingIndex(rng=lambda: 0.5)
    index.apply(snapshot(origin, sets))
    z = next(iter(index.table.zones.values()))
    soa = z.negative_soa
    parts = _SoaParts.of(soa)
    assert parts is not None
    for owner in owners:
        k = name_key(owner)
        cname = z.nodes[k][5].rrset
        question = dns.message.make_query(spelled(owner, seed), "A").to_wire()[12:].lower()
        target = tuple(cname[0].target.labels[:-1])
        labels = question_key(question)[:-1]
        assert _cname_body(question, labels, cname, target, None) == \
            renderer_body(question, cname, None)
        assert _cname_body(question, labels, cname, target, parts) == \
            renderer_body(question, cname, soa)


def zone_sets() -> list[RecordSet]:
    z = "c.test."
    return [RecordSet(z, "SOA", 300, ("ns1.c.test. hostmaster.c.test. 1 7200 900 1209600 60",)),
            RecordSet(z, "NS", 300, ("ns1.c.test.",)),
            RecordSet("ns1.c.test.", "A", 300, ("192.0.2.1",)),
            RecordSet("a.c.test.", "A", 300, ("192.0.2.10",)),
            RecordSet("b.ent.c.test.", "A", 300, ("192.0.2.11",)),
            RecordSet("gone.c.test.", "CNAME", 600, ("H0001234.C.test.",)),
            RecordSet("nodata.c.test.", "CNAME", 600, ("a.c.test.",)),
            RecordSet("to-ent.c.test.", "CNAME", 600, ("ent.c.test.",)),
            RecordSet("out.c.test.", "CNAME", 600, ("www.example.org.",))]


@pytest.mark.parametrize("name, qtype, rcode, ns", [
    ("gone.c.test.", "A", 3, 1),  # NXDOMAIN at the target (RFC 2308 §2.1)
    ("Nodata.C.test.", "TXT", 0, 1),  # the target without the type (RFC 2308 §2.2)
    ("to-ent.c.test.", "A", 0, 1),  # the target an empty non-terminal
    ("out.c.test.", "AAAA", 0, 0),  # out of the zone: the CNAME alone
])
def test_cname_owners_are_written_without_the_renderer(monkeypatch, name, qtype, rcode, ns):
    """These answers take the direct path (no pipeline: `render` counts it, `direct` says it
    was not the pipeline) and never call the renderer (it is made to fail here)."""
    index = ServingIndex(rng=lambda: 0.5)
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot("c.test.", zone_sets()))

    def refuse(*args, **kwargs):
        raise AssertionError("the renderer was used")

    monkeypatch.setattr(compiled, "Renderer", refuse)
    wire = dns.message.make_query(name, qtype).to_wire()
    got = index.respond(wire, tcp=False)
    assert index.compiled.stats["direct"] == index.compiled.stats["render"] == 1
    assert index.stats["slow"] == index.stats["fill"] == 0
    assert got in reference_wires(ref, wire)
    reply = dns.message.from_wire(got)
    assert (reply.rcode(), len(reply.answer), len(reply.authority)) == (rcode, 1, ns)


def test_nodata_and_a_known_cname_owner_are_decided_without_decide(monkeypatch):
    """NODATA at an owner and a CNAME owner's answer once its template is made are decided
    inline in `_shape_of` (no `_decide`, no lowered question), and still equal the reference."""
    index = ServingIndex(rng=lambda: 0.5)
    ref = ServingIndex(cache=False)
    for ix in (index, ref):
        ix.apply(snapshot("c.test.", zone_sets()))
    first = [dns.message.make_query(n, "A").to_wire() for n in ("gone.c.test.", "out.c.test.")]
    for wire in first:  # makes the owners' templates
        assert index.compiled.respond(wire, False) is not None
    calls: list = []
    real = index.compiled._decide
    monkeypatch.setattr(index.compiled, "_decide", lambda *a: calls.append(a) or real(*a))
    asked = [dns.message.make_query(n, t).to_wire() for n, t in
             [("a.c.test.", "AAAA"), ("A.c.TEST.", "TXT"), ("ns1.c.test.", "MX"),
              ("GONE.c.test.", "A"), ("out.C.test.", "A")]]
    for wire in asked:
        got = index.compiled.respond(wire, False)
        assert got is not None and got[0] in reference_wires(ref, wire)
    assert calls == []
    # a question `_shape_of` does not decide inline still goes there: the zone's apex NS
    wire = dns.message.make_query("c.test.", "NS").to_wire()
    index.compiled.respond(wire, False)
    assert len(calls) == 1
