"""dnslib as an independent second decoder: every wire answer authd renders decodes to the same
header, question, records and EDNS in dnslib as in dnspython."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rdatatype
import pytest
from dnslib import DNSRecord

from authd.dns.index import ServingIndex, snapshot_entries
from tests.test_differential import NAMES as DIFF_NAMES
from tests.test_differential import TYPES as DIFF_TYPES

NAMES = [*DIFF_NAMES, "dynamodb.us-east-1.api.aws.", "DynamoDB.US-East-1.api.aws.",
         "plan-0001.dynamodb.us-east-1.api.aws.", "dynamodb.us-east-1.amazonaws.com.",
         "nosuch.api.aws.", "api.aws."]
TYPES = [t for t in DIFF_TYPES if t != "HINFO"]


def via_dnspython(wire: bytes) -> dict:
    m = dns.message.from_wire(wire)

    def rrs(section):
        return [(str(r.name).lower(), int(r.rdtype), r.ttl, rd.to_text())
                for r in section if r.rdtype != dns.rdatatype.OPT for rd in r]

    return {
        "id": m.id, "rcode": m.rcode() & 0xF, "qr": bool(m.flags & dns.flags.QR),
        "aa": bool(m.flags & dns.flags.AA), "tc": bool(m.flags & dns.flags.TC),
        "rd": bool(m.flags & dns.flags.RD),
        "question": [(str(q.name), int(q.rdtype)) for q in m.question],
        "answer": rrs(m.answer), "authority": rrs(m.authority), "additional": rrs(m.additional),
        "edns": (int(m.payload), bool(m.ednsflags & dns.flags.DO)) if m.edns >= 0 else None,
    }


def via_dnslib(wire: bytes) -> dict:
    r = DNSRecord.parse(wire)
    h = r.header

    def text(rr) -> str:
        return str(rr.rdata)

    def rrs(section):
        return [(str(rr.rname).lower(), rr.rtype, rr.ttl, text(rr))
                for rr in section if rr.rtype != 41]

    opts = [rr for rr in r.ar if rr.rtype == 41]
    return {
        "id": h.id, "rcode": h.rcode, "qr": bool(h.qr), "aa": bool(h.aa), "tc": bool(h.tc),
        "rd": bool(h.rd),
        "question": [(str(q.qname), q.qtype) for q in r.questions],
        "answer": rrs(r.rr), "authority": rrs(r.auth), "additional": rrs(r.ar),
        # OPT: CLASS is the payload, the DO bit is the top bit of the TTL's flags (RFC 6891)
        "edns": (opts[0].rclass, bool(opts[0].ttl & 0x8000)) if opts else None,
    }


@pytest.fixture(scope="module")
def idx(shipped_zones) -> ServingIndex:
    index = ServingIndex(rng=lambda: 0.7)
    for e in snapshot_entries(shipped_zones):
        index.apply(e)
    return index


@pytest.mark.parametrize("variant", ["plain", "edns", "edns-do", "tcp"])
def test_every_answer_decodes_the_same_in_dnslib_and_dnspython(idx, variant):
    count = 0
    for i, name in enumerate(NAMES):
        for qtype in TYPES:
            edns = 0 if variant.startswith("edns") else None
            q = dns.message.make_query(name, qtype, use_edns=edns,
                                       want_dnssec=variant == "edns-do")
            q.id = i
            wire = idx.respond(q.to_wire(), tcp=variant == "tcp")
            assert wire is not None
            a, b = via_dnspython(wire), via_dnslib(wire)
            assert a == b, (name, qtype, variant)
            count += 1
    assert count > 300


@pytest.mark.parametrize("edns", [None, 0])
def test_hand_renderer_matches_dnspython_renderer(idx, edns):
    """authd.dns.wire.Renderer writes what dnspython's Message.to_wire writes, byte for byte."""
    from authd.dns.answer import answer

    count = 0
    for i, name in enumerate(NAMES):
        for qtype in TYPES:
            q = dns.message.make_query(mixed(name, i), qtype, use_edns=edns)
            q.id = i
            reply = answer(q.to_wire(), idx.table, rng=lambda: 0.3)
            ours = reply.render()
            theirs = reply.message.to_wire(want_shuffle=False)
            assert ours == theirs, (name, qtype)
            count += 1
    assert count > 300


def mixed(name: str, i: int) -> str:
    return "".join(c.upper() if (i + j) % 3 == 0 else c for j, c in enumerate(name))
