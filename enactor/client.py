"""The one code path that carries out the machine's actions against a Route 53-shaped API.

Thin shell. `perform(api, plans, action, now)` turns one action into one result. `api` is
anything with the four Store calls the enactor uses (`find_zone_by_name`,
`get_record_sets`, `record_sets`, `change_batch`): an `authd` Store in-process (tests and
the interleaving checker: same store and batch code, no HTTP), or `Route53Http`, which
speaks the Route 53 REST/XML API with SigV4 (botocore) to `authd serve --control`.
Sleeping is not done here: the caller owns time (trio in the runner, a virtual clock in
tests), so `perform` answers `Sleep` only when handed an explicit `sleep` callable.

The lock is always read through this API, never through DNS: DNS is eventually consistent
and would let two enactors both believe they hold the lock (the talk; see
`tests/test_enactor_replica.py` for the documented wrong way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from authd.records import RecordSet, route53_sort_key
from authd.store import (
    Change,
    ChangeInfo,
    HostedZone,
    InvalidChangeBatch,
    NoSuchHostedZone,
    StoreError,
)
from enactor.machine import (
    ActionT,
    BatchAccepted,
    BatchRejected,
    FindZone,
    ListRecords,
    PlanRead,
    ReadPlan,
    ReadRecords,
    RecordsRead,
    ResultT,
    Sleep,
    Slept,
    SubmitBatch,
    ZoneFound,
)
from enactor.plan import Plan, PlanError


class ChangeApi(Protocol):
    """The part of the Store protocol (authd.store) the enactor uses."""

    def find_zone_by_name(self, name: str) -> HostedZone: ...

    def get_record_sets(self, zone_id: str, name: str, rtype: str) -> list[RecordSet]: ...

    def record_sets(self, zone_id: str) -> list[RecordSet]: ...

    def change_batch(self, zone_id: str, changes: Sequence[Change], comment: str = "") -> ChangeInfo: ...


class PlanSource(Protocol):
    def latest(self) -> Plan | None:
        """The newest plan; raises PlanError when it is invalid."""
        ...


def perform(
    api: ChangeApi,
    plans: PlanSource,
    action: ActionT,
    now: Callable[[], float],
    sleep: Callable[[float], None] | None = None,
) -> ResultT:
    """Carry out one action; the result is stamped with `now()` taken after it completed."""
    if isinstance(action, ReadPlan):
        try:
            plan = plans.latest()
        except PlanError as exc:
            return PlanRead(now(), None, str(exc))
        return PlanRead(now(), plan)
    if isinstance(action, FindZone):
        try:
            zone_id: str | None = api.find_zone_by_name(action.zone).id
        except NoSuchHostedZone:
            zone_id = None
        return ZoneFound(now(), zone_id)
    if isinstance(action, ReadRecords):
        sets = api.get_record_sets(action.zone_id, action.name, action.rtype)
        return RecordsRead(now(), tuple(sorted(sets, key=route53_sort_key)))
    if isinstance(action, ListRecords):
        return RecordsRead(now(), tuple(api.record_sets(action.zone_id)))
    if isinstance(action, SubmitBatch):
        try:
            info = api.change_batch(action.zone_id, action.changes, action.comment)
        except InvalidChangeBatch as exc:
            return BatchRejected(now(), exc.messages)
        except StoreError as exc:
            # Not a lock or compare-and-swap failure: the machine freezes on what it does not
            # understand rather than guessing.
            return BatchRejected(now(), (f"{exc.code}: {exc}",))
        return BatchAccepted(now(), info.id)
    if isinstance(action, Sleep):
        if sleep is None:
            raise RuntimeError("perform() was given a Sleep but no sleep callable")
        sleep(action.seconds)
        return Slept(now())
    raise TypeError(f"unknown action {action!r}")


def describe_action(action: ActionT) -> str:
    """One short readable line for logs and schedules."""
    if isinstance(action, ReadRecords):
        return f"read {action.name} {action.rtype}"
    if isinstance(action, ListRecords):
        return f"list zone {action.zone_id}"
    if isinstance(action, SubmitBatch):
        return f"batch {action.purpose.value} ({len(action.changes)} changes)"
    if isinstance(action, Sleep):
        return f"sleep {action.seconds}s ({action.why})"
    if isinstance(action, FindZone):
        return f"find zone {action.zone}"
    return "read newest plan"


def action_to_json(action: ActionT) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": action.kind, "text": describe_action(action)}
    if isinstance(action, SubmitBatch):
        d["purpose"] = action.purpose.value
        d["changes"] = [{"Action": c.action.value, "ResourceRecordSet": c.rrset.to_route53()} for c in action.changes]
    elif isinstance(action, Sleep):
        d["seconds"], d["why"] = action.seconds, action.why
    elif isinstance(action, ReadRecords):
        d["name"], d["type"] = action.name, action.rtype
    return d


def result_to_json(result: ResultT) -> dict[str, Any]:
    d: dict[str, Any] = {"result": type(result).__name__, "now": result.now}
    if isinstance(result, PlanRead):
        d["plan"] = result.plan.number if result.plan else None
        if result.error:
            d["error"] = result.error
    elif isinstance(result, RecordsRead):
        d["records"] = [rs.to_route53() for rs in result.records]
    elif isinstance(result, BatchAccepted):
        d["change_id"] = result.change_id
    elif isinstance(result, BatchRejected):
        d["messages"] = list(result.messages)
    elif isinstance(result, ZoneFound):
        d["zone_id"] = result.zone_id
    return d
