"""The same machine and client path over HTTP: Route 53 REST/XML with SigV4 to authd's control
API (served by hypercorn's trio worker on an ephemeral loopback port)."""

from __future__ import annotations

import io
import json

import trio

from authd.control.app import ControlAPI, serve_control
from enactor import machine as m
from enactor.checker.sim import PlanList, active_plan, rollback_plan
from enactor.checker.testing import DUAL, LEGACY, T0, plan_n, seeded_store
from enactor.client import Route53Http, perform
from enactor.runner import run_enactor, run_stepped


async def start_api(nursery: trio.Nursery):
    store = seeded_store()
    url = await nursery.start(serve_control, ControlAPI(store), "127.0.0.1", 0)
    return store, url


async def test_point_reads_and_batches_over_http_match_the_store(nursery: trio.Nursery) -> None:
    store, url = await start_api(nursery)
    api = Route53Http(url)
    zid = await trio.to_thread.run_sync(lambda: api.find_zone_by_name("api.aws").id)
    assert zid == store.find_zone_by_name("api.aws.").id
    got = await trio.to_thread.run_sync(lambda: api.get_record_sets(zid, f"plan-0001.{DUAL}", "AAAA"))
    assert sorted(got, key=lambda r: r.set_identifier) == sorted(
        store.get_record_sets(zid, f"plan-0001.{DUAL}", "AAAA"), key=lambda r: r.set_identifier)
    assert len(got) == 4
    # A batch whose DELETE does not match is rejected with Route 53's own words.
    bad = m.SubmitBatch(zid, (m.Change(m.Action.DELETE, m.lock_record(DUAL, '"enactor-x 1"')),), m.Purpose.RELEASE)
    res = await trio.to_thread.run_sync(lambda: perform(api, PlanList(), bad, lambda: T0))
    assert isinstance(res, m.BatchRejected)
    assert res.messages[0].startswith("Tried to delete resource record set [name='_lock.dynamodb.us-east-1.api.aws.', type='TXT']")


async def test_enactor_installs_a_plan_over_http(nursery: trio.Nursery) -> None:
    store, url = await start_api(nursery)
    plans = PlanList([plan_n(1), plan_n(2)])
    log = io.StringIO()
    cfg = m.Config("enactor-a", poll_interval=0.01)
    with trio.fail_after(60):
        await run_enactor(cfg, Route53Http(url), plans, log=log, max_steps=80)
    zid = store.find_zone_by_name("api.aws.").id
    assert active_plan(store, zid, DUAL) == 2 and rollback_plan(store, zid, DUAL) == 1
    assert active_plan(store, store.find_zone_by_name("amazonaws.com.").id, LEGACY) == 2
    text = log.getvalue()
    assert "enactor-a FLIPPED dynamodb.us-east-1.api.aws. A/AAAA: plan-0001 -> plan-0002" in text


async def test_stepped_mode_speaks_json_lines(nursery: trio.Nursery) -> None:
    store, url = await start_api(nursery)
    plans = PlanList([plan_n(1), plan_n(2)])
    go = "".join(json.dumps({"go": True, "now": T0 + i}) + "\n" for i in range(12))
    out = io.StringIO()
    code = await trio.to_thread.run_sync(lambda: run_stepped(
        m.Config("enactor-b"), Route53Http(url), plans, inp=io.StringIO(go), out=out, log=io.StringIO()))
    assert code == 0
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[0]["event"] == "next" and events[0]["action"]["kind"] == "read-plan"
    assert [e["event"] for e in events[:3]] == ["next", "result", "next"]
    results = [e["result"] for e in events if e["event"] == "result"]
    assert results[0]["plan"] == 2 and results[0]["now"] == T0
    batches = [e["action"] for e in events if e["event"] == "next" and e["action"]["kind"] == "batch"]
    assert batches and batches[0]["purpose"] == "lock"
    lock = store.get_record_sets(store.find_zone_by_name("api.aws.").id, f"_lock.{DUAL}", "TXT")
    assert lock and lock[0].values[0].startswith('"enactor-b ')
