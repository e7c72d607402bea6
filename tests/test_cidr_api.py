"""The CIDR collections API through boto3 (CreateCidrCollection, ChangeCidrCollection with
CollectionVersion, ListCidrCollections, ListCidrLocations, ListCidrBlocks,
DeleteCidrCollection), and an IP-based routing set that names a location, answered by a
serving index that learns the collection from the store's journal."""

from __future__ import annotations

import botocore.exceptions
import dns.message
import pytest

from authd.control.app import ControlAPI
from authd.dns.index import ServingIndex
from authd.store.sqlstore import SQLiteStore
from tests.control_helpers import client, running


@pytest.fixture
def api(tmp_path):
    store = SQLiteStore(str(tmp_path / "authd.db"))
    with running(ControlAPI(store)) as url:
        yield client(url), store
    store.close()


def code_of(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def test_cidr_collection_lifecycle(api):
    r53, _ = api
    made = r53.create_cidr_collection(Name="offices", CallerReference="ref-1")
    coll = made["Collection"]
    cid = coll["Id"]
    assert coll["Name"] == "offices" and coll["Version"] == 1
    assert coll["Arn"] == f"arn:aws:route53:::cidrcollection/{cid}"
    assert made["Location"].endswith(f"/cidrcollection/{cid}")
    # the same request again is the same collection; the name with another reference is not
    assert r53.create_cidr_collection(Name="offices", CallerReference="ref-1")["Collection"]["Id"] == cid
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        r53.create_cidr_collection(Name="offices", CallerReference="ref-2")
    assert code_of(exc) == "CidrCollectionAlreadyExistsException"

    r53.change_cidr_collection(Id=cid, CollectionVersion=1, Changes=[
        {"LocationName": "hq", "Action": "PUT", "CidrList": ["127.0.9.0/24", "2001:db8::/48"]},
        {"LocationName": "branch", "Action": "PUT", "CidrList": ["127.0.8.0/24"]}])
    with pytest.raises(botocore.exceptions.ClientError) as exc:  # version 1 is gone now
        r53.change_cidr_collection(Id=cid, CollectionVersion=1, Changes=[
            {"LocationName": "hq", "Action": "PUT", "CidrList": ["127.0.10.0/24"]}])
    assert code_of(exc) == "CidrCollectionVersionMismatchException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:  # a block belongs to one location
        r53.change_cidr_collection(Id=cid, Changes=[
            {"LocationName": "branch", "Action": "PUT", "CidrList": ["127.0.9.0/24"]}])
    assert code_of(exc) == "CidrBlockInUseException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        r53.change_cidr_collection(Id=cid, Changes=[
            {"LocationName": "hq", "Action": "PUT", "CidrList": ["127.0.9.1/24"]}])
    assert code_of(exc) == "InvalidInput"

    listed = r53.list_cidr_collections()["CidrCollections"]
    assert [(c["Id"], c["Name"], c["Version"]) for c in listed] == [(cid, "offices", 2)]
    assert [x["LocationName"] for x in r53.list_cidr_locations(CollectionId=cid)["CidrLocations"]] \
        == ["branch", "hq"]
    blocks = r53.list_cidr_blocks(CollectionId=cid, LocationName="hq")["CidrBlocks"]
    assert sorted(b["CidrBlock"] for b in blocks) == ["127.0.9.0/24", "2001:db8::/48"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        r53.list_cidr_blocks(CollectionId=cid, LocationName="nowhere")
    assert code_of(exc) == "NoSuchCidrLocationException"

    with pytest.raises(botocore.exceptions.ClientError) as exc:  # not empty yet
        r53.delete_cidr_collection(Id=cid)
    assert code_of(exc) == "CidrCollectionInUseException"
    r53.change_cidr_collection(Id=cid, Changes=[
        {"LocationName": "hq", "Action": "DELETE_IF_EXISTS", "CidrList": ["127.0.9.0/24", "2001:db8::/48"]},
        {"LocationName": "branch", "Action": "DELETE_IF_EXISTS", "CidrList": ["127.0.8.0/24"]}])
    r53.delete_cidr_collection(Id=cid)
    assert r53.list_cidr_collections()["CidrCollections"] == []
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        r53.list_cidr_locations(CollectionId=cid)
    assert code_of(exc) == "NoSuchCidrCollectionException"


def test_ip_based_record_sets_route_by_the_collection(api):
    r53, store = api
    cid = r53.create_cidr_collection(Name="offices", CallerReference="r")["Collection"]["Id"]
    r53.change_cidr_collection(Id=cid, Changes=[
        {"LocationName": "hq", "Action": "PUT", "CidrList": ["127.0.9.0/24"]}])
    zone = r53.create_hosted_zone(Name="ip.test.", CallerReference="z")["HostedZone"]["Id"]

    def rrset(ident, value, location):
        return {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "www.ip.test.", "Type": "A", "SetIdentifier": ident, "TTL": 60,
            "ResourceRecords": [{"Value": value}],
            "CidrRoutingConfig": {"CollectionId": cid, "LocationName": location}}}

    with pytest.raises(botocore.exceptions.ClientError) as exc:
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
            rrset("x", "192.0.2.1", "branch")]})
    assert "CIDR location branch does not exist" in exc.value.response["Error"]["Message"]
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        rrset("hq", "192.0.2.1", "hq"), rrset("any", "192.0.2.9", "*")]})
    listed = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    assert {s["SetIdentifier"]: s["CidrRoutingConfig"]["LocationName"]
            for s in listed if "SetIdentifier" in s} == {"hq": "hq", "any": "*"}

    index = ServingIndex(rng=lambda: 0.5)
    for entry in store.snapshot():  # resources first, then the zones, at one journal position
        index.apply(entry)
    q = dns.message.make_query("www.ip.test.", "A").to_wire()

    def answer(source):
        return {rd.address for rr in dns.message.from_wire(index.respond(q, tcp=False, source=source)).answer
                for rd in rr}

    assert answer("127.0.9.44") == {"192.0.2.1"}
    assert answer("127.0.3.1") == {"192.0.2.9"}
