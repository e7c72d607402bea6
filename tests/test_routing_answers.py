"""Every Route 53 routing policy, answered by the one pipeline (pure: no sockets).

Failover, multivalue, weighted with health, latency, geolocation, IP-based and alias
EvaluateTargetHealth, with health fed as RESOURCE journal entries and the client placed by
EDNS Client Subnet (RFC 7871) or its source address through a location table. Wire answers
are decoded by dnslib as well as dnspython."""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import pytest
from dnslib import DNSRecord

from authd.dns.geo import GeoMap
from authd.dns.index import ServingIndex
from authd.model.journal import EntryKind, JournalEntry, resource_entry
from authd.model.records import AliasTarget, GeoLocation, RecordSet, Routing

ORIGIN = "r.test."
ZID = "Z0R0TEST"
GEO = GeoMap.parse((Path(__file__).parent.parent / "zones" / "geo-map.txt").read_text(), source="zones/geo-map.txt")
SOA = RecordSet(ORIGIN, "SOA", 60, ("ns.r.test. h.r.test. 1 7200 900 1209600 30",))
NS = RecordSet(ORIGIN, "NS", 60, ("ns.r.test.",))


def a(name: str, ident: str, value: str, **routing) -> RecordSet:
    health = routing.pop("health", None)
    return RecordSet(f"{name}.{ORIGIN}", "A", 60, (value,), set_identifier=ident,
                     routing=Routing(health_check_id=health, **routing))


def alias(name: str, ident: str, target: str, evaluate: bool = True, **routing) -> RecordSet:
    health = routing.pop("health", None)
    return RecordSet(f"{name}.{ORIGIN}", "A", set_identifier=ident,
                     alias=AliasTarget(f"{target}.{ORIGIN}", ZID, evaluate),
                     routing=Routing(health_check_id=health, **routing))


def make(*sets: RecordSet, health: dict[str, bool] | None = None, cidr: dict | None = None,
         cache: bool = True) -> ServingIndex:
    index = ServingIndex(rng=lambda: 0.5, geomap=GEO, cache=cache)
    index.apply(JournalEntry(0, EntryKind.SNAPSHOT, ZID, ORIGIN, 1, "", (SOA, NS, *sets)))
    seq = 0
    for cid, doc in (cidr or {}).items():
        seq += 1
        index.apply(resource_entry(seq, "cidrcollection", cid, doc))
    for hid, ok in (health or {}).items():
        seq += 1
        index.apply(resource_entry(seq, "healthcheck-status", hid, {"healthy": ok}))
    index.seq = max(index.seq, seq)
    return index


def set_health(index: ServingIndex, hid: str, ok: bool) -> None:
    index.apply(resource_entry(index.seq + 1, "healthcheck-status", hid, {"healthy": ok}))
    index.seq += 1


def ask(index: ServingIndex, name: str, *, subnet: str | None = None, source: str = "127.0.0.1",
        qtype: str = "A") -> tuple[dns.message.Message, bytes]:
    q = dns.message.make_query(f"{name}.{ORIGIN}", qtype)
    if subnet is not None:
        addr, bits = subnet.split("/")
        q.use_edns(0, options=[dns.edns.ECSOption(addr, int(bits))])
    wire = index.respond(q.to_wire(), tcp=False, source=source)
    assert wire is not None
    return dns.message.from_wire(wire), wire


def addresses(m: dns.message.Message) -> set[str]:
    return {rd.address for rrset in m.answer for rd in rrset}


def both_decoders(wire: bytes) -> set[str]:
    """The answer's addresses as dnslib reads them (an independent decoder)."""
    return {str(rr.rdata) for rr in DNSRecord.parse(wire).rr}


# --- failover ---------------------------------------------------------------------------------

FAILOVER = (a("fo", "p", "192.0.2.1", failover="PRIMARY", health="hc-p"),
            a("fo", "s", "192.0.2.2", failover="SECONDARY", health="hc-s"))


def test_failover_answers_primary_while_healthy_then_secondary_then_primary_again():
    index = make(*FAILOVER)
    m, wire = ask(index, "fo")
    assert addresses(m) == both_decoders(wire) == {"192.0.2.1"}
    set_health(index, "hc-p", False)
    m, wire = ask(index, "fo")
    assert addresses(m) == both_decoders(wire) == {"192.0.2.2"}
    set_health(index, "hc-p", True)
    assert addresses(ask(index, "fo")[0]) == {"192.0.2.1"}


def test_failover_with_both_unhealthy_answers_the_primary():
    index = make(*FAILOVER, health={"hc-p": False, "hc-s": False})
    assert addresses(ask(index, "fo")[0]) == {"192.0.2.1"}


def test_failover_primary_alias_evaluating_target_health_fails_over_when_its_target_is_down():
    pool = (RecordSet(f"pool.{ORIGIN}", "A", 60, ("198.51.100.1",), set_identifier="x", weight=1,
                      routing=Routing(health_check_id="hc-x")),
            RecordSet(f"pool.{ORIGIN}", "A", 60, ("198.51.100.2",), set_identifier="y", weight=1,
                      routing=Routing(health_check_id="hc-y")))
    top = (alias("svc", "primary", "pool", failover="PRIMARY"),
           a("svc", "secondary", "203.0.113.9", failover="SECONDARY"))
    index = make(*pool, *top)
    assert addresses(ask(index, "svc")[0]) <= {"198.51.100.1", "198.51.100.2"}
    set_health(index, "hc-x", False)
    assert addresses(ask(index, "svc")[0]) == {"198.51.100.2"}  # one member left: still healthy
    set_health(index, "hc-y", False)
    assert addresses(ask(index, "svc")[0]) == {"203.0.113.9"}


# --- weighted with health -------------------------------------------------------------------


def weighted(n: int) -> list[RecordSet]:
    return [RecordSet(f"w.{ORIGIN}", "A", 60, (f"192.0.2.{i}",), set_identifier=f"m{i}",
                      weight=10, routing=Routing(health_check_id=f"hc{i}")) for i in range(n)]


def test_weighted_leaves_unhealthy_members_out():
    index = make(*weighted(3), health={"hc1": False})
    got = index.resolve_all(f"w.{ORIGIN}", "A")
    assert sorted(v for _, v in got) == [("192.0.2.0",), ("192.0.2.2",)]


def test_weighted_with_every_member_unhealthy_considers_them_all():
    index = make(*weighted(3), health={"hc0": False, "hc1": False, "hc2": False})
    got = index.resolve_all(f"w.{ORIGIN}", "A")
    assert len(got) == 3


def test_weighted_with_healthcheckid_unknown_to_the_prober_counts_as_healthy():
    index = make(*weighted(2))
    assert len(index.resolve_all(f"w.{ORIGIN}", "A")) == 2


# --- multivalue -----------------------------------------------------------------------------


def multivalue(n: int) -> list[RecordSet]:
    return [a("mv", f"v{i}", f"192.0.2.{i}", multivalue=True, health=f"mv{i}") for i in range(n)]


def test_multivalue_answers_every_healthy_record_up_to_eight():
    index = make(*multivalue(5), health={"mv3": False})
    m, wire = ask(index, "mv")
    assert addresses(m) == both_decoders(wire) == {"192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.4"}


def test_multivalue_with_more_than_eight_healthy_picks_eight_at_random():
    index = make(*multivalue(12), cache=False)
    seen: set[str] = set()
    for r in (0.05, 0.35, 0.65, 0.95):
        index._random = lambda r=r: r
        m, _ = ask(index, "mv")
        assert len(addresses(m)) == 8
        seen |= addresses(m)
    assert len(seen) > 8  # different draws, different eights


def test_multivalue_with_none_healthy_answers_unhealthy_ones():
    index = make(*multivalue(3), health={"mv0": False, "mv1": False, "mv2": False})
    assert len(addresses(ask(index, "mv")[0])) == 3


# --- latency ----------------------------------------------------------------------------------

LATENCY = (a("lat", "use1", "192.0.2.10", region="us-east-1"),
           a("lat", "euw1", "192.0.2.20", region="eu-west-1", health="hc-eu"),
           a("lat", "apne1", "192.0.2.30", region="ap-northeast-1"))


@pytest.mark.parametrize(("subnet", "want"), [
    ("127.0.1.0/24", "192.0.2.10"),   # us-west-1 client: us-east-1 is nearer than Ireland
    ("127.0.2.0/24", "192.0.2.20"),   # Frankfurt client: Ireland
    ("127.0.4.0/24", "192.0.2.30"),   # Tokyo client: Tokyo
    ("127.0.5.0/24", "192.0.2.30"),   # Sydney client: Tokyo is nearest of the three
])
def test_latency_answers_the_region_closest_to_the_client(subnet, want):
    index = make(*LATENCY)
    assert addresses(ask(index, "lat", subnet=subnet)[0]) == {want}


def test_latency_skips_an_unhealthy_region():
    index = make(*LATENCY, health={"hc-eu": False})
    assert addresses(ask(index, "lat", subnet="127.0.2.0/24")[0]) == {"192.0.2.10"}


# --- geolocation --------------------------------------------------------------------------------

GEOSETS = (a("geo", "ca", "192.0.2.1", geo=GeoLocation(country="US", subdivision="CA")),
           a("geo", "us", "192.0.2.2", geo=GeoLocation(country="US")),
           a("geo", "eu", "192.0.2.3", geo=GeoLocation(continent="EU"), health="hc-eu"),
           a("geo", "de", "192.0.2.4", geo=GeoLocation(country="DE")),
           a("geo", "default", "192.0.2.9", geo=GeoLocation(country="*")))


@pytest.mark.parametrize(("subnet", "want"), [
    ("127.0.1.0/24", "192.0.2.1"),  # US-CA: the subdivision
    ("127.0.0.0/24", "192.0.2.2"),  # US-VA: the country
    ("127.0.2.0/24", "192.0.2.4"),  # DE: the country before its continent
    ("127.0.3.0/24", "192.0.2.3"),  # IE: the continent
    ("127.0.4.0/24", "192.0.2.9"),  # JP: nothing matches, the default
])
def test_geolocation_most_specific_match_wins(subnet, want):
    index = make(*GEOSETS)
    assert addresses(ask(index, "geo", subnet=subnet)[0]) == {want}


def test_geolocation_unhealthy_match_gives_way_to_the_broader_one():
    index = make(*GEOSETS, health={"hc-eu": False})
    assert addresses(ask(index, "geo", subnet="127.0.3.0/24")[0]) == {"192.0.2.9"}


def test_geolocation_without_match_or_default_is_nodata():
    index = make(*GEOSETS[:2])
    m, _ = ask(index, "geo", subnet="127.0.4.0/24")
    assert m.rcode() == dns.rcode.NOERROR and not m.answer
    assert m.authority and m.authority[0].rdtype == dns.rdatatype.SOA


def test_geolocation_by_source_address_without_ecs_and_never_from_the_table():
    index = make(*GEOSETS)
    assert addresses(ask(index, "geo", source="127.0.2.7")[0]) == {"192.0.2.4"}
    assert addresses(ask(index, "geo", source="127.0.1.7")[0]) == {"192.0.2.1"}
    assert addresses(ask(index, "geo", source="127.0.2.8")[0]) == {"192.0.2.4"}
    assert not index.exact_udp  # a location-dependent answer is never reused for others


# --- EDNS Client Subnet ------------------------------------------------------------------------


def ecs_of(m: dns.message.Message) -> dns.edns.ECSOption:
    (opt,) = [o for o in m.options if o.otype == dns.edns.ECS]
    return opt  # type: ignore[return-value]


def test_ecs_is_echoed_with_the_scope_of_the_block_that_decided():
    index = make(*GEOSETS)
    m, wire = ask(index, "geo", subnet="127.0.1.77/32")
    opt = ecs_of(m)
    assert (opt.address, opt.srclen, opt.scopelen) == ("127.0.1.77", 32, 24)
    # dnslib reads the same option: code 8, family 1, source 32, scope 24
    (edns,) = [o for o in DNSRecord.parse(wire).ar if o.rtype == 41]
    data = edns.rdata[0].data
    assert edns.rdata[0].code == 8 and data[:4] == bytes((0, 1, 32, 24))


def test_ecs_scope_is_zero_when_the_answer_does_not_depend_on_the_client():
    index = make(*FAILOVER)
    opt = ecs_of(ask(index, "fo", subnet="127.0.2.0/24")[0])
    assert (opt.srclen, opt.scopelen) == (24, 0)


def test_ecs_source_prefix_limits_the_blocks_used():
    # a /16 subnet cannot tell 127.0.1.0/24 from 127.0.2.0/24: only the /8 block decides
    index = make(*GEOSETS)
    m, _ = ask(index, "geo", subnet="127.0.0.0/16")
    assert addresses(m) == {"192.0.2.2"}  # US (VA) from the /8, not US-CA from a /24
    assert ecs_of(m).scopelen == 8


# --- IP-based routing ---------------------------------------------------------------------------

CID = "c0ffee00-0000-4000-8000-000000000001"
COLLECTION = {"Name": "offices", "Locations": {"branch": ["127.0.8.0/24"],
                                               "floor": ["127.0.8.128/25"],
                                               "hq": ["127.0.9.0/24"]}}
CIDRSETS = (a("ip", "branch", "192.0.2.1", cidr=(CID, "branch")),
            a("ip", "floor", "192.0.2.2", cidr=(CID, "floor")),
            a("ip", "any", "192.0.2.9", cidr=(CID, "*")))


@pytest.mark.parametrize(("source", "want"), [
    ("127.0.8.5", "192.0.2.1"), ("127.0.8.200", "192.0.2.2"),  # longest match wins
    ("127.0.9.1", "192.0.2.9"),  # hq has no record: the default
    ("127.0.10.1", "192.0.2.9"),
    ("::ffff:127.0.8.5", "192.0.2.1"),  # an IPv4 client of a dual-stack socket
])
def test_ip_based_routing_longest_match_then_default(source, want):
    index = make(*CIDRSETS, cidr={CID: COLLECTION})
    assert addresses(ask(index, "ip", source=source)[0]) == {want}


def test_ip_based_routing_follows_collection_changes():
    index = make(*CIDRSETS, cidr={CID: COLLECTION})
    assert addresses(ask(index, "ip", source="127.0.9.1")[0]) == {"192.0.2.9"}
    moved = {"Name": "offices", "Locations": {"branch": ["127.0.9.0/24"]}}
    index.apply(resource_entry(index.seq + 1, "cidrcollection", CID, moved))
    assert addresses(ask(index, "ip", source="127.0.9.1")[0]) == {"192.0.2.1"}


# --- the rendered-answer table stays right ---------------------------------------------------


def test_a_health_change_forgets_rendered_answers():
    index = make(*FAILOVER)
    for _ in range(2):
        assert addresses(ask(index, "fo")[0]) == {"192.0.2.1"}
    assert index.exact_udp  # cached
    set_health(index, "hc-p", False)
    assert not index.exact_udp
    assert addresses(ask(index, "fo")[0]) == {"192.0.2.2"}


def test_ecs_with_a_nonzero_scope_in_the_query_is_formerr():
    index = make(*GEOSETS)
    q = dns.message.make_query(f"geo.{ORIGIN}", "A")
    q.use_edns(0, options=[dns.edns.ECSOption("127.0.1.0", 24, 24)])
    m = dns.message.from_wire(index.respond(q.to_wire(), tcp=False, source="127.0.0.1"))
    assert m.rcode() == dns.rcode.FORMERR


def test_weighted_aliases_evaluating_target_health_leave_a_dead_target_out():
    targets = (a("dead", "p", "192.0.2.1", failover="PRIMARY", health="hc-d"),
               RecordSet(f"live.{ORIGIN}", "A", 60, ("192.0.2.2",)))
    sets = [RecordSet(f"w.{ORIGIN}", "A", set_identifier=t, weight=1,
                      alias=AliasTarget(f"{t}.{ORIGIN}", ZID, True)) for t in ("dead", "live")]
    index = make(*targets, *sets, health={"hc-d": False})
    assert index.resolve_all(f"w.{ORIGIN}", "A") == [("NOERROR", ("192.0.2.2",))]
    set_health(index, "hc-d", True)
    assert sorted(index.resolve_all(f"w.{ORIGIN}", "A")) == [("NOERROR", ("192.0.2.1",)),
                                                              ("NOERROR", ("192.0.2.2",))]


def test_too_many_outcomes_to_render_are_enumerated_once_then_answered_by_the_full_path():
    index = make(*multivalue(20))  # C(20, 8) = 125,970 subsets: more than are rendered
    for _ in range(5):
        assert len(addresses(ask(index, "mv")[0])) == 8
    assert index.stats["fill"] == 1 and index.stats["slow"] == 5


def test_multivalue_of_twelve_renders_every_subset_of_eight_once():
    index = make(*multivalue(12))
    seen = set()
    for r in (0.0, 0.3, 0.6, 0.99):
        index._random = lambda r=r: r
        for _ in range(2):
            got = addresses(ask(index, "mv")[0])
            assert len(got) == 8
            seen.add(frozenset(got))
    assert index.stats["fill"] == 1 and index.stats["slow"] == 0  # one fill, then the tables
    assert len(seen) == 4


def test_a_health_change_forgets_only_the_zones_that_name_the_check():
    index = make(*FAILOVER)
    other = RecordSet("o.test.", "SOA", 60, ("ns.o.test. h.o.test. 1 7200 900 1209600 30",))
    index.apply(JournalEntry(index.seq + 1, EntryKind.SNAPSHOT, "Z0O0TEST", "o.test.", 1, "",
                             (other, RecordSet("www.o.test.", "A", 60, ("192.0.2.77",)))))
    index.seq += 1
    plain = dns.message.make_query("www.o.test.", "A").to_wire()
    for _ in range(2):
        index.respond(plain, tcp=False)
        ask(index, "fo")
    assert plain[2:] in index.exact_udp and len(index.exact_udp) == 2
    set_health(index, "hc-p", False)
    assert plain[2:] in index.exact_udp and len(index.exact_udp) == 1  # o.test. kept its answer
    assert addresses(ask(index, "fo")[0]) == {"192.0.2.2"}


def test_route53_json_zone_files_with_routing_are_served_without_a_store(tmp_path):
    """`authd serve --control off --geo-map ...`: a zones/ JSON export keeps its routing."""
    import json

    from authd.dns.index import index_from_zones
    from authd.zonefiles.zonefile import load_zone_dir

    sets = [{"Name": "geo.test.", "Type": "SOA", "TTL": 900,
             "ResourceRecords": [{"Value": "ns.geo.test. h.geo.test. 1 7200 900 1209600 60"}]},
            {"Name": "geo.test.", "Type": "NS", "TTL": 900, "ResourceRecords": [{"Value": "ns.geo.test."}]},
            *(RecordSet("www.geo.test.", "A", 60, (v,), set_identifier=i,
                        routing=Routing(geo=g)).to_route53()
              for i, v, g in (("eu", "192.0.2.2", GeoLocation(continent="EU")),
                              ("any", "192.0.2.9", GeoLocation(country="*"))))]
    (tmp_path / "geo.test.json").write_text(json.dumps({"ResourceRecordSets": sets}))
    index = index_from_zones(load_zone_dir(tmp_path), geomap=GEO)
    q = dns.message.make_query("www.geo.test.", "A").to_wire()
    got = {src: addresses(dns.message.from_wire(index.respond(q, tcp=False, source=src)))
           for src in ("127.0.2.1", "127.0.4.1")}
    assert got == {"127.0.2.1": {"192.0.2.2"}, "127.0.4.1": {"192.0.2.9"}}


def test_latency_for_a_client_with_a_continent_but_no_region_prefers_its_continent():
    table = GeoMap.parse("10.9.0.0/16 EU DE - -\n10.8.0.0/16 - - - -\n")
    index = make(*LATENCY)
    index.set_geomap(table)
    assert addresses(ask(index, "lat", source="10.9.0.1")[0]) == {"192.0.2.20"}  # eu-west-1
    assert addresses(ask(index, "lat", source="10.8.0.1")[0]) == {"192.0.2.30"}  # first by id


def test_a_located_question_asked_without_a_source_address_is_answered_too():
    """The index's own callers (metrics folding its query counts) ask without an address."""
    index = make(*GEOSETS)
    q = dns.message.make_query(f"geo.{ORIGIN}", "A").to_wire()
    for tcp in (False, True, False):
        m = dns.message.from_wire(index.respond(q, tcp=tcp))
        assert addresses(m) == {"192.0.2.9"}  # no address, no location: the default
    assert addresses(ask(index, "geo", source="127.0.2.1")[0]) == {"192.0.2.4"}
