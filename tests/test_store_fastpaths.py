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
