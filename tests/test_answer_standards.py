"""The answer pipeline's standards cases (issue 13), in memory: DNAME (RFC 6672), wildcards
at empty non-terminals (RFC 4592 §4.9), DS from the parent side of a cut when both sides are
served (RFC 4035 §3.1.4.1), CD cleared, Extended DNS Errors (RFC 8914); the serving index's
cached answers equal the full pipeline's on all of them, and a change to the parent zone
reaches its DS answers. The expectations are what Knot 3.2 and NSD 4.6 answer on the same
zones (`tests/test_dns_differential.py` checks that against the real servers).
"""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from authd.control.r53xml import (
    BadRequest,
    changes_from_route53,
    msg_bad_rrtype,
    parse_change_batch_xml,
)
from authd.dns.answer import Zone, ZoneTable, answer, answer_wire
from authd.dns.index import ServingIndex, index_from_zones, zone_id_for
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordKey, RecordSet
from authd.zonefiles.zonefile import LoadedZone, load_zone_file
from tests.test_dns_differential import ZONE_FILES

P44, P45 = "p" * 44, "p" * 45  # below `long`: rewrites to 255 octets, and to 256


@pytest.fixture(scope="module")
def loaded() -> list[LoadedZone]:
    return [load_zone_file(f) for f in ZONE_FILES]


@pytest.fixture(scope="module")
def zones(loaded) -> ZoneTable:
    return ZoneTable([Zone.build(z.origin, z.record_sets) for z in loaded])


def ask(zones: ZoneTable, qname: str, qtype: str = "A", *, edns: int | None = None,
        flags: int = 0) -> dns.message.Message:
    q = dns.message.make_query(qname, qtype, use_edns=edns)
    q.flags = flags
    reply = answer(q.to_wire(), zones, rng=lambda: 0.5, tcp=True)
    assert reply is not None
    return dns.message.from_wire(reply.to_wire(65535))


def records(m: dns.message.Message, section: str = "answer") -> list[str]:
    return [f"{rr.name} {rr.ttl} {dns.rdatatype.to_text(rr.rdtype)} {rd}".lower()
            for rr in getattr(m, section) for rd in rr]


# --- DNAME ------------------------------------------------------------------------------------


def test_dname_gives_the_dname_the_synthesised_cname_and_the_target(zones):
    m = ask(zones, "B.a.DN.diff.test.", "AAAA")
    assert m.rcode() == dns.rcode.NOERROR and m.flags & dns.flags.AA
    assert records(m) == [
        "dn.diff.test. 600 dname target.diff.test.",
        "b.a.dn.diff.test. 600 cname b.a.target.diff.test.",  # the DNAME's TTL (§3.1)
        "b.a.target.diff.test. 3600 aaaa 2001:db8::100",
    ]
    assert m.answer[1].name.labels[0] == b"B"  # owner: the name as asked


def test_dname_chain_ends_as_its_last_target_does(zones):
    m = ask(zones, "x.dn2.diff.test.")
    assert m.rcode() == dns.rcode.NXDOMAIN  # x.target.diff.test. does not exist
    assert [r.split()[2] for r in records(m)] == ["dname", "cname", "dname", "cname"]
    assert records(m, "authority")[0].split()[2] == "soa"
    chased = ask(zones, "c.dn.diff.test.")  # DNAME, CNAME, then the target's own CNAME
    assert records(chased)[-1] == "www.diff.test. 3600 a 192.0.2.10"


def test_dname_out_of_zone_and_to_itself_stop_after_the_cname(zones):
    out = ask(zones, "x.ext.diff.test.")
    assert out.rcode() == dns.rcode.NOERROR and not out.authority
    assert records(out)[-1] == "x.ext.diff.test. 900 cname x.example.invalid."
    loop = ask(zones, "x.selfdn.diff.test.")
    assert loop.rcode() == dns.rcode.NOERROR
    assert records(loop) == ["selfdn.diff.test. 3600 dname selfdn.diff.test.",
                             "x.selfdn.diff.test. 3600 cname x.selfdn.diff.test."]


def test_dname_does_not_apply_at_its_owner_and_a_cname_question_stops(zones):
    own = ask(zones, "dn.diff.test.", "A")
    assert own.rcode() == dns.rcode.NOERROR and not own.answer  # NODATA at the owner
    assert records(ask(zones, "dn.diff.test.", "DNAME")) == ["dn.diff.test. 600 dname target.diff.test."]
    cname = ask(zones, "c.dn.diff.test.", "CNAME")
    assert [r.split()[2] for r in records(cname)] == ["dname", "cname"]


def test_dname_rewrite_past_255_octets_is_yxdomain_with_the_dname(zones):
    fits = ask(zones, f"{P44}.long.diff.test.", edns=0)
    assert fits.rcode() == dns.rcode.NXDOMAIN and len(fits.answer) == 2
    assert len(fits.answer[1][0].target.to_wire()) == 255
    over = ask(zones, f"{P45}.long.diff.test.", edns=0)
    assert over.rcode() == dns.rcode.YXDOMAIN and over.flags & dns.flags.AA
    assert [r.split()[2] for r in records(over)] == ["dname"] and not over.authority
    assert [(o.code, o.text) for o in over.options if o.otype == dns.edns.EDE] == \
        [(dns.edns.EDECode.OTHER, "DNAME expansion became too large")]  # as NSD


# --- wildcards, DS, CD, EDE --------------------------------------------------------------------


def test_wildcard_that_is_an_empty_non_terminal_gives_nodata(zones):
    for name in ("foo.w3.diff.test.", "foo.bar.w3.diff.test.", "*.w3.diff.test."):
        m = ask(zones, name)
        assert m.rcode() == dns.rcode.NOERROR and not m.answer, name
        assert records(m, "authority")[0].split()[2] == "soa"
    assert ask(zones, "y.x.*.w3.diff.test.").rcode() == dns.rcode.NXDOMAIN  # no *.x.*.w3
    assert records(ask(zones, "x.*.w3.diff.test."))[0].endswith("192.0.2.90")


def test_ds_at_a_served_childs_apex_comes_from_the_parent(zones):
    m = ask(zones, "child.diff.test.", "DS")
    assert m.flags & dns.flags.AA and m.rcode() == dns.rcode.NOERROR
    assert records(m) == ["child.diff.test. 3600 ds 54321 13 2 "
                          "2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40"]
    soa = ask(zones, "child.diff.test.", "SOA")  # everything else still comes from the child
    assert records(soa)[0].startswith("child.diff.test. 3600 soa ns1.child.")
    nodata = ask(zones, "diff.test.", "DS")  # no parent served: the zone's own NODATA
    assert not nodata.answer and records(nodata, "authority")[0].startswith("diff.test. 300 soa")
    alone = ZoneTable([zones.zones[k] for k in zones.zones if len(k) == 4])  # the child only
    assert records(ask(alone, "child.diff.test.", "DS"), "authority")[0].startswith(
        "child.diff.test. 300 soa")


def test_cd_is_cleared_and_rd_copied(zones):
    m = ask(zones, "www.diff.test.", flags=dns.flags.CD | dns.flags.RD)
    assert m.flags & dns.flags.RD and not m.flags & dns.flags.CD


def test_refused_carries_ede_20_only_under_edns(zones):
    m = ask(zones, "example.com.", edns=0)
    assert m.rcode() == dns.rcode.REFUSED and not m.flags & dns.flags.AA
    assert [(o.code, o.text) for o in m.options] == [(dns.edns.EDECode.NOT_AUTHORITATIVE, None)]
    assert ask(zones, "example.com.").edns < 0  # no OPT without EDNS in the query
    q = dns.message.make_query("example.com.", "A", use_edns=0)
    reply = answer(q.to_wire(), zones, rng=lambda: 0.5)
    assert reply is not None  # the dnspython view of the reply carries the option too
    assert [o.code for o in reply.message.options] == [dns.edns.EDECode.NOT_AUTHORITATIVE]
    axfr = ask(zones, "diff.test.", "AXFR", edns=0)  # not allowed here
    assert [o.code for o in axfr.options] == [dns.edns.EDECode.PROHIBITED]


# --- the serving index: cached answers equal the full pipeline's --------------------------------

QUESTIONS = [
    ("x.dn.diff.test.", "A"), ("X.Dn.DIFF.test.", "A"), ("b.a.dn.diff.test.", "AAAA"),
    ("c.dn.diff.test.", "CNAME"), ("x.dn2.diff.test.", "A"), ("x.ext.diff.test.", "TXT"),
    ("x.selfdn.diff.test.", "A"), (f"{P44}.long.diff.test.", "A"),
    (f"{P45}.long.diff.test.", "A"), (f"{P45.upper()}.long.diff.test.", "A"),
    ("foo.w3.diff.test.", "A"), ("child.diff.test.", "DS"), ("CHILD.diff.test.", "DS"),
    ("child.diff.test.", "SOA"), ("deleg.diff.test.", "DS"), ("example.com.", "A"),
    ("www.diff.test.", "A"),
]


@pytest.mark.parametrize("edns", [None, 0])
@pytest.mark.parametrize("tcp", [False, True])
def test_cached_answers_equal_the_full_pipeline(loaded, edns, tcp):
    fast = index_from_zones(loaded, rng=lambda: 0.5)
    slow = index_from_zones(loaded, rng=lambda: 0.5, cache=False)
    for rnd in range(2):  # the first fills the table, the second hits it
        for i, (name, qtype) in enumerate(QUESTIONS):
            for flags in (0, dns.flags.CD | dns.flags.RD):
                m = dns.message.make_query(name, qtype, use_edns=edns)
                m.id, m.flags = 100 * rnd + i, flags
                wire = m.to_wire()
                expect = answer_wire(wire, slow.table, rng=lambda: 0.5, tcp=tcp)
                assert fast.respond(wire, tcp=tcp) == expect, (name, qtype)
                assert slow.respond(wire, tcp=tcp) == expect
    assert fast.stats["fast"] >= len(QUESTIONS)


def _change(index: ServingIndex, zone: LoadedZone, puts=(), deletes=()) -> None:
    index.apply(JournalEntry(seq=index.seq + 1, kind=EntryKind.CHANGE, zone_id=zone_id_for(zone),
                             zone_name=zone.origin, serial=2026120102, change_id="C1",
                             puts=tuple(puts), deletes=tuple(deletes)))


def test_a_change_to_the_parent_reaches_the_cached_ds_and_dname_answers(loaded):
    index = index_from_zones(loaded, rng=lambda: 0.5)
    parent = next(z for z in loaded if z.origin == "diff.test.")
    ds_q = dns.message.make_query("child.diff.test.", "DS").to_wire()
    dn_q = dns.message.make_query("x.dn.diff.test.", "A").to_wire()
    before = dns.message.from_wire(index.respond(ds_q, tcp=False))
    assert before.answer
    assert dns.message.from_wire(index.respond(dn_q, tcp=False)).answer
    _change(index, parent, deletes=[RecordKey("child.diff.test.", "DS"),
                                    RecordKey("dn.diff.test.", "DNAME")])
    after = dns.message.from_wire(index.respond(ds_q, tcp=False))
    assert not after.answer and str(after.authority[0].name) == "diff.test."
    gone = dns.message.from_wire(index.respond(dn_q, tcp=False))
    assert gone.rcode() == dns.rcode.NXDOMAIN and not gone.answer  # no DNAME any more
    _change(index, parent, puts=[RecordSet("dn.diff.test.", "DNAME", 60, ("www.diff.test.",))])
    back = dns.message.from_wire(index.respond(dn_q, tcp=False))
    assert [str(rr.name) for rr in back.answer] == ["dn.diff.test.", "x.dn.diff.test."]
    assert back.answer[1][0].target.to_text() == "x.www.diff.test."


# --- Route 53 has no DNAME ----------------------------------------------------------------------


def test_a_change_batch_with_type_dname_is_invalid_input():
    batch = {"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": "dn.example.", "Type": "DNAME", "TTL": 60,
        "ResourceRecords": [{"Value": "target.example."}]}}]}
    with pytest.raises(BadRequest) as err:
        changes_from_route53(batch)
    assert err.value.code == "InvalidInput"
    assert err.value.messages == (msg_bad_rrtype("DNAME"),)
    assert msg_bad_rrtype("DNAME") == (
        "Invalid XML ; cvc-enumeration-valid: Value 'DNAME' is not facet-valid with respect to "
        "enumeration '[SOA, A, TXT, NS, CNAME, MX, NAPTR, PTR, SRV, SPF, AAAA, CAA, DS, TLSA, "
        "SSHFP, SVCB, HTTPS]'. It must be a value from the enumeration.")
    xml = (b'<?xml version="1.0" encoding="UTF-8"?>\n<ChangeResourceRecordSetsRequest '
           b'xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Changes>'
           b"<Change><Action>CREATE</Action><ResourceRecordSet><Name>dn.example.</Name>"
           b"<Type>DNAME</Type><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>t.example."
           b"</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change>"
           b"</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>")
    with pytest.raises(BadRequest) as err:
        parse_change_batch_xml(xml)
    assert err.value.messages == (msg_bad_rrtype("DNAME"),)


# --- transfers when they are not allowed: as Knot and NSD refuse them ---------------------------


def test_transfer_of_a_zone_we_do_not_serve_is_notauth_before_the_access_rules():
    import dns.name

    from authd.dns.xfr import TransferService

    served = dns.name.from_text("diff.test.")
    svc = TransferService(None, lambda *a, **k: None, serves=lambda name: name == served)
    for qname, rcode in (("diff.test.", dns.rcode.REFUSED), ("www.diff.test.", dns.rcode.NOTAUTH),
                         ("example.com.", dns.rcode.NOTAUTH)):
        for qtype in ("AXFR", "IXFR"):
            q = dns.message.make_query(qname, qtype, use_edns=0)
            (wire,) = svc.respond(q.to_wire(), "127.0.0.1", tcp=True, now=0)
            r = dns.message.from_wire(wire)
            assert r.rcode() == rcode, (qname, qtype)
            assert r.payload == 1232  # what authd advertises everywhere
            ede = [o.code for o in r.options if o.otype == dns.edns.EDE]
            assert ede == ([dns.edns.EDECode.PROHIBITED] if rcode == dns.rcode.REFUSED else [])
