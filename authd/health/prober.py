"""The health-check prober: probes every health check's endpoint on its RequestInterval and
stores the status when it changes, so that every serving index learns it.

Trio shell. The decisions are `authd.health.healthpolicy`'s (pure); this module only moves time and
bytes: one task per enabled endpoint check, a TCP connect or an HTTP(S) GET (httpx, no
certificate verification, as Route 53's checkers do not verify either), then
`healthpolicy.observe`. A status change is one log line a tired operator can read:

    health hc-0001-ca978112 tcp 127.0.0.1:9001 HEALTHY -> UNHEALTHY (3 failures: Failure: Connection refused.)

and one `healthcheck-status` resource written with journal=True (`status_doc`), which every
serving index (in-process and replica processes) applies into `index.resources`. The live
observations (CheckedTime of every probe) stay in memory for GetHealthCheckStatus; the store
gets a write per status change only, so a quiet check costs nothing durable.

Route 53 rules followed (Developer Guide, "How Route 53 determines whether a health check is
healthy"): TCP must connect within ten seconds; HTTP(S) must connect within four seconds and
return a 2xx or 3xx status within two seconds after connecting; *_STR_MATCH searches the first
5,120 bytes of the body; the interval is measured from one response to the next request; a
disabled check is not probed (and counts as healthy); a CALCULATED check is re-evaluated
whenever a child's status changes.

Safety: only loopback addresses are probed unless the operator passes --probe-any-address.
A target outside loopback is reported as failing with the reason, never contacted; a
FullyQualifiedDomainName without IPAddress is not resolved (that would be a DNS query leaving
the machine) unless the same flag allows it, except `localhost`.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from authd.control.api_health import KIND, STATUS_KIND
from authd.health import healthpolicy as P
from authd.health.healthcheck import STR_MATCH_TYPES, TLS_TYPES, HealthCheckConfig

log = logging.getLogger("authd.health")

TCP_CONNECT_TIMEOUT = 10.0
HTTP_CONNECT_TIMEOUT = 4.0
HTTP_FIRST_BYTE_TIMEOUT = 2.0
SEARCH_BYTES = 5120
RECONCILE_EVERY = 5.0  # seconds between store re-reads when no API call woke the prober
CHECKER_IP = "127.0.0.1"  # the address our probes come from; GetHealthCheckStatus names it

ProbeResult = tuple[bool, str]
ProbeFn = Callable[[HealthCheckConfig, str], Awaitable[ProbeResult]]


def word(healthy: bool) -> str:
    return "HEALTHY" if healthy else "UNHEALTHY"


# --- probes ----------------------------------------------------------------------------------


async def probe_tcp(cfg: HealthCheckConfig, ip: str) -> ProbeResult:
    assert cfg.port is not None
    family = trio.socket.AF_INET6 if ":" in ip else trio.socket.AF_INET
    sock = trio.socket.socket(family, trio.socket.SOCK_STREAM)
    try:
        with trio.fail_after(TCP_CONNECT_TIMEOUT):
            await sock.connect((ip, cfg.port))
    except trio.TooSlowError:
        return False, f"Failure: Connection timed out after {TCP_CONNECT_TIMEOUT:g} seconds."
    except OSError as exc:
        return False, f"Failure: {_os_reason(exc)}"
    finally:
        sock.close()
    return True, "Success: TCP connection established."


def _os_reason(exc: OSError) -> str:
    text = exc.strerror or str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "Connection refused."
    return text.rstrip(".") + "."


def _root_os_error(exc: BaseException) -> OSError | None:
    """The OSError with an errno under httpx's and trio's wrappers (trio reports a failed
    connect as "all attempts to connect ... failed", the refusal inside an exception group)."""
    seen: list[BaseException] = [exc]
    while seen:
        e = seen.pop(0)
        if isinstance(e, OSError) and e.errno is not None:
            return e
        if isinstance(e, BaseExceptionGroup):
            seen.extend(e.exceptions)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None and len(seen) < 32:
                seen.append(nxt)
    return None


async def probe_http(cfg: HealthCheckConfig, ip: str) -> ProbeResult:
    import httpx

    assert cfg.port is not None
    tls = cfg.type in TLS_TYPES
    host = f"[{ip}]" if ":" in ip else ip
    url = f"{'https' if tls else 'http'}://{host}:{cfg.port}{cfg.resource_path or '/'}"
    headers = {"User-Agent": "Amazon-Route53-Health-Check-Service (authd)"}
    extensions: dict[str, Any] = {}
    if cfg.fqdn:
        # Route 53 sends FullyQualifiedDomainName as the Host header (and as SNI with EnableSNI)
        headers["Host"] = cfg.fqdn if cfg.port in (80, 443) else f"{cfg.fqdn}:{cfg.port}"
        if tls and cfg.enable_sni:
            extensions["sni_hostname"] = cfg.fqdn
    timeout = httpx.Timeout(connect=HTTP_CONNECT_TIMEOUT, read=HTTP_FIRST_BYTE_TIMEOUT,
                            write=HTTP_FIRST_BYTE_TIMEOUT, pool=HTTP_CONNECT_TIMEOUT)
    try:
        async with httpx.AsyncClient(verify=False, timeout=timeout, follow_redirects=False,
                                     trust_env=False) as client:
            req = client.build_request("GET", url, headers=headers, extensions=extensions)
            resp = await client.send(req, stream=True)
            try:
                body = b""
                if cfg.type in STR_MATCH_TYPES:
                    async for chunk in resp.aiter_raw():
                        body += chunk
                        if len(body) >= SEARCH_BYTES:
                            break
            finally:
                await resp.aclose()
    except httpx.ConnectTimeout:
        return False, f"Failure: Connection timed out after {HTTP_CONNECT_TIMEOUT:g} seconds."
    except httpx.TimeoutException:
        return False, f"Failure: No response within {HTTP_FIRST_BYTE_TIMEOUT:g} seconds after connecting."
    except httpx.ConnectError as exc:
        cause = _root_os_error(exc)
        reason = _os_reason(cause) if cause is not None else (str(exc) or "Connection failed.")
        return False, f"Failure: {reason}"
    except httpx.HTTPError as exc:
        return False, f"Failure: {type(exc).__name__}: {exc}"
    status = f"HTTP Status Code {resp.status_code}, {resp.reason_phrase}"
    if not 200 <= resp.status_code < 400:
        return False, f"Failure: {status}."
    if cfg.type in STR_MATCH_TYPES:
        assert cfg.search_string is not None
        if cfg.search_string.encode() not in body[:SEARCH_BYTES]:
            return False, (f"Failure: {status}, but the search string '{cfg.search_string}' was not "
                           f"found in the first {SEARCH_BYTES} bytes of the response body.")
    return True, f"Success: {status}."


async def probe(cfg: HealthCheckConfig, ip: str) -> ProbeResult:
    """One probe of an endpoint check at `ip`."""
    if cfg.type == "TCP":
        return await probe_tcp(cfg, ip)
    return await probe_http(cfg, ip)


def target_address(cfg: HealthCheckConfig, *, any_address: bool) -> tuple[str | None, str]:
    """(the IP to probe, "") or (None, why it is not probed). No I/O: a name other than
    `localhost` is left to `resolve` (only with --probe-any-address)."""
    if cfg.ip_address is not None:
        ip = cfg.ip_address
    elif cfg.fqdn is not None and cfg.fqdn.rstrip(".").lower() == "localhost":
        ip = "127.0.0.1"
    elif any_address:
        return None, ""  # resolve the name
    else:
        return None, (f"Failure: not probed: authd does not resolve FullyQualifiedDomainName "
                      f"{cfg.fqdn} without --probe-any-address; give an IPAddress.")
    if not any_address and not ipaddress.ip_address(ip).is_loopback:
        return None, (f"Failure: not probed: {ip} is not a loopback address "
                      "(authd serve --probe-any-address allows probing it).")
    return ip, ""


async def resolve(name: str) -> str:
    infos = await trio.socket.getaddrinfo(name, None, type=trio.socket.SOCK_STREAM)
    return str(infos[0][4][0])


# --- status documents (pure helpers) ---------------------------------------------------------


def observation_doc(obs: P.Observation) -> dict[str, Any]:
    return {"ip": CHECKER_IP, "status": obs.detail, "checked": obs.at, "ok": obs.ok}


def status_doc(cfg: HealthCheckConfig, version: int, measured: P.Measured, healthy: bool) -> dict[str, Any]:
    """The `healthcheck-status` resource. `healthy` is what DNS routes by (Inverted and
    Disabled applied; a serving index with no entry for a check treats it as healthy, which is
    also what Route 53 does for a new check)."""
    return {
        "healthy": healthy,
        "measured": measured.healthy,
        "since": measured.since,
        "reason": measured.last.detail if measured.last else "",
        "failures": measured.failures,
        "observations": [observation_doc(measured.last)] if measured.last else [],
        "last_failure": observation_doc(measured.last_failure) if measured.last_failure else None,
        "inverted": cfg.inverted,
        "disabled": cfg.disabled,
        "config_version": version,
    }


@dataclass
class _Check:
    id: str
    version: int
    cfg: HealthCheckConfig
    measured: P.Measured
    healthy: bool | None = None  # effective status last stored (None: never stored)
    scope: trio.CancelScope | None = None
    children_seen: tuple[bool | None, ...] = field(default_factory=tuple)


class Prober:
    """Probes every health check in `store`.

    Args:
        store: the Store (its `*_resource` methods).
        call: runs a store method in the store's thread (`ControlAPI.call`); awaited.
        probe_any_address: probe non-loopback targets too (the operator's flag).
        wall: epoch seconds (observations carry them); injectable for tests.
        probe_fn: the probe (tests inject a fake); default `probe`.
        on_journal: called after each journaled status write (wakes journal followers).
    """

    def __init__(self, store: Any, call: Callable[..., Awaitable[Any]] | None = None, *,
                 probe_any_address: bool = False, wall: Callable[[], float] = time.time,
                 probe_fn: ProbeFn | None = None, on_journal: Callable[[], None] | None = None):
        self.store = store
        self.call = call or _inline
        self.any_address = probe_any_address
        self.wall = wall
        self.probe_fn = probe_fn or probe
        self.on_journal = on_journal
        self.checks: dict[str, _Check] = {}
        self._wake = trio.Event()
        self._stored = trio.Event()  # set (and replaced) after every status write
        self._bad: dict[str, int] = {}  # ids whose stored document is unreadable, by version
        self._nursery: trio.Nursery | None = None

    # --- for the API ---------------------------------------------------------------------

    def wake(self, hc_id: str = "") -> None:
        """A check was created, changed or deleted: re-read the store now."""
        self._wake.set()

    def status_of(self, hc_id: str) -> dict[str, Any] | None:
        check = self.checks.get(hc_id)
        if check is None:
            return None
        return status_doc(check.cfg, check.version, check.measured, self._effective(check))

    async def wait_stored(self, hc_id: str, healthy: bool) -> None:
        """Until `hc_id`'s stored status (what DNS routes by) is `healthy`."""
        while (check := self.checks.get(hc_id)) is None or check.healthy is not healthy:
            await self._stored.wait()

    # --- the loop ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe until cancelled. `task_status.started()` after the first reconcile."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._reconcile_logged()
            task_status.started()
            while True:
                with trio.move_on_after(RECONCILE_EVERY):
                    await self._wake.wait()
                self._wake = trio.Event()
                await self._reconcile_logged()

    async def _reconcile_logged(self) -> None:
        # A store failure must never take DNS down with the prober: log it, try again on the
        # next pass (the statuses DNS routes by stay as last stored).
        try:
            await self.reconcile()
        except Exception:
            log.exception("health: could not read the health checks from the store; retrying in %gs",
                          RECONCILE_EVERY)

    async def reconcile(self) -> None:
        """Start, restart (new version) and stop per-check tasks to match the store."""
        assert self._nursery is not None
        stored = {r.id: r for r in await self.call(self.store.list_resources, KIND)}
        for hc_id in list(self.checks):
            if hc_id not in stored:
                check = self.checks.pop(hc_id)
                if check.scope is not None:
                    check.scope.cancel()
                log.info("health %s stopped (deleted)", hc_id)
        for hc_id, res in stored.items():
            old = self.checks.get(hc_id)
            if old is not None and old.version == res.version:
                continue
            try:
                cfg = HealthCheckConfig.from_doc(res.doc["config"])
            except (KeyError, TypeError, ValueError) as exc:
                if self._bad.get(hc_id) != res.version:  # once per version, not every pass
                    log.error("health %s: stored document is not a health check (%s: %s); not probed",
                              hc_id, type(exc).__name__, exc)
                    self._bad[hc_id] = res.version
                continue
            if old is not None:
                if old.scope is not None:
                    old.scope.cancel()
                measured = old.measured
                healthy = old.healthy
            else:
                measured, healthy = await self._load_status(hc_id)
            check = _Check(hc_id, res.version, cfg, measured, healthy)
            self.checks[hc_id] = check
            if not cfg.calculated and not cfg.disabled:
                check.scope = trio.CancelScope()
                self._nursery.start_soon(self._probe_loop, check)
            await self._store_if_changed(check, None)
        await self._evaluate_calculated()

    async def _load_status(self, hc_id: str) -> tuple[P.Measured, bool | None]:
        """A restart carries on from the stored status instead of starting healthy again."""
        res = await self.call(self.store.get_resource, STATUS_KIND, hc_id)
        if res is None:
            return P.new_status(self.wall()), None
        doc = res.doc
        return P.Measured(healthy=bool(doc.get("measured", True)), since=float(doc.get("since", 0.0)),
                          failures=int(doc.get("failures", 0))), bool(doc.get("healthy", True))

    def _effective(self, check: _Check) -> bool:
        cfg = check.cfg
        return P.effective(check.measured.healthy, inverted=cfg.inverted, disabled=cfg.disabled)

    async def _probe_loop(self, check: _Check) -> None:
        assert check.scope is not None
        with check.scope:
            while True:
                ok, detail = await self._probe_once(check.cfg)
                obs = P.Observation(at=self.wall(), ok=ok, detail=detail)
                check.measured, transition = P.observe(check.measured, obs, check.cfg.failure_threshold)
                # a transition, or a status that could not be stored before (retried here)
                if transition is not None or check.healthy != self._effective(check):
                    await self._store_if_changed(check, transition)
                    await self._evaluate_calculated()
                # Route 53: the interval runs from one response to the next request
                await trio.sleep(check.cfg.request_interval)

    async def _probe_once(self, cfg: HealthCheckConfig) -> ProbeResult:
        ip, why = target_address(cfg, any_address=self.any_address)
        if ip is None and not why:
            assert cfg.fqdn is not None
            try:
                ip = await resolve(cfg.fqdn)
            except OSError as exc:
                return False, f"Failure: could not resolve {cfg.fqdn}: {exc}"
        if ip is None:
            return False, why
        try:
            return await self.probe_fn(cfg, ip)
        except Exception as exc:  # a probe bug must not stop the prober; it is a failure
            log.exception("health: probe of %s failed unexpectedly", cfg.target)
            return False, f"Failure: internal error in the prober: {type(exc).__name__}"

    async def _store_if_changed(self, check: _Check, transition: P.Transition | None) -> None:
        """Store the status when it is new, when DNS's view of it changes, or on a measured
        transition (which carries the observation that made it)."""
        healthy = self._effective(check)
        was = True if check.healthy is None else check.healthy  # a new check starts healthy
        if check.healthy is not None and healthy == check.healthy and transition is None:
            return
        if healthy != was:
            self._log_change(check, was, healthy, transition)
        doc = status_doc(check.cfg, check.version, check.measured, healthy)
        try:
            await self.call(self.store.put_resource, STATUS_KIND, check.id, doc, journal=True)
        except Exception:
            # not stored: `check.healthy` keeps the stored value, so the next result retries
            log.exception("health %s: could not store its status (%s); DNS keeps the last stored one",
                          check.id, word(healthy))
            return
        check.healthy = healthy
        if self.on_journal is not None:
            self.on_journal()
        self._stored.set()
        self._stored = trio.Event()

    def _log_change(self, check: _Check, was: bool, healthy: bool, transition: P.Transition | None) -> None:
        if transition is not None:
            n = transition.count
            what = ("success" if n == 1 else "successes") if transition.healthy else (
                "failure" if n == 1 else "failures")
            why = f"{n} {what}: {transition.reason}"
        else:
            why = "configuration changed"
        notes = [n for n, on in (("inverted", check.cfg.inverted),
                                 ("disabled, counts as healthy", check.cfg.disabled)) if on]
        note = f" [{', '.join(notes)}]" if notes else ""
        log.warning("health %s %s %s -> %s (%s)%s", check.id, check.cfg.target, word(was), word(healthy),
                    why, note)

    async def _evaluate_calculated(self) -> None:
        """Re-evaluate every CALCULATED check from its children's current statuses, until
        nothing changes (a calculated check may have calculated children)."""
        for _ in range(len(self.checks) + 1):
            if not await self._calculated_pass():
                return

    async def _calculated_pass(self) -> bool:
        changed = False
        for check in list(self.checks.values()):
            cfg = check.cfg
            if not cfg.calculated:
                continue
            children = tuple(
                self._effective(c) if (c := self.checks.get(child)) is not None else None
                for child in cfg.children
            )
            if children == check.children_seen and check.healthy is not None:
                continue
            check.children_seen = children
            changed = True
            threshold = cfg.health_threshold or 0
            measured_ok = sum(1 for c in children if c) >= threshold
            detail = P.calculated_detail(children, threshold)
            obs = P.Observation(at=self.wall(), ok=measured_ok, detail=detail)
            before = check.measured.healthy
            check.measured, _ = P.observe(check.measured, obs, 1)
            transition = (P.Transition(measured_ok, obs.at, 1, detail)
                          if before != measured_ok else None)
            await self._store_if_changed(check, transition)
        return changed


async def _inline(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)
