"""Routing-policy record sets in the change API: the batch rules with Route 53's texts
(`authd.model.changes`), the XML both ways (`authd.control.r53xml`), and every store keeping every field
(nothing silently dropped: the HealthCheckId regression)."""

from __future__ import annotations

import pytest

from authd.control import r53xml as X
from authd.model.changes import Accepted, Rejected, plan_batch
from authd.model.records import AliasTarget, GeoLocation, RecordSet, Routing
from authd.store.contract import Action, Change, InvalidChangeBatch, InvalidInput
from authd.store.memstore import MemoryStore
from authd.store.sqlstore import SQLiteStore
from tests.test_changes import NS, ORIGIN, SOA, ZID, View

HC = "0d6a1d2e-0000-4000-8000-00000000aaaa"
CID = "c0ffee00-0000-4000-8000-000000000003"
RESOURCES = {("healthcheck", HC): {"Type": "TCP"},
             ("cidrcollection", CID): {"Name": "offices", "Locations": {"hq": ["10.0.0.0/8"]}}}


def resource(kind, rid):
    return RESOURCES.get((kind, rid))


def plan(changes, sets=()):
    return plan_batch(ZID, ORIGIN, changes, View([SOA, NS, *sets]), resource=resource)


def rs(ident=None, *, name="www.api.aws.", value="192.0.2.1", weight=None, alias=None, **routing):
    kw = {"routing": Routing(**routing)} if routing else {}
    if alias is not None:
        return RecordSet(name, "A", set_identifier=ident, weight=weight,
                         alias=AliasTarget(alias, ZID, True), **kw)
    return RecordSet(name, "A", 60, (value,), set_identifier=ident, weight=weight, **kw)


def C(r):
    return Change(Action.CREATE, r)


def rejected(result, code="InvalidChangeBatch"):
    assert isinstance(result, Rejected), result
    assert result.code == code, result
    return list(result.messages)


POLICY_FIELDS = ("[Weight, Region, Failover, GeoLocation, MultiValueAnswer, GeoProximityLocation, "
                 "or CidrRoutingConfig]")


def test_two_policies_in_one_set_is_invalid_input_in_route53_words():
    got = rejected(plan([C(rs("a", weight=1, region="us-east-1"))]), "InvalidInput")
    assert got == [f"Invalid request: Expected exactly one of {POLICY_FIELDS}, but found more than "
                   "one in Change with [Action=CREATE, Name=www.api.aws., Type=A, SetIdentifier=a]"]


def test_set_identifier_without_a_policy_is_invalid_input():
    got = rejected(plan([C(rs("a"))]), "InvalidInput")
    assert got == [f"Invalid request: Expected exactly one of {POLICY_FIELDS}, but found none in "
                   "Change with [Action=CREATE, Name=www.api.aws., Type=A, SetIdentifier=a]"]


def test_a_policy_without_set_identifier_is_invalid_input():
    got = rejected(plan([C(rs(failover="SECONDARY"))]), "InvalidInput")
    assert got == ["Invalid request: Missing field 'SetIdentifier' in Change with "
                   "[Action=CREATE, Name=www.api.aws., Type=A, SetIdentifier=null]"]


def test_bad_enum_values_get_the_validation_error_form():
    got = rejected(plan([C(rs("a", failover="TERTIARY"))]), "InvalidInput")
    assert got == ["1 validation error detected: Value 'TERTIARY' at "
                   "'changeBatch.changes.1.member.resourceRecordSet.failover' failed to satisfy "
                   "constraint: Member must satisfy enum value set: [PRIMARY, SECONDARY]"]
    got = rejected(plan([C(rs("a", region="mars-1"))]), "InvalidInput")
    assert got[0].startswith("1 validation error detected: Value 'mars-1' at "
                             "'changeBatch.changes.1.member.resourceRecordSet.region'")


@pytest.mark.parametrize(("geo", "fragment"), [
    (GeoLocation(continent="XX"), "Unsupported continent code XX"),
    (GeoLocation(country="XX"), "Unsupported country code XX"),
    (GeoLocation(country="DE", subdivision="BY"), "Unsupported subdivision code BY for country DE"),
    (GeoLocation(continent="EU", country="DE"), "ContinentCode cannot be specified with CountryCode"),
])
def test_geolocation_codes_are_checked(geo, fragment):
    (got,) = rejected(plan([C(rs("a", geo=geo))]), "InvalidInput")
    assert fragment in got and got.endswith("SetIdentifier=a]")


def test_valid_geolocations_are_accepted():
    ok = plan([C(rs("ca", geo=GeoLocation(country="US", subdivision="CA"))),
               C(rs("eu", geo=GeoLocation(continent="EU"))),
               C(rs("default", geo=GeoLocation(country="*")))])
    assert isinstance(ok, Accepted) and len(ok.puts) == 3


def test_all_sets_at_a_name_and_type_share_one_policy():
    existing = [rs("w", weight=1)]
    got = rejected(plan([C(rs("lat", region="eu-west-2"))], existing))
    assert got == ["RRSet with DNS name www.api.aws., type A, SetIdentifier lat, and Region "
                   "Name=eu-west-2 cannot be created because a non-latency RRSet with the same "
                   "name and type already exists."]
    got = rejected(plan([C(rs("eu", geo=GeoLocation(continent="NA")))], existing))
    assert got == ["RRSet with DNS name www.api.aws., type A, SetIdentifier eu, and routing to "
                   "[continent = (NA, North America)] cannot be created because a non-GEO RRSet "
                   "with the same name and type already exists."]


def test_failover_at_most_one_primary_and_one_secondary():
    existing = [rs("p1", failover="PRIMARY", health_check_id=HC)]
    (got,) = rejected(plan([C(rs("p2", value="192.0.2.2", failover="PRIMARY", health_check_id=HC))],
                           existing))
    assert got.startswith("RRSet with DNS name www.api.aws., type A, SetIdentifier p2, and failover "
                          "PRIMARY cannot be created because another RRSet")
    ok = plan([C(rs("s", value="192.0.2.2", failover="SECONDARY"))], existing)
    assert isinstance(ok, Accepted)


def test_a_non_alias_primary_needs_a_health_check_an_alias_primary_does_not():
    got = rejected(plan([C(rs("p", failover="PRIMARY"))]))
    assert got == ["A non-alias primary ResourceRecordSet must have an associated health check."]
    target = RecordSet("pool.api.aws.", "A", 60, ("192.0.2.9",))
    ok = plan([C(rs("p", alias="pool.api.aws.", failover="PRIMARY"))], [target])
    assert isinstance(ok, Accepted)


def test_multivalue_sets_cannot_be_aliases():
    target = RecordSet("pool.api.aws.", "A", 60, ("192.0.2.9",))
    (got,) = rejected(plan([C(rs("m", alias="pool.api.aws.", multivalue=True))], [target]))
    assert "Multivalue answer records cannot be alias records" in got


def test_health_check_must_exist():
    got = rejected(plan([C(rs("w", weight=1, health_check_id="0d6a1d2e-0000-4000-8000-00000000ffff"))]),
                   "NoSuchHealthCheck")
    assert got == ["No health check exists with the specified ID."]
    assert isinstance(plan([C(rs("w", weight=1, health_check_id=HC))]), Accepted)


def test_cidr_location_must_exist_in_its_collection():
    assert isinstance(plan([C(rs("hq", cidr=(CID, "hq"))), C(rs("d", value="192.0.2.2", cidr=(CID, "*")))]),
                      Accepted)
    got = rejected(plan([C(rs("x", cidr=(CID, "branch")))]))
    assert got == [f"CIDR location branch does not exist in CIDR collection {CID}."]
    other = "c0ffee00-0000-4000-8000-0000000000ff"
    got = rejected(plan([C(rs("x", cidr=(other, "hq")))]))
    assert got == [f"CIDR collection {other} does not exist."]


def test_delete_must_match_the_routing_fields_too():
    existing = [rs("w", weight=1, health_check_id=HC)]
    got = rejected(plan([Change(Action.DELETE, rs("w", weight=1))], existing))
    assert got[0].endswith("but the values provided do not match the current values")
    assert isinstance(plan([Change(Action.DELETE, existing[0])], existing), Accepted)


# --- the octoDNS dynamic-record shape: weighted pools, failover between pools, geo rules ----

def test_octodns_dynamic_record_shape_is_accepted():
    """What octodns-route53 writes for a dynamic record (FIELD-NOTES): weighted value sets with
    health checks, failover PRIMARY (alias, evaluating target health) / SECONDARY per pool,
    and geolocation sets at the name aliasing the pools, `*` as the default."""
    z = "api.aws."
    vals = [RecordSet(f"_octodns-{p}-value.www.{z}", "A", 60, (v,), set_identifier=v, weight=1,
                      routing=Routing(health_check_id=HC))
            for p, v in (("eu", "192.0.2.1"), ("us", "192.0.2.2"))]
    pools = []
    for p in ("eu", "us"):
        pools.append(RecordSet(f"_octodns-{p}-pool.www.{z}", "A", set_identifier=f"{p}-Primary",
                               alias=AliasTarget(f"_octodns-{p}-value.www.{z}", ZID, True),
                               routing=Routing(failover="PRIMARY")))
        pools.append(RecordSet(f"_octodns-{p}-pool.www.{z}", "A", 60, ("192.0.2.99",),
                               set_identifier=f"{p}-Secondary-default",
                               routing=Routing(failover="SECONDARY")))
    rules = [RecordSet(f"www.{z}", "A", set_identifier=f"0-{p}-{g}",
                       alias=AliasTarget(f"_octodns-{p}-pool.www.{z}", ZID, True),
                       routing=Routing(geo=geo))
             for p, g, geo in (("eu", "EU", GeoLocation(continent="EU")),
                               ("us", "default", GeoLocation(country="*")))]
    result = plan([C(x) for x in (*vals, *pools, *rules)])
    assert isinstance(result, Accepted), result
    assert len(result.puts) == 8


# --- XML both ways and the stores ----------------------------------------------------------

ALL = [
    rs("w", weight=5, health_check_id=HC),
    rs("lat", name="lat.api.aws.", region="eu-west-1", health_check_id=HC),
    rs("p", name="fo.api.aws.", failover="PRIMARY", health_check_id=HC),
    rs("g", name="geo.api.aws.", geo=GeoLocation(country="US", subdivision="CA")),
    rs("mv", name="mv.api.aws.", multivalue=True),
    rs("ip", name="ip.api.aws.", cidr=(CID, "hq")),
]


def batch_xml(sets):
    body = "".join(
        f"<Change><Action>CREATE</Action>{X.record_set_xml(r)}</Change>" for r in sets)
    return (f'<ChangeResourceRecordSetsRequest xmlns="{X.NS}"><ChangeBatch><Changes>{body}'
            "</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>").encode()


def test_every_routing_field_survives_xml_both_ways():
    _, changes = X.parse_change_batch_xml(batch_xml(ALL))
    assert [c.rrset for c in changes] == ALL


def test_botocore_serialisation_of_a_weighted_set_with_health_check_keeps_it():
    """The regression: a weighted set sent with HealthCheckId used to be stored without it."""
    import botocore.session
    from botocore.serialize import create_serializer

    model = botocore.session.get_session().get_service_model("route53")
    op = model.operation_model("ChangeResourceRecordSets")
    req = create_serializer("rest-xml").serialize_to_request({
        "HostedZoneId": ZID,
        "ChangeBatch": {"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
            "Name": "www.api.aws.", "Type": "A", "SetIdentifier": "w", "Weight": 5, "TTL": 60,
            "ResourceRecords": [{"Value": "192.0.2.1"}], "HealthCheckId": HC}}]}}, op)
    _, changes = X.parse_change_batch_xml(req["body"])
    assert changes[0].rrset.health_check_id == HC
    assert changes[0].rrset == ALL[0]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgresql"])
def test_stores_keep_and_list_back_every_routing_field(kind, tmp_path, request):
    if kind == "postgresql":
        pgstore = pytest.importorskip("authd.store.pgstore")
        store = pgstore.PostgresStore(request.getfixturevalue("pg_url"))
    else:
        store = MemoryStore() if kind == "memory" else SQLiteStore(str(tmp_path / "s.db"))
    zone, _ = store.create_zone(ORIGIN, "ref")
    with pytest.raises(InvalidChangeBatch) as exc:
        store.change_batch(zone.id, [C(ALL[0])])
    assert exc.value.code == "NoSuchHealthCheck"  # nothing written: the check is not there yet
    store.put_resource("healthcheck", HC, {"Type": "TCP"})
    store.put_resource("cidrcollection", CID, RESOURCES[("cidrcollection", CID)], journal=True)
    store.change_batch(zone.id, [C(r) for r in ALL])
    listed = [r for r in store.record_sets(zone.id) if r.set_identifier]
    assert sorted(listed, key=lambda r: r.name) == sorted(ALL, key=lambda r: r.name)
    journaled = [p for e in store.journal_since(0) for p in e.puts if p.set_identifier]
    assert sorted(journaled, key=lambda r: r.name) == sorted(ALL, key=lambda r: r.name)
    with pytest.raises(InvalidInput):
        store.change_batch(zone.id, [C(rs("bare", name="bare.api.aws."))])
    if kind == "sqlite":
        store.close()
        again = SQLiteStore(str(tmp_path / "s.db"))
        assert sorted([r for r in again.record_sets(zone.id) if r.set_identifier],
                      key=lambda r: r.name) == sorted(ALL, key=lambda r: r.name)
        again.close()


def test_geoproximity_is_refused_not_dropped():
    body = batch_xml([rs("gp", name="gp.api.aws.", region="us-east-1")]).replace(
        b"<Region>us-east-1</Region>",
        b"<GeoProximityLocation><AWSRegion>us-east-1</AWSRegion></GeoProximityLocation>")
    with pytest.raises(X.BadRequest) as exc:
        X.parse_change_batch_xml(body)
    # refused by name: the generic unknown-element check (r53xml.IMPLEMENTED) speaks first
    assert "GeoProximityLocation" in exc.value.messages[0]
