"""Change-batch semantics: Route 53's ChangeResourceRecordSets rules, and nothing else.

Pure core: no I/O, no clock, no store. `plan_batch` takes a zone, a batch and a read-only
view of the zone's current contents, and returns either the mutations to apply (`Accepted`)
or every problem in Route 53's own wording (`Rejected`). Every store backend applies batches
through this one function inside its own transaction, so these rules exist exactly once.

Theory of operation (Route 53 API reference, ChangeResourceRecordSets):

1. Request limits first. At most 1,000 ResourceRecord elements and 32,000 value characters
   per request, an UPSERT counting twice. Beyond them Route 53 answers with the limit error
   alone and checks nothing else.
2. Changes are walked in batch order against the zone *as the earlier changes left it*, so
   "DELETE the lock with the value I believe it has, CREATE it with my value" works and is
   the compare-and-swap the enactors' lock rests on. CREATE fails if the set exists; DELETE
   fails unless the set exists and matches exactly (`RecordSet.same_as`: TTL, values,
   weight, set identifier and alias target). UPSERT always succeeds.
3. One record set may appear once per batch, except DELETE followed by CREATE (the
   pre-UPSERT idiom that the lock uses). Anything else is "an invalid set of changes".
4. Zone-level rules are checked on the state the whole batch leaves behind: names inside
   the zone; one SOA and the NS set at the apex; no CNAME beside other data or at the apex;
   weighted and non-weighted sets never share a name and type; every alias created or
   upserted in the batch targets a name and type that exists afterwards (so a batch may
   build a tree and point at it in one go).
5. Routing policies (Route 53 API reference, ResourceRecordSet; developer guide, "Choosing a
   routing policy"): first, per change, the input rules Route 53 answers with InvalidInput
   (at most one of Weight, Region, Failover, GeoLocation, MultiValueAnswer and
   CidrRoutingConfig; SetIdentifier exactly when one is given; valid codes); then, on the
   state the batch leaves, the set rules (InvalidChangeBatch): every set at a name and type
   uses the same policy; failover has at most one PRIMARY and one SECONDARY, and a non-alias
   PRIMARY needs a health check; one geolocation, latency region or CIDR location per name
   and type; multivalue sets are not aliases; a CIDR set names a location its collection has.
   A HealthCheckId must name a health check the store holds (NoSuchHealthCheck otherwise).
6. Deleting a record set that an alias still targets is ALLOWED. Route 53 checks alias
   targets only when the alias is written; this is exactly how the 2025 cleaner could delete
   the active plan's tree and leave `dynamodb.us-east-1.api.aws` dangling (the talk, DAT453).
   The fix belongs in the cleaner (delete by reachability), not in the store.

All problems are collected, in batch order, so one response names every one of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from authd.dns.geo import CONTINENTS, COUNTRIES, REGIONS, US_SUBDIVISIONS
from authd.model.limits import msg_too_many_record_sets
from authd.model.records import RecordKey, RecordSet
from authd.store.contract import Action, Change

MAX_RECORDS = 1000  # ResourceRecord elements per request, UPSERT counted twice
MAX_VALUE_CHARS = 32000  # characters in all Value elements per request, UPSERT twice

# Route 53's exact wording for the request limits (what boto3 and the Go SDK print).
RECORDS_LIMIT_MESSAGE = f"Number of records limit of {MAX_RECORDS} exceeded."
CHARS_LIMIT_MESSAGE = f"RDATA character limit of {MAX_VALUE_CHARS} exceeded."

# Route 53's defaults for a new hosted zone (SOA TTL 900, NS TTL 172800, negative TTL 86400).
DEFAULT_SOA_TTL = 900
DEFAULT_NS_TTL = 172800
DEFAULT_NAME_SERVERS = ("ns-1.authd.test.", "ns-2.authd.test.")


class ZoneView(Protocol):
    """Read-only access to one zone's current contents: one cheap point read per name."""

    def at(self, name: str) -> Sequence[RecordSet]:
        """Every record set at `name`, of any type (plain sets and weighted members)."""
        ...


@dataclass(frozen=True, slots=True)
class Accepted:
    """The mutations a valid batch makes: whole new values to put, keys to remove."""

    puts: tuple[RecordSet, ...]
    deletes: tuple[RecordKey, ...]
    # record sets the zone gains (new keys put minus keys deleted), so a store can keep its
    # count without counting the zone
    net_new: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Every problem found, in batch order, in Route 53's words. `code` is the error code."""

    messages: tuple[str, ...]
    code: str = "InvalidChangeBatch"


# --- Route 53's messages -------------------------------------------------------------------


def msg_exists(key: RecordKey) -> str:
    return f"Tried to create resource record set {key.describe()} but it already exists"


def msg_not_found(key: RecordKey) -> str:
    return f"Tried to delete resource record set {key.describe()} but it was not found"


def msg_mismatch(key: RecordKey) -> str:
    return (
        f"Tried to delete resource record set {key.describe()} "
        "but the values provided do not match the current values"
    )


def msg_alias_missing(rs: RecordSet) -> str:
    assert rs.alias is not None
    return (
        f"Tried to create an alias that targets {rs.alias.dns_name}, type {rs.rtype} in zone "
        f"{rs.alias.hosted_zone_id}, but that target was not found"
    )


def msg_alias_outside(rs: RecordSet) -> str:
    assert rs.alias is not None
    return (
        f"Tried to create an alias that targets {rs.alias.dns_name}, type {rs.rtype} in zone "
        f"{rs.alias.hosted_zone_id}, but the alias target name does not lie within the target zone"
    )


def msg_twice(key: RecordKey) -> str:
    return f"The request contains an invalid set of changes for a resource record set '{key.rtype} {key.name}'"


def msg_outside_zone(name: str, origin: str) -> str:
    return f"RRSet with DNS name {name} is not permitted in zone {origin}"


def msg_plain_beside_weighted(rs: RecordSet) -> str:
    return (
        f"RRSet with DNS name {rs.name}, type {rs.rtype} cannot be created as other RRSets "
        "exist with the same name and type."
    )


def msg_weighted_beside_plain(rs: RecordSet) -> str:
    return (
        f"RRSet with DNS name {rs.name}, type {rs.rtype}, SetIdentifier {rs.set_identifier} "
        "cannot be created as a non-weighted set exists with the same name and type."
    )


def msg_cname_conflict(rs: RecordSet, origin: str) -> str:
    if rs.rtype == "CNAME":
        return (
            f"RRSet of type CNAME with DNS name {rs.name} is not permitted as it conflicts "
            f"with other records with the same DNS name in zone {origin}"
        )
    return (
        f"RRSet of type {rs.rtype} with DNS name {rs.name} is not permitted because a "
        f"conflicting RRSet of type CNAME with the same DNS name already exists in zone {origin}"
    )


def msg_cname_apex(name: str, origin: str) -> str:
    return f"RRSet of type CNAME with DNS name {name} is not permitted at apex in zone {origin}"


# --- routing policies: Route 53's words ----------------------------------------------------

POLICY_FIELDS = ("Weight, Region, Failover, GeoLocation, MultiValueAnswer, GeoProximityLocation, "
                 "or CidrRoutingConfig")
MSG_PRIMARY_NEEDS_HEALTH = "A non-alias primary ResourceRecordSet must have an associated health check."
MSG_NO_SUCH_HEALTH_CHECK = "No health check exists with the specified ID."

# What Route 53 calls each policy in "cannot be created because a non-... RRSet" messages
_POLICY_WORD = {"weighted": "weighted", "latency": "latency", "failover": "failover",
                "geolocation": "GEO", "multivalue": "multivalue", "cidr": "CIDR"}


def _in_change(action: Action, rs: RecordSet) -> str:
    ident = rs.set_identifier if rs.set_identifier is not None else "null"
    return f"in Change with [Action={action.value}, Name={rs.name}, Type={rs.rtype}, SetIdentifier={ident}]"


def msg_policy_count(action: Action, rs: RecordSet, found: str) -> str:
    return f"Invalid request: Expected exactly one of [{POLICY_FIELDS}], but found {found} {_in_change(action, rs)}"


def msg_missing_set_identifier(action: Action, rs: RecordSet) -> str:
    return f"Invalid request: Missing field 'SetIdentifier' {_in_change(action, rs)}"


def msg_bad_value(index: int, field: str, value: object, constraint: str) -> str:
    """AWS's validation error form for a value outside its shape's enum or pattern."""
    return (f"1 validation error detected: Value '{value}' at "
            f"'changeBatch.changes.{index}.member.resourceRecordSet.{field}' failed to satisfy "
            f"constraint: {constraint}")


def _routing_text(rs: RecordSet) -> str:
    """How Route 53 describes a set's routing inside its messages."""
    r = rs.routing
    policy = rs.policy
    if policy == "weighted":
        return f"Weight={rs.weight}"
    assert r is not None
    if policy == "latency":
        return f"Region Name={r.region}"
    if policy == "failover":
        return f"failover {r.failover}"
    if policy == "geolocation":
        assert r.geo is not None
        if r.geo.continent is not None:
            return f"routing to [continent = ({r.geo.continent}, {CONTINENTS.get(r.geo.continent, '')})]"
        if r.geo.subdivision is not None:
            return f"routing to [country = ({r.geo.country}), subdivision = ({r.geo.subdivision})]"
        return f"routing to [country = ({r.geo.country})]"
    if policy == "cidr":
        assert r.cidr is not None
        return f"CIDR location {r.cidr[1]} in collection {r.cidr[0]}"
    return "multivalue answer"


def msg_mixed_policy(rs: RecordSet) -> str:
    return (f"RRSet with DNS name {rs.name}, type {rs.rtype}, SetIdentifier {rs.set_identifier}, "
            f"and {_routing_text(rs)} cannot be created because a non-{_POLICY_WORD[rs.policy or '']} "
            "RRSet with the same name and type already exists.")


def msg_same_routing(rs: RecordSet) -> str:
    return (f"RRSet with DNS name {rs.name}, type {rs.rtype}, SetIdentifier {rs.set_identifier}, "
            f"and {_routing_text(rs)} cannot be created because another RRSet with the same name, "
            "type and routing already exists.")


def msg_multivalue_alias(rs: RecordSet) -> str:
    return (f"RRSet with DNS name {rs.name}, type {rs.rtype}, SetIdentifier {rs.set_identifier} "
            "cannot be created: Multivalue answer records cannot be alias records.")


def msg_cidr_collection(rs: RecordSet) -> str:
    assert rs.routing is not None and rs.routing.cidr is not None
    return f"CIDR collection {rs.routing.cidr[0]} does not exist."


def msg_cidr_location(rs: RecordSet) -> str:
    assert rs.routing is not None and rs.routing.cidr is not None
    cid, loc = rs.routing.cidr
    return f"CIDR location {loc} does not exist in CIDR collection {cid}."


def msg_cidr_mixed_collections(rs: RecordSet) -> str:
    return (f"CIDR collection of RRSet with DNS name {rs.name}, type {rs.rtype}, SetIdentifier "
            f"{rs.set_identifier} differs from other CIDR RRSets with the same name and type.")


_UUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")
_CIDR_LOCATION = re.compile(r"[0-9A-Za-z_\-*]{1,16}")


def policy_input_problems(index: int, action: Action, rs: RecordSet) -> list[str]:
    """The InvalidInput rules of one change's routing fields (`index` is 1-based, as AWS's
    validation messages count). DELETE is held to them too: Route 53 validates the shape of
    every change before it looks at the zone."""
    out: list[str] = []
    r = rs.routing
    present = (["Weight"] if rs.weight is not None else []) + (r.policies() if r is not None else [])
    if len(present) > 1:
        out.append(msg_policy_count(action, rs, "more than one"))
    elif present and rs.set_identifier is None:
        out.append(msg_missing_set_identifier(action, rs))
    elif not present and rs.set_identifier is not None:
        out.append(msg_policy_count(action, rs, "none"))
    if r is None:
        return out
    if r.failover is not None and r.failover not in ("PRIMARY", "SECONDARY"):
        out.append(msg_bad_value(index, "failover", r.failover,
                                 "Member must satisfy enum value set: [PRIMARY, SECONDARY]"))
    if r.region is not None and r.region not in REGIONS:
        out.append(msg_bad_value(index, "region", r.region,
                                 f"Member must satisfy enum value set: [{', '.join(REGIONS)}]"))
    g = r.geo
    if g is not None:
        # botocore model, GeoLocation: a continent alone, or a country with an optional US
        # state; ContinentCode with CountryCode or SubdivisionCode is InvalidInput
        if g.continent is None and g.country is None:
            out.append(f"Invalid request: GeoLocation needs ContinentCode or CountryCode {_in_change(action, rs)}")
        elif g.continent is not None and (g.country is not None or g.subdivision is not None):
            out.append(f"Invalid request: ContinentCode cannot be specified with CountryCode or "
                       f"SubdivisionCode {_in_change(action, rs)}")
        elif g.continent is not None and g.continent not in CONTINENTS:
            out.append(f"Invalid request: Unsupported continent code {g.continent} {_in_change(action, rs)}")
        elif g.country is not None and g.country != "*" and g.country not in COUNTRIES:
            out.append(f"Invalid request: Unsupported country code {g.country} {_in_change(action, rs)}")
        elif g.subdivision is not None and (g.country != "US" or g.subdivision not in US_SUBDIVISIONS):
            out.append(f"Invalid request: Unsupported subdivision code {g.subdivision} for country "
                       f"{g.country} {_in_change(action, rs)}")
    if r.cidr is not None:
        cid, loc = r.cidr
        if not _UUID.fullmatch(cid):
            out.append(msg_bad_value(index, "cidrRoutingConfig.collectionId", cid,
                                     "Member must satisfy regular expression pattern: "
                                     "[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}"))
        if not _CIDR_LOCATION.fullmatch(loc):
            out.append(msg_bad_value(index, "cidrRoutingConfig.locationName", loc,
                                     "Member must satisfy regular expression pattern: [0-9A-Za-z_\\-\\*]+"))
    if r.health_check_id is not None and not 1 <= len(r.health_check_id) <= 64:
        out.append(msg_bad_value(index, "healthCheckId", r.health_check_id,
                                 "Member must have length less than or equal to 64"))
    return out


MSG_ONE_SOA = "A HostedZone must contain exactly one SOA record."
MSG_APEX_NS = "A HostedZone must contain at least one NS record for the zone itself."


# --- the rules ------------------------------------------------------------------------------


def is_in_zone(name: str, origin: str) -> bool:
    """Canonical names: `name` equals `origin` or ends with `.origin` (label boundary)."""
    return origin == "." or name == origin or name.endswith("." + origin)


def batch_size(changes: Iterable[Change]) -> tuple[int, int]:
    """(ResourceRecord elements, value characters), an UPSERT counting twice.

    An alias set has no ResourceRecord elements; we count it as one record so a batch of
    1,000 alias flips is bounded like any other.
    """
    records = chars = 0
    upsert = Action.UPSERT
    for ch in changes:
        values = ch.rrset.values
        n = len(values)
        size = len(values[0]) if n == 1 else sum(map(len, values))  # most sets hold one value
        if ch.action is upsert:
            records += 2 * (n or 1)
            chars += 2 * size
        else:
            records += n or 1
            chars += size
    return records, chars


_ALLOWED_SEQUENCES = {
    (Action.CREATE,),
    (Action.DELETE,),
    (Action.UPSERT,),
    (Action.DELETE, Action.CREATE),
}


class _Overlay:
    """The zone as the batch so far leaves it: the base view plus this batch's writes.

    The base is read once per name (`ZoneView.at`) and writes are indexed
    by (name, type) and by name, so every read stays O(sets at that name), whatever the batch
    or zone size.
    """

    def __init__(self, base: ZoneView):
        self.base = base
        self.written: dict[RecordKey, RecordSet | None] = {}
        self._written_at: dict[tuple[str, str], dict[str | None, RecordSet | None]] = {}
        self._types_written: dict[str, set[str]] = {}
        self._base_names: dict[str, dict[str, dict[str | None, RecordSet]]] = {}

    def write(self, key: RecordKey, rs: RecordSet | None) -> None:
        self.written[key] = rs
        at = self._written_at.get((key.name, key.rtype))
        if at is None:
            at = self._written_at[(key.name, key.rtype)] = {}
            self._types_written.setdefault(key.name, set()).add(key.rtype)
        at[key.set_identifier] = rs

    def _base_name(self, name: str) -> dict[str, dict[str | None, RecordSet]]:
        got = self._base_names.get(name)
        if got is None:
            got = {}
            for rs in self.base.at(name):
                by_id = got.get(rs.rtype)
                if by_id is None:
                    by_id = got[rs.rtype] = {}
                by_id[rs.set_identifier] = rs
            self._base_names[name] = got
        return got

    def base_at(self, name: str, rtype: str) -> dict[str | None, RecordSet]:
        """The base's sets at (name, type) by set identifier. Read-only: never mutate it."""
        return self._base_name(name).get(rtype, _NOTHING)

    def current(self, key: RecordKey) -> RecordSet | None:
        if key in self.written:
            return self.written[key]
        return self.base_at(key.name, key.rtype).get(key.set_identifier)

    def sets(self, name: str, rtype: str) -> list[RecordSet]:
        written = self._written_at.get((name, rtype))
        base = self.base_at(name, rtype)
        if written is None:
            return list(base.values())
        merged: dict[str | None, RecordSet | None] = dict(base)
        merged.update(written)
        return [rs for rs in merged.values() if rs is not None]

    def others_at(self, name: str, rtype: str) -> bool:
        """Whether (name, type) holds more than one set, given that this batch wrote one
        there: `len(self.sets(...)) > 1`, without building the list when only the batch's
        own set is there (a new name), or when it replaced the one set there (an UPSERT of a
        plain set: the same set identifier on both sides)."""
        base = self.base_at(name, rtype)
        written = self._written_at.get((name, rtype), _NOTHING)
        if len(written) <= 1 and (not base or (len(base) == 1 and base.keys() == written.keys())):
            return False
        return len(self.sets(name, rtype)) > 1

    def has(self, name: str, rtype: str) -> bool:
        """Whether any set is left at (name, type): `bool(self.sets(...))`, allocation-free
        in the common case of nothing written there."""
        if (name, rtype) not in self._written_at:
            return bool(self.base_at(name, rtype))
        return bool(self.sets(name, rtype))

    def types_at(self, name: str) -> set[str]:
        types = set(self._base_name(name))
        for rtype in self._types_written.get(name, ()):
            if self.has(name, rtype):
                types.add(rtype)
            else:
                types.discard(rtype)
        return types


_NOTHING: dict[str | None, RecordSet] = {}


def plan_batch(
    zone_id: str,
    origin: str,
    changes: Sequence[Change],
    view: ZoneView,
    *,
    limits: bool = True,
    resource: Callable[[str, str], dict[str, Any] | None] | None = None,
    record_set_count: int = 0,
    max_record_sets: int | None = None,
) -> Accepted | Rejected:
    """Validate `changes` against `view` (the zone `origin`, id `zone_id`) and plan them.

    Returns Accepted with the record sets to put (their whole new value) and the keys to
    delete, or Rejected with every problem, in batch order, in Route 53's words.
    `limits=False` lifts the per-request size limits (importing a zone file is not a request).
    `resource(kind, id)` reads the store's resources (the document, or None when absent):
    health checks (`healthcheck`) and CIDR collections (`cidrcollection`) that record sets
    name must exist. Without it those references are not checked.
    `max_record_sets` (the MAX_RRSETS_BY_ZONE quota, `authd.model.limits`) refuses a batch that
    would leave the zone, now holding `record_set_count` sets, with more than that many.
    """
    if not changes:
        # The XML schema requires at least one Change; Route 53 answers InvalidInput.
        return Rejected(("The request must contain at least one change",), code="InvalidInput")
    records, chars = batch_size(changes) if limits else (0, 0)
    over = []
    if records > MAX_RECORDS:
        over.append(RECORDS_LIMIT_MESSAGE)
    if chars > MAX_VALUE_CHARS:
        over.append(CHARS_LIMIT_MESSAGE)
    if over:
        return Rejected(tuple(over))
    invalid: list[str] = []
    for i, ch in enumerate(changes, 1):
        rs = ch.rrset
        if rs.routing is None and (rs.set_identifier is None) is (rs.weight is None):
            continue  # a plain set, or a weighted one with its identifier: nothing to check
        invalid.extend(policy_input_problems(i, ch.action, rs))
    if invalid:
        return Rejected(tuple(dict.fromkeys(invalid)), code="InvalidInput")

    problems: list[str] = []
    seen: dict[RecordKey, tuple[Action, ...]] = {}  # the actions on each key so far
    overlay = _Overlay(view)
    written = overlay.written
    written_by_batch: list[RecordSet] = []
    suffix = "." + origin

    for ch in changes:
        rs, action = ch.rrset, ch.action
        key = rs.key
        before = seen.get(key)
        if before is None:
            seen[key] = (action,)
        else:
            seen[key] = actions = before + (action,)
            if actions not in _ALLOWED_SEQUENCES:
                if before in _ALLOWED_SEQUENCES:
                    problems.append(msg_twice(key))  # once per record set, however often it repeats
                continue
        name = rs.name
        if not (name == origin or origin == "." or name.endswith(suffix)):  # is_in_zone
            problems.append(msg_outside_zone(name, origin))
            continue
        if action is not Action.DELETE:
            own = rs.problems()
            if own:
                problems.extend(own)
                continue
        existing = written[key] if key in written else overlay.base_at(name, key.rtype).get(key.set_identifier)
        if action is Action.CREATE:
            if existing is not None:
                problems.append(msg_exists(key))
                continue
            overlay.write(key, rs)
            written_by_batch.append(rs)
        elif action is Action.DELETE:
            if existing is None:
                problems.append(msg_not_found(key))
            elif not existing.same_as(rs):
                problems.append(msg_mismatch(key))
            else:
                overlay.write(key, None)
        else:  # UPSERT
            overlay.write(key, rs)
            written_by_batch.append(rs)

    # Zone-level rules on the state the whole batch leaves behind.
    groups: dict[tuple[str, str], _Group] = {}
    missing_checks: list[str] = []
    for rs in written_by_batch:
        if overlay.written.get(rs.key) is not rs:
            continue  # replaced later in the batch (DELETE then CREATE): checked as that one
        if rs.set_identifier is None:
            if overlay.others_at(rs.name, rs.rtype):
                problems.append(msg_plain_beside_weighted(rs))
        elif overlay.others_at(rs.name, rs.rtype):  # alone at its name and type: nothing to compare
            gk = (rs.name, rs.rtype)
            group = groups.get(gk)
            if group is None:
                group = groups[gk] = _Group(overlay.sets(rs.name, rs.rtype))
            problems.extend(group.problems(rs))
        if rs.routing is not None:
            problems.extend(_routing_problems(rs, resource, missing_checks))
        if rs.rtype == "CNAME":
            if rs.name == origin:
                problems.append(msg_cname_apex(rs.name, origin))
            if len(overlay.types_at(rs.name)) > 1:
                problems.append(msg_cname_conflict(rs, origin))
        elif overlay.has(rs.name, "CNAME"):
            problems.append(msg_cname_conflict(rs, origin))
        if rs.rtype in ("SOA",) and rs.name != origin:
            problems.append(MSG_ONE_SOA)
        if rs.alias is not None:
            target = rs.alias.dns_name
            if not is_in_zone(target, origin):
                problems.append(msg_alias_outside(rs))
            elif rs.alias.hosted_zone_id != zone_id or not overlay.has(target, rs.rtype):
                problems.append(msg_alias_missing(rs))
    for key, value in overlay.written.items():
        if value is None and key.name == origin and key.rtype == "SOA":
            problems.append(MSG_ONE_SOA)
        if key.name == origin and key.rtype == "NS" and not overlay.has(origin, "NS"):
            problems.append(MSG_APEX_NS)

    if problems:
        return Rejected(tuple(dict.fromkeys(problems)))  # one line per distinct problem
    if missing_checks:
        # ChangeResourceRecordSets' own error for a HealthCheckId the account does not hold
        return Rejected((MSG_NO_SUCH_HEALTH_CHECK,), code="NoSuchHealthCheck")
    puts: list[RecordSet] = []
    deletes: list[RecordKey] = []
    net_new = 0
    for key, value in overlay.written.items():
        existed = key.set_identifier in overlay.base_at(key.name, key.rtype)
        if value is not None:
            puts.append(value)
            net_new += 0 if existed else 1
        elif existed:
            deletes.append(key)
            net_new -= 1
    # Route 53 quota "records per hosted zone" (Developer Guide, Quotas on entities): only a
    # batch that grows the zone past it is refused, so a zone over a lowered limit can shrink.
    if max_record_sets is not None and net_new > 0 and record_set_count + net_new > max_record_sets:
        return Rejected((msg_too_many_record_sets(zone_id, max_record_sets),))
    return Accepted(tuple(puts), tuple(deletes), net_new)


def _routing_key(rs: RecordSet) -> object:
    """What must be unique among the sets of one policy at a name and type (None: nothing)."""
    r = rs.routing
    if r is None:
        return None
    if r.failover is not None:
        return r.failover  # one PRIMARY, one SECONDARY
    if r.geo is not None:
        return r.geo
    if r.region is not None:
        return r.region
    if r.cidr is not None:
        return r.cidr[1]
    return None


class _Group:
    """The sets at one name and type after the batch, summarised once (a weighted set of a
    thousand members is checked in one pass, not once per member)."""

    __slots__ = ("has_plain", "policies", "keys", "collections")

    def __init__(self, sets: list[RecordSet]):
        self.has_plain = False
        self.policies: set[str | None] = set()
        self.keys: dict[object, int] = {}
        self.collections: set[str] = set()
        for o in sets:
            if o.routing is None:  # plain or weighted: the bulk of a big batch, kept cheap
                if o.set_identifier is None:
                    self.has_plain = True
                self.policies.add(None if o.weight is None else "weighted")
                continue
            self.policies.add(o.policy)
            k = _routing_key(o)
            if k is not None:
                self.keys[k] = self.keys.get(k, 0) + 1
            if o.routing.cidr is not None:
                self.collections.add(o.routing.cidr[0])

    def problems(self, rs: RecordSet) -> list[str]:
        """A set with a SetIdentifier against the others at its name and type."""
        if self.has_plain:
            if rs.policy == "weighted":
                return [msg_weighted_beside_plain(rs)]
            return [msg_mixed_policy(rs)]
        if len(self.policies) > 1:
            return [msg_mixed_policy(rs)]
        if len(self.collections) > 1:
            return [msg_cidr_mixed_collections(rs)]
        k = _routing_key(rs)
        if k is not None and self.keys.get(k, 0) > 1:
            return [msg_same_routing(rs)]
        return []


def _routing_problems(
    rs: RecordSet,
    resource: Callable[[str, str], dict[str, Any] | None] | None,
    missing_checks: list[str],
) -> list[str]:
    """One set's own routing rules, and the resources it names."""
    r = rs.routing
    assert r is not None
    out = []
    if r.failover == "PRIMARY" and rs.alias is None and r.health_check_id is None:
        out.append(MSG_PRIMARY_NEEDS_HEALTH)
    if r.multivalue is not None and rs.alias is not None:
        out.append(msg_multivalue_alias(rs))
    if resource is None:
        return out
    if r.health_check_id is not None and resource("healthcheck", r.health_check_id) is None:
        missing_checks.append(r.health_check_id)
    if r.cidr is not None:
        doc = resource("cidrcollection", r.cidr[0])
        if doc is None:
            out.append(msg_cidr_collection(rs))
        elif r.cidr[1] != "*" and r.cidr[1] not in (doc.get("Locations") or {}):
            out.append(msg_cidr_location(rs))
    return out


# --- the SOA serial, bumped by every accepted batch ----------------------------------------


def soa_serial(soa: RecordSet) -> int:
    return int(soa.values[0].split()[2])


def serial_after(old: int) -> int:
    """The next serial in RFC 1982 sequence-space arithmetic (wraps at 2**32, skips 0)."""
    nxt = (old + 1) % 2**32
    return nxt or 1


def serial_newer(a: int, b: int) -> bool:
    """RFC 1982 section 3.2: is serial `a` greater than serial `b`?"""
    return a != b and ((a > b and a - b < 2**31) or (a < b and b - a > 2**31))


def with_serial(soa: RecordSet, serial: int) -> RecordSet:
    fields = soa.values[0].split()
    fields[2] = str(serial)
    return soa.replace(values=(" ".join(fields),))


def bump_soa(old_soa: RecordSet, puts: Sequence[RecordSet]) -> RecordSet:
    """The zone's SOA after an accepted batch: the next serial after the old one.

    If the batch itself UPSERTs the SOA with a newer serial, that serial is kept; other SOA
    fields always come from the batch's SOA when it wrote one.
    """
    new_soa = next((rs for rs in puts if rs.rtype == "SOA"), old_soa)
    bumped = serial_after(soa_serial(old_soa))
    if new_soa is not old_soa and serial_newer(soa_serial(new_soa), bumped):
        return new_soa
    return with_serial(new_soa, bumped)


def default_apex(origin: str, serial: int = 1) -> tuple[RecordSet, RecordSet]:
    """The SOA and NS sets a new hosted zone starts with (Route 53's default timers)."""
    soa = RecordSet(
        name=origin,
        rtype="SOA",
        ttl=DEFAULT_SOA_TTL,
        # "hostmaster." + "." would be the illegal name "hostmaster.." for the root zone
        values=(f"{DEFAULT_NAME_SERVERS[0]} hostmaster.{origin.lstrip('.')} {serial} 7200 900 1209600 86400",),
    )
    ns = RecordSet(name=origin, rtype="NS", ttl=DEFAULT_NS_TTL, values=DEFAULT_NAME_SERVERS)
    return soa, ns


# --- hosted zone ids and change ids --------------------------------------------------------

_NOT_ID = re.compile(r"[^A-Z0-9]+")


def zone_id_for(origin: str) -> str:
    """A readable, stable hosted zone id derived from the origin: `api.aws.` -> `Z0API0AWS`.

    Route 53 ids are up to 32 upper-case alphanumerics; we keep the origin readable in it.
    """
    body = _NOT_ID.sub("0", origin.rstrip(".").upper()) or "ROOT"
    return ("Z0" + body)[:32]


def zone_id_from_aliases(origin: str, record_sets: Iterable[RecordSet]) -> str | None:
    """The id a Route 53 export already calls itself: the HostedZoneId its in-zone aliases
    all carry (`zones/amazonaws.com.json` says `Z0AMAZONAWS`). None if absent or mixed."""
    ids = {
        rs.alias.hosted_zone_id
        for rs in record_sets
        if rs.alias is not None and is_in_zone(rs.alias.dns_name, origin)
    }
    return ids.pop() if len(ids) == 1 else None


def change_id_for(seq: int) -> str:
    """Change ids are the journal position, readable: seq 17 -> `C000000000017`."""
    return f"C{seq:012d}"


def seq_of_change_id(change_id: str) -> int | None:
    text = change_id.rsplit("/", 1)[-1]
    if len(text) == 13 and text[0] == "C" and text[1:].isdigit():
        return int(text[1:])
    return None


def clean_zone_id(zone_id: str) -> str:
    """Accept `/hostedzone/Z...` as boto3 and the CLI sometimes pass it."""
    return zone_id.rsplit("/", 1)[-1]


# --- listing order --------------------------------------------------------------------------


def listing_key(name: str, rtype: str, set_identifier: str | None = None) -> str:
    """`records.route53_sort_key` as one string, so a database index can keep Route 53's
    ListResourceRecordSets order (labels reversed, then type, then set identifier).

    Labels are joined by \\x01 and the type and identifier follow \\x00: both sort below
    every character a canonical name holds, so string order equals the tuple order (a name
    before its children, a shorter label before a longer one it prefixes)."""
    labels = "\x01".join(reversed(name.rstrip(".").split("."))) if name != "." else ""
    return f"{labels}\x00{rtype}\x00{set_identifier or ''}"
