"""Prometheus metrics for authd, at `/metrics` on the change API's port.

Counting is kept off the DNS fast path's budget: the UDP and TCP loops only add one to a
plain dict per query, keyed by bytes they already hold (None when metrics are off):
- an exact-table hit (UDP): `ServingIndex.query_counts[query_after_id]`; the table keeps that
  query's answer until the counts are held (`QueryTally.hold`, right before the index applies
  a change), which reads the reply's rcode and answer count there, a dict lookup;
- any other query: `ServingIndex.reply_counts[query_after_id + status]`, the status being the
  reply's flags and ANCOUNT octets (`UNANSWERED` when nothing was sent), so the fold never
  answers a query again (a flood of random names cost ~10 us per query when it did).
`QueryTally.fold` turns those counts into (type, rcode) totals once a second and at every
scrape; before the index applies a change they are only held (copied, pinned to the replies
sent), so every query is classified by the answer it actually got and a change batch does
not wait for the classifying. A custom collector exports the totals; no prometheus_client object is touched
per query.

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


class QueryTally:
    """Folds the hot path's per-query counts into totals by type and rcode."""

    def __init__(self, index: Any):
        self.index = index
        self.by_type_rcode: Counter[tuple[str, str]] = Counter()
        self.empty: Counter[tuple[str, str]] = Counter()
        self.had_records: set[tuple[str, str]] = set()
        self._names: dict[bytes, tuple[str, str]] = {}
        index.query_counts = {}
        index.reply_counts = {}
        # What was counted before each change the index applied, held in order until the
        # next fold: [(exact-table hits as (query, status, n)), (query + status, n)]
        self._held: list[tuple[list[tuple[bytes, bytes, int]], list[tuple[bytes, int]]]] = []
        self._at = 0  # counts of the oldest held generation folded already (`fold(limit)`)
        apply = index.apply

        def apply_after_hold(entry: Any, built: Any = None) -> bool:
            self.hold()  # what was asked keeps the answers it got
            return bool(apply(entry, built))  # built: a snapshot's prebuilt zone (replica.py)

        index.apply = apply_after_hold

    def hold(self) -> None:
        """Pin what the loops counted to the replies they sent, before the index changes.

        Only an exact-table hit needs the index (its reply is in the table, which a change
        empties); a reply count already carries its status octets. So this is a copy of the
        counts, not a fold: a change batch's apply is not made to wait for classifying
        thousands of distinct queries (5,000 random names held ~15 ms of each batch's
        INSYNC; issue 12). The next `fold` (once a second, at a scrape) classifies them, in
        the order they were held, so its totals are what folding here would have given."""
        counts: dict[bytes, int] = self.index.query_counts
        replies: dict[bytes, int] = self.index.reply_counts
        if not counts and not replies:
            return
        hits: list[tuple[bytes, bytes, int]] = []
        if counts:
            items = list(counts.items())
            counts.clear()  # in place: the server loops hold this dict
            exact = self.index.exact_udp
            for key, n in items:
                hit = exact.get(key)
                if hit is None:  # forgotten since (the table was full): answer it again
                    hits.append((key, status_of(self.index.respond(b"\0\0" + key, tcp=True)), n))
                else:  # the reply after its ID (a weighted set: one of its outcomes)
                    reply = hit if hit.__class__ is bytes else hit[1][0]
                    hits.append((key, reply[0:2] + reply[4:6], n))
        held = list(replies.items())  # a copy in C; cleared in place, as the loops hold the dict
        replies.clear()
        self._held.append((hits, held))
        if len(self._held) > MAX_HELD:  # changes faster than the folds: fold now
            self.fold()

    def fold(self, limit: int | None = None) -> bool:
        """Fold what the loops counted since the last fold into the totals, oldest first.

        With `limit`, fold at most that many counts and keep the rest held for the next call
        (the node folds in slices, so the DNS loop and a batch's apply run in between).
        Returns True when nothing is left held."""
        self.hold()
        count = self._count
        while self._held:
            hits, replies = self._held[0]
            at, end, split = self._at, len(hits) + len(replies), len(hits)
            stop = end if limit is None else min(end, at + limit)
            for key, status, n in hits[at:stop]:
                count(key, status, n)
            for key, n in replies[max(0, at - split):max(0, stop - split)]:
                count(key[:-4], key[-4:], n)
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

    def _count(self, key: bytes, status: bytes, n: int) -> None:
        if status[1] & 0x0F == 3 and key[8:10] == b"\0\0":
            # NXDOMAIN (RFC 1035 §4.1.1) to a query of the question alone (no additional
            # records): the server read its question to the end, so QTYPE is the last four
            # octets but two, and the name is not needed (never counted as an empty answer).
            # A random-name flood classifies nothing: each query is another name.
            self.by_type_rcode[(_type_text(key[-4] << 8 | key[-3]), "NXDOMAIN")] += n
            return
        name_type = self._names.get(key)
        if name_type is None:
            name_type = classify_query(key)
            if len(self._names) < 100_000:
                self._names[key] = name_type
        if status == UNANSWERED:
            rcode = "DROPPED"
            answers = False
        else:
            rcode = _RCODES[status[1] & 0x0F]
            answers = status[2:4] != b"\0\0"
        self.by_type_rcode[(name_type[1], rcode)] += n
        if rcode == "NOERROR":
            if answers:
                self.had_records.add(name_type)
            elif name_type in self.had_records:
                self.empty[name_type] += n


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
