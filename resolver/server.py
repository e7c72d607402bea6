"""The resolver's trio shell: moves bytes between clients, the cache and upstream servers.

All decisions live in pure modules: `cache.py` (what to keep and for how long) and
`resolution.py` (what to send next, what to accept). This module only does sockets and time:

- UDP: one socket, woken by `trio.lowlevel.wait_readable`, then drained non-blocking. A cache
  hit is answered inline from precomputed wire (ID, flags, question and TTLs patched); a miss
  starts a task. Identical questions in flight share one upstream resolution.
- TCP: RFC 7766 length-prefixed messages, several per connection.
- Upstream: each query goes out from a fresh socket bound to port 0, so the kernel picks a
  random source port (RFC 5452 §9.2); the ID is random (resolution.py).
- Access control (`acl.py`): clients outside loopback and `--allow` get REFUSED, as Unbound's
  `access-control: refuse` does, before anything else (the cache fast path included).

Every loop is total (issue 10): each exchange (a UDP datagram, a TCP message and its
connection, an upstream answer) has its own error boundary. A bad packet ends at most its own
exchange; an unexpected error there is answered SERVFAIL where a query can still be answered
(Knot's rule: a failure with no rcode set becomes SERVFAIL) and logged as one rate-limited
line per error class per second with a count of the held-back ones (`authd/errlog.py`),
never a traceback per packet.

`serve_resolver(...)` never returns; it calls `task_status.started(ResolverHandle)` once
listening, with the bound addresses (port 0 picks a free port).
"""

from __future__ import annotations

import errno
import logging
import math
import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import trio

from authd.errlog import ErrorLog
from resolver.acl import AccessControl, refused_reply
from resolver.cache import (
    OUR_UDP_SIZE,
    Cache,
    CachePolicy,
    Freshness,
    Kind,
    NotCacheable,
    render,
    render_hit,
)
from resolver.resolution import (
    Answer,
    Delegation,
    DelegationCache,
    Failure,
    ForwardResolution,
    IterativeResolution,
    Send,
    Server,
    Transport,
)
from resolver.wire import QueryView, WireError, error_reply, opt_record, view_query

log = logging.getLogger("resolver")

# RFC 8914 §4: EDE 22 "No Reachable Authority" on SERVFAIL after timeouts.
EDE_NO_REACHABLE_AUTHORITY = 22
MAX_TCP_IDLE = 10.0
# A TCP client that stops reading may hold its connection at most this long per reply
# (RFC 7766 §6.2.3 lets servers close idle or slow connections; NSD and Knot time writes out).
TCP_WRITE_TIMEOUT = 5.0
# Query types a resolver never forwards: RFC 6895 §3.1 meta-types (128-248, TKEY, TSIG, MAILA,
# MAILB) and OPT, which only lives in the additional section (RFC 6891 §6.1.1). Unbound
# answers them FORMERR (daemon/worker.c, "formerror for meta-type"); AXFR, IXFR, ANY apart.
META_QTYPES = frozenset(
    [dns.rdatatype.OPT, 249, 250, 253, 254, *range(128, 249)]
)


@dataclass
class ResolverConfig:
    """Everything `resolver serve` and `resolver stub` take from the command line."""

    listen: Server
    upstreams: list[Server] = field(default_factory=list)
    root_hints: Delegation | None = None
    policy: CachePolicy = field(default_factory=CachePolicy)
    hedge_after: float | None = None
    timeout: float = 1.5
    name: str = "resolver"
    tcp: bool = True
    # Like Unbound's num-queries-per-thread (1024): misses being resolved at once. Beyond it a
    # new question is dropped (and counted), so a random-name flood cannot grow memory.
    max_inflight: int = 1024
    # Who may ask (loopback always; `--allow CIDR` adds); everyone else gets REFUSED.
    acl: AccessControl = field(default_factory=AccessControl)
    # Open TCP connections beyond which a new one is closed at once (Unbound caps them too,
    # incoming-num-tcp): idle clients must not take the file descriptors upstream queries need.
    max_tcp_connections: int = 256

    def __post_init__(self) -> None:
        if bool(self.upstreams) == (self.root_hints is not None):
            raise ValueError("give either upstreams (--forward) or root hints (--root-hints)")


@dataclass
class ResolverHandle:
    """What `task_status.started` hands back: where it listens, and its live state."""

    udp: Server
    tcp: Server | None
    resolver: Resolver


@dataclass
class _Pending:
    """One upstream resolution that identical concurrent questions wait on."""

    event: trio.Event = field(default_factory=trio.Event)
    result: Answer | Failure = field(default_factory=lambda: Failure("not finished"))


class Resolver:
    """The cache plus resolution driver; shared by the UDP and TCP front ends."""

    def __init__(self, config: ResolverConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.cache = Cache(config.policy)
        # RFC 5452 §9.2: IDs must be unpredictable; SystemRandom unless a test injects a seed.
        self.rng = rng or random.SystemRandom()
        self.counters: Counter[str] = Counter()
        self.acl = config.acl
        self.errlog = ErrorLog(log)
        self.tcp_open = 0
        self.inflight: dict[bytes, _Pending] = {}
        # Where resolutions run when a server is up (serve_resolver sets it); None: inline.
        self.background: trio.Nursery | None = None
        # Iterative mode: zone cuts learned from referrals, so a miss starts at the closest
        # known delegation instead of the root (RFC 1034 §5.3.3 step 2). Bounded like the cache.
        p = config.policy
        self.delegations = DelegationCache(p.max_entries, p.min_ttl, p.max_ttl)

    # ---- answering clients -------------------------------------------------------------

    def answer_from_cache(self, view: QueryView, now: float, max_size: int | None) -> bytes | None:
        """The fast path: a fresh hit rendered from precomputed wire, else None."""
        hit = self.cache.get(view.key, now)
        if hit is None or hit.freshness is not Freshness.FRESH:
            return None
        return render(hit.entry, view, now, max_size=max_size)

    # ---- error boundaries -----------------------------------------------------------

    def internal_error(self, where: str, exc: BaseException) -> None:
        """Count an unexpected error; log one line per class per second (authd/errlog.py)."""
        self.counters["internal-errors"] += 1
        self.errlog.exception(f"{self.config.name} {where}", exc, trio.current_time())

    def warn(self, kind: str, text: str) -> None:
        """A warning a client or upstream can cause at will: also one line per kind per second.

        The text is repr()'d, as the error lines are: names come from the network.
        """
        self.errlog.report(f"{self.config.name} {kind}", repr(text), trio.current_time(),
                           level=logging.WARNING)

    async def respond(self, wire: bytes, host: str, *, udp: bool) -> bytes | None:
        """One client exchange, total: access control, then `answer`; never raises.

        A client outside the allow list gets REFUSED (Unbound `access-control: refuse`).
        An unexpected error answers SERVFAIL (header only) to anything that is a query.
        """
        if not self.acl.allows(host):
            self.counters["refused-acl"] += 1
            return refused_reply(wire)
        try:
            return await self.answer(wire, max_size_hint=udp)
        except Exception as exc:  # noqa: BLE001 - the exchange's error boundary (module doc)
            self.internal_error("udp-query" if udp else "tcp-query", exc)
            if len(wire) < 12 or wire[2] & 0x80:
                return None
            return error_reply(wire, dns.rcode.SERVFAIL, ra=True)

    # ---- answering clients -------------------------------------------------------------

    async def answer(self, wire: bytes, max_size_hint: bool) -> bytes | None:
        """The slow path for one client message (bad input gets FORMERR or is dropped).

        The checks come in Unbound's order (`worker_check_request`): no header or QR=1 is
        dropped; then the opcode; then the question and its type.
        """
        if len(wire) < 12 or wire[2] & 0x80:
            # RFC 1035 §4.1.1 needs a header to answer; a response sent to us is never
            # answered, whatever it asks (no reflection loops between two servers).
            self.counters["dropped-not-a-query"] += 1
            return None
        try:
            view = view_query(wire)
        except WireError:
            return self._odd_query(wire)
        opt = opt_record(OUR_UDP_SIZE) if view.edns else b""  # RFC 6891 §6.1.1: OPT echoed
        if (view.flags >> 11) & 0xF != dns.opcode.QUERY:
            return error_reply(wire, dns.rcode.NOTIMP, view.end, ra=True, opt=opt)
        if view.qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            # Transfers are not a resolver's job.
            return error_reply(wire, dns.rcode.NOTIMP, view.end, ra=True, opt=opt)
        if view.qtype == dns.rdatatype.ANY:
            # RFC 8482: we do not answer ANY.
            return error_reply(wire, dns.rcode.REFUSED, view.end, ra=True, opt=opt)
        if view.qtype in META_QTYPES:
            return error_reply(wire, dns.rcode.FORMERR, view.end, ra=True, opt=opt)
        max_size = (view.udp_size if view.edns else 512) if max_size_hint else None
        now = trio.current_time()
        fast = self.answer_from_cache(view, now, max_size)
        if fast is not None:
            return fast
        key = view.key
        if key not in self.inflight and len(self.inflight) >= self.config.max_inflight:
            self.counters["dropped-overload"] += 1
            return None
        failure = self.cache.get_failure(key, now)
        if failure is not None:
            self.counters["failure-cache-hits"] += 1
            return self._failed(view, now, max_size, "resolution failure cached (RFC 9520)")
        started = now
        policy = self.config.policy
        stale = self.cache.get(key, now) if policy.serve_stale else None
        if stale is not None and self.background is not None:
            # RFC 8767 §5 client-response timer: if resolving takes longer than this, answer
            # the stale data now; the resolution goes on and refreshes the cache.
            result = None
            with trio.move_on_after(policy.stale_client_timeout):
                result = await self._resolve_shared(key, view)
            if result is None:
                self.counters["stale-served"] += 1
                self.cache.stats.stale_hits += 1
                return render(stale.entry, view, trio.current_time(),
                              stale_ttl=policy.stale_ttl, max_size=max_size)
        else:
            result = await self._resolve_shared(key, view)
        now = trio.current_time()
        if isinstance(result, Failure):
            return self._failed(view, now, max_size, result.reason)
        hit = self.cache.get(key, now)
        if hit is not None and hit.freshness is Freshness.FRESH:
            # Just fetched for this query: serve the full TTL, as it came from upstream.
            at = hit.entry.stored_at if hit.entry.stored_at >= started else now
            return render(hit.entry, view, at, max_size=max_size)
        # Not cacheable (TTL 0, negative without SOA): answer once from the response itself.
        return self._render_uncached(view, result, max_size)

    async def _resolve_shared(self, key: bytes, view: QueryView) -> Answer | Failure:
        """Resolve `view`'s question once for every concurrent asker.

        With a background nursery (set by `serve_resolver`) the resolution runs there, so a
        caller that stops waiting (serve-stale's client timer) does not cancel it: the answer
        still lands in the cache for the next client (RFC 8767 §5).
        """
        pending = self.inflight.get(key)
        if pending is not None:
            self.counters["coalesced"] += 1
        else:
            pending = self.inflight[key] = _Pending()
            if self.background is not None:
                self.background.start_soon(self._run_pending, key, view.question, pending)
            else:
                await self._run_pending(key, view.question, pending)
        await pending.event.wait()
        return pending.result

    async def _run_pending(self, key: bytes, question_wire: bytes, pending: _Pending) -> None:
        result: Answer | Failure = Failure("resolution cancelled")
        try:
            q = dns.message.from_wire(b"\x00" * 4 + b"\x00\x01" + b"\x00" * 6 + question_wire)
            question = q.question[0]
            result = await self.resolve(question.name, question.rdtype, question.rdclass)
            now = trio.current_time()
            if isinstance(result, Answer):
                stored = self.cache.put(key, result.response, now)
                what = (
                    f"not cached: {stored.reason}"
                    if isinstance(stored, NotCacheable)
                    else f"cached {stored.kind.value} ttl={stored.ttl}"
                )
                log.info(
                    "%s %s %s: %s from %s in %.1f ms, %s",
                    self.config.name, question.name, dns.rdatatype.to_text(question.rdtype),
                    dns.rcode.to_text(result.response.rcode()), result.server,
                    result.elapsed * 1000, what,
                )
            else:
                hold = self.cache.note_failure(key, now)
                self.warn("resolution-failed", (
                    f"{question.name} {dns.rdatatype.to_text(question.rdtype)}: failed "
                    f"({result.reason}); failure remembered {hold:.1f} s"
                ))
        except (dns.exception.DNSException, ValueError) as exc:
            result = Failure(f"bad question: {exc}", dns.rcode.FORMERR)
        except Exception as exc:  # noqa: BLE001 - runs in the server's nursery: never take it down
            self.internal_error("resolution", exc)
            result = Failure("internal error")
        finally:
            del self.inflight[key]
            pending.result = result
            pending.event.set()

    def _failed(self, view: QueryView, now: float, max_size: int | None, why: str) -> bytes:
        policy = self.config.policy
        if policy.serve_stale:
            hit = self.cache.get(view.key, now)
            if hit is not None:
                # RFC 8767 §4: upstream failed, so an expired answer beats none; TTL 30, EDE 3.
                self.counters["stale-served"] += 1
                self.cache.stats.stale_hits += 1
                return render(hit.entry, view, now, stale_ttl=policy.stale_ttl, max_size=max_size)
        self.counters["servfail"] += 1
        return self._servfail(view, why)

    def _servfail(self, view: QueryView, why: str) -> bytes:
        msg = dns.message.Message(id=view.qid)
        msg.flags = dns.flags.QR | dns.flags.RA | (view.flags & dns.flags.RD)
        msg.set_rcode(dns.rcode.SERVFAIL)
        q = dns.message.from_wire(b"\x00" * 4 + b"\x00\x01" + b"\x00" * 6 + view.question)
        msg.question = q.question
        if view.edns:
            msg.use_edns(0, payload=OUR_UDP_SIZE, options=[
                dns.edns.EDEOption(EDE_NO_REACHABLE_AUTHORITY, why[:100])
            ])
        return msg.to_wire()

    def _render_uncached(self, view: QueryView, result: Answer, max_size: int | None) -> bytes:
        resp = result.response
        msg = dns.message.Message(id=view.qid)
        msg.flags = dns.flags.QR | dns.flags.RA | (view.flags & (dns.flags.RD | dns.flags.CD))
        msg.set_rcode(resp.rcode())
        q = dns.message.from_wire(b"\x00" * 4 + b"\x00\x01" + b"\x00" * 6 + view.question)
        msg.question = q.question
        msg.answer = list(resp.answer)
        msg.authority = [r for r in resp.authority if r.rdtype == dns.rdatatype.SOA]
        if view.edns:
            msg.use_edns(0, payload=OUR_UDP_SIZE)
        try:
            return msg.to_wire(max_size=max_size or 65535)
        except dns.exception.TooBig:
            msg.answer, msg.authority = [], []
            msg.flags |= dns.flags.TC
            return msg.to_wire()

    def _odd_query(self, wire: bytes) -> bytes | None:
        """A query (header, QR=0) the fast parser refused: FORMERR, NOTIMP or BADVERS.

        Whatever dnspython cannot read is FORMERR with the header only (RFC 1035 §4.1.1):
        an OPT outside the additional section or more than one OPT (RFC 6891 §6.1.1, dnspython's
        BadEDNS), a name over 255 octets (RFC 1035 §2.3.4), bad pointers, trailing bytes.
        """
        self.counters["odd-queries"] += 1
        try:
            q = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - every parse failure is the same answer
            return error_reply(wire, dns.rcode.FORMERR, ra=True)
        try:
            r = dns.message.make_response(q)
            r.flags |= dns.flags.RA
            if q.edns > 0:
                # RFC 6891 §6.1.3: an EDNS version we do not speak gets BADVERS, version 0.
                r.use_edns(0, payload=OUR_UDP_SIZE)
                r.set_rcode(dns.rcode.BADVERS)
            elif q.opcode() != dns.opcode.QUERY:
                r.set_rcode(dns.rcode.NOTIMP)
            else:
                # Readable, but not one question and nothing else (RFC 1035 §4.1.2).
                r.set_rcode(dns.rcode.FORMERR)
            return r.to_wire()
        except Exception:  # noqa: BLE001 - a question we cannot echo: header only
            return error_reply(wire, dns.rcode.FORMERR, ra=True)

    # ---- talking to upstreams ----------------------------------------------------------

    async def resolve(
        self, qname: dns.name.Name, rdtype: int, rdclass: int = 1
    ) -> Answer | Failure:
        """Drive one pure resolution object to completion over real sockets."""
        now = trio.current_time()
        cfg = self.config
        res: ForwardResolution | IterativeResolution
        if cfg.upstreams:
            res = ForwardResolution(
                qname, rdtype, rdclass, self.rng, timeout=cfg.timeout,
                upstreams=list(cfg.upstreams), hedge_after=cfg.hedge_after,
            )
            sends = res.start(now)
        else:
            # The cache and the zone cuts are shared with the resolution: NS names without glue
            # are looked up there first, and what their sub-resolutions learn is kept.
            res = IterativeResolution(
                qname, rdtype, rdclass, self.rng, timeout=cfg.timeout, hints=cfg.root_hints,
                cache=self.cache, delegations=self.delegations,
            )
            sends = res.start(now, self.delegations.closest(qname, now))
        send_ch, recv_ch = trio.open_memory_channel[tuple[Send, bytes, Server]](64)
        async with trio.open_nursery() as nursery:
            for s in sends:
                nursery.start_soon(self._transmit, s, send_ch)
            while res.done is None:
                deadline = res.deadline()
                if deadline is None:
                    res.done = Failure("nothing left to ask")
                    break
                new: list[Send] = []
                with trio.move_on_at(deadline):
                    s, data, src = await recv_ch.receive()
                    try:
                        new = res.on_response(trio.current_time(), s, data, src)
                    except Exception as exc:  # noqa: BLE001 - one upstream answer's boundary
                        # The answer is dropped as if never received; the timer goes on.
                        self.internal_error("upstream-answer", exc)
                        res.rejected["internal-error"] += 1
                    for s2 in new:
                        nursery.start_soon(self._transmit, s2, send_ch)
                    continue
                for s2 in res.on_timer(trio.current_time()):
                    nursery.start_soon(self._transmit, s2, send_ch)
            nursery.cancel_scope.cancel()
        for reason, n in res.rejected.items():
            self.counters[f"rejected-{reason}"] += n
            self.warn(f"upstream-{reason}", f"{qname}: dropped {n} upstream response(s): {reason}")
        self.counters["dropped-out-of-bailiwick"] += res.dropped_out_of_bailiwick
        if isinstance(res, IterativeResolution):
            self.counters["iterative-queries"] += res.budget.spent
        for line in res.log:
            log.info("%s %s: %s", cfg.name, qname, line)
        if isinstance(res.done, Answer):
            self.counters["upstream-answers"] += 1
            if isinstance(res, ForwardResolution) and res.hedged:
                self.counters["hedged"] += 1
                if res.done.server != cfg.upstreams[0]:
                    self.counters["hedge-won"] += 1
        return res.done

    async def _transmit(self, send: Send, out: trio.MemorySendChannel) -> None:
        try:
            if send.transport is Transport.UDP:
                await self._transmit_udp(send, out)
            else:
                await self._transmit_tcp(send, out)
        except OSError as exc:
            # An unreachable upstream is a timeout to the resolution, not a crash.
            self.counters["upstream-socket-errors"] += 1
            log.debug("%s upstream %s: %s", self.config.name, send.server, exc)
        except trio.BrokenResourceError:
            pass

    async def _transmit_udp(self, send: Send, out: trio.MemorySendChannel) -> None:
        family = socket.AF_INET6 if ":" in send.server.host else socket.AF_INET
        with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
            await sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            await sock.sendto(send.wire, (send.server.host, send.server.port))
            while True:
                try:
                    data, addr = await sock.recvfrom(65535)
                except ConnectionRefusedError:
                    return  # ICMP port unreachable: the resolution times this server out
                await out.send((send, data, Server(addr[0], addr[1])))

    async def _transmit_tcp(self, send: Send, out: trio.MemorySendChannel) -> None:
        stream = await trio.open_tcp_stream(send.server.host, send.server.port)
        async with stream:
            await stream.send_all(struct.pack("!H", len(send.wire)) + send.wire)
            data = await _read_tcp_message(stream)
            if data is not None:
                await out.send((send, data, send.server))


async def _read_exact(stream: trio.abc.ReceiveStream, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


async def _read_tcp_message(stream: trio.abc.ReceiveStream) -> bytes | None:
    head = await _read_exact(stream, 2)
    if head is None:
        return None
    return await _read_exact(stream, struct.unpack("!H", head)[0])


async def _serve_udp(resolver: Resolver, sock: trio.socket.SocketType) -> None:
    """Drain the socket after each wake-up; hits inline, misses in tasks (module docstring).

    The hit path reads the question straight from the bytes: one question, no answer or
    authority records, at most an EDNS(0) OPT; anything else, or a miss, goes to `answer()`,
    which parses fully and answers FORMERR/NOTIMP/BADVERS where due. The cache key is the
    question section as sent; if that misses, the same with the name lowercased.
    """
    raw = sock._sock if hasattr(sock, "_sock") else sock  # the stdlib socket under trio's wrapper
    raw.setblocking(False)
    recvfrom = raw.recvfrom
    sendto = raw.sendto
    entries = resolver.cache.entries
    cache = resolver.cache

    allows = resolver.acl.allows

    async def slow(wire: bytes, addr: tuple) -> None:
        reply = await resolver.respond(wire, addr[0], udp=True)  # total: never raises
        if reply is not None:
            try:
                sendto(reply, addr)
            except OSError:
                resolver.counters["send-errors"] += 1

    async with trio.open_nursery() as nursery:
        while True:
            await trio.lowlevel.wait_readable(raw)
            now = trio.current_time()
            for _ in range(512):
                try:
                    wire, addr = recvfrom(65535)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
                        continue
                    # Anything else the socket reports ends this drain, not the server.
                    resolver.internal_error("udp-receive", exc)
                    break
                reply = None
                if allows(addr[0]):
                    try:
                        reply = _udp_fast(wire, now, entries, cache)
                    except Exception as exc:  # noqa: BLE001 - one datagram's boundary
                        resolver.internal_error("udp-fast-path", exc)
                if reply is not None:
                    try:
                        sendto(reply, addr)
                    except OSError:
                        resolver.counters["send-errors"] += 1
                else:
                    # Misses, odd packets and clients not allowed (respond() refuses them).
                    nursery.start_soon(slow, wire, addr)
            # No extra checkpoint: wait_readable above yields to the scheduler every round.


_PLAIN_HEADER = b"\x00\x01\x00\x00\x00\x00"


def _udp_fast(wire: bytes, now: float, entries: dict, cache: Cache) -> bytes | None:
    """A fresh cache hit for a plain query, rendered from precomputed wire; else None.

    The hit path reads the question straight from the bytes: one question, no answer or
    authority records, at most an EDNS(0) OPT. Only a byte-exact cached question (or the same
    with the name lowercased) can hit, so whatever this accepts was a valid question once.
    """
    reply = None
    n = len(wire)
    # Hit path: a query (QR=0, opcode 0), QDCOUNT 1, AN/NS 0, AR 0 or 1.
    if n >= 17 and not wire[2] & 0xF8 and wire[4:10] == _PLAIN_HEADER and not wire[10]:
        z = wire.find(0, 12)
        qend = z + 5
        ar = wire[11]
        edns = False
        size = 512
        ok = True
        if ar == 0:
            ok = qend == n
        elif ar == 1:
            # RFC 6891 §6.1.2: root owner, type 41, CLASS = UDP size, version 0.
            ok = (
                qend + 11 <= n
                and wire[qend:qend + 3] == b"\x00\x00\x29"
                and not wire[qend + 6]
                and n == qend + 11 + ((wire[qend + 9] << 8) | wire[qend + 10])
            )
            if ok:
                edns = True
                size = max(512, (wire[qend + 3] << 8) | wire[qend + 4])
        else:
            ok = False
        if ok and z > 12:
            question = wire[12:qend]
            entry = entries.get(question)
            if entry is None:
                key = wire[12:z].lower() + wire[z:qend]
                entry = entries.get(key)
            else:
                key = question
            if entry is not None and now < entry.expires_at:
                entries.move_to_end(key)
                cache.stats.hits += 1
                if entry.kind is not Kind.POSITIVE:  # a cached NXDOMAIN or NODATA
                    cache.stats.negative_hits += 1
                reply = render_hit(entry, wire[:4], question, edns, now, size)
    return reply


async def _serve_tcp_conn(resolver: Resolver, stream: trio.SocketStream) -> None:
    """RFC 7766 messages on one connection until the client closes, idles or stalls.

    Each message goes through `respond` (total); anything else that goes wrong ends only this
    connection. A reply the client does not read within TCP_WRITE_TIMEOUT closes it.
    """
    if resolver.tcp_open >= resolver.config.max_tcp_connections:
        resolver.counters["tcp-refused-full"] += 1
        await stream.aclose()
        return
    resolver.tcp_open += 1
    try:
        async with stream:
            try:
                host = stream.socket.getpeername()[0]
            except OSError:
                return  # already gone
            while True:
                with trio.move_on_after(MAX_TCP_IDLE) as idle:
                    wire = await _read_tcp_message(stream)
                if idle.cancelled_caught or wire is None:
                    return
                reply = await resolver.respond(wire, host, udp=False)
                if reply is not None:
                    with trio.move_on_after(TCP_WRITE_TIMEOUT) as stalled:
                        await stream.send_all(struct.pack("!H", len(reply)) + reply)
                    if stalled.cancelled_caught:
                        resolver.counters["tcp-write-timeouts"] += 1
                        return
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return
    except Exception as exc:  # noqa: BLE001 - the connection's error boundary (module doc)
        resolver.internal_error("tcp-connection", exc)
    finally:
        resolver.tcp_open -= 1


async def serve_resolver(
    config: ResolverConfig,
    *,
    rng: random.Random | None = None,
    task_status: trio.TaskStatus[ResolverHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on UDP (and TCP) at `config.listen` and answer forever.

    UDP and TCP share the port; with port 0 the UDP port is picked first and TCP binds the same
    number.
    """
    resolver = Resolver(config, rng)
    family = socket.AF_INET6 if ":" in config.listen.host else socket.AF_INET
    tcp_listeners: list[trio.SocketListener] = []
    for attempt in range(50):
        udp = trio.socket.socket(family, socket.SOCK_DGRAM)
        await udp.bind((config.listen.host, config.listen.port))
        port = udp.getsockname()[1]
        if not config.tcp:
            break
        try:
            tcp_listeners = await trio.open_tcp_listeners(port, host=config.listen.host)
            break
        except OSError:
            udp.close()
            # With port 0, another process may hold TCP on the UDP port we got: try another.
            if config.listen.port != 0 or attempt == 49:
                raise
    handle = ResolverHandle(
        Server(config.listen.host, port),
        Server(config.listen.host, port) if config.tcp else None,
        resolver,
    )
    mode = (
        "forwarding to " + ", ".join(map(str, config.upstreams))
        if config.upstreams
        else "iterative from root hints "
        + ", ".join(str(s) for s in (config.root_hints.servers if config.root_hints else ()))
    )
    p = config.policy
    log.info(
        "%s listening on %s (udp%s), %s; max-negative-ttl=%s min-ttl=%s max-ttl=%s serve-stale=%s "
        "hedge-after=%s; clients allowed: %s (others REFUSED)",
        config.name, handle.udp, "+tcp" if config.tcp else "", mode,
        p.fixed_negative_ttl if p.fixed_negative_ttl is not None else p.max_negative_ttl,
        p.min_ttl, p.max_ttl, p.serve_stale, config.hedge_after, resolver.acl.describe(),
    )
    async with trio.open_nursery() as nursery:
        resolver.background = nursery
        nursery.start_soon(_serve_udp, resolver, udp)
        for listener in tcp_listeners:
            nursery.start_soon(
                trio.serve_listeners, lambda s: _serve_tcp_conn(resolver, s), [listener]
            )
        task_status.started(handle)
        await trio.sleep(math.inf)

