"""The pure resolution objects, driven by hand: no sockets, no clock."""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset

from resolver.resolution import (
    Answer,
    Delegation,
    Failure,
    ForwardResolution,
    IterativeResolution,
    Send,
    Server,
    Transport,
)

A = Server("127.0.0.1", 5301)
B = Server("127.0.0.1", 5302)
NAME = dns.name.from_text("dynamodb.us-east-1.api.aws.")


def reply(send: Send, *, rcode: int = dns.rcode.NOERROR, tc: bool = False) -> bytes:
    q = dns.message.from_wire(send.wire)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if tc:
        r.flags |= dns.flags.TC
    else:
        r.answer.append(dns.rrset.from_text(NAME, 60, "IN", "A", "192.0.2.1"))
    return r.to_wire()


def forward(**kw) -> ForwardResolution:
    return ForwardResolution(NAME, 1, 1, random.Random(7), upstreams=[A, B], **kw)


def test_ids_are_random_and_fresh_per_send() -> None:
    res = ForwardResolution(NAME, 1, 1, random.Random(), upstreams=[A, B], hedge_after=0.01)
    (first,) = res.start(0.0)
    (second,) = res.on_timer(0.01)
    assert first.qid != second.qid or first.server != second.server


def test_hedge_sends_to_second_upstream_and_first_valid_answer_wins() -> None:
    res = forward(hedge_after=0.010)
    (s1,) = res.start(0.0)
    assert s1.server == A and res.deadline() == 0.010
    (s2,) = res.on_timer(0.010)
    assert s2.server == B and res.hedged
    assert res.on_response(0.012, s2, reply(s2), B) == []
    assert isinstance(res.done, Answer) and res.done.server == B
    # The slow upstream's late answer changes nothing.
    res.on_response(0.5, s1, reply(s1), A)
    assert res.done.server == B


def test_no_hedge_without_the_option_and_retry_on_timeout() -> None:
    res = forward(timeout=1.0)
    (s1,) = res.start(0.0)
    assert res.deadline() == 1.0
    (s2,) = res.on_timer(1.0)
    assert s2.server == B
    assert res.on_timer(2.0) == []
    assert isinstance(res.done, Failure)


def _rd(send: Send) -> bool:
    return bool(dns.message.from_wire(send.wire).flags & dns.flags.RD)


def test_truncated_udp_answer_is_retried_over_tcp_same_server() -> None:
    res = forward()
    (s1,) = res.start(0.0)
    (again,) = res.on_response(0.001, s1, reply(s1, tc=True), A)
    assert again.transport is Transport.TCP and again.server == A
    assert _rd(s1) and _rd(again)  # forwarding asks for recursion, over TCP too
    res.on_response(0.002, again, reply(again), A)
    assert isinstance(res.done, Answer)


def test_servfail_moves_on_then_fails() -> None:
    res = forward()
    (s1,) = res.start(0.0)
    (s2,) = res.on_response(0.001, s1, reply(s1, rcode=dns.rcode.SERVFAIL), A)
    assert s2.server == B
    res.on_response(0.002, s2, reply(s2, rcode=dns.rcode.REFUSED), B)
    assert isinstance(res.done, Failure) and "REFUSED" in res.done.reason


def test_forgeries_are_counted_and_ignored() -> None:
    res = forward()
    (s1,) = res.start(0.0)
    good = reply(s1)
    wrong_id = bytes([good[0] ^ 0xFF]) + good[1:]
    assert res.on_response(0.001, s1, wrong_id, A) == []
    assert res.on_response(0.001, s1, good, B) == []  # right bytes, wrong server
    assert res.on_response(0.001, s1, good[:2] + b"\x80" * 20, A) == []
    assert res.done is None
    assert dict(res.rejected) == {"wrong-id": 1, "wrong-server": 1, "malformed": 1}
    res.on_response(0.002, s1, good, A)
    assert isinstance(res.done, Answer)


def test_iterative_tcp_retry_keeps_the_question_and_recursion_off() -> None:
    """RFC 7766 section 5 in iterative mode: the retry asks the same authority the same
    question over TCP, still with RD clear (RFC 1034 section 5.3.1)."""
    root = Delegation(dns.name.root, (A,), 3600)
    res = IterativeResolution(NAME, 1, 1, random.Random(7), hints=root)
    (s1,) = res.start(0.0)
    assert s1.transport is Transport.UDP and not _rd(s1)
    (again,) = res.on_response(0.001, s1, reply(s1, tc=True), A)
    assert again.transport is Transport.TCP and again.server == A
    assert again.qname == s1.qname and not _rd(again)
