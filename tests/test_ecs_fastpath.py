"""The hand parser's EDNS Client Subnet option (`authd.dns.wire.parse_fast(allow_ecs=True)`)
against dnspython's: whatever it takes, dnspython reads the same family, source prefix and
address; what it leaves, dnspython decides (and the answer is the same either way)."""

from __future__ import annotations

import ipaddress

import dns.edns
import dns.message
from hypothesis import given, settings
from hypothesis import strategies as st

from authd.dns.answer import Query, classify
from authd.dns.wire import parse_fast


def ecs_query(family: int, source: int, scope: int, raw: bytes) -> bytes:
    q = dns.message.make_query("www.geo.test.", "A", use_edns=0)
    opt = family.to_bytes(2, "big") + bytes((source, scope)) + raw
    q.use_edns(0, options=[dns.edns.GenericOption(8, opt)])
    return q.to_wire()


options = st.tuples(st.sampled_from([1, 2, 3]), st.integers(0, 140), st.integers(0, 2),
                    st.binary(max_size=18))


@settings(max_examples=800, deadline=None)
@given(options)
def test_the_fast_ecs_parser_agrees_with_dnspython(opt):
    wire = ecs_query(*opt)
    fq = parse_fast(wire, allow_ecs=True)
    if fq is None:
        return  # left to dnspython
    assert parse_fast(wire) is None  # the rendered-answer tables never take an ECS query
    (ecs,) = [o for o in dns.message.from_wire(wire).options if o.otype == dns.edns.ECS]
    assert fq.ecs is not None
    family, address, source = fq.ecs
    assert (family, source) == (ecs.family, ecs.srclen) and ecs.scopelen == 0
    assert ipaddress.ip_address(address) == ipaddress.ip_address(ecs.address)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([1, 2]), st.integers(0, 128), st.binary(min_size=16, max_size=16))
def test_well_formed_subnets_take_the_fast_parser(family, source, full):
    size = 4 if family == 1 else 16
    source = min(source, size * 8)
    value = int.from_bytes(full[:size], "big") >> (size * 8 - source) << (size * 8 - source) \
        if source else 0
    raw = value.to_bytes(size, "big")[:(source + 7) // 8]
    wire = ecs_query(family, source, 0, raw)
    query = classify(wire, tcp=False)
    assert isinstance(query, Query) and query.qwire is not None  # the hand parser's Query
    assert query.ecs is not None and query.ecs[0] == family and query.ecs[2] == source
