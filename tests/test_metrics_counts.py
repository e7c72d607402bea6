"""The metrics fold classifies queries by the replies the UDP loop sent, answering none again.

A real `serve_udp` on loopback with a `QueryTally` on its index: repeats (exact-table hits),
random existing names, random NXDOMAIN names and a weighted set. The fold must give the same
(type, rcode) totals the replies show, without one call into the index's `respond` (each cost
~10 us per distinct query when the fold re-answered them: a flood of random names paid it per
query).
"""

from __future__ import annotations

import random
import socket
from collections import Counter

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import trio

from authd.dns.index import ServingIndex
from authd.dns.server import serve_udp
from authd.metrics import QueryTally
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordSet

pytestmark = pytest.mark.realtime
Z = "m.test."


def zone() -> list[RecordSet]:
    sets = [RecordSet(Z, "SOA", 300, ("ns1.m.test. hostmaster.m.test. 1 7200 900 1209600 60",)),
            RecordSet(Z, "NS", 300, ("ns1.m.test.",)),
            RecordSet("ns1.m.test.", "A", 300, ("192.0.2.1",)),
            RecordSet("cn.m.test.", "CNAME", 60, ("h3.m.test.",)),
            RecordSet("w.m.test.", "A", 60, ("192.0.2.7",), set_identifier="a", weight=1),
            RecordSet("w.m.test.", "A", 60, ("192.0.2.8",), set_identifier="b", weight=1)]
    return sets + [RecordSet(f"h{i}.m.test.", "A", 60, (f"10.0.0.{i}",)) for i in range(50)]


async def test_the_fold_counts_the_replies_sent_without_answering_again() -> None:
    index = ServingIndex(rng=random.Random(3).random)
    index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0M0TEST", Z, 1, "", tuple(zone())))
    tally = QueryTally(index)
    rnd = random.Random(9)
    asked = ([("h1.m.test.", "A")] * 5 + [("w.m.test.", "A")] * 4 + [("cn.m.test.", "A")] * 2
             + [(f"h{rnd.randrange(50)}.m.test.", rnd.choice(["A", "AAAA"])) for _ in range(30)]
             + [(f"x{rnd.getrandbits(32):x}.m.test.", "A") for _ in range(20)]
             + [(f"y{i}.m.test.", qtype) for i, qtype in enumerate(["TXT", "HTTPS", "TYPE65280"])])
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.setblocking(False)
    want: Counter[tuple[str, str]] = Counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_udp, index, srv)
        client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with client, trio.fail_after(20):
            for i, (name, qtype) in enumerate(asked):  # one at a time: repeats meet the table
                q = dns.message.make_query(name, qtype, use_edns=0 if i % 3 == 0 else None)
                await client.sendto(q.to_wire(), srv.getsockname())
                reply = dns.message.from_wire(await client.recv(4096))
                assert reply.id == q.id
                want[(qtype, dns.rcode.to_text(reply.rcode()))] += 1
        nursery.cancel_scope.cancel()
    srv.close()
    assert index.query_counts and index.reply_counts  # both lanes were taken

    def no_answering(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fold answered a query again")

    index.respond = no_answering  # type: ignore[method-assign]
    tally.fold()
    assert dict(tally.by_type_rcode) == dict(want)
    assert want[("A", "NXDOMAIN")] == 20 and want[("TYPE65280", "NXDOMAIN")] == 1
    assert sum(want.values()) == len(asked)
    assert not tally.empty  # NODATA for AAAA at names that never had AAAA: not "empty"
    assert not index.query_counts and not index.reply_counts  # folded and cleared in place
