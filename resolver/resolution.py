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
  NS names without usable glue are resolved by nested sub-resolutions (RFC 1034 §5.3.3 step
  4), bounded in depth, in total queries, and against dependency loops.
- `DelegationCache`: the zone cuts learned on the way, so the next resolution starts at the
  closest one.

Safety (RFC 5452 §9.1, §10): every query gets a fresh random ID from the injected RNG; a
response is accepted only from the server and port it was sent to, with the same ID and the same
question (name, type and class); anything else is counted in `rejected` and dropped. Records
outside the answering server's bailiwick, or of another class than the question's, are removed
before anything reaches the cache.
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

from resolver.cache import Cache, Freshness, cache_key

OUR_UDP_SIZE = 1232
MAX_REFERRALS = 12
MAX_CNAME_RESTARTS = 8
# Glueless delegations (IterativeResolution). Unbound's default target-fetch-policy
# "3 2 1 0 0" has five levels, so it follows an NS name needed to reach a server needed to
# reach a server ... at most 4 deep (its max_dependency_depth); we do the same.
MAX_DEPENDENCY_DEPTH = 4
# Every query one client question may cause, all sub-resolutions included. A referral listing
# many glueless NS names must not turn one question into hundreds of queries (NXNSAttack,
# CVE-2020-12662 in Unbound, CVE-2020-8616 in BIND). Unbound caps a query and its subqueries at
# 64 target lookups (MAX_TARGET_COUNT) and 32 sends per query (MAX_SENT_COUNT); 64 sends in
# all is enough for the deepest chain we allow (4 levels of about 3 referrals and an answer
# each, twice over) and small enough that a hostile zone gets at most 64 packets per question.
MAX_QUERIES_PER_QUESTION = 64
# What a glueless NS name is resolved to: A first; AAAA only if the name has no A. Both are
# already used as glue, and the shell sends over IPv4 and IPv6 alike.
NS_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


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
    rdclass: int = dns.rdataclass.IN


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
    """RFC 5452 §9.1: accept only a response from the right server, ID and question.

    The question must match in name, type and class: names compare case-insensitively
    (RFC 4343 §3; dnspython's Name equality), so a server that keeps our spelling or not is
    fine; a CH answer to an IN question is refused like any other question (issue 10).
    """
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
    if q.name != send.qname or q.rdtype != send.rdtype or q.rdclass != send.rdclass:
        return Rejection.WRONG_QUESTION
    return msg


def scrub(
    msg: dns.message.Message, zone: dns.name.Name
) -> tuple[dns.message.Message, int]:
    """Keep only records a server authoritative for `zone` may speak for.

    Bailiwick rule (RFC 5452 §6 and Unbound's scrubber): answer and authority records must be at
    or below `zone`, and of the question's class (a record of another class answers another
    question: RFC 1034 §4.3.2 matches class too). The additional section is never cached, so it
    is dropped here. Returns the scrubbed copy and how many RRsets were removed.
    """
    qclass = msg.question[0].rdclass if msg.question else dns.rdataclass.IN
    out = dns.message.Message(id=msg.id)
    out.flags = msg.flags
    out.set_rcode(msg.rcode())
    out.question = list(msg.question)
    dropped = 0
    for src, dst in ((msg.answer, out.answer), (msg.authority, out.authority)):
        for r in src:
            if r.name.is_subdomain(zone) and r.rdclass == qclass:
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
        send = Send(server, transport, wire, qid, name, self.rdtype, now, self.rdclass)
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
    """Where to ask about `zone`: its servers (from glue, hints or resolved NS names), the TTL
    for which that holds, and the NS names that came without usable glue (`glueless`), still to
    be resolved if `servers` is empty or every one of them fails."""

    zone: dns.name.Name
    servers: tuple[Server, ...]
    ttl: int = 0
    glueless: tuple[dns.name.Name, ...] = ()


@dataclass
class DelegationCache:
    """Zone cuts learned from referrals, so a resolution starts at the closest known one
    (RFC 1034 §5.3.3 step 2) instead of the root. Pure: `now` is a parameter. Bounded by
    `max_entries` (oldest learned first out); TTLs clamped like positive answers."""

    max_entries: int = 100_000
    min_ttl: int = 0
    max_ttl: int = 86400
    zones: dict[dns.name.Name, tuple[Delegation, float]] = field(default_factory=dict)

    def __contains__(self, zone: object) -> bool:
        return zone in self.zones

    def __len__(self) -> int:
        return len(self.zones)

    def closest(self, qname: dns.name.Name, now: float) -> Delegation | None:
        """The deepest unexpired delegation at or above `qname`, else None (start at the root)."""
        name = qname
        while True:
            known = self.zones.get(name)
            if known is not None:
                if now < known[1]:
                    return known[0]
                del self.zones[name]
            if name == dns.name.root:
                return None
            name = name.parent()

    def learn(self, delegation: Delegation, now: float) -> None:
        """Remember a delegation that has servers to ask (one with only unresolved NS names
        would send the next resolution to a dead end)."""
        ttl = min(max(delegation.ttl, self.min_ttl), self.max_ttl)
        if ttl <= 0 or not delegation.servers:
            return
        self.zones.pop(delegation.zone, None)
        self.zones[delegation.zone] = (delegation, now + ttl)
        while len(self.zones) > self.max_entries:
            self.zones.pop(next(iter(self.zones)))


@dataclass
class QueryBudget:
    """Queries one client question may cause, shared by its resolution and every
    sub-resolution it starts (see MAX_QUERIES_PER_QUESTION)."""

    limit: int = MAX_QUERIES_PER_QUESTION
    spent: int = 0

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.limit


def _addresses(
    msg: dns.message.Message, rdtype: int, port: int
) -> tuple[list[Server], int]:
    """The servers named by the `rdtype` (A or AAAA) records of an answer, and their TTL."""
    rrsets = [r for r in msg.answer if r.rdtype == rdtype]
    servers = sorted({Server(rd.address, port) for r in rrsets for rd in r})
    return servers, min((r.ttl for r in rrsets), default=0)


@dataclass
class IterativeResolution(_Base):
    """Follow referrals from the root (RFC 1034 §5.3.3) with glue, checking bailiwick at each step.

    Glueless delegations: when a referral names servers without usable glue (none sent, or
    glue outside the referring zone, which is never believed), the NS names are resolved like
    any other name (RFC 1034 §5.3.3 step 4, RFC 1035 §7.2): first from `cache`, else by a
    sub-resolution, another `IterativeResolution` for the name's A (then AAAA) records, run
    inside this one. It makes the same ID, question, server and bailiwick checks, starts at the
    closest known delegation and learns into the same `cache` and `delegations`. While it runs,
    `on_response`, `on_timer` and `deadline` go to it; when it ends, the original query goes on
    with the addresses found. Bounds: MAX_DEPENDENCY_DEPTH nested sub-resolutions, a shared
    `budget` of MAX_QUERIES_PER_QUESTION queries, and loop detection (a glueless referral to a
    zone whose servers an enclosing resolution is already looking for, or a name whose address
    an enclosing resolution is already resolving) ending in `Failure`, i.e. SERVFAIL.

    Every authority is asked on the port of the root hints' first server (53 in the world; the
    test universe runs each authority on its own 127.x address with one shared port); glue keeps
    the port of the server that sent it.
    """

    hints: Delegation | None = None
    delegation: Delegation | None = None
    referrals: int = 0
    restarts: int = 0
    chain: list[dns.rrset.RRset] = field(default_factory=list)
    current: dns.name.Name | None = None
    server_index: int = 0
    learned: list[Delegation] = field(default_factory=list)
    # Shared with the resolver (None in tests that need neither): answers and zone cuts.
    cache: Cache | None = None
    delegations: DelegationCache | None = None
    # Glueless chasing (class docstring). `path` is zone, NS name, zone, NS name, ... from the
    # client's question down to this sub-resolution; `asking` the questions enclosing
    # resolutions are answering.
    budget: QueryBudget = field(default_factory=QueryBudget)
    depth: int = 0
    path: tuple[dns.name.Name, ...] = ()
    asking: tuple[tuple[dns.name.Name, int], ...] = ()
    targets: list[tuple[dns.name.Name, int]] = field(default_factory=list)
    sub: IterativeResolution | None = None
    cause: str | None = None
    logged_cause: str | None = None

    def start(self, now: float, delegation: Delegation | None = None) -> list[Send]:
        if self.hints is None:
            raise ValueError("an iterative resolution needs root hints")
        self.started_at = now
        self.current = self.qname
        return self._enter(now, delegation or self.hints)

    def deadline(self) -> float | None:
        if self.done is not None:
            return None
        if self.sub is not None:
            return self.sub.deadline()
        return super().deadline()

    def _send(
        self, server: Server, now: float, transport: Transport = Transport.UDP, *,
        qname: dns.name.Name | None = None, recursion: bool = True,
    ) -> Send:
        self.budget.spent += 1
        return super()._send(server, now, transport, qname=qname, recursion=recursion)

    def _note(self, text: str) -> None:
        who = f"[NS lookup {self.qname} {dns.rdatatype.to_text(self.rdtype)}] " if self.depth else ""
        self.log.append(who + text)

    def _learn(self, delegation: Delegation, now: float) -> None:
        self.learned.append(delegation)
        if self.delegations is not None:
            self.delegations.learn(delegation, now)

    def _port(self) -> int:
        assert self.hints is not None and self.hints.servers
        return self.hints.servers[0].port

    def _budget_failure(self) -> list[Send]:
        return self._finish(Failure(
            f"query budget exhausted: {self.budget.limit} queries for one question "
            "(glueless NS chasing)"
        ))

    def _enter(self, now: float, delegation: Delegation) -> list[Send]:
        """Start asking `delegation`'s servers; its glueless NS names are the reserve."""
        self.delegation = delegation
        self.server_index = 0
        self.targets = [(n, t) for n in delegation.glueless for t in NS_ADDRESS_TYPES]
        self.cause = None
        return self._ask(now)

    def _ask(self, now: float) -> list[Send]:
        assert self.delegation is not None
        servers = self.delegation.servers
        if self.server_index < len(servers):
            if self.budget.exhausted:
                return self._budget_failure()
            server = servers[self.server_index]
            return [self._send(server, now, qname=self.current, recursion=False)]
        if self.targets:
            return self._chase(now)
        zone = self.delegation.zone
        if servers:
            why = f"no server for {zone} answered"
            return self._finish(Failure(why + (f" ({self.cause})" if self.cause else "")))
        return self._finish(Failure(self.cause or f"no address for any NS of {zone}"))

    # ---- glueless delegations: resolving NS names (RFC 1034 §5.3.3 step 4) -------------

    def _drop_targets(self, name: dns.name.Name) -> None:
        self.targets = [t for t in self.targets if t[0] != name]

    def _chase(self, now: float) -> list[Send]:
        """Find an address for the next NS name: from the cache, else by a sub-resolution."""
        assert self.delegation is not None and self.current is not None
        zone = self.delegation.zone
        while self.targets:
            name, rdtype = self.targets.pop(0)
            cached = self._cached_addresses(name, rdtype, now)
            if cached is not None:
                servers, ttl = cached
                if servers:
                    return self._use(now, name, servers, ttl, "cache")
                self.cause = self.cause or f"NS {name} has no address"
                continue
            enclosing = self.asking + ((self.qname, self.rdtype), (self.current, self.rdtype))
            if (name, rdtype) in enclosing:
                self.cause = self.cause or (
                    f"dependency loop: {_path_text(self.path + (zone, name))} is being resolved"
                )
                self._drop_targets(name)
                continue
            if self.depth >= MAX_DEPENDENCY_DEPTH:
                # The whole chain would not fit an EDE text (RFC 8914): its two ends.
                self.cause = self.cause or (
                    f"dependency depth limit {MAX_DEPENDENCY_DEPTH}: "
                    f"{self.path[0]} -> ... -> {zone} -> {name}"
                )
                self._drop_targets(name)
                continue
            if self.budget.exhausted:
                return self._budget_failure()
            self.sub = IterativeResolution(
                name, rdtype, self.rdclass, self.rng, timeout=self.timeout,
                rejected=self.rejected, log=self.log, learned=self.learned, hints=self.hints,
                cache=self.cache, delegations=self.delegations, budget=self.budget,
                depth=self.depth + 1, path=self.path + (zone, name), asking=enclosing,
            )
            self._note(
                f"no glue for {zone}: resolving NS {name} {dns.rdatatype.to_text(rdtype)} "
                f"(depth {self.depth + 1})"
            )
            start = self.delegations.closest(name, now) if self.delegations is not None else None
            return self._after_sub(now, self.sub.start(now, start))
        return self._ask(now)

    def _cached_addresses(
        self, name: dns.name.Name, rdtype: int, now: float
    ) -> tuple[list[Server], int] | None:
        """A fresh cached answer for (name, rdtype): its servers (none if negative), else None."""
        if self.cache is None:
            return None
        hit = self.cache.get(cache_key(name, rdtype, self.rdclass), now)
        if hit is None or hit.freshness is not Freshness.FRESH:
            return None
        servers, _ = _addresses(dns.message.from_wire(hit.entry.wire), rdtype, self._port())
        return servers, hit.entry.remaining(now)

    def _after_sub(self, now: float, sends: list[Send]) -> list[Send]:
        """Pass on the sub-resolution's sends; once it is over, carry on with what it found."""
        sub = self.sub
        assert sub is not None
        if sub.done is None:
            return sends
        self.sub = None
        self.dropped_out_of_bailiwick += sub.dropped_out_of_bailiwick
        name, rdtype = sub.qname, sub.rdtype
        if isinstance(sub.done, Failure):
            what = f"NS {name} {dns.rdatatype.to_text(rdtype)}"
            if sub.done.reason == sub.logged_cause:
                self._note(f"{what} failed for the same reason")
            else:
                self._note(f"{what} failed: {sub.done.reason}")
            self.logged_cause = sub.done.reason
            self.cause = self.cause or sub.done.reason
            if self.budget.exhausted:
                return self._finish(Failure(sub.done.reason))
            # The way to this name is broken: its AAAA would take the same way.
            self._drop_targets(name)
            return self._ask(now)
        response = sub.done.response
        if self.cache is not None:
            # Learned like any answer: its own TTLs, negative answers by RFC 2308.
            self.cache.put(cache_key(name, rdtype, self.rdclass), response, now)
        servers, ttl = _addresses(response, rdtype, self._port())
        if not servers:
            self.cause = self.cause or f"NS {name} has no address"
            return self._ask(now)
        return self._use(now, name, servers, ttl, "resolved")

    def _use(
        self, now: float, name: dns.name.Name, servers: list[Server], ttl: int, how: str
    ) -> list[Send]:
        """Add a resolved NS name's servers to the delegation and ask them."""
        assert self.delegation is not None
        self._drop_targets(name)
        d = self.delegation
        new = tuple(s for s in servers if s not in d.servers)
        self.delegation = Delegation(
            d.zone, d.servers + new, min(d.ttl, ttl),
            tuple(n for n in d.glueless if n != name),
        )
        self._learn(self.delegation, now)
        self._note(
            f"NS {name} of {d.zone} is {', '.join(s.host for s in servers)} ({how}, ttl {ttl})"
        )
        return self._ask(now)

    # ---- responses and timers ----------------------------------------------------------

    def on_timer(self, now: float) -> list[Send]:
        if self.done is not None:
            return []
        if self.sub is not None:
            return self._after_sub(now, self.sub.on_timer(now))
        expired = [s for s in self.outstanding if now >= s.sent_at + self.timeout]
        for s in expired:
            self.outstanding.remove(s)
            self._note(f"timeout from {s.server}")
        if expired and not self.outstanding:
            self.server_index += 1
            return self._ask(now)
        return []

    def on_response(self, now: float, send: Send, wire: bytes, source: Server) -> list[Send]:
        if self.sub is not None:
            if self.done is not None:
                return []
            return self._after_sub(now, self.sub.on_response(now, send, wire, source))
        checked, instead = self._screen(now, send, wire, source)
        if checked is None:
            return instead
        assert self.delegation is not None and self.current is not None
        zone = self.delegation.zone
        rcode = checked.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            self._note(f"{dns.rcode.to_text(rcode)} from {send.server} for {zone}")
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
        glueless: list[dns.name.Name] = []
        for rd in ns[0]:
            target = rd.target
            found: list[Server] = []
            # Glue is only believed for names inside the zone that sent it (RFC 9471 §2.1);
            # a name outside it is looked up like any other name instead (RFC 1034 §5.3.3).
            if target.is_subdomain(zone):
                for r in checked.additional:
                    # Glue of another class is another question's data (and CH A is no address).
                    if (r.name == target and r.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
                            and r.rdclass == self.rdclass):
                        found += [Server(a.address, send.server.port) for a in r]
            glue += found
            if not found and target not in glueless:
                glueless.append(target)
        self.referrals += 1
        if self.referrals > MAX_REFERRALS:
            return self._finish(Failure("too many referrals"))
        if not glue and child in self.path[0::2]:
            # An enclosing resolution is already looking for this zone's servers, and this
            # referral names them only by names that need it again: no answer can come.
            return self._finish(Failure(
                f"dependency loop: {_path_text(self.path + (child,))} (no glue anywhere)"
            ))
        delegation = Delegation(child, tuple(sorted(set(glue))), ns[0].ttl, tuple(glueless))
        if glue:
            self._learn(delegation, now)
        self._note(
            f"referral {zone} -> {child} via {send.server}"
            + (f", {len(glueless)} NS without glue" if glueless else "")
        )
        return self._enter(now, delegation)

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
        # The chain leaves this zone: restart for the target from the closest known delegation
        # (RFC 1034 §5.3.3 steps 2 and 4).
        self.restarts += 1
        if self.restarts > MAX_CNAME_RESTARTS:
            return self._finish(Failure("CNAME chain too long"))
        self.current = name
        assert self.hints is not None
        known = self.delegations.closest(name, now) if self.delegations is not None else None
        return self._enter(now, known or self.hints)

    def _assemble(self, clean: dns.message.Message) -> dns.message.Message:
        out = dns.message.Message(id=0)
        out.flags = dns.flags.QR | dns.flags.RA
        out.set_rcode(clean.rcode())
        out.question = [dns.message.make_query(self.qname, self.rdtype, self.rdclass).question[0]]
        out.answer = list(self.chain)
        out.authority = [r for r in clean.authority if r.rdtype == dns.rdatatype.SOA]
        return out


def _path_text(path: tuple[dns.name.Name, ...]) -> str:
    return " -> ".join(str(n) for n in path)
