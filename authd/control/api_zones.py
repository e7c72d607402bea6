"""Hosted-zone quotas: CreateHostedZone under the limits (and with DelegationSetId),
GetHostedZoneCount, GetAccountLimit, GetHostedZoneLimit.

Thin handlers over `authd.model.limits` (the names and values) and `authd.control.api_delegation` (the
set a new zone takes its name servers from). The check and the creation run in one
`app.call`, one step on the store's single worker thread, so two concurrent
CreateHostedZone calls cannot both pass the last free slot.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from authd.control import api_delegation as DS
from authd.control import r53xml as X
from authd.control.api_base import ApiError, Response, invalid
from authd.model.limits import ACCOUNT_LIMITS, MSG_TOO_MANY_ZONES, ZONE_LIMITS
from authd.model.records import RecordError, from_route53_name

if TYPE_CHECKING:
    from authd.control.app import ControlAPI

log = logging.getLogger("authd.control")


def delegation_set_id(body: bytes) -> str | None:
    """CreateHostedZoneRequest's DelegationSetId, if any (the rest is `r53xml`'s to read)."""
    root = X.parse_xml(body)
    for child in root:
        if X._local(child.tag) == "DelegationSetId":
            return DS.clean_set_id((child.text or "").strip()) or None
    return None


def create_zone_step(store: Any, req: dict[str, str], ds_id: str | None, max_zones: int, max_per_set: int) -> Any:
    if len(store.list_zones()) >= max_zones:
        raise ApiError("TooManyHostedZones", MSG_TOO_MANY_ZONES)
    if ds_id is not None:
        DS.find_set(store, ds_id)  # NoSuchDelegationSet before anything is created
    zone, info = store.create_zone(req["name"], req["caller_reference"], req["comment"])
    if ds_id is not None:
        try:
            info = DS.attach_zone(store, ds_id, zone, max_per_set)
        except BaseException:
            store.delete_zone(zone.id)  # the zone is made whole or not at all
            raise
        zone = store.find_zone(zone.id)
    return zone, info


async def create_zone(app: ControlAPI, body: bytes) -> Response:
    """CreateHostedZone: Route 53's quota on zones, and DelegationSetId (the new zone's NS
    set is the reusable set's name servers)."""
    req = X.parse_create_zone_xml(body)
    ds_id = delegation_set_id(body)
    try:  # Route 53's escapes are octal (`\\052`); canonical_name would read them as decimal
        req = {**req, "name": from_route53_name(req["name"])}
    except RecordError as exc:
        raise ApiError("InvalidDomainName", str(exc)) from exc
    zone, info = await app.call(
        create_zone_step, app.store, req, ds_id,
        app.limits["MAX_HOSTED_ZONES_BY_OWNER"], app.limits["MAX_ZONES_BY_REUSABLE_DELEGATION_SET"],
    )
    app._changed(info)
    log.info("control: created hosted zone %s (%s)%s, change %s", zone.name, zone.id,
             f" with delegation set {ds_id}" if ds_id else "", info.id)
    inner = X.hosted_zone_xml(zone) + X.change_info_xml(info, app.status_of(info))
    inner += await delegation_xml(app, zone.id, zone.name)
    location = f"/2013-04-01/hostedzone/{zone.id}".encode()
    return 201, X.document("CreateHostedZoneResponse", inner), [(b"location", location)]


async def delegation_xml(app: ControlAPI, zone_id: str, zone_name: str) -> str:
    """The zone's DelegationSet element: with the reusable set's Id when it uses one."""

    def read(store: Any) -> tuple[str | None, tuple[str, ...]]:
        ns = store.get_record_sets(zone_id, zone_name, "NS")
        found = DS.set_of_zone(store, zone_id) if hasattr(store, "list_resources") else None
        return (found[0] if found else None), (ns[0].values if ns else ())

    ds_id, servers = await app.call(read, app.store)
    inner = "<NameServers>" + "".join(X.element("NameServer", ns) for ns in servers) + "</NameServers>"
    if ds_id is not None:
        inner = X.element("Id", f"/delegationset/{ds_id}") + inner
    return "<DelegationSet>" + inner + "</DelegationSet>"


async def zone_count(app: ControlAPI) -> Response:
    zones = await app.call(app.store.list_zones)
    return 200, X.document("GetHostedZoneCountResponse", X.element("HostedZoneCount", len(zones))), []


def _enum_error(value: str, field: str, allowed: list[str]) -> ApiError:
    return invalid(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: "
        f"Member must satisfy enum value set: [{', '.join(allowed)}]"
    )


def usage(store: Any, limit_type: str) -> int:
    """How much of an account limit is used now."""
    if limit_type == "MAX_HOSTED_ZONES_BY_OWNER":
        return len(store.list_zones())
    if limit_type == "MAX_HEALTH_CHECKS_BY_OWNER":
        return store.count_resources("healthcheck")
    if limit_type == "MAX_REUSABLE_DELEGATION_SETS_BY_OWNER":
        return store.count_resources(DS.KIND)
    return 0  # traffic policies and their instances: authd has none


async def account_limit(app: ControlAPI, limit_type: str) -> Response:
    if limit_type not in ACCOUNT_LIMITS:
        raise _enum_error(limit_type, "type", list(ACCOUNT_LIMITS))
    used = await app.call(usage, app.store, limit_type)
    inner = (
        "<Limit>" + X.element("Type", limit_type) + X.element("Value", app.limits[limit_type]) + "</Limit>"
        + X.element("Count", used)
    )
    return 200, X.document("GetAccountLimitResponse", inner), []


async def zone_limit(app: ControlAPI, raw_zone_id: str, limit_type: str) -> Response:
    if limit_type not in ZONE_LIMITS:
        raise _enum_error(limit_type, "type", list(ZONE_LIMITS))
    zone = await app.call(app.store.find_zone, raw_zone_id)
    if limit_type == "MAX_VPCS_ASSOCIATED_BY_ZONE":
        # every authd zone is public; Route 53 answers this for public zones
        raise ApiError("HostedZoneNotPrivate", "The specified hosted zone is a public hosted zone, not a private hosted zone.")
    inner = (
        "<Limit>" + X.element("Type", limit_type) + X.element("Value", app.limits[limit_type]) + "</Limit>"
        + X.element("Count", zone.record_set_count)
    )
    return 200, X.document("GetHostedZoneLimitResponse", inner), []
