"""The control API: Route 53's REST/XML API (2013-04-01) as an ASGI app, served by hypercorn's
trio worker in the same trio process as DNS.

Trio shell. It moves bytes: SigV4 check (`authd.control.sigv4`), XML in and out (`authd.control.r53xml`),
store calls in one worker thread (`trio.to_thread`, capacity 1, so the DNS loop never waits
on an fsync and the store sees one caller at a time). The rules live in `authd.model.changes`.

Operations (what boto3 and `aws route53` call): CreateHostedZone, GetHostedZone,
ListHostedZones, ListHostedZonesByName, UpdateHostedZoneComment, DeleteHostedZone,
ChangeResourceRecordSets, GetChange, ListResourceRecordSets. GetChange says INSYNC only once
every serving replica has applied the change's journal seq (`applied_seq`), else PENDING.

Bad input never changes state and never crashes: unsigned or wrongly signed requests get
403, bodies over `max_body` get 400 InvalidInput before they are read whole (Route 53's
model has no other error for it), and so does malformed XML; unexpected failures get a 500 InternalFailure and a log line. Routing and
SigV4 use the raw path (`request_path`), never the decoded one, and the payload hash is
always the received body's (`authd.control.sigv4`). Log lines are escaped by `authd.logsafe`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import trio

from authd.control import api_cidr as control_cidr
from authd.control import api_delegation, api_zones, sigv4
from authd.control import r53xml as X
from authd.control.api_health import ERROR_STATUS as HEALTH_ERROR_STATUS
from authd.control.api_health import route as health_route
from authd.control.api_routes import find_route
from authd.control.asgi import Receive, Scope, Send, acknowledge_lifespan
from authd.model import changes as rules
from authd.model import cidr
from authd.model.limits import Limits
from authd.model.records import (
    RecordError,
    from_route53_name,
    route53_name,
    route53_sort_key,
)
from authd.store.contract import ChangeInfo, ChangeStatus, Store, StoreError

log = logging.getLogger("authd.control")

# Set by `ControlAPI.__call__` for its request: a change batch handled inside adds itself here,
# and is counted answered (out of `in_flight`) once its response has been sent.
_ANSWERED_BY_CALLER: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "authd_control_answered_by_caller", default=None)

API = "/2013-04-01"
MAX_BODY = 2 * 1024 * 1024  # a full 1,000-record batch is well under 1 MiB of XML
MAX_ITEMS_RRSETS = 300  # Route 53's page size cap for ListResourceRecordSets
MAX_ITEMS_ZONES = 100
BODY_DEADLINE = 60.0  # seconds for a whole request body; a 2 MiB batch takes milliseconds
READ_TIMEOUT = 120  # seconds hypercorn waits on a silent connection (above any request's work)
SETTLE_MAX = 0.5  # seconds an accepted change waits for the local index before answering

STATUS = {
    "NoSuchHostedZone": 404,
    "NoSuchChange": 404,
    "NoSuchHealthCheck": 404,
    **cidr.STATUS,
    "HostedZoneAlreadyExists": 409,
    "HostedZoneNotEmpty": 400,
    "InvalidChangeBatch": 400,
    "InvalidInput": 400,
    "RequestTimeout": 400,  # AWS's code for a body that never came (as S3 answers it)
    "InvalidDomainName": 400,
    "MissingAuthenticationToken": 403,
    "IncompleteSignature": 403,
    "InvalidClientTokenId": 403,
    "SignatureDoesNotMatch": 403,
    "UnknownOperation": 404,
    "NoSuchGeoLocation": 404,
    "NoSuchKeySigningKey": 404,
    "InternalFailure": 500,
}
STATUS.update(HEALTH_ERROR_STATUS)


class ControlConfigError(Exception):
    """The control API refuses to start with this configuration."""


def check_listen(host: str, credentials: Mapping[str, str] | None) -> Mapping[str, str]:
    """The credentials to use on `host`: the defaults on loopback only."""
    if credentials:
        return credentials
    if not sigv4.is_loopback(host):
        raise ControlConfigError(
            f"refusing to serve the control API on non-loopback address {host} with the "
            "default test/test credentials; configure credentials explicitly"
        )
    return sigv4.DEFAULT_CREDENTIALS


class HttpError(Exception):
    def __init__(self, code: str, messages: list[str] | tuple[str, ...]):
        self.code, self.messages = code, list(messages)
        super().__init__(f"{code}: {'; '.join(messages)}")


Response = tuple[int, bytes, list[tuple[bytes, bytes]]]


def _name_key(name: str) -> tuple[str, ...]:
    return tuple(reversed(name.rstrip(".").split("."))) if name != "." else ()


def request_path(scope: Mapping[str, Any]) -> str:
    """The path as the client sent it (ASGI `raw_path`, percent-encoding intact), no query.

    Routing and SigV4 both use this form: the decoded `path` has already turned `%2F` into
    `/` and cannot be routed safely."""
    raw = scope.get("raw_path")
    if raw is None:  # an ASGI server without raw_path: re-encode what it decoded
        return quote(scope["path"], safe="/~!$&'()*+,;=:@")
    return bytes(raw).decode("latin-1").split("?", 1)[0]


def too_large(size: int, limit: int) -> str:
    return f"The input is not valid: the request body of at least {size} bytes exceeds the limit of {limit} bytes"


def _peer(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def path_id(match: re.Match[str], field: str = "id") -> str:
    """One percent-decoded path segment, checked as botocore's model checks the Id members.

    Routes match the raw path; every id a route takes from it goes through this (or
    `zone_id_of` / `change_id_of`, which also refuse a decoded `/`).

    An id is at most 32 characters (ResourceId, `max: 32`); a decoded `/` cannot be part of
    one, since no hosted zone or change id contains it."""
    value = unquote(match.group(1))
    if len(value) > 32:
        raise HttpError("InvalidInput", [
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
            "constraint: Member must have length less than or equal to 32"
        ])
    return value


def zone_id_of(match: re.Match[str]) -> str:
    zone_id = path_id(match, "id")
    if "/" in zone_id or not zone_id:
        raise HttpError("NoSuchHostedZone", [f"No hosted zone found with ID: {zone_id}"])
    return zone_id


def change_id_of(match: re.Match[str]) -> str:
    change_id = path_id(match, "id")
    if "/" in change_id or not change_id:
        raise HttpError("NoSuchChange", [f"Could not find resource with ID: {change_id}"])
    return change_id


class ControlAPI:
    """The ASGI application.

    Args:
        store: any Store (SQLiteStore in production, MemoryStore in tests).
        credentials: access key id -> secret; None means the loopback defaults (test/test).
        applied_seq: returns the lowest journal seq that every serving replica has applied
            (None: nothing to wait for, every change is INSYNC at once).
        max_body: request bodies larger than this get InvalidInput (400).
        clock: epoch seconds, for SigV4 skew checks.
        settle: awaits the local serving index applying a journal seq. When set, an accepted
            change is answered once that index has it (at most `SETTLE_MAX` seconds), so the
            response's status is already INSYNC when no other replica is behind, and a client
            needs no GetChange round trip. Replicas with a propagation delay are never waited
            for: the response says PENDING and GetChange reports when they catch up.
    """

    metrics: Any = None  # authd.metrics.AuthdMetrics: serves /metrics and counts rejections

    def __init__(
        self,
        store: Store,
        credentials: Mapping[str, str] | None = None,
        applied_seq: Callable[[], int] | None = None,
        max_body: int = MAX_BODY,
        clock: Callable[[], float] = time.time,
        settle: Callable[[int], Awaitable[None]] | None = None,
        limits: Limits | None = None,
    ):
        self.store = store
        self.limits = limits or Limits()  # Route 53's quotas, `authd serve --limit NAME=VALUE`
        self.serving_index: Any = None  # the node's primary ServingIndex, for TestDNSAnswer
        self.settle = settle
        # change batches between the start of their request and their response's last byte
        # sent; `batch_answered` is set (and replaced) each time the count drops back to 0
        self.in_flight = 0
        self.batch_answered = trio.Event()
        self.credentials = credentials or sigv4.DEFAULT_CREDENTIALS
        self.applied_seq = applied_seq
        self.max_body = max_body
        self.body_deadline = BODY_DEADLINE  # seconds a request body may take to arrive
        self.clock = clock
        self._limiter = trio.CapacityLimiter(1)
        self.on_change: list[Callable[[ChangeInfo], None]] = []  # e.g. wake journal followers
        self.on_health_change: list[Callable[[str], None]] = []  # health check ids: wake the prober
        self.health_prober: Any = None  # authd.health.prober.Prober: live statuses for GetHealthCheckStatus

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one store call in the store's worker thread."""
        return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self._limiter)

    def status_of(self, info: ChangeInfo) -> str:
        if self.applied_seq is None or self.applied_seq() >= info.seq:
            return ChangeStatus.INSYNC.value
        return ChangeStatus.PENDING.value

    # --- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await acknowledge_lifespan(scope, receive, send)
            return
        if scope["path"] == "/metrics" and self.metrics is not None:  # Prometheus: unsigned, read-only
            body, ctype = self.metrics.exposition()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        # A change batch counts as in flight from its signed body's arrival (`change_batch`)
        # until its response is sent, not only until it is built: the node's collector
        # (`authd.node._collect_between_batches`) runs once this drops to 0, and a collection
        # between the apply and the send would land inside the client's INSYNC time (issue
        # 12). A body still arriving does not count: a client trickling one must not hold
        # the node's collections and metrics folds off.
        sent_here = [0]
        token = _ANSWERED_BY_CALLER.set(sent_here)
        try:
            await self._respond(scope, receive, send)
        finally:
            _ANSWERED_BY_CALLER.reset(token)
            if sent_here[0]:
                self._answered(sent_here[0])

    def _answered(self, batches: int) -> None:
        self.in_flight -= batches
        if self.in_flight == 0:
            self.batch_answered.set()
            self.batch_answered = trio.Event()

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        req_id = X.request_id()
        try:
            status, body, headers = await self._handle(scope, receive, req_id)
        except HttpError as exc:
            status, body, headers = STATUS.get(exc.code, 400), X.error_xml(exc.code, exc.messages, req_id), []
        except StoreError as exc:
            # raised in the store's worker thread, it comes back through trio.to_thread, whose
            # frames in its traceback hold it again: a cycle per rejected batch (an enactor's
            # lost lock) that only a full gc frees. Its traceback is not needed for the reply.
            exc.__traceback__ = None
            if self.metrics is not None and exc.code == "InvalidChangeBatch":
                self.metrics.changes["InvalidChangeBatch"] += 1
            messages = list(getattr(exc, "messages", ())) or [str(exc)]
            status, body, headers = STATUS.get(exc.code, 400), X.error_xml(exc.code, messages, req_id), []
        except X.BadRequest as exc:
            status, body, headers = 400, X.error_xml(exc.code, exc.messages, req_id), []
        except Exception:
            log.exception("control: internal failure on %s %s (request %s)", scope["method"],
                          request_path(scope), req_id)
            status, body = 500, X.error_xml("InternalFailure", ["internal failure"], req_id, sender=False)
            headers = []
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/xml"),
                (b"x-amzn-requestid", req_id.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        })
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise HttpError("InvalidInput", ["invalid Content-Length"]) from None
                if declared > self.max_body:  # refused before a byte of it is read
                    raise HttpError("InvalidInput", [too_large(declared, self.max_body)])
        # A client that stalls mid-body is answered and let go, not waited for (issue 10:
        # stalled clients must not hold server resources); hypercorn's `read_timeout`
        # bounds each idle read, this bounds the whole body.
        with trio.move_on_after(self.body_deadline):
            return await self._receive_body(receive)
        raise HttpError("RequestTimeout", [
            f"The request body was not received within {self.body_deadline:g} seconds."])

    async def _receive_body(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise HttpError("InvalidInput", ["client disconnected"])
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise HttpError("InvalidInput", [too_large(size, self.max_body)])
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks)

    async def _handle(self, scope: dict[str, Any], receive: Any, req_id: str) -> Response:
        body = await self._read_body(scope, receive)
        method = scope["method"]
        raw_path = request_path(scope)
        raw_query = scope.get("query_string", b"").decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        failure = sigv4.verify(method, raw_path, raw_query, headers, body, self.credentials, self.clock())
        if failure is not None:
            agent = next((v for k, v in headers if k.lower() == "user-agent"), "-")
            log.info("control: refused %s %s%s from %s: %s (user agent %s)", method, raw_path,
                     "?" + raw_query if raw_query else "", _peer(scope), failure.code, agent)
            raise HttpError(failure.code, [failure.message])
        query = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        return await self._route(method, raw_path.rstrip("/"), query, body)

    # --- operations ---------------------------------------------------------------------

    # Matched against the raw path, so a percent-encoded `/` (`%2F`) stays inside its
    # segment (RFC 3986 section 2.2: an encoded reserved character is data, not a delimiter).
    _ZONE = re.compile(API + r"/hostedzone/([^/]+)")
    _RRSET = re.compile(API + r"/hostedzone/([^/]+)/rrset")
    _CHANGE = re.compile(API + r"/change/([^/]+)")

    async def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Response:
        """Dispatch on the raw (still percent-encoded) path; ids are decoded once matched."""
        if path.startswith(control_cidr.PREFIX):  # the CIDR collections API
            got = await control_cidr.route(self, method, path, query, body)
            if got is not None:
                return got
        if path == API + "/hostedzone":
            if method == "POST":
                return await self.create_zone(body)
            if method == "GET":
                return await self.list_zones(query)
        elif path == API + "/hostedzonesbyname" and method == "GET":
            return await self.list_zones_by_name(query)
        elif m := self._RRSET.fullmatch(path):
            if method == "POST":
                return await self.change_batch(zone_id_of(m), body)
            if method == "GET":
                return await self.list_record_sets(zone_id_of(m), query)
        elif m := self._ZONE.fullmatch(path):
            if method == "GET":
                return await self.get_zone(zone_id_of(m))
            if method == "DELETE":
                return await self.delete_zone(zone_id_of(m))
            if method == "POST":
                return await self.update_comment(zone_id_of(m), body)
        elif (m := self._CHANGE.fullmatch(path)) and method == "GET":
            return await self.get_change(change_id_of(m))
        elif path.startswith(API + "/healthcheck") and (
                health := await health_route(self, method, path, query, body)) is not None:
            return health
        if found := find_route(method, path):  # tags, limits, delegation sets, ... (api_routes)
            route, match = found
            return await route.handler(self, match, query, body)
        raise HttpError("UnknownOperation", [f"no Route 53 operation {method} {path}"])

    async def _delegation(self, zone_id: str, zone_name: str) -> str:
        return await api_zones.delegation_xml(self, zone_id, zone_name)

    async def create_zone(self, body: bytes) -> Response:
        # quotas and DelegationSetId live in authd.control.api_zones
        return await api_zones.create_zone(self, body)

    async def get_zone(self, zone_id: str) -> Response:
        zone = await self.call(self.store.find_zone, zone_id)
        inner = X.hosted_zone_xml(zone) + await self._delegation(zone.id, zone.name)
        return 200, X.document("GetHostedZoneResponse", inner), []

    async def update_comment(self, zone_id: str, body: bytes) -> Response:
        comment = X.parse_update_comment_xml(body)
        zone = await self.call(self.store.update_zone_comment, zone_id, comment)  # type: ignore[attr-defined]
        return 200, X.document("UpdateHostedZoneCommentResponse", X.hosted_zone_xml(zone)), []

    async def delete_zone(self, zone_id: str) -> Response:
        info = await self.call(self.store.delete_zone, zone_id)
        self._changed(info)
        log.info("control: deleted hosted zone %s, change %s", zone_id, info.id)
        return 200, X.document("DeleteHostedZoneResponse", X.change_info_xml(info, self.status_of(info))), []

    def _max_items(self, query: dict[str, str], cap: int) -> int:
        raw = query.get("maxitems", str(cap))
        try:
            n = int(raw)
        except ValueError:
            raise HttpError("InvalidInput", [f"maxitems must be an integer, got {raw!r}"]) from None
        if n < 1:
            raise HttpError("InvalidInput", ["maxitems must be at least 1"])
        return min(n, cap)

    async def list_zones(self, query: dict[str, str]) -> Response:
        zones = await self.call(self.store.list_zones)
        if query.get("delegationsetid"):  # only the zones that use this reusable set
            zones = await api_delegation.zones_using(self, query["delegationsetid"], zones)
        if "hostedzonetype" in query:  # the model's one value; authd has no private zones
            if query["hostedzonetype"] != "PrivateHostedZone":
                raise HttpError("InvalidInput", [
                    f"1 validation error detected: Value '{query['hostedzonetype']}' at 'hostedZoneType' "
                    "failed to satisfy constraint: Member must satisfy enum value set: [PrivateHostedZone]"])
            zones = []
        max_items = self._max_items(query, MAX_ITEMS_ZONES)
        marker = query.get("marker")
        start = 0
        if marker:
            ids = [z.id for z in zones]
            if marker not in ids:
                raise HttpError("InvalidInput", [f"marker {marker} is not a hosted zone id"])
            start = ids.index(marker)
        page, rest = zones[start:start + max_items], zones[start + max_items:]
        inner = "<HostedZones>" + "".join(X.hosted_zone_xml(z) for z in page) + "</HostedZones>"
        inner += X.element("Marker", marker or "")  # required by the model, even when empty
        inner += X.element("IsTruncated", bool(rest))
        if rest:
            inner += X.element("NextMarker", rest[0].id)
        inner += X.element("MaxItems", max_items)
        return 200, X.document("ListHostedZonesResponse", inner), []

    async def list_zones_by_name(self, query: dict[str, str]) -> Response:
        zones = sorted(await self.call(self.store.list_zones), key=lambda z: (_name_key(z.name), z.id))
        max_items = self._max_items(query, MAX_ITEMS_ZONES)
        dns_name, zone_id = query.get("dnsname"), query.get("hostedzoneid")
        if zone_id and not dns_name:
            raise HttpError("InvalidInput", ["hostedzoneid requires dnsname"])
        if dns_name:
            try:
                start_key = (_name_key(from_route53_name(dns_name)), zone_id or "")
            except RecordError as exc:
                raise HttpError("InvalidDomainName", [str(exc)]) from exc
            zones = [z for z in zones if (_name_key(z.name), z.id) >= start_key]
        page, rest = zones[:max_items], zones[max_items:]
        inner = "<HostedZones>" + "".join(X.hosted_zone_xml(z) for z in page) + "</HostedZones>"
        if dns_name:
            inner += X.element("DNSName", dns_name)
        if zone_id:
            inner += X.element("HostedZoneId", zone_id)
        inner += X.element("IsTruncated", bool(rest))
        if rest:
            inner += X.element("NextDNSName", rest[0].name) + X.element("NextHostedZoneId", rest[0].id)
        inner += X.element("MaxItems", max_items)
        return 200, X.document("ListHostedZonesByNameResponse", inner), []

    async def change_batch(self, zone_id: str, body: bytes) -> Response:
        self.in_flight += 1  # the node's collector waits for it (authd.node)
        sent_here = _ANSWERED_BY_CALLER.get()
        if sent_here is not None:  # the ASGI call counts it answered once the response is sent
            sent_here[0] += 1
            return await self._change_batch(zone_id, body)
        try:
            return await self._change_batch(zone_id, body)
        finally:
            self._answered(1)

    async def _change_batch(self, zone_id: str, body: bytes) -> Response:
        t0 = time.perf_counter()
        comment, changes = X.parse_change_batch_xml(body)
        t1 = time.perf_counter()
        extra = {}
        prepare = getattr(self.serving_index, "prepare", None) if self.settle is not None else None
        if prepare is not None:
            extra["planned"] = self._prepare_during_commit(prepare, self.store)
        try:
            info = await self.call(self.store.change_batch, zone_id, changes, comment,
                                   max_record_sets=self.limits["MAX_RRSETS_BY_ZONE"], **extra)
        except StoreError as exc:
            messages = getattr(exc, "messages", ())
            log.info("control: rejected batch of %d changes for %s: %s", len(changes),
                     rules.clean_zone_id(zone_id), "; ".join(messages) or exc)
            raise
        t2 = time.perf_counter()
        self._changed(info)
        if self.settle is not None:
            with trio.move_on_after(SETTLE_MAX):
                await self.settle(info.seq)
        # with where the batch's time went, to find what makes a slow one slow (issue 12)
        log.info("control: accepted change %s: %d changes to %s (seq %d; xml %.1f ms, store "
                 "%.1f ms, commit %.1f, to the index %.1f ms)", info.id, len(changes),
                 rules.clean_zone_id(zone_id), info.seq, (t1 - t0) * 1e3, (t2 - t1) * 1e3,
                 getattr(self.store, "last_commit_ms", 0.0), (time.perf_counter() - t2) * 1e3)
        inner = X.change_info_xml(info, self.status_of(info))
        return 200, X.document("ChangeResourceRecordSetsResponse", inner), []

    @staticmethod
    def _prepare_during_commit(prepare: Callable[..., None], store: Any) -> Callable[[Any], None]:
        """The store's `planned` hook (Store.change_batch): from the store's worker thread,
        right before its COMMIT, hand the batch's puts to the trio thread, which compiles
        them for the serving index (`ServingIndex.prepare`) while the COMMIT writes and
        syncs the WAL without the GIL; the apply after the commit then only mutates, and
        the response is sent sooner (issue 12). The callback runs before the thread's
        result is delivered (trio runs `run_sync_soon` callbacks in order); were it ever
        late, the apply would compile the sets itself. Nothing is served from them before
        the committed entry is applied. The compile stops after about as long as the last
        COMMIT took (`last_commit_ms`, SQLite): past the COMMIT's end it would only hold up
        the store's thread, which needs the GIL to return, and the apply compiles the rest."""
        token = trio.lowlevel.current_trio_token()

        def compile_for(puts: Any, budget: float | None) -> None:  # on the trio thread
            deadline = None if budget is None else time.perf_counter() + budget
            prepare(puts, None if deadline is None else lambda: time.perf_counter() > deadline)

        def planned(puts: Any) -> None:
            last = getattr(store, "last_commit_ms", None)
            budget = last / 1e3 if last else None
            with contextlib.suppress(trio.RunFinishedError):  # shutting down: no apply either
                token.run_sync_soon(compile_for, puts, budget)

        return planned

    async def get_change(self, change_id: str) -> Response:
        info = await self.call(self.store.get_change, change_id)
        return 200, X.document("GetChangeResponse", X.change_info_xml(info, self.status_of(info))), []

    async def list_record_sets(self, zone_id: str, query: dict[str, str]) -> Response:
        name, rtype, ident = query.get("name"), query.get("type"), query.get("identifier")
        if rtype and not name:
            raise HttpError("InvalidInput", ["The input is not valid: type requires name"])
        if ident and not rtype:
            raise HttpError("InvalidInput", ["The input is not valid: identifier requires type"])
        max_items = self._max_items(query, MAX_ITEMS_RRSETS)
        start: tuple[str, str, str | None] | None = None
        if name:
            try:
                start = (from_route53_name(name), (rtype or "").upper(), ident or None)
            except RecordError as exc:
                raise HttpError("InvalidInput", [str(exc)]) from exc
        paged = getattr(self.store, "record_sets_page", None)
        if paged is not None:  # one index range scan: cheap point reads on big zones
            sets = await self.call(paged, zone_id, start, max_items + 1)
        else:
            sets = await self.call(self.store.record_sets, zone_id)
            if start is not None:
                key = (_name_key(start[0]), start[1], start[2] or "")
                sets = [rs for rs in sets if route53_sort_key(rs) >= key]
        page, rest = sets[:max_items], sets[max_items:]
        inner = "<ResourceRecordSets>" + "".join(X.record_set_xml(rs) for rs in page) + "</ResourceRecordSets>"
        inner += X.element("IsTruncated", bool(rest))
        if rest:
            nxt = rest[0]
            inner += X.element("NextRecordName", route53_name(nxt.name)) + X.element("NextRecordType", nxt.rtype)
            if nxt.set_identifier is not None:
                inner += X.element("NextRecordIdentifier", nxt.set_identifier)
        inner += X.element("MaxItems", max_items)
        return 200, X.document("ListResourceRecordSetsResponse", inner), []

    def _changed(self, info: ChangeInfo) -> None:
        for hook in self.on_change:
            hook(info)


async def serve_control(
    app: ControlAPI,
    host: str = "127.0.0.1",
    port: int = 8053,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` with hypercorn's trio worker; `task_status.started(url)` once listening.

    Never returns (until cancelled). Refuses a non-loopback host unless `app` was given
    explicit credentials (see `check_listen`).
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    if app.credentials is sigv4.DEFAULT_CREDENTIALS:
        check_listen(host, None)
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("authd.control.http")
    config.keep_alive_timeout = 30
    config.read_timeout = READ_TIMEOUT  # a connection silent mid-request is closed
    await serve(app, config, task_status=_Started(task_status))  # type: ignore[arg-type]


class _Started:
    """Adapts hypercorn's `started(list_of_urls)` to ours: `started(url)`."""

    def __init__(self, inner: trio.TaskStatus[str]):
        self.inner = inner

    def started(self, binds: list[str] | None = None) -> None:
        self.inner.started(binds[0] if binds else "")
