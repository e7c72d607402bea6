"""The metrics fold stays bounded under floods of random names, and still counts the outage.

`QueryTally` remembers which (name, type) pairs were answered with records, so that a later
NOERROR with zero answers counts as `authd_dns_empty_answers_total` (the October 2025
symptom). A flood of random existing (or wildcard) names must not grow that memory, nor the
Prometheus series, per name (issue 12; issue 10's soak: RSS bounded), and a name that goes
empty right after having records must still be counted. In process, no sockets: the counts
are put where the UDP loop puts them (`reply_counts[query after the ID + status octets]`).
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections import Counter
from typing import Any

import dns.edns
import dns.message
import dns.name
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from authd.metrics import (
    EMPTY_SERIES,
    HAD_RECORDS_CAP,
    OTHER,
    AuthdCollector,
    QueryTally,
    classify_query,
)

ANSWERED = b"\x85\x00\x00\x01"  # QR AA RD, NOERROR, ANCOUNT 1 (RFC 1035 §4.1.1)
EMPTY = b"\x85\x00\x00\x00"  # NOERROR, no answer records
NXDOMAIN = b"\x85\x03\x00\x00"
HEAD = b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # after the ID: RD, QDCOUNT 1
A = b"\x00\x01\x00\x01"  # QTYPE A, QCLASS IN


class StubIndex:
    """What `QueryTally` touches of a `ServingIndex`."""

    def __init__(self) -> None:
        self.query_counts: dict[bytes, int] = {}
        self.reply_counts: dict[bytes, int] = {}
        self.exact_udp: dict[bytes, Any] = {}

    def apply(self, entry: Any) -> bool:
        return True


def query(name: str, suffix: bytes = A) -> bytes:
    """The bytes after the ID of a plain query (dnsperf's shape), made without dnspython."""
    wire = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split("."))
    return HEAD + wire + b"\x00" + suffix


def ask(index: StubIndex, key: bytes, status: bytes, n: int = 1) -> None:
    index.reply_counts[key + status] = index.reply_counts.get(key + status, 0) + n


def series(tally: QueryTally) -> dict[str, list[Any]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AuthdCollector(tally, [], Counter()))
    text = generate_latest(registry).decode()
    out: dict[str, list[Any]] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = [s for s in fam.samples if s.name.endswith("_total")]
    tool = shutil.which("promtool")
    if tool is not None:  # the exposition stays valid however many names went empty
        got = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True,
                             text=True, timeout=60)
        assert got.returncode == 0, got.stdout + got.stderr
    return out


def test_a_flood_of_random_names_keeps_memory_and_series_bounded_and_the_outage_counted() -> None:
    index = StubIndex()
    tally = QueryTally(index)
    rnd = random.Random(12)
    hot = query("dynamodb.us-east-1.api.aws.")
    flood = 0
    for _ in range(6):  # six folds, each a flood of new existing names; the hot name in each
        ask(index, hot, ANSWERED, 40)
        for _ in range(HAD_RECORDS_CAP // 2 - 1_000):
            ask(index, query(f"h{rnd.getrandbits(48):x}.big.test."), ANSWERED)
            flood += 1
        for _ in range(20_000):
            ask(index, query(f"x{rnd.getrandbits(48):x}.big.test."), NXDOMAIN)
        tally.fold()
        assert len(tally.had_records) <= HAD_RECORDS_CAP
    assert flood > 2 * HAD_RECORDS_CAP  # more distinct names than it can remember
    ask(index, hot, EMPTY, 7)  # the alias dangles: NOERROR and nothing
    tally.fold()
    assert tally.empty == {("dynamodb.us-east-1.api.aws.", "A"): 7}
    # a mass of names losing their A records: a series each up to EMPTY_SERIES, then one
    gone = [query(f"g{i}.big.test.") for i in range(EMPTY_SERIES + 500)]
    for key in gone:
        ask(index, key, ANSWERED)
    tally.fold()
    for key in gone:
        ask(index, key, EMPTY, 2)
    tally.fold()
    got = series(tally)
    empties = got["authd_dns_empty_answers"]
    assert len(empties) == EMPTY_SERIES + 1  # the hot name, EMPTY_SERIES - 1 others, OTHER
    assert sum(s.value for s in empties) == 7 + 2 * len(gone)  # every one counted
    other = [s for s in empties if s.labels["name"] == OTHER]
    assert other[0].value == 2 * (len(gone) - EMPTY_SERIES + 1)
    assert {(s.labels["type"], s.labels["rcode"]): s.value for s in got["authd_dns_queries"]} == {
        ("A", "NOERROR"): 6 * 40 + flood + 7 + 3 * len(gone), ("A", "NXDOMAIN"): 6 * 20_000}
    assert len(tally._slow) == 0  # noqa: SLF001 (plain queries: none went to dnspython)


def test_a_name_that_goes_empty_right_after_having_records_is_counted() -> None:
    """Remembered across `cap // 2` other distinct answered pairs, whatever they are; the
    documented loss: a pair answered once, then `cap` others, is forgotten."""
    cap = 4_096
    index = StubIndex()
    tally = QueryTally(index, had_records_cap=cap)
    kept, lost = query("kept.test."), query("lost.test.")
    ask(index, lost, ANSWERED)
    tally.fold()
    for i in range(cap // 2):
        ask(index, query(f"a{i}.test."), ANSWERED)
    tally.fold()
    ask(index, kept, ANSWERED)
    for i in range(cap // 2 - 1):  # each fold its own generation boundary: none is special
        ask(index, query(f"b{i}.test."), ANSWERED)
        if i % 500 == 0:
            tally.fold()
    ask(index, kept, EMPTY)
    ask(index, lost, EMPTY)
    tally.fold()
    assert dict(tally.empty) == {("kept.test.", "A"): 1}
    assert len(tally.had_records) <= cap


labels = st.one_of(st.text(alphabet="abcXYZ019-_", min_size=1, max_size=20),
                   st.binary(min_size=1, max_size=20))  # any octets: escapes, dots, upper case
shapes = st.sampled_from(["plain", "edns", "cookie"])


def _wire(parts: list, rdtype: int, shape: str, upper: bool) -> bytes:
    name = dns.name.Name([(p.encode() if isinstance(p, str) else p) for p in parts] + [b""])
    if upper:
        name = dns.name.Name([label.upper() for label in name.labels])
    opts = [dns.edns.GenericOption(10, bytes(8))] if shape == "cookie" else []
    q = dns.message.make_query(name, rdtype, use_edns=False if shape == "plain" else 0,
                               options=opts)
    return q.to_wire()[2:]


@settings(max_examples=300, deadline=None)
@given(st.lists(labels, min_size=0, max_size=4), st.sampled_from([1, 28, 65, 90, 16, 65280]),
       shapes, shapes, st.booleans(), st.booleans())
def test_the_in_place_reading_agrees_with_dnspython_across_shapes_and_case(
        parts, rdtype, first, then, upper_first, upper_then):
    """Answered in one shape and spelling, empty in another: the same pair (RFC 4343 §3),
    typed and named as dnspython reads them (plain and bare-OPT queries are read in place,
    a cookie sends the query to dnspython). QTYPEs 65 and 90 are 'A' and 'Z' as octets."""
    try:
        had, now = _wire(parts, rdtype, first, upper_first), _wire(parts, rdtype, then, upper_then)
    except (dns.name.NameTooLong, ValueError):
        return
    index = StubIndex()
    tally = QueryTally(index)
    ask(index, had, ANSWERED)
    tally.fold()
    ask(index, now, EMPTY, 3)
    ask(index, now, NXDOMAIN)  # another lane: the same query answered NXDOMAIN
    tally.fold()
    name, qtype = classify_query(now)
    assert classify_query(had) == (name, qtype) and name == name.lower()
    assert dict(tally.empty) == {(name, qtype): 3}
    assert dict(tally.by_type_rcode) == {(qtype, "NOERROR"): 4, (qtype, "NXDOMAIN"): 1}


@pytest.mark.parametrize("status", [b"\xff\xff\xff\xff", b"\x81\x01\x00\x00"])
def test_unread_queries_are_typed_as_before(status: bytes) -> None:
    """Dropped and FORMERR queries may be unreadable: typed by `classify_query`, MALFORMED
    when dnspython cannot read them, never remembered as having records."""
    index = StubIndex()
    tally = QueryTally(index)
    ask(index, query("ok.test."), status)
    ask(index, b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab", status)  # cut short
    tally.fold()
    rcode = "DROPPED" if status[0] == 0xFF else "FORMERR"
    assert dict(tally.by_type_rcode) == {("A", rcode): 1, ("MALFORMED", rcode): 1}
    assert len(tally.had_records) == 0


def test_a_flood_of_random_qtypes_makes_no_series_per_type() -> None:
    """Types dnspython names keep their series; unnamed ones (TYPEnnn) past the bound are
    counted as OTHER, every query still counted."""
    index = StubIndex()
    tally = QueryTally(index)
    ask(index, query("t.test.", b"\x00\x1c\x00\x01"), EMPTY, 5)  # AAAA: a named type
    ask(index, query("t.test.", b"\xff\x00\x00\x01"), EMPTY)  # TYPE65280, before any flood
    tally.fold()
    assert dict(tally.by_type_rcode) == {("AAAA", "NOERROR"): 5, ("TYPE65280", "NOERROR"): 1}
    rnd = random.Random(3)
    for qtype in rnd.sample(range(33_000, 65_000), 5_000):  # no mnemonic (TA, DLV: 32768-9)
        ask(index, query("t.test.", qtype.to_bytes(2, "big") + b"\x00\x01"), NXDOMAIN)
    tally.fold()
    got = tally.by_type_rcode
    assert len(got) <= 4
    assert got[("AAAA", "NOERROR")] == 5 and got[("OTHER", "NXDOMAIN")] == 5_000
    assert sum(got.values()) == 5_006
    assert len(series(tally)["authd_dns_queries"]) == len(got)
