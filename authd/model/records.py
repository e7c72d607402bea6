"""The record model every part shares: record sets keyed by (name, type, set identifier).

Pure core: no I/O. A `RecordSet` is what Route 53 calls a resource record set: a plain RRset,
one member of a routing policy's set (SetIdentifier plus Weight, or the fields in `Routing`:
Failover, GeoLocation, Region, MultiValueAnswer, CidrRoutingConfig, HealthCheckId), or an alias
(AliasTarget instead of TTL and values). Names are stored canonically (absolute, lower-case, trailing dot) and rdata
values in dnspython's canonical presentation form, so comparisons for DELETE-exact are exact.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from authd.model import r53values
from authd.zonefiles.masterfile import fast_canonical_value

# Route 53 allows alias records of these types (AWS docs, "Choosing between alias and
# non-alias records"). We follow aliases inside the server for all of them.
ALIAS_TYPES = frozenset(
    {"A", "AAAA", "CAA", "CNAME", "DS", "HTTPS", "MX", "NAPTR", "PTR", "SPF", "SRV", "SVCB", "TXT"}
)
MAX_WEIGHT = 255
MAX_TTL = 2**31 - 1  # RFC 2181 §8: a TTL is an unsigned 31-bit number


class RecordError(ValueError):
    """A record set that cannot exist: bad name, type, value, weight or alias."""


# Names made only of letters, digits, '-' and '_' need no escapes: lower-casing and a trailing
# dot is their whole canonical form (RFC 4343 case-insensitivity; 63-octet labels, 255 total,
# RFC 1035 section 2.3.4). Everything else goes through dnspython.
_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?")


# The caches below hold what a batch is likely to name again soon (a record set is
# canonicalised when a request is parsed and again when the store reads it back), not every
# name ever seen: a churning zone names new owners all day, and every enactor batch writes a
# new lock value (bench soak: about 10 new names and 4 new values a second, which filled
# 65,536 entries for hours). A zone load misses any bounded cache alike (each value passes
# once, then once more from the store). Measured by tracemalloc: canonical_name about 170 B an
# entry (1,024: 0.2 MB full), canonical_value about 270 B (512: 0.14 MB full).
@functools.lru_cache(maxsize=1 << 10)
def canonical_name(text: str) -> str:
    """Absolute, lower-case presentation form of a domain name (RFC 1035 escapes)."""
    if len(text) <= 253 and _PLAIN_NAME.fullmatch(text):
        return text.lower() if text.endswith(".") else text.lower() + "."
    try:
        name = dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise RecordError(f"invalid domain name {text!r}: {exc}") from exc
    return name.canonicalize().to_text()


_R53_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
_R53_PLAIN_OCTETS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")
_OCTAL = frozenset("01234567")


def route53_name(name: str) -> str:
    """The name as Route 53 prints it: every octet other than a-z, 0-9, `-`, `_` as `\\ooo`.

    Route 53 uses *octal* escapes (`*` is `\\052`, a line feed `\\012`), one per octet,
    unlike RFC 1035's decimal `\\DDD` that canonical names carry (Route 53 Developer Guide,
    "DNS domain name format"). A `.` inside a label is an octet like any other (`\\056`).
    """
    if "\\" not in name:  # no RFC 1035 escape: each character is one octet
        return "".join(c if c in _R53_PLAIN else f"\\{ord(c):03o}" for c in name)
    return _route53_escaped(name)


@functools.lru_cache(maxsize=1 << 12)
def _route53_escaped(name: str) -> str:
    labels = dns.name.from_text(name).labels  # decodes the decimal escapes exactly once
    return ".".join(
        "".join(chr(b) if b in _R53_PLAIN_OCTETS else f"\\{b:03o}" for b in label) for label in labels
    ) or "."


def from_route53_name(text: str) -> str:
    """Decode Route 53's name syntax, then canonicalise.

    `\\ooo` (three octal digits) is one octet; `\\` before any other character takes that
    character literally; an unescaped `.` separates labels. So `x\\056y.t.` is the
    one-label name `x.y` under `t.`, and `\\134` is a backslash, never an escape."""
    if "\\" not in text:  # nothing escaped: the common case
        return canonical_name(text)
    return _from_route53_escaped(text)


@functools.lru_cache(maxsize=1 << 12)
def _from_route53_escaped(text: str) -> str:
    labels: list[bytes] = []
    label = bytearray()
    i, end = 0, len(text)
    while i < end:
        c = text[i]
        if c == "\\":
            digits = text[i + 1:i + 4]
            if len(digits) == 3 and _OCTAL.issuperset(digits):
                octet = int(digits, 8)
                if octet > 0xFF:
                    raise RecordError(f"invalid domain name {text!r}: \\{digits} is not an octet")
                label.append(octet)
                i += 4
                continue
            if i + 1 >= end:
                raise RecordError(f"invalid domain name {text!r}: it ends with a lone backslash")
            c = text[i + 1]
            i += 1
        elif c == ".":
            labels.append(bytes(label))
            label = bytearray()
            i += 1
            continue
        if not c.isascii():
            raise RecordError(f"invalid domain name {text!r}: non-ASCII character {c!r} (use punycode)")
        label += c.encode()
        i += 1
    if label or not labels:
        labels.append(bytes(label))
    if labels == [b""]:
        labels = []
    try:
        name = dns.name.Name([*labels, b""])
    except dns.exception.DNSException as exc:
        raise RecordError(f"invalid domain name {text!r}: {exc}") from exc
    return name.canonicalize().to_text()


@functools.lru_cache(maxsize=256)
def canonical_type(text: str) -> str:
    known = _TYPES.get(text)
    if known is not None:
        return known
    try:
        canonical = dns.rdatatype.to_text(dns.rdatatype.from_text(text.upper()))
    except dns.exception.DNSException as exc:
        raise RecordError(f"unknown record type {text!r}") from exc
    if len(_TYPES) < 1024:  # a few dozen types in practice; bounded against odd spellings
        _TYPES[text] = canonical
    return canonical


_TYPES: dict[str, str] = {}


_DOTTED_QUAD = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}")


def canonical_value(rtype: str, text: str) -> str:
    """One rdata value in canonical presentation form (absolute names, dnspython spelling).

    Raises RecordError with Route 53's problem text (`authd.model.r53values`) for a value Route 53
    refuses, including master-file syntax that dnspython would silently cut off."""
    if rtype == "A" and _DOTTED_QUAD.fullmatch(text):
        return text  # already canonical: four decimal octets, no leading zeros; not cached
    if rtype == "SOA":
        # every accepted batch writes a new serial (RFC 1982; `changes.bump_soa`), so an SOA
        # text is a one-off: a few are kept for the repeats within one batch
        return _soa_value(rtype, text)
    return _cached_value(rtype, text)


def _canonical_value(rtype: str, text: str) -> str:
    problem = r53values.check_value(rtype, text)  # what Route 53 refuses, before any parser
    if problem is not None:
        raise RecordError(problem)
    fast = fast_canonical_value(rtype, text)  # plainly well-formed common types, checked
    if fast is not None:  # against dnspython in tests/test_masterfile.py
        return fast
    try:
        rd = dns.rdata.from_text(
            dns.rdataclass.IN, dns.rdatatype.from_text(rtype), text, origin=dns.name.root,
            relativize=False,
        )
    except dns.exception.DNSException as exc:
        raise RecordError(r53values.illegal(rtype, text, exc)) from exc
    return rd.to_text()


_cached_value = functools.lru_cache(maxsize=512)(_canonical_value)
_soa_value = functools.lru_cache(maxsize=16)(_canonical_value)


class RecordKey(NamedTuple):
    """Identity of a record set in a zone: Route 53 keys on name, type and set identifier."""

    name: str
    rtype: str
    set_identifier: str | None = None

    def describe(self) -> str:
        """Route 53's bracket form: `[name='x.api.aws.', type='A', set-identifier='lb-1']`."""
        ident = f", set-identifier='{self.set_identifier}'" if self.set_identifier else ""
        return f"[name='{self.name}', type='{self.rtype}'{ident}]"


@dataclass(frozen=True, slots=True)
class AliasTarget:
    """Route 53 AliasTarget: another name in the same hosted zone, followed like a symlink."""

    dns_name: str
    hosted_zone_id: str
    evaluate_target_health: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dns_name", canonical_name(self.dns_name))


@dataclass(frozen=True, slots=True)
class GeoLocation:
    """Route 53 GeoLocation: a continent, or a country (`*` is the default location) with an
    optional subdivision. Codes are kept as given (upper case); `authd.model.changes` checks them."""

    continent: str | None = None
    country: str | None = None
    subdivision: str | None = None


@dataclass(frozen=True, slots=True)
class Routing:
    """The routing fields of a record set beyond Weight (Route 53 API reference,
    ResourceRecordSet). Kept apart so a plain set carries one `None`, not seven.

    Which policy a set uses is whichever of failover, geo, region, multivalue or cidr is
    present (`RecordSet.policy`); `authd.model.changes` refuses sets with more than one."""

    failover: str | None = None  # PRIMARY or SECONDARY
    geo: GeoLocation | None = None
    region: str | None = None  # latency routing
    multivalue: bool | None = None
    health_check_id: str | None = None
    cidr: tuple[str, str] | None = None  # (CollectionId, LocationName); LocationName `*` default

    def policies(self) -> list[str]:
        """The policy fields present, as Route 53 names them."""
        out = []
        if self.region is not None:
            out.append("Region")
        if self.failover is not None:
            out.append("Failover")
        if self.geo is not None:
            out.append("GeoLocation")
        if self.multivalue is not None:
            out.append("MultiValueAnswer")
        if self.cidr is not None:
            out.append("CidrRoutingConfig")
        return out


_setattr = object.__setattr__  # how a frozen dataclass sets its own fields


@dataclass(frozen=True, slots=True)
class RecordSet:
    """A Route 53 resource record set. Frozen and hashable; equality is exact equality."""

    name: str
    rtype: str
    ttl: int | None = None
    values: tuple[str, ...] = ()
    set_identifier: str | None = None
    weight: int | None = None
    alias: AliasTarget | None = None
    routing: Routing | None = None
    # (name, type, set identifier), computed once: batches look it up several times per change
    key: RecordKey = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Runs for every record set a batch names (1,000 per big batch): write back only
        # what canonicalisation changed, which for most input is nothing.
        name, rtype = canonical_name(self.name), canonical_type(self.rtype)
        if name != self.name:
            _setattr(self, "name", name)
        if rtype != self.rtype:
            _setattr(self, "rtype", rtype)
        values = tuple([canonical_value(rtype, v) for v in self.values])
        if values != self.values or type(self.values) is not tuple:
            _setattr(self, "values", values)
        _setattr(self, "key", RecordKey(name, rtype, self.set_identifier))

    @property
    def is_alias(self) -> bool:
        return self.alias is not None

    @property
    def is_weighted(self) -> bool:
        return self.weight is not None

    @property
    def policy(self) -> str | None:
        """The routing policy: "weighted", "latency", "failover", "geolocation",
        "multivalue", "cidr", or None for a simple set (the first present when several are
        given, which `authd.model.changes` refuses)."""
        if self.weight is not None:
            return "weighted"
        r = self.routing
        if r is None:
            return None
        if r.region is not None:
            return "latency"
        if r.failover is not None:
            return "failover"
        if r.geo is not None:
            return "geolocation"
        if r.multivalue is not None:
            return "multivalue"
        if r.cidr is not None:
            return "cidr"
        return None

    @property
    def health_check_id(self) -> str | None:
        return self.routing.health_check_id if self.routing is not None else None

    def problems(self) -> list[str]:
        """What makes this record set invalid on its own (empty list when it is fine)."""
        out: list[str] = []
        if self.alias is not None:
            if self.rtype not in ALIAS_TYPES:
                out.append(f"Alias records of type {self.rtype} are not supported")
            if self.ttl is not None or self.values:
                out.append("An alias record set must not have a TTL or resource records")
        else:
            if self.ttl is None:
                out.append("A record set must have a TTL unless it is an alias")
            elif not 0 <= self.ttl <= MAX_TTL:
                out.append(f"TTL {self.ttl} is out of range 0..{MAX_TTL}")
            if not self.values:
                out.append("A record set must have at least one resource record")
            if len(set(self.values)) != len(self.values):
                out.append("Duplicate Resource Record")
        # Which routing fields go together with SetIdentifier is a batch rule with Route 53's
        # InvalidInput wording (`authd.model.changes.policy_problems`): it names the change's action.
        if self.weight is not None and not 0 <= self.weight <= MAX_WEIGHT:
            out.append(f"Weight {self.weight} is out of range 0..{MAX_WEIGHT}")
        if self.set_identifier is not None and not 1 <= len(self.set_identifier) <= 128:
            out.append("SetIdentifier must be 1 to 128 characters")
        return out

    def same_as(self, other: RecordSet) -> bool:
        """Route 53's DELETE-exact rule: TTL, values (as a set), weight, id and alias all match."""
        return (
            self.key == other.key
            and self.ttl == other.ttl
            and set(self.values) == set(other.values)
            and self.weight == other.weight
            and self.alias == other.alias
            and self.routing == other.routing
        )

    def replace(self, **changes: Any) -> RecordSet:
        return dataclasses.replace(self, **changes)

    # --- Route 53 JSON (the shape `aws route53 list-resource-record-sets` prints) ---------

    @classmethod
    def from_route53(cls, d: dict[str, Any]) -> RecordSet:
        """Build from a ResourceRecordSet dict. Raises RecordError naming the field at fault."""
        try:
            alias = None
            if "AliasTarget" in d:
                at = d["AliasTarget"]
                alias = AliasTarget(
                    dns_name=from_route53_name(str(at["DNSName"])),
                    hosted_zone_id=str(at.get("HostedZoneId", "")),
                    evaluate_target_health=bool(at.get("EvaluateTargetHealth", False)),
                )
            weight = d.get("Weight")
            routing = routing_from_route53(d)
            return cls(
                name=from_route53_name(str(d["Name"])),
                rtype=str(d["Type"]),
                ttl=int(d["TTL"]) if "TTL" in d else None,
                values=tuple(str(rr["Value"]) for rr in d.get("ResourceRecords", [])),
                set_identifier=str(d["SetIdentifier"]) if "SetIdentifier" in d else None,
                weight=int(weight) if weight is not None else None,
                alias=alias,
                routing=routing,
            )
        except KeyError as exc:
            raise RecordError(f"missing field {exc.args[0]}") from exc
        except (TypeError, ValueError) as exc:
            if isinstance(exc, RecordError):
                raise
            raise RecordError(str(exc)) from exc

    def to_route53(self) -> dict[str, Any]:
        d: dict[str, Any] = {"Name": route53_name(self.name), "Type": self.rtype}
        if self.set_identifier is not None:
            d["SetIdentifier"] = self.set_identifier
        if self.weight is not None:
            d["Weight"] = self.weight
        r = self.routing
        if r is not None:
            if r.region is not None:
                d["Region"] = r.region
            if r.geo is not None:
                d["GeoLocation"] = {k: v for k, v in (("ContinentCode", r.geo.continent),
                                                      ("CountryCode", r.geo.country),
                                                      ("SubdivisionCode", r.geo.subdivision))
                                    if v is not None}
            if r.failover is not None:
                d["Failover"] = r.failover
            if r.multivalue is not None:
                d["MultiValueAnswer"] = r.multivalue
        if self.alias is not None:
            d["AliasTarget"] = {
                "HostedZoneId": self.alias.hosted_zone_id,
                "DNSName": route53_name(self.alias.dns_name),
                "EvaluateTargetHealth": self.alias.evaluate_target_health,
            }
        else:
            d["TTL"] = self.ttl
            d["ResourceRecords"] = [{"Value": v} for v in self.values]
        if r is not None:
            if r.health_check_id is not None:
                d["HealthCheckId"] = r.health_check_id
            if r.cidr is not None:
                d["CidrRoutingConfig"] = {"CollectionId": r.cidr[0], "LocationName": r.cidr[1]}
        return d


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise RecordError(f"MultiValueAnswer must be true or false, got {value!r}")
    return text == "true"


def routing_from_route53(d: dict[str, Any]) -> Routing | None:
    """The routing fields of a ResourceRecordSet dict (JSON shape), or None when it has none.
    Geoproximity and traffic-policy sets are refused, never stored without their routing."""
    for unsupported in ("GeoProximityLocation", "TrafficPolicyInstanceId"):
        if unsupported in d:
            raise RecordError(f"{unsupported} is not supported by authd")
    if not any(k in d for k in ("Region", "Failover", "GeoLocation", "MultiValueAnswer",
                                "HealthCheckId", "CidrRoutingConfig")):
        return None
    geo = None
    if "GeoLocation" in d:
        g = d["GeoLocation"]
        if not isinstance(g, dict):
            raise RecordError("GeoLocation must hold ContinentCode, CountryCode or SubdivisionCode")
        geo = GeoLocation(*(str(g[k]).strip() if g.get(k) not in (None, "") else None
                            for k in ("ContinentCode", "CountryCode", "SubdivisionCode")))
    cidr = None
    if "CidrRoutingConfig" in d:
        c = d["CidrRoutingConfig"]
        if not isinstance(c, dict) or "CollectionId" not in c or "LocationName" not in c:
            raise RecordError("CidrRoutingConfig needs CollectionId and LocationName")
        cidr = (str(c["CollectionId"]).strip(), str(c["LocationName"]).strip())

    def text(key: str) -> str | None:
        return str(d[key]).strip() if d.get(key) is not None else None

    return Routing(
        failover=text("Failover"),
        geo=geo,
        region=text("Region"),
        multivalue=_flag(d["MultiValueAnswer"]) if d.get("MultiValueAnswer") is not None else None,
        health_check_id=text("HealthCheckId"),
        cidr=cidr,
    )


def route53_sort_key(rs: RecordSet) -> tuple[tuple[str, ...], str, str]:
    """Route 53 lists record sets by name with labels reversed, then type, then identifier."""
    labels = tuple(reversed(rs.name.rstrip(".").split("."))) if rs.name != "." else ()
    return (labels, rs.rtype, rs.set_identifier or "")
