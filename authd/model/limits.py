"""Route 53's quotas as authd enforces them: the names, the defaults, operator overrides.

Pure core. The names are botocore's enums (`AccountLimitType`, `HostedZoneLimitType`,
`ReusableDelegationSetLimitType` in the route53 2013-04-01 service model); the defaults are
Route 53's documented quotas ("Quotas on entities", Route 53 Developer Guide:
500 hosted zones, 10,000 records per hosted zone, 100 reusable delegation sets, 100 zones per
reusable delegation set, 300 VPCs per private zone, 200 health checks, 50 traffic policies,
5 traffic policy records). `authd serve --limit NAME=VALUE` overrides any of them.

Where each limit is enforced:
- MAX_HOSTED_ZONES_BY_OWNER: CreateHostedZone (`authd.control.api_zones`), TooManyHostedZones.
- MAX_RRSETS_BY_ZONE: the change-batch rules (`authd.model.changes.plan_batch`), InvalidChangeBatch.
- MAX_REUSABLE_DELEGATION_SETS_BY_OWNER: CreateReusableDelegationSet, LimitsExceeded.
- MAX_ZONES_BY_REUSABLE_DELEGATION_SET: CreateHostedZone with DelegationSetId, LimitsExceeded.
- MAX_HEALTH_CHECKS_BY_OWNER: reported here; CreateHealthCheck enforces it (TooManyHealthChecks).
- MAX_VPCS_ASSOCIATED_BY_ZONE, traffic policies: reported only (authd has neither).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ACCOUNT_LIMITS: Mapping[str, int] = MappingProxyType({
    "MAX_HEALTH_CHECKS_BY_OWNER": 200,
    "MAX_HOSTED_ZONES_BY_OWNER": 500,
    "MAX_TRAFFIC_POLICY_INSTANCES_BY_OWNER": 5,
    "MAX_REUSABLE_DELEGATION_SETS_BY_OWNER": 100,
    "MAX_TRAFFIC_POLICIES_BY_OWNER": 50,
})
ZONE_LIMITS: Mapping[str, int] = MappingProxyType({
    "MAX_RRSETS_BY_ZONE": 10_000,
    "MAX_VPCS_ASSOCIATED_BY_ZONE": 300,
})
DELEGATION_SET_LIMITS: Mapping[str, int] = MappingProxyType({
    "MAX_ZONES_BY_REUSABLE_DELEGATION_SET": 100,
})
DEFAULTS: Mapping[str, int] = MappingProxyType({**ACCOUNT_LIMITS, **ZONE_LIMITS, **DELEGATION_SET_LIMITS})


class LimitError(ValueError):
    """An override that names no limit or gives no positive integer."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The quotas in force: Route 53's defaults with the operator's overrides on top."""

    overrides: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.overrides.items():
            if name not in DEFAULTS:
                raise LimitError(f"unknown limit {name!r}; known limits: {', '.join(DEFAULTS)}")
            # Route 53's LimitValue has a minimum of 1 (API reference, AccountLimit)
            if not isinstance(value, int) or value < 1:
                raise LimitError(f"limit {name} must be an integer of at least 1, got {value!r}")

    def __getitem__(self, name: str) -> int:
        return self.overrides.get(name, DEFAULTS[name])

    @classmethod
    def parse(cls, items: Iterable[str]) -> Limits:
        """`["MAX_HOSTED_ZONES_BY_OWNER=3", ...]` (the `--limit` flags) to Limits."""
        out: dict[str, int] = {}
        for item in items:
            name, sep, raw = item.partition("=")
            name = name.strip().upper()
            if not sep:
                raise LimitError(f"--limit wants NAME=VALUE, got {item!r}")
            try:
                value = int(raw.strip())
            except ValueError:
                raise LimitError(f"limit {name} must be an integer of at least 1, got {raw!r}") from None
            out[name] = value
        return cls(out)


# The API reference's descriptions of TooManyHostedZones and LimitsExceeded, as messages.
# The record-set quota's: Route 53 answers InvalidChangeBatch, but its exact wording is not
# published anywhere we could find, so ours names the limit (and so the --limit to raise).
MSG_TOO_MANY_ZONES = (
    "This operation can't be completed either because the current account has reached the "
    "limit on the number of hosted zones or because you've reached the limit on the number of "
    "hosted zones that can be associated with a reusable delegation set."
)
MSG_TOO_MANY_DELEGATION_SETS = (
    "This operation can't be completed because the current account has reached the limit on "
    "reusable delegation sets that it can create."
)
MSG_DELEGATION_SET_FULL = (
    "The limit on the number of hosted zones that can be associated with the reusable "
    "delegation set {set_id} ({limit}) has been reached."
)


def msg_too_many_record_sets(zone_id: str, limit: int) -> str:
    return (
        f"The hosted zone {zone_id} would exceed its limit of {limit} resource record sets "
        "(MAX_RRSETS_BY_ZONE)."
    )
