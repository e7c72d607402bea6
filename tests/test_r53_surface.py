"""The rest of the hosted-zone surface (issue 11 section 3) with boto3 as the client: tags,
quotas (reported and enforced), reusable delegation sets, geo locations, checker ranges,
DNSSEC refusals and TestDNSAnswer. Every refusal is checked to change nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import botocore.exceptions
import httpx
import pytest

from authd.control import api_geo
from authd.control.app import ControlAPI
from authd.model.changes import Accepted, Rejected, plan_batch
from authd.model.limits import DEFAULTS, LimitError, Limits
from authd.model.records import RecordSet
from authd.store.contract import Action, Change
from authd.store.sqlstore import SQLiteStore
from authd.zonefiles.seed import seed_store
from authd.zonefiles.zonefile import load_zone_dir
from tests.control_helpers import client, running
from tests.test_control import signed

ROOT = Path(__file__).resolve().parent.parent
ZONES = ROOT / "zones"


def start(tmp_path, **limits):
    store = SQLiteStore(tmp_path / "authd.db")
    seed_store(store, load_zone_dir(ZONES))
    return store, ControlAPI(store, limits=Limits(limits))


@pytest.fixture
def api(tmp_path):
    store, app = start(tmp_path)
    with running(app) as url:
        yield url, client(url), store
    store.close()


def error_of(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kw)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"], \
        info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def rrset(name, value="192.0.2.1"):
    return {"Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": value}]}


# --- tags ------------------------------------------------------------------------------------


def test_tags_add_edit_remove_and_survive_a_restart(tmp_path):
    store, app = start(tmp_path)
    with running(app) as url:
        r53 = client(url)
        r53.change_tags_for_resource(ResourceType="hostedzone", ResourceId="Z0API0AWS",
                                     AddTags=[{"Key": "team", "Value": "dns"}, {"Key": "env", "Value": "test"}])
        r53.change_tags_for_resource(ResourceType="hostedzone", ResourceId="Z0API0AWS",
                                     AddTags=[{"Key": "team", "Value": "sre"}], RemoveTagKeys=["env"])
        got = r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId="Z0API0AWS")["ResourceTagSet"]
        assert got == {"ResourceType": "hostedzone", "ResourceId": "Z0API0AWS", "Tags": [{"Key": "team", "Value": "sre"}]}
    store.close()
    store, app = start(tmp_path)  # the same file, a new process's view of it
    with running(app) as url:
        sets = client(url).list_tags_for_resources(ResourceType="hostedzone", ResourceIds=["Z0API0AWS", "Z0AMAZONAWS"])
        assert [(s["ResourceId"], s["Tags"]) for s in sets["ResourceTagSets"]] == [
            ("Z0API0AWS", [{"Key": "team", "Value": "sre"}]), ("Z0AMAZONAWS", [])]
    store.close()


def test_tag_limits_and_bad_input_change_nothing(api):
    url, r53, store = api
    r53.change_tags_for_resource(ResourceType="hostedzone", ResourceId="Z0API0AWS",
                                 AddTags=[{"Key": f"k{i}", "Value": "v"} for i in range(8)])
    before = store.get_resource("tags", "hostedzone/Z0API0AWS")
    # a resource holds at most 10 tags (Route 53 API reference, ChangeTagsForResource)
    code, msg, status = error_of(r53.change_tags_for_resource, ResourceType="hostedzone", ResourceId="Z0API0AWS",
                                 AddTags=[{"Key": f"n{i}", "Value": "v"} for i in range(3)])
    assert (code, status) == ("InvalidInput", 400) and "maximum of 10 tags" in msg
    # at most 10 per request: the XML schema's own words
    code, msg, _ = error_of(r53.change_tags_for_resource, ResourceType="hostedzone", ResourceId="Z0API0AWS",
                            RemoveTagKeys=[f"k{i}" for i in range(11)])
    assert code == "InvalidInput" and "'Key' can occur a maximum of '10' times" in msg
    code, msg, _ = error_of(r53.list_tags_for_resources, ResourceType="hostedzone",
                            ResourceIds=["Z0API0AWS"] * 11)
    assert code == "InvalidInput" and "'ResourceId' can occur a maximum of '10' times" in msg
    # unknown resources
    assert error_of(r53.list_tags_for_resource, ResourceType="hostedzone", ResourceId="Z0NOPE")[:1] == ("NoSuchHostedZone",)
    code, _, status = error_of(r53.change_tags_for_resource, ResourceType="healthcheck", ResourceId="hc-nope",
                               AddTags=[{"Key": "a", "Value": "b"}])
    assert (code, status) == ("NoSuchHealthCheck", 404)
    # an element authd does not implement is named, not dropped (issue 11 section 4)
    body = (b'<ChangeTagsForResourceRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            b"<AddTags><Tag><Key>a</Key><Value>b</Value><Colour>red</Colour></Tag></AddTags>"
            b"</ChangeTagsForResourceRequest>")
    r = signed(url, "POST", "/2013-04-01/tags/hostedzone/Z0API0AWS", body)
    assert r.status_code == 400 and "<Code>InvalidInput</Code>" in r.text and "Colour" in r.text
    r = signed(url, "GET", "/2013-04-01/tags/trafficpolicy/Z0API0AWS")
    assert r.status_code == 400 and "enum value set" in r.text
    assert store.get_resource("tags", "hostedzone/Z0API0AWS") == before


def test_health_check_tags_and_a_recreated_zone_starts_untagged(api):
    _, r53, store = api
    store.put_resource("healthcheck", "hc-1", {"CallerReference": "hc-ref"})  # as the health-check API stores one
    r53.change_tags_for_resource(ResourceType="healthcheck", ResourceId="hc-1", AddTags=[{"Key": "Name", "Value": "web"}])
    assert r53.list_tags_for_resource(ResourceType="healthcheck", ResourceId="hc-1")["ResourceTagSet"]["Tags"] == [
        {"Key": "Name", "Value": "web"}]
    zid = r53.create_hosted_zone(Name="tagged.test", CallerReference="t1")["HostedZone"]["Id"].split("/")[-1]
    r53.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zid, AddTags=[{"Key": "a", "Value": "1"}])
    r53.delete_hosted_zone(Id=zid)
    again = r53.create_hosted_zone(Name="tagged.test", CallerReference="t2")["HostedZone"]["Id"].split("/")[-1]
    assert again == zid  # ids come from the name, so only the owner check keeps tags apart
    assert r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zid)["ResourceTagSet"]["Tags"] == []


# --- quotas --------------------------------------------------------------------------------------


def test_limits_parse_and_refuse_nonsense():
    limits = Limits.parse(["max_hosted_zones_by_owner=3", "MAX_RRSETS_BY_ZONE = 7"])
    assert limits["MAX_HOSTED_ZONES_BY_OWNER"] == 3 and limits["MAX_RRSETS_BY_ZONE"] == 7
    assert limits["MAX_HEALTH_CHECKS_BY_OWNER"] == DEFAULTS["MAX_HEALTH_CHECKS_BY_OWNER"] == 200
    for bad in (["NOPE=1"], ["MAX_RRSETS_BY_ZONE"], ["MAX_RRSETS_BY_ZONE=0"], ["MAX_RRSETS_BY_ZONE=x"]):
        with pytest.raises(LimitError):
            Limits.parse(bad)


def test_serve_refuses_a_bad_limit_flag():
    proc = subprocess.run([sys.executable, "-m", "authd", "serve", "--limit", "MAX_ZONES=1", "--store", ":memory:"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "unknown limit 'MAX_ZONES'" in proc.stderr


def test_hosted_zone_quota_is_enforced_and_reported(tmp_path):
    store, app = start(tmp_path, MAX_HOSTED_ZONES_BY_OWNER=4)
    with running(app) as url:
        r53 = client(url)
        seeded = r53.get_hosted_zone_count()["HostedZoneCount"]
        assert seeded == len(store.list_zones()) == 3
        r53.create_hosted_zone(Name="fourth.test", CallerReference="z4")
        got = r53.get_account_limit(Type="MAX_HOSTED_ZONES_BY_OWNER")
        assert (got["Limit"], got["Count"]) == ({"Type": "MAX_HOSTED_ZONES_BY_OWNER", "Value": 4}, 4)
        code, msg, status = error_of(r53.create_hosted_zone, Name="fifth.test", CallerReference="z5")
        assert (code, status) == ("TooManyHostedZones", 400) and "limit on the number of hosted zones" in msg
        assert store.get_zone("Z0FIFTH0TEST") is None and r53.get_hosted_zone_count()["HostedZoneCount"] == 4
        assert error_of(r53.get_account_limit, Type="MAX_ZONES")[0] == "InvalidInput"
    store.close()


def test_record_set_quota_is_enforced_in_the_batch_rules(tmp_path):
    store, app = start(tmp_path, MAX_RRSETS_BY_ZONE=5)
    with running(app) as url:
        r53 = client(url)
        zid = r53.create_hosted_zone(Name="small.test", CallerReference="s1")["HostedZone"]["Id"]
        batch = [{"Action": "CREATE", "ResourceRecordSet": rrset(f"n{i}.small.test")} for i in range(3)]
        r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": batch})  # SOA + NS + 3 = 5
        lim = r53.get_hosted_zone_limit(HostedZoneId=zid, Type="MAX_RRSETS_BY_ZONE")
        assert (lim["Limit"]["Value"], lim["Count"]) == (5, 5)
        before = store.record_sets(zid.split("/")[-1])
        more = {"Changes": [{"Action": "CREATE", "ResourceRecordSet": rrset("n9.small.test")}]}
        with pytest.raises(r53.exceptions.InvalidChangeBatch) as info:
            r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch=more)
        assert "would exceed its limit of 5 resource record sets" in info.value.response["Error"]["Message"]
        assert store.record_sets(zid.split("/")[-1]) == before
        # a batch that swaps one set for another keeps the count: allowed at the limit
        swap = {"Changes": [{"Action": "DELETE", "ResourceRecordSet": rrset("n0.small.test")},
                            {"Action": "CREATE", "ResourceRecordSet": rrset("n9.small.test")}]}
        r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch=swap)
        code, _, _ = error_of(r53.get_hosted_zone_limit, HostedZoneId=zid, Type="MAX_VPCS_ASSOCIATED_BY_ZONE")
        assert code == "HostedZoneNotPrivate"
    store.close()


def test_plan_batch_record_set_limit_is_pure_and_exact():
    soa = RecordSet("q.test.", "SOA", 900, ("ns1.q.test. h.q.test. 1 7200 900 1209600 60",))
    ns = RecordSet("q.test.", "NS", 172800, ("ns1.q.test.",))

    class View:
        def at(self, name):
            return [soa, ns] if name == "q.test." else []

    two = [Change(Action.CREATE, RecordSet(f"{n}.q.test.", "A", 60, ("192.0.2.1",))) for n in "ab"]
    assert isinstance(plan_batch("ZQ", "q.test.", two, View(), record_set_count=2, max_record_sets=4), Accepted)
    over = plan_batch("ZQ", "q.test.", two, View(), record_set_count=2, max_record_sets=3)
    assert isinstance(over, Rejected) and over.messages == (
        "The hosted zone ZQ would exceed its limit of 3 resource record sets (MAX_RRSETS_BY_ZONE).",)
    assert isinstance(plan_batch("ZQ", "q.test.", two, View(), record_set_count=2), Accepted)  # no limit given


# --- reusable delegation sets -------------------------------------------------------------------


def test_delegation_set_lifecycle(api):
    url, r53, store = api
    made = r53.create_reusable_delegation_set(CallerReference="ds-a")
    ds = made["DelegationSet"]
    assert ds["Id"] == "/delegationset/N00000001" and made["Location"].endswith("/delegationset/N00000001")
    assert ds["NameServers"] == [f"ns{i}.n00000001.authd.test." for i in range(1, 5)]
    zone = r53.create_hosted_zone(Name="shared.test", CallerReference="sh1", DelegationSetId="N00000001")
    assert zone["DelegationSet"] == {"Id": "/delegationset/N00000001", "NameServers": ds["NameServers"]}
    zid = zone["HostedZone"]["Id"].split("/")[-1]
    listed = r53.list_hosted_zones(DelegationSetId="N00000001")["HostedZones"]
    assert [z["Id"] for z in listed] == [zone["HostedZone"]["Id"]]
    assert error_of(r53.list_hosted_zones, DelegationSetId="N00000077")[0] == "NoSuchDelegationSet"
    assert r53.list_hosted_zones(HostedZoneType="PrivateHostedZone")["HostedZones"] == []  # all public
    assert error_of(r53.list_hosted_zones, HostedZoneType="Public")[0] == "InvalidInput"
    # the zone's apex NS set is the delegation set's, in the store and so in DNS
    assert store.get_record_sets(zid, "shared.test.", "NS")[0].values == tuple(ds["NameServers"])
    soa = store.get_record_sets(zid, "shared.test.", "SOA")[0].values[0]
    assert soa.startswith("ns1.n00000001.authd.test. hostmaster.shared.test. ")
    assert r53.get_hosted_zone(Id=zid)["DelegationSet"]["Id"] == "/delegationset/N00000001"
    lim = r53.get_reusable_delegation_set_limit(DelegationSetId="N00000001", Type="MAX_ZONES_BY_REUSABLE_DELEGATION_SET")
    assert (lim["Limit"]["Value"], lim["Count"]) == (100, 1)
    assert error_of(r53.delete_reusable_delegation_set, Id="N00000001")[0] == "DelegationSetInUse"
    assert store.get_resource("delegationset", "N00000001") is not None
    r53.delete_hosted_zone(Id=zid)
    r53.delete_reusable_delegation_set(Id="N00000001")
    assert error_of(r53.get_reusable_delegation_set, Id="N00000001")[0] == "NoSuchDelegationSet"
    # ids are never reused
    assert r53.create_reusable_delegation_set(CallerReference="ds-b")["DelegationSet"]["Id"] == "/delegationset/N00000002"
    assert [d["Id"] for d in r53.list_reusable_delegation_sets()["DelegationSets"]] == ["/delegationset/N00000002"]


def test_delegation_set_refusals_change_nothing(tmp_path):
    store, app = start(tmp_path, MAX_REUSABLE_DELEGATION_SETS_BY_OWNER=2, MAX_ZONES_BY_REUSABLE_DELEGATION_SET=1)
    with running(app) as url:
        r53 = client(url)
        r53.create_reusable_delegation_set(CallerReference="one")
        assert error_of(r53.create_reusable_delegation_set, CallerReference="four",
                        HostedZoneId="Z0NOPE")[0] == "HostedZoneNotFound"
        assert error_of(r53.create_reusable_delegation_set, CallerReference="one")[0] == "DelegationSetAlreadyCreated"
        # from an existing zone: its name servers, and the zone counts as using the set
        two = r53.create_reusable_delegation_set(CallerReference="two", HostedZoneId="Z0API0AWS")["DelegationSet"]
        assert two["NameServers"] == ["ns1.api.aws.", "ns2.api.aws."]
        assert error_of(r53.create_reusable_delegation_set, CallerReference="three")[0] == "LimitsExceeded"
        assert store.count_resources("delegationset") == 2
        zones = len(store.list_zones())
        assert error_of(r53.create_hosted_zone, Name="x.test", CallerReference="x",
                        DelegationSetId="N00000099")[0] == "NoSuchDelegationSet"
        # the set from Z0API0AWS is full (limit 1): the new zone is not left behind
        assert error_of(r53.create_hosted_zone, Name="y.test", CallerReference="y",
                        DelegationSetId=two["Id"])[0] == "TooManyHostedZones"
        assert len(store.list_zones()) == zones and store.get_zone("Z0Y0TEST") is None
    store.close()


# --- reference data ----------------------------------------------------------------------------


def test_geo_locations_in_route53_order_and_paged(api):
    _, r53, _ = api
    every = api_geo.locations()
    assert every[0].country == "*" and every[-1].continent == "SA"
    kinds = ["continent" if loc.continent else "country" for loc in every]
    assert kinds == sorted(kinds, key=lambda k: k == "continent")  # countries first, continents last
    us = [loc.subdivision for loc in every if loc.country == "US" and loc.subdivision]
    assert len(us) == 51 and us == sorted(us) and "DC" in us and "CA" in us
    i = next(i for i, loc in enumerate(every) if loc.country == "US" and not loc.subdivision)
    assert [loc.subdivision for loc in every[i + 1:i + 52]] == us  # right after the country
    walked, kw = [], {"MaxItems": "100"}
    while True:
        page = r53.list_geo_locations(**kw)
        walked += page["GeoLocationDetailsList"]
        if not page["IsTruncated"]:
            break
        kw = {"MaxItems": "100", **{k.replace("Next", "Start"): v for k, v in page.items() if k.startswith("Next")}}
    assert len(walked) == len(every) == 1 + 249 + 51 + 7
    assert walked[0] == {"CountryCode": "*", "CountryName": "Default"}
    assert r53.get_geo_location(CountryCode="US", SubdivisionCode="WA")["GeoLocationDetails"]["SubdivisionName"] == "Washington"
    assert r53.get_geo_location(ContinentCode="OC")["GeoLocationDetails"] == {"ContinentCode": "OC", "ContinentName": "Oceania"}
    assert error_of(r53.get_geo_location, CountryCode="FR", SubdivisionCode="75")[::2] == ("NoSuchGeoLocation", 404)
    assert error_of(r53.get_geo_location, ContinentCode="EU", CountryCode="FR")[0] == "InvalidInput"


def test_checker_ranges_are_loopback_and_dnssec_refuses(api):
    url, r53, store = api
    assert r53.get_checker_ip_ranges()["CheckerIpRanges"] == ["127.0.0.0/8", "::1/128"]
    got = r53.get_dnssec(HostedZoneId="Z0API0AWS")
    assert got["Status"]["ServeSignature"] == "NOT_SIGNING" and got["KeySigningKeys"] == []
    assert error_of(r53.get_dnssec, HostedZoneId="Z0NOPE")[0] == "NoSuchHostedZone"
    before = store.record_sets("Z0API0AWS")
    for call, kw, code in (
        (r53.enable_hosted_zone_dnssec, {"HostedZoneId": "Z0API0AWS"}, "KeySigningKeyWithActiveStatusNotFound"),
        (r53.disable_hosted_zone_dnssec, {"HostedZoneId": "Z0API0AWS"}, "DNSSECNotFound"),
        (r53.create_key_signing_key, {"CallerReference": "c", "HostedZoneId": "Z0API0AWS", "Name": "ksk",
                                      "KeyManagementServiceArn": "arn:aws:kms:us-east-1:1:key/k", "Status": "ACTIVE"},
         "InvalidKMSArn"),
        (r53.delete_key_signing_key, {"HostedZoneId": "Z0API0AWS", "Name": "ksk"}, "NoSuchKeySigningKey"),
    ):
        got_code, msg, _ = error_of(call, **kw)
        assert got_code == code and "authd does not sign zones" in msg
    assert store.record_sets("Z0API0AWS") == before


# --- TestDNSAnswer ------------------------------------------------------------------------------


def test_test_dns_answer_runs_the_answer_pipeline(api):
    _, r53, store = api
    weighted = {v for rs in store.record_sets("Z0API0AWS") if rs.rtype == "A" for v in rs.values}
    got = r53.test_dns_answer(HostedZoneId="Z0API0AWS", RecordName="dynamodb.us-east-1.api.aws", RecordType="A",
                              EDNS0ClientSubnetIP="127.0.0.0", EDNS0ClientSubnetMask="24", ResolverIP="127.0.0.1")
    assert got["ResponseCode"] == "NOERROR" and got["Protocol"] == "UDP" and got["Nameserver"] == "ns1.api.aws."
    assert got["RecordData"] and set(got["RecordData"]) <= weighted  # an alias followed to a weighted member
    missing = r53.test_dns_answer(HostedZoneId="Z0API0AWS", RecordName="no-such-name.api.aws", RecordType="A")
    assert (missing["ResponseCode"], missing["RecordData"]) == ("NXDOMAIN", [])
    soa = r53.test_dns_answer(HostedZoneId="Z0API0AWS", RecordName="api.aws", RecordType="SOA")
    assert soa["RecordData"][0].startswith("ns1.api.aws.")
    for kw in ({"ResolverIP": "not-an-ip"}, {"EDNS0ClientSubnetIP": "10.0.0.1", "EDNS0ClientSubnetMask": "33"},
               {"EDNS0ClientSubnetMask": "24"}, {"RecordType": "BOGUS"}):
        args = {"HostedZoneId": "Z0API0AWS", "RecordName": "api.aws", "RecordType": "A", **kw}
        assert error_of(r53.test_dns_answer, **args)[0] == "InvalidInput", kw
    assert error_of(r53.test_dns_answer, HostedZoneId="Z0NOPE", RecordName="a.b", RecordType="A")[0] == "NoSuchHostedZone"


def test_api_modules_are_pure_where_they_say_so():
    """limits, api_base and the geo/tags shaping import neither trio, socket nor time."""
    for name in ("model/limits", "control/api_base", "control/api_geo", "control/api_tags", "control/api_delegation",
                 "control/api_dnssec", "control/api_zones"):
        tree = ast.parse((ROOT / "authd" / f"{name}.py").read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"trio", "socket", "time"}, name


def test_unsigned_requests_to_the_new_operations_are_refused(api):
    url, _, _ = api
    r = httpx.get(url + "/2013-04-01/hostedzonecount")
    assert r.status_code == 403 and "MissingAuthenticationToken" in r.text


def test_test_dns_answer_locates_the_client_by_subnet_or_resolver(tmp_path):
    """Geolocation through TestDNSAnswer: the EDNS client subnet, else the resolver's address,
    mapped by the operator's table, decide the answer (the routing steps of the pipeline)."""
    geo = pytest.importorskip("authd.dns.geo", reason="authd.dns.geo (geolocation routing) is not on this branch yet")
    from authd.dns.index import ServingIndex

    store, app = start(tmp_path)
    with running(app) as url:
        r53 = client(url)
        zid = r53.create_hosted_zone(Name="geo.test", CallerReference="g1")["HostedZone"]["Id"]
        r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [
            {"Action": "CREATE", "ResourceRecordSet": {
                "Name": "www.geo.test", "Type": "A", "SetIdentifier": sid, "GeoLocation": loc, "TTL": 60,
                "ResourceRecords": [{"Value": ip}]}}
            for sid, loc, ip in (("eu", {"ContinentCode": "EU"}, "192.0.2.1"), ("any", {"CountryCode": "*"}, "192.0.2.2"))
        ]})
        index = ServingIndex(geomap=geo.GeoMap.parse((ROOT / "zones" / "geo-map.txt").read_text()))
        for entry in store.snapshot():
            index.apply(entry)
        app.serving_index = index  # as authd.node wires the primary index

        def ask(**kw):
            return r53.test_dns_answer(HostedZoneId=zid, RecordName="www.geo.test", RecordType="A", **kw)["RecordData"]

        # zones/geo-map.txt: 127.0.2.0/24 is Europe (DE), 127.0.1.0/24 North America (US-CA)
        assert ask(EDNS0ClientSubnetIP="127.0.2.0", EDNS0ClientSubnetMask="24") == ["192.0.2.1"]
        assert ask(EDNS0ClientSubnetIP="127.0.1.0", EDNS0ClientSubnetMask="24") == ["192.0.2.2"]
        assert ask(ResolverIP="127.0.2.53") == ["192.0.2.1"]
        assert ask(ResolverIP="127.0.1.53") == ["192.0.2.2"]
    store.close()


def test_read_request_names_what_it_refuses():
    from authd.control.api_base import ApiError, read_request
    from authd.control.r53xml import BadRequest

    grammar = {"A": None, "L": ("list", "I", {"K": None}, 2)}
    ns = b' xmlns="https://route53.amazonaws.com/doc/2013-04-01/"'
    ok = read_request(b"<R" + ns + b"><A> x </A><L><I><K>1</K></I><I/></L></R>", "R", grammar)
    assert ok == {"A": "x", "L": [{"K": "1"}, {}]}
    for body, words in (
        (b"<R><B/></R>", "element B in R"),
        (b"<R><L><I><Z/></I></L></R>", "element Z in I"),
        (b"<R><L><J/></L></R>", "element J in L"),
        (b"<R><A>1</A><A>2</A></R>", "A appears more than once"),
        (b"<R><A><K/></A></R>", "A must hold text only"),
        (b"<R><L><I/><I/><I/></L></R>", "'I' can occur a maximum of '2' times"),
        (b"<Q/>", "expected root element R"),
        (b"<R>", "Invalid XML"),
    ):
        with pytest.raises((ApiError, BadRequest)) as info:
            read_request(body, "R", grammar)
        assert words in str(info.value), (body, str(info.value))


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgresql"])
def test_every_store_passes_its_count_to_the_record_set_quota(tmp_path, backend, request):
    from authd.store.contract import InvalidChangeBatch
    from authd.store.memstore import MemoryStore

    if backend == "postgresql":
        pgstore = pytest.importorskip("authd.store.pgstore")
        store = pgstore.PostgresStore(request.getfixturevalue("pg_url"))  # skips naming what is missing
    else:
        store = MemoryStore() if backend == "memory" else SQLiteStore(tmp_path / "q.db")
    zone, _ = store.create_zone("q.test", "q")  # SOA + NS
    one = [Change(Action.CREATE, RecordSet("a.q.test.", "A", 60, ("192.0.2.1",)))]
    two = [Change(Action.CREATE, RecordSet("b.q.test.", "A", 60, ("192.0.2.2",)))]
    store.change_batch(zone.id, one, max_record_sets=3)
    with pytest.raises(InvalidChangeBatch):
        store.change_batch(zone.id, two, max_record_sets=3)
    assert store.get_zone(zone.id).record_set_count == 3
    store.change_batch(zone.id, two)  # no quota given: none applies (zone files, the enactor)
    store.close()
