"""The resolver's cache policy (pure core): what is cached, for how long, and what is evicted.

Everything here is a function of (cache state, `now`, response). There is no clock: the caller
passes `now` (seconds, any monotonic origin), so tests drive time with trio's MockClock or plain
numbers. No sockets, no trio, no time module.

Theory of operation:
- `prepare()` turns a validated, scrubbed upstream response into an `Entry`: a precomputed wire
  answer (ID 0, no OPT) plus the offset of every TTL field, so a hit is served by copying bytes
  and patching ID, flags, question and TTLs (`render()`), never by re-encoding a message.
- `Cache` holds entries in LRU order, bounded by entry count and bytes, and remembers recent
  resolution failures (RFC 9520) in a second, smaller bounded map.
- Expired entries are kept for `max_stale` seconds only when serve-stale is on (RFC 8767); they
  are served only when the caller says upstream resolution failed.
"""

from __future__ import annotations

import enum
import struct
from collections import OrderedDict
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from resolver.wire import HEADER, QueryView, ede_option, opt_record, ttl_offsets

# RFC 8914 §4.4: EDE 3 "Stale Answer".
EDE_STALE_ANSWER = 3
# Our advertised EDNS UDP payload: the DNS Flag Day 2020 value, avoids IP fragmentation.
OUR_UDP_SIZE = 1232
# Bookkeeping bytes per entry on top of the wire (dict slot, Entry object, key, lists).
ENTRY_OVERHEAD = 256
# Type 0 is reserved (RFC 6895 §3.1), so it can never collide with a real qtype: it marks the
# per-name NXDOMAIN index of RFC 2308 §5.
NXDOMAIN_TYPE = b"\x00\x00"


class Kind(enum.Enum):
    POSITIVE = "positive"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"


class Freshness(enum.Enum):
    FRESH = "fresh"
    STALE = "stale"


@dataclass(frozen=True)
class CachePolicy:
    """Operator knobs. Defaults follow Unbound's where the RFCs leave a choice.

    min_ttl / max_ttl clamp positive answers (Unbound cache-min-ttl / cache-max-ttl).
    max_negative_ttl caps RFC 2308 negative TTLs (Unbound cache-max-negative-ttl, 3600;
    RFC 2308 §5 suggests one to three hours).
    serve_stale / max_stale / stale_ttl: RFC 8767 §4 and §5 (stale TTL 30 s recommended;
    max stale 1–3 days recommended, we default to one day).
    failure_ttl / max_failure_ttl: RFC 9520 §3.2: cache a failure at least 1 s, back off
    exponentially for repeated failures, never longer than 5 minutes.
    """

    min_ttl: int = 0
    max_ttl: int = 86400
    max_negative_ttl: int = 3600
    serve_stale: bool = False
    max_stale: int = 86400
    stale_ttl: int = 30
    # RFC 8767 §5 suggests 1.8 s: how long a client waits for fresh data before stale is served.
    stale_client_timeout: float = 1.8
    failure_ttl: float = 1.0
    max_failure_ttl: float = 30.0
    max_entries: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    max_failures: int = 10_000
    # A host cache (stub) that ignores DNS TTLs, like the JVM's InetAddress cache: every
    # positive answer lives `fixed_ttl` s, every negative one `fixed_negative_ttl` s, SOA or not.
    fixed_ttl: int | None = None
    fixed_negative_ttl: int | None = None
    # Unbound keeps time in whole seconds and treats an entry as live while its absolute expiry
    # second has not passed (TTL 0 is still served), so an entry lives between TTL and TTL+1 s.
    # On: we do the same, to match Unbound in experiments (`--preset unbound`).
    whole_second_clock: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_ttl <= self.max_ttl:
            raise ValueError(f"need 0 <= min_ttl <= max_ttl, got {self.min_ttl}, {self.max_ttl}")
        if self.max_negative_ttl < 0 or self.max_stale < 0 or self.stale_ttl < 0:
            raise ValueError("negative TTL cap, max stale and stale TTL must be >= 0")
        if not 0 < self.failure_ttl <= self.max_failure_ttl <= 300:
            # RFC 9520 §3.2: at least one second... "MUST NOT cache for longer than 5 minutes".
            raise ValueError("need 0 < failure_ttl <= max_failure_ttl <= 300")
        if self.max_entries < 1 or self.max_bytes < 1:
            raise ValueError("cache bounds must be positive")


@dataclass(frozen=True)
class NotCacheable:
    """Why a response was not stored (logged, counted)."""

    reason: str


@dataclass(slots=True)
class Entry:
    """One cached answer: precomputed wire (ID 0, no OPT) plus its TTL fields."""

    kind: Kind
    wire: bytes
    offsets: list[int]
    ttls: list[int]
    stored_at: float
    ttl: int
    rcode: int
    size: int = 0
    expires_at: float = 0.0
    # Fast-path memo: TTLs change once a second, so the body (ID 0, question as stored) is
    # rendered once per (second of age, EDNS or not) and reused for every hit in that second.
    memo_age: int = -1
    memo_plain: bytes = b""
    memo_edns: bytes = b""

    def remaining(self, now: float) -> int:
        return max(0, int(self.stored_at + self.ttl - now))


@dataclass(frozen=True)
class Hit:
    entry: Entry
    freshness: Freshness


@dataclass
class FailureState:
    """RFC 9520 §3: a remembered resolution failure and its backoff."""

    until: float
    count: int
    rcode: int


@dataclass
class CacheStats:
    hits: int = 0
    negative_hits: int = 0  # of `hits`: NXDOMAIN or NODATA served from cache (RFC 2308)
    stale_hits: int = 0
    misses: int = 0
    inserts: int = 0
    evictions: int = 0
    expired: int = 0
    not_cacheable: int = 0
    failure_hits: int = 0


def cache_key(qname: dns.name.Name, rdtype: int, rdclass: int = dns.rdataclass.IN) -> bytes:
    """The key the fast path computes from wire bytes (see `wire.QueryView.key`)."""
    return qname.canonicalize().to_wire() + struct.pack("!HH", rdtype, rdclass)


def nxdomain_key(key: bytes) -> bytes:
    """RFC 2308 §5: an NXDOMAIN answers every type at that name, so it has a per-name key."""
    return key[:-4] + NXDOMAIN_TYPE + key[-2:]


def _ttl(value: int) -> int:
    # RFC 2181 §8: a TTL with the most significant bit set is treated as zero.
    return 0 if value >= 2**31 else value


def negative_ttl(soa: dns.rrset.RRset) -> int:
    """RFC 2308 §5: the negative TTL is min(SOA TTL, SOA MINIMUM)."""
    return min(_ttl(soa.ttl), _ttl(soa[0].minimum))


def _follow_chain(
    response: dns.message.Message, qname: dns.name.Name, rdtype: int, rdclass: int
) -> tuple[list[dns.rrset.RRset], dns.name.Name, bool]:
    """The answer RRsets that form the CNAME chain from qname (RFC 1034 §3.6.2, §4.3.2).

    Returns (rrsets in chain order, the final name, whether the final name had `rdtype`).
    Anything in the answer section that is not on the chain is left out (it was not asked for).
    """
    def find(name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        # Not Message.get_rrset: its index misses RRsets appended to the section lists.
        for r in response.answer:
            if r.rdtype == rdtype and r.rdclass == rdclass and r.name == name:
                return r
        return None

    chain: list[dns.rrset.RRset] = []
    name = qname
    for _ in range(16):  # a longer chain is a loop or abuse; stop following
        found = find(name, rdtype)
        if found is not None:
            chain.append(found)
            return chain, name, True
        if rdtype == dns.rdatatype.CNAME:
            break
        cname = find(name, dns.rdatatype.CNAME)
        if cname is None:
            break
        chain.append(cname)
        name = cname[0].target
    return chain, name, False


def prepare(
    response: dns.message.Message, policy: CachePolicy, now: float
) -> Entry | NotCacheable:
    """Turn a validated upstream response into a cache entry, or say why not.

    The response must already have passed the resolution's checks (ID, question, server,
    bailiwick); this function decides only policy: what kind of answer it is and its TTL.
    """
    if response.flags & dns.flags.TC:
        return NotCacheable("truncated")  # RFC 2181 §9: never cache a truncated answer
    if len(response.question) != 1:
        return NotCacheable("no single question")
    q = response.question[0]
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return NotCacheable(f"rcode {dns.rcode.to_text(rcode)}")
    chain, final, has_data = _follow_chain(response, q.name, q.rdtype, q.rdclass)
    chain_ttl = min((_ttl(r.ttl) for r in chain), default=None)
    authority: list[dns.rrset.RRset] = []
    if has_data and rcode == dns.rcode.NOERROR:
        kind = Kind.POSITIVE
        assert chain_ttl is not None
        ttl = min(max(chain_ttl, policy.min_ttl), policy.max_ttl)
        if policy.fixed_ttl is not None:
            ttl = policy.fixed_ttl
    else:
        kind = Kind.NXDOMAIN if rcode == dns.rcode.NXDOMAIN else Kind.NODATA
        # RFC 2308 §5: the SOA must be of the zone that holds the final name.
        soa = next(
            (
                r
                for r in response.authority
                if r.rdtype == dns.rdatatype.SOA and final.is_subdomain(r.name)
            ),
            None,
        )
        if policy.fixed_negative_ttl is not None:
            ttl = policy.fixed_negative_ttl
            authority = []
            if soa is not None:
                authority = [dns.rrset.from_rdata_list(soa.name, ttl, list(soa))]
        elif soa is None:
            # RFC 2308 §5: "Negative responses without SOA records SHOULD NOT be cached".
            return NotCacheable(f"{kind.value} without SOA")
        else:
            ttl = min(negative_ttl(soa), policy.max_negative_ttl)
            if chain_ttl is not None:
                ttl = min(ttl, chain_ttl)
            # RFC 2308 §5: the SOA is served with the negative TTL, decremented like any answer.
            authority = [dns.rrset.from_rdata_list(soa.name, ttl, list(soa))]
    if ttl <= 0:
        return NotCacheable("TTL 0")  # RFC 1035 §3.2.1: zero TTL means use once, don't cache
    stored = dns.message.Message(id=0)
    stored.flags = dns.flags.QR | dns.flags.RA
    stored.set_rcode(rcode)
    stored.question = [q]
    # Each RRset keeps its own TTL, but never longer than the entry lives, so a served TTL
    # never promises more than the cache will honour.
    stored.answer = [dns.rrset.from_rdata_list(r.name, min(_ttl(r.ttl), ttl), list(r)) for r in chain]
    stored.authority = authority
    wire = stored.to_wire()
    offsets, ttls = ttl_offsets(wire)
    expires = float(int(now) + ttl + 1) if policy.whole_second_clock else now + ttl
    return Entry(kind, wire, offsets, ttls, now, ttl, rcode, len(wire) + ENTRY_OVERHEAD, expires)


_OPT_PLAIN = opt_record(OUR_UDP_SIZE)


def _ttl_age(elapsed: float) -> int:
    # Served TTL = int(TTL - elapsed): whole seconds, never more than truly remains.
    age = int(elapsed)
    return age + 1 if age < elapsed else age


def _body(entry: Entry, age: int) -> bytes:
    buf = bytearray(entry.wire)
    pack = struct.pack_into
    for off, ttl in zip(entry.offsets, entry.ttls, strict=True):
        left = ttl - age
        pack("!I", buf, off, left if left > 0 else 0)
    return bytes(buf)


def render_hit(
    entry: Entry, head: bytes, question: bytes, edns: bool, now: float, max_size: int
) -> bytes | None:
    """The fast path of `render` for a fresh hit: memoised body, ID and flags patched.

    `head` is the query's first four bytes (ID, flags); `question` its question section.
    Returns None when the answer would need truncation (the caller takes `render`).
    """
    age = _ttl_age(now - entry.stored_at)
    if entry.memo_age != age:
        plain = _body(entry, age)
        entry.memo_plain = plain
        edns_body = bytearray(plain)
        edns_body[11] += 1  # ARCOUNT: our OPT (stored entries have no additional records)
        entry.memo_edns = bytes(edns_body) + _OPT_PLAIN
        entry.memo_age = age
    body = entry.memo_edns if edns else entry.memo_plain
    if len(body) > max_size:
        return None
    # Flags: QR, RA, our rcode; RD and CD echo the query (RFC 1035 §4.1.1, RFC 4035 §3.2.2).
    flags = 0x8080 | (((head[2] << 8) | head[3]) & 0x0110) | entry.rcode
    qend = 12 + len(question)
    if body[12:qend] == question:
        return head[:2] + flags.to_bytes(2, "big") + body[4:]
    return head[:2] + flags.to_bytes(2, "big") + body[4:12] + question + body[qend:]


def render(
    entry: Entry,
    query: QueryView,
    now: float,
    *,
    stale_ttl: int | None = None,
    max_size: int | None = None,
) -> bytes:
    """The answer to `query` from `entry` at time `now`, as wire bytes.

    TTLs count down from when the entry was stored (RFC 1035 §3.2.1; RFC 2308 §5 for the SOA
    of a negative answer). With `stale_ttl` the answer is served stale: every TTL is
    `stale_ttl` and an EDE 3 option says so (RFC 8767 §4, RFC 8914 §4.4). With `max_size`
    (UDP) an answer that does not fit is replaced by a truncated one (RFC 2181 §9).
    """
    buf = bytearray(entry.wire)
    elapsed = now - entry.stored_at
    pack = struct.pack_into
    if stale_ttl is not None:
        for off in entry.offsets:
            pack("!I", buf, off, stale_ttl)
    else:
        for off, ttl in zip(entry.offsets, entry.ttls, strict=True):
            left = int(ttl - elapsed)
            pack("!I", buf, off, left if left > 0 else 0)
    # Flags: QR, RA, our rcode; RD and CD echo the query (RFC 1035 §4.1.1, RFC 4035 §3.2.2).
    flags = 0x8080 | (query.flags & 0x0110) | entry.rcode
    struct.pack_into("!HH", buf, 0, query.qid, flags)
    qlen = len(query.question)
    buf[12 : 12 + qlen] = query.question
    if query.edns:
        opts = ede_option(EDE_STALE_ANSWER) if stale_ttl is not None else b""
        buf += opt_record(OUR_UDP_SIZE, opts)
        buf[11] += 1  # ARCOUNT (stored entries have no additional records)
    if max_size is not None and len(buf) > max_size:
        head = bytearray(HEADER.pack(query.qid, flags | 0x0200, 1, 0, 0, 1 if query.edns else 0))
        head += query.question
        if query.edns:
            head += opt_record(OUR_UDP_SIZE)
        return bytes(head)
    return bytes(buf)


@dataclass
class Cache:
    """LRU cache of entries bounded by count and bytes, plus RFC 9520 failure memory."""

    policy: CachePolicy
    entries: OrderedDict[bytes, Entry] = field(default_factory=OrderedDict)
    failures: OrderedDict[bytes, FailureState] = field(default_factory=OrderedDict)
    bytes_used: int = 0
    stats: CacheStats = field(default_factory=CacheStats)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: bytes, now: float) -> Hit | None:
        """A fresh entry, or (if serve-stale is on) a stale one, else None.

        A STALE hit must only be served when upstream resolution has failed (RFC 8767 §4);
        the caller decides that.
        """
        entry = self._get_one(key, now)
        if entry is None:
            entry = self._get_one(nxdomain_key(key), now)
        if entry is None:
            self.stats.misses += 1
            return None
        if now < entry.expires_at:
            self.stats.hits += 1
            if entry.kind is not Kind.POSITIVE:
                self.stats.negative_hits += 1
            return Hit(entry, Freshness.FRESH)
        return Hit(entry, Freshness.STALE)

    def get_fresh(self, key: bytes, now: float) -> Entry | None:
        """The fast path's lookup: a fresh entry under exactly `key`, marked recently used."""
        entry = self.entries.get(key)
        if entry is None or now >= entry.expires_at:
            return None
        self.entries.move_to_end(key)
        self.stats.hits += 1
        return entry

    def _get_one(self, key: bytes, now: float) -> Entry | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        limit = entry.expires_at + (self.policy.max_stale if self.policy.serve_stale else 0)
        if now >= limit:
            self._drop(key)
            self.stats.expired += 1
            return None
        self.entries.move_to_end(key)
        return entry

    def put(self, key: bytes, response: dns.message.Message, now: float) -> Entry | NotCacheable:
        """Store `response` for `key` (the question it answers). Clears any failure memory."""
        self.failures.pop(key, None)
        prepared = prepare(response, self.policy, now)
        if isinstance(prepared, NotCacheable):
            self.stats.not_cacheable += 1
            return prepared
        self._insert(key, prepared)
        if prepared.kind is Kind.NXDOMAIN and prepared.wire[6:8] == b"\x00\x00":
            # Only a plain NXDOMAIN (no CNAME chain in front) is about qname itself.
            self._insert(nxdomain_key(key), prepared)
        return prepared

    def _insert(self, key: bytes, entry: Entry) -> None:
        if key in self.entries:
            self._drop(key)
        self.entries[key] = entry
        self.bytes_used += entry.size
        self.stats.inserts += 1
        while len(self.entries) > self.policy.max_entries or (
            self.bytes_used > self.policy.max_bytes and len(self.entries) > 1
        ):
            old_key = next(iter(self.entries))
            self._drop(old_key)
            self.stats.evictions += 1

    def _drop(self, key: bytes) -> None:
        entry = self.entries.pop(key)
        self.bytes_used -= entry.size

    def note_failure(self, key: bytes, now: float, rcode: int = dns.rcode.SERVFAIL) -> float:
        """Remember that resolving `key` failed; returns how long it is remembered.

        RFC 9520 §3.2: at least 1 s, exponential backoff on repeats, at most 5 minutes.
        """
        prev = self.failures.pop(key, None)
        count = prev.count + 1 if prev is not None else 1
        hold = min(self.policy.failure_ttl * 2 ** (count - 1), self.policy.max_failure_ttl)
        self.failures[key] = FailureState(now + hold, count, rcode)
        while len(self.failures) > self.policy.max_failures:
            self.failures.popitem(last=False)
        return hold

    def get_failure(self, key: bytes, now: float) -> FailureState | None:
        """The remembered failure for `key` if it still holds (RFC 9520 §3.1), else None."""
        state = self.failures.get(key)
        if state is None:
            return None
        if now >= state.until:
            # Keep the count for backoff, but the hold is over: the next query may try again.
            return None
        self.stats.failure_hits += 1
        return state

    def flush(self) -> None:
        self.entries.clear()
        self.failures.clear()
        self.bytes_used = 0
