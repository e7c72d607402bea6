"""Route 53 reusable delegation sets: Create/Get/List/DeleteReusableDelegationSet,
GetReusableDelegationSetLimit, and the delegation-set part of CreateHostedZone.

Pure shaping and rules first, store steps next (each runs whole on the store's worker
thread, inside one `app.call`), thin handlers last.

A set is a resource of kind "delegationset", id `N0000001`, `N0000002`, ... (readable, never
reused: the next number is kept in the resource ("counter", "delegationset")), with doc
{"CallerReference", "NameServers", "Zones": {zone id: zone CallerReference}}. A zone listed
in `Zones` uses the set while a zone with that id *and* that CallerReference exists, so a
deleted zone frees its set without any hook in DeleteHostedZone.

Each store call is its own transaction, so the multi-step operations run whole on the
store's single worker thread and undo what they did on a refusal (CreateHostedZone deletes
the zone it made). A crash between steps can leave a set number unused, or a new zone that
is not in its delegation set's list (though it may already carry the set's name servers);
it cannot leave a set listing a zone that does not carry them.

Name servers: `ns1.n0000001.authd.test.` ... `ns4.`: four, as Route 53 gives, under the
`.test` TLD that RFC 6761 section 6.2 reserves for testing, so they can never be confused
with real servers. authd answers for every zone it serves on each of its own addresses
(127.0.0.1 and the replicas' 127.0.0.x), so the names are labels for the loopback servers;
`dig @127.0.0.1` reaches them. With HostedZoneId, the set is made from that zone's NS set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from authd.control import r53xml as X
from authd.control.api_base import ApiError, Response, invalid, read_request, require
from authd.model.changes import DEFAULT_NS_TTL, clean_zone_id
from authd.model.limits import MSG_TOO_MANY_DELEGATION_SETS
from authd.model.records import RecordSet
from authd.store.contract import Action, Change, ChangeInfo

if TYPE_CHECKING:
    from authd.control.app import ControlAPI

KIND = "delegationset"
COUNTER = ("counter", "delegationset")
MAX_ITEMS = 100  # ListReusableDelegationSets page size cap (API reference: maxitems <= 100)
CREATE_GRAMMAR = {"CallerReference": None, "HostedZoneId": None}


def set_id(n: int) -> str:
    return f"N0{n:07d}"


def name_servers_for(ds_id: str) -> tuple[str, ...]:
    return tuple(f"ns{i}.{ds_id.lower()}.authd.test." for i in range(1, 5))


def clean_set_id(raw: str) -> str:
    """Accept `/delegationset/N...` as Route 53 returns it in Id."""
    return raw.rsplit("/", 1)[-1]


def delegation_set_xml(ds_id: str, doc: Mapping[str, Any], *, with_id: bool = True) -> str:
    parts = []
    if with_id:
        parts.append(X.element("Id", f"/delegationset/{ds_id}"))
        parts.append(X.element("CallerReference", doc["CallerReference"]))
    parts.append("<NameServers>" + "".join(X.element("NameServer", ns) for ns in doc["NameServers"]) + "</NameServers>")
    return "<DelegationSet>" + "".join(parts) + "</DelegationSet>"


def no_such_set(ds_id: str) -> ApiError:
    return ApiError("NoSuchDelegationSet", f"A reusable delegation set with the specified ID does not exist: {ds_id}")


# --- store steps --------------------------------------------------------------------------------


def live_zones(store: Any, doc: Mapping[str, Any]) -> list[str]:
    """The ids of the zones that use the set now."""
    out = []
    for zone_id, caller_reference in dict(doc.get("Zones", {})).items():
        zone = store.get_zone(zone_id)
        if zone is not None and zone.caller_reference == caller_reference:
            out.append(zone_id)
    return out


def find_set(store: Any, ds_id: str) -> Any:
    res = store.get_resource(KIND, ds_id)
    if res is None:
        raise no_such_set(ds_id)
    return res


def set_of_zone(store: Any, zone_id: str) -> tuple[str, Mapping[str, Any]] | None:
    """The reusable set a live zone uses, if any."""
    for res in store.list_resources(KIND):
        if zone_id in live_zones(store, res.doc):
            return res.id, res.doc
    return None


def create_set(store: Any, caller_reference: str, zone_id: str | None, limit: int) -> tuple[str, dict[str, Any]]:
    sets = store.list_resources(KIND)
    if any(r.doc.get("CallerReference") == caller_reference for r in sets):
        raise ApiError(
            "DelegationSetAlreadyCreated",
            "A delegation set with the same owner and caller reference combination has already been created.",
        )
    if len(sets) >= limit:
        raise ApiError("LimitsExceeded", MSG_TOO_MANY_DELEGATION_SETS)
    counter = store.get_resource(*COUNTER)
    n = (counter.doc["next"] if counter is not None else 1)
    ds_id = set_id(n)
    zones: dict[str, str] = {}
    if zone_id:
        zone = store.get_zone(zone_id)
        if zone is None:
            raise ApiError("HostedZoneNotFound", f"The specified HostedZone can't be found: {zone_id}")
        if set_of_zone(store, zone.id) is not None:
            raise ApiError("DelegationSetAlreadyReusable", "The specified delegation set has already been marked as reusable.")
        ns = store.get_record_sets(zone.id, zone.name, "NS")
        servers = list(ns[0].values) if ns else list(name_servers_for(ds_id))
        zones[zone.id] = zone.caller_reference
    else:
        servers = list(name_servers_for(ds_id))
    doc = {"CallerReference": caller_reference, "NameServers": servers, "Zones": zones}
    store.put_resource(COUNTER[0], COUNTER[1], {"next": n + 1})
    store.put_resource(KIND, ds_id, doc, expect_version=0)
    return ds_id, doc


def delete_set(store: Any, ds_id: str) -> None:
    res = find_set(store, ds_id)
    if live_zones(store, res.doc):
        raise ApiError(
            "DelegationSetInUse",
            f"The delegation set {ds_id} contains associated hosted zones which must be deleted "
            "before the reusable delegation set can be deleted.",
        )
    store.delete_resource(KIND, ds_id, expect_version=res.version)


def attach_zone(store: Any, ds_id: str, zone: Any, limit: int) -> ChangeInfo:
    """Point a just-created zone's apex NS at the set's name servers and record the zone in
    the set. Returns the NS batch's ChangeInfo; on failure the set is left as it was."""
    res = find_set(store, ds_id)
    live = live_zones(store, res.doc)
    if len(live) >= limit:
        raise ApiError(
            "TooManyHostedZones",
            f"The limit on the number of hosted zones that can be associated with the reusable "
            f"delegation set {ds_id} ({limit}) has been reached.",
        )
    servers = tuple(res.doc["NameServers"])
    ns = RecordSet(zone.name, "NS", DEFAULT_NS_TTL, servers)
    changes = [Change(Action.UPSERT, ns)]
    soa = store.get_record_sets(zone.id, zone.name, "SOA")
    if soa:  # the SOA's MNAME names the primary server (RFC 1035 section 3.3.13): one of the set's
        fields = soa[0].values[0].split(" ", 1)
        changes.append(Change(Action.UPSERT, replace(soa[0], values=(f"{servers[0]} {fields[1]}",))))
    info = store.change_batch(zone.id, changes, "")
    doc = dict(res.doc)
    # deleted zones drop out here, so the map holds at most the limit's worth of zones
    kept = {z: ref for z, ref in dict(doc.get("Zones", {})).items() if z in live}
    doc["Zones"] = {**kept, zone.id: zone.caller_reference}
    store.put_resource(KIND, ds_id, doc, expect_version=res.version)
    return info


# --- handlers --------------------------------------------------------------------------------


async def zones_using(app: ControlAPI, raw_id: str, zones: list[Any]) -> list[Any]:
    """ListHostedZones?delegationsetid=: the zones that use the set (NoSuchDelegationSet)."""
    ds_id = clean_set_id(raw_id)

    def live(store: Any) -> list[str]:
        return live_zones(store, find_set(store, ds_id).doc)

    using = set(await app.call(live, app.store))
    return [z for z in zones if z.id in using]


async def create(app: ControlAPI, body: bytes) -> Response:
    doc = read_request(body, "CreateReusableDelegationSetRequest", CREATE_GRAMMAR)
    require(doc, ["CallerReference"], "CreateReusableDelegationSetRequest")
    zone_id = clean_zone_id(doc["HostedZoneId"]) if doc.get("HostedZoneId") else None
    limit = app.limits["MAX_REUSABLE_DELEGATION_SETS_BY_OWNER"]
    ds_id, ds = await app.call(create_set, app.store, doc["CallerReference"], zone_id, limit)
    location = f"/2013-04-01/delegationset/{ds_id}".encode()
    body_out = X.document("CreateReusableDelegationSetResponse", delegation_set_xml(ds_id, ds))
    return 201, body_out, [(b"location", location)]


async def get(app: ControlAPI, raw_id: str) -> Response:
    ds_id = clean_set_id(raw_id)
    res = await app.call(find_set, app.store, ds_id)
    return 200, X.document("GetReusableDelegationSetResponse", delegation_set_xml(ds_id, res.doc)), []


async def list_sets(app: ControlAPI, query: Mapping[str, str]) -> Response:
    sets = await app.call(app.store.list_resources, KIND)
    raw = query.get("maxitems", str(MAX_ITEMS))
    try:
        max_items = int(raw)
    except ValueError:
        raise invalid(f"maxitems must be an integer, got {raw!r}") from None
    if max_items < 1:
        raise invalid("maxitems must be at least 1")
    max_items = min(max_items, MAX_ITEMS)
    marker = query.get("marker", "")
    ids = [r.id for r in sets]
    start = 0
    if marker:
        if marker not in ids:
            raise invalid(f"marker {marker} is not a reusable delegation set id")
        start = ids.index(marker)
    page, rest = sets[start:start + max_items], sets[start + max_items:]
    inner = "<DelegationSets>" + "".join(delegation_set_xml(r.id, r.doc) for r in page) + "</DelegationSets>"
    inner += X.element("Marker", marker) + X.element("IsTruncated", bool(rest))
    if rest:
        inner += X.element("NextMarker", rest[0].id)
    inner += X.element("MaxItems", max_items)
    return 200, X.document("ListReusableDelegationSetsResponse", inner), []


async def delete(app: ControlAPI, raw_id: str) -> Response:
    ds_id = clean_set_id(raw_id)
    await app.call(delete_set, app.store, ds_id)
    return 200, X.document("DeleteReusableDelegationSetResponse", ""), []


async def get_limit(app: ControlAPI, raw_id: str, limit_type: str) -> Response:
    if limit_type != "MAX_ZONES_BY_REUSABLE_DELEGATION_SET":
        raise invalid(
            f"1 validation error detected: Value '{limit_type}' at 'type' failed to satisfy "
            "constraint: Member must satisfy enum value set: [MAX_ZONES_BY_REUSABLE_DELEGATION_SET]"
        )
    ds_id = clean_set_id(raw_id)

    def count(store: Any) -> int:
        return len(live_zones(store, find_set(store, ds_id).doc))

    used = await app.call(count, app.store)
    inner = (
        "<Limit>" + X.element("Type", limit_type) + X.element("Value", app.limits[limit_type]) + "</Limit>"
        + X.element("Count", used)
    )
    return 200, X.document("GetReusableDelegationSetLimitResponse", inner), []
