"""The UDP shell's batched loop: the C helper `authd.dns._fastudp` drains the socket.

Trio shell (issue 12, "cut syscalls where it pays"). `serve_udp_batched` waits for the socket
to be readable and calls `_fastudp.drain`, which receives up to 64 datagrams per recvmmsg(2),
answers exact-table hits in C (the ID spliced before the stored reply, a weighted pair picked
with the index's random source), reads the question of any other query that carries it alone,
answers an owner's own plain RRset from the zone itself (`CompiledAnswers._shape_of`'s first
branch, with `udp_read`'s doorkeeper and exact-table keeper: `_plain_rule`) and a CNAME owner's
answer from its fixed template once made (its CNAME branch), leaves any other
such question to `CompiledAnswers.udp_read` (which then only looks up, decides and splices),
and sends each batch's replies with one sendmmsg(2). Every
other datagram goes to `exchange(...)`, which is also the body of the Python loop
`authd.dns.server.serve_udp` for one datagram: the same compiled templates, transfers, guard,
RRL and counts, inside the same one-exchange error boundary. With RRL on, hits need the
limiter too, so then every datagram goes through `exchange`. tests/test_fastudp.py checks
that both loops send the same bytes and count the same, and end alike on a closed socket.

`authd.dns._fastudp` is optional (built by setup.py when a compiler is there); `AVAILABLE`
says whether it is, and `authd serve --no-fast-udp` keeps the Python loop.
"""

from __future__ import annotations

import bisect
import socket
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import trio

from authd.dns.answer import MIN_UDP, Plain

# the compiled path's own constants, read rather than restated: C's plain answers are its
# first branch's (tests/test_fastudp.py checks them against the Python loop byte for byte)
from authd.dns.compiled import MAX_PTR, NOT_COMPILED, QR_AA, CompiledAnswers, Template
from authd.dns.guard import Guard
from authd.dns.index import ServingIndex
from authd.dns.xfr import TransferService
from authd.errlog import ErrorLog
from authd.metrics import UNANSWERED, status_of

try:
    from authd.dns import _fastudp
except ImportError:  # not built (no C compiler): the Python loop serves
    _fastudp = None  # type: ignore[assignment]

AVAILABLE = _fastudp is not None

class Exchange(NamedTuple):
    """What `serve_udp`'s Python loop does with one datagram, split where the C loop needs it.

    `answer(data, addr)` is the whole loop body; `rest(data, addr)` is its miss branch after
    the compiled templates (`direct`) gave no reply. Both return the reply to send or None,
    and never raise an Exception: one the answering raises is reported in `errors`, counted
    as unanswered, and the datagram dropped.
    """

    answer: Callable[[bytes, Any], bytes | None]
    rest: Callable[[bytes, Any], bytes | None]
    direct: Callable[[bytes], bytes | None] | None


def exchange(index: ServingIndex, errors: ErrorLog, guard: Guard | None,
             xfr: TransferService | None, clock: list, with_source: Callable) -> Exchange:
    """The Python loop's body for one datagram. `clock` holds [trio time, wall-clock
    seconds], set by the loop once per wakeup as the Python loop does."""
    guarded = guard.answer if guard is not None else None
    limit = guard.limit_udp if guard is not None and guard.rrl is not None else None
    respond = with_source(index.respond)
    exact_get = index.exact_udp.get
    counts = getattr(index, "query_counts", None)
    tally = getattr(index, "reply_counts", None)  # not `replies`: a transfer has those
    random = index.random
    bisect_right = bisect.bisect_right
    direct = getattr(index, "compiled_udp", None) if limit is None else None

    def counted(key: bytes, reply: bytes | None) -> None:
        if tally is not None:  # by the reply sent (`authd.metrics.status_of`; C: tally_reply)
            status = key + status_of(reply)
            tally[status] = tally.get(status, 0) + 1

    def dropped(key: bytes, exc: Exception) -> None:
        """The boundary of one exchange: report, count as unanswered, drop this packet only."""
        errors.exception("udp answer", exc, trio.current_time())
        counted(key, None)

    def rest(data: bytes, addr: Any) -> bytes | None:
        key = data[2:]
        try:
            if xfr is not None and xfr.wants(data):  # a transfer, or a signed query
                replies = xfr.respond(data, addr[0], tcp=False, now=clock[1])
                reply = next(iter(replies), None) if replies is not None else None
            elif guarded is not None:
                reply = guarded(data, addr[0], clock[0], clock[1], tcp=False)
            else:
                reply = respond(data, tcp=False, source=addr[0])  # routing by location
            counted(key, reply)
        except Exception as exc:
            dropped(key, exc)
            return None
        return reply

    def answer(data: bytes, addr: Any) -> bytes | None:
        key = data[2:]
        hit = exact_get(key)
        try:
            if hit is None:
                reply = direct(data) if direct is not None and data[10:12] == b"\0\0" else None
                if reply is None:
                    return rest(data, addr)
                counted(key, reply)
            else:
                if counts is not None:
                    counts[key] = counts.get(key, 0) + 1
                if hit.__class__ is bytes:
                    reply = data[:2] + hit  # type: ignore[operator]
                else:
                    reply = data[:2] + hit[1][bisect_right(hit[0], random())]  # type: ignore[index,arg-type]
                if limit is not None:
                    reply = limit(reply, addr[0], clock[0])
        except Exception as exc:
            dropped(key, exc)
            return None
        return reply

    return Exchange(answer, rest, direct)


async def serve_udp_batched(index: ServingIndex, sock: socket.socket, errors: ErrorLog,
                            guard: Guard | None, xfr: TransferService | None,
                            with_source: Callable, budget: int) -> None:
    """`serve_udp` with the C helper draining the socket; never returns.

    Each wakeup drains at most `budget` datagrams, then yields (a checkpoint) so other
    tasks run, as the Python loop does; fewer than `budget` means the socket is empty.
    """
    assert _fastudp is not None
    clock: list = [0.0, 0]
    answer, rest, direct = exchange(index, errors, guard, xfr, clock, with_source)
    rrl = guard is not None and guard.rrl is not None
    exact = None if rrl else index.exact_udp  # with RRL every reply passes the limiter
    counts = getattr(index, "query_counts", None)
    tally = getattr(index, "reply_counts", None)
    census = getattr(index, "census", None)  # what C counts itself (`authd.metrics.Census`)
    # the question read in C for a miss of the question alone (`_fastudp.read_question`, the
    # same reader as `wire.read_query`): Python then only looks up, decides and splices
    compiled = getattr(index, "compiled", None)
    read = compiled.udp_read if direct is not None and compiled is not None else None
    copied = compiled.copied if read is not None else 0  # the header bits C's splice copies
    table = compiled.table if read is not None else None
    drain = _fastudp.drain
    random = index.random
    wait_readable = trio.lowlevel.wait_readable
    checkpoint = trio.lowlevel.checkpoint
    current_time = trio.current_time
    while True:  # as the Python loop: wait, then at most `budget` datagrams, then yield
        await wait_readable(sock)  # (raises once the socket is closed, as there)
        clock[0] = current_time()
        clock[1] = int(time.time())  # cookie timestamps are wall-clock seconds (RFC 9018 §4.2)
        # the zones dict and the compiled answers' keeper read again per drain (once per up
        # to `budget` datagrams), so C never holds what the index might replace
        zones = table.zones if table is not None else None
        plain = _plain_rule(compiled) if zones is not None else None
        # `sock` itself: C reads its fileno() per batch, so a closed socket is never read
        # through a stale (maybe reused) fd number
        # the census's set of pairs read per drain too: each hold takes it, leaving a new one
        if drain(sock, exact, answer, counts, random, budget, direct, rest, tally,
                 UNANSWERED, read, copied, zones, plain,
                 census.arg() if census is not None else None) >= budget:
            await checkpoint()


def _plain_rule(compiled: CompiledAnswers) -> tuple:
    """What C needs to answer an owner's own plain RRset itself as
    `CompiledAnswers._shape_of`'s first branch and `udp_read` do (`answer_plain` in
    _fastudp.c): the entry's type, the QTYPEs the compiled path leaves to the pipeline, the
    doorkeeper's marks (C runs `seen_before` on them itself) and the exact table's keeper
    (`udp_read` keeps a repeated owner's answer),
    the answer's flags, and the longest response without EDNS (RFC 1035 §4.2.1; within
    `MAX_PTR`, so every pointer to the question is writable); then the zones' template
    states and the templates' type, so C also sends a CNAME owner's answer once its fixed
    template is made (`_shape_of`'s CNAME branch: `_states[okey].owners[(name, qtype)]`)."""
    return (Plain, NOT_COMPILED, compiled.doorkeeper, compiled.keep, QR_AA,
            min(MIN_UDP, MAX_PTR), compiled._states, Template)
