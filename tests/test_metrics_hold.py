"""A change applied between two folds: the counts are held, not classified, and the next fold
still counts every query by the reply it got (issue 12: a batch's apply must not wait for
the fold of thousands of distinct queries).

A real `serve_udp` on loopback with a `QueryTally`: a name is asked three times (the last is
an exact-table hit: the table keeps an answer on its second asking), a change replaces its A
set with a TXT set (its A answer goes empty), it is asked again. The apply must classify nothing; the fold afterwards must give the
(type, rcode) totals and the empty-answer count the replies show.
"""

from __future__ import annotations

import socket
from collections import Counter

import dns.message
import dns.rcode
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import authd.metrics
from authd.dns.index import ServingIndex
from authd.dns.server import serve_udp
from authd.dns.udp_batched import AVAILABLE as FAST_UDP
from authd.metrics import MAX_HELD, QueryTally, Remembered
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordKey, RecordSet

pytestmark = pytest.mark.realtime
Z = "k.test."


def zone() -> list[RecordSet]:
    return [RecordSet(Z, "SOA", 300, ("ns1.k.test. hostmaster.k.test. 1 7200 900 1209600 60",)),
            RecordSet(Z, "NS", 300, ("ns1.k.test.",)),
            RecordSet("ns1.k.test.", "A", 300, ("192.0.2.1",)),
            RecordSet("h.k.test.", "A", 60, ("192.0.2.5",)),
            RecordSet("g.k.test.", "A", 60, ("192.0.2.6",))]


def change(seq: int) -> JournalEntry:
    """h.k.test. loses its A set for a TXT set: A there becomes NOERROR with no answer."""
    soa = RecordSet(Z, "SOA", 300, (f"ns1.k.test. hostmaster.k.test. {1 + seq} 7200 900 1209600 60",))
    return JournalEntry(seq, EntryKind.CHANGE, "Z0K0TEST", Z, 1 + seq, f"C{seq}",
                        (RecordSet("h.k.test.", "TXT", 60, ('"moved"',)), soa),
                        (RecordKey("h.k.test.", "A"),))


async def test_an_apply_holds_the_counts_and_the_fold_classifies_them_by_their_replies(
        monkeypatch: pytest.MonkeyPatch) -> None:
    index = ServingIndex()
    index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0K0TEST", Z, 1, "", tuple(zone())))
    tally = QueryTally(index)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.setblocking(False)
    want: Counter[tuple[str, str]] = Counter()
    empty = 0

    async def ask(client: trio.socket.SocketType, name: str) -> int:
        q = dns.message.make_query(name, "A")
        await client.sendto(q.to_wire(), srv.getsockname())
        reply = dns.message.from_wire(await client.recv(4096))
        want[("A", dns.rcode.to_text(reply.rcode()))] += 1
        return len(reply.answer)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_udp, index, srv)
        client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with client, trio.fail_after(20):
            for name in ["h.k.test.", "g.k.test."] * 3 + ["nx.k.test."]:  # repeats meet the table
                assert await ask(client, name) == (0 if name.startswith("nx") else 1)
            census = index.census
            if FAST_UDP:  # C counted its own replies (exact hits, plain RRsets, NXDOMAIN)
                assert census.pairs and any(census.counts) and not index.query_counts
            else:
                assert index.query_counts and index.reply_counts  # both lanes were taken

            def no_classifying(key: bytes) -> tuple[str, str]:
                raise AssertionError("the apply classified a query")

            with monkeypatch.context() as m:
                m.setattr(authd.metrics, "classify_query", no_classifying)
                index.apply(change(1))
            assert not index.query_counts and not index.reply_counts  # held, cleared in place
            assert not census.pairs and not any(census.counts)  # held, or folded as held
            assert not tally.empty  # nothing classified yet
            for _ in range(3):
                empty += await ask(client, "h.k.test.") == 0
        nursery.cancel_scope.cancel()
    srv.close()
    tally.fold()
    assert empty == 3
    assert dict(tally.by_type_rcode) == dict(want) == {("A", "NOERROR"): 9, ("A", "NXDOMAIN"): 1}
    assert dict(tally.empty) == {("h.k.test.", "A"): 3}  # it had records before the change


def test_held_counts_are_bounded_by_folding_when_changes_outrun_the_folds() -> None:
    index = ServingIndex()
    index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0K0TEST", Z, 1, "", tuple(zone())))
    tally = QueryTally(index)
    key = dns.message.make_query("g.k.test.", "A").to_wire()[2:]
    reply = index.respond(b"\0\0" + key, tcp=False)
    assert reply is not None
    status = reply[2:4] + reply[6:8]
    for _ in range(MAX_HELD + 1):
        index.reply_counts[key + status] = index.reply_counts.get(key + status, 0) + 1
        tally.hold()
    assert len(tally._held) == MAX_HELD  # noqa: SLF001  (the oldest folded once past the bound)
    assert tally.by_type_rcode[("A", "NOERROR")] == 1
    assert tally.fold() is True
    assert tally.by_type_rcode[("A", "NOERROR")] == MAX_HELD + 1


def test_a_sliced_round_folds_only_what_was_held_when_it_began() -> None:
    """Counts that arrive between slices wait for the next round: a round's slices end, and
    no slice folds more than its limit (before, each slice held the new counts too, so a
    steady flood of new names could pile up generations and end in one unlimited fold)."""
    index = ServingIndex()
    index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0K0TEST", Z, 1, "", tuple(zone())))
    tally = QueryTally(index)
    folded: list[int] = []
    count = tally._count  # noqa: SLF001

    def counting(items: list) -> None:
        items = list(items)
        folded.append(len(items))
        count(items)

    tally._count = counting  # type: ignore[method-assign]  # noqa: SLF001

    def flood(start: int, n: int) -> None:
        for i in range(start, start + n):
            key = dns.message.make_query(f"x{i}.k.test.", "A").to_wire()[2:]
            index.reply_counts[key + b"\x81\x83\x00\x00"] = 1  # NXDOMAIN, no answers

    flood(0, 3000)
    tally.hold()
    slices = 0
    while not tally.fold(1000, hold=False):
        slices += 1
        flood(10_000 * slices, 1500)  # more new names than a slice folds, between slices
        assert slices < 10
    assert slices == 2 and max(folded) <= 1000
    assert tally.by_type_rcode[("A", "NXDOMAIN")] == 3000  # this round: what it began with
    assert len(index.reply_counts) == 3000  # the rest waits for the next round


def test_a_fold_in_slices_gives_the_totals_of_one_fold() -> None:
    def counted() -> tuple[ServingIndex, QueryTally]:
        index = ServingIndex()
        index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0K0TEST", Z, 1, "", tuple(zone())))
        return index, QueryTally(index)

    def ask(index: ServingIndex, names: list[str]) -> None:
        for name in names:  # counted as the UDP loop counts a reply it sent
            key = dns.message.make_query(name, "A").to_wire()[2:]
            reply = index.respond(b"\0\0" + key, tcp=False)
            assert reply is not None
            status = key + reply[2:4] + reply[6:8]
            index.reply_counts[status] = index.reply_counts.get(status, 0) + 1

    names = ["h.k.test.", "g.k.test.", "ns1.k.test."] * 3 + [f"x{i}.k.test." for i in range(20)]
    whole, sliced = counted(), counted()
    for index, tally in (whole, sliced):
        ask(index, names)
        tally.hold()
        index.apply(change(1))  # h.k.test. A goes empty
        ask(index, names[:4])
    assert whole[1].fold() is True
    calls = 0
    while not sliced[1].fold(4):
        calls += 1
        assert calls < 100
    assert calls >= 5  # it stopped part-way, 4 counts a slice
    assert dict(sliced[1].by_type_rcode) == dict(whole[1].by_type_rcode) == {
        ("A", "NOERROR"): 13, ("A", "NXDOMAIN"): 20}
    assert dict(sliced[1].empty) == dict(whole[1].empty) == {("h.k.test.", "A"): 2}


def test_counts_by_type_and_rcode_give_the_totals_of_counts_by_query() -> None:
    """A loop may count a reply that is not NOERROR by (QTYPE << 5 | rcode) alone
    (`index.type_counts`): the totals are those of the same replies counted by query, the
    dict is emptied in place when held, and nothing of it is remembered as having records."""
    def counted() -> tuple[ServingIndex, QueryTally]:
        index = ServingIndex()
        index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0K0TEST", Z, 1, "", tuple(zone())))
        return index, QueryTally(index)

    by_query, by_type = counted(), counted()
    types = by_type[0].type_counts
    for name, rdtype in [(f"x{i}.k.test.", "A") for i in range(30)] + [
            ("y.k.test.", "AAAA"), ("out.of.zone.", "A"), ("h.k.test.", "A")]:
        wire = dns.message.make_query(name, rdtype).to_wire()
        for index, _tally in (by_query, by_type):
            reply = index.respond(wire, tcp=False)
            assert reply is not None
            rcode = reply[3] & 0x0F
            if index is by_type[0] and rcode:
                code = dns.message.from_wire(wire).question[0].rdtype << 5 | rcode
                types[code] = types.get(code, 0) + 1
            else:
                status = wire[2:] + reply[2:4] + reply[6:8]
                index.reply_counts[status] = index.reply_counts.get(status, 0) + 1
    assert len(types) == 3 and not by_type[0].reply_counts.keys() - {
        k for k in by_query[0].reply_counts if k[-3] & 0x0F == 0}
    by_type[1].hold()
    assert not types and by_type[0].type_counts is types  # cleared in place
    assert by_query[1].fold() and by_type[1].fold()
    assert dict(by_type[1].by_type_rcode) == dict(by_query[1].by_type_rcode) == {
        ("A", "NXDOMAIN"): 30, ("AAAA", "NXDOMAIN"): 1, ("A", "REFUSED"): 1, ("A", "NOERROR"): 1}
    assert len(by_type[1].had_records) == len(by_query[1].had_records) == 1  # h.k.test. A


def _pair(name: str, qtype: int = 1) -> bytes:
    """A census pair as C makes it: the lowered name's wire octets, then QTYPE."""
    wire = b"".join(bytes([len(x)]) + x.encode() for x in name.rstrip(".").split("."))
    return wire + b"\0" + qtype.to_bytes(2, "big")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), max_size=30), max_size=8), st.integers(2, 12))
def test_remembered_update_is_add_in_order(batches: list[list[int]], cap: int) -> None:
    """`Remembered.update` (set operations, C speed) leaves the generations `add` one by one
    leaves, however the keys are split into calls (at the cap too)."""
    one, bulk = Remembered(cap), Remembered(cap)
    for batch in batches:
        keys = [b"k%d" % k for k in dict.fromkeys(batch)]  # a set's keys: no repeats
        for k in keys:
            one.add(k)
        it = iter(keys)
        bulk.update(it, 3)  # a slice, then the rest
        bulk.update(it, len(keys))
        assert (bulk.young, bulk.old) == (one.young, one.old)


def test_the_census_is_folded_as_held_and_its_pairs_before_the_generations_keys() -> None:
    """What the C loop counts itself (`Census`, as tests/test_fastudp.py checks C fills it):
    the counters go into the totals at each hold and are zeroed in place; the pairs answered
    with records are taken with the generation (a new set in their place) and merged before
    its keys, in slices too, so a name C answered with records that goes empty after the
    next change is an empty answer, and one that was empty before getting records is not."""
    index = ServingIndex()
    index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0K0TEST", Z, 1, "", tuple(zone())))
    results = []
    for limit in (None, 3):
        index = ServingIndex()
        index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0K0TEST", Z, 1, "", tuple(zone())))
        tally = QueryTally(index)
        census = index.census
        counts = census.counts
        a = census.types.index(1) * 16
        empty = b"\x81\x80\x00\x00"  # NOERROR, no answer records: counted by query
        late = dns.message.make_query("late.k.test.", "A").to_wire()[2:]
        index.reply_counts[late + empty] = 2  # empty first: then it gets records
        counts[a] += 40  # NOERROR A ...
        census.pairs.update(_pair(f"n{i}.k.test.") for i in range(39))  # ... for 39 names
        census.pairs.add(_pair("h.k.test."))
        tally.hold()
        assert not census.pairs and not any(counts)  # a new set; zeroed in place
        assert tally.by_type_rcode == {("A", "NOERROR"): 40}  # folded as held
        counts[a + 3] += 5  # NXDOMAIN A: no pairs
        counts[a] += 1
        census.pairs.add(_pair("late.k.test."))
        tally.hold()
        h = dns.message.make_query("H.k.TEST.", "A").to_wire()[2:]  # any spelling
        index.reply_counts[h + empty] = 3
        index.reply_counts[late + empty] = 1
        tally.hold()
        if limit is None:
            assert tally.fold() is True
        else:
            calls = 0
            while not tally.fold(limit, hold=False):
                calls += 1
                assert calls < 100
            assert calls >= 2
        results.append((dict(tally.by_type_rcode), dict(tally.empty), len(tally.had_records)))
    assert results[0] == results[1] == (
        {("A", "NOERROR"): 47, ("A", "NXDOMAIN"): 5},
        {("h.k.test.", "A"): 3, ("late.k.test.", "A"): 1}, 41)


def test_held_census_pairs_stay_bounded_and_in_their_own_generation() -> None:
    """Generations holding census pairs are folded whole past MAX_HELD too, and one held
    with no pairs does not share the set the loop goes on adding to (its pairs would be
    merged a generation early)."""
    index = ServingIndex()
    index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0K0TEST", Z, 1, "", tuple(zone())))
    tally = QueryTally(index)
    census = index.census
    key = dns.message.make_query("g.k.test.", "A").to_wire()[2:]
    reply = index.respond(b"\0\0" + key, tcp=False)
    assert reply is not None and reply[7] == 1  # NOERROR, one answer record
    for i in range(MAX_HELD + 5):
        census.pairs.add(_pair(f"p{i}.k.test."))
        tally.hold()  # pairs only
        index.reply_counts[key + reply[2:4] + reply[6:8]] = 1
        tally.hold()  # keys only: not the loop's (now empty) set
        assert all(held is not census.pairs for _, _, held in tally._held)  # noqa: SLF001
    assert len(tally._held) == MAX_HELD  # noqa: SLF001
    assert len(tally.had_records) >= 5  # the oldest generations, folded as they overflowed
    assert tally.fold() is True
    assert len(tally.had_records) == MAX_HELD + 5 + 1  # every pair, and g.k.test. A
    assert tally.by_type_rcode[("A", "NOERROR")] == MAX_HELD + 5
