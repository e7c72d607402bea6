"""Property: the answer fast path (the rendered-answer tables in `authd.dns.index`) gives exactly
what the full pipeline gives, over generated zones with every routing policy, health states,
clients in different mapped subnets (source address and EDNS Client Subnet) and health
changes between questions.

For each question the fast path's answers, over a grid of random draws, must all be answers
the full pipeline can give (every outcome enumerated, `enumerate_outcomes`), and when the
full pipeline has one outcome they must be that one, byte for byte."""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authd.dns.answer import answer as full_answer
from authd.dns.answer import enumerate_outcomes
from authd.dns.geo import GeoMap
from authd.dns.index import ServingIndex
from authd.model.journal import EntryKind, JournalEntry, resource_entry
from authd.model.records import AliasTarget, GeoLocation, RecordSet, Routing

ORIGIN = "p.test."
ZID = "Z0P0TEST"
GEO = GeoMap.parse((Path(__file__).parent.parent / "zones" / "geo-map.txt").read_text())
CID = "c0ffee00-0000-4000-8000-000000000002"
COLLECTION = {"Locations": {"a": ["127.0.1.0/24"], "b": ["127.0.2.0/25"], "c": ["127.0.0.0/8"]}}
SOURCES = ["127.0.0.1", "127.0.1.9", "127.0.2.9", "127.0.2.200", "127.0.4.1", "127.0.5.1"]
SUBNETS = [None, "127.0.1.0/24", "127.0.2.0/24", "127.0.3.0/24", "127.0.0.0/16", "127.0.7.7/32"]
HEALTH_IDS = [f"hc{i}" for i in range(4)]
GEOS = [GeoLocation(country="US", subdivision="CA"), GeoLocation(country="US"),
        GeoLocation(continent="EU"), GeoLocation(country="DE"), GeoLocation(country="*"),
        GeoLocation(continent="AS")]
REGIONS = ["us-east-1", "us-west-1", "eu-west-1", "eu-central-1", "ap-northeast-1", "sa-east-1"]
POLICIES = ["plain", "weighted", "failover", "multivalue", "latency", "geolocation", "cidr"]
NAMES = ["n0", "n1", "n2", "n3"]


@st.composite
def groups(draw: st.DrawFn, name: str, targets: list[str]) -> list[RecordSet]:
    owner = f"{name}.{ORIGIN}"
    policy = draw(st.sampled_from(POLICIES))
    if policy == "plain":
        return [RecordSet(owner, "A", 60, (f"192.0.2.{draw(st.integers(1, 250))}",))]
    n = draw(st.integers(1, 10 if policy == "multivalue" else 4))
    out = []
    for i in range(n):
        health = draw(st.none() | st.sampled_from(HEALTH_IDS))
        ident = f"{policy[:2]}{i}"
        routing: dict = {"health_check_id": health}
        weight = None
        if policy == "weighted":
            weight = draw(st.integers(0, 3))
        elif policy == "failover":
            if i > 1:
                break
            routing["failover"] = "PRIMARY" if i == 0 else "SECONDARY"
        elif policy == "multivalue":
            routing["multivalue"] = True
        elif policy == "latency":
            routing["region"] = REGIONS[i]
        elif policy == "geolocation":
            routing["geo"] = draw(st.sampled_from(GEOS))
        else:
            routing["cidr"] = (CID, "*abc"[i])
        if policy != "multivalue" and targets and draw(st.booleans()):
            rs = RecordSet(owner, "A", set_identifier=ident, weight=weight,
                           alias=AliasTarget(f"{draw(st.sampled_from(targets))}.{ORIGIN}", ZID,
                                             draw(st.booleans())),
                           routing=Routing(**routing) if routing else None)
        else:
            rs = RecordSet(owner, "A", 30 + i, (f"198.51.{i}.{draw(st.integers(1, 250))}",),
                           set_identifier=ident, weight=weight, routing=Routing(**routing))
        out.append(rs)
    # geolocation and latency keys must be unique per name and type (as the batch rules say)
    seen, unique = set(), []
    for rs in out:
        r = rs.routing
        k = (r.geo, r.region, r.cidr) if r is not None else None
        if k in seen and rs.policy in ("geolocation", "latency", "cidr"):
            continue
        seen.add(k)
        unique.append(rs)
    return unique


@st.composite
def zones(draw: st.DrawFn) -> list[RecordSet]:
    sets = [RecordSet(ORIGIN, "SOA", 60, ("ns.p.test. h.p.test. 1 7200 900 1209600 30",)),
            RecordSet(ORIGIN, "NS", 60, ("ns.p.test.",))]
    for i, name in enumerate(NAMES):
        sets += draw(groups(name, NAMES[i + 1:]))  # aliases point down the list: no loops
    return sets


def build(sets: list[RecordSet], health: dict[str, bool], cache: bool, draw: list[float]) -> ServingIndex:
    index = ServingIndex(rng=lambda: draw[0], geomap=GEO, cache=cache)
    index.apply(JournalEntry(0, EntryKind.SNAPSHOT, ZID, ORIGIN, 1, "", tuple(sets)))
    index.apply(resource_entry(1, "cidrcollection", CID, COLLECTION))
    for i, (hid, ok) in enumerate(sorted(health.items()), 2):
        index.apply(resource_entry(i, "healthcheck-status", hid, {"healthy": ok}))
    return index


def query(name: str, subnet: str | None, qid: int) -> bytes:
    q = dns.message.make_query(f"{name}.{ORIGIN}", "A")
    q.id = qid
    if subnet is not None:
        addr, bits = subnet.split("/")
        q.use_edns(0, options=[dns.edns.ECSOption(addr, int(bits))])
    return q.to_wire()


GRID = [i / 16 for i in range(16)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zones(), st.dictionaries(st.sampled_from(HEALTH_IDS), st.booleans()),
       st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(SOURCES),
                          st.sampled_from(SUBNETS), st.sampled_from(HEALTH_IDS + [None]),
                          st.booleans()), min_size=1, max_size=8))
def test_fast_path_equals_full_pipeline_with_every_policy(sets, health, questions):
    draw = [0.5]
    fast = build(sets, health, True, draw)
    slow = build(sets, health, False, draw)  # no tables: the full pipeline on every packet
    for qid, (name, source, subnet, flip, ok) in enumerate(questions):
        if flip is not None:  # a health change between questions
            for index in (fast, slow):
                index.apply(resource_entry(index.seq + 1, "healthcheck-status", flip, {"healthy": ok}))
        wire = query(name, subnet, qid)
        full: dict[bytes, None] | None = {}
        try:
            for _, reply in enumerate_outcomes(
                    lambda p, wire=wire, source=source: full_answer(wire, fast.table, rng=p, source=source)):
                assert reply is not None
                full[reply.to_wire(reply.udp_limit)] = None  # type: ignore[index]
        except OverflowError:
            full = None  # too many combinations to list (multivalue of 10): compare draw by draw
        got = set()
        for r in GRID:
            draw[0] = r
            for _ in range(2):  # the first may fill the table, the second reads it
                out = fast.respond(wire, tcp=False, source=source)
                assert out is not None
                if full is None:
                    assert out == slow.respond(wire, tcp=False, source=source), (name, source, subnet)
                got.add(out)
        if full is not None:
            assert got <= set(full), (name, source, subnet)
            if len(full) == 1:
                assert got == set(full)
