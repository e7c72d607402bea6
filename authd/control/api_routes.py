"""The Route 53 operations authd serves beyond the zone and record core, as one table.

Each row is (HTTP method, path pattern under /2013-04-01, botocore operation name, handler).
`authd.control.app.ControlAPI._route` looks a request up here when its own core routes do not
take it. `implemented_operations()` is every operation authd answers (the core ones that
`ControlAPI` routes itself, declared in `CORE_OPERATIONS`, and this table): the model
conformance test (`tests/test_r53_model.py`) walks it and checks each response against
botocore's model of Route 53, so an operation added here is checked without more ado.

To add operations from another module: `register(...)` a row per operation at import time;
a module that routes its operations itself (ControlAPI's chain) names them with `declare`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from authd.control import api_delegation, api_dnssec, api_geo, api_tags, api_testdns, api_zones
from authd.control.api_base import Response

if TYPE_CHECKING:
    from authd.control.app import ControlAPI

Handler = Callable[["ControlAPI", "re.Match[str]", Mapping[str, str], bytes], Awaitable[Response]]

# what ControlAPI._route serves itself (its if-chain), by botocore operation name
CORE_OPERATIONS = (
    "CreateHostedZone", "GetHostedZone", "ListHostedZones", "ListHostedZonesByName",
    "UpdateHostedZoneComment", "DeleteHostedZone", "ChangeResourceRecordSets", "GetChange",
    "ListResourceRecordSets",
)


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: Handler


ROUTES: list[Route] = []
DECLARED: list[str] = []  # served by a module's own routing (see `declare`)


def declare(*operations: str) -> None:
    """Name operations ControlAPI routes through another module (e.g. the health-check API),
    so `implemented_operations()` and the model conformance test cover them too."""
    DECLARED.extend(operations)


def register(method: str, path: str, operation: str, handler: Handler) -> None:
    """`path` is a regex under /2013-04-01 (`/tags/([^/]+)/([^/]+)`), matched whole."""
    ROUTES.append(Route(method, re.compile("/2013-04-01" + path), operation, handler))


def find_route(method: str, path: str) -> tuple[Route, re.Match[str]] | None:
    for route in ROUTES:
        if route.method == method and (m := route.pattern.fullmatch(path)):
            return route, m
    return None


def implemented_operations() -> list[str]:
    return list(dict.fromkeys([*CORE_OPERATIONS, *DECLARED, *(r.operation for r in ROUTES)]))


_SEG = "([^/]+)"


def _h(fn: Callable[..., Awaitable[Response]], *parts: str) -> Handler:
    """Adapt a handler taking (app, path groups..., then the named parts) to the row shape."""

    async def run(app: ControlAPI, m: re.Match[str], query: Mapping[str, str], body: bytes) -> Response:
        extra: list[Any] = [{"query": query, "body": body}[p] for p in parts]
        # path segments arrive percent-encoded when the router sees the raw path
        return await fn(app, *(unquote(g) for g in m.groups()), *extra)

    return run


register("POST", f"/tags/{_SEG}/{_SEG}", "ChangeTagsForResource", _h(api_tags.change_tags, "body"))
register("GET", f"/tags/{_SEG}/{_SEG}", "ListTagsForResource", _h(api_tags.list_tags))
register("POST", f"/tags/{_SEG}", "ListTagsForResources", _h(api_tags.list_tags_many, "body"))
register("GET", "/hostedzonecount", "GetHostedZoneCount", _h(api_zones.zone_count))
register("GET", f"/accountlimit/{_SEG}", "GetAccountLimit", _h(api_zones.account_limit))
register("GET", f"/hostedzonelimit/{_SEG}/{_SEG}", "GetHostedZoneLimit", _h(api_zones.zone_limit))
register("GET", f"/reusabledelegationsetlimit/{_SEG}/{_SEG}", "GetReusableDelegationSetLimit",
         _h(api_delegation.get_limit))
register("POST", "/delegationset", "CreateReusableDelegationSet", _h(api_delegation.create, "body"))
register("GET", "/delegationset", "ListReusableDelegationSets", _h(api_delegation.list_sets, "query"))
register("GET", f"/delegationset/{_SEG}", "GetReusableDelegationSet", _h(api_delegation.get))
register("DELETE", f"/delegationset/{_SEG}", "DeleteReusableDelegationSet", _h(api_delegation.delete))
register("GET", "/checkeripranges", "GetCheckerIpRanges", _h(api_geo.checker_ip_ranges))
register("GET", "/geolocations", "ListGeoLocations", _h(api_geo.list_geo, "query"))
register("GET", "/geolocation", "GetGeoLocation", _h(api_geo.get_geo, "query"))
register("GET", "/testdnsanswer", "TestDNSAnswer", _h(api_testdns.test_dns_answer, "query"))
register("GET", f"/hostedzone/{_SEG}/dnssec", "GetDNSSEC", _h(api_dnssec.get_dnssec))
register("POST", f"/hostedzone/{_SEG}/enable-dnssec", "EnableHostedZoneDNSSEC", _h(api_dnssec.enable))
register("POST", f"/hostedzone/{_SEG}/disable-dnssec", "DisableHostedZoneDNSSEC", _h(api_dnssec.disable))
register("POST", "/keysigningkey", "CreateKeySigningKey", _h(api_dnssec.create_ksk, "body"))
register("POST", f"/keysigningkey/{_SEG}/{_SEG}/activate", "ActivateKeySigningKey", _h(api_dnssec.no_such_ksk))
register("POST", f"/keysigningkey/{_SEG}/{_SEG}/deactivate", "DeactivateKeySigningKey", _h(api_dnssec.no_such_ksk))
register("DELETE", f"/keysigningkey/{_SEG}/{_SEG}", "DeleteKeySigningKey", _h(api_dnssec.no_such_ksk))
