"""`answer._soas`: the negative SOA made from a packed SOA's wire equals the one dnspython's
parsed rdata give (RFC 2308 §3: TTL = min(SOA TTL, MINIMUM))."""

from __future__ import annotations

import dns.name
import pytest

from authd.dns import answer
from authd.model.records import RecordSet

ORG = dns.name.from_text("big.test.")


@pytest.mark.parametrize(("ttl", "minimum"), [(3600, 300), (900, 86400), (300, 300), (0, 60)])
def test_packed_and_parsed_negative_soa_agree(ttl, minimum):
    rs = RecordSet("big.test.", "SOA", ttl, (f"ns1.big.test. hostmaster.big.test. 7 7200 3600 1209600 {minimum}",))
    packed = answer._compile_set(rs)
    assert type(packed.rrset) is answer.PackedRRset and packed.rrset._pending  # the fast path
    parsed = answer._compile_set(rs)
    parsed.rrset[0]  # reading an rdata parses them: the reference path
    soa_fast, neg_fast = answer._soas("big.test.", ORG, packed)
    soa_ref, neg_ref = answer._soas("big.test.", ORG, parsed)
    assert neg_fast.ttl == neg_ref.ttl == min(ttl, minimum)
    assert neg_fast.wires == neg_ref.wires and neg_fast.texts == neg_ref.texts
    assert neg_fast.name == neg_ref.name and neg_fast.rdtype == neg_ref.rdtype
    assert list(neg_fast) == list(neg_ref)  # the same rdata when something reads them


def test_no_soa_is_still_refused():
    with pytest.raises(ValueError, match="has no SOA"):
        answer._soas("big.test.", ORG, None)
