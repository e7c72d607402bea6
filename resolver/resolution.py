"""One resolution as an object that says what to send next and consumes answers (pure core).

Like dnspython's `_Resolution`, but with no I/O and no clock: the trio shell (`server.py`)
calls `start(now)`, carries out each `Send`, feeds every datagram or TCP message it receives to
`on_response(now, send, wire, source)`, and calls `on_timer(now)` at `deadline()`. When `done`
is set, the resolution is over (`Answer` or `Failure`).

Two kinds:
- `ForwardResolution`: ask upstream resolvers (RD=1), with retry on timeout, hedging (a second
  upstream asked after `hedge_after` if the first is silent; the first valid answer wins) and TCP
  retry on TC.
- `IterativeResolution`: start at the root hints and follow referrals (RD=0) down to the
  authoritative server, with glue and bailiwick checks, restarting for out-of-zone CNAMEs.

Safety (RFC 5452 §9.1, §10): every query gets a fresh random ID from the injected RNG; a
response is accepted only from the server and port it was sent to, with the same ID and the same
question; anything else is counted in `rejected` and dropped. Records outside the answering
server's bailiwick are removed before anything reaches the cache.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

OUR_UDP_SIZE = 1232
MAX_REFERRALS = 12
MAX_CNAME_RESTARTS = 8


class Transport(enum.Enum):
    UDP = "udp"
    TCP = "tcp"


class Rejection(enum.Enum):
    MALFORMED = "malformed"
    NOT_A_RESPONSE = "not-a-response"
    WRONG_SERVER = "wrong-server"
    WRONG_ID = "wrong-id"
    WRONG_QUESTION = "wrong-question"
    OUT_OF_BAILIWICK = "out-of-bailiwick"
    BAD_REFERRAL = "bad-referral"


@dataclass(frozen=True, order=True)
class Server:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str, default_port: int = 53) -> Server:
        """'127.0.0.1:5353', '127.0.0.1', '[::1]:5353' or '::1'."""
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else default_port
            return cls(host, port)
        if text.count(":") == 1:
            host, port = text.split(":")
            return cls(host, int(port))
        return cls(text, default_port)


@dataclass(frozen=True)
class Send:
    """Send `wire` (query ID `qid`) to `server` over `transport`."""

    server: Server
    transport: Transport
    wire: bytes
    qid: int
    qname: dns.name.Name
    rdtype: int
    sent_at: float


@dataclass(frozen=True)
class Answer:
    response: dns.message.Message  # scrubbed: only what may be cached
    server: Server
    elapsed: float


@dataclass(frozen=True)
class Failure:
    reason: str
    rcode: int = dns.rcode.SERVFAIL


def make_query(
    qname: dns.name.Name, rdtype: int, rdclass: int, qid: int, *, recursion: bool
) -> bytes:
    q = dns.message.make_query(qname, rdtype, rdclass, use_edns=0, payload=OUR_UDP_SIZE)
    q.id = qid
    if not recursion:
        q.flags &= ~dns.flags.RD  # RFC 1034 §5.3.1: iterative queries to authorities
    return q.to_wire()


def check_response(
    send: Send, wire: bytes, source: Server
) -> dns.message.Message | Rejection:
    """RFC 5452 §9.1: accept only a response from the right server, ID and question."""
    if source != send.server:
        return Rejection.WRONG_SERVER
    if len(wire) < 12 or int.from_bytes(wire[:2], "big") != send.qid:
        return Rejection.WRONG_ID
    try:
        msg = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError, IndexError):
        return Rejection.MALFORMED
    if not msg.flags & dns.flags.QR or msg.opcode() != dns.opcode.QUERY:
        return Rejection.NOT_A_RESPONSE
    if len(msg.question) != 1:
        return Rejection.WRONG_QUESTION
    q = msg.question[0]
    if q.name != send.qname or q.rdtype != send.rdtype:
        return Rejection.WRONG_QUESTION
    return msg


def scrub(
    msg: dns.message.Message, zone: dns.name.Name
) -> tuple[dns.message.Message, int]:
    """Keep only records a server authoritative for `zone` may speak for.

    Bailiwick rule (RFC 5452 §6 and Unbound's scrubber): answer and authority records must be at
    or below `zone`. The additional section is never cached, so it is dropped here. Returns the
    scrubbed copy and how many RRsets were removed.
    """
    out = dns.message.Message(id=msg.id)
    out.flags = msg.flags
    out.set_rcode(msg.rcode())
    out.question = list(msg.question)
    dropped = 0
    for src, dst in ((msg.answer, out.answer), (msg.authority, out.authority)):
        for r in src:
            if r.name.is_subdomain(zone):
                dst.append(r)
            else:
                dropped += 1
    dropped += len(msg.additional)
    return out, dropped


def _chain_from(
    answer: list[dns.rrset.RRset], name: dns.name.Name, rdtype: int
) -> list[dns.rrset.RRset]:
    """The answer RRsets on the CNAME chain that starts at `name` (RFC 1034 §4.3.2)."""
    out: list[dns.rrset.RRset] = []
    for _ in range(MAX_CNAME_RESTARTS):
        here = [r for r in answer if r.name == name and r.rdtype in (rdtype, dns.rdatatype.CNAME)]
        if not here:
            break
        out += here
        cname = next((r for r in here if r.rdtype == dns.rdatatype.CNAME), None)
        if cname is None or rdtype == dns.rdatatype.CNAME:
            break
        name = cname[0].target
    return out


@dataclass
class _Base:
    qname: dns.name.Name
    rdtype: int
    rdclass: int
    rng: random.Random
    timeout: float = 1.5
    done: Answer | Failure | None = None
    rejected: Counter[str] = field(default_factory=Counter)
    dropped_out_of_bailiwick: int = 0
    outstanding: list[Send] = field(default_factory=list)
    started_at: float = 0.0
    log: list[str] = field(default_factory=list)

    def _send(
        self, server: Server, now: float, transport: Transport = Transport.UDP, *,
        qname: dns.name.Name | None = None, recursion: bool = True,
    ) -> Send:
        qid = self.rng.getrandbits(16)
        name = qname if qname is not None else self.qname
        wire = make_query(name, self.rdtype, self.rdclass, qid, recursion=recursion)
        send = Send(server, transport, wire, qid, name, self.rdtype, now)
        self.outstanding.append(send)
        return send

    def _screen(
        self, now: float, send: Send, wire: bytes, source: Server
    ) -> tuple[dns.message.Message | None, list[Send]]:
        """Admit a response, or say what to do instead: the one gate both resolutions share.

        A late, unsolicited or forged response (wrong server, ID or question) is counted and
        dropped. A truncated UDP answer means ask the same server again over TCP
        (RFC 7766 section 5). Returns (message, []) when the response is to be used.
        """
        if self.done is not None or send not in self.outstanding:
            return None, []
        checked = check_response(send, wire, source)
        if isinstance(checked, Rejection):
            self.rejected[checked.value] += 1
            return None, []
        self.outstanding.remove(send)
        if checked.flags & dns.flags.TC and send.transport is Transport.UDP:
            recursion = bool(send.wire[2] & 0x01)  # the RD bit of the query we sent
            return None, [self._send(send.server, now, Transport.TCP, qname=send.qname,
                                     recursion=recursion)]
        return checked, []

    def _finish(self, result: Answer | Failure) -> list[Send]:
        self.done = result
        self.outstanding.clear()
        return []

    def deadline(self) -> float | None:
        if self.done is not None or not self.outstanding:
            return None
        return min(s.sent_at for s in self.outstanding) + self.timeout


@dataclass
class ForwardResolution(_Base):
    """Forward one question to upstream resolvers, with retries and optional hedging."""

    upstreams: list[Server] = field(default_factory=list)
    hedge_after: float | None = None
    hedged: bool = False
    tried: int = 0
    failed: set[Server] = field(default_factory=set)

    def start(self, now: float) -> list[Send]:
        if not self.upstreams:
            raise ValueError("a forwarding resolution needs at least one upstream")
        self.started_at = now
        self.tried = 1
        return [self._send(self.upstreams[0], now)]

    def deadline(self) -> float | None:
        base = super().deadline()
        if base is None:
            return None
        if self.hedge_after is not None and not self.hedged and self.tried < len(self.upstreams):
            return min(base, self.started_at + self.hedge_after)
        return base

    def _next_upstream(self, now: float) -> list[Send]:
        if self.tried < len(self.upstreams):
            server = self.upstreams[self.tried]
            self.tried += 1
            return [self._send(server, now)]
        return []

    def on_timer(self, now: float) -> list[Send]:
        if self.done is not None:
            return []
        sends: list[Send] = []
        if (
            self.hedge_after is not None
            and not self.hedged
            and now >= self.started_at + self.hedge_after
        ):
            # Hedging: the race helps (talk): ask a second upstream, keep the first one too.
            self.hedged = True
            sends += self._next_upstream(now)
        expired = [s for s in self.outstanding if now >= s.sent_at + self.timeout]
        for s in expired:
            self.outstanding.remove(s)
            self.failed.add(s.server)
            self.log.append(f"timeout from {s.server} after {self.timeout:.3f}s")
        if expired and not sends:
            sends += self._next_upstream(now)
        if not self.outstanding and not sends:
            return self._finish(Failure("all upstreams timed out or failed"))
        return sends

    def on_response(self, now: float, send: Send, wire: bytes, source: Server) -> list[Send]:
        checked, instead = self._screen(now, send, wire, source)
        if checked is None:
            return instead
        rcode = checked.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            self.failed.add(send.server)
            self.log.append(f"{dns.rcode.to_text(rcode)} from {send.server}")
            sends = self._next_upstream(now)
            if not sends and not self.outstanding:
                return self._finish(Failure(f"{dns.rcode.to_text(rcode)} from every upstream"))
            return sends
        # A forwarder trusts its upstream for every zone (the root is the bailiwick); the cache
        # still keeps only the CNAME chain that answers the question (cache.prepare).
        clean, dropped = scrub(checked, dns.name.root)
        self.dropped_out_of_bailiwick += dropped
        return self._finish(Answer(clean, send.server, now - self.started_at))


@dataclass(frozen=True)
class Delegation:
    """Where to ask about `zone`: its servers (from glue or hints) and the NS TTL."""

    zone: dns.name.Name
    servers: tuple[Server, ...]
    ttl: int = 0


@dataclass
class IterativeResolution(_Base):
    """Follow referrals from the root (RFC 1034 §5.3.3) with glue, checking bailiwick at each step.

    `port` is the port every authority listens on (53 in the world; the test universe runs each
    authority on its own 127.x address with one shared port).
    """

    hints: Delegation | None = None
    delegation: Delegation | None = None
    referrals: int = 0
    restarts: int = 0
    chain: list[dns.rrset.RRset] = field(default_factory=list)
    current: dns.name.Name | None = None
    server_index: int = 0
    learned: list[Delegation] = field(default_factory=list)

    def start(self, now: float, delegation: Delegation | None = None) -> list[Send]:
        if self.hints is None:
            raise ValueError("an iterative resolution needs root hints")
        self.started_at = now
        self.current = self.qname
        self.delegation = delegation or self.hints
        return self._ask(now)

    def _ask(self, now: float) -> list[Send]:
        assert self.delegation is not None
        servers = self.delegation.servers
        if self.server_index >= len(servers):
            return self._finish(Failure(f"no server for {self.delegation.zone} answered"))
        server = servers[self.server_index]
        return [self._send(server, now, qname=self.current, recursion=False)]

    def on_timer(self, now: float) -> list[Send]:
        if self.done is not None:
            return []
        expired = [s for s in self.outstanding if now >= s.sent_at + self.timeout]
        for s in expired:
            self.outstanding.remove(s)
            self.log.append(f"timeout from {s.server}")
        if expired and not self.outstanding:
            self.server_index += 1
            return self._ask(now)
        return []

    def on_response(self, now: float, send: Send, wire: bytes, source: Server) -> list[Send]:
        checked, instead = self._screen(now, send, wire, source)
        if checked is None:
            return instead
        assert self.delegation is not None and self.current is not None
        zone = self.delegation.zone
        rcode = checked.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            self.log.append(f"{dns.rcode.to_text(rcode)} from {send.server} for {zone}")
            self.server_index += 1
            return self._ask(now)
        clean, dropped = scrub(checked, zone)
        self.dropped_out_of_bailiwick += dropped - len(checked.additional)
        if dropped - len(checked.additional):
            self.rejected[Rejection.OUT_OF_BAILIWICK.value] += dropped - len(checked.additional)
        # Answer (possibly a CNAME chain) from an authority for this zone. Answer records that
        # are not on the chain from our name were not asked for: dropped (RFC 5452 §6).
        answer_here = _chain_from(clean.answer, self.current, self.rdtype)
        unrelated = len(clean.answer) - len(answer_here)
        if unrelated:
            self.dropped_out_of_bailiwick += unrelated
            self.rejected[Rejection.OUT_OF_BAILIWICK.value] += unrelated
        if answer_here or checked.flags & dns.flags.AA or rcode == dns.rcode.NXDOMAIN:
            return self._on_authoritative(now, clean, answer_here, send.server)
        # A referral: NS for a zone strictly below the current one that contains our name.
        ns = [
            r for r in clean.authority
            if r.rdtype == dns.rdatatype.NS
            and self.current.is_subdomain(r.name)
            and r.name != zone
        ]
        if not ns:
            self.rejected[Rejection.BAD_REFERRAL.value] += 1
            self.server_index += 1
            return self._ask(now)
        child = ns[0].name
        glue: list[Server] = []
        for rd in ns[0]:
            target = rd.target
            # Glue is only believed for names inside the zone that sent it (RFC 9471 §2.1).
            if not target.is_subdomain(zone):
                continue
            for r in checked.additional:
                if r.name == target and r.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    glue += [Server(a.address, send.server.port) for a in r]
        if not glue:
            return self._finish(Failure(f"referral to {child} without usable glue"))
        self.referrals += 1
        if self.referrals > MAX_REFERRALS:
            return self._finish(Failure("too many referrals"))
        self.delegation = Delegation(child, tuple(sorted(set(glue))), ns[0].ttl)
        self.learned.append(self.delegation)
        self.log.append(f"referral {zone} -> {child} via {send.server}")
        self.server_index = 0
        return self._ask(now)

    def _on_authoritative(
        self, now: float, clean: dns.message.Message, answer: list[dns.rrset.RRset], server: Server
    ) -> list[Send]:
        assert self.current is not None
        name = self.current
        for _ in range(MAX_CNAME_RESTARTS):
            hit = next((r for r in answer if r.name == name and r.rdtype == self.rdtype), None)
            if hit is not None:
                self.chain.append(hit)
                return self._finish(Answer(self._assemble(clean), server, now - self.started_at))
            cname = next(
                (r for r in answer if r.name == name and r.rdtype == dns.rdatatype.CNAME), None
            )
            if cname is None:
                break
            self.chain.append(cname)
            name = cname[0].target
        negative = clean.rcode() == dns.rcode.NXDOMAIN or any(
            r.rdtype == dns.rdatatype.SOA for r in clean.authority
        )
        if name == self.current or negative:
            # Negative answer (or chain ends here): hand it over with the chain so far.
            return self._finish(Answer(self._assemble(clean), server, now - self.started_at))
        # The chain leaves this zone: restart from the root for the target (RFC 1034 §5.3.3).
        self.restarts += 1
        if self.restarts > MAX_CNAME_RESTARTS:
            return self._finish(Failure("CNAME chain too long"))
        self.current = name
        assert self.hints is not None
        self.delegation = self.hints
        self.server_index = 0
        return self._ask(now)

    def _assemble(self, clean: dns.message.Message) -> dns.message.Message:
        out = dns.message.Message(id=0)
        out.flags = dns.flags.QR | dns.flags.RA
        out.set_rcode(clean.rcode())
        out.question = [dns.message.make_query(self.qname, self.rdtype).question[0]]
        out.answer = list(self.chain)
        out.authority = [r for r in clean.authority if r.rdtype == dns.rdatatype.SOA]
        return out
