"""The fast paths in the record model agree with dnspython, which they stand in for."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from authd.records import canonical_name, canonical_value

labels = st.text(alphabet="abcXYZ019-_", min_size=1, max_size=63)


@settings(max_examples=500)
@given(st.lists(labels, min_size=1, max_size=5), st.booleans())
def test_plain_names_match_dnspython(parts, dot):
    text = ".".join(parts) + ("." if dot else "")
    try:
        slow = dns.name.from_text(text).canonicalize().to_text()
    except dns.exception.DNSException:
        return
    assert canonical_name(text) == slow


@settings(max_examples=500)
@given(st.lists(st.integers(0, 255), min_size=4, max_size=4), st.booleans())
def test_dotted_quads_match_dnspython(octets, pad):
    text = ".".join(("0" + str(o)) if pad and o < 10 else str(o) for o in octets)
    try:
        slow = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, text).to_text()
    except dns.exception.DNSException:
        return
    assert canonical_value("A", text) == slow


names = st.lists(st.text(alphabet="abz09-_", min_size=1, max_size=4), min_size=0, max_size=4)


@settings(max_examples=500)
@given(st.lists(st.tuples(names, st.sampled_from(["A", "AAAA", "TXT", "NS"]),
                          st.one_of(st.none(), st.sampled_from(["a", "b", "lb-1"]))), min_size=2, max_size=8))
def test_listing_key_orders_like_route53_sort_key(items):
    from authd.changes import listing_key
    from authd.records import RecordSet, route53_sort_key

    sets = [
        RecordSet(".".join([*labels, "t"]) + ".", rtype, 60, ('"x"',) if rtype == "TXT" else
                  {"A": ("192.0.2.1",), "AAAA": ("2001:db8::1",), "NS": ("ns.t.",)}[rtype],
                  set_identifier=ident, weight=None if ident is None else 1)
        for labels, rtype, ident in items
    ]
    by_tuple = sorted(sets, key=route53_sort_key)
    by_string = sorted(sets, key=lambda rs: listing_key(rs.name, rs.rtype, rs.set_identifier))
    assert [route53_sort_key(rs) for rs in by_tuple] == [route53_sort_key(rs) for rs in by_string]
