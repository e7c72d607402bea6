"""Prometheus metrics for authd, at `/metrics` on the change API's port.

Counting is kept off the DNS fast path's budget: the UDP and TCP loops only add one to a
plain dict per query, keyed by bytes they already hold (None when metrics are off):
- an exact-table hit (UDP): `ServingIndex.query_counts[query_after_id]`; the table keeps that
  query's answer until the counts are held (`QueryTally.hold`, right before the index applies
  a change), which reads the reply's rcode and answer count there, a dict lookup;
- any other query: `ServingIndex.reply_counts[query_after_id + status]`, the status being the
  reply's flags and ANCOUNT octets (`UNANSWERED` when nothing was sent), so the fold never
  answers a query again (a flood of random names cost ~10 us per query when it did);
- or, for a reply that is not NOERROR to a question the loop read itself, only
  `ServingIndex.type_counts[QTYPE << 5 | rcode]`: no name, one key per type and rcode;
- or, for a reply the C UDP loop sends itself (`authd.dns._fastudp`: an exact-table hit, an
  owner's own plain RRset, a spliced template) to a question it read itself, `Census`: one
  counter per (QTYPE slot, rcode) in a preallocated array, and for NOERROR with records the
  (name, type) pair into a set, which the fold merges into `Remembered` in bulk (C speed):
  no key per query to hold, nor to classify once a second (~1-2 us per distinct query).
`QueryTally.fold` turns those counts into (type, rcode) totals once a second and at every
scrape; before the index applies a change they are only held (copied, pinned to the replies
sent), so every query is classified by the answer it actually got and a change batch does
not wait for the classifying. A custom collector exports the totals; no prometheus_client
object is touched per query.

Bounded under floods of random names (issue 12; issue 10's soak asks RSS to stay flat). The
fold reads the common query shape in place, a (name, type) pair being the question's octets
with the name lower-cased (about 1 us per distinct random existing name, 0.4-0.6 us per
random NXDOMAIN: `python -m bench._fold`), and keeps:
- the pairs answered with records in `Remembered`: at most `HAD_RECORDS_CAP` of them, the
  oldest half forgotten when full. A pair answered with records at least once per
  `HAD_RECORDS_CAP // 2` other distinct answered pairs is never forgotten, so a name that
  goes empty right after having records (the stable alias, asked all the time) is counted;
  what is lost at the cap is a pair answered once, then not while 65,536 others got answers
  (a flood of random existing or wildcard names), going empty after: not counted as empty.
- `authd_dns_empty_answers_total` series for at most `EMPTY_SERIES` names (the first to go
  empty); the answers of later names are counted under the name `(other)`, so the total is
  exact and a mass of names going empty does not make a series each;
- (type, rcode) totals: past `TOTALS_CAP` of them, types without a mnemonic (`TYPEnnn`) are
  counted as type `OTHER`, so a flood of random QTYPEs makes no series each;
- a few thousand unusual query shapes (cookies, odd octets) classified by dnspython;
- `Census.pairs` (per held generation, until folded): the distinct (name, type) pairs
  answered with records, which the zones bound (a flood of random missing names makes
  none; its counts are the census's fixed 256 counters).

Exported (names follow the Prometheus conventions: `_total` counters, base units):
- `authd_dns_queries_total{type,rcode}`;
- `authd_dns_empty_answers_total{name,type}`: NOERROR with zero answer records for a name
  and type that had records before (the October 2025 symptom);
- `authd_changes_total{result}` (accepted, or the Route 53 error code of a rejected batch);
- `authd_journal_position` (the newest journal entry seen) and, per serving node,
  `authd_node_applied_position{node}`, `authd_node_lag_entries{node}` (entries not yet
  applied: what keeps GetChange PENDING) and `authd_node_propagation_delay_seconds{node}`.
"""

from __future__ import annotations

import functools
import itertools
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

# Octets a label may hold for the fast path: dnspython prints them as they are (no escapes).
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_QD1 = b"\x00\x01\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0
_PLAIN_OPT = b"\x00\x00\x29"  # an OPT RR at the root (RFC 6891 §6.1.2)
_QD1_AR0 = _QD1 + b"\x00\x00"  # ... and ARCOUNT 0
_QD1_AR1 = _QD1 + b"\x00\x01"  # ... and ARCOUNT 1


# the status octets of a query nothing was sent for (flags 0xFFFF would be opcode 15)
UNANSWERED = b"\xff\xff\xff\xff"
MAX_HELD = 256  # changes applied between two folds whose counts are held (`QueryTally.hold`)


def status_of(reply: bytes | None) -> bytes:
    """What the server loops append to a query's bytes: the reply's flags and ANCOUNT
    (RFC 1035 §4.1.1), or `UNANSWERED`."""
    return reply[2:4] + reply[6:8] if reply else UNANSWERED


def classify_query(key: bytes) -> tuple[str, str]:
    """(qname, qtype text) of a query given as its wire bytes after the ID.

    Every distinct query is classified once per fold, so a flood of random names pays this
    per query: the common shape (opcode QUERY, one question of plain labels, no additional
    records or one OPT without options) is read here in about a microsecond; anything else
    goes to dnspython, which the fast path agrees with (tests/test_metrics.py)."""
    fast = _classify_fast(key)
    return fast if fast is not None else _classify_dnspython(key)


def _classify_fast(key: bytes) -> tuple[str, str] | None:
    n = len(key)
    if n < 15 or key[0] & 0x78 or key[2:8] != _QD1:  # opcode QUERY (RFC 1035 §4.1.1)
        return None
    i = 10
    labels = []
    while True:
        length = key[i]
        if not length:
            break
        label = key[i + 1:i + 1 + length]
        if length > 63 or len(label) != length or not _PLAIN.issuperset(label):
            return None
        labels.append(label)
        i += length + 1
        if i >= n or i - 10 > 254:  # at most 255 octets with the root (RFC 1035 §2.3.4)
            return None
    end = i + 5
    arcount = key[8:10]
    if arcount == b"\x00\x00":
        if end != n:
            return None
    elif arcount != b"\x00\x01" or n != end + 11 or key[end:end + 3] != _PLAIN_OPT \
            or key[end + 9:end + 11] != b"\x00\x00":
        return None
    name = (b".".join(labels).lower() + b".").decode() if labels else "."
    return name, _type_text(key[i + 1] << 8 | key[i + 2])


_RCODES = tuple(dns.rcode.to_text(i) for i in range(16))  # the header's four bits


@functools.lru_cache(maxsize=1024)
def _type_text(rdtype: int) -> str:
    return dns.rdatatype.to_text(rdtype)


def _classify_dnspython(key: bytes) -> tuple[str, str]:
    try:
        msg = dns.message.from_wire(b"\0\0" + key)
        q = msg.question[0]
        return q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)
    except (dns.exception.DNSException, IndexError, ValueError):
        return "", "MALFORMED"


HAD_RECORDS_CAP = 131_072  # (name, type) pairs remembered as having had records: 2 halves
EMPTY_SERIES = 1_000  # names with an `authd_dns_empty_answers_total` series of their own
OTHER = "(other)"  # the name label of the empty answers past EMPTY_SERIES (not a DNS name)
_SLOW_CACHE = 4_096  # unusual query shapes classified by dnspython, kept across folds
_MALFORMED = 1 << 16  # the QTYPE slot of a query dnspython does not read
_OTHER_TYPE = _MALFORMED + 1  # the QTYPE slot "OTHER": types without a mnemonic, past a bound
TOTALS_CAP = 1_024  # (type, rcode) totals before types without a mnemonic become "OTHER"
_DROPPED = 16  # the rcode slot of an unanswered query (rcodes are the header's four bits)
_ZEROS = array("Q", bytes(8 * 16 * 16))  # a cleared `Census.counts`
_PAIR_COST = 8  # census pairs merged (`Remembered.update`) in the time of one count classified
_NO_PAIRS: frozenset[bytes] = frozenset()  # a generation without census pairs


# The QTYPEs the C loop counts in `Census` slots (at most 16, `_fastudp.c`'s CENSUS_TYPES):
# the common ones the compiled path answers (`compiled.NOT_COMPILED` never reach it). A reply
# to any other QTYPE is counted by query as before.
CENSUS_TYPES = (1, 28, 5, 15, 16, 2, 6, 12, 33, 65, 64, 257, 35, 13, 39, 99)
CENSUS_RCODES = 16  # the header's four bits (RFC 1035 §4.1.1)


class Census:
    """What the C UDP loop counts itself, with no Python code per query: `counts[slot * 16 +
    rcode]` replies of QTYPE `CENSUS_TYPES[slot]`, and `pairs`, the (name, type) pairs
    answered NOERROR with records (the name's wire octets lowered, then QTYPE: `_count`'s
    pair). A reply NOERROR with no records is not counted here: its empty-answer check needs
    the name, so the loop counts it by query. `QueryTally.hold` folds the counters into the
    totals and takes the set (a new one in its place: the loop reads `pairs` per drain)."""

    def __init__(self) -> None:
        self.types = CENSUS_TYPES
        self.counts = array("Q", bytes(8 * 16 * CENSUS_RCODES))  # (C writes 16 slots)
        self.pairs: set[bytes] = set()

    def arg(self) -> tuple[tuple[int, ...], array, set[bytes]]:
        """The `census` argument of `_fastudp.drain`."""
        return self.types, self.counts, self.pairs


class Remembered:
    """A set that forgets its oldest half when full: the (name, type) pairs answered with
    records, for `authd_dns_empty_answers_total` (pure, no clock).

    Two generations of at most `cap // 2` keys each: keys go into the young one; when it is
    full it becomes the old one and the previous old one is dropped. A key found only in the
    old one is added to the young one again (`add` returns True then), so a pair answered
    with records at least once per `cap // 2` other distinct pairs is never forgotten, and
    one that goes empty right after having records (within `cap // 2` distinct answered
    pairs) is still counted. What is lost at the cap: a pair answered with records once,
    then not again while more than `cap // 2` other pairs got answers (a flood of random
    existing or wildcard names), whose answers then go empty, is not counted as empty.
    Memory: at most `cap` keys of a few tens of octets (about 100 B each with the set)."""

    def __init__(self, cap: int = HAD_RECORDS_CAP):
        self.half = max(1, cap // 2)
        self.young: set[bytes] = set()
        self.old: set[bytes] = set()

    def add(self, key: bytes) -> None:
        young = self.young
        if key in young:
            return
        young.add(key)
        if len(young) >= self.half:
            self.old = young
            self.young = set()

    def update(self, keys: Iterator[bytes], n: int) -> None:
        """`add` the next `n` keys of `keys` (fewer when it ends), in their order, in set
        operations (C speed, no bytecode per key): the young generation takes at most its
        room per step, so it turns old exactly where adding them one by one would."""
        while n > 0:
            young = self.young
            room = min(n, self.half - len(young))
            young.update(itertools.islice(keys, room))
            n -= room
            if len(young) >= self.half:
                self.old = young
                self.young = set()

    def __contains__(self, key: object) -> bool:
        return key in self.young or key in self.old

    def __len__(self) -> int:
        return len(self.young) + len(self.old)


def _question_slow(query: bytes, rcode: int) -> tuple[bytes | None, int]:
    """(the lower-cased question name's wire form with QTYPE, QTYPE) of a query of an
    unusual shape; QTYPE `_MALFORMED` for one dnspython does not read. A query answered
    FORMERR or not at all may not be readable: it is typed as `classify_query` types it."""
    if rcode == 1 or rcode == _DROPPED:
        text = classify_query(query)[1]
        return None, _MALFORMED if text == "MALFORMED" else int(dns.rdatatype.from_text(text))
    try:
        q = dns.message.from_wire(b"\0\0" + query).question[0]
    except (dns.exception.DNSException, IndexError, ValueError):
        return None, _MALFORMED
    # RFC 4343 §3: names compare without ASCII case, as `bytes.lower` of the wire form does
    return q.name.canonicalize().to_wire() + q.rdtype.to_bytes(2, "big"), int(q.rdtype)


class QueryTally:
    """Folds the hot path's per-query counts into totals by type and rcode."""

    def __init__(self, index: Any, had_records_cap: int = HAD_RECORDS_CAP):
        self.index = index
        # (QTYPE << 5 | rcode) -> queries; `by_type_rcode` names them (an int per key: the
        # fold adds to it per distinct query, so no tuple nor text is made there)
        self._totals: dict[int, int] = {}
        self.empty: Counter[tuple[str, str]] = Counter()
        self.had_records = Remembered(had_records_cap)
        self._named: set[str] = set()  # names with an empty-answer series of their own
        self._slow: dict[bytes, tuple[bytes | None, int]] = {}
        index.query_counts = {}
        index.reply_counts = {}
        # (QTYPE << 5 | rcode) -> replies, for a loop that read the question itself and sent
        # a reply that is not NOERROR: no name is needed then (only NOERROR can be an empty
        # answer or had records), so a flood of random NXDOMAIN names can be counted in a
        # few keys instead of one per query, and folded as it is held (`hold`)
        index.type_counts = {}
        # what the C UDP loop counts itself (`Census`), folded as it is held
        index.census = self.census = Census()
        # What was counted before each change the index applied, held in order until the
        # next fold: (query + status octets, how often), as two lists, and the census's
        # pairs answered with records (`hold`)
        self._held: list[tuple[list[bytes], list[int], set[bytes] | frozenset[bytes]]] = []
        self._at = 0  # counts of the oldest held generation folded already (`fold(limit)`)
        self._pairs: Iterator[bytes] | None = None  # the oldest generation's pairs, merging
        self._merged = 0  # ... how many of them are merged already
        apply = index.apply

        def apply_after_hold(entry: Any, built: Any = None) -> bool:
            self.hold()  # what was asked keeps the answers it got
            return bool(apply(entry, built))  # built: a snapshot's prebuilt zone (replica.py)

        index.apply = apply_after_hold

    @property
    def by_type_rcode(self) -> Counter[tuple[str, str]]:
        """Queries by (type text, rcode text), "DROPPED" for those nothing was sent for."""
        out: Counter[tuple[str, str]] = Counter()
        for code, n in self._totals.items():
            qtype, rcode = code >> 5, code & 31
            text = "MALFORMED" if qtype == _MALFORMED else "OTHER" if qtype == _OTHER_TYPE \
                else _type_text(qtype)
            out[(text, "DROPPED" if rcode == _DROPPED else _RCODES[rcode])] += n
        return out
    def hold(self) -> None:
        """Pin what the loops counted to the replies they sent, before the index changes.

        Only an exact-table hit needs the index (its reply is in the table, which a change
        empties); a reply count already carries its status octets. So this is a copy of the
        counts, not a fold: a change batch's apply is not made to wait for classifying
        thousands of distinct queries (5,000 random names held ~15 ms of each batch's
        INSYNC; issue 12). The next `fold` (once a second, at a scrape) classifies them, in
        the order they were held, so its totals are what folding here would have given.

        Held as two lists, the keys (query + status) and their counts, not as (key, count)
        tuples: a flood of random names held 100,000 tuples a second, each one tracked by
        the cyclic collector, which the node's young collection then walked while the round
        was folded (4-36 ms a tick under `bench._scale_qps`'s random names, collecting
        nothing); bytes and ints are not tracked."""
        types: dict[int, int] = self.index.type_counts
        census = self.census
        tallied = census.counts
        if types or any(tallied):  # nothing to classify nor to pin: straight into the totals
            totals = self._totals
            for code, n in types.items():
                totals[code] = totals.get(code, 0) + n
            types.clear()  # in place: the server loops hold this dict
            if any(tallied):
                kinds = census.types
                for at, n in enumerate(tallied):
                    if n:
                        code = kinds[at >> 4] << 5 | at & 15
                        totals[code] = totals.get(code, 0) + n
                tallied[:] = _ZEROS  # in place: C writes into this array
            if len(totals) > TOTALS_CAP:
                self._merge_unnamed_types()
        counts: dict[bytes, int] = self.index.query_counts
        replies: dict[bytes, int] = self.index.reply_counts
        pairs = census.pairs
        if pairs:
            census.pairs = set()  # the loop reads it per drain: the next ones go there
        if not counts and not replies and not pairs:
            return
        keys: list[bytes] = []
        ns: list[int] = []
        if counts:
            exact = self.index.exact_udp
            for key, n in counts.items():
                hit = exact.get(key)
                if hit is None:  # forgotten since (the table was full): answer it again
                    keys.append(key + status_of(self.index.respond(b"\0\0" + key, tcp=True)))
                else:  # the reply after its ID (a weighted set: one of its outcomes)
                    reply = hit if hit.__class__ is bytes else hit[1][0]
                    keys.append(key + reply[0:2] + reply[4:6])
                ns.append(n)
            counts.clear()  # in place: the server loops hold this dict
        keys += replies  # copies in C; cleared in place, as the loops hold the dict
        ns += replies.values()
        replies.clear()
        # (an empty set is not the loop's: the next pairs would join this generation early)
        self._held.append((keys, ns, pairs if pairs else _NO_PAIRS))
        if len(self._held) > MAX_HELD:  # changes faster than the folds: fold the oldest now
            keys, _, pairs = self._held[0]
            self.fold(len(keys) - self._at + -(-(len(pairs) - self._merged) // _PAIR_COST),
                      hold=False)

    def fold(self, limit: int | None = None, hold: bool = True) -> bool:
        """Fold what the loops counted since the last fold into the totals, oldest first.

        With `limit`, fold at most that many counts and keep the rest held for the next call
        (the node folds in slices, so the DNS loop and a batch's apply run in between). With
        `hold` False, only what is already held is folded: a sliced fold holds once, then
        slices, so what arrives meanwhile waits for the next round instead of lengthening
        this one. Returns True when nothing is left held."""
        if hold:
            self.hold()
        count = self._count
        while self._held:
            keys, ns, pairs = self._held[0]
            if pairs:  # answered with records in this generation (C's census), merged first
                if self._pairs is None:
                    self._pairs = iter(pairs)
                left = len(pairs) - self._merged
                take = left if limit is None else min(left, limit * _PAIR_COST)
                self.had_records.update(self._pairs, take)
                self._merged += take
                if take < left:
                    return False  # the slice is spent
                pairs.clear()
                self._pairs, self._merged = None, 0
                if limit is not None:  # (0 left: the keys wait, or an empty one goes)
                    limit = max(0, limit + (-take // _PAIR_COST))
            at, end = self._at, len(keys)
            stop = end if limit is None else min(end, at + limit)
            if at == 0 and stop == end:
                count(zip(keys, ns, strict=True))
            else:
                count(zip(keys[at:stop], ns[at:stop], strict=True))
            if stop < end:
                self._at = stop
                return False
            del self._held[0]
            self._at = 0
            if limit is not None:
                limit -= stop - at
                if limit <= 0:
                    return not self._held
        return True

    def _count(self, items: Iterable[tuple[bytes, int]]) -> None:
        """Count distinct queries: each `k` is a query's bytes after the ID and the reply's
        status octets (`status_of`), `n` how often it was sent. The common shape (RFC 1035
        §4.1.1: one question, no answer or authority records, no additional records or one
        bare OPT, RFC 6891 §6.1.2) is read in place: the (name, type) pair is the octets
        between the header and QCLASS with the name lower-cased, a dict key of bytes (no
        text is made). Anything else goes to dnspython, a few thousand of them cached.
        One loop with its names bound locally: it runs once per distinct query, so its
        common case (a reply to that shape) is tested first and reads each octet once."""
        totals = self._totals
        get = totals.get
        remembered = self.had_records
        young, old, half = remembered.young, remembered.old, remembered.half
        slow = self._slow
        for k, n in items:
            rcode = k[-3] & 0x0F
            if rcode == 1 or rcode == 15 and k[-4:] == UNANSWERED:  # FORMERR, or none sent:
                end = 0  # maybe unreadable (no reply carries rcode 15 with flags 0xFFFF)
                if rcode == 15:
                    rcode = _DROPPED
            else:
                counts = k[2:10]
                if counts == _QD1_AR0:
                    end = len(k) - 8  # QTYPE's offset with no additional records
                elif counts == _QD1_AR1 and k[-15:-12] == _PLAIN_OPT and k[-6:-4] == b"\0\0":
                    end = len(k) - 19
                else:
                    end = 0
            # the name ends at the root label, not at a compression pointer (RFC 1035 §4.1.4)
            if end > 10 and not k[end - 1] and (end == 11 or k[end - 2] < 0xC0) and end < 266:
                code = (k[end] << 8 | k[end + 1]) << 5 | rcode
                totals[code] = get(code, 0) + n
                if rcode:  # only NOERROR can be an empty answer
                    continue
                qtype = code >> 5
                # the same octets in one slice when QTYPE holds no ASCII capital (below 65,
                # HTTPS: A, AAAA, CNAME, MX, TXT...), which `lower` would change
                pair = k[10:end + 2].lower() if qtype < 0x41 else k[10:end].lower() + k[end:end + 2]
            else:
                query = k[:-4]
                got = slow.get(query)
                if got is None:
                    got = _question_slow(query, rcode)
                    if len(slow) < _SLOW_CACHE:
                        slow[query] = got
                pair, qtype = got  # type: ignore[assignment]
                code = qtype << 5 | rcode
                totals[code] = get(code, 0) + n
                if rcode or pair is None:
                    continue
            if k[-2] or k[-1]:  # ANCOUNT: it had records (`Remembered.add`, inline)
                if pair not in young:
                    young.add(pair)
                    if len(young) >= half:
                        remembered.old = old = young
                        remembered.young = young = set()
            elif pair in young or pair in old:
                self._count_empty(k[:-4], qtype, n)
        if len(totals) > TOTALS_CAP:
            self._merge_unnamed_types()

    def _merge_unnamed_types(self) -> None:
        """A flood of random QTYPEs must not make a series each: past `TOTALS_CAP` totals,
        those of types without a mnemonic (RFC 3597 §5 `TYPEnnn`) are counted as "OTHER"."""
        totals = self._totals
        for code in list(totals):
            qtype = code >> 5
            if qtype < _MALFORMED and _type_text(qtype).startswith("TYPE"):
                n = totals.pop(code)
                other = _OTHER_TYPE << 5 | code & 31
                totals[other] = totals.get(other, 0) + n

    def _count_empty(self, query: bytes, qtype: int, n: int) -> None:
        name = classify_query(query)[0]
        named = self._named
        if name not in named:
            if len(named) >= EMPTY_SERIES:  # a series per name, but not per random name
                name = OTHER
            else:
                named.add(name)
        self.empty[(name, _type_text(qtype))] += n


class AuthdCollector(Collector):
    """Reads the node's live state at scrape time."""

    def __init__(self, tally: QueryTally | None, followers: Iterable[Any], changes: Counter[str]):
        self.tally = tally
        self.followers = list(followers)
        self.changes = changes

    def collect(self) -> Iterator[Any]:
        if self.tally is not None:
            self.tally.fold()
            q = CounterMetricFamily("authd_dns_queries", "DNS queries answered, by type and rcode",
                                    labels=["type", "rcode"])
            for (qtype, rcode), n in sorted(self.tally.by_type_rcode.items()):
                q.add_metric([qtype, rcode], n)
            yield q
            e = CounterMetricFamily(
                "authd_dns_empty_answers",
                "NOERROR answers with zero records for a name and type that had records before",
                labels=["name", "type"])
            for (name, qtype), n in sorted(self.tally.empty.items()):
                e.add_metric([name, qtype], n)
            yield e
        c = CounterMetricFamily("authd_changes", "Change batches: accepted, or the error code "
                                "of a rejected one", labels=["result"])
        for result, n in sorted(self.changes.items()):
            c.add_metric([result], n)
        yield c
        head = max((f.line.observed_seq for f in self.followers), default=0)
        head = max([head] + [f.applied_seq for f in self.followers])
        yield GaugeMetricFamily("authd_journal_position", "The newest change journal entry seen",
                                value=head)
        applied = GaugeMetricFamily("authd_node_applied_position",
                                    "The journal entry each serving node has applied", labels=["node"])
        lag = GaugeMetricFamily("authd_node_lag_entries", "Journal entries a serving node has not "
                                "applied yet (GetChange stays PENDING until 0)", labels=["node"])
        delay = GaugeMetricFamily("authd_node_propagation_delay_seconds",
                                  "How late a serving node applies each change, by design",
                                  labels=["node"])
        for f in self.followers:
            applied.add_metric([f.name], f.applied_seq)
            lag.add_metric([f.name], max(0, head - f.applied_seq))
            delay.add_metric([f.name], f.delay)
        yield applied
        yield lag
        yield delay


class AuthdMetrics:
    """What the control API serves at `/metrics`."""

    def __init__(self) -> None:
        self.changes: Counter[str] = Counter()
        self.tally: QueryTally | None = None
        self.followers: list[Any] = []
        self.registry = CollectorRegistry(auto_describe=False)

    def count_queries(self, index: Any) -> QueryTally:
        self.tally = QueryTally(index)
        return self.tally

    def start(self) -> None:
        self.registry.register(AuthdCollector(self.tally, self.followers, self.changes))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
