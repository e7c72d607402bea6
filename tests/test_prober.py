"""The prober's schedule (trio autojump clock, fake probes) and its real probes (loopback
TCP and HTTP listeners started here)."""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
from collections.abc import Callable

import pytest
import trio

from authd.control import api_health as A
from authd.dns.index import ServingIndex
from authd.health import healthcheck as H
from authd.health import prober as PR
from authd.store.memstore import MemoryStore

EPOCH = 1_800_000_000.0


def wall() -> float:
    return EPOCH + trio.current_time()


def make(store: MemoryStore, ref: str, **raw: object) -> str:
    res, created = A.create_step(store, ref, H.parse_config({k: str(v) if not isinstance(v, list) else v
                                                            for k, v in raw.items()}))
    assert created
    return res.id


class Target:
    """A fake endpoint: `up` decides the probe's answer; every probe is recorded."""

    def __init__(self) -> None:
        self.up = True
        self.calls: list[tuple[float, str]] = []

    async def __call__(self, cfg: H.HealthCheckConfig, ip: str) -> PR.ProbeResult:
        self.calls.append((trio.current_time(), ip))
        return (True, "Success: TCP connection established.") if self.up else (False, "Failure: Connection refused.")


class Journal:
    """Records every journaled status write, with the trio time it happened at."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.writes: list[float] = []
        self.changed = trio.Event()

    def __call__(self) -> None:
        self.writes.append(trio.current_time())
        self.changed.set()
        self.changed = trio.Event()

    def statuses(self) -> dict[str, bool]:
        return {r.id: r.doc["healthy"] for r in self.store.list_resources(A.STATUS_KIND)}

    async def until(self, pred: Callable[[dict[str, bool]], bool]) -> float:
        with trio.fail_after(600):  # virtual seconds: a status that never comes fails, not hangs
            while not pred(self.statuses()):
                await self.changed.wait()
        return trio.current_time()


async def start(nursery: trio.Nursery, store: MemoryStore, target: Target, journal: Journal,
                **kw: object) -> PR.Prober:
    prober = PR.Prober(store, wall=wall, probe_fn=target, on_journal=journal, **kw)  # type: ignore[arg-type]
    await nursery.start(prober.run)
    return prober


async def test_failover_timing_follows_interval_and_threshold(autojump_clock, caplog):
    caplog.set_level(logging.INFO, logger="authd.health")
    store, target = MemoryStore(), Target()
    journal = Journal(store)
    hc = make(store, "a", Type="TCP", IPAddress="127.0.0.1", Port=9001, RequestInterval=10, FailureThreshold=3)
    async with trio.open_nursery() as nursery:
        prober = await start(nursery, store, target, journal)
        assert (await journal.until(lambda s: s.get(hc) is True)) == 0  # a new check is healthy
        await trio.sleep(15)
        target.up, down_at = False, trio.current_time()
        t_down = await journal.until(lambda s: s.get(hc) is False)
        # Route 53: unhealthy after FailureThreshold consecutive failures, one interval apart
        assert down_at < t_down <= down_at + 10 * 3 + 10
        assert t_down - down_at >= 10 * 2  # three failed probes need at least two intervals
        target.up, up_at = True, trio.current_time()
        t_up = await journal.until(lambda s: s.get(hc) is True)
        assert up_at < t_up <= up_at + 10 * 3 + 10
        gaps = {round(b[0] - a[0], 6) for a, b in zip(target.calls, target.calls[1:], strict=False)}
        assert gaps == {10}  # the interval runs from one response to the next request
        status = prober.status_of(hc)
        assert status is not None and status["healthy"] is True
        assert status["observations"][0]["status"].startswith("Success")
        assert status["last_failure"]["status"] == "Failure: Connection refused."
        nursery.cancel_scope.cancel()
    lines = [r.getMessage() for r in caplog.records if "->" in r.getMessage()]
    assert lines == [
        f"health {hc} tcp 127.0.0.1:9001 HEALTHY -> UNHEALTHY (3 failures: Failure: Connection refused.)",
        f"health {hc} tcp 127.0.0.1:9001 UNHEALTHY -> HEALTHY (3 successes: Success: TCP connection established.)",
    ]


async def test_serving_index_learns_the_status_through_the_journal(autojump_clock):
    store, target = MemoryStore(), Target()
    journal = Journal(store)
    hc = make(store, "a", Type="TCP", IPAddress="127.0.0.1", Port=9001, RequestInterval=10, FailureThreshold=1)
    index = ServingIndex()
    for entry in store.snapshot():
        index.apply(entry)
    async with trio.open_nursery() as nursery:
        await start(nursery, store, target, journal)
        target.up = False
        await journal.until(lambda s: s.get(hc) is False)
        for entry in store.journal_since(index.seq):
            index.apply(entry)
        assert index.resources[A.STATUS_KIND][hc]["healthy"] is False
        assert index.resources[A.STATUS_KIND][hc]["reason"] == "Failure: Connection refused."
        nursery.cancel_scope.cancel()


async def test_non_loopback_targets_are_never_probed_without_the_flag(autojump_clock):
    store, target = MemoryStore(), Target()
    journal = Journal(store)
    hc = make(store, "far", Type="TCP", IPAddress="192.0.2.1", Port=80, RequestInterval=10, FailureThreshold=1)
    name = make(store, "name", Type="HTTP", FullyQualifiedDomainName="www.example.com", RequestInterval=10,
                FailureThreshold=1)
    async with trio.open_nursery() as nursery:
        prober = await start(nursery, store, target, journal)
        await journal.until(lambda s: s.get(hc) is False and s.get(name) is False)
        await trio.sleep(60)
        assert target.calls == []
        reason = prober.status_of(hc)["reason"]  # type: ignore[index]
        assert "not probed: 192.0.2.1 is not a loopback address" in reason and "--probe-any-address" in reason
        assert "does not resolve FullyQualifiedDomainName www.example.com" in prober.status_of(name)["reason"]  # type: ignore[index]
        nursery.cancel_scope.cancel()


async def test_the_flag_allows_any_address(autojump_clock):
    store, target = MemoryStore(), Target()
    journal = Journal(store)
    make(store, "far", Type="TCP", IPAddress="192.0.2.1", Port=80, RequestInterval=10, FailureThreshold=1)
    async with trio.open_nursery() as nursery:
        await start(nursery, store, target, journal, probe_any_address=True)
        await trio.sleep(25)
        assert [ip for _, ip in target.calls] == ["192.0.2.1"] * 3
        nursery.cancel_scope.cancel()


async def test_disabled_is_healthy_and_not_probed_and_inverted_flips(autojump_clock):
    store, target = MemoryStore(), Target()
    target.up = False
    journal = Journal(store)
    disabled = make(store, "d", Type="TCP", IPAddress="127.0.0.1", Port=1, Disabled="true")
    down = make(store, "dn", Type="TCP", IPAddress="127.0.0.1", Port=2, Disabled="true", Inverted="true")
    inverted = make(store, "i", Type="TCP", IPAddress="127.0.0.1", Port=3, Inverted="true", FailureThreshold=1)
    async with trio.open_nursery() as nursery:
        await start(nursery, store, target, journal)
        # inverted: a new check (healthy) counts as unhealthy, a failing endpoint as healthy
        await journal.until(lambda s: s.get(inverted) is True and s.get(disabled) is True and s.get(down) is False)
        await trio.sleep(100)
        assert {ip for _, ip in target.calls} == {"127.0.0.1"} and len(target.calls) == 4  # only `inverted`, every 30 s
        nursery.cancel_scope.cancel()


async def test_calculated_follows_its_children(autojump_clock, caplog):
    caplog.set_level(logging.INFO, logger="authd.health")
    store, a, b = MemoryStore(), Target(), Target()
    journal = Journal(store)
    ca = make(store, "a", Type="TCP", IPAddress="127.0.0.1", Port=1, RequestInterval=10, FailureThreshold=1)
    cb = make(store, "b", Type="TCP", IPAddress="127.0.0.2", Port=1, RequestInterval=10, FailureThreshold=1)
    calc = make(store, "c", Type="CALCULATED", ChildHealthChecks=[ca, cb], HealthThreshold=2)

    async def by_ip(cfg: H.HealthCheckConfig, ip: str) -> PR.ProbeResult:
        return await (a if ip == "127.0.0.1" else b)(cfg, ip)

    async with trio.open_nursery() as nursery:
        prober = PR.Prober(store, wall=wall, probe_fn=by_ip, on_journal=journal)
        await nursery.start(prober.run)
        await journal.until(lambda s: s.get(calc) is True)
        b.up = False
        await journal.until(lambda s: s.get(cb) is False and s.get(calc) is False)
        assert "1 of 2 child health checks are healthy" in prober.status_of(calc)["reason"]  # type: ignore[index]
        b.up = True
        await journal.until(lambda s: s.get(calc) is True)
        nursery.cancel_scope.cancel()
    assert any(f"health {calc} calculated 2 children, threshold 2 HEALTHY -> UNHEALTHY" in r.getMessage()
               for r in caplog.records)


async def test_update_restarts_and_delete_stops_probing(autojump_clock):
    store, target = MemoryStore(), Target()
    journal = Journal(store)
    hc = make(store, "a", Type="TCP", IPAddress="127.0.0.1", Port=1, RequestInterval=30)
    async with trio.open_nursery() as nursery:
        prober = await start(nursery, store, target, journal)
        await trio.sleep(5)
        assert len(target.calls) == 1
        A.update_step(store, hc, 1, {"Disabled": "true"}, [])
        prober.wake(hc)
        await trio.sleep(100)
        assert len(target.calls) == 1  # disabled: not probed any more
        A.delete_step(store, hc, None)
        prober.wake(hc)
        await trio.sleep(1)
        assert hc not in prober.checks and store.get_resource(A.STATUS_KIND, hc) is None
        nursery.cancel_scope.cancel()


async def test_a_restart_carries_on_from_the_stored_status(autojump_clock):
    store, target = MemoryStore(), Target()
    target.up = False
    journal = Journal(store)
    hc = make(store, "a", Type="TCP", IPAddress="127.0.0.1", Port=1, RequestInterval=10, FailureThreshold=2)
    async with trio.open_nursery() as nursery:
        await start(nursery, store, target, journal)
        await journal.until(lambda s: s.get(hc) is False)
        nursery.cancel_scope.cancel()
    target.up = True
    async with trio.open_nursery() as nursery:
        prober = await start(nursery, store, target, journal)
        await trio.sleep(1)
        # one success is not enough to be healthy again after a restart
        assert journal.statuses()[hc] is False and prober.status_of(hc)["healthy"] is False  # type: ignore[index]
        await journal.until(lambda s: s.get(hc) is True)
        nursery.cancel_scope.cancel()


# --- real probes against loopback listeners ---------------------------------------------------


async def _serve_http(stream: trio.SocketStream, status: str, body: bytes) -> None:
    async with stream:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            data += chunk
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        await stream.send_all(head + body)


@pytest.mark.realtime
async def test_real_tcp_probe_connects_and_reports_refusal():
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    cfg = H.parse_config({"Type": "TCP", "IPAddress": "127.0.0.1", "Port": str(port)})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, lambda s: s.aclose(), listeners)
        assert await PR.probe(cfg, "127.0.0.1") == (True, "Success: TCP connection established.")
        nursery.cancel_scope.cancel()
    for listener in listeners:
        await listener.aclose()
    assert await PR.probe(cfg, "127.0.0.1") == (False, "Failure: Connection refused.")


@pytest.mark.realtime
@pytest.mark.parametrize(("htype", "status", "body", "expect_ok", "fragment"), [
    ("HTTP", "200 OK", b"hello", True, "Success: HTTP Status Code 200, OK."),
    ("HTTP", "302 Found", b"", True, "Success: HTTP Status Code 302"),
    ("HTTP", "503 Service Unavailable", b"", False, "Failure: HTTP Status Code 503"),
    ("HTTP_STR_MATCH", "200 OK", b"x" * 100 + b"all good", True, "Success"),
    ("HTTP_STR_MATCH", "200 OK", b"x" * 5120 + b"all good", False, "was not found in the first 5120 bytes"),
])
async def test_real_http_probe(htype, status, body, expect_ok, fragment):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    raw = {"Type": htype, "IPAddress": "127.0.0.1", "Port": str(port), "ResourcePath": "/health"}
    if htype == "HTTP_STR_MATCH":
        raw["SearchString"] = "all good"
    cfg = H.parse_config(raw)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, lambda s: _serve_http(s, status, body), listeners)
        ok, detail = await PR.probe(cfg, "127.0.0.1")
        nursery.cancel_scope.cancel()
    assert ok is expect_ok and fragment in detail


@pytest.mark.realtime
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
async def test_real_https_probe_without_verification_sends_sni(tmp_path):
    """Route 53's checkers don't validate certificates; with EnableSNI they send the
    FullyQualifiedDomainName as SNI (and as the Host header)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=not-the-name.invalid"],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    seen: dict[str, object] = {}
    ctx.sni_callback = lambda sslobj, name, _ctx: seen.__setitem__("sni", name)

    async def handler(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, ctx, server_side=True)
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await tls.receive_some(4096)
            seen["host"] = next(line for line in data.decode().split("\r\n") if line.lower().startswith("host:"))
            await tls.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await tls.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    cfg = H.parse_config({"Type": "HTTPS", "IPAddress": "127.0.0.1", "Port": str(port),
                          "FullyQualifiedDomainName": "www.example.test"})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, listeners)
        ok, detail = await PR.probe(cfg, "127.0.0.1")
        nursery.cancel_scope.cancel()
    assert (ok, detail) == (True, "Success: HTTP Status Code 200, OK.")
    assert seen["sni"] == "www.example.test"
    assert seen["host"] == f"Host: www.example.test:{port}"


@pytest.mark.realtime
@pytest.mark.parametrize("htype", ["HTTP", "HTTPS", "TCP"])
async def test_real_probe_of_a_closed_port_says_connection_refused(htype):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    for listener in listeners:
        await listener.aclose()  # nothing listens there now
    cfg = H.parse_config({"Type": htype, "IPAddress": "127.0.0.1", "Port": str(port)})
    assert await PR.probe(cfg, "127.0.0.1") == (False, "Failure: Connection refused.")


async def test_an_unreadable_stored_check_is_logged_and_skipped(autojump_clock, caplog):
    store, target = MemoryStore(), Target()
    journal = Journal(store)
    store.put_resource(A.KIND, "hc-0009-broken", {"Type": "TCP"})  # not the API's shape
    hc = make(store, "a", Type="TCP", IPAddress="127.0.0.1", Port=1, RequestInterval=10)
    async with trio.open_nursery() as nursery:
        prober = await start(nursery, store, target, journal)
        await trio.sleep(25)  # several reconcile passes; probes at 0, 10 and 20
        assert hc in prober.checks and "hc-0009-broken" not in prober.checks
        assert len(target.calls) == 3
        nursery.cancel_scope.cancel()
    errors = [r.getMessage() for r in caplog.records if "hc-0009-broken" in r.getMessage()]
    assert len(errors) == 1 and "not probed" in errors[0]


class FlakyStore(MemoryStore):
    """A store whose status writes fail while `failing` is set."""

    failing = False

    def put_resource(self, kind, rid, doc, **kw):  # type: ignore[override]
        if self.failing and kind == A.STATUS_KIND:
            raise OSError("disk I/O error")
        return super().put_resource(kind, rid, doc, **kw)


async def test_a_store_failure_is_logged_and_retried_not_a_crash(autojump_clock, caplog):
    store, target = FlakyStore(), Target()
    journal = Journal(store)
    hc = make(store, "a", Type="TCP", IPAddress="127.0.0.1", Port=1, RequestInterval=10, FailureThreshold=1)
    async with trio.open_nursery() as nursery:
        prober = await start(nursery, store, target, journal)
        store.failing, target.up = True, False
        await trio.sleep(25)
        assert journal.statuses()[hc] is True  # not stored, and the prober still runs
        assert any("could not store its status (UNHEALTHY)" in r.getMessage() for r in caplog.records)
        store.failing = False
        with trio.fail_after(10.5):
            await prober.wait_stored(hc, False)  # the next result stores it
        nursery.cancel_scope.cancel()
    assert journal.statuses()[hc] is False


async def test_http_probe_fails_when_no_response_comes_within_two_seconds(mock_clock):
    """Route 53: the endpoint must respond within two seconds after connecting. The server here
    accepts and reads, then never answers; the clock is virtual, the sockets real: it jumps
    only after 50 ms of real idleness, so loopback I/O in flight always lands first."""
    mock_clock.autojump_threshold = 0.05
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    cfg = H.parse_config({"Type": "HTTP", "IPAddress": "127.0.0.1", "Port": str(port)})

    async def silent(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(4096)
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, silent, listeners)
        start = trio.current_time()
        ok, detail = await PR.probe(cfg, "127.0.0.1")
        took = trio.current_time() - start
        nursery.cancel_scope.cancel()
    assert (ok, detail) == (False, "Failure: No response within 2 seconds after connecting.")
    assert 2 <= took < 3
