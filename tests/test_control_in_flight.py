"""`ControlAPI.in_flight` and `batch_answered`: a change batch counts as in flight from its
request until its response's last byte is handed to the server, so the node's collector
(`authd.node._collect_between_batches`), which runs right after a batch is answered, never
lands between the apply and the send (issue 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from authd.control.app import ControlAPI
from authd.model.records import RecordSet
from authd.store.memstore import MemoryStore
from authd.zonefiles.seed import seed_store
from authd.zonefiles.zonefile import load_zone_dir
from bench.control import batch_xml, signed_headers

ZONES = Path(__file__).resolve().parent.parent / "zones"


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    headers = signed_headers(method, "http://127.0.0.1:8053" + path, body)
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
            + [(b"host", b"127.0.0.1:8053")]}


async def _call(app: ControlAPI, scope: dict[str, Any], body: bytes) -> list[tuple[str, int]]:
    """Run one request through the ASGI app; (message type, `app.in_flight` then) per send."""
    sent: list[tuple[str, int]] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        sent.append(("receive", app.in_flight))  # a body still arriving is not in flight
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append((message["type"], app.in_flight))

    await app(scope, receive, send)
    return sent


def _seeded_api() -> tuple[MemoryStore, Any, ControlAPI]:
    """A change API on a memory store holding the test zones, and the example.test. zone."""
    store = MemoryStore()
    seed_store(store, load_zone_dir(ZONES))
    return store, store.find_zone_by_name("example.test."), ControlAPI(store)


async def test_a_batch_is_in_flight_until_its_response_is_sent():
    store, zone, app = _seeded_api()
    answered = app.batch_answered
    body = batch_xml("CREATE", [RecordSet("inflight.example.test.", "A", 60, ("192.0.2.7",))])
    sent = await _call(app, _scope("POST", f"/2013-04-01/hostedzone/{zone.id}/rrset/", body), body)
    assert sent == [("receive", 0), ("http.response.start", 1), ("http.response.body", 1)]
    assert app.in_flight == 0
    assert answered.is_set() and not app.batch_answered.is_set()  # a fresh event for the next one
    # any other request leaves both alone
    info = store.find_zone(zone.id)
    answered = app.batch_answered
    sent = await _call(app, _scope("GET", f"/2013-04-01/hostedzone/{info.id}", b""), b"")
    assert sent == [("receive", 0), ("http.response.start", 0), ("http.response.body", 0)]
    assert not answered.is_set()


async def test_a_refused_batch_is_answered_too():
    store, zone, app = _seeded_api()
    answered = app.batch_answered
    body = batch_xml("DELETE", [RecordSet("missing.example.test.", "A", 60, ("192.0.2.7",))])
    sent = await _call(app, _scope("POST", f"/2013-04-01/hostedzone/{zone.id}/rrset", body), body)
    assert sent == [("receive", 0), ("http.response.start", 1), ("http.response.body", 1)]
    assert app.in_flight == 0 and answered.is_set()


async def test_a_batch_handled_outside_an_asgi_call_is_answered_when_it_returns():
    store, zone, app = _seeded_api()
    answered = app.batch_answered
    body = batch_xml("CREATE", [RecordSet("direct.example.test.", "A", 60, ("192.0.2.8",))])
    status, _, _ = await app.change_batch(zone.id, body)
    assert status == 200 and app.in_flight == 0 and answered.is_set()
