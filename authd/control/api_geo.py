"""ListGeoLocations, GetGeoLocation and GetCheckerIpRanges: Route 53's public reference data.

Pure core plus two thin handlers. The locations come from `authd/data/geolocations.json`
(built by `scripts/build-geolocations.py` from ISO 3166-1 and ISO 3166-2:US as Debian's
iso-codes ships them, and the seven continent codes of Route 53's GeoLocation type).

Order, as the API reference gives it for ListGeoLocations: countries first (the `*`
default location first of all), each country followed by its subdivisions in alphabetical
order, then the continents. Route 53 supports subdivisions for the United States only.

GetCheckerIpRanges lists where health checks come from. authd's prober runs on this
machine and probes loopback targets only (unless an operator flag allows more), so the
ranges are the loopback blocks: 127.0.0.0/8 (RFC 1122 section 3.2.1.3) and ::1/128
(RFC 4291 section 2.5.3).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from authd.control import r53xml as X
from authd.control.api_base import ApiError, Response, invalid

if TYPE_CHECKING:
    from authd.control.app import ControlAPI

DATA = Path(__file__).resolve().parents[1] / "data" / "geolocations.json"
CHECKER_IP_RANGES = ("127.0.0.0/8", "::1/128")
MAX_ITEMS = 100  # ListGeoLocations: "maxitems ... the default is 100", also the cap


@dataclass(frozen=True, slots=True)
class Location:
    continent: str | None = None
    continent_name: str | None = None
    country: str | None = None
    country_name: str | None = None
    subdivision: str | None = None
    subdivision_name: str | None = None

    @property
    def key(self) -> tuple[str | None, str | None, str | None]:
        return self.continent, self.country, self.subdivision


@functools.cache
def locations() -> tuple[Location, ...]:
    """Every supported location, in ListGeoLocations order."""
    doc = json.loads(DATA.read_text())
    out = [Location(country="*", country_name="Default")]
    subs = doc["subdivisions"]
    for c in doc["countries"]:
        out.append(Location(country=c["code"], country_name=c["name"]))
        for s in subs.get(c["code"], []):
            out.append(Location(country=c["code"], country_name=c["name"],
                                subdivision=s["code"], subdivision_name=s["name"]))
    out += [Location(continent=c["code"], continent_name=c["name"]) for c in doc["continents"]]
    return tuple(out)


def find_location(continent: str | None, country: str | None, subdivision: str | None) -> Location:
    """GetGeoLocation's rules: a continent alone, or a country with an optional subdivision."""
    if continent and (country or subdivision):
        raise invalid("ContinentCode cannot be specified together with CountryCode or SubdivisionCode")
    if subdivision and not country:
        raise invalid("SubdivisionCode requires CountryCode")
    if not continent and not country:
        raise invalid("One of ContinentCode or CountryCode is required")
    want = (continent, None, None) if continent else (None, country, subdivision)
    for loc in locations():
        if loc.key == want:
            return loc
    described = ", ".join(f"{n}={v}" for n, v in
                          (("continent", continent), ("country", country), ("subdivision", subdivision)) if v)
    raise ApiError("NoSuchGeoLocation", f"Amazon Route 53 doesn't support the specified geographic location: {described}")


def details_xml(loc: Location) -> str:
    parts = [
        ("ContinentCode", loc.continent), ("ContinentName", loc.continent_name),
        ("CountryCode", loc.country), ("CountryName", loc.country_name),
        ("SubdivisionCode", loc.subdivision), ("SubdivisionName", loc.subdivision_name),
    ]
    return "<GeoLocationDetails>" + "".join(X.element(n, v) for n, v in parts if v is not None) + "</GeoLocationDetails>"


def list_page(query: Mapping[str, str]) -> str:
    """The ListGeoLocations response body (inside the root element)."""
    raw = query.get("maxitems", str(MAX_ITEMS))
    try:
        max_items = int(raw)
    except ValueError:
        raise invalid(f"maxitems must be an integer, got {raw!r}") from None
    if max_items < 1:
        raise invalid("maxitems must be at least 1")
    max_items = min(max_items, MAX_ITEMS)
    every = locations()
    start = 0
    continent, country, sub = (query.get("startcontinentcode"), query.get("startcountrycode"),
                               query.get("startsubdivisioncode"))
    if continent or country or sub:
        try:
            start = every.index(find_location(continent, country, sub))
        except ApiError as exc:  # ListGeoLocations declares InvalidInput only
            raise invalid(f"The start location is not valid: {exc}") from None
    page, rest = every[start:start + max_items], every[start + max_items:]
    inner = "<GeoLocationDetailsList>" + "".join(details_xml(loc) for loc in page) + "</GeoLocationDetailsList>"
    inner += X.element("IsTruncated", bool(rest))
    if rest:
        nxt = rest[0]
        for name, value in (("NextContinentCode", nxt.continent), ("NextCountryCode", nxt.country),
                            ("NextSubdivisionCode", nxt.subdivision)):
            if value is not None:
                inner += X.element(name, value)
    return inner + X.element("MaxItems", max_items)


# --- handlers ------------------------------------------------------------------------------


async def list_geo(app: ControlAPI, query: Mapping[str, str]) -> Response:
    return 200, X.document("ListGeoLocationsResponse", list_page(query)), []


async def get_geo(app: ControlAPI, query: Mapping[str, str]) -> Response:
    loc = find_location(query.get("continentcode"), query.get("countrycode"), query.get("subdivisioncode"))
    return 200, X.document("GetGeoLocationResponse", details_xml(loc)), []


async def checker_ip_ranges(app: ControlAPI) -> Response:
    inner = "<CheckerIpRanges>" + "".join(X.element("member", r) for r in CHECKER_IP_RANGES) + "</CheckerIpRanges>"
    return 200, X.document("GetCheckerIpRangesResponse", inner), []
