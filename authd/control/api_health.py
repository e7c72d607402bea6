"""The Route 53 health-check API: CreateHealthCheck, GetHealthCheck, ListHealthChecks,
UpdateHealthCheck, DeleteHealthCheck, GetHealthCheckCount, GetHealthCheckStatus and
GetHealthCheckLastFailureReason, over the store's generic resources.

Trio shell around pure parts: request XML in (`parse_*`, pure), XML out (`*_xml`, pure),
and handlers that run each store step in the control API's store thread (`app.call`).
The configuration rules are `authd.health.healthcheck`'s, the status rules `authd.health.healthpolicy`'s.

Storage (the shared resource contract, `authd.store.contract`):
- kind `healthcheck`, id `hc-0001-<hash>`: {"caller_reference", "config": the Route 53
  members}. The resource version is the HealthCheckVersion, so UpdateHealthCheck's optimistic
  concurrency is the store's compare-and-swap.
- kind `healthcheck-status` (journal=True, written by `authd.health.prober`): see
  `authd.health.prober.status_doc`; every serving index keeps it in `index.resources`.
- kind `healthcheck-tombstone`: the caller reference of a deleted check, so that reusing it
  is HealthCheckAlreadyExists, as Route 53 does (and ids are never reused).

Route 53 behaviours followed (API reference):
- CreateHealthCheck is idempotent by CallerReference: same reference and same settings
  returns the existing check; different settings, or the reference of a
  deleted check, is HealthCheckAlreadyExists.
- DeleteHealthCheck: "Route 53 does not prevent you from deleting a health check even if the
  health check is associated with one or more resource record sets" (HealthCheckInUse is
  marked deprecated in botocore's model). authd deletes it and logs the record sets still
  naming it; DNS then treats the missing check as healthy (no status: the default).
- A disabled check is not probed, and counts as healthy.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element

from authd.control import api_routes
from authd.control import r53xml as X
from authd.health import healthcheck as H
from authd.health.healthcheck import HealthCheckConfig, HealthCheckInputError
from authd.store.contract import NoSuchResource, Resource, ResourceConflict

if TYPE_CHECKING:
    from authd.control.app import ControlAPI

log = logging.getLogger("authd.health")

API = "/2013-04-01"
KIND = "healthcheck"
STATUS_KIND = "healthcheck-status"
TOMBSTONE_KIND = "healthcheck-tombstone"
MAX_ITEMS = 1000  # ListHealthChecks: "If you set MaxItems to more than 1000, Route 53 returns only the first 1000"
DEFAULT_MAX_ITEMS = 100
MAX_HEALTH_CHECKS = 200  # Route 53's default MAX_HEALTH_CHECKS_BY_OWNER account limit

ERROR_STATUS = {
    "NoSuchHealthCheck": 404,
    "HealthCheckAlreadyExists": 409,
    "HealthCheckVersionMismatch": 409,
    "HealthCheckInUse": 400,
    "TooManyHealthChecks": 400,
}

Response = tuple[int, bytes, list[tuple[bytes, bytes]]]

# ControlAPI routes these through `route` below; declared so the model conformance test covers them
api_routes.declare("CreateHealthCheck", "GetHealthCheck", "ListHealthChecks", "UpdateHealthCheck",
                   "DeleteHealthCheck", "GetHealthCheckCount", "GetHealthCheckStatus",
                   "GetHealthCheckLastFailureReason")

_ONE = re.compile(API + r"/healthcheck/([^/]+)")
_STATUS = re.compile(API + r"/healthcheck/([^/]+)/status")
_REASON = re.compile(API + r"/healthcheck/([^/]+)/lastfailurereason")


def no_such(hc_id: str) -> HealthCheckInputError:
    return HealthCheckInputError(f"No health check exists with the specified ID {hc_id}", "NoSuchHealthCheck")


# --- request XML (pure) ----------------------------------------------------------------------

_LIST_MEMBERS = {"ChildHealthChecks": "ChildHealthCheck", "Regions": "Region",
                 "ResetElements": "ResettableElementName"}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _members(elem: Element) -> dict[str, Any]:
    """Children as name -> text, the known lists as lists, nested structures as dicts."""
    out: dict[str, Any] = {}
    for child in elem:
        name = _local(child.tag)
        if name in out:
            raise HealthCheckInputError(f"Invalid XML ; element {name} appears more than once.")
        item = _LIST_MEMBERS.get(name)
        if item is not None:
            values = []
            for c in child:
                if _local(c.tag) != item:
                    raise HealthCheckInputError(f"Invalid XML ; unexpected element {_local(c.tag)} in {name}.")
                values.append((c.text or "").strip())
            out[name] = values
        elif len(child):
            out[name] = _members(child)
        else:
            out[name] = (child.text or "").strip()
    return out


def _root(body: bytes, expected: str) -> dict[str, Any]:
    try:
        root = X.parse_xml(body)
    except X.BadRequest as exc:
        raise HealthCheckInputError(list(exc.messages)) from exc
    if _local(root.tag) != expected:
        raise HealthCheckInputError(f"Invalid XML ; expected {expected}, got {_local(root.tag)}.")
    return _members(root)


def parse_create(body: bytes) -> tuple[str, HealthCheckConfig]:
    doc = _root(body, "CreateHealthCheckRequest")
    unknown = [n for n in doc if n not in ("CallerReference", "HealthCheckConfig")]
    if unknown:
        raise HealthCheckInputError([f"Unknown or unsupported element {n} in CreateHealthCheckRequest." for n in unknown])
    ref = H.check_caller_reference(doc.get("CallerReference"))
    raw = doc.get("HealthCheckConfig")
    if not isinstance(raw, dict):
        raise HealthCheckInputError("Invalid parameter : HealthCheckConfig is required.")
    return ref, H.parse_config(raw)


def parse_update(body: bytes) -> tuple[int | None, dict[str, Any], list[str]]:
    """(HealthCheckVersion or None, the members to change, ResetElements)."""
    doc = _root(body, "UpdateHealthCheckRequest")
    version: int | None = None
    if "HealthCheckVersion" in doc:
        try:
            version = int(doc.pop("HealthCheckVersion"))
        except ValueError:
            raise HealthCheckInputError("Invalid parameter : HealthCheckVersion must be an integer.") from None
        if version < 1:
            raise HealthCheckInputError("Invalid parameter : HealthCheckVersion must be at least 1.")
    reset = doc.pop("ResetElements", [])
    return version, doc, list(reset)


# --- response XML (pure) ---------------------------------------------------------------------


def config_xml(doc: Mapping[str, Any]) -> str:
    parts = []
    for name, value in doc.items():
        if name == "ChildHealthChecks":
            parts.append("<ChildHealthChecks>" + "".join(X.element("ChildHealthCheck", c) for c in value)
                         + "</ChildHealthChecks>")
        else:
            parts.append(X.element(name, value))
    return "<HealthCheckConfig>" + "".join(parts) + "</HealthCheckConfig>"


def health_check_xml(res: Resource) -> str:
    return (
        "<HealthCheck>" + X.element("Id", res.id) + X.element("CallerReference", res.doc["caller_reference"])
        + config_xml(res.doc["config"]) + X.element("HealthCheckVersion", res.version) + "</HealthCheck>"
    )


def observations_xml(observations: list[Mapping[str, Any]]) -> str:
    parts = []
    for o in observations:
        inner = X.element("IPAddress", o["ip"]) if o.get("ip") else ""
        inner += ("<StatusReport>" + X.element("Status", o["status"])
                  + X.element("CheckedTime", X.timestamp(o["checked"])) + "</StatusReport>")
        parts.append("<HealthCheckObservation>" + inner + "</HealthCheckObservation>")
    return "<HealthCheckObservations>" + "".join(parts) + "</HealthCheckObservations>"


# --- store steps (run in the store thread; each is sequential with every other call) -------


def _find(store: Any, hc_id: str) -> Resource:
    res = store.get_resource(KIND, hc_id)
    if res is None:
        raise no_such(hc_id)
    return res


def _tombstone_id(caller_reference: str) -> str:
    return hashlib.sha256(caller_reference.encode()).hexdigest()[:24]


def create_step(store: Any, ref: str, cfg: HealthCheckConfig,
                limit: int = MAX_HEALTH_CHECKS) -> tuple[Resource, bool]:
    """(the check, created?). Raises HealthCheckInputError (AlreadyExists, TooMany, children)."""
    existing = store.list_resources(KIND)
    for res in existing:
        if res.doc.get("caller_reference") == ref:
            if res.doc["config"] == cfg.to_doc():
                return res, False
            raise HealthCheckInputError(
                f"A health check with the CallerReference {ref} already exists with different settings.",
                "HealthCheckAlreadyExists")
    tombstones = store.list_resources(TOMBSTONE_KIND)
    for t in tombstones:
        if t.doc["caller_reference"] == ref:
            raise HealthCheckInputError(
                f"A health check with the CallerReference {ref} was deleted; use a new CallerReference.",
                "HealthCheckAlreadyExists")
    if len(existing) >= limit:
        raise HealthCheckInputError(
            f"The maximum number of health checks ({limit}) has been reached.", "TooManyHealthChecks")
    _check_children(store, None, cfg)
    number = 1 + max([H.id_number(r.id) for r in existing] + [int(t.doc.get("number", 0)) for t in tombstones] + [0])
    hc_id = H.health_check_id(number, ref)
    res = store.put_resource(KIND, hc_id, {"caller_reference": ref, "config": cfg.to_doc()}, expect_version=0)
    return res, True


def _check_children(store: Any, self_id: str | None, cfg: HealthCheckConfig) -> None:
    problems = []
    for child in cfg.children:
        if child == self_id:
            problems.append(f"Invalid parameter : health check {child} can't be its own child.")
        elif store.get_resource(KIND, child) is None:
            problems.append(f"Invalid parameter : child health check {child} does not exist.")
    if problems:
        raise HealthCheckInputError(problems)


def update_step(store: Any, hc_id: str, version: int | None, raw: dict[str, Any], reset: list[str]) -> Resource:
    res = _find(store, hc_id)
    if version is not None and version != res.version:
        raise HealthCheckInputError(
            f"The value of HealthCheckVersion in the request ({version}) doesn't match the value of "
            f"HealthCheckVersion in the health check ({res.version}).", "HealthCheckVersionMismatch")
    current = HealthCheckConfig.from_doc(res.doc["config"])
    new = H.parse_update(current, raw, reset)
    _check_children(store, hc_id, new)
    try:
        return store.put_resource(KIND, hc_id, {**res.doc, "config": new.to_doc()}, expect_version=res.version)
    except ResourceConflict:
        raise HealthCheckInputError(
            f"The health check {hc_id} was changed by another request; read it again.",
            "HealthCheckVersionMismatch") from None


def delete_step(store: Any, hc_id: str, referenced_by: Callable[[str], list[str]] | None) -> list[str]:
    """Delete the check, its status and leave a tombstone. Returns the record sets that still
    name it (for the log line)."""
    res = _find(store, hc_id)
    users = referenced_by(hc_id) if referenced_by is not None else []
    store.put_resource(TOMBSTONE_KIND, _tombstone_id(res.doc["caller_reference"]),
                       {"caller_reference": res.doc["caller_reference"], "id": hc_id,
                        "number": H.id_number(hc_id)})
    store.delete_resource(KIND, hc_id)
    with contextlib.suppress(NoSuchResource):
        store.delete_resource(STATUS_KIND, hc_id, journal=True)
    return users


def record_sets_naming(store: Any) -> Callable[[str], list[str]]:
    """The record sets whose HealthCheckId is `hc_id`, as `name type [set id]` (zone by zone).

    Reads `health_check_id` from record sets when the record model has it (the routing
    policies work adds it); otherwise nothing refers to health checks yet."""

    def find(hc_id: str) -> list[str]:
        out = []
        for zone in store.list_zones():
            for rs in store.record_sets(zone.id):
                if getattr(rs, "health_check_id", None) == hc_id:
                    ident = f" [{rs.set_identifier}]" if rs.set_identifier is not None else ""
                    out.append(f"{rs.name} {rs.rtype}{ident}")
        return out

    return find


# --- handlers --------------------------------------------------------------------------------


def _error(exc: HealthCheckInputError) -> Response:
    return ERROR_STATUS.get(exc.code, 400), X.error_xml(exc.code, exc.messages, X.request_id()), []


def _wake(app: Any, hc_id: str) -> None:
    for hook in getattr(app, "on_health_change", ()):
        hook(hc_id)


async def route(app: ControlAPI, method: str, path: str, query: dict[str, str], body: bytes) -> Response | None:
    """The health-check operations; None when the path is not one of them."""
    try:
        return await _route(app, method, path, query, body)
    except HealthCheckInputError as exc:
        if exc.code != "NoSuchHealthCheck":
            log.info("health: refused %s %s: %s: %s", method, path, exc.code, "; ".join(exc.messages))
        return _error(exc)


async def _route(app: ControlAPI, method: str, path: str, query: dict[str, str], body: bytes) -> Response | None:
    if path == API + "/healthcheck":
        if method == "POST":
            return await create(app, body)
        if method == "GET":
            return await list_checks(app, query)
    elif path == API + "/healthcheckcount" and method == "GET":
        count = await app.call(app.store.count_resources, KIND)
        return 200, X.document("GetHealthCheckCountResponse", X.element("HealthCheckCount", count)), []
    elif (m := _STATUS.fullmatch(path)) and method == "GET":
        return await status(app, m.group(1), failures_only=False)
    elif (m := _REASON.fullmatch(path)) and method == "GET":
        return await status(app, m.group(1), failures_only=True)
    elif m := _ONE.fullmatch(path):
        hc_id = m.group(1)
        if method == "GET":
            res = await app.call(_find, app.store, hc_id)
            return 200, X.document("GetHealthCheckResponse", health_check_xml(res)), []
        if method == "POST":
            version, raw, reset = parse_update(body)
            res = await app.call(update_step, app.store, hc_id, version, raw, reset)
            log.info("health: updated %s to version %d: %s", hc_id, res.version,
                     HealthCheckConfig.from_doc(res.doc["config"]).target)
            _wake(app, hc_id)
            return 200, X.document("UpdateHealthCheckResponse", health_check_xml(res)), []
        if method == "DELETE":
            users = await app.call(delete_step, app.store, hc_id, record_sets_naming(app.store))
            if users:
                log.warning("health: deleted %s although record sets still name it (Route 53 allows "
                            "this; they now count it as healthy): %s", hc_id, ", ".join(users))
            else:
                log.info("health: deleted %s", hc_id)
            _wake(app, hc_id)
            return 200, X.document("DeleteHealthCheckResponse", ""), []
    return None


async def create(app: ControlAPI, body: bytes) -> Response:
    ref, cfg = parse_create(body)
    res, created = await app.call(create_step, app.store, ref, cfg, _limit(app))
    if created:
        log.info("health: created %s (%s), caller reference %s", res.id, cfg.target, ref)
        _wake(app, res.id)
    location = f"{API}/healthcheck/{res.id}".encode()
    inner = health_check_xml(res)
    # 201 for the existing check too: the model's responseCode, and what the caller asked for exists
    return 201, X.document("CreateHealthCheckResponse", inner), [(b"location", location)]


def _readable(res: Resource) -> bool:
    """A document in the API's shape; anything else written straight into the store is left
    out of listings (with a log line) rather than failing every ListHealthChecks."""
    ok = isinstance(res.doc.get("caller_reference"), str) and isinstance(res.doc.get("config"), dict)
    if not ok:
        log.error("health %s: stored document is not a health check; left out of the listing", res.id)
    return ok


def _limit(app: Any) -> int:
    """MAX_HEALTH_CHECKS_BY_OWNER: the operator's value when the control API carries limits
    (`authd serve --limit`), else Route 53's default."""
    limits = getattr(app, "limits", None)
    try:
        return int(limits["MAX_HEALTH_CHECKS_BY_OWNER"]) if limits is not None else MAX_HEALTH_CHECKS
    except (KeyError, TypeError):
        return MAX_HEALTH_CHECKS


async def list_checks(app: ControlAPI, query: dict[str, str]) -> Response:
    raw = query.get("maxitems", str(DEFAULT_MAX_ITEMS))
    try:
        max_items = int(raw)
    except ValueError:
        raise HealthCheckInputError(f"Invalid parameter : maxitems must be an integer, got {raw!r}.") from None
    if max_items < 1:
        raise HealthCheckInputError("Invalid parameter : maxitems must be at least 1.")
    max_items = min(max_items, MAX_ITEMS)
    checks = [c for c in await app.call(app.store.list_resources, KIND) if _readable(c)]
    marker = query.get("marker", "")
    if marker:
        # the marker is the id of the first check of the page (NextMarker of the last page);
        # a check deleted between pages must not restart the listing, so compare, not find
        checks = [c for c in checks if c.id >= marker]
    page, rest = checks[:max_items], checks[max_items:]
    inner = "<HealthChecks>" + "".join(health_check_xml(c) for c in page) + "</HealthChecks>"
    inner += X.element("Marker", marker) + X.element("IsTruncated", bool(rest))
    if rest:
        inner += X.element("NextMarker", rest[0].id)
    inner += X.element("MaxItems", max_items)
    return 200, X.document("ListHealthChecksResponse", inner), []


async def status(app: ControlAPI, hc_id: str, *, failures_only: bool) -> Response:
    await app.call(_find, app.store, hc_id)
    prober = getattr(app, "health_prober", None)
    doc = prober.status_of(hc_id) if prober is not None else None
    if doc is None:
        stored = await app.call(app.store.get_resource, STATUS_KIND, hc_id)
        doc = stored.doc if stored is not None else {}
    if failures_only:
        observations = [doc["last_failure"]] if doc.get("last_failure") else []
        root = "GetHealthCheckLastFailureReasonResponse"
    else:
        observations = list(doc.get("observations", ()))
        root = "GetHealthCheckStatusResponse"
    return 200, X.document(root, observations_xml(observations)), []
