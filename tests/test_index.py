"""The serving index: fed only by journal entries; the rendered-answer table agrees byte for byte
with the full pipeline; resolve_all enumerates every possible answer."""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.rcode
import pytest

from authd.dns.answer import answer_wire
from authd.dns.index import ServingIndex, snapshot_entries, zone_id_for
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import AliasTarget, RecordKey, RecordSet

STABLE = "dynamodb.us-east-1.api.aws."


def change(index: ServingIndex, zone: str, *, puts=(), deletes=(), seq=None) -> JournalEntry:
    zone_id = next(zid for zid, (name, _) in index._zones.items() if name == zone)
    return JournalEntry(seq=index.seq + 1 if seq is None else seq, kind=EntryKind.CHANGE,
                        zone_id=zone_id, zone_name=zone, serial=99, change_id="C1",
                        puts=tuple(puts), deletes=tuple(deletes))


def q(name: str, qtype: str = "A", **kw) -> bytes:
    return dns.message.make_query(name, qtype, **kw).to_wire()


def test_snapshot_entries_name_zones_and_serials(shipped_zones):
    entries = snapshot_entries(shipped_zones)
    by_name = {e.zone_name: e for e in entries}
    assert by_name["api.aws."].zone_id == "Z0API0AWS"  # the id its aliases already use
    assert by_name["example.test."].zone_id == "Z0EXAMPLE0TEST"
    assert by_name["example.test."].serial == 2025102001
    assert all(e.kind is EntryKind.SNAPSHOT for e in entries)
    assert zone_id_for(shipped_zones[0]) == by_name[shipped_zones[0].origin].zone_id


def test_change_entries_update_answers_and_seq(index):
    before = dns.message.from_wire(index.respond(q("mail.example.test."), tcp=False))
    assert before.answer[0][0].address == "192.0.2.25"
    new = RecordSet("mail.example.test.", "A", 60, ("192.0.2.26",))
    assert index.apply(change(index, "example.test.", puts=[new], seq=5))
    assert index.seq == 5
    after = dns.message.from_wire(index.respond(q("mail.example.test."), tcp=False))
    assert after.answer[0][0].address == "192.0.2.26" and after.answer[0].ttl == 60
    # an entry already applied is ignored (replays are harmless)
    old = RecordSet("mail.example.test.", "A", 60, ("192.0.2.99",))
    assert not index.apply(change(index, "example.test.", puts=[old], seq=5))
    index.apply(change(index, "example.test.",
                       deletes=[RecordKey("mail.example.test.", "A")]))
    gone = dns.message.from_wire(index.respond(q("mail.example.test."), tcp=False))
    assert gone.rcode() == dns.rcode.NXDOMAIN


def test_zone_deleted_entry_makes_names_refused(index):
    zone_id = next(zid for zid, (name, _) in index._zones.items() if name == "example.test.")
    index.apply(JournalEntry(seq=index.seq + 1, kind=EntryKind.ZONE_DELETED, zone_id=zone_id,
                             zone_name="example.test.", serial=0, change_id="C2"))
    reply = dns.message.from_wire(index.respond(q("host.example.test."), tcp=False))
    assert reply.rcode() == dns.rcode.REFUSED
    assert "example.test." not in index.zone_names()


def test_an_entry_that_would_break_the_zone_changes_nothing(index):
    bad = change(index, "example.test.", deletes=[RecordKey("example.test.", "SOA")])
    with pytest.raises(ValueError):
        index.apply(bad)
    reply = dns.message.from_wire(index.respond(q("host.example.test."), tcp=False))
    assert reply.answer and index.seq == 0


QUESTIONS = [
    ("host.example.test.", "A"), ("HOST.Example.Test.", "AAAA"), ("www.example.test.", "A"),
    ("nosuch.example.test.", "A"), ("ent.example.test.", "TXT"), ("x.wild.example.test.", "A"),
    ("foo.sub.example.test.", "A"), ("big.example.test.", "TXT"), ("example.test.", "ANY"),
    ("example.test.", "SOA"), ("example.org.", "A"), (STABLE, "A"), (STABLE.upper(), "AAAA"),
    ("plan-0001." + STABLE, "A"), ("dynamodb.us-east-1.amazonaws.com.", "AAAA"),
    ("example.test.", "TYPE65280"),
]


@pytest.mark.parametrize(("edns", "dnssec"), [(None, False), (0, False), (0, True)])
@pytest.mark.parametrize("tcp", [False, True])
def test_table_answers_equal_full_pipeline_bytes(shipped_zones, edns, dnssec, tcp):
    """The fast path (table hit, ID and question patched) renders exactly the bytes the full
    pipeline renders, given the same weighted pick."""
    fast = ServingIndex(rng=lambda: 0.6)
    slow = ServingIndex(rng=lambda: 0.6, cache=False)
    for entry in snapshot_entries(shipped_zones):
        fast.apply(entry)
        slow.apply(entry)
    for rnd in range(2):  # the first time fills the table, the second hits it
        for i, (name, qtype) in enumerate(QUESTIONS):
            m = dns.message.make_query(name, qtype, use_edns=edns, want_dnssec=dnssec)
            m.id = 1000 * rnd + i
            m.flags = dns.flags.RD if i % 2 else 0
            wire = m.to_wire()
            expect = answer_wire(wire, slow.table, rng=lambda: 0.6, tcp=tcp)
            assert fast.respond(wire, tcp=tcp) == expect, (name, qtype)
            assert slow.respond(wire, tcp=tcp) == expect
    assert fast.stats["fast"] >= len(QUESTIONS)
    assert slow.stats["fast"] == 0


def test_weighted_table_covers_every_outcome(index):
    seen = set()
    for _ in range(400):
        reply = dns.message.from_wire(index.respond(q(STABLE), tcp=False))
        seen.add(reply.answer[0][0].address)
    assert seen == {"192.0.2.11", "192.0.2.12", "198.51.100.21", "203.0.113.31"}
    # rendered once: by the per-question table or as a compiled template
    assert index.stats["fill"] + index.compiled.stats["render"] == 1


def test_resolve_all_enumerates_every_weighted_answer(index):
    got = index.resolve_all(STABLE, "A")
    assert sorted(got) == sorted(("NOERROR", (a,)) for a in
                                 ["192.0.2.11", "192.0.2.12", "198.51.100.21", "203.0.113.31"])
    assert index.resolve_all("nosuch.api.aws.", "A") == [("NXDOMAIN", ())]
    assert index.resolve_all("dynamodb.us-east-1.amazonaws.com.", "AAAA") == [("NOERROR", ())]


def test_resolve_all_skips_zero_weights_and_reports_a_partly_dangling_tree(index):
    plan = "plan-0001." + STABLE
    puts = [
        RecordSet(plan, "A", alias=AliasTarget("az1-lb1." + plan, "Z0API0AWS"),
                  set_identifier="az1-lb1", weight=0),
        RecordSet(plan, "A", alias=AliasTarget("gone." + plan, "Z0API0AWS"),
                  set_identifier="az9-gone", weight=10),
    ]
    index.apply(change(index, "api.aws.", puts=puts))
    got = index.resolve_all(STABLE, "A")
    assert ("NOERROR", ("192.0.2.11",)) not in got  # weight 0 next to non-zero weights
    assert ("NOERROR", ()) in got  # the member whose leaf does not exist dangles
    assert ("NOERROR", ("203.0.113.31",)) in got


def test_servfail_is_logged_once_per_fill(index, caplog):
    loop = [RecordSet("loop-a.api.aws.", "A", alias=AliasTarget("loop-b.api.aws.", "Z0API0AWS")),
            RecordSet("loop-b.api.aws.", "A", alias=AliasTarget("loop-a.api.aws.", "Z0API0AWS"))]
    index.apply(change(index, "api.aws.", puts=loop))
    with caplog.at_level("ERROR", logger="authd"):
        for _ in range(5):
            r = dns.message.from_wire(index.respond(q("loop-a.api.aws."), tcp=False))
            assert r.rcode() == dns.rcode.SERVFAIL
    lines = [r.getMessage() for r in caplog.records if "SERVFAIL" in r.getMessage()]
    assert len(lines) == 1 and "alias loop" in lines[0]


def test_seeded_rng_makes_picks_reproducible(shipped_zones):
    def picks(seed: int) -> list[str]:
        idx = ServingIndex(rng=random.Random(seed))
        for e in snapshot_entries(shipped_zones):
            idx.apply(e)
        return [dns.message.from_wire(idx.respond(q(STABLE), tcp=False)).answer[0][0].address
                for _ in range(30)]

    assert picks(11) == picks(11)
    assert picks(11) != picks(12)
