"""The C UDP loop (`authd.dns._fastudp`, issue 12) sends what the Python loop sends.

- Differential: the same zone and the same queries (exact-table hits, misses, weighted picks,
  CNAMEs, referrals, wildcards, malformed packets, EDNS, cookies, TC, TSIG, AXFR over UDP, an
  over-size datagram), served by `serve_dns` with the C loop and with the Python loop, over
  IPv4 and IPv6, with RRL off and on: the replies are byte-identical, in the same order, and
  the metrics count dicts are equal. Replies are decoded with dnspython and dnslib as a check
  that they are DNS at all. The same over random existing names of a generated zone (cuts,
  wildcards, CNAMEs, weighted sets, names with and without AAAA, a child zone, a DNAME zone,
  mixed case) with change batches applied between datagrams, where C answers an owner's own
  plain RRset itself (`answer_plain`), keeping it in the exact table as `udp_read` does.
- Both loops end alike when the socket is closed under them (the same exception, the same
  counts), and a reply that is not bytes-like raises, as the Python loop's sendto raises.
- `drain` itself: the source address given to the fallback is the one `recvfrom` gives; an
  over-size datagram is cut at 4096 octets as `recvfrom(4096)` cuts it; an Exception from the
  fallback drops one datagram, a KeyboardInterrupt stops the loop after the batch is sent;
  ECONNREFUSED from an earlier reply's ICMP does not stop it; it is not reentrant; no
  reference or memory leaks over 100,000 datagrams (nor when C answers plain RRsets).
- The C reader of a question alone (`read_question`) and `wire.read_query` are one reader:
  hypothesis-generated and edge-case wires get the same accept/decline and the same key.
- A hypothesis fuzz of random and mutated datagrams (0..4200 octets) against two `authd serve`
  processes, one per loop: every reply is the same and both survive.
"""

from __future__ import annotations

import functools
import os
import random
import socket
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dnslib
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authd.dns.compiled import CompiledAnswers, name_key
from authd.dns.index import ServingIndex
from authd.dns.rrl import RrlConfig
from authd.dns.server import serve_dns, serve_udp
from authd.dns.udp_batched import AVAILABLE
from authd.metrics import QueryTally
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordKey, RecordSet

pytestmark = [pytest.mark.realtime,
              pytest.mark.skipif(not AVAILABLE, reason="authd.dns._fastudp is not built "
                                 "(needs a C compiler and Python.h: pip install -e .)")]
if AVAILABLE:
    from authd.dns import _fastudp

Z = "f.test."
SECRET = bytes(range(16))
WALL = 1_800_000_000.25  # time.time() during the differential runs: cookies carry it


def zone() -> list[RecordSet]:
    sets = [RecordSet(Z, "SOA", 300, ("ns1.f.test. hostmaster.f.test. 1 7200 900 1209600 60",)),
            RecordSet(Z, "NS", 300, ("ns1.f.test.",)),
            RecordSet("ns1.f.test.", "A", 300, ("192.0.2.1",)),
            RecordSet("cn.f.test.", "CNAME", 60, ("h3.f.test.",)),
            RecordSet("*.wild.f.test.", "A", 60, ("192.0.2.20",)),
            RecordSet("sub.f.test.", "NS", 300, ("ns.sub.f.test.",)),
            RecordSet("ns.sub.f.test.", "A", 300, ("192.0.2.53",)),
            RecordSet("big.f.test.", "TXT", 60, tuple(f'"{i:03d}{"x" * 90}"' for i in range(8)))]
    sets += [RecordSet("w.f.test.", "A", 60, (f"192.0.2.{100 + i}",), set_identifier=f"m{i}",
                       weight=i + 1) for i in range(3)]
    sets += [RecordSet(f"h{i}.f.test.", "A", 60, (f"10.0.0.{i}",)) for i in range(40)]
    sets += [RecordSet(f"h{i}.f.test.", "AAAA", 60, (f"2001:db8::{i:x}",)) for i in range(0, 40, 4)]
    return sets


def make_index() -> ServingIndex:
    index = ServingIndex(rng=random.Random(3).random)
    index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0F0TEST", Z, 1, "", tuple(zone())))
    index.query_counts = {}  # as authd.metrics.QueryTally sets them
    index.reply_counts = {}
    return index


def queries() -> list[bytes]:
    """A fixed mix; every shape twice or more, so the second meets the exact table."""
    rnd = random.Random(12)
    out: list[bytes] = []

    def q(name: str, qtype: str = "A", **kw: object) -> bytes:
        m = dns.message.make_query(name, qtype, **kw)  # type: ignore[arg-type]
        m.id = rnd.getrandbits(16)
        return m.to_wire()

    keyring = dns.tsigkeyring.from_text({"nokey.": "c2VjcmV0c2VjcmV0c2VjcmV0"})
    for _ in range(2):
        out += [q("h1.f.test.") for _ in range(3)]
        out += [q("w.f.test.") for _ in range(12)]  # weighted picks, same random source
        out += [q("cn.f.test."), q("x.wild.f.test."), q("a.sub.f.test."), q("h4.f.test.", "AAAA")]
        out += [q("h5.f.test.", "AAAA"), q("H2.F.TEST."), q("big.f.test.", "TXT")]  # TC=1
        out += [q("big.f.test.", "TXT", use_edns=0, payload=4096)]
        out += [q("h6.f.test.", use_edns=0, payload=p) for p in (512, 1232, 4096)]
        out += [q("h7.f.test.", use_edns=0, want_dnssec=True)]
        out += [q(f"nx{rnd.getrandbits(24):x}.f.test.") for _ in range(4)]  # NXDOMAIN
        out += [q("h8.f.test.", "MX"), q("other.example.", "A")]  # NODATA, REFUSED
        cookie = dns.edns.GenericOption(10, bytes(range(8)))
        out += [q("h9.f.test.", use_edns=0, options=[cookie])]  # a client cookie: the guard
        signed = dns.message.make_query("h1.f.test.", "A")
        signed.use_tsig(keyring, keyname="nokey.")
        out += [signed.to_wire()]  # TSIG with a key we lack: BADKEY (RFC 8945 §5.2)
        out += [q(Z, "AXFR"), q(Z, "IXFR")]
        good = q("h10.f.test.")
        out += [b"", b"\x01", good[:5], good[:11], good[:12], good[:-1], good + b"\0",
                good[:2] + b"\xff" * 30, bytes(rnd.getrandbits(8) for _ in range(40))]
        out += [good[:12] + b"\x3f" + b"a" * 70 + good[12:]]  # a label over 63 octets
        out += [q("h11.f.test.", use_edns=0) + b"\0" * 4980]  # over 4096: cut as recvfrom cuts
        out += edge_questions(rnd)
    return out


def _name_wire(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\0"


def edge_questions(rnd: random.Random) -> list[bytes]:
    """Questions alone at the edges of the C reader (`_fastudp.read_question`): random and
    mixed-case names, 63-octet labels, 255-octet names and names just over each limit,
    other classes, opcodes, QR=1, trailing octets, a compression pointer."""
    def wire(labels: list[bytes], qtype: int = 1, qclass: int = 1, flags: int = 0x0100,
             tail: bytes = b"") -> bytes:
        return (rnd.getrandbits(16).to_bytes(2, "big") + flags.to_bytes(2, "big")
                + b"\0\x01\0\0\0\0\0\0" + _name_wire(labels) + qtype.to_bytes(2, "big")
                + qclass.to_bytes(2, "big") + tail)

    zone = [b"f", b"test"]
    letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    out = []
    for _ in range(6):  # random, mixed case (some existing names, most missing)
        label = bytes(rnd.choice(letters) for _ in range(rnd.randint(1, 20)))
        out.append(wire([label, *zone], qtype=rnd.choice([1, 28, 16, 15, 6, 2])))
    out += [wire([b"H%d" % i, b"F", b"TeSt"]) for i in (3, 12, 39)]  # existing, mixed case
    out += [wire([b"a" * 63, *zone]), wire([b"A" * 64, *zone])]  # 63 octets; 64: a bad type
    # 255 octets in all: 3 x (63 + 1) + (54 + 1) + f (2) + test (5) + root (1); then 256
    long = [b"x" * 63, b"Y" * 63, b"z" * 63, b"q" * 54, *zone]
    assert len(_name_wire(long)) == 255
    out += [wire(long), wire([b"x" * 63, b"Y" * 63, b"z" * 63, b"q" * 55, *zone])]
    out += [wire([b"h1", *zone], qclass=3), wire([b"h1", *zone], qclass=255),  # CH, ANY
            wire([b"h1", *zone], flags=0x0900), wire([b"h1", *zone], flags=0x2100),  # opcodes
            wire([b"h1", *zone], flags=0x8100), wire([b"h1", *zone], flags=0x0300),  # QR, TC
            wire([b"nx1", *zone], tail=b"\0"), wire([], qtype=6)]  # trailing octet; the root
    ptr = wire([b"h2", *zone])
    out.append(ptr[:12] + b"\x02h2\xc0\x0c" + ptr[-4:])  # a compression pointer in the question
    return out


def _read_ready(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65535))
        except BlockingIOError:
            return out


def _read_until_quiet(sock: socket.socket, quiet: float = 0.5) -> list[bytes]:
    out = []
    sock.settimeout(quiet)
    try:
        while True:
            out.append(sock.recv(65535))
    except TimeoutError:
        return out
    finally:
        sock.setblocking(False)


def _counted(index: ServingIndex) -> int:
    """Datagrams the loop has counted: every one exactly once, by its query in
    `query_counts`, by query and status in `reply_counts`, or in the C loop's census (with a
    `QueryTally`, whose totals and held counts then hold what a change batch's hold took)."""
    n = sum(index.query_counts.values()) + sum(index.reply_counts.values())  # type: ignore[union-attr]
    census = getattr(index, "census", None)
    if census is not None:
        tally: QueryTally = index.tally  # type: ignore[attr-defined]
        n += sum(census.counts) + sum(tally._totals.values())  # noqa: SLF001
        n += sum(sum(ns) for _, ns, _ in tally._held)  # noqa: SLF001
    return n


async def _handled(index: ServingIndex, n: int) -> None:
    """Wait until the loop has counted n datagrams (`_counted`)."""
    deadline = time.monotonic() + 30  # real time: the trio clock is frozen in these tests
    while _counted(index) < n:
        assert time.monotonic() < deadline, "the UDP loop did not handle the datagrams"
        await trio.testing.wait_all_tasks_blocked()
        await trio.to_thread.run_sync(time.sleep, 0.002)


async def run_loop(fast: bool, host: str, wires: list[bytes], rrl: RrlConfig | None = None,
                   build: Callable[[], ServingIndex] = make_index,
                   changes: dict[int, list[JournalEntry]] | None = None,
                   ) -> tuple[list[bytes], dict, dict]:
    """Serve `wires` with one loop, a few at a time; `changes[at]` are applied to the index
    between datagrams, once the loop has handled every datagram before `at` (a multiple of
    24). Returns the replies in order and the two count dicts."""
    index = build()
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(functools.partial(
            serve_dns, index, host, 0, rrl=rrl, cookie_secret=SECRET, fast_udp=fast))
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(fam, socket.SOCK_DGRAM) as client:
            client.bind((host, 0))
            client.setblocking(False)
            replies: list[bytes] = []
            for at in range(0, len(wires), 24):  # a few at a time: no buffer overflows
                for entry in (changes or {}).get(at, ()):
                    assert index.apply(entry)  # a change batch between two datagrams
                for w in wires[at:at + 24]:
                    client.sendto(w, (host, port))
                await _handled(index, min(at + 24, len(wires)))
                replies += _read_ready(client)
            replies += await trio.to_thread.run_sync(_read_until_quiet, client)
        nursery.cancel_scope.cancel()
    return replies, dict(index.query_counts or {}), dict(index.reply_counts or {})


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("rrl", [None, RrlConfig("on", rate=5, slip=2)], ids=["rrl-off", "rrl-on"])
async def test_the_c_loop_sends_the_python_loops_bytes_and_counts_the_same(
        host: str, rrl: RrlConfig | None, mock_clock: trio.testing.MockClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: WALL)
    read: list[bytes] = []  # the questions the C loop read itself (`udp_read`)
    udp_read = CompiledAnswers.udp_read

    def counted(self: CompiledAnswers, wire: bytes, *args: object) -> bytes | None:
        read.append(wire)
        return udp_read(self, wire, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(CompiledAnswers, "udp_read", counted)
    wires = queries()
    c_replies, c_counts, c_tally = await run_loop(True, host, wires, rrl)
    c_read = len(read)
    py_replies, py_counts, py_tally = await run_loop(False, host, wires, rrl)
    assert (c_read > 20) == (rrl is None) and len(read) == c_read  # the Python loop: none
    assert c_replies == py_replies
    assert c_counts == py_counts and c_tally == py_tally
    # the run took each lane: exact hits, other replies, drops
    assert sum(c_counts.values()) > 10 and sum(c_tally.values()) > 10
    assert len(c_replies) < len(wires)  # malformed ones dropped
    weighted = set()
    for wire in c_replies:
        if len(wire) < 12:
            continue
        dn = dns.message.from_wire(wire, ignore_trailing=True, continue_on_error=True)
        lib = dnslib.DNSRecord.parse(wire)
        assert lib.header.id == dn.id and lib.header.rcode == dn.rcode() & 0xF
        if dn.question and str(dn.question[0].name).lower() == "w.f.test." and dn.answer:
            weighted.add(dn.answer[0][0].address)
    if rrl is None:
        assert len(weighted) >= 2  # the weighted picks varied, and matched pick for pick
        assert any(dns.message.from_wire(w).flags & dns.flags.TC for w in c_replies
                   if len(w) > 12 and b"\x03big" in w)
    else:  # 5 a second on a frozen clock: the limiter slipped and dropped some
        assert any(dnslib.DNSRecord.parse(w).header.tc for w in c_replies if len(w) >= 12)


# --- random existing names over a generated zone: C answers an owner's own plain RRset ---

G, CHILD, DN = "g.test.", "c.g.test.", "dn.test."
_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789-"


def _soa(origin: str) -> list[RecordSet]:
    return [RecordSet(origin, "SOA", 300, (f"ns1.{origin} hostmaster.{origin} 1 7200 900 "
                                           "1209600 60",)),
            RecordSet(origin, "NS", 300, (f"ns1.{origin}",)),
            RecordSet(f"ns1.{origin}", "A", 300, ("192.0.2.1",))]


def generated_zones(seed: int, n: int = 500) -> tuple[list[RecordSet], list[RecordSet],
                                                       list[RecordSet], list[str]]:
    """g.test. with n random owners (A; A and AAAA; several A; CNAMEs in and out of the zone;
    weighted A sets; short and over-512 TXT; MX, whose rdata holds a name; names two labels
    down, so their parents are empty non-terminals), delegations with glue and names below
    them, wildcards, and a cut to the child zone c.g.test. (served too, with its own owners);
    dn.test. holds a DNAME. Returns the three zones' sets and the owners of g.test."""
    rnd = random.Random(seed)
    sets, owners = _soa(G), []
    for i in range(n):
        label = "".join(rnd.choice(_LETTERS) for _ in range(rnd.randint(1, 12))) + str(i)
        name = f"{label}.{G}" if i % 7 else f"{label}.deep{i % 3}.{G}"
        owners.append(name)
        kind = i % 10
        if kind in (0, 1, 2):
            sets.append(RecordSet(name, "A", 60, (f"10.{i >> 8 & 255}.{i & 255}.1",)))
        elif kind == 3:
            sets.append(RecordSet(name, "A", 60, (f"10.1.{i & 255}.1",)))
            sets.append(RecordSet(name, "AAAA", 60, (f"2001:db8::{i:x}",)))
        elif kind == 4:
            sets.append(RecordSet(name, "A", 60, tuple(f"10.2.{i & 255}.{j}" for j in range(5))))
        elif kind == 5:
            target = rnd.choice(owners[:-1] or [f"ns1.{G}"]) if i % 20 else "x.example."
            sets.append(RecordSet(name, "CNAME", 60, (target,)))
        elif kind == 6:
            sets += [RecordSet(name, "A", 60, (f"10.3.{i & 255}.{j}",), set_identifier=f"m{j}",
                               weight=j + 1) for j in range(3)]
        elif kind == 7:
            sets.append(RecordSet(name, "TXT", 60, (f'"t{i}"', '"second string"')))
            sets.append(RecordSet(name, "A", 60, (f"10.4.{i & 255}.1",)))
        elif kind == 8:  # over 512 octets in all: TC=1, the pipeline's
            sets.append(RecordSet(name, "TXT", 60, tuple(f'"{j:02d}{"y" * 60}"' for j in range(9))))
        else:
            sets.append(RecordSet(name, "MX", 60, (f"10 mx.{name}",)))
            sets.append(RecordSet(f"mx.{name}", "A", 60, ("192.0.2.25",)))
    for j in range(4):  # delegations, their glue and names below them (referrals)
        sets.append(RecordSet(f"d{j}.{G}", "NS", 300, (f"ns.d{j}.{G}",)))
        sets.append(RecordSet(f"ns.d{j}.{G}", "A", 300, (f"192.0.2.{60 + j}",)))
        sets.append(RecordSet(f"host.d{j}.{G}", "A", 300, ("192.0.2.99",)))  # occluded
    sets.append(RecordSet(f"*.w.{G}", "A", 60, ("192.0.2.20",)))
    sets.append(RecordSet(f"*.w.{G}", "AAAA", 60, ("2001:db8::20",)))
    sets.append(RecordSet(f"real.w.{G}", "A", 60, ("192.0.2.21",)))
    sets.append(RecordSet(CHILD, "NS", 300, (f"ns1.{CHILD}",)))
    sets.append(RecordSet(f"ns1.{CHILD}", "A", 300, ("192.0.2.1",)))
    child = _soa(CHILD) + [RecordSet(f"k{i}.{CHILD}", "A", 60, (f"10.9.0.{i}",))
                           for i in range(20)]
    dn = _soa(DN) + [RecordSet(f"old.{DN}", "DNAME", 60, (f"new.{G}",)),
                     RecordSet(f"a.{DN}", "A", 60, ("10.8.0.1",))]
    return sets, child, dn, owners


def generated_index(seed: int) -> ServingIndex:
    g, child, dn, _ = generated_zones(seed)
    index = ServingIndex(rng=random.Random(3).random)
    for zid, origin, sets in (("Z0G", G, g), ("Z0C", CHILD, child), ("Z0DN", DN, dn)):
        index.apply(JournalEntry(0, EntryKind.SNAPSHOT, zid, origin, 1, "", tuple(sets)))
    index.query_counts = {}
    index.reply_counts = {}
    return index


def _mixed_case(rnd: random.Random, name: str) -> str:
    return "".join(ch.upper() if rnd.random() < 0.5 else ch for ch in name)  # 0x20


def generated_queries(seed: int, count: int) -> list[bytes]:
    """Random existing names of the generated zones (25 hot ones asked again and again, so
    the exact table keeps some), each of A, AAAA, TXT, MX or another type, some in mixed
    case, RD set or not; and some names below cuts, wildcard names, missing names, the child
    zone's and the DNAME zone's names, a few with EDNS."""
    rnd = random.Random(seed)
    _, _, _, owners = generated_zones(seed)
    hot = owners[:25]
    others = ([f"host.d{j}.{G}" for j in range(4)] + [f"x{j}.w.{G}" for j in range(5)]
              + [f"real.w.{G}", f"k3.{CHILD}", f"k7.{CHILD}", f"a.{DN}", f"x.old.{DN}",
                 f"deep1.{G}", G, CHILD])
    out = []
    for _ in range(count):
        r = rnd.random()
        if r < 0.3:
            name = rnd.choice(hot)
        elif r < 0.8:
            name = rnd.choice(owners)
        elif r < 0.92:
            name = rnd.choice(others)
        else:
            name = f"nx{rnd.getrandbits(20):x}.{rnd.choice([G, CHILD])}"
        qtype = rnd.choice(["A"] * 12 + ["AAAA"] * 3 + ["TXT", "MX", "CNAME", "NS", "SOA",
                                                        "DS", "ANY", "SRV", "TYPE65000"])
        if r < 0.3 and rnd.random() < 0.7:
            qtype = "A"  # a hot question, the same bytes again (but for its ID)
        elif rnd.random() < 0.3:
            name = _mixed_case(rnd, name)
        edns = rnd.random() < 0.05
        m = dns.message.make_query(name, qtype, use_edns=0 if edns else None)
        m.id = rnd.getrandbits(16)
        if rnd.random() < 0.1:
            m.flags &= ~dns.flags.RD
        out.append(m.to_wire())
    return out


def generated_changes(seed: int) -> list[JournalEntry]:
    """Four batches on g.test.: new values for some names, deletions, an AAAA added, a new
    cut above existing names; then a DNAME added (nothing of the zone is C's while it is
    there); then the DNAME removed; then new values for the hot names (their answers are
    in the exact table)."""
    _, _, _, owners = generated_zones(seed)
    hot = owners[:25]
    plain_a = [o for i, o in enumerate(owners) if i % 10 in (0, 1, 2)]
    first = [RecordSet(o, "A", 30, ("10.200.0.1", "10.200.0.2")) for o in plain_a[:20]]
    first += [RecordSet(o, "AAAA", 30, ("2001:db8::beef",)) for o in plain_a[20:30]]
    first += [RecordSet(f"deep1.{G}", "NS", 300, (f"ns1.{G}",))]  # a cut over deep1's names
    gone = [RecordKey(o, "A", None) for o in plain_a[30:40] if o not in plain_a[:30]]
    dname = [RecordSet(f"moved.{G}", "DNAME", 60, (f"elsewhere.{G}",))]
    return [JournalEntry(1, EntryKind.CHANGE, "Z0G", G, 2, "C1", tuple(first), tuple(gone)),
            JournalEntry(2, EntryKind.CHANGE, "Z0G", G, 3, "C2", tuple(dname)),
            JournalEntry(3, EntryKind.CHANGE, "Z0G", G, 4, "C3", (),
                         (RecordKey(f"moved.{G}", "DNAME", None),))] + [
            JournalEntry(4, EntryKind.CHANGE, "Z0G", G, 5, "C4",
                         tuple(RecordSet(o, "A", 30, ("10.201.0.1",)) for o in hot
                               if o in plain_a), ())]


def tallied_index(seed: int) -> ServingIndex:
    """`generated_index` with the metrics' `QueryTally` on it, as `authd serve` counts: the C
    loop then counts its own replies in the census (`authd.metrics.Census`)."""
    index = generated_index(seed)
    index.tally = QueryTally(index)  # type: ignore[attr-defined]
    return index


@pytest.mark.parametrize("seed", [1, 2])
async def test_the_c_loops_census_gives_the_python_loops_totals_and_empty_answers(
        seed: int, mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the metrics on, C counts the replies it sends itself (exact hits, plain RRsets,
    spliced templates) by (QTYPE, rcode) and (name, type) pair, not by query: the folded
    totals by type and rcode, and the empty answers across change batches (hot names going
    empty, new values), are the Python loop's, which counts every reply by query."""
    monkeypatch.setattr(time, "time", lambda: WALL)
    wires = generated_queries(seed, 1200)
    changes = dict(zip((24 * 12, 24 * 25, 24 * 32, 24 * 40), ([c] for c in generated_changes(seed)),
                       strict=True))
    owners = generated_zones(seed)[3]
    plain_a = {o for i, o in enumerate(owners) if i % 10 in (0, 1, 2)}
    gone = JournalEntry(5, EntryKind.CHANGE, "Z0G", G, 6, "C5", (), tuple(
        RecordKey(o, "A", None) for o in owners[:25] if o in plain_a))  # hot names go empty
    changes[24 * 45] = [gone]
    seen: dict[bool, ServingIndex] = {}

    def build(fast: bool) -> ServingIndex:
        seen[fast] = tallied_index(seed)
        return seen[fast]

    c_replies, _, _ = await run_loop(True, "127.0.0.1", wires, None, lambda: build(True), changes)
    py_replies, _, _ = await run_loop(False, "127.0.0.1", wires, None, lambda: build(False),
                                      changes)
    assert c_replies == py_replies
    c_tally, py_tally = seen[True].tally, seen[False].tally  # type: ignore[attr-defined]
    c_census = seen[True].census  # type: ignore[attr-defined]
    assert c_census.pairs or c_tally._held  # noqa: SLF001 (C counted some itself)
    assert not any(seen[False].census.counts)  # type: ignore[attr-defined] (the Python loop: none)
    assert c_tally.fold() and py_tally.fold()
    totals = dict(py_tally.by_type_rcode)
    assert dict(c_tally.by_type_rcode) == totals and sum(totals.values()) == len(wires)
    assert dict(c_tally.empty) == dict(py_tally.empty) and c_tally.empty  # the hot names
    assert len(c_tally.had_records) == len(py_tally.had_records) > 100
    assert {t for t, _ in totals} >= {"A", "AAAA", "TXT", "MX", "TYPE65000"}
    assert {r for _, r in totals} >= {"NOERROR", "NXDOMAIN"}


async def test_queries_answered_in_c_show_in_the_prometheus_counters() -> None:
    """`authd_dns_queries_total{type,rcode}` counts what C answered itself (census slots:
    exact hits, an owner's own plain RRset, NXDOMAIN and CNAME templates) as the replies say,
    with what it does not count itself (a type without a slot, NODATA, REFUSED out of the
    zones, which Python answers) counted by query; and a name C answered with records that
    then goes NOERROR-empty is an empty answer."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import CollectorRegistry

    from authd.metrics import AuthdCollector

    index = make_index()
    tally = QueryTally(index)
    census = index.census  # type: ignore[attr-defined]
    asked = ([("h1.f.test.", "A")] * 4 + [("h4.f.test.", "AAAA")] * 3 + [("cn.f.test.", "A")] * 3
             + [(f"nx{i}.f.test.", "A") for i in range(5)] + [("nx.f.test.", "MX")] * 2
             + [("h2.f.test.", "TYPE65280"), ("other.example.", "A"), ("h8.f.test.", "MX")]
             + [("h8.f.test.", "A")] * 2)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.setblocking(False)
    want: Counter[tuple[str, str]] = Counter()

    async def ask(client: trio.socket.SocketType, name: str, qtype: str) -> dns.message.Message:
        q = dns.message.make_query(name, qtype)
        await client.sendto(q.to_wire(), srv.getsockname())
        reply = dns.message.from_wire(await client.recv(4096))
        want[(qtype, dns.rcode.to_text(reply.rcode()))] += 1
        return reply

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_udp, index, srv)
        client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with client, trio.fail_after(20):
            for name, qtype in asked:  # one at a time: the repeats meet the exact table
                await ask(client, name, qtype)
            # C counted the A, AAAA and MX replies in its slots, the pairs answered with
            # records in its set: by query only the unslotted type, NODATA and REFUSED
            assert census.pairs == {b"\x02h1\x01f\x04test\x00\x00\x01",
                                    b"\x02h4\x01f\x04test\x00\x00\x1c",
                                    b"\x02cn\x01f\x04test\x00\x00\x01",
                                    b"\x02h8\x01f\x04test\x00\x00\x01"}
            assert sum(census.counts) == len(asked) - 3 and not index.query_counts
            assert len(index.reply_counts) == 3
            index.apply(JournalEntry(1, EntryKind.CHANGE, "Z0F0TEST", Z, 2, "C1", (),
                                     (RecordKey("h8.f.test.", "A", None),)))
            for _ in range(2):  # h8 A: NOERROR with nothing now (its AAAA stays)
                reply = await ask(client, "h8.f.test.", "A")
                assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
        nursery.cancel_scope.cancel()
    srv.close()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AuthdCollector(tally, [], Counter()))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    got = {(s.labels["type"], s.labels["rcode"]): s.value
           for s in families["authd_dns_queries"].samples if s.name.endswith("_total")}
    assert got == dict(want)
    assert want[("A", "NOERROR")] == 4 + 3 + 2 + 2 and want[("A", "NXDOMAIN")] == 5
    assert want[("MX", "NXDOMAIN")] == 2 and want[("A", "REFUSED")] == 1
    assert want[("AAAA", "NOERROR")] == 3 and want[("TYPE65280", "NOERROR")] == 1
    empties = {(s.labels["name"], s.labels["type"]): s.value
               for s in families["authd_dns_empty_answers"].samples if s.name.endswith("_total")}
    assert empties == {("h8.f.test.", "A"): 2}


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_existing_names_of_a_generated_zone_get_the_python_loops_bytes_and_counts(
        seed: int, mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """C answers an owner's own plain RRset itself (`answer_plain`): every reply and both
    count dicts equal the Python loop's, over names with and without AAAA, CNAMEs, weighted
    sets, cuts, wildcards, a child zone, a DNAME zone, mixed case, and change batches applied
    between datagrams (one adding a cut, one a DNAME, one removing it, one changing hot
    names the exact table holds)."""
    monkeypatch.setattr(time, "time", lambda: WALL)
    decided: list[int] = []  # the questions Python's `_shape_of` decided, per run
    shape_of = CompiledAnswers._shape_of

    def counted(self: CompiledAnswers, *args: object, **kw: object) -> object:
        decided[-1] += 1
        return shape_of(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(CompiledAnswers, "_shape_of", counted)
    wires = generated_queries(seed, 1200)
    changes = dict(zip((24 * 12, 24 * 25, 24 * 32, 24 * 40), ([c] for c in generated_changes(seed)),
                       strict=True))
    build = functools.partial(generated_index, seed)
    decided.append(0)
    c_replies, c_counts, c_tally = await run_loop(True, "127.0.0.1", wires, None, build, changes)
    decided.append(0)
    py_replies, py_counts, py_tally = await run_loop(False, "127.0.0.1", wires, None, build,
                                                     changes)
    assert len(c_replies) == len(py_replies) == len(wires)  # nothing here is dropped
    assert c_replies == py_replies
    assert c_counts == py_counts and c_tally == py_tally
    # C decided most plain answers itself: hundreds fewer questions reached `_shape_of`
    assert decided[0] + 200 < decided[1], decided
    # and the lanes were all taken: exact hits, C's and Python's answers, each rcode
    assert sum(c_counts.values()) > 50
    rcodes = {dns.message.from_wire(w).rcode() for w in c_replies}
    assert rcodes >= {dns.rcode.NOERROR, dns.rcode.NXDOMAIN}
    assert any(dns.message.from_wire(w).flags & dns.flags.TC for w in c_replies)


async def test_a_cname_owners_made_template_is_sent_by_c(
        mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a CNAME owner's fixed template is made, C sends its answer itself (`answer_plain`'s
    CNAME branch), for each new spelling (a new exact-table key, so no table hit): Python's
    `_shape_of` decides only the first question of each owner and type, and the replies and
    counts are the Python loop's (a CNAME to data, one to a missing name, one out of the zone;
    A and AAAA asked)."""
    monkeypatch.setattr(time, "time", lambda: WALL)
    decided: list[list[tuple[bytes, ...]]] = []  # the names `_shape_of` decided, per run
    shape_of = CompiledAnswers._shape_of

    def counted(self: CompiledAnswers, wire: bytes, k: tuple[bytes, ...], *args: object,
                **kw: object) -> object:
        decided[-1].append(k)
        return shape_of(self, wire, k, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(CompiledAnswers, "_shape_of", counted)
    origin = "cn.test."
    sets = _soa(origin) + [
        RecordSet(f"data.{origin}", "A", 60, ("10.0.0.1", "10.0.0.2")),
        RecordSet(f"data.{origin}", "AAAA", 60, ("2001:db8::1",)),
        RecordSet(f"www.{origin}", "CNAME", 60, (f"Data.{origin}",)),
        RecordSet(f"gone.{origin}", "CNAME", 60, (f"missing.{origin}",)),
        RecordSet(f"away.{origin}", "CNAME", 60, ("elsewhere.example.",))]

    def build() -> ServingIndex:
        index = ServingIndex(rng=random.Random(3).random)
        index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0CN", origin, 1, "", tuple(sets)))
        index.query_counts = {}
        index.reply_counts = {}
        return index

    rnd = random.Random(5)
    wires = []
    for owner in ("www", "gone", "away"):
        for qtype in ("A", "AAAA"):
            for _ in range(8):  # eight spellings (0x20), each asked once
                m = dns.message.make_query(_mixed_case(rnd, f"{owner}.{origin}"), qtype,
                                           use_edns=None)
                m.id = rnd.getrandbits(16)
                wires.append(m.to_wire())
    decided.append([])
    c_replies, c_counts, c_tally = await run_loop(True, "127.0.0.1", wires, None, build)
    decided.append([])
    py_replies, py_counts, py_tally = await run_loop(False, "127.0.0.1", wires, None, build)
    assert c_replies == py_replies and len(c_replies) == len(wires)
    assert c_counts == py_counts and c_tally == py_tally
    rcodes = {dns.message.from_wire(w).rcode() for w in c_replies}
    assert rcodes == {dns.rcode.NOERROR, dns.rcode.NXDOMAIN}
    # C: one decision per owner and type (the template made); Python: every question
    assert len(decided[0]) == 6, decided[0]
    assert len(decided[1]) == len(wires)


# --- drain itself -------------------------------------------------------------------------


def _pair(host: str = "127.0.0.1") -> tuple[socket.socket, socket.socket]:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_DGRAM)
    srv.bind((host, 0))
    srv.setblocking(False)
    cli = socket.socket(fam, socket.SOCK_DGRAM)
    cli.bind((host, 0))
    cli.settimeout(5)
    return srv, cli


def _drain_all(srv: socket.socket, exact: dict | None, fallback, counts: dict | None = None,
               budget: int = 256, expect: int = 1) -> int:
    """Drain until `expect` datagrams were received (loopback delivery is near-instant)."""
    got = 0
    deadline = time.monotonic() + 10
    while got < expect and time.monotonic() < deadline:
        got += _fastudp.drain(srv.fileno(), exact, fallback, counts, random.random, budget)
    return got


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_fallback_gets_the_address_and_bytes_recvfrom_gives(host: str) -> None:
    srv, cli = _pair(host)
    with srv, cli:
        cli.sendto(b"\x12\x34first", srv.getsockname())
        srv.settimeout(5)
        data, addr = srv.recvfrom(4096)
        srv.setblocking(False)
        seen = []

        def fallback(wire: bytes, source: object) -> bytes:
            seen.append((wire, source))
            return b"re:" + wire

        big = os.urandom(5000)
        cli.sendto(b"\x12\x34first", srv.getsockname())
        cli.sendto(big, srv.getsockname())
        assert _drain_all(srv, {}, fallback, expect=2) == 2
        assert seen == [(data, addr), (big[:4096], addr)]  # cut as recvfrom(4096) cuts it
        assert cli.recv(65535) == b"re:" + data
        assert cli.recv(65535) == b"re:" + big[:4096]


def test_hits_are_spliced_in_c_and_counted_as_the_loop_counts() -> None:
    srv, cli = _pair()
    with srv, cli:
        exact: dict = {b"-hit": b"-reply", b"-w": ([0.5, 1.0], [b"-low", b"-high"])}
        counts: dict = {}
        misses = []
        for wire in (b"ABhit", b"CDhit", b"EFw", b"GHw", b"IJmiss", b"K"):
            cli.sendto(wire[:2] + b"-" + wire[2:] if len(wire) > 1 else wire, srv.getsockname())
        assert _drain_all(srv, exact, lambda w, a: misses.append(w), counts, expect=6) == 6
        replies = [cli.recv(100) for _ in range(4)]
        assert replies[:2] == [b"AB-reply", b"CD-reply"]
        assert {r[2:] for r in replies[2:]} <= {b"-low", b"-high"}
        assert [r[:2] for r in replies[2:]] == [b"EF", b"GH"]
        assert counts == {b"-hit": 2, b"-w": 2}
        assert misses == [b"IJ-miss", b"K"]  # a 1-octet datagram: key b"", a miss


def test_a_weighted_pick_uses_the_random_source_as_bisect_does() -> None:
    srv, cli = _pair()
    with srv, cli:
        exact = {b"-w": ([0.25, 0.75, 1.0], [b"a", b"b", b"c"])}
        for x, want in ((0.0, b"a"), (0.25, b"b"), (0.5, b"b"), (0.75, b"c"), (0.99, b"c")):
            cli.sendto(b"ID-w", srv.getsockname())
            got, deadline = 0, time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                got = _fastudp.drain(srv.fileno(), exact, lambda w, a: None, None,
                                     lambda x=x: x, 8)
            assert cli.recv(100) == b"ID" + want


def test_a_question_alone_goes_to_the_compiled_templates_first() -> None:
    srv, cli = _pair()
    with srv, cli:
        header = b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # after the ID: QD 1, AR 0
        d, n, x = b"ID" + header + b"d", b"ID" + header + b"n", b"ID" + header + b"x"
        with_opt = b"ID" + header[:-1] + b"\x01" + b"d"  # ARCOUNT 1: never the templates
        calls: list[tuple[str, bytes]] = []

        def direct(wire: bytes) -> bytes | None:
            calls.append(("direct", wire))
            if wire.endswith(b"x"):
                raise ValueError("a bad template")
            return wire[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00" if wire.endswith(b"d") else None

        def rest(wire: bytes, addr: object) -> bytes:
            calls.append(("rest", wire))
            return b"rest"

        def fallback(wire: bytes, addr: object) -> bytes:
            calls.append(("fallback", wire))
            return b"full"

        tally: dict = {}
        for wire in (d, n, x, with_opt, b"ID\0\0"):
            cli.sendto(wire, srv.getsockname())
        got = 0
        deadline = time.monotonic() + 10
        while got < 5 and time.monotonic() < deadline:
            got += _fastudp.drain(srv.fileno(), {}, fallback, None, random.random, 256,
                                  direct, rest, tally, b"\xff" * 4)
        assert [cli.recv(100) for _ in range(5)] == [
            b"ID\x81\x80\x00\x01\x00\x01\x00\x00", b"rest", b"full", b"full", b"full"]
        assert calls == [("direct", d), ("direct", n), ("rest", n), ("direct", x),
                         ("fallback", x), ("fallback", with_opt), ("fallback", b"ID\0\0")]
        # counted as the loop counts: query after the ID + reply[2:4] + reply[6:8]; the rest
        # and the fallback count their own
        assert tally == {d[2:] + b"\x81\x80\x00\x01": 1}


def test_a_question_c_reads_goes_to_read_with_its_key_and_other_shapes_to_direct() -> None:
    srv, cli = _pair()
    with srv, cli:
        plain = dns.message.make_query("Ab.F.test.", "AAAA").to_wire()
        pointer = plain[:12] + b"\x02Ab\xc0\x0c" + plain[-4:]  # not read in C: direct's
        calls: list[tuple] = []

        def read(wire: bytes, key: tuple, qtype: int, qend: int) -> bytes | None:
            calls.append(("read", wire, key, qtype, qend))
            return wire[:2] + b"read"

        def direct(wire: bytes) -> bytes | None:
            calls.append(("direct", wire))
            return None

        def rest(wire: bytes, addr: object) -> bytes:
            calls.append(("rest", wire))
            return wire[:2] + b"rest"

        for wire in (plain, pointer):
            cli.sendto(wire, srv.getsockname())
        got = 0
        deadline = time.monotonic() + 10
        while got < 2 and time.monotonic() < deadline:
            got += _fastudp.drain(srv.fileno(), {}, rest, None, random.random, 256,
                                  direct, rest, None, b"\xff" * 4, read, 0)
        assert [cli.recv(100) for _ in range(2)] == [plain[:2] + b"read", pointer[:2] + b"rest"]
        assert calls == [("read", plain, (b"ab", b"f", b"test", b""), 28, len(plain)),
                         ("direct", pointer), ("rest", pointer)]
        # with the zone table, read gets the zone of the name's longest suffix in it
        zones = {(b"test", b""): "test", (b"f", b"test", b""): "f", (b"ab", b"x", b""): "ab"}
        seen: list = []
        outside = dns.message.make_query("ab.x.y.", "A").to_wire()
        for wire in (plain, outside):
            cli.sendto(wire, srv.getsockname())
        got = 0
        deadline = time.monotonic() + 10
        while got < 2 and time.monotonic() < deadline:
            got += _fastudp.drain(srv.fileno(), {}, rest, None, random.random, 256, direct,
                                  rest, None, b"\xff" * 4,
                                  lambda w, k, t, e, z: seen.append((k, z)), 0, zones)
        assert seen == [((b"ab", b"f", b"test", b""), "f"), ((b"ab", b"x", b"y", b""), None)]
        with pytest.raises(TypeError):
            _fastudp.drain(srv.fileno(), {}, rest, None, random.random, 256, direct, rest,
                           None, b"", read, 0, [])


@pytest.mark.parametrize("many", [False, True], ids=["few-zones", "many-zones"])
def test_read_gets_the_zone_the_python_search_finds(many: bool) -> None:
    """C's zone search (`find_zone`: a few zones compared label by label, more by slicing)
    gives `read` the zone `CompiledAnswers._shape_of` finds: the deepest served suffix."""
    origins = ["f.test.", "a.f.test.", "b.a.f.test.", "test.", "x.y."] + (
        [f"z{i}.example." for i in range(9)] if many else [])
    zones: dict = {name_key(o): o for o in origins}
    assert (len(zones) > 8) == many
    rnd = random.Random(4)
    names = [".".join(rnd.choice(["b", "a", "f", "test", "x", "y", "q", "z3", "example"])
                      for _ in range(rnd.randint(1, 5))) + "." for _ in range(150)]
    names += ["q.A.F.test.", "b.a.F.TEST.", "a.f.test.", "f.test.", "test.", "."]
    srv, cli = _pair()
    with srv, cli:
        seen: list = []
        for name in names:
            cli.sendto(dns.message.make_query(name, "A").to_wire(), srv.getsockname())
        got = 0
        deadline = time.monotonic() + 10
        while got < len(names) and time.monotonic() < deadline:
            got += _fastudp.drain(srv, {}, lambda w, a: None, None, random.random, 256,
                                  lambda w: None, lambda w, a: None, None, b"\xff" * 4,
                                  lambda w, k, t, e, z: seen.append((k, z)), 0, zones)
        assert len(seen) == len(names)
        for k, z in seen:
            want = next((zones[k[j:]] for j in range(len(k)) if k[j:] in zones), None)
            assert z == want, (k, z, want)
        assert {z for _, z in seen} >= {"f.test.", "a.f.test.", "b.a.f.test.", "test.", None}


def test_an_answer_read_returns_is_spliced_in_c_as_spliced_writes_it() -> None:
    index = make_index()
    compiled = index.compiled
    assert compiled is not None
    srv, cli = _pair()
    with srv, cli:
        nx = dns.message.make_query("NoSuch.F.test.", "A").to_wire()  # NXDOMAIN: C splices
        odd = dns.message.make_query("odd.f.test.", "A").to_wire()
        tally: dict = {}

        def read(wire: bytes, key: tuple, qtype: int, qend: int) -> object:
            if wire == odd:
                return (1, 2, 3)  # not an answer C splices: the fallback's
            got = compiled.udp_read(wire, key, qtype, qend)
            assert type(got) is tuple  # (the splice is C's here)
            return got

        def fallback(wire: bytes, addr: object) -> bytes:
            return wire[:2] + b"full"

        for wire in (nx, odd):
            cli.sendto(wire, srv.getsockname())
        got = 0
        deadline = time.monotonic() + 10
        while got < 2 and time.monotonic() < deadline:
            got += _fastudp.drain(srv.fileno(), {}, fallback, None, random.random, 256,
                                  compiled.udp, fallback, tally, b"\xff" * 4, read,
                                  compiled.copied)
        spliced, full = cli.recv(600), cli.recv(600)
        assert spliced == compiled.udp(nx)  # `_spliced`'s bytes, RD copied
        assert dns.message.from_wire(spliced).rcode() == dns.rcode.NXDOMAIN
        assert dnslib.DNSRecord.parse(spliced).header.rcode == 3
        assert full == odd[:2] + b"full"
        assert tally == {nx[2:] + spliced[2:4] + spliced[6:8]: 1}


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_the_c_reader_and_read_query_are_one_reader(data: st.DataObject) -> None:
    """`_fastudp.read_question` accepts exactly what `wire.read_query` accepts without EDNS,
    with the same key, QTYPE and qend (the two write one rule: RFC 1035 §4.1)."""
    from authd.dns.wire import read_query

    draw = data.draw
    labels = draw(st.lists(st.one_of(
        st.binary(min_size=1, max_size=3), st.binary(min_size=60, max_size=64),
        st.text("aAbBzZ09-", min_size=1, max_size=20).map(str.encode)), max_size=8))
    name = b"".join(bytes([min(len(x), 255)]) + x[:255] for x in labels) + b"\0"
    head = draw(st.sampled_from([b"\x01\x00", b"\x00\x00", b"\x81\x00", b"\x09\x00",
                                 b"\x03\x10", b"\x01\xff"]))
    counts = draw(st.sampled_from([b"\0\x01\0\0\0\0\0\0", b"\0\x02\0\0\0\0\0\0",
                                   b"\0\x01\0\0\0\0\0\x01", b"\0\x01\0\x01\0\0\0\0"]))
    qclass = draw(st.sampled_from([b"\0\x01", b"\0\x03", b"\x01\x01"]))
    wire = b"ID" + head + counts + name + draw(st.binary(min_size=2, max_size=2)) + qclass
    if draw(st.booleans()):  # cut, or extended, or a byte changed
        wire = wire[:draw(st.integers(0, len(wire)))] + draw(st.binary(max_size=3))
    if draw(st.booleans()) and wire:
        at = draw(st.integers(0, len(wire) - 1))
        wire = wire[:at] + bytes([draw(st.integers(0, 255))]) + wire[at + 1:]
    ours = _fastudp.read_question(wire)
    theirs = read_query(wire)
    if theirs is not None and theirs[4] == 0:  # read without EDNS: C reads it the same
        assert ours == (theirs[0], theirs[3], theirs[2])
    else:
        assert ours is None


def test_the_c_reader_at_the_limits() -> None:
    from authd.dns.wire import read_query

    wires = edge_questions(random.Random(5))
    accepted = [w for w in wires if _fastudp.read_question(w) is not None]
    for w in wires:
        theirs = read_query(w)
        assert _fastudp.read_question(w) == (None if theirs is None else
                                             (theirs[0], theirs[3], theirs[2]))
    assert len(accepted) >= 12  # the random ones, 63 octets, 255 octets, TC, the root
    assert _fastudp.read_question(wires[9]) is not None  # a 63-octet label
    assert _fastudp.read_question(wires[10]) is None  # a 64-octet label
    assert _fastudp.read_question(wires[11]) is not None  # 255 octets
    assert _fastudp.read_question(wires[12]) is None  # 256 octets
    with pytest.raises(TypeError):
        _fastudp.read_question("not bytes")  # type: ignore[arg-type]


def test_an_entry_c_does_not_read_goes_to_the_fallback_uncounted() -> None:
    srv, cli = _pair()
    with srv, cli:
        exact: dict = {b"-odd": ["not", "a pair"], b"-short": ([1.0], [])}
        counts: dict = {}
        handed = []
        cli.sendto(b"XY-odd", srv.getsockname())
        cli.sendto(b"XY-short", srv.getsockname())
        assert _drain_all(srv, exact, lambda w, a: handed.append(w), counts, expect=2) == 2
        assert handed == [b"XY-odd", b"XY-short"] and counts == {}  # the fallback counts


def test_an_exception_drops_one_datagram_and_a_keyboard_interrupt_stops_after_sending() -> None:
    srv, cli = _pair()
    with srv, cli:
        def fallback(wire: bytes, addr: object) -> bytes:
            if wire == b"boom":
                raise ValueError("one bad packet")
            if wire == b"stop":
                raise KeyboardInterrupt
            return b"ok:" + wire

        for wire in (b"a", b"boom", b"b", b"stop"):
            cli.sendto(wire, srv.getsockname())
        with pytest.raises(KeyboardInterrupt):  # noqa: PT012
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                _fastudp.drain(srv.fileno(), {}, fallback, None, random.random, 256)
        assert cli.recv(100) == b"ok:a" and cli.recv(100) == b"ok:b"  # sent before raising
        cli.sendto(b"after", srv.getsockname())
        assert _drain_all(srv, {}, fallback) == 1
        assert cli.recv(100) == b"ok:after"


def test_refused_replies_and_a_closed_client_do_not_stop_the_loop() -> None:
    srv, cli = _pair()
    with srv, cli:
        # an unconnected socket hears of ICMP errors only with IP_RECVERR (ip(7)); then a
        # receive fails with ECONNREFUSED, as the Python loop's comment expects
        srv.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVERR", 11), 1)  # linux/in.h
        gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        gone.bind(("127.0.0.1", 0))
        for i in range(5):
            gone.sendto(b"q%d" % i, srv.getsockname())
        gone.close()  # our replies to it draw ICMP port unreachable: ECONNREFUSED
        echo = lambda w, a: b"ok:" + w  # noqa: E731
        assert _drain_all(srv, {}, echo, expect=5) >= 5  # 6 when the ICMP came back in time
        for i in range(3):
            cli.sendto(b"c%d" % i, srv.getsockname())
        got = 0
        deadline = time.monotonic() + 10
        while got < 3 and time.monotonic() < deadline:  # an ECONNREFUSED costs one of budget
            got += _fastudp.drain(srv.fileno(), {}, echo, None, random.random, 256)
        assert [cli.recv(100) for _ in range(3)] == [b"ok:c0", b"ok:c1", b"ok:c2"]


def test_drain_refuses_reentry_and_bad_arguments() -> None:
    srv, cli = _pair()
    with srv, cli:
        errors = []

        def fallback(wire: bytes, addr: object) -> None:
            try:
                _fastudp.drain(srv.fileno(), {}, fallback, None, random.random, 1)
            except RuntimeError as exc:
                errors.append(str(exc))

        cli.sendto(b"x", srv.getsockname())
        assert _drain_all(srv, {}, fallback) == 1
        assert errors == ["drain is not reentrant"]
        with pytest.raises(TypeError):
            _fastudp.drain(srv.fileno(), [], fallback, None, random.random, 1)
        with pytest.raises(TypeError):
            _fastudp.drain(srv.fileno(), {}, fallback, None)
        # not an open fd: each receive fails (EBADF) and costs one of the budget, as the
        # Python loop's `except OSError: continue` spends it
        assert _fastudp.drain(10_000, {}, fallback, None, random.random, 3) == 3


def test_two_threads_drain_at_once_each_with_its_own_buffers() -> None:
    import threading

    inside = threading.Event()
    results: dict[str, object] = {}

    def serve(tag: str, srv: socket.socket, cli: socket.socket) -> None:
        def fallback(wire: bytes, addr: object) -> bytes:
            if tag == "a":
                inside.set()
                time.sleep(0.2)  # lets the GIL go while thread b drains its own socket
            else:
                assert inside.wait(10)
            return tag.encode() + wire

        cli.sendto(b"-" + tag.encode() * 3, srv.getsockname())
        try:
            _drain_all(srv, {}, fallback)
            results[tag] = cli.recv(100)
        except Exception as exc:  # shown by the assertion below
            results[tag] = exc

    pairs = [_pair(), _pair()]
    threads = [threading.Thread(target=serve, args=(t, *p)) for t, p in zip("ab", pairs, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    for srv, cli in pairs:
        srv.close()
        cli.close()
    assert results == {"a": b"a-aaa", "b": b"b-bbb"}


def test_no_reference_or_memory_leak_over_100k_datagrams() -> None:
    srv, cli = _pair()
    cli.setblocking(False)
    with srv, cli:
        value, picked, missed = b"-reply", b"-picked", b"missed-reply"
        exact = {b"-hit": value, b"-w": ([1.0], [picked])}
        counts: dict = {}
        fallback = lambda w, a: missed  # noqa: E731
        shapes = [b"ID-hit", b"ID-w", b"IDmiss", b"ID-w", b"ID-hit"] * 12
        refs = [sys.getrefcount(o) for o in (value, picked, missed, fallback, exact)]

        def rounds(n: int) -> None:
            for _ in range(n):
                for s in shapes:
                    cli.sendto(s, srv.getsockname())
                _drain_all(srv, exact, fallback, counts, expect=len(shapes))
                _read_ready(cli)

        rounds(50)  # warm up: the static buffers, the counts dict's size
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        rounds(1700)  # 102,000 datagrams
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert [sys.getrefcount(o) for o in (value, picked, missed, fallback, exact)] == refs
        assert counts[b"-hit"] == counts[b"-w"] == 1750 * 24
        assert grown < 64 * 1024, f"{grown} bytes still allocated after 102,000 datagrams"


def test_no_reference_or_memory_leak_when_c_reads_the_question() -> None:
    srv, cli = _pair()
    cli.setblocking(False)
    with srv, cli:
        reply, tally, unanswered = b"IDread", {}, b"\xff" * 4
        zone = object()
        zones = {(b"f", b"test", b""): zone}
        read = lambda w, k, t, e, z: reply if k[0] == b"a" and z is zone else None  # noqa: E731
        direct = lambda w: None  # noqa: E731
        rest = lambda w, a: None  # noqa: E731
        shapes = [dns.message.make_query(n, "A", id=7).to_wire()
                  for n in ("A.f.test.", "b.F.test.", "a.f.test.")] * 20
        objs = (reply, read, direct, rest, tally, unanswered, zone, zones)
        refs = [sys.getrefcount(o) for o in objs]

        def rounds(n: int) -> None:
            for _ in range(n):
                for s in shapes:
                    cli.sendto(s, srv.getsockname())
                got = 0
                deadline = time.monotonic() + 10
                while got < len(shapes) and time.monotonic() < deadline:
                    got += _fastudp.drain(srv.fileno(), {}, rest, None, random.random, 256,
                                          direct, rest, tally, unanswered, read, 0, zones)
                _read_ready(cli)

        rounds(50)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        rounds(1000)  # 60,000 datagrams
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert [sys.getrefcount(o) for o in objs] == refs
        assert sum(tally.values()) == 1050 * 40  # the two names read's replies answered
        assert grown < 64 * 1024, f"{grown} bytes still allocated after 60,000 datagrams"


def test_an_owners_plain_rrset_is_answered_in_c_as_udp_read_answers_it() -> None:
    """`plain`: C decides and splices an owner's own plain RRset (the bytes `udp` sends), keeps
    it in the exact table on its second sight as `udp_read` does, and hands every other shape
    (a cut, an over-512 answer, a type the compiled path leaves alone, a name without the
    type) to read."""
    from authd.dns.udp_batched import _plain_rule

    index, ref = make_index(), make_index()
    compiled = index.compiled
    assert compiled is not None and ref.compiled is not None
    srv, cli = _pair()
    with srv, cli:
        def query(name: str, qtype: str = "A", rd: bool = True) -> bytes:
            m = dns.message.make_query(name, qtype)
            if not rd:
                m.flags &= ~dns.flags.RD
            return m.to_wire()

        plain = [query("h1.f.test."), query("H2.f.TEST.", rd=False), query("h4.f.test.", "AAAA"),
                 query("h1.f.test.")]  # the last: h1's second sight, kept
        others = [query("big.f.test.", "TXT"), query("ns.sub.f.test."), query("h1.f.test.", "DS"),
                  query("h3.f.test.", "AAAA"), query("cn.f.test.")]
        read_got: list[bytes] = []

        def read(wire: bytes, *args: object) -> object:
            read_got.append(wire)
            return compiled.udp_read(wire, *args)  # type: ignore[arg-type]

        def fallback(wire: bytes, addr: object) -> bytes | None:
            return index.respond(wire, tcp=False)

        tally: dict = {}
        for wire in plain + others:
            cli.sendto(wire, srv.getsockname())
        got = 0
        deadline = time.monotonic() + 10
        while got < len(plain + others) and time.monotonic() < deadline:
            got += _fastudp.drain(srv, index.exact_udp, fallback, index.query_counts,
                                  index.random, 256, compiled.udp, fallback, tally,
                                  b"\xff" * 4, read, compiled.copied, compiled.table.zones,
                                  _plain_rule(compiled))
        replies = [cli.recv(4096) for _ in plain + others]
        assert replies[:len(plain)] == [ref.compiled.udp(w) for w in plain]  # `udp`'s bytes
        assert read_got == others  # every other shape was read's
        assert replies[len(plain):] == [ref.respond(w, tcp=False) for w in others]
        assert index.exact_udp[plain[0][2:]] == replies[0][2:]  # kept on its second sight
        assert plain[1][2:] not in index.exact_udp  # seen once: only marked
        first = dns.message.from_wire(replies[0])
        assert first.flags & dns.flags.AA and first.flags & dns.flags.RD
        assert [rr.address for rr in first.answer[0]] == ["10.0.0.1"]
        assert not dns.message.from_wire(replies[1]).flags & dns.flags.RD  # RD copied
        assert str(dns.message.from_wire(replies[1]).question[0].name) == "H2.f.TEST."
        for wire, reply in zip(plain, replies, strict=False):
            assert tally.get(wire[2:] + reply[2:4] + reply[6:8], 0) >= 1  # as `splice` counts
        with pytest.raises(TypeError):
            _fastudp.drain(srv, {}, fallback, None, random.random, 1, compiled.udp, fallback,
                           None, b"", read, 0, {}, ("not", "a", "rule"))


def test_the_c_doorkeeper_marks_and_counts_as_seen_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """C runs `CompiledAnswers.seen_before` itself on its marks (`doorkeeper`): over plain
    answers to many spellings of the same names, some asked again, and past several epochs
    (a small one here), it keeps exactly the queries Python's doorkeeper keeps, and leaves
    the same marks and count behind."""
    import authd.dns.compiled as compiled_module
    from authd.dns.udp_batched import _plain_rule

    monkeypatch.setattr(compiled_module, "_SEEN_EPOCH", 50)
    index, ref = make_index(), make_index()
    compiled, reference = index.compiled, ref.compiled
    assert compiled is not None and reference is not None
    rnd = random.Random(4)
    wires = []
    for _ in range(600):
        name = _mixed_case(rnd, f"h{rnd.randrange(40)}.f.test.")
        wires.append(dns.message.make_query(name, "A", id=rnd.getrandbits(16)).to_wire())
        if rnd.random() < 0.3:
            wires.append(rnd.choice(wires))  # asked again
    kept: list[bytes] = []
    rule = _plain_rule(compiled)
    rule = rule[:2] + ((compiled.doorkeeper[0], 50),) + (lambda k, r, z: kept.append(k),) + rule[4:]
    srv, cli = _pair()
    cli.setblocking(False)
    with srv, cli:
        for at in range(0, len(wires), 50):
            batch = wires[at:at + 50]
            for w in batch:
                cli.sendto(w, srv.getsockname())
            got = 0
            deadline = time.monotonic() + 10
            while got < len(batch) and time.monotonic() < deadline:
                got += _fastudp.drain(srv, {}, None.__init__, None, random.random, 256,
                                      compiled.udp, None.__init__, None, b"\xff" * 4,
                                      compiled.udp_read, compiled.copied, compiled.table.zones,
                                      rule)
            assert len(_read_ready(cli)) == len(batch)  # all answered in C
    want = [w[2:] for w in wires if reference.seen_before(w[2:])]
    assert kept == want and 20 < len(want) < len(wires) // 2
    assert compiled._seen == reference._seen  # noqa: SLF001 (the marks and their count)


def test_a_closed_socket_ends_both_loops_alike() -> None:
    """A socket closed under the loop (here by the answering itself): the Python loop's
    recvfrom fails with EBADF, which costs one of the budget each (`except OSError:
    continue`), and its next wait on the socket raises. The C loop does the same: it reads the
    socket's fd per batch (never a stale, maybe reused, number), answers nothing it received
    after the close, and ends with the same exception."""
    async def run(fast: bool) -> tuple[str, list[bytes], dict]:
        index = make_index()
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        srv.setblocking(False)
        respond = index.respond
        answered: list[bytes] = []

        def closing(wire: bytes, **kw: object) -> bytes | None:
            answered.append(wire)
            if b"\x05close" in wire:
                srv.close()
            return respond(wire, **kw)  # type: ignore[arg-type]

        index.respond = closing  # type: ignore[method-assign]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as cli:
            cli.bind(("127.0.0.1", 0))
            wires = [dns.message.make_query(n, "A", use_edns=0).to_wire()
                     for n in ("h1.f.test.", "close.f.test.", "h2.f.test.", "h3.f.test.")]
            for w in wires:  # all four wait in the socket's buffer before the loop starts
                cli.sendto(w, srv.getsockname())
            with pytest.raises(Exception) as caught:  # noqa: PT011, PT012
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(functools.partial(serve_udp, index, srv, fast=fast))
            cli.setblocking(False)
            replies = _read_ready(cli)
        exc = caught.value
        while isinstance(exc, BaseExceptionGroup):
            exc = exc.exceptions[0]
        return f"{type(exc).__name__}: {exc}", replies, dict(index.reply_counts or {})

    c_end, c_replies, c_counts = trio.run(run, True)
    py_end, py_replies, py_counts = trio.run(run, False)
    assert c_end == py_end == "ValueError: file descriptor cannot be a negative integer (-1)"
    # both answered and counted h1 and close and nothing after; the Python loop sent h1's
    # reply before close closed the socket, the C loop holds a batch's replies until its
    # sendmmsg, which the close leaves nothing to send on (close's own is lost in both)
    assert c_counts == py_counts and sum(c_counts.values()) == 2
    assert len(py_replies) == 1 and c_replies == []


def test_a_reply_that_is_not_bytes_is_not_dropped_silently() -> None:
    """The Python loop hands any reply to sendto: a bytes-like one is sent, anything else
    raises TypeError out of the loop. C sends the first and raises the second, after sending
    the replies before it."""
    srv, cli = _pair()
    with srv, cli:
        seen: list[bytes] = []

        def fallback(wire: bytes, addr: object) -> object:
            seen.append(wire)
            return {b"a": bytearray(b"ba"), b"b": memoryview(b"mb"), b"c": 17}.get(wire, b"ok")

        # (loopback queues a datagram on the receiving socket within sendto: one receive
        # gets all five)
        for wire in (b"a", b"b", b"x", b"c", b"y"):
            cli.sendto(wire, srv.getsockname())
        with pytest.raises(TypeError, match="bytes-like object is required, not 'int'"):
            _fastudp.drain(srv.fileno(), {}, fallback, None, random.random, 256)
        assert [cli.recv(100) for _ in range(3)] == [b"ba", b"mb", b"ok"]
        cli.sendto(b"z", srv.getsockname())
        assert _drain_all(srv, {}, fallback) == 1
        assert cli.recv(100) == b"ok"
        # y came in c's batch and was dropped with the rest of it, as the Python loop, stopped
        # by the TypeError, would never have answered it
        assert seen == [b"a", b"b", b"x", b"c", b"z"]


def test_no_reference_or_memory_leak_when_c_answers_plain_rrsets() -> None:
    from authd.dns.udp_batched import _plain_rule

    index = make_index()
    compiled = index.compiled
    assert compiled is not None
    zone = compiled.table.zones[(b"f", b"test", b"")]
    srv, cli = _pair()
    cli.setblocking(False)
    with srv, cli:
        shapes = [dns.message.make_query(f"H{i}.f.test.", "A", id=i).to_wire() for i in range(40)]
        entry = zone.nodes[(b"h1", b"f", b"test", b"")][1]
        objs = (zone, zone.nodes, entry, entry.rrset, entry.rrset.tails, compiled)
        refs = [sys.getrefcount(o) for o in objs]
        keeps = []

        def rounds(n: int, keep: object) -> None:
            rule = _plain_rule(compiled)[:3] + (keep,) + _plain_rule(compiled)[4:]
            for _ in range(n):
                for s in shapes:
                    cli.sendto(s, srv.getsockname())
                got = 0
                deadline = time.monotonic() + 10
                while got < len(shapes) and time.monotonic() < deadline:
                    got += _fastudp.drain(srv, {}, None.__init__, None, random.random, 256,
                                          compiled.udp, None.__init__, None, b"\xff" * 4,
                                          compiled.udp_read, compiled.copied,
                                          compiled.table.zones, rule)
                assert len(_read_ready(cli)) == len(shapes)

        rounds(50, None)
        rounds(50, lambda k, r, z: keeps.append(len(r)))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        rounds(1000, None)  # 40,000 datagrams, none kept
        rounds(250, lambda k, r, z: None)  # 10,000 more, each seen before: kept (and let go)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert [sys.getrefcount(o) for o in objs] == refs
        assert keeps  # the second rounds met the doorkeeper's marks
        assert grown < 64 * 1024, f"{grown} bytes still allocated after 50,000 datagrams"


def test_the_census_counts_c_replies_without_leaks_and_refuses_bad_arguments() -> None:
    """`census`: every reply C sends itself counted once in its (QTYPE, rcode) slot, the
    (name, type) pairs answered with records in the set, lowered (RFC 4343 §3), over
    exact hits, plain RRsets and NXDOMAIN templates; no reference or memory kept per datagram
    (the pairs' set holds the distinct pairs only); and a census of another shape refused."""
    from authd.dns.udp_batched import _plain_rule
    from authd.metrics import Census

    index = make_index()
    compiled = index.compiled
    assert compiled is not None
    census = Census()
    srv, cli = _pair()
    cli.setblocking(False)
    with srv, cli:
        shapes = ([dns.message.make_query(f"H{i}.f.test.", "A", id=i).to_wire() for i in range(20)]
                  + [dns.message.make_query(f"nx{i}.F.test.", "MX", id=i).to_wire()
                     for i in range(10)]
                  + [dns.message.make_query("h4.f.test.", "AAAA", id=1).to_wire()] * 10)
        rule = _plain_rule(compiled)
        objs = (compiled, index.exact_udp, census.counts, census.pairs)
        refs = [sys.getrefcount(o) for o in objs]

        def rounds(n: int) -> None:
            for _ in range(n):
                for w in shapes:
                    cli.sendto(w, srv.getsockname())
                got = 0
                deadline = time.monotonic() + 10
                while got < len(shapes) and time.monotonic() < deadline:
                    got += _fastudp.drain(srv, index.exact_udp, None.__init__, {}, random.random,
                                          256, compiled.udp, None.__init__, {}, b"\xff" * 4,
                                          compiled.udp_read, compiled.copied,
                                          compiled.table.zones, rule, census.arg())
                assert len(_read_ready(cli)) == len(shapes)

        rounds(50)  # the exact table keeps the repeats, the set its pairs
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        rounds(1000)  # 40,000 datagrams
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert [sys.getrefcount(o) for o in objs] == refs
        assert grown < 64 * 1024, f"{grown} bytes still allocated after 40,000 datagrams"
        a, aaaa, mx = (census.types.index(t) * 16 for t in (1, 28, 15))
        assert census.counts[a] == 1050 * 20 and census.counts[aaaa] == 1050 * 10
        assert census.counts[mx + 3] == 1050 * 10  # NXDOMAIN
        assert sum(census.counts) == 1050 * len(shapes)
        assert census.pairs == {bytes([len(b"h%d" % i)]) + b"h%d\x01f\x04test\x00\x00\x01" % i
                                for i in range(20)} | {b"\x02h4\x01f\x04test\x00\x00\x1c"}
        for bad in ((census.types, bytearray(2048), census.pairs),  # not 'Q'
                    (census.types, census.counts[:10], census.pairs),  # too short
                    (census.types * 2, census.counts, census.pairs),  # 32 slots
                    (census.types, census.counts, list(census.pairs)), ("no",)):
            with pytest.raises(TypeError):
                _fastudp.drain(srv, {}, None.__init__, None, random.random, 1, compiled.udp,
                               None.__init__, None, b"", compiled.udp_read, 0, {}, None, bad)
        census.counts.append(0)  # no buffer is held past a call: the array can grow
        assert [sys.getrefcount(o) for o in objs] == refs


# --- fuzz: two real `authd serve` processes, one per loop ----------------------------------

PROBE_ID = b"\xfe\xed"


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory):
    """`authd serve` with the C loop and with --no-fast-udp, same zone and seed."""
    from authd.localnet import free_port, stop, wait_answering

    zdir = tmp_path_factory.mktemp("fastudp-zones")
    lines = [f"$ORIGIN {Z}", "$TTL 60", "@ IN SOA ns1 hostmaster 1 7200 900 1209600 60",
             "@ IN NS ns1", "ns1 IN A 192.0.2.1", "cn IN CNAME h3", "*.wild IN A 192.0.2.20"]
    lines += [f"h{i} IN A 10.0.0.{i}" for i in range(20)]
    (zdir / "f.test.zone").write_text("\n".join(lines) + "\n")
    procs = []
    ports = []
    try:
        for loop, extra in (("C mmsg", []), ("Python", ["--no-fast-udp"])):
            port = free_port()
            log = zdir.parent / f"authd-{port}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "authd", "serve", "--zones", str(zdir), "--listen",
                     f"127.0.0.1:{port}", "--control", "off", "--seed", "5", *extra],
                    cwd=Path(__file__).resolve().parent.parent, stdout=out,
                    stderr=subprocess.STDOUT)
            procs.append(proc)
            wait_answering(port, proc, "authd", qname="h1.f.test.", qtype="A", timeout=60)
            assert f"udp loop {loop}," in log.read_text()
            ports.append(port)
        yield procs, ports
    finally:
        for proc in procs:
            stop(proc)


def _exchange(port: int, wire: bytes) -> list[bytes]:
    """The replies to wire: everything that arrives before the reply to a probe sent after
    it (one client socket, one server loop: loopback keeps the order)."""
    probe = bytearray(dns.message.make_query("h1.f.test.", "A").to_wire())
    probe[:2] = PROBE_ID
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(wire, ("127.0.0.1", port))
        s.sendto(bytes(probe), ("127.0.0.1", port))
        out = []
        while True:
            got = s.recv(65535)
            if got[:2] == PROBE_ID and probe[12:] in got:  # the probe's question: its reply
                return out
            out.append(got)


_seed_queries = [dns.message.make_query(n, t, use_edns=e).to_wire()
                 for n, t, e in (("h2.f.test.", "A", None), ("x.wild.f.test.", "A", 0),
                                 ("cn.f.test.", "A", None), ("nx.f.test.", "AAAA", 0))]


@st.composite
def datagrams(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # any length up to over 4096 (hypothesis favours short ones)
        size = draw(st.one_of(st.integers(0, 64), st.integers(0, 4200),
                              st.integers(4000, 4200)))
        if size <= 64:
            return draw(st.binary(min_size=size, max_size=size))
        return draw(st.randoms(use_true_random=False)).randbytes(size)
    wire = bytearray(draw(st.sampled_from(_seed_queries)))
    for _ in range(draw(st.integers(0, 4))):  # mutate a real query
        if wire:
            at = draw(st.integers(0, len(wire) - 1))
            wire[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(wire)))
    return bytes(wire[:cut] if draw(st.booleans()) else wire) + draw(st.binary(max_size=64))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(wire=datagrams())
def test_fuzzed_datagrams_get_the_same_replies_from_both_loops(two_servers, wire: bytes) -> None:
    procs, (fast_port, py_port) = two_servers
    assert _exchange(fast_port, wire) == _exchange(py_port, wire)
    assert all(p.poll() is None for p in procs)
