"""The serving index's hand-written fast paths, checked against dnspython.

`authd.dns.answer` compiles address record sets without dnspython rdata (`_addresses`,
`AddressRRset`) and makes plain names without dnspython's checks (`_owner`). Each must give
exactly what the library gives, and anything they do not take must still go through the
library, so a malformed value raises before a change batch alters anything.
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authd.dns.answer import (
    AddressRRset,
    Plain,
    WireRRset,
    _addresses,
    _compiled,
    _owner,
    key_of,
)
from authd.dns.index import ServingIndex
from authd.dns.wire import Renderer
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordKey, RecordSet

A, AAAA, IN = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdataclass.IN


def library(rdtype: int, values: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    """What dnspython makes of the values: an RRset's texts and wires (raises on bad input)."""
    rrset = dns.rrset.RRset(dns.name.root, IN, rdtype)
    for v in values:
        rrset.add(dns.rdata.from_text(IN, rdtype, v))
    return tuple(rd.to_text() for rd in rrset), tuple(rd.to_wire() for rd in rrset)


def raw(name: str, rtype: str, ttl: int, values: tuple[str, ...]) -> RecordSet:
    """A record set as the store rebuilds one (`sqlstore._decode`): values not re-checked."""
    rs = object.__new__(RecordSet)
    for field, value in (("name", name), ("rtype", rtype), ("ttl", ttl), ("values", values),
                         ("set_identifier", None), ("weight", None), ("alias", None), ("routing", None),
                         ("key", RecordKey(name, rtype))):
        object.__setattr__(rs, field, value)
    return rs


ipv4_texts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.text(alphabet="0123456789.", min_size=0, max_size=17),
    st.sampled_from(["0.0.0.0", "255.255.255.255", "256.0.0.1", "01.2.3.4", "1.2.3.04", "1.2.3",
                     "1.2.3.4.5", " 1.2.3.4", "1.2.3.4 ", "1..2.3", "0x1.2.3.4", "1.2.3.4.",
                     "\uff11.2.3.4", "1.2.3.4\n", "-1.2.3.4", "+1.2.3.4"]),
)
ipv6_texts = st.one_of(
    st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=6).map(lambda a: a.exploded.upper()),
    st.text(alphabet="0123456789abcdefABCDEF:.", min_size=0, max_size=45),
    st.sampled_from(["::", "::1", "::ffff:192.0.2.1", "2001:db8::1:0:0:1", "2001:DB8::1",
                     "2001:db8:0:0:0:0:0:1", "fe80::1%eth0", "1:2:3:4:5:6:7:8:9", ":::",
                     "2001:db8::g", "::192.0.2.1", "1::2::3", "0001:db8::1"]),
)


def check_against_library(rdtype: int, values: tuple[str, ...]) -> tuple | None:
    """`_addresses` agrees with dnspython wherever it answers, and the compiled record set
    (fast path or not) is dnspython's: same texts and wires, or an error."""
    try:
        want = library(rdtype, values)
    except (dns.exception.DNSException, ValueError):
        want = None
    got = _addresses(rdtype, values)
    if want is None:
        assert got is None
        with pytest.raises((dns.exception.DNSException, ValueError)):
            _compiled.__wrapped__(raw("x.test.", dns.rdatatype.to_text(rdtype), 60, values))
    else:
        assert got is None or got == want
        rrset = _compiled.__wrapped__(raw("x.test.", dns.rdatatype.to_text(rdtype), 60, values)).rrset
        assert (rrset.texts, rrset.wires) == want
    return got


@settings(max_examples=400, deadline=None)
@given(st.lists(ipv4_texts, min_size=1, max_size=4))
def test_ipv4_values_parse_as_dnspython(values):
    """The hand parser takes every dotted quad dnspython takes, with the same texts and wires
    (duplicates dropped, first kept, order as given); the rest is dnspython's to judge."""
    values = tuple(values)
    got = check_against_library(A, values)
    if all(v and set(v) <= set("0123456789.") for v in values):
        try:
            library(A, values)
        except dns.exception.DNSException:
            return
        assert got is not None  # nothing dnspython takes in this form misses the fast path


@settings(max_examples=400, deadline=None)
@given(st.lists(ipv6_texts, min_size=1, max_size=4))
def test_ipv6_values_parse_as_dnspython(values):
    values = tuple(values)
    check_against_library(AAAA, values)
    try:
        canonical = tuple(str(ipaddress.IPv6Address(v)) for v in values)
    except ValueError:
        return
    if "%" not in "".join(canonical):
        assert _addresses(AAAA, canonical) is not None  # the common case takes the fast path


def slow_rrset(name: str, rdtype: int, ttl: int, values: tuple[str, ...]) -> WireRRset:
    """The set as `_compiled` builds any other type: dnspython rdata, then sealed."""
    rrset = WireRRset(dns.name.from_text(name), IN, rdtype)
    for v in values:
        rrset.add(dns.rdata.from_text(IN, rdtype, v), ttl)
    rrset.ttl = ttl
    return rrset.seal()


def render(rrset: WireRRset) -> bytes:
    question = rrset.name.to_wire() + b"\x00\x01\x00\x01"
    r = Renderer(bytes(12), question, rrset.name.labels[:-1])
    r.rrset(rrset)
    return bytes(r.out)


CASES = [
    ("h1.api.bench.test.", "A", 60, ("192.0.2.1",)),
    ("Mixed.Case.test.", "A", 0, ("10.0.0.1", "10.0.0.2", "10.0.0.1", "255.255.255.255")),
    ("v6.test.", "AAAA", 2**31 - 1, ("2001:db8::1", "::ffff:192.0.2.1", "::", "2001:db8::1")),
]


@pytest.mark.parametrize(("name", "rtype", "ttl", "values"), CASES)
def test_address_rrset_is_the_dnspython_rrset(name, rtype, ttl, values):
    rdtype = dns.rdatatype.from_text(rtype)
    rs = RecordSet(name, rtype, ttl, values)
    plain = _compiled(rs)
    assert isinstance(plain, Plain) and type(plain.rrset) is AddressRRset
    fast, slow = plain.rrset, slow_rrset(rs.name, rdtype, ttl, values)
    assert plain.key == key_of(slow.name)
    assert (fast.wires, fast.texts, fast.tails) == (slow.wires, slow.texts, slow.tails)
    assert (fast.name, fast.rdclass, fast.rdtype, fast.ttl) == (slow.name, IN, rdtype, ttl)
    assert fast.name.labels == slow.name.labels
    # Rendered into a response, compressed against the question, byte for byte
    assert render(fast) == render(slow)
    # The rdata objects, made on first use, are the library's own
    assert len(fast) == len(slow) and list(fast) == list(slow)
    assert all(type(rd) is (dns.rdtypes.IN.A.A if rdtype == A else dns.rdtypes.IN.AAAA.AAAA)
               for rd in fast)
    assert fast == slow and fast[0] == slow[0] and fast.to_text() == slow.to_text()
    m = dns.message.Message()
    m.answer = [fast]
    assert dns.message.from_wire(m.to_wire()).answer[0] == slow
    # Once dnspython has its hands on the set, sealing renders from the rdata again
    assert fast.seal().wires == slow.wires


def test_address_rrset_edited_through_dnspython_reseals():
    rrset = _compiled(RecordSet("e.test.", "A", 60, ("192.0.2.1",))).rrset
    copy = AddressRRset(rrset.name, A, 60, rrset.texts, rrset.wires)
    copy.add(dns.rdtypes.IN.A.A(IN, A, "192.0.2.2"), 60)
    assert copy.seal().texts == ("192.0.2.1", "192.0.2.2")
    assert copy.tails == slow_rrset("e.test.", A, 60, ("192.0.2.1", "192.0.2.2")).tails


label = st.text(alphabet="abcXYZ0189-_*", min_size=1, max_size=63)


@settings(max_examples=300, deadline=None)
@given(st.lists(label, min_size=0, max_size=8), st.integers(0, 4))
def test_plain_names_equal_dnspython_names(labels, pad):
    """Names made without dnspython's checks equal `dns.name.from_text`'s, their keys equal
    `key_of`'s (whatever the case), and anything the library refuses (too long) still raises."""
    labels = labels + ["x" * 63] * pad  # reach past 255 octets now and then
    text = ".".join(labels) + "."
    try:
        want = dns.name.from_text(text)
    except dns.name.NameTooLong:
        with pytest.raises(dns.name.NameTooLong):
            _owner.__wrapped__(text)
        return
    got, key = _owner.__wrapped__(text)
    assert type(got) is type(want)
    assert got.labels == want.labels and got == want and hash(got) == hash(want)
    assert key == key_of(want) and _owner.__wrapped__(text.lower())[1] == key
    assert got.to_text() == want.to_text() and got.to_wire() == want.to_wire()
    with pytest.raises(TypeError):
        got.labels = ()  # type: ignore[misc]


@pytest.mark.parametrize("size", [253, 254, 255])
def test_name_length_limit_is_the_library_s(size):
    labels, left = [], size
    while left > 0:
        n = min(63, left - 1) if left > 1 else 1
        labels.append("a" * max(n, 1))
        left -= max(n, 1) + 1
    text = ".".join(labels) + "."
    try:
        want = dns.name.from_text(text)
    except dns.name.NameTooLong:
        with pytest.raises(dns.name.NameTooLong):
            _owner.__wrapped__(text)
    else:
        assert _owner.__wrapped__(text) == (want, key_of(want))


BAD_VALUES = [("A", "256.1.1.1"), ("A", "01.2.3.4"), ("A", "1.2.3"), ("A", "not-an-address"),
              ("AAAA", "2001:db8::g"), ("AAAA", "1::2::3"), ("AAAA", "fe80::1%eth0")]


@pytest.mark.parametrize(("rtype", "value"), BAD_VALUES)
def test_a_malformed_value_raises_before_any_change(rtype, value):
    """A value the store should never hold (the store rebuilds record sets without re-checking)
    makes the whole entry fail, leaving every answer as it was."""
    soa = RecordSet("z.test.", "SOA", 60, ("ns.z.test. a.z.test. 1 7200 900 1209600 60",))
    index = ServingIndex(rng=lambda: 0.5)
    index.apply(JournalEntry(seq=1, kind=EntryKind.SNAPSHOT, zone_id="Z1", zone_name="z.test.",
                             serial=1, change_id="", puts=(soa,)))
    ask = dns.message.make_query("good.z.test.", rtype).to_wire()
    before = index.respond(ask, tcp=False)
    good = RecordSet("good.z.test.", rtype, 60, ("192.0.2.7" if rtype == "A" else "2001:db8::7",))
    entry = JournalEntry(seq=2, kind=EntryKind.CHANGE, zone_id="Z1", zone_name="z.test.",
                         serial=2, change_id="C2",
                         puts=(good, raw("bad.z.test.", rtype, 60, (value,))))
    with pytest.raises((dns.exception.DNSException, ValueError)):
        index.apply(entry)
    assert index.respond(ask, tcp=False) == before and index.seq == 1
    assert RecordKey("good.z.test.", rtype) not in index._by_id["Z1"].records


def test_a_change_forgets_its_zones_answers_in_every_table():
    """Forgetting runs per table (the C-level pops): a change drops its zone's rendered answers
    from the question table and both exact tables, and nobody else's; the next answers are
    the new ones, byte for byte what a fresh index gives."""
    def snapshot(zone: str, zid: str, *sets: RecordSet) -> JournalEntry:
        soa = RecordSet(zone, "SOA", 60, (f"ns.{zone} a.{zone} 1 7200 900 1209600 60",))
        return JournalEntry(seq=0, kind=EntryKind.SNAPSHOT, zone_id=zid, zone_name=zone,
                            serial=1, change_id="", puts=(soa, *sets))

    mine = [RecordSet(f"h{i}.z.test.", "A", 60, (f"192.0.2.{i}",)) for i in range(20)]
    theirs = RecordSet("a.y.test.", "A", 60, ("198.51.100.1",))
    big = RecordSet("big.z.test.", "TXT", 60, tuple(f'"{i:03d}{"x" * 90}"' for i in range(8)))
    index = ServingIndex(rng=lambda: 0.5)
    index.apply(snapshot("z.test.", "Z1", *mine, big))
    index.apply(snapshot("y.test.", "Z2", theirs))
    asks = [dns.message.make_query(name, "A", use_edns=edns).to_wire()
            for name in ["h3.z.test.", "a.y.test.", "nope.z.test."] for edns in (None, 0)]
    asks.append(dns.message.make_query("big.z.test.", "TXT").to_wire())  # truncated over UDP
    for wire in asks:
        for tcp in (False, True):
            index.respond(wire, tcp=tcp)
    assert all(len(t) > 0 for t in index._tables[:3])  # [3]: per-source answers, none here
    changed = RecordSet("h3.z.test.", "A", 60, ("203.0.113.3",))
    index.apply(JournalEntry(seq=1, kind=EntryKind.CHANGE, zone_id="Z1", zone_name="z.test.",
                             serial=2, change_id="C1", puts=(changed,)))
    kept = {key for table in index._tables for key in table}
    assert kept and all(b"\x01y\x04test" in (k[1] if isinstance(k, tuple) else k) for k in kept)
    fresh = ServingIndex(rng=lambda: 0.5)
    fresh.apply(snapshot("z.test.", "Z1", *[changed if rs.key == changed.key else rs
                                             for rs in mine], big))
    fresh.apply(snapshot("y.test.", "Z2", theirs))
    for wire in asks:
        for tcp in (False, True):
            assert index.respond(wire, tcp=tcp) == fresh.respond(wire, tcp=tcp)
    reply = dns.message.from_wire(index.respond(asks[0], tcp=False))
    assert reply.answer[0][0].address == "203.0.113.3"
    truncated = dns.message.from_wire(index.respond(asks[-1], tcp=False))
    assert truncated.flags & dns.flags.TC
