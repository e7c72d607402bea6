"""Model conformance: every operation authd serves answers in the shape botocore's Route 53
model gives (issue 11 section 4), checked on the raw XML, not on what boto3 makes of it.

The responses are captured from real boto3 calls (botocore's `after-call` event hands over
the raw HTTP response) and walked by `tests.r53_model.check_response`. A scenario drives
every operation of the zone/record core and of the surface in `authd.control.api_routes` through
its success path and its refusals; any operation the router declares that the scenario does
not know (health checks, CIDR collections, ... added elsewhere) is called with a synthetic
input built from the model, and whatever comes back, success or error, must conform too.
Finally every operation of the model is probed: the router answers exactly the declared
ones, and UnknownOperation (404) for the rest.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import botocore.exceptions
import pytest

from authd.control.api_routes import implemented_operations
from authd.control.app import ControlAPI
from authd.model.limits import Limits
from authd.store.sqlstore import SQLiteStore
from authd.zonefiles.seed import seed_store
from authd.zonefiles.zonefile import load_zone_dir
from tests.control_helpers import client, running
from tests.r53_model import check_response, synthetic_input

ZONES = Path(__file__).resolve().parent.parent / "zones"

# operations authd serves only to refuse (DNSSEC mutations: authd does not sign zones)
REFUSE_ONLY = {
    "EnableHostedZoneDNSSEC", "DisableHostedZoneDNSSEC", "CreateKeySigningKey",
    "ActivateKeySigningKey", "DeactivateKeySigningKey", "DeleteKeySigningKey",
}


class Recorder:
    """Every raw response boto3 received: (operation model, status, body, headers)."""

    def __init__(self, r53):
        self.seen: list[tuple[object, int, bytes, dict[str, str]]] = []
        event = f"after-call.{r53.meta.service_model.service_id.hyphenize()}"
        r53.meta.events.register(event, self.record)

    def record(self, http_response, model, **_):
        self.seen.append((model, http_response.status_code, http_response.content, dict(http_response.headers)))

    def problems(self) -> list[str]:
        out: list[str] = []
        for op, status, body, headers in self.seen:
            out += check_response(op, status, body, headers)
        return out

    def operations(self, ok: bool | None = None) -> set[str]:
        return {op.name for op, status, _, _ in self.seen if ok is None or (status < 300) == ok}


@pytest.fixture
def api(tmp_path):
    store = SQLiteStore(tmp_path / "authd.db")
    seed_store(store, load_zone_dir(ZONES))
    app = ControlAPI(store, limits=Limits({"MAX_HOSTED_ZONES_BY_OWNER": 50, "MAX_RRSETS_BY_ZONE": 10}))
    with running(app) as url:
        r53 = client(url)
        yield r53, Recorder(r53)
    store.close()


def refused(call, code: str, **kw) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kw)
    assert info.value.response["Error"]["Code"] == code, info.value.response


def scenario(r53) -> None:
    """Every core and surface operation, through its success path and its refusals."""
    r53.list_hosted_zones(MaxItems="1")
    r53.list_hosted_zones_by_name(DNSName="api.aws", MaxItems="1")
    r53.get_hosted_zone(Id="Z0API0AWS")
    r53.get_hosted_zone_count()
    made = r53.create_hosted_zone(Name="model.test", CallerReference="model-1",
                                  HostedZoneConfig={"Comment": "conformance"})
    zid = made["HostedZone"]["Id"]
    r53.update_hosted_zone_comment(Id=zid, Comment="still conformance")
    change = r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Comment": "c", "Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "www.model.test", "Type": "A", "TTL": 60,
                                                   "ResourceRecords": [{"Value": "192.0.2.9"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "w.model.test", "Type": "A", "SetIdentifier": "one",
                                                   "Weight": 5, "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.10"}]}},
    ]})
    r53.get_change(Id=change["ChangeInfo"]["Id"])
    r53.list_resource_record_sets(HostedZoneId=zid, MaxItems="1")
    r53.list_resource_record_sets(HostedZoneId="Z0API0AWS")
    refused(r53.get_hosted_zone, "NoSuchHostedZone", Id="Z0NOPE")
    refused(r53.change_resource_record_sets, "InvalidChangeBatch", HostedZoneId=zid, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": f"n{i}.model.test", "Type": "A", "TTL": 60,
                                                   "ResourceRecords": [{"Value": "192.0.2.9"}]}} for i in range(7)]})

    # tags
    r53.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zid.split("/")[-1],
                                 AddTags=[{"Key": "team", "Value": "dns"}, {"Key": "env", "Value": ""}])
    r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zid.split("/")[-1])
    r53.list_tags_for_resources(ResourceType="hostedzone", ResourceIds=[zid.split("/")[-1], "Z0API0AWS"])
    refused(r53.list_tags_for_resource, "NoSuchHostedZone", ResourceType="hostedzone", ResourceId="Z0NOPE")
    refused(r53.list_tags_for_resource, "NoSuchHealthCheck", ResourceType="healthcheck", ResourceId="nope")
    refused(r53.change_tags_for_resource, "InvalidInput", ResourceType="hostedzone", ResourceId="Z0API0AWS",
            AddTags=[{"Key": f"k{i}", "Value": "v"} for i in range(11)])

    # quotas
    for t in ("MAX_HEALTH_CHECKS_BY_OWNER", "MAX_HOSTED_ZONES_BY_OWNER", "MAX_TRAFFIC_POLICY_INSTANCES_BY_OWNER",
              "MAX_REUSABLE_DELEGATION_SETS_BY_OWNER", "MAX_TRAFFIC_POLICIES_BY_OWNER"):
        r53.get_account_limit(Type=t)
    r53.get_hosted_zone_limit(HostedZoneId=zid, Type="MAX_RRSETS_BY_ZONE")
    refused(r53.get_account_limit, "InvalidInput", Type="MAX_NOTHING")
    refused(r53.create_hosted_zone, "NoSuchDelegationSet", Name="nods.model.test", CallerReference="model-3",
            DelegationSetId="N09999999")
    refused(r53.get_hosted_zone_limit, "HostedZoneNotPrivate", HostedZoneId=zid, Type="MAX_VPCS_ASSOCIATED_BY_ZONE")

    # reusable delegation sets
    ds = r53.create_reusable_delegation_set(CallerReference="model-ds")["DelegationSet"]
    refused(r53.create_reusable_delegation_set, "DelegationSetAlreadyCreated", CallerReference="model-ds")
    r53.get_reusable_delegation_set(Id=ds["Id"])
    r53.list_reusable_delegation_sets()
    in_set = r53.create_hosted_zone(Name="in-set.model.test", CallerReference="model-2", DelegationSetId=ds["Id"])
    r53.list_hosted_zones(DelegationSetId=ds["Id"])
    r53.get_reusable_delegation_set_limit(DelegationSetId=ds["Id"], Type="MAX_ZONES_BY_REUSABLE_DELEGATION_SET")
    refused(r53.delete_reusable_delegation_set, "DelegationSetInUse", Id=ds["Id"])
    r53.delete_hosted_zone(Id=in_set["HostedZone"]["Id"])
    r53.delete_reusable_delegation_set(Id=ds["Id"])
    refused(r53.get_reusable_delegation_set, "NoSuchDelegationSet", Id=ds["Id"])

    # reference data
    r53.get_checker_ip_ranges()
    r53.list_geo_locations(MaxItems="3")
    r53.list_geo_locations(StartCountryCode="US", StartSubdivisionCode="WY", MaxItems="2")
    r53.get_geo_location(ContinentCode="EU")
    r53.get_geo_location(CountryCode="US", SubdivisionCode="CA")
    refused(r53.get_geo_location, "NoSuchGeoLocation", CountryCode="ZZ")
    refused(r53.list_geo_locations, "InvalidInput", StartCountryCode="ZZ")

    # DNSSEC: reads NOT_SIGNING; every mutation refused
    r53.get_dnssec(HostedZoneId=zid)
    refused(r53.enable_hosted_zone_dnssec, "KeySigningKeyWithActiveStatusNotFound", HostedZoneId=zid)
    refused(r53.disable_hosted_zone_dnssec, "DNSSECNotFound", HostedZoneId=zid)
    refused(r53.create_key_signing_key, "InvalidKMSArn", CallerReference="k", HostedZoneId=zid,
            KeyManagementServiceArn="arn:aws:kms:us-east-1:111122223333:key/x", Name="ksk", Status="ACTIVE")
    for call in (r53.activate_key_signing_key, r53.deactivate_key_signing_key, r53.delete_key_signing_key):
        refused(call, "NoSuchKeySigningKey", HostedZoneId=zid, Name="ksk")

    # the real answer pipeline
    r53.test_dns_answer(HostedZoneId="Z0API0AWS", RecordName="dynamodb.us-east-1.api.aws", RecordType="A",
                        ResolverIP="127.0.0.1", EDNS0ClientSubnetIP="127.0.0.0", EDNS0ClientSubnetMask="24")
    r53.test_dns_answer(HostedZoneId=zid, RecordName="nothing.model.test", RecordType="A")


def test_every_response_conforms_to_the_model(api):
    r53, rec = api
    scenario(r53)
    declared = implemented_operations()
    # operations declared elsewhere (health checks, CIDR collections, ...) the scenario
    # does not know: a synthetic call each, whose answer must conform just the same
    model = r53.meta.service_model
    for name in declared:
        if name in rec.operations():
            continue
        op = model.operation_model(name)
        params = synthetic_input(op.input_shape) if op.input_shape is not None else {}
        with contextlib.suppress(botocore.exceptions.ClientError):
            getattr(r53, _method(r53, name))(**params)
    assert rec.problems() == []
    assert set(declared) - rec.operations() == set(), "declared operations never answered"


def _method(r53, operation: str) -> str:
    return {v: k for k, v in r53.meta.method_to_api_mapping.items()}[operation]


def _scenario_names() -> set[str]:
    import inspect

    from botocore import xform_name

    source = inspect.getsource(scenario)
    return {name for name in implemented_operations() if f"r53.{xform_name(name)}" in source}


def test_scenario_succeeds_on_every_operation_it_drives(api):
    r53, rec = api
    scenario(r53)
    driven = _scenario_names()
    assert driven - REFUSE_ONLY <= rec.operations(ok=True)
    assert rec.operations(ok=False) >= REFUSE_ONLY
    assert rec.problems() == []


def test_the_router_answers_exactly_the_declared_operations(api):
    """Every operation of the model, with a synthetic input: the declared ones answer (and
    their answers, mostly refusals of made-up ids, conform); the rest are UnknownOperation."""
    r53, rec = api
    model = r53.meta.service_model
    declared = set(implemented_operations())
    unknown_to_model = declared - set(model.operation_names)
    assert unknown_to_model == set(), "declared names botocore does not know"
    routed_but_undeclared: list[str] = []
    declared_but_unrouted: list[str] = []
    for name in model.operation_names:
        op = model.operation_model(name)
        params = synthetic_input(op.input_shape) if op.input_shape is not None else {}
        try:
            getattr(r53, _method(r53, name))(**params)
            code = None
        except botocore.exceptions.ClientError as exc:
            code = exc.response["Error"]["Code"]
        if code == "UnknownOperation" and name in declared:
            declared_but_unrouted.append(name)
        elif code != "UnknownOperation" and name not in declared:
            routed_but_undeclared.append(name)
    assert declared_but_unrouted == []
    answered = [(op, st, b, h) for op, st, b, h in rec.seen if op.name in declared]
    assert len(answered) == len(declared)
    assert [p for op, st, b, h in answered for p in check_response(op, st, b, h)] == []
    assert routed_but_undeclared == [], (
        "routed but not declared: add them to authd.control.api_routes (CORE_OPERATIONS or register())"
    )


def test_the_checker_catches_what_boto3_ignores():
    """The validator itself: an unknown member, a missing required one, a bad type, a bad
    enum each give a problem (so an empty problem list above means something)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("route53")
    op = model.operation_model("GetAccountLimit")
    ns = 'xmlns="https://route53.amazonaws.com/doc/2013-04-01/"'
    good = f"<GetAccountLimitResponse {ns}><Limit><Type>MAX_HOSTED_ZONES_BY_OWNER</Type><Value>5</Value></Limit><Count>1</Count></GetAccountLimitResponse>"
    assert check_response(op, 200, good.encode(), {}) == []
    for bad in (
        good.replace("<Count>1</Count>", "<Count>1</Count><Extra>x</Extra>"),
        good.replace("<Count>1</Count>", ""),
        good.replace("<Value>5</Value>", "<Value>five</Value>"),
        good.replace("MAX_HOSTED_ZONES_BY_OWNER", "MAX_ZONES"),
        good.replace("<Count>1</Count>", "<Count>1</Count><Count>2</Count>"),
    ):
        assert check_response(op, 200, bad.encode(), {}) != [], bad
    assert check_response(op, 201, good.encode(), {}) != []
    err = model.operation_model("GetHostedZone")
    body = f"<ErrorResponse {ns}><Error><Type>Sender</Type><Code>NoSuchHostedZone</Code><Message>m</Message></Error><RequestId>r</RequestId></ErrorResponse>"
    assert check_response(err, 404, body.encode(), {}) == []
    assert check_response(err, 400, body.encode(), {}) != []  # the model says 404
    assert check_response(err, 400, body.replace("NoSuchHostedZone", "NoSuchThing").encode(), {}) != []
