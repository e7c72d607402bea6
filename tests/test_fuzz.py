"""Property and fuzz tests: random and mutated packets get FORMERR or are dropped, never a crash;
the hand-written fast parser never accepts what dnspython reads differently; the server keeps
answering correctly after a storm of garbage."""

from __future__ import annotations

import random

import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authd.dns.answer import Outcome, answer
from authd.dns.index import ServingIndex, snapshot_entries
from authd.dns.wire import RD_CD, parse_fast

NAMES = ["host.example.test.", "HoSt.ExAmPlE.tEsT.", "dynamodb.us-east-1.api.aws.", "a.b.c.d.e.",
         "nosuch.example.test.", "big.example.test.", "x.wild.example.test.", ".",
         "sub.example.test.", "xn--bcher-kva.example.test.", "a" * 63 + ".example.test."]
TYPES = ["A", "AAAA", "TXT", "MX", "ANY", "NS", "SOA", "TYPE65280", "DS", "CNAME"]


def valid_query(draw_or_rng, name: str, qtype: str, edns: int | None, do: bool, payload: int,
                cookie: bool, flags: int, qid: int) -> bytes:
    options = [dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)] if cookie else []
    q = dns.message.make_query(name, qtype, use_edns=edns, want_dnssec=do,
                               payload=payload if edns is not None else None,
                               options=options if edns is not None else None)
    q.flags = flags
    q.id = qid
    return q.to_wire()


queries = st.builds(
    lambda name, qtype, edns, do, payload, cookie, flags, qid: valid_query(
        None, name, qtype, edns if (edns is not None or not do) else 0, do, payload, cookie,
        flags, qid),
    st.sampled_from(NAMES), st.sampled_from(TYPES), st.sampled_from([None, 0]), st.booleans(),
    st.integers(0, 65535), st.booleans(),
    st.sampled_from([0, dns.flags.RD, dns.flags.CD, dns.flags.RD | dns.flags.CD, dns.flags.AD]),
    st.integers(0, 65535),
)


@st.composite
def mutated(draw) -> bytes:
    wire = bytearray(draw(queries))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not wire:
            break
        i = draw(st.integers(0, len(wire) - 1))
        if kind == "flip":
            wire[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            wire[i] = draw(st.integers(0, 255))
        elif kind == "cut":
            del wire[i:]
        elif kind == "insert":
            wire[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del wire[i:i + draw(st.integers(1, 8))]
    return bytes(wire)


packets = st.one_of(st.binary(max_size=600), mutated(), queries)


@pytest.fixture(scope="module")
def fuzz_index(shipped_zones) -> ServingIndex:
    idx = ServingIndex(rng=lambda: 0.5)
    for e in snapshot_entries(shipped_zones):
        idx.apply(e)
    return idx


@pytest.fixture(scope="module")
def slow_index(shipped_zones) -> ServingIndex:
    idx = ServingIndex(rng=lambda: 0.5, cache=False)
    for e in snapshot_entries(shipped_zones):
        idx.apply(e)
    return idx


FUZZ = settings(max_examples=600, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(packets)
def test_fast_parser_never_accepts_what_dnspython_reads_differently(wire):
    fq = parse_fast(wire)
    if fq is None:
        return
    msg = dns.message.from_wire(wire)  # must not raise: the fast path only takes clean packets
    assert msg.opcode() == dns.opcode.QUERY and not msg.flags & dns.flags.QR
    assert len(msg.question) == 1 and not msg.answer and not msg.authority
    q = msg.question[0]
    flags, question, variant = fq.key
    assert flags == msg.flags & RD_CD
    assert question == (q.name.to_wire() + q.rdtype.to_bytes(2, "big")
                        + q.rdclass.to_bytes(2, "big")).lower()
    assert fq.qend == 12 + len(q.name.to_wire()) + 4
    if variant == 0:
        assert msg.edns == -1
    else:
        assert msg.edns == 0 and fq.payload == msg.payload
        assert (variant == 2) == bool(msg.ednsflags & dns.flags.DO)


@FUZZ
@given(packets)
def test_any_packet_gets_a_sound_reply_or_is_dropped(fuzz_index, slow_index, wire):
    for tcp in (False, True):
        fast = fuzz_index.respond(wire, tcp=tcp)
        slow = slow_index.respond(wire, tcp=tcp)
        assert fast == slow  # the table never changes what the full pipeline would say
        if fast is None:
            # only runts and responses are dropped
            assert len(wire) < 12 or wire[2] & 0x80
            continue
        assert fast[:2] == wire[:2]  # the ID is always echoed
        reply = dns.message.from_wire(fast)  # and what we send always parses
        assert reply.flags & dns.flags.QR
        if reply.rcode() == dns.rcode.FORMERR:
            with pytest.raises((dns.exception.DNSException, AssertionError, ValueError)):
                m = dns.message.from_wire(wire)
                assert len(m.question) == 1 and not m.answer and not m.authority
                assert m.opcode() == dns.opcode.QUERY and m.rcode() & 0xF == m.rcode()


@FUZZ
@given(packets)
def test_pure_answer_never_raises(fuzz_index, wire):
    reply = answer(wire, fuzz_index.table, rng=lambda: 0.25)
    if reply is not None:
        assert reply.outcome in Outcome
        assert len(reply.to_wire(512)) <= max(512, len(reply.to_wire(65535)))


def _storm(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    base = [valid_query(None, name, t, e, False, 1232, c, 0, rng.randrange(65536))
            for name in NAMES[:6] for t in TYPES[:5] for e in (None, 0) for c in (False, True)
            if not (c and e is None)]
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            out.append(rng.randbytes(rng.randrange(0, 400)))
        else:
            w = bytearray(rng.choice(base))
            for _ in range(rng.randrange(1, 5)):
                i = rng.randrange(len(w))
                w[i] = rng.randrange(256) if rng.random() < 0.7 else w[i] ^ 0xFF
            if rng.random() < 0.2:
                del w[rng.randrange(len(w)):]
            out.append(bytes(w))
    return out


@pytest.mark.realtime
async def test_server_keeps_answering_after_a_storm_of_garbage(authd):
    udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await udp.connect((authd.host, authd.port))
    storm = _storm(3000, seed=1)
    for i, wire in enumerate(storm):
        await udp.send(wire)
        if i % 100 == 0:
            await trio.sleep(0)  # let the server drain its socket
    tcp = await trio.open_tcp_stream(authd.host, authd.port)
    for wire in storm[:300]:  # garbage over TCP too, framed
        await tcp.send_all(len(wire).to_bytes(2, "big") + wire)
    await tcp.aclose()
    udp.close()  # its receive buffer is full of replies to the storm
    # now a correct query gets a correct answer, over UDP and TCP
    good = dns.message.make_query("host.example.test.", "A")
    for query_fn in (dns.asyncquery.udp, dns.asyncquery.tcp):
        r = await query_fn(good, authd.host, port=authd.port, timeout=5)
        assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].address == "192.0.2.80"
    assert authd.index.stats["slow"] > 1000  # the garbage really went through the full parse


# ---- the resolver's parser, and real processes under fuzz (issue 10) ---------------------

from bench import fuzz as harness  # noqa: E402
from bench._fuzzcases import ISSUE10, is_well_formed_query, messages  # noqa: E402
from resolver.acl import refused_reply  # noqa: E402
from resolver.wire import WireError, error_reply, view_query  # noqa: E402

resolver_packets = st.one_of(packets, messages(), st.sampled_from(list(ISSUE10.values())))


def _view_agrees_with_dnspython(wire: bytes) -> None:
    try:
        view = view_query(wire)
    except WireError:
        return
    if (view.flags >> 11) & 0xF:
        return  # answer() says NOTIMP to other opcodes before using the view
    msg = dns.message.from_wire(wire)  # must not raise: names <= 255, one OPT at most, at the end
    assert len(msg.question) == 1 and not msg.answer and not msg.authority
    q = msg.question[0]
    assert view.key == (q.name.to_wire().lower() + q.rdtype.to_bytes(2, "big")
                        + q.rdclass.to_bytes(2, "big"))
    assert view.edns == (msg.edns == 0) and view.end == 12 + len(q.name.to_wire()) + 4


def _error_replies_parse_and_never_amplify(wire: bytes) -> None:
    if len(wire) < 12:
        return
    for reply in (error_reply(wire, dns.rcode.FORMERR), refused_reply(wire)):
        if reply is None:
            assert wire[2] & 0x80  # only responses go unanswered
            continue
        m = dns.message.from_wire(reply)
        assert m.id == int.from_bytes(wire[:2], "big") and m.flags & dns.flags.QR
        assert len(reply) == 12 <= len(wire)


def _oracle_agrees_with_dnspython(wire: bytes) -> None:
    """What the harness calls well-formed (and expects an answer to) dnspython reads as one
    plain query; so a missing answer in a fuzz run is the server's fault, not the oracle's."""
    if not is_well_formed_query(wire):
        return
    msg = dns.message.from_wire(wire)
    assert msg.opcode() == dns.opcode.QUERY and not msg.flags & dns.flags.QR
    assert len(msg.question) == 1 and not msg.answer and not msg.authority and msg.edns <= 0


@FUZZ
@given(resolver_packets)
def test_resolver_parsing_on_structure_aware_and_mutated_packets(wire):
    """One draw, three properties (the structure-aware strategy is the slow part to draw):
    the resolver's fast question reader never accepts what dnspython reads differently; its
    error and REFUSED replies always parse and are never larger than the query; and the
    fuzz harness's well-formed oracle agrees with dnspython."""
    _view_agrees_with_dnspython(wire)
    _error_replies_parse_and_never_amplify(wire)
    _oracle_agrees_with_dnspython(wire)


@pytest.fixture(scope="module")
def mutator() -> harness.Mutator:
    return harness.make_mutator(seed=10, pool_size=200)


# CI's bounded share (about 15 s in all on a quiet machine); `make fuzz` runs the same longer.
CI_PACKETS = {("authd", "udp"): 20_000, ("authd", "tcp"): 8_000,
              ("resolver", "udp"): 10_000, ("resolver", "tcp"): 5_000}


@pytest.mark.realtime
@pytest.mark.parametrize("target,transport", sorted(CI_PACKETS))
def test_real_server_survives_fuzz(mutator: harness.Mutator, target: str, transport: str) -> None:
    """The process lives, every well-formed query is answered, the log stays quiet."""
    st = harness.run(target, transport, CI_PACKETS[(target, transport)], gen=mutator)
    detail = f"{st.row()}\n" + "\n".join(st.samples) + f"\nbusiest log class: {st.worst_class}"
    assert not st.died, detail
    assert st.packets == CI_PACKETS[(target, transport)], detail
    assert st.well_formed > 1000 and st.unanswered == 0 and st.answered == st.well_formed, detail
    assert st.tracebacks == 0 and st.max_per_class_second <= 1, detail
    assert st.final_probe_ok, detail


# ---- hostile upstream answers: resolution, cache and render never raise --------------------

import dns.name  # noqa: E402
import dns.rrset  # noqa: E402

from resolver.cache import Cache, CachePolicy, cache_key, render  # noqa: E402
from resolver.resolution import (  # noqa: E402
    Answer,
    Delegation,
    ForwardResolution,
    IterativeResolution,
    Server,
)

UP = Server("127.0.0.1", 5399)
QNAME = dns.name.from_text("www.example.test.")


def _response_to(send_wire: bytes, shape: str) -> bytes:
    q = dns.message.from_wire(send_wire)
    r = dns.message.make_response(q)
    name = q.question[0].name
    if shape == "answer":
        r.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "192.0.2.1", "192.0.2.2"))
    elif shape == "cname":
        r.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", "host.example.test."))
        r.answer.append(dns.rrset.from_text("host.example.test.", 60, "IN", "A", "192.0.2.9"))
    elif shape == "negative":
        r.set_rcode(dns.rcode.NXDOMAIN)
        r.authority.append(dns.rrset.from_text(
            "example.test.", 300, "IN", "SOA", "ns1.example.test. h.example.test. 1 2 3 4 5"))
    else:  # a referral
        r.flags &= ~dns.flags.AA
        r.authority.append(dns.rrset.from_text("example.test.", 300, "IN", "NS", "ns1.example.test."))
        r.additional.append(dns.rrset.from_text("ns1.example.test.", 300, "IN", "A", "127.0.0.1"))
    return r.to_wire()


@st.composite
def hostile_answers(draw, bases: list[bytes]) -> bytes:
    """A real response to the query (so ID and question match), then mutated."""
    wire = bytearray(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(2, len(wire) - 1))  # the ID stays: the mutation must get past it
        op = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        if op == "flip":
            wire[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            wire[i] = draw(st.sampled_from([0, 0xFF, 0xC0, 0x29, 3, draw(st.integers(0, 255))]))
        elif op == "cut":
            del wire[max(i, 12):]
        else:
            wire[i:i] = draw(st.binary(min_size=1, max_size=6))
    return bytes(wire)


@FUZZ
@given(st.data(), st.sampled_from(["forward", "iterative"]))
def test_hostile_upstream_answers_never_raise(data, mode):
    """Whatever an upstream sends back with the right ID: the resolution accepts, rejects or
    retries without raising, and what it accepts is cached and served without raising, with
    every cached record of the question's class (issue 10)."""
    rng = random.Random(1)
    if mode == "forward":
        res = ForwardResolution(QNAME, 1, 1, rng, upstreams=[UP])
        (send,) = res.start(0.0)
    else:
        res = IterativeResolution(QNAME, 1, 1, rng, hints=Delegation(dns.name.root, (UP,)))
        (send,) = res.start(0.0)
    sends = [send]
    for _ in range(3):  # follow up to three steps (referral, TCP retry) with hostile answers
        if res.done is not None or not sends:
            break
        s = sends[0]
        bases = [_response_to(s.wire, shape) for shape in ("answer", "cname", "negative", "referral")]
        sends = res.on_response(0.01, s, data.draw(hostile_answers(bases)), s.server)
    if isinstance(res.done, Answer):
        cache = Cache(CachePolicy())
        key = cache_key(QNAME, 1)
        cache.put(key, res.done.response, 0.0)
        hit = cache.get(key, 1.0)
        if hit is not None:
            view = view_query(dns.message.make_query(QNAME, "A").to_wire())
            out = dns.message.from_wire(render(hit.entry, view, 1.0, max_size=512))
            assert all(r.rdclass == dns.rdataclass.IN for r in out.answer + out.authority)


def test_the_harness_log_check_counts_what_it_should() -> None:
    """The log oracle itself: one class twice in a second is caught, in both log formats;
    different seconds, different classes and held-back counts are not confused with it."""
    authd_lines = "\n".join([
        "2026-12-01T20:16:22 authd[7] INFO authd listening on 127.0.0.1:5353",
        "2026-12-01T20:16:23 authd[7] ERROR udp: KeyError: 'a'; 1 so far",
        "2026-12-01T20:16:24 authd[7] ERROR udp: KeyError: 'b'; 9 so far (+7 more since the last line)",
        "2026-12-01T20:16:24 authd[7] ERROR tcp: KeyError: 'b'; 1 so far",
    ])
    st1 = harness.Stats("authd", "udp")
    harness.check_log(authd_lines, st1)
    assert st1.max_per_class_second == 1 and st1.tracebacks == 0 and st1.log_lines == 4
    st2 = harness.Stats("resolver", "udp")
    harness.check_log("20:16:24.001 resolver udp-query: KeyError: 'x'; 1 so far\n"
                      "20:16:24.900 resolver udp-query: KeyError: 'y'; 2 so far\n"
                      "Traceback (most recent call last):\n  File \"x\", line 1\n", st2)
    assert st2.max_per_class_second == 2 and st2.tracebacks == 1 and not st2.ok
