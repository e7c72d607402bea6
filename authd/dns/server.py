"""The DNS server shells: UDP and TCP on trio, moving bytes to and from the serving index.

Trio shell. All answering happens in `ServingIndex.respond` (pure); this module only receives,
sends, times out and limits. Each exchange has its own error boundary: a packet that makes the
index raise is dropped, a TCP connection whose query does is closed, and either is counted in
one `ErrorLog` (one line per error class per second): a malformed packet never takes the server
down, nor floods the log.

UDP waits with `trio.lowlevel.wait_readable` and then drains the non-blocking socket in a loop
(a budget per wakeup keeps other tasks fair): about four times the rate of awaiting
`recvfrom` per packet. Where the optional C helper is built, `authd.dns.udp_batched` drains
it instead, with recvmmsg/sendmmsg batches and exact-table hits answered in C (issue 12);
`--no-fast-udp` keeps this Python loop. TCP follows RFC 7766: two-byte length prefix (RFC 1035 §4.2.2),
several queries per connection (pipelined; we answer each as it is read, which is one of the
orders §6.2.1.1 allows), an idle timeout (§6.2.3) and a connection limit (§6.2.2). As in NSD
and Knot, a peer cannot pin a slot by not reading: a connection reads no more queries while
about one output budget of answers is unsent, a write stalled past the write timeout closes it,
and at the connection cap the connection idle longest (else blocked in a write longest) makes
room for the new one.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import trio

from authd.dns.answer import key_of
from authd.dns.guard import Guard
from authd.dns.index import ServingIndex
from authd.dns.notify import serve_notify
from authd.dns.rrl import RClass, RrlConfig, Verdict
from authd.dns.udp_batched import AVAILABLE as FAST_UDP
from authd.dns.udp_batched import exchange, serve_udp_batched
from authd.dns.xfr import TransferConfig, TransferService
from authd.errlog import ErrorLog
from authd.metrics import UNANSWERED

log = logging.getLogger("authd")

UDP_BUDGET = 256  # datagrams handled per wakeup before yielding to other tasks
DEFAULT_TCP_IDLE_TIMEOUT = 10.0  # seconds; RFC 7766 §6.2.3 suggests starting from ~10 s
DEFAULT_TCP_MAX_CONNECTIONS = 256
DEFAULT_TCP_WRITE_TIMEOUT = 2.0  # seconds a write may stall (Knot's tcp-io-timeout is 0.5 s)
DEFAULT_TCP_OUTPUT_BUDGET = 16 * 1024  # answer bytes one connection may have pending
TCP_READ_SIZE = 16 * 1024  # bytes read per receive: with the budget, what one connection holds
TCP_BACKLOG = 1024  # a burst of connects waits in the queue, not reset (was 128); capped at somaxconn


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bind_pair(host: str, port: int, reuse_port: bool) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same port (an ephemeral one when port is 0)."""
    fam = _family(host)
    for _attempt in range(20):
        udp = socket.socket(fam, socket.SOCK_DGRAM)
        tcp = socket.socket(fam, socket.SOCK_STREAM)
        try:
            for s in (udp, tcp):
                if reuse_port:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((host, port))
            bound = udp.getsockname()[1]
            tcp.bind((host, bound))
            tcp.listen(TCP_BACKLOG)
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp
        except OSError as exc:
            udp.close()
            tcp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE:
                # name the address: the operator sees this one line (authd.clean_exit)
                raise OSError(exc.errno, f"cannot listen on {host}:{port} (UDP and TCP): "
                              f"{exc.strerror}") from exc
    raise OSError(errno.EADDRINUSE, "no free port pair for UDP and TCP")


def _with_source(respond: Any) -> Any:
    """`respond` called as `respond(wire, tcp=..., source=address)`: the serving index routes
    by the client's address; a responder that takes no address is called without it."""
    if "source" in inspect.signature(respond).parameters:
        return respond

    def without(wire: bytes, *, tcp: bool, source: str | None = None) -> bytes | None:
        return respond(wire, tcp=tcp)

    return without


async def serve_udp(
    index: ServingIndex, sock: socket.socket, errors: ErrorLog | None = None,
    guard: Guard | None = None, xfr: TransferService | None = None, *, fast: bool = True,
) -> None:
    """Answer datagrams on a bound non-blocking UDP socket, forever.

    With a `guard`, queries go through it (cookies, RRL); a repeat of a cookie-less query
    still costs one table lookup, plus the RRL check when RRL is on. A packet that makes the
    responder raise is dropped and counted in `errors` (one log line per error class per
    second, never a traceback per packet). With `fast` and the C helper built (`FAST_UDP`),
    `authd.dns.udp_batched` drains the socket with recvmmsg/sendmmsg, answering the same
    bytes; otherwise this Python loop does, one recvfrom/sendto per datagram.
    """
    errors = errors or ErrorLog(log)
    if fast and FAST_UDP:
        await serve_udp_batched(index, sock, errors, guard, xfr, _with_source, UDP_BUDGET)
        return  # not reached: it serves until cancelled
    # One datagram's exchange is `authd.dns.udp_batched.exchange`, the same code the C loop
    # falls back to, so both loops send the same bytes and count the same.
    clock: list = [0.0, 0]
    answer = exchange(index, errors, guard, xfr, clock, _with_source).answer
    recvfrom = sock.recvfrom
    sendto = sock.sendto
    while True:
        await trio.lowlevel.wait_readable(sock)
        clock[0] = trio.current_time()
        clock[1] = int(time.time())  # cookie timestamps are wall-clock seconds (RFC 9018 §4.2)
        for _ in range(UDP_BUDGET):
            try:
                data, addr = recvfrom(4096)  # queries are small; bigger is malformed
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP errors surfacing as ECONNREFUSED
                log.debug("udp receive error: %s", exc)
                continue
            reply = answer(data, addr)  # never raises: the boundary of one exchange
            if reply is not None:
                try:
                    sendto(reply, addr)
                except OSError as exc:  # a full buffer or unreachable client: drop, as UDP may
                    log.debug("udp send to %s failed: %s", addr, exc)
        else:
            await trio.lowlevel.checkpoint()


@dataclass(eq=False, slots=True)
class _Slot:
    """One open TCP connection, as the accept loop sees it when choosing whom to close."""

    scope: trio.CancelScope
    idle: bool  # waiting for (the rest of) a query, as opposed to writing answers
    since: float  # trio time of the last exchange's end (idle) or of the write's start


def pick_victim(slots: Iterable[_Slot]) -> _Slot | None:
    """The connection to close so a new one can have its slot, or None if there is none.

    RFC 7766 §6.2.3: under pressure a server should close idle connections first; like NSD and
    Knot we take the one idle longest. Failing that, the write that has been blocked longest:
    its reader is not reading (the no-read pin of issue 10), and its write timeout would close
    it soon anyway.
    """
    idle: _Slot | None = None
    writing: _Slot | None = None
    for s in slots:
        if s.idle:
            if idle is None or s.since < idle.since:
                idle = s
        elif writing is None or s.since < writing.since:
            writing = s
    return idle or writing


class TcpLimits(NamedTuple):
    """How long and how much one TCP connection may take (`authd serve` flags)."""

    idle_timeout: float = DEFAULT_TCP_IDLE_TIMEOUT
    write_timeout: float = DEFAULT_TCP_WRITE_TIMEOUT
    output_budget: int = DEFAULT_TCP_OUTPUT_BUDGET


def _frame_end(buf: bytearray) -> int:
    """The end of the first complete length-prefixed frame in buf (RFC 1035 §4.2.2), or 0."""
    if len(buf) < 2:
        return 0
    need = 2 + (buf[0] << 8 | buf[1])
    return need if len(buf) >= need else 0


async def _serve_tcp_connection(
    index: ServingIndex, stream: trio.SocketStream, slot: _Slot, limits: TcpLimits,
    errors: ErrorLog, guard: Guard | None, xfr: TransferService | None = None,
) -> None:
    buf = bytearray()
    try:
        if xfr is not None:
            xfr_peer = stream.socket.getpeername()[0]
        if guard is not None:
            peer = stream.socket.getpeername()[0]  # OSError if it has gone already
            guarded = guard.answer

            def respond(query: bytes, *, tcp: bool) -> bytes | None:
                return guarded(query, peer, trio.current_time(), int(time.time()), tcp=tcp)
        else:
            try:
                source = stream.socket.getpeername()[0]  # for routing by client location
            except OSError:
                source = None

            located = _with_source(index.respond)

            def respond(query: bytes, *, tcp: bool) -> bytes | None:
                return located(query, tcp=tcp, source=source)
        while True:
            # RFC 7766 §6.2.3: a connection that stays idle (or trickles a partial frame) for
            # the idle timeout is closed
            slot.idle = True
            slot.since = trio.current_time()
            with trio.move_on_after(limits.idle_timeout) as scope:
                while not _frame_end(buf):
                    data = await stream.receive_some(TCP_READ_SIZE)
                    if not data:
                        return
                    buf += data
            if scope.cancelled_caught:
                return
            slot.idle = False
            # Answer the queries we hold (pipelining, RFC 7766 §6.2.1.1), at most about one
            # output budget at a time, and read no more until that is sent: a client that
            # never reads stops being read, so what it costs us is bounded by the budget
            while need := _frame_end(buf):
                out = bytearray()
                while need and len(out) < limits.output_budget:
                    query = bytes(buf[2:need])
                    del buf[:need]
                    if xfr is not None and xfr.wants(query):
                        # a zone transfer: its messages are sent one by one, after what
                        # this connection already owes, each within the write timeout
                        if out:
                            with trio.move_on_after(limits.write_timeout) as wscope:
                                await stream.send_all(out)
                            if wscope.cancelled_caught:
                                return
                            out = bytearray()
                        for message in xfr.respond(query, xfr_peer, tcp=True,
                                                   now=int(time.time())) or ():
                            with trio.move_on_after(limits.write_timeout) as wscope:
                                await stream.send_all(len(message).to_bytes(2, "big") + message)
                            if wscope.cancelled_caught:
                                return
                        need = _frame_end(buf)
                        continue
                    reply = respond(query, tcp=True)
                    replies = getattr(index, "reply_counts", None)  # authd.metrics (not transfers)
                    if replies is not None:
                        status = query[2:] + (reply[2:4] + reply[6:8] if reply else UNANSWERED)
                        replies[status] = replies.get(status, 0) + 1
                    if reply is not None:
                        out += len(reply).to_bytes(2, "big") + reply
                    need = _frame_end(buf)
                if not out:
                    continue
                slot.since = trio.current_time()
                # As Knot's tcp-io-timeout (0.5 s) and NSD's busy timeout (200 ms once half
                # its TCP slots are taken): a write stalled this long means the peer does not
                # read, and its slot goes to someone who does
                with trio.move_on_after(limits.write_timeout) as wscope:
                    await stream.send_all(out)  # not touched until sent: no copy
                if wscope.cancelled_caught:
                    errors.report("tcp write timeout",
                                  f"closed a connection whose peer read nothing for "
                                  f"{limits.write_timeout:g}s", trio.current_time(),
                                  logging.WARNING)
                    return
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return
    except Exception as exc:  # the boundary of one connection: it ends, the server does not
        errors.exception("tcp connection", exc, trio.current_time())
    finally:
        await trio.aclose_forcefully(stream)


async def serve_tcp(
    index: ServingIndex,
    sock: socket.socket,
    *,
    idle_timeout: float = DEFAULT_TCP_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_TCP_MAX_CONNECTIONS,
    write_timeout: float = DEFAULT_TCP_WRITE_TIMEOUT,
    output_budget: int = DEFAULT_TCP_OUTPUT_BUDGET,
    errors: ErrorLog | None = None,
    guard: Guard | None = None,
    xfr: TransferService | None = None,
) -> None:
    """Accept DNS-over-TCP connections on a listening socket, forever.

    At most `max_connections` are open; when a new one arrives at the cap, the connection
    idle longest is closed to make room (`pick_victim`). Each connection has an idle timeout,
    a write timeout and an output budget (`TcpLimits`); its errors end it alone.
    """
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    limits = TcpLimits(idle_timeout, write_timeout, output_budget)
    errors = errors or ErrorLog(log)
    slots: set[_Slot] = set()

    async def handle(stream: trio.SocketStream, slot: _Slot) -> None:
        try:
            with slot.scope:
                await _serve_tcp_connection(index, stream, slot, limits, errors, guard, xfr)
        finally:
            slots.discard(slot)
            await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # e.g. EMFILE: back off briefly rather than spin
                errors.report("tcp accept failed", str(exc), trio.current_time())
                await trio.sleep(0.1)
                continue
            now = trio.current_time()
            if len(slots) >= max_connections:
                # RFC 7766 §6.2.2 lets a server limit connections; §6.2.3: close idle ones
                victim = pick_victim(slots)
                if victim is None:  # max_connections 0: serve nobody over TCP
                    await trio.aclose_forcefully(stream)
                    continue
                slots.discard(victim)
                victim.scope.cancel()
                errors.report("tcp connection limit",
                              f"{max_connections} open; closed the one "
                              f"{'idle' if victim.idle else 'blocked in a write'} longest "
                              f"({now - victim.since:.1f}s)", now, logging.WARNING)
            slot = _Slot(trio.CancelScope(), True, now)
            slots.add(slot)
            nursery.start_soon(handle, stream, slot)


async def serve_dns(
    index: ServingIndex,
    host: str = "127.0.0.1",
    port: int = 5380,
    *,
    reuse_port: bool = False,
    tcp_idle_timeout: float = DEFAULT_TCP_IDLE_TIMEOUT,
    tcp_max_connections: int = DEFAULT_TCP_MAX_CONNECTIONS,
    tcp_write_timeout: float = DEFAULT_TCP_WRITE_TIMEOUT,
    tcp_output_budget: int = DEFAULT_TCP_OUTPUT_BUDGET,
    rrl: RrlConfig | None = None,
    cookie_secret: bytes | None = None,
    cookie_previous: tuple[bytes, ...] = (),
    worker: str = "1/1",
    transfers: TransferConfig | None = None,
    fast_udp: bool = True,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve DNS over UDP and TCP on (host, port) until cancelled.

    Args:
        index: the serving index to answer from (fed elsewhere; read here).
        host, port: where to listen; port 0 picks a free port for both UDP and TCP.
        reuse_port: set SO_REUSEPORT so several worker processes share the port.
        tcp_idle_timeout: seconds a TCP connection may stay silent before we close it.
        tcp_max_connections: open TCP connections; at the cap the one idle longest is closed.
        tcp_write_timeout: seconds a TCP write may stall before the connection is closed.
        tcp_output_budget: answer bytes one TCP connection may have pending before we stop
            reading its queries until they are sent.
        rrl: response-rate limiting for UDP (`RrlConfig.enabled_for(host)` decides);
            None is the default `RrlConfig()`: on for non-loopback listeners only.
        cookie_secret: the 16-byte DNS cookie secret; None draws a random one.
        cookie_previous: retired secrets whose cookies are still accepted and renewed.
        worker: "i/n", for the start log line.
        transfers: AXFR/IXFR, TSIG and NOTIFY for secondaries (`authd.dns.xfr`); None: transfers
            only as the index's `allow_axfr` says, no keys (a signed query gets BADKEY).
        fast_udp: drain UDP with the C helper when it is built (`authd.dns.udp_batched`);
            False keeps the Python loop (`authd serve --no-fast-udp`).
        task_status: `task_status.started((host, port))` once both sockets listen.

    Never returns; cancelling it closes the sockets.
    """
    udp, tcp = _bind_pair(host, port, reuse_port)
    bound = udp.getsockname()[1]
    errors = ErrorLog(log)
    rrl = rrl or RrlConfig()
    limiter = rrl.limiter() if rrl.enabled_for(host) else None

    def on_limit(ip: str, rclass: RClass) -> None:
        errors.report("rrl", f"limiting {rclass.value} responses to {ip}'s network "
                      f"({rrl.rate:g}/s, slip {rrl.slip})", trio.current_time(), logging.WARNING)

    guard = Guard(index.respond, cookie_secret or os.urandom(16), limiter, on_limit,
                  cookie_previous)
    # Transfers and TSIG: always on, so a signed query gets RFC 8945's NOTAUTH/BADKEY even
    # with no keys; the view of what secondaries get is kept only when transfers are allowed
    transfers = transfers or TransferConfig(allow_any=index.allow_axfr)
    view = index.enable_transfers(transfers.history) if transfers.enabled else None
    xfr = TransferService(view, index.respond, rules=transfers.rules,
                          allow_any=transfers.allow_any, keyring=transfers.keyring,
                          serves=lambda name: key_of(name) in index.table.zones)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(serve_udp, index, udp, errors, guard, xfr,
                                                 fast=fast_udp))
            if view is not None and transfers.notify:
                nursery.start_soon(serve_notify, view, list(transfers.notify),
                                   transfers.keyring, host)
            nursery.start_soon(
                lambda: serve_tcp(
                    index, tcp, idle_timeout=tcp_idle_timeout, max_connections=tcp_max_connections,
                    write_timeout=tcp_write_timeout, output_budget=tcp_output_budget,
                    errors=errors, guard=guard, xfr=xfr,
                )
            )
            log.info(
                "authd listening on %s port %d (udp+tcp), udp loop %s, worker %s, pid %d, "
                "rrl %s, zones: %s",
                host, bound, "C mmsg" if fast_udp and FAST_UDP else "Python", worker, os.getpid(),
                f"on ({rrl.rate:g}/s, slip {rrl.slip})" if limiter else "off",
                ", ".join(index.zone_names()) or "none",
            )
            task_status.started((host, bound))
    finally:
        udp.close()
        tcp.close()
        log.info("authd on %s port %d stopped: %s", host, bound, hardening_summary(guard, errors))


def hardening_summary(guard: Guard, errors: ErrorLog) -> str:
    """One line of what the guards did: RRL verdicts, cookies, and errors by class."""
    parts = []
    if guard.rrl is not None:
        c = guard.rrl.counts
        parts.append(f"rrl sent {guard.rrl.sent}, slipped {c[Verdict.SLIP]}, "
                     f"dropped {c[Verdict.DROP]}")
    s = guard.stats
    parts.append(f"cookies valid {s['cookie_valid']}, new {s['cookie_fresh']}, "
                 f"malformed {s['cookie_malformed']}, badcookie {s['badcookie']}")
    if errors.counts:
        parts.append("; ".join(f"{k} {n}" for k, n in sorted(errors.counts.items())))
    return "; ".join(parts)
