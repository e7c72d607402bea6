"""The metrics fold's fast query classifier agrees with dnspython on every query it reads.

`authd.metrics.classify_query` reads the common query shape itself (a flood of random names
makes every query distinct, so this runs once per query) and hands the rest to dnspython;
whatever the fast path returns must be what dnspython says."""

from __future__ import annotations

import dns.edns
import dns.message
import dns.name
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from authd.metrics import _classify_dnspython, _classify_fast, classify_query

labels = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
            min_size=1, max_size=63),
    st.binary(min_size=1, max_size=63),  # any octets: escapes, dots, spaces, non-ASCII
)
rdtypes = st.sampled_from([1, 2, 5, 6, 12, 15, 16, 28, 33, 39, 43, 48, 52, 65, 255, 256, 65280])


def _query(parts: list, rdtype: int, edns: int | None, cookie: bool) -> bytes:
    name = dns.name.Name([p.encode() if isinstance(p, str) else p for p in parts] + [b""])
    opts = [dns.edns.GenericOption(10, bytes(8))] if cookie else []
    q = dns.message.make_query(name, rdtype, use_edns=edns if edns is not None else False,
                               options=opts)
    return q.to_wire()[2:]


@settings(max_examples=600, deadline=None)
@given(st.lists(labels, min_size=0, max_size=6), rdtypes, st.sampled_from([None, 0]),
       st.booleans(), st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=2),
       st.integers(0, 3))
def test_fast_classification_is_dnspythons(parts, rdtype, edns, cookie, flips, cut):
    try:
        key = bytearray(_query(parts, rdtype, edns, cookie))
    except (dns.name.NameTooLong, ValueError):
        return
    for at, value in flips:  # damaged queries too: the fast path must decline or agree
        if at < len(key):
            key[at] = value
    key = bytes(key[:len(key) - cut] if cut < len(key) else key)
    fast = _classify_fast(key)
    if fast is not None:
        assert fast == _classify_dnspython(key)
    assert classify_query(key) == _classify_dnspython(key)


def test_the_fast_path_reads_the_common_shapes():
    """A plain query, with and without a bare OPT, upper case folded: not handed to dnspython."""
    for edns in (False, 0):
        key = dns.message.make_query("Xy-9_z.Example.TEST.", "AAAA", use_edns=edns).to_wire()[2:]
        assert _classify_fast(key) == ("xy-9_z.example.test.", "AAAA")
    key = dns.message.make_query(".", "NS").to_wire()[2:]
    assert _classify_fast(key) == (".", "NS")
