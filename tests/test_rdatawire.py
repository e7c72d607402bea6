"""The load fast path, checked against dnspython (issue 12).

`authd.rdatawire` turns canonical presentation text into rdata wire forms for the common
types, and `authd.dns.answer.PackedRRset` holds them without dnspython rdata objects. Each must
give exactly what the library gives: the same text, wire and duplicate rule per value, the
same RRset once the rdata are asked for, and, over generated zones and questions, the same
answers as an index built the old way (every set through dnspython's rdata).
"""

from __future__ import annotations

from unittest import mock

import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authd.dns import answer as answer_mod
from authd.dns import rdatawire
from authd.dns.answer import PackedRRset, WireRRset, Zone, ZoneTable, _compiled, answer
from authd.dns.wire import Renderer
from authd.model.records import RecordKey, RecordSet

IN = dns.rdataclass.IN
ldh = st.text(alphabet="abcXYZ019-_", min_size=1, max_size=20)
names = st.lists(ldh, min_size=0, max_size=4).map(lambda ls: ".".join(ls) + "." if ls else ".")
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
txt_string = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
odd = st.text(alphabet='abc019.:" \\;()-*', max_size=20)  # shapes the fast path must leave

VALUES = {
    "A": st.one_of(st.ip_addresses(v=4).map(str), odd),
    "AAAA": st.one_of(st.ip_addresses(v=6).map(str), odd),
    "CNAME": st.one_of(names, odd),
    "NS": names,
    "PTR": names,
    "MX": st.one_of(st.builds(lambda p, n: f"{p} {n}", u16, names), odd),
    "SRV": st.builds(lambda a, b, c, n: f"{a} {b} {c} {n}", u16, u16, u16, names),
    "SOA": st.builds(lambda m, r, a, b, c, d, e: f"{m} {r} {a} {b} {c} {d} {e}",
                     names, names, u32, u32, u32, u32, u32),
    "TXT": st.one_of(st.lists(txt_string, min_size=1, max_size=3).map(
        lambda ss: " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in ss)), odd),
    "CAA": st.builds(lambda f, t, v: f'{f} {t} "{v}"', st.integers(0, 255),
                     st.sampled_from(["issue", "iodef", "issuewild", "X1"]),
                     txt_string.filter(lambda s: '"' not in s and "\\" not in s)),
}


def library(rtype: str, value: str) -> dns.rdata.Rdata | None:
    try:
        return dns.rdata.from_text(IN, dns.rdatatype.from_text(rtype), value,
                                   origin=dns.name.root, relativize=False)
    except (dns.exception.DNSException, ValueError):
        return None


@settings(max_examples=150, deadline=None)
@given(st.data())
@pytest.mark.parametrize("rtype", sorted(VALUES))
def test_one_value_is_dnspython_s(rtype, data):
    """Wherever the fast path answers, dnspython takes the value too and prints the same
    text, writes the same wire, and deduplicates by the same canonical form; canonical values
    (what the store and the zone reader hold) take the fast path."""
    value = data.draw(VALUES[rtype])
    rdtype = dns.rdatatype.from_text(rtype)
    got = rdatawire.one(rdtype, value)
    rd = library(rtype, value)
    if got is None:
        return  # dnspython's to judge (and to refuse, if it is malformed)
    assert rd is not None, value
    text, wire, dup = got
    assert (text, wire, dup) == (rd.to_text(), rd.to_wire(), rd.to_digestable())
    canonical = rdatawire.one(rdtype, rd.to_text())
    assert canonical == got


PLAIN = [("A", "192.0.2.1"), ("AAAA", "2001:db8::1"), ("CNAME", "www.Example.test."),
         ("NS", "ns1.test."), ("PTR", "_x.*.test."), ("MX", "10 mx.test."), ("SRV", "1 2 443 s.test."),
         ("SOA", "ns.test. host.test. 1 7200 900 1209600 60"), ("TXT", '"v=spf1 -all" ""'),
         ("CAA", '0 issue "ca.test; x=1"'), ("CNAME", ".")]


@pytest.mark.parametrize(("rtype", "value"), PLAIN)
def test_canonical_plain_values_take_the_fast_path(rtype, value):
    rd = library(rtype, value)
    assert rd is not None and rd.to_text() == value
    assert rdatawire.one(dns.rdatatype.from_text(rtype), value) == (value, rd.to_wire(), rd.to_digestable())


def slow(name: str, rtype: str, ttl: int, values: tuple[str, ...]) -> WireRRset:
    rdtype = dns.rdatatype.from_text(rtype)
    rrset = WireRRset(dns.name.from_text(name), IN, rdtype)
    for v in values:
        rrset.add(dns.rdata.from_text(IN, rdtype, v, origin=dns.name.root, relativize=False), ttl)
    rrset.ttl = ttl
    return rrset.seal()


def render(rrset: WireRRset) -> bytes:
    question = rrset.name.to_wire() + b"\x00\x01\x00\x01"
    r = Renderer(bytes(12), question, rrset.name.labels[:-1])
    r.rrset(rrset)
    return bytes(r.out)


@settings(max_examples=60, deadline=None)
@given(st.data())
@pytest.mark.parametrize("rtype", sorted(set(VALUES) - {"A", "AAAA"}))
def test_packed_rrset_is_the_dnspython_rrset(rtype, data):
    """A packed set (duplicates by canonical form included) equals the library's: texts,
    wires, tails, its rendering, and the rdata it makes on first use."""
    values = tuple(data.draw(st.lists(VALUES[rtype], min_size=1, max_size=4)))
    values = tuple(rd.to_text() for v in values if (rd := library(rtype, v)) is not None)
    if not values:
        return
    values += values[:1] + tuple(v.upper() for v in values[:1])  # duplicates, some by case
    want = slow("x.test.", rtype, 300, values)
    plain = _compiled.__wrapped__(RecordSet("x.test.", rtype, 300, values))
    fast = plain.rrset
    if rdatawire.encode(dns.rdatatype.from_text(rtype), values) is None:
        return  # an upper-cased TXT/CAA value may fall outside the fast path: nothing to compare
    assert type(fast) is PackedRRset
    assert (fast.texts, fast.wires, fast.tails) == (want.texts, want.wires, want.tails)
    assert (fast.name, fast.rdclass, fast.rdtype, fast.ttl, len(fast)) == \
        (want.name, want.rdclass, want.rdtype, want.ttl, len(want))
    assert render(fast) == render(want)
    assert list(fast) == list(want) and fast == want
    m = dns.message.Message()
    m.answer = [fast]
    assert dns.message.from_wire(m.to_wire()).answer[0] == want


# --- answers: the new build against the old one, on generated zones and questions ----------

ORIGIN = "z.test."
labels = st.sampled_from(["a", "b", "c", "www", "mail", "_sip", "*", "deep"])
owners = st.lists(labels, min_size=1, max_size=3).map(lambda ls: ".".join(ls) + "." + ORIGIN)
in_zone = st.one_of(owners, st.just(ORIGIN))
record = st.one_of(
    st.tuples(st.just("A"), st.ip_addresses(v=4).map(str)),
    st.tuples(st.just("AAAA"), st.ip_addresses(v=6).map(str)),
    st.tuples(st.just("CNAME"), in_zone),
    st.tuples(st.just("MX"), st.builds(lambda p, n: f"{p} {n}", st.integers(0, 20), in_zone)),
    st.tuples(st.just("TXT"), txt_string.filter(lambda s: '"' not in s and "\\" not in s)
              .map(lambda s: f'"{s}"')),
    st.tuples(st.just("SRV"), st.builds(lambda n: f"1 2 3 {n}", in_zone)),
    st.tuples(st.just("CAA"), st.just('0 issue "ca.test"')),
    st.tuples(st.just("PTR"), in_zone),
    st.tuples(st.just("NS"), in_zone),
)


def zone_sets(recs: list[tuple[str, str, str]]) -> list[RecordSet]:
    groups: dict[tuple[str, str], dict[str, None]] = {}
    for owner, rtype, value in recs:
        groups.setdefault((owner, rtype), {})[value] = None
    # a CNAME owns its name alone (RFC 2181 §10.1): drop what would share it
    cnames = {o for (o, t) in groups if t == "CNAME"}
    sets = [RecordSet(o, t, 300, tuple(v)[:1] if t == "CNAME" else tuple(v))
            for (o, t), v in groups.items() if o != ORIGIN and (t == "CNAME" or o not in cnames)]
    sets += [RecordSet(ORIGIN, "SOA", 3600, (f"ns.{ORIGIN} host.{ORIGIN} 1 7200 900 1209600 60",)),
             RecordSet(ORIGIN, "NS", 3600, (f"ns.{ORIGIN}",)),
             RecordSet(f"ns.{ORIGIN}", "A", 3600, ("192.0.2.53",))]
    return sets


def clear_caches() -> None:
    """Forget compiled sets, so each build compiles its own."""
    answer_mod._compiled_set.cache_clear()
    answer_mod._compiled_soa.cache_clear()


def old_way(sets: list[RecordSet]) -> Zone:
    """The build before the fast path: every set's rdata through dnspython."""
    with mock.patch.object(answer_mod, "_addresses", lambda *a: None), \
            mock.patch.object(rdatawire, "FAST_TYPES", frozenset()):
        return Zone.build(ORIGIN, sets)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(owners, record), min_size=1, max_size=25),
       st.lists(st.tuples(st.one_of(owners, st.just(ORIGIN), st.just("nx.a." + ORIGIN)),
                          st.sampled_from(["A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "PTR",
                                           "NS", "SOA", "ANY"])), min_size=1, max_size=12))
def test_answers_equal_the_old_build(recs, questions):
    """Every answer from the packed build is byte for byte the old build's, for UDP and TCP,
    and the dnspython view of it (`Reply.message`) is the same message."""
    clear_caches()
    sets = zone_sets([(o, t, v) for o, (t, v) in recs])
    new = ZoneTable([Zone.build(ORIGIN, sets)])
    clear_caches()
    old = ZoneTable([old_way(sets)])
    clear_caches()
    assert any(isinstance(e.rrset, PackedRRset) for node in new.zones[(b"z", b"test", b"")].nodes.values()
               for e in node.values() if hasattr(e, "rrset"))
    for qname, qtype in questions:
        wire = dns.message.make_query(qname, qtype, use_edns=0).to_wire()
        for tcp in (False, True):
            a = answer(wire, new, rng=lambda: 0.5, tcp=tcp)
            b = answer(wire, old, rng=lambda: 0.5, tcp=tcp)
            limit = 65535 if tcp else 1232
            assert a.to_wire(limit) == b.to_wire(limit), (qname, qtype)
            # (compared as messages: dnspython's own to_wire shuffles the records of a set)
            assert a.message == b.message


def test_the_big_zone_build_skips_the_shared_cache():
    """Past `_CACHED_BUILD` sets, a build compiles each set once without the lru cache (it would
    only churn), and the result is the cached build's."""
    sets = zone_sets([]) + [RecordSet(f"h{i}.{ORIGIN}", "A", 60, (f"10.0.{i >> 8}.{i & 255}",))
                            for i in range(answer_mod._CACHED_BUILD + 1)]
    clear_caches()
    big = Zone.build(ORIGIN, sets)
    assert answer_mod._compiled_set.cache_info().currsize == 0
    small = Zone.build(ORIGIN, sets[:100])
    k = (b"h7", b"z", b"test", b"")
    assert big.nodes[k][1].rrset.tails == small.nodes[k][1].rrset.tails
    assert big.records[RecordKey(f"h7.{ORIGIN}", "A")] == sets[10]


zero_heavy_v6 = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xABC, 0x10]), min_size=8, max_size=8)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.ip_addresses(v=6).map(lambda a: a.packed),
                 zero_heavy_v6.map(lambda ws: b"".join(w.to_bytes(2, "big") for w in ws))),
       st.sampled_from(["compressed", "exploded", "upper", "one-zero-spelled"]))
def test_canonical_ipv6_text_is_parsed_by_hand(packed, spelling):
    """`aaaa_canonical` takes exactly dnspython's own text of an address (unless its first 80
    bits are zero, which dnspython may print with an IPv4 tail), and nothing else."""
    import ipaddress

    import dns.ipv6

    canonical = dns.ipv6.inet_ntoa(packed)
    text = {"compressed": canonical, "exploded": ipaddress.IPv6Address(packed).exploded,
            "upper": canonical.upper(), "one-zero-spelled": canonical.replace("::", ":0:", 1)}[spelling]
    got = rdatawire.aaaa_canonical(text)
    if text == canonical and "." not in text and any(packed[:10]):
        assert got == packed
    else:
        assert got is None or (got == packed and text == canonical)
