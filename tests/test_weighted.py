"""Weighted routing follows Route 53's rule: member i with probability weight_i / sum.

Chi-square goodness of fit over ≥ 2,000 picks at significance α = 0.001: the test fails if the
statistic exceeds the critical value for the degrees of freedom (a correct picker fails it one
run in a thousand; the seeded runs here are deterministic, so they never flake). Most runs go
through the pure answer function with a seeded rng; one goes through a real UDP socket.
"""

from __future__ import annotations

import random
from collections import Counter

import dns.asyncquery
import dns.message
import pytest
import trio

from authd.dns.answer import Zone, ZoneTable, answer, make_query_wire
from authd.dns.index import ServingIndex, snapshot_entries
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import AliasTarget, RecordSet
from tests.conftest import start_authd

ALPHA = 0.001
# Upper 0.1% points of the chi-square distribution (NIST/SEMATECH e-Handbook, table 1.3.6.7.4)
CRITICAL_0_001 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458}

STABLE = "dynamodb.us-east-1.api.aws."
# zones/api.aws.json: plan-0001 members and their weights
LEAF_WEIGHTS = {"192.0.2.11": 100, "192.0.2.12": 50, "198.51.100.21": 100, "203.0.113.31": 100}


def chi_square(observed: Counter, weights: dict[str, float]) -> float:
    n = sum(observed.values())
    total = sum(weights.values())
    assert set(observed) <= set(weights), f"picked something unexpected: {observed}"
    return sum((observed[k] - n * w / total) ** 2 / (n * w / total) for k, w in weights.items())


def assert_fits(observed: Counter, weights: dict[str, float]) -> None:
    stat = chi_square(observed, weights)
    critical = CRITICAL_0_001[len(weights) - 1]
    assert stat < critical, f"chi-square {stat:.2f} ≥ {critical} (α={ALPHA}): {observed}"


def first_address(wire: bytes) -> str:
    return dns.message.from_wire(wire).answer[0][0].address


def test_pure_answer_function_follows_weights(index):
    rng = random.Random(20251020)
    wire = make_query_wire(STABLE, "A")
    observed = Counter()
    for _ in range(4000):
        reply = answer(wire, index.table, rng=rng)
        observed[reply.message.answer[0][0].address] += 1
    assert_fits(observed, LEAF_WEIGHTS)


def test_index_fast_path_follows_weights(index):
    wire = make_query_wire(STABLE, "A")
    observed = Counter(first_address(index.respond(wire, tcp=False)) for _ in range(4000))
    assert index.stats["fast"] == 4000  # the precomputed bisect path, not the full parse
    assert_fits(observed, LEAF_WEIGHTS)


def test_nested_weighted_trees_multiply_probabilities():
    """Alias to a weighted set whose members alias weighted sets: P = product of the levels."""
    org = "t.test."
    sets = [RecordSet(org, "SOA", 60, ("ns.t.test. h.t.test. 1 2 3 4 5",)),
            RecordSet(org, "NS", 60, ("ns.t.test.",)),
            RecordSet("svc.t.test.", "A", alias=AliasTarget("top.t.test.", "Z"))]
    for ident, w, mid in [("left", 3, "l.t.test."), ("right", 1, "r.t.test.")]:
        sets.append(RecordSet("top.t.test.", "A", alias=AliasTarget(mid, "Z"),
                              set_identifier=ident, weight=w))
    leaves = {"l.t.test.": [("a", 1, "192.0.2.1"), ("b", 2, "192.0.2.2")],
              "r.t.test.": [("c", 0, "192.0.2.3"), ("d", 0, "192.0.2.4")]}  # all zero: uniform
    for mid, members in leaves.items():
        for ident, w, addr in members:
            sets.append(RecordSet(mid, "A", 30, (addr,), set_identifier=ident, weight=w))
    zones = ZoneTable([Zone.build(org, sets)])
    expected = {"192.0.2.1": 3 / 4 * 1 / 3, "192.0.2.2": 3 / 4 * 2 / 3,
                "192.0.2.3": 1 / 4 * 1 / 2, "192.0.2.4": 1 / 4 * 1 / 2}
    rng = random.Random(5)
    wire = make_query_wire("svc.t.test.", "A")
    observed = Counter(answer(wire, zones, rng=rng).message.answer[0][0].address
                       for _ in range(4000))
    assert_fits(observed, expected)
    # the serving index precomputes the same distribution over its flattened outcomes
    idx = ServingIndex(rng=random.Random(6))
    idx.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z", org, 1, "", tuple(sets)))
    observed = Counter(first_address(idx.respond(wire, tcp=False)) for _ in range(4000))
    assert_fits(observed, expected)


def test_the_check_has_power_a_biased_picker_fails_it(index):
    """A picker that ignores weights (uniform) must be caught at this sample size."""
    wire = make_query_wire(STABLE, "A")
    rng = random.Random(1)
    observed = Counter()
    for _ in range(4000):
        # uniform over the four members instead of 100/50/100/100
        observed[list(LEAF_WEIGHTS)[rng.randrange(4)]] += 1
    assert chi_square(observed, LEAF_WEIGHTS) > CRITICAL_0_001[3]
    reply = answer(wire, index.table, rng=lambda: 0.0)  # and r=0 always picks the first
    assert reply.message.answer[0][0].address == "192.0.2.11"


@pytest.mark.realtime
async def test_real_socket_distribution(nursery, shipped_zones):
    idx = ServingIndex(rng=random.Random(99))
    for e in snapshot_entries(shipped_zones):
        idx.apply(e)
    server = await start_authd(nursery, idx)
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.connect((server.host, server.port))
    observed: Counter = Counter()
    n = 2000
    with trio.fail_after(60):
        for batch in range(n // 50):  # 50 in flight at a time over one UDP socket
            for i in range(50):
                q = dns.message.make_query(STABLE, "A")
                q.id = batch * 50 + i
                await sock.send(q.to_wire())
            for _ in range(50):
                observed[first_address(await sock.recv(4096))] += 1
    sock.close()
    assert sum(observed.values()) == n
    assert_fits(observed, LEAF_WEIGHTS)
