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

from authd.model.records import RecordSet, route53_sort_key
from authd.store.contract import (
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
    """The part of the Store protocol (authd.store.contract) the enactor uses."""

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


# --- over HTTP: the Route 53 REST/XML API of `authd serve --control` -------------------------


class Route53Http:
    """`ChangeApi` over the Route 53 REST/XML API, through botocore (SigV4, XML), blocking.

    The runner calls it from a worker thread (`trio.to_thread.run_sync`). Errors other than a
    rejected batch (connection refused, 5xx) raise `ApiUnavailable`; the runner retries them
    after a pause and never turns them into writes.
    """

    def __init__(self, endpoint: str, access_key: str = "test", secret_key: str = "test"):
        import botocore.session
        from botocore.config import Config as BotoConfig

        session = botocore.session.get_session()
        self.endpoint = endpoint
        self.client = session.create_client(
            "route53", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=10),
        )

    def _call(self, op: str, **kw: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, op)(**kw)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code, msg = str(err.get("Code", "")), str(err.get("Message", ""))
            if code == "InvalidChangeBatch":
                from authd.control.r53xml import split_messages

                raise InvalidChangeBatch(split_messages(msg)) from None
            if code == "NoSuchHostedZone":
                raise NoSuchHostedZone(msg) from None
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise ApiUnavailable(f"{self.endpoint}: {code}: {msg}") from None
            err_cls = type(code or "StoreError", (StoreError,), {"code": code})
            raise err_cls(msg) from None
        except BotoCoreError as exc:
            raise ApiUnavailable(f"{self.endpoint}: {exc}") from None

    def find_zone_by_name(self, name: str) -> HostedZone:
        from authd.model.records import canonical_name

        want = canonical_name(name)
        out = self._call("list_hosted_zones_by_name", DNSName=want, MaxItems="1")
        for z in out.get("HostedZones", []):
            if canonical_name(z["Name"]) == want:
                zid = z["Id"].rsplit("/", 1)[-1]
                return HostedZone(zid, want, z.get("CallerReference", ""),
                                  z.get("Config", {}).get("Comment", ""), 0,
                                  int(z.get("ResourceRecordSetCount", 0)))
        raise NoSuchHostedZone(f"No hosted zone found with name: {want}")

    def _pages(self, zone_id: str, **start: str) -> Any:
        kw: dict[str, Any] = {"HostedZoneId": zone_id, "MaxItems": "300", **start}
        while True:
            out = self._call("list_resource_record_sets", **kw)
            yield [RecordSet.from_route53(d) for d in out.get("ResourceRecordSets", [])]
            if not out.get("IsTruncated"):
                return
            kw["StartRecordName"] = out["NextRecordName"]
            kw["StartRecordType"] = out["NextRecordType"]
            if "NextRecordIdentifier" in out:
                kw["StartRecordIdentifier"] = out["NextRecordIdentifier"]
            else:
                kw.pop("StartRecordIdentifier", None)

    def get_record_sets(self, zone_id: str, name: str, rtype: str) -> list[RecordSet]:
        """A point read: ListResourceRecordSets from (name, type), kept while it matches."""
        from authd.model.records import canonical_name

        name = canonical_name(name)
        out: list[RecordSet] = []
        for page in self._pages(zone_id, StartRecordName=name, StartRecordType=rtype):
            for rs in page:
                if rs.name != name or rs.rtype != rtype:
                    return out
                out.append(rs)
        return out

    def record_sets(self, zone_id: str) -> list[RecordSet]:
        return [rs for page in self._pages(zone_id) for rs in page]

    def change_batch(self, zone_id: str, changes: Sequence[Change], comment: str = "") -> ChangeInfo:
        from authd.store.contract import ChangeStatus

        batch: dict[str, Any] = {"Changes": [
            {"Action": c.action.value, "ResourceRecordSet": c.rrset.to_route53()} for c in changes]}
        if comment:
            batch["Comment"] = comment
        out = self._call("change_resource_record_sets", HostedZoneId=zone_id, ChangeBatch=batch)
        info = out["ChangeInfo"]
        return ChangeInfo(info["Id"].rsplit("/", 1)[-1], ChangeStatus(info["Status"]),
                          info["SubmittedAt"].timestamp(), comment, 0)


class ApiUnavailable(Exception):
    """The change API could not be reached or failed (5xx): nothing was decided."""
