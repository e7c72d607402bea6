"""The pure answer pipeline: Route 53 alias and weighted semantics and RFC behaviour, no sockets."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

import authd.dns.answer
import authd.dns.index
import authd.dns.wire
from authd.dns.answer import (
    OUR_PAYLOAD,
    Outcome,
    Zone,
    ZoneTable,
    answer,
    answer_wire,
    make_query_wire,
)
from authd.model.records import AliasTarget, RecordSet

ORIGIN = "t.test."
SOA_VALUE = "ns1.t.test. hostmaster.t.test. 7 3600 900 604800 120"


def base_sets() -> list[RecordSet]:
    return [
        RecordSet(ORIGIN, "SOA", 900, (SOA_VALUE,)),
        RecordSet(ORIGIN, "NS", 3600, ("ns1.t.test.",)),
        RecordSet("ns1.t.test.", "A", 3600, ("192.0.2.1",)),
    ]


def alias(name: str, rtype: str, target: str, ident: str | None = None, weight: int | None = None):
    return RecordSet(name, rtype, alias=AliasTarget(target, "Z0T0TEST"), set_identifier=ident,
                     weight=weight)


def table(*extra: RecordSet) -> ZoneTable:
    return ZoneTable([Zone.build(ORIGIN, [*base_sets(), *extra])])


def ask(zones: ZoneTable, qname: str, qtype: str = "A", *, rng: object = None, edns: bool = False,
        tcp: bool = False, want_dnssec: bool = False):
    use = edns or want_dnssec
    q = dns.message.make_query(qname, qtype, use_edns=0 if use else None,
                               want_dnssec=want_dnssec, payload=OUR_PAYLOAD if use else None)
    reply = answer(q.to_wire(), zones, rng=rng or random.Random(1), tcp=tcp)
    assert reply is not None
    return reply


def plan_tree(weights: dict[str, int], addr_prefix: str = "192.0.2.") -> list[RecordSet]:
    """stable alias -> weighted plan root -> member aliases -> leaves with A records."""
    out = [alias("svc.t.test.", "A", "plan-0001.svc.t.test.")]
    for i, (lb, w) in enumerate(sorted(weights.items()), start=10):
        leaf = f"{lb}.plan-0001.svc.t.test."
        out.append(alias("plan-0001.svc.t.test.", "A", leaf, ident=lb, weight=w))
        out.append(RecordSet(leaf, "A", 30 + i, (f"{addr_prefix}{i}",)))
    return out


# --- Route 53 semantics ------------------------------------------------------------------------


def test_alias_answers_with_query_name_and_target_ttl_and_no_cname():
    zones = table(*plan_tree({"lb1": 1}))
    reply = ask(zones, "SVC.t.test.")
    m = reply.message
    assert reply.outcome is Outcome.HIT and m.rcode() == dns.rcode.NOERROR
    assert m.flags & dns.flags.AA
    assert len(m.answer) == 1
    rrset = m.answer[0]
    assert rrset.rdtype == dns.rdatatype.A  # no CNAME shown
    assert rrset.name == dns.name.from_text("svc.t.test.")
    assert rrset.ttl == 40  # the leaf's TTL
    assert [rd.address for rd in rrset] == ["192.0.2.10"]


def test_dangling_alias_is_the_outage_noerror_empty_answer_with_soa():
    # The plan tree was deleted; the stable alias still points at it (October 2025).
    zones = table(alias("svc.t.test.", "A", "plan-0001.svc.t.test."),
                  RecordSet("plan-0001.svc.t.test.", "TXT", 60, ('"leftover"',)))
    reply = ask(zones, "svc.t.test.")
    m = reply.message
    assert reply.outcome is Outcome.NODATA
    assert m.rcode() == dns.rcode.NOERROR and m.answer == []
    assert m.flags & dns.flags.AA
    assert [r.rdtype for r in m.authority] == [dns.rdatatype.SOA]
    assert m.authority[0].ttl == 120  # min(SOA TTL 900, MINIMUM 120), RFC 2308 §3


def test_alias_to_weighted_set_whose_members_are_aliases_any_depth():
    sets = [
        alias("svc.t.test.", "A", "top.t.test."),
        alias("top.t.test.", "A", "mid-a.t.test.", ident="a", weight=1),
        alias("top.t.test.", "A", "mid-b.t.test.", ident="b", weight=1),
        alias("mid-a.t.test.", "A", "leaf-1.t.test.", ident="x", weight=1),
        alias("mid-a.t.test.", "A", "leaf-2.t.test.", ident="y", weight=1),
        alias("mid-b.t.test.", "A", "deeper.t.test."),
        alias("deeper.t.test.", "A", "leaf-3.t.test."),
        RecordSet("leaf-1.t.test.", "A", 11, ("192.0.2.1",)),
        RecordSet("leaf-2.t.test.", "A", 12, ("192.0.2.2",)),
        RecordSet("leaf-3.t.test.", "A", 13, ("192.0.2.3",)),
    ]
    zones = table(*sets)
    rng = random.Random(7)
    seen = {ask(zones, "svc.t.test.", rng=rng).message.answer[0][0].address for _ in range(200)}
    assert seen == {"192.0.2.1", "192.0.2.2", "192.0.2.3"}


def test_alias_loop_is_servfail_with_a_reason():
    zones = table(alias("a.t.test.", "A", "b.t.test."), alias("b.t.test.", "A", "a.t.test."))
    reply = ask(zones, "a.t.test.")
    assert reply.outcome is Outcome.SERVFAIL and reply.rcode == dns.rcode.SERVFAIL
    assert reply.problem and "loop" in reply.problem


def test_alias_chain_deeper_than_the_limit_is_servfail():
    n = authd.dns.answer.MAX_CHAIN + 2
    sets = [alias(f"h{i}.t.test.", "A", f"h{i + 1}.t.test.") for i in range(n)]
    sets.append(RecordSet(f"h{n}.t.test.", "A", 60, ("192.0.2.9",)))
    reply = ask(table(*sets), "h0.t.test.")
    assert reply.outcome is Outcome.SERVFAIL
    assert reply.problem and "deeper" in reply.problem


def test_zero_weight_member_is_never_picked_unless_all_are_zero():
    zones = table(*plan_tree({"lb1": 0, "lb2": 5}))
    rng = random.Random(3)
    picks = {ask(zones, "svc.t.test.", rng=rng).message.answer[0][0].address for _ in range(300)}
    assert picks == {"192.0.2.11"}
    zones = table(*plan_tree({"lb1": 0, "lb2": 0, "lb3": 0}))
    picks = {ask(zones, "svc.t.test.", rng=rng).message.answer[0][0].address for _ in range(300)}
    assert picks == {"192.0.2.10", "192.0.2.11", "192.0.2.12"}  # all zero: uniform


def test_weighted_pick_uses_the_injected_rng_only():
    zones = table(*plan_tree({"lb1": 1, "lb2": 1, "lb3": 2}))
    # cumulative 1, 2, 4: r*4 in [0,1) -> lb1, [1,2) -> lb2, [2,4) -> lb3
    for r, want in [(0.0, "192.0.2.10"), (0.3, "192.0.2.11"), (0.5, "192.0.2.12"),
                    (0.99, "192.0.2.12")]:
        reply = ask(zones, "svc.t.test.", rng=lambda r=r: r)
        assert reply.message.answer[0][0].address == want


def test_direct_query_of_weighted_plain_members():
    zones = table(
        RecordSet("w.t.test.", "A", 5, ("192.0.2.50",), set_identifier="one", weight=1),
        RecordSet("w.t.test.", "A", 6, ("192.0.2.51", "192.0.2.52"), set_identifier="two",
                  weight=1),
    )
    reply = ask(zones, "w.t.test.", rng=lambda: 0.9)
    assert sorted(rd.address for rd in reply.message.answer[0]) == ["192.0.2.51", "192.0.2.52"]
    assert reply.message.answer[0].ttl == 6  # the chosen member's whole RRset


# --- RFC behaviour -------------------------------------------------------------------------------


def test_nxdomain_and_nodata_carry_soa_with_negative_ttl(index):
    zones = index.table
    nx = ask(zones, "nosuch.example.test.")
    assert nx.rcode == dns.rcode.NXDOMAIN and nx.outcome is Outcome.MISS
    assert nx.message.authority[0].ttl == 300 and nx.message.flags & dns.flags.AA
    nd = ask(zones, "host.example.test.", "MX")
    assert nd.rcode == dns.rcode.NOERROR and nd.outcome is Outcome.NODATA
    assert nd.message.answer == [] and nd.message.authority[0].rdtype == dns.rdatatype.SOA


def test_empty_non_terminal_is_nodata_not_nxdomain(index):
    for name in ("ent.example.test.", "b.ent.example.test."):
        reply = ask(index.table, name)
        assert reply.outcome is Outcome.NODATA and reply.rcode == dns.rcode.NOERROR


def test_cname_chain_is_followed_inside_the_zone(index):
    m = ask(index.table, "www.example.test.").message
    assert [(str(r.name), dns.rdatatype.to_text(r.rdtype)) for r in m.answer] == [
        ("www.example.test.", "CNAME"), ("web.example.test.", "CNAME"),
        ("host.example.test.", "A")]
    out = ask(index.table, "outside.example.test.")
    assert out.outcome is Outcome.FOLLOW and out.rcode == dns.rcode.NOERROR
    assert len(out.message.answer) == 1 and out.message.authority == []


def test_wildcard_synthesis_rfc4592(index):
    m = ask(index.table, "a.b.wild.example.test.", "TXT").message
    assert m.answer[0].name == dns.name.from_text("a.b.wild.example.test.")
    nodata = ask(index.table, "x.wild.example.test.", "MX")
    assert nodata.outcome is Outcome.NODATA
    # the wildcard does not match below an existing name without its own wildcard
    assert ask(index.table, "x.host.example.test.").outcome is Outcome.MISS


def test_delegation_is_a_referral_with_glue_and_no_aa(index):
    for name, qtype in [("deep.sub.example.test.", "A"), ("sub.example.test.", "NS"),
                        ("ns1.sub.example.test.", "A")]:
        reply = ask(index.table, name, qtype)
        m = reply.message
        assert reply.outcome is Outcome.DELEG
        assert not m.flags & dns.flags.AA and m.answer == []
        assert m.authority[0].rdtype == dns.rdatatype.NS
        assert [str(r.name) for r in m.additional] == ["ns1.sub.example.test."]
    ds = ask(index.table, "sub.example.test.", "DS")  # the parent answers DS (RFC 4035)
    assert ds.outcome is Outcome.NODATA and ds.message.flags & dns.flags.AA


def test_names_outside_served_zones_are_refused(index):
    reply = ask(index.table, "example.org.")
    assert reply.rcode == dns.rcode.REFUSED and not reply.message.flags & dns.flags.AA


def test_malformed_gets_formerr_short_is_dropped_responses_are_dropped(index):
    good = make_query_wire("host.example.test.", "A")
    rng = random.Random(1)
    assert answer(good[:5], index.table, rng=rng) is None  # no header to answer to
    formerr = answer(good[:-3], index.table, rng=rng)
    assert formerr is not None and formerr.rcode == dns.rcode.FORMERR
    assert formerr.message.id == int.from_bytes(good[:2], "big")
    response = bytearray(good)
    response[2] |= 0x80
    assert answer(bytes(response), index.table, rng=rng) is None
    two_questions = bytearray(good)
    two_questions[5] = 2
    assert answer(bytes(two_questions), index.table, rng=rng).rcode == dns.rcode.FORMERR


def test_unknown_opcode_is_notimp(index):
    wire = bytearray(make_query_wire("host.example.test.", "A"))
    wire[2] |= 5 << 3  # opcode 5 (UPDATE)
    reply = answer(bytes(wire), index.table, rng=random.Random(1))
    assert reply.rcode == dns.rcode.NOTIMP


def test_edns_payload_do_bit_and_badvers(index):
    m = ask(index.table, "host.example.test.", want_dnssec=True).message
    assert m.edns == 0 and m.payload == OUR_PAYLOAD and m.ednsflags & dns.flags.DO
    m = ask(index.table, "host.example.test.", edns=True).message
    assert m.edns == 0 and not m.ednsflags & dns.flags.DO
    assert ask(index.table, "host.example.test.").message.edns == -1  # no OPT without one
    q = dns.message.make_query("host.example.test.", "A", use_edns=1)
    reply = answer(q.to_wire(), index.table, rng=random.Random(1))
    assert reply.rcode == dns.rcode.BADVERS and reply.message.edns == 0


def test_truncation_over_the_clients_limit(index):
    q = make_query_wire("big.example.test.", "TXT")  # no EDNS: 512 bytes
    m = dns.message.from_wire(answer_wire(q, index.table, rng=random.Random(1)))
    assert m.flags & dns.flags.TC and m.answer == []
    m = dns.message.from_wire(answer_wire(q, index.table, rng=random.Random(1), tcp=True))
    assert not m.flags & dns.flags.TC and len(m.answer[0]) == 6
    q = dns.message.make_query("big.example.test.", "TXT", use_edns=0, payload=1232).to_wire()
    m = dns.message.from_wire(answer_wire(q, index.table, rng=random.Random(1)))
    assert not m.flags & dns.flags.TC and len(m.answer[0]) == 6


def test_any_returns_one_rrset_rfc8482(index):
    m = ask(index.table, "host.example.test.", "ANY").message
    assert len(m.answer) == 1


def test_question_case_is_preserved(index):
    wire = answer_wire(make_query_wire("HoSt.ExAmPlE.TeSt.", "A"), index.table,
                       rng=random.Random(1))
    assert b"\x04HoSt\x07ExAmPlE\x04TeSt\x00" in wire


def test_axfr_refused_unless_allowed_and_tcp(index):
    q = make_query_wire("example.test.", "AXFR")
    assert answer(q, index.table, rng=random.Random(1), tcp=True).rcode == dns.rcode.REFUSED
    allowed = answer(q, index.table, rng=random.Random(1), tcp=True, allow_axfr=True)
    assert allowed.rcode == dns.rcode.NOERROR
    types = [r.rdtype for r in allowed.message.answer]
    assert types[0] == types[-1] == dns.rdatatype.SOA
    assert answer(q, index.table, rng=random.Random(1), allow_axfr=True).rcode == \
        dns.rcode.NOTIMP  # never over UDP (RFC 5936 §4.2; NSD and Knot say NOTIMP too)


# --- purity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [authd.dns.answer, authd.dns.index, authd.dns.wire])
def test_pure_modules_import_no_io(module):
    tree = ast.parse(Path(module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"trio", "socket", "time", "asyncio"}
