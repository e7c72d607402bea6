"""Where a client is: Route 53's location codes, AWS regions, and the operator's location table.

Pure core: no sockets, no files, no clock (the shell reads `--geo-map FILE` and hands the text
to `GeoMap.parse`). Route 53 routes geolocation and latency sets by where the query comes
from; we cannot measure latency or buy a GeoIP database on loopback, so the operator says it:
one line per CIDR block, `CIDR CONTINENT COUNTRY SUBDIVISION REGION`, `-` for a field left
empty. The client is the EDNS Client Subnet's address (RFC 7871 §7.1.1) or else the source
address, matched by longest prefix. Latency routing then picks the member whose Region is
closest to the client's own region (great-circle distance between region locations), which
is what Route 53's latency tables amount to when the client sits in a region.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass

# Route 53 continent codes (botocore model, GeoLocation.ContinentCode), with the names Route 53
# prints in its messages and ListGeoLocations.
CONTINENTS = {
    "AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "OC": "Oceania",
    "NA": "North America", "SA": "South America",
}

# ISO 3166-1 alpha-2 (the country codes Route 53 accepts, botocore model GeoLocation.CountryCode),
# as listed in tzdata's iso3166.tab. `*` is the default location.
_COUNTRY_TEXT = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRIES = frozenset(_COUNTRY_TEXT.split())

# SubdivisionCode: "the two-letter code for a state of the United States. Route 53 doesn't
# support any other values" (botocore model), USPS Publication 28 appendix B.
_US_TEXT = """
AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM
NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI UM
"""
US_SUBDIVISIONS = frozenset(_US_TEXT.split())

# The Region values of latency sets (botocore model, ResourceRecordSetRegion), each at the
# approximate latitude and longitude of the city it serves: what "closest" is measured by.
REGIONS: dict[str, tuple[float, float]] = {
    "us-east-1": (38.9, -77.4), "us-east-2": (40.0, -83.0), "us-west-1": (37.4, -122.0),
    "us-west-2": (45.8, -119.7), "ca-central-1": (45.5, -73.6), "ca-west-1": (51.0, -114.1),
    "mx-central-1": (20.6, -100.4), "sa-east-1": (-23.5, -46.6), "eu-west-1": (53.3, -6.3),
    "eu-west-2": (51.5, -0.1), "eu-west-3": (48.9, 2.35), "eu-central-1": (50.1, 8.7),
    "eu-central-2": (47.4, 8.5), "eu-north-1": (59.3, 18.1), "eu-south-1": (45.5, 9.2),
    "eu-south-2": (41.6, -0.9), "eusc-de-east-1": (52.4, 13.0), "me-south-1": (26.1, 50.6),
    "me-central-1": (24.5, 54.4), "il-central-1": (32.1, 34.8), "af-south-1": (-33.9, 18.4),
    "ap-east-1": (22.3, 114.2), "ap-east-2": (25.0, 121.5), "ap-south-1": (19.1, 72.9),
    "ap-south-2": (17.4, 78.5), "ap-northeast-1": (35.7, 139.7), "ap-northeast-2": (37.6, 127.0),
    "ap-northeast-3": (34.7, 135.5), "ap-southeast-1": (1.35, 103.8),
    "ap-southeast-2": (-33.9, 151.2), "ap-southeast-3": (-6.2, 106.8),
    "ap-southeast-4": (-37.8, 145.0), "ap-southeast-5": (3.1, 101.7),
    "ap-southeast-6": (-36.8, 174.8), "ap-southeast-7": (13.8, 100.5),
    "cn-north-1": (39.9, 116.4), "cn-northwest-1": (37.5, 105.2),
    "us-gov-east-1": (40.0, -83.0), "us-gov-west-1": (45.6, -121.2),
}


_OCEANIA = frozenset({"ap-southeast-2", "ap-southeast-4", "ap-southeast-6"})
_CONTINENT_OF_PREFIX = {"us": "NA", "ca": "NA", "mx": "NA", "sa": "SA", "eu": "EU", "eusc": "EU",
                        "af": "AF", "me": "AS", "il": "AS", "ap": "AS", "cn": "AS"}


def region_continent(region: str) -> str | None:
    """The continent code a region's location is on (for a client whose region the table
    does not give: latency routing then prefers a region on its continent)."""
    if region in _OCEANIA:
        return "OC"
    return _CONTINENT_OF_PREFIX.get(region.split("-", 1)[0])


def region_distance(a: str, b: str) -> float:
    """Great-circle distance in km between two regions' locations (inf if either is unknown)."""
    pa, pb = REGIONS.get(a), REGIONS.get(b)
    if pa is None or pb is None:
        return math.inf
    la1, lo1, la2, lo2 = map(math.radians, (*pa, *pb))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class Location:
    """Where a client is, as far as the operator's table says (None: not known)."""

    continent: str | None = None
    country: str | None = None
    subdivision: str | None = None
    region: str | None = None


UNKNOWN = Location()
MEMO_LIMIT = 65536

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class GeoMapError(ValueError):
    """A bad line in a location table: the message names the line number and the field."""


class GeoMap:
    """CIDR blocks to Locations, looked up by longest prefix (most specific block wins)."""

    def __init__(self, entries: Iterable[tuple[Network, Location]] = ()):
        # per family and prefix length, network address (as int) -> location; lookups walk
        # the prefix lengths in use, longest first: a handful of dict probes per query
        self._by_len: dict[tuple[int, int], dict[int, Location]] = {}
        self._lengths: dict[int, list[int]] = {4: [], 6: []}
        self.source = ""  # where the table came from (a file name), for logs and workers
        # lookups remembered per (address, prefix): a server sees the same resolvers again
        # and again; bounded, and started over when full
        self._memo: dict[tuple[str, int | None], tuple[Location, int] | None] = {}
        self.entries: list[tuple[Network, Location]] = []
        for net, loc in entries:
            self.add(net, loc)

    def add(self, net: Network, loc: Location) -> None:
        self._memo.clear()
        self._by_len.setdefault((net.version, net.prefixlen), {})[int(net.network_address)] = loc
        self.entries.append((net, loc))
        self._lengths = {
            v: sorted((n for fam, n in self._by_len if fam == v), reverse=True) for v in (4, 6)
        }

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, address: str, prefix: int | None = None) -> tuple[Location, int] | None:
        key = (address, prefix)
        memo = self._memo
        if key in memo:
            return memo[key]
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        got = memo[key] = self._lookup(address, prefix)
        return got

    def _lookup(self, address: str, prefix: int | None) -> tuple[Location, int] | None:
        """The most specific block holding `address` (only blocks no longer than `prefix`,
        the client subnet's source prefix, when given: RFC 7871 §7.2.1 lets us answer for
        the subnet, not for bits the resolver withheld), and that block's prefix length."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value, bits = int(ip), ip.max_prefixlen
        for n in self._lengths[ip.version]:
            if prefix is not None and n > prefix:
                continue
            table = self._by_len[(ip.version, n)]
            loc = table.get(value >> (bits - n) << (bits - n) if n else 0)
            if loc is not None:
                return loc, n
        return None

    @classmethod
    def parse(cls, text: str, source: str = "geo map") -> GeoMap:
        """Parse the table. Raises GeoMapError naming the line and field of the first bad line.

        Format: `CIDR CONTINENT COUNTRY SUBDIVISION REGION` separated by blanks, `-` for an
        empty field, `#` starts a comment. Codes are Route 53's (continent codes, ISO 3166-1
        alpha-2 countries, US state subdivisions, the latency Region names)."""
        out = cls()
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            where = f"{source} line {lineno}"
            if len(fields) != 5:
                raise GeoMapError(
                    f"{where}: expected 5 fields (CIDR CONTINENT COUNTRY SUBDIVISION REGION), "
                    f"got {len(fields)}"
                )
            cidr, continent, country, subdivision, region = (None if f == "-" else f for f in fields)
            try:
                net = ipaddress.ip_network(cidr or "", strict=True)
            except ValueError as exc:
                raise GeoMapError(f"{where}: field 1 (CIDR) {fields[0]!r}: {exc}") from exc
            if continent is not None and continent not in CONTINENTS:
                raise GeoMapError(f"{where}: field 2 (CONTINENT) {continent!r} is not one of "
                                  f"{', '.join(CONTINENTS)}")
            if country is not None and country not in COUNTRIES:
                raise GeoMapError(f"{where}: field 3 (COUNTRY) {country!r} is not an ISO 3166-1 "
                                  "alpha-2 code")
            if subdivision is not None and (country != "US" or subdivision not in US_SUBDIVISIONS):
                raise GeoMapError(f"{where}: field 4 (SUBDIVISION) {subdivision!r}: Route 53 "
                                  "knows subdivisions only for US states (COUNTRY US)")
            if region is not None and region not in REGIONS:
                raise GeoMapError(f"{where}: field 5 (REGION) {region!r} is not a Route 53 "
                                  "latency region")
            out.add(net, Location(continent, country, subdivision, region))
        out.source = source
        return out
