"""The fast paths in the record model agree with dnspython, which they stand in for."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from authd.model.records import canonical_name, canonical_value

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
    from authd.model.changes import listing_key
    from authd.model.records import RecordSet, route53_sort_key

    sets = [
        RecordSet(".".join([*labels, "t"]) + ".", rtype, 60, ('"x"',) if rtype == "TXT" else
                  {"A": ("192.0.2.1",), "AAAA": ("2001:db8::1",), "NS": ("ns.t.",)}[rtype],
                  set_identifier=ident, weight=None if ident is None else 1)
        for labels, rtype, ident in items
    ]
    by_tuple = sorted(sets, key=route53_sort_key)
    by_string = sorted(sets, key=lambda rs: listing_key(rs.name, rs.rtype, rs.set_identifier))
    assert [route53_sort_key(rs) for rs in by_tuple] == [route53_sort_key(rs) for rs in by_string]


texts = st.one_of(st.text(alphabet='abc.-_\\"*é\x01 ', max_size=12), st.sampled_from(["h1.t.", "192.0.2.1", '"lock a"']))


@settings(max_examples=800)
@given(texts, st.sampled_from(["A", "TXT", 'T"X']), st.one_of(st.none(), st.integers(0, 2**31)),
       st.lists(texts, max_size=3), st.one_of(st.none(), texts), st.one_of(st.none(), st.integers(0, 255)),
       st.one_of(st.none(), st.tuples(texts, st.sampled_from(["Z0T"]), st.booleans())))
def test_store_encoding_matches_json_dumps(name, rtype, ttl, values, set_id, weight, alias):
    """The store's hand-written row encoding is json.dumps's, byte for byte, and decodes back."""
    import json

    from authd.store.sqlstore import _decode, _decode_all, _dumps, _encode

    rs = _decode([name, rtype, ttl, values, set_id, weight, list(alias) if alias else None])
    assert _dumps(rs) == json.dumps(_encode(rs))
    assert _decode_all([_dumps(rs), _dumps(rs)]) == [rs, rs]


def test_store_encoding_takes_the_fast_path_for_plain_sets():
    """Guards the property above against vacuity: a plain A set is written by the f-string."""
    import authd.store.sqlcore as S  # where _dumps lives: its json must not be needed
    from authd.model.records import RecordSet

    rs = RecordSet("h1.t.", "A", 60, ("192.0.2.1", "192.0.2.2"))
    real_json = S.json
    S.json = None  # type: ignore[assignment]  # the fast path must not need it
    try:
        assert S._dumps(rs) == '["h1.t.", "A", 60, ["192.0.2.1", "192.0.2.2"], null, null, null]'
    finally:
        S.json = real_json
