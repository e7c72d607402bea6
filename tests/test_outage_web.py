"""The live web page of the outage (issue 14): the pure feed, the SSE app over httpx, and the
page itself in headless Chromium during real `enactor outage --web` runs.

The Chromium tests start `enactor outage ... --web` on a free loopback port, load the page
through the DevTools protocol (tests/cdp_helpers.py), poll the DOM under a deadline until
the endpoint shows EMPTY, a crash mark and the stale plan, and save a screenshot to
`results/outage-web-<variant>.png`. They skip, naming `chromium`, when it is not installed.
"""

from __future__ import annotations

import ast
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from authd.localnet import free_port
from enactor.drills.timeline import Recorder
from enactor.drills.web import Hub, LiveApp, serve_web
from enactor.drills.webfeed import (
    Answer,
    Feed,
    Observation,
    Translator,
    answers_from_digs,
    dig_addresses,
    end_message,
    event_message,
    last_event_id,
    parse_sse,
    sse_frame,
)
from tests.cdp_helpers import Chromium, chromium_path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
T0 = 1_760_940_000.0
REGIONAL = "dynamodb.us-east-1.amazonaws.com"


# --- the pure feed ----------------------------------------------------------------------


def test_feed_is_a_pure_module() -> None:
    tree = ast.parse((REPO / "enactor" / "drills" / "webfeed.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"trio", "socket", "time", "hypercorn", "httpx"}, names


def test_flip_and_clean_events_name_the_full_endpoint_and_plan() -> None:
    rec = Recorder(T0)
    rec.add(T0 + 1.5, "enactor-b", "flip",
            f"{REGIONAL}. A: plan-0012 -> plan-0002 (rollback -> plan-0012)")
    rec.add(T0 + 2, "enactor-a", "clean", f"deleted plan-0002 (older than plan-0010) of {REGIONAL}.")
    rec.add(T0 + 3, "operator", "typo", f"deleted the plan-0012 tree of {REGIONAL}. by hand")
    flip, clean, typo = (event_message(e, T0) for e in rec.events)
    assert (flip["endpoint"], flip["plan_label"], flip["t"]) == (REGIONAL, "plan-0002", 1.5)
    assert (clean["endpoint"], clean["plan"]) == (REGIONAL, 2)
    assert (typo["endpoint"], typo["plan"]) == (REGIONAL, 12)
    assert flip["clock"] == "06:00:01.500"


def test_lane_states_follow_the_events() -> None:
    rec = Recorder(T0)
    for kind in ("lock", "backoff", "crash", "restart", "release"):
        rec.add(T0, "enactor-c", kind, kind)
    assert [event_message(e, T0).get("lane") for e in rec.events] == [
        "HOLDS LOCK", "BACKING OFF", "CRASHED", "STARTING", "IDLE"]


def test_translator_sends_only_what_is_new_and_what_changed() -> None:
    rec = Recorder(T0)
    answers = [Answer("node-1", REGIONAL + ".", "A", "NOERROR", ("192.0.2.1",), "dig")]
    active = {REGIONAL + ".": 1}
    tr = Translator(rec, lambda: Observation(dict(active), tuple(answers)))
    first = tr.pull()
    assert [m["type"] for m in first] == ["active", "answer"]
    assert first[0]["label"] == "plan-0001" and first[1]["addresses"] == ["192.0.2.1"]
    assert tr.pull() == []  # nothing new, nothing changed
    rec.add(T0 + 4, "enactor-b", "flip", f"{REGIONAL}. A: plan-0012 -> plan-0002 (rollback -> plan-0012)")
    active[REGIONAL + "."] = 2
    out = tr.pull()
    assert [m["type"] for m in out] == ["event", "active"]  # the flip's plan, once
    assert out[0]["backwards"] is False
    rec.add(T0 + 4.2, "enactor-a", "flip", f"{REGIONAL}. A: plan-0002 -> plan-0012 (rollback -> plan-0002)")
    rec.add(T0 + 4.4, "enactor-b", "flip", f"{REGIONAL}. A: plan-0012 -> plan-0002 (rollback -> plan-0012)")
    active[REGIONAL + "."] = 2
    assert [m.get("backwards") for m in tr.pull()] == [False, None, True, None]  # flip, active x2
    rec.add(T0 + 4.5, "enactor-a", "clean", f"deleted plan-0001, plan-0002 (older than plan-0011) of {REGIONAL}.")
    out = tr.pull()
    assert [(m["type"], m.get("dangling")) for m in out] == [("event", None), ("active", True)]
    assert out[0]["plan"] == 1 and out[1]["label"] == "plan-0002"
    rec.add(T0 + 5, "authd", "empty", f"{REGIONAL}. A")
    answers[0] = Answer("node-1", REGIONAL + ".", "A", "NOERROR", (), "dig")
    out = tr.pull()
    assert [m["type"] for m in out] == ["event", "answer", "answer"]  # authd's word, then dig's
    assert out[1]["empty"] and out[1]["addresses"] == [] and out[1]["source"] == "watch"
    assert out[2]["empty"] and out[2]["source"] == "watch + dig"
    assert tr.pull() == []  # the same dig again is no news
    rec.add(T0 + 6, "authd", "back", f"{REGIONAL}. A")
    answers.clear()  # no dig since: only authd's word that it answers again
    out = tr.pull()
    assert [(m["type"], m.get("empty"), m.get("addresses")) for m in out] == [
        ("event", None, None), ("answer", False, None)]


def test_hello_lists_lanes_endpoints_and_nodes() -> None:
    tr = Translator(Recorder(T0))
    msg = tr.hello("t", ["enactor-a"], [(REGIONAL + ".", ("A",)), ("dynamodb.us-east-1.api.aws.", ("A", "AAAA"))],
                   ["node-1", "node-2"])
    assert msg["keys"] == [f"{REGIONAL} A", "dynamodb.us-east-1.api.aws A", "dynamodb.us-east-1.api.aws AAAA"]
    assert msg["nodes"] == ["node-1", "node-2"] and msg["actors"] == ["enactor-a"]


def test_feed_replays_from_any_point_and_frames_round_trip() -> None:
    feed = Feed()
    for i in range(3):
        feed.publish({"type": "event", "text": f"e{i}"})
    assert [m["id"] for m in feed.since(0)] == [1, 2, 3]
    assert [m["id"] for m in feed.since(2)] == [3]
    assert not feed.ended
    feed.publish(end_message({"crashes": 2}, "headline"))
    assert feed.ended
    body = b"".join(sse_frame(m) for m in feed.messages).decode()
    assert body.startswith("id: 1\nevent: event\ndata: {")
    assert parse_sse(body) == feed.messages
    assert last_event_id("7") == 7 and last_event_id("junk") == 0 and last_event_id(None) == 0


def test_a_bounded_feed_keeps_hello_and_the_newest() -> None:
    feed = Feed(limit=3)
    feed.publish({"type": "hello"})
    for i in range(10):
        feed.publish({"type": "event", "text": f"e{i}"})
    assert [m["id"] for m in feed.messages] == [1, 9, 10, 11]
    assert [m["id"] for m in feed.since(0)] == [1, 9, 10, 11]  # a late page: hello first
    assert [m["id"] for m in feed.since(9)] == [10, 11]  # a reconnect within what is kept
    assert [m["id"] for m in feed.since(4)] == [1, 9, 10, 11]  # too far behind: start over
    assert feed.since(11) == []


DIG_TEXT = """;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1
;; flags: qr aa; QUERY: 1, ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 1

;; ANSWER SECTION:
dynamodb.us-east-1.amazonaws.com. 5 IN	A	192.0.2.12
dynamodb.us-east-1.amazonaws.com. 5 IN	A	192.0.2.11

;; Query time: 0 msec
"""


def test_addresses_come_from_digs_answer_section() -> None:
    assert dig_addresses(DIG_TEXT, "A") == ("192.0.2.11", "192.0.2.12")
    empty = DIG_TEXT.split(";; ANSWER SECTION:")[0].replace("ANSWER: 2", "ANSWER: 0")
    got = answers_from_digs([(T0, f"{REGIONAL}. A", DIG_TEXT), (T0, f"{REGIONAL}. A @node-2", empty)])
    assert [(a.node, a.addresses, a.empty) for a in got] == [
        ("node-1", ("192.0.2.11", "192.0.2.12"), False), ("node-2", (), True)]


# --- the SSE app, over httpx ------------------------------------------------------------


def hub_with(n: int, end: bool) -> Hub:
    hub = Hub()
    hub.publish([{"type": "event", "kind": "lock", "text": f"e{i}"} for i in range(n)])
    if end:
        hub.publish([end_message({}, "done")])
    return hub


async def test_events_replay_the_whole_run_then_end() -> None:
    app = LiveApp(hub_with(3, end=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/events")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        msgs = parse_sse(r.text)
        assert [m["id"] for m in msgs] == [1, 2, 3, 4] and msgs[-1]["type"] == "end"
        r = await client.get("/events", headers={"Last-Event-ID": "2"})  # a reconnect resumes
        assert [m["id"] for m in parse_sse(r.text)] == [3, 4]
        page = await client.get("/")
        assert page.headers["content-type"].startswith("text/html")
        assert 'new EventSource("/events")' in page.text
        assert (await client.get("/messages.json")).json()[0]["text"] == "e0"
        assert (await client.get("/nope")).status_code == 404
        assert (await client.post("/events")).status_code == 405


async def test_a_waiting_stream_gets_messages_as_they_are_published() -> None:
    hub = hub_with(1, end=False)
    app = LiveApp(hub)
    got: list[httpx.Response] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client, \
            trio.open_nursery() as nursery:

        async def read() -> None:
            got.append(await client.get("/events"))

        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()  # the stream sent message 1 and waits
        hub.publish([{"type": "event", "kind": "flip", "text": "later"}])
        await trio.testing.wait_all_tasks_blocked()
        hub.publish([end_message({}, "done")])
    assert [m.get("text") for m in parse_sse(got[0].text)] == ["e0", "later", None]


@pytest.mark.realtime
async def test_served_by_hypercorn_the_stream_is_live() -> None:
    """Real loopback socket: the first message arrives before the second is published."""
    hub = hub_with(1, end=False)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_web, LiveApp(hub, keepalive=0.2), "127.0.0.1", 0)
        assert url.startswith("http://127.0.0.1:")
        nursery.cancel_scope.cancel()
    port = free_port()
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_web, LiveApp(hub, keepalive=0.2), "127.0.0.1", port)
        seen: list[dict[str, object]] = []
        async with httpx.AsyncClient(timeout=10) as client, \
                client.stream("GET", f"http://127.0.0.1:{port}/events") as r:
            buf = ""
            async for chunk in r.aiter_text():
                buf += chunk
                while "\n\n" in buf:
                    block, buf = buf.split("\n\n", 1)
                    seen += parse_sse(block + "\n\n")
                    if block.startswith(": keepalive") and len(seen) == 1:
                        hub.publish([end_message({}, "done")])  # only now: the stream is live
                if seen and seen[-1]["type"] == "end":
                    break
        assert [m["type"] for m in seen] == ["event", "end"]
        nursery.cancel_scope.cancel()


# --- the page, in headless Chromium -----------------------------------------------------

needs_chromium = pytest.mark.skipif(chromium_path() is None,
                                    reason="chromium not installed (Debian package chromium)")


def start_outage(*extra: str, png: Path) -> tuple[subprocess.Popen[str], str]:
    """`enactor outage --web` on a free port, in its own session (stopped by PID); the URL it
    prints once the page is served."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "enactor", "outage", "--web", f"127.0.0.1:{port}",
         "--png", str(png), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True)
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline and sel.select(timeout=deadline - time.monotonic()):
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if "live page: " in line:
            return proc, line.split("live page: ", 1)[1].strip()
    proc.kill()
    raise AssertionError(f"enactor outage --web never served its page:\n{seen}")


def stop_outage(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


EMPTY_AT = ('document.querySelector(`td.answer[data-key="{key}"][data-state="EMPTY"]`)'
            '?.dataset.node || ""')


def check_page(url: str, variant: str, node: str, plans: int = 12) -> Path:
    """Load the page, wait for the outage to show, assert on the DOM, take the screenshot."""
    browser = Chromium()
    try:
        page = browser.new_page(url)
        try:
            # the page has loaded and has had the run's first message
            state = page.wait_for("['RUNNING', 'FINISHED'].includes("
                                  "document.getElementById('status')?.dataset.state) && "
                                  "document.getElementById('status').dataset.state", 60)
            assert state in ("RUNNING", "FINISHED")
            # the regional endpoint goes empty, as in AWS's account, and so does the api.aws name
            assert page.wait_for(EMPTY_AT.format(key=f"{REGIONAL} A"), 120) == node
            page.wait_for(EMPTY_AT.format(key="dynamodb.us-east-1.api.aws AAAA"), 60)
            page.wait_for("document.querySelectorAll('.mark.crash').length >= 1", 60)
            page.wait_for("document.getElementById('status').dataset.state === 'FINISHED'", 120)
            cell = page.evaluate(f"document.getElementById('active-{REGIONAL}').textContent")
            # the stale plan the alias was flipped back to, whose tree the cleaner deleted
            assert cell.startswith("plan-0002") and "alias dangles" in cell, cell
            text = page.evaluate("document.body.innerText")
            assert "EMPTY" in text and "plan-0002" in text and "dynamodb.us-east-1.api.aws" in text
            assert "RollbackTargetMissing" in text or "crashed" in text
            lanes = page.evaluate("[...document.querySelectorAll('.lane')].map(l => l.dataset.actor)")
            assert lanes[:3] == ["enactor-a", "enactor-b", "enactor-c"]
            flips = page.evaluate("[...document.querySelectorAll('.mark.flip')].map(m => m.textContent)")
            assert "\u25bc2" in flips and f"\u25bc{plans}" in flips
            assert page.evaluate("document.querySelectorAll('.mark.clean').length") >= 1
            stale = page.evaluate("[...document.querySelectorAll('.mark.flip.backwards')]"
                                  ".map(m => m.textContent + ' ' + m.dataset.endpoint)")
            assert sorted(stale) == sorted(f"\u25bc2 {n}" for n in (REGIONAL, "dynamodb.us-east-1.api.aws")), stale
            assert page.evaluate("document.querySelectorAll('.band').length") >= 1
            shot = page.screenshot(RESULTS / f"outage-web-{variant}.png")
        finally:
            page.close()
    finally:
        browser.close()
    assert_non_blank(shot)
    return shot


def assert_non_blank(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.stat().st_size > 10_000
    img = mpimg.imread(str(path))[..., :3]
    assert img.shape[0] >= 600 and img.shape[1] >= 1000
    assert float(img.std()) > 0.05  # not one flat colour
    red = (img[..., 0] > 0.6) & (img[..., 1] < 0.3) & (img[..., 2] < 0.3)
    assert int(red.sum()) > 50  # the EMPTY badges and the crash marks are red


@needs_chromium
@pytest.mark.realtime
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_live_page_in_chromium_inprocess(tmp_path: Path) -> None:
    proc, url = start_outage("--inprocess", "--pace", "0.15", png=tmp_path / "t.png")
    try:
        check_page(url, "inprocess", "authd (in-process index)")
    finally:
        code, out, err = stop_outage(proc)
    assert code == 0, err
    assert "Traceback" not in err and err.count("stopping on SIGTERM") == 1, err
    assert "EMPTY ANSWERS for dynamodb.us-east-1.amazonaws.com A" in out  # the report, as without --web


@needs_chromium
@pytest.mark.realtime
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_live_page_in_chromium_real_processes(tmp_path: Path) -> None:
    """Real authd, planner and enactors (the shortest schedule, --plans 4, to stay quick);
    the answers are authd's own empty-answer record and real dig samples of node-1."""
    if not Path("/usr/bin/dig").exists() and subprocess.run(["which", "dig"]).returncode:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    proc, url = start_outage("--plans", "4", "--pace", "0.02", "--web-linger", "120", png=tmp_path / "t.png")
    try:
        check_page(url, "processes", "node-1", plans=4)
    finally:
        code, _, err = stop_outage(proc)
    assert code == 0 and "Traceback" not in err, err


def test_observed_lane_events_merge_in_time_order() -> None:
    """In-process restarts are only logged by the Sim: they come from the observer, and the
    lane sees crash, restart, backoff in the order they happened."""
    from enactor.drills.timeline import Event

    rec = Recorder(T0)
    rec.add(T0 + 1, "enactor-c", "crash", "crashed (RollbackTargetMissing)")
    rec.add(T0 + 30, "enactor-c", "backoff", "woke from a lock backoff")
    restart = Event(T0 + 26, "enactor-c", "restart", "restarted by its supervisor")
    tr = Translator(rec, lambda: Observation(events=(restart,)))
    assert [m["lane"] for m in tr.pull()] == ["CRASHED", "STARTING", "BACKING OFF"]


# --- `enactor run --web`: one enactor's own lane ----------------------------------------


def test_a_live_enactors_actions_become_its_lane() -> None:
    """The real machine in the in-process Sim, seen through `run_events` as `run --web` sees
    it: the lock, the flip (endpoint and plan), the cleaner's deletions, the release."""
    from enactor import machine as m
    from enactor.checker.testing import DUAL, make_sim, plan_n
    from enactor.drills.webfeed import run_events

    sim = make_sim(frozenset({m.Defect.CLEANER_BY_AGE}), names=("enactor-a",))
    seen: list[dict[str, object]] = []
    sim.observers.append(lambda t, actor, action, result, _log: seen.extend(
        event_message(e, T0) for e in run_events(actor, t, action, result, None)))
    for n in (2, 3, 4):
        sim.plans.add(plan_n(n))
        sim.run_for(30)
    kinds = [msg["kind"] for msg in seen]
    assert {"lock", "flip", "release", "clean"} <= set(kinds)
    flips = [(msg["endpoint"], msg["plan_label"]) for msg in seen if msg["kind"] == "flip"]
    assert (DUAL.rstrip("."), "plan-0004") in flips and (REGIONAL, "plan-0004") in flips
    cleans = [msg for msg in seen if msg["kind"] == "clean"]
    assert any(c["plan"] == 1 and "plan-0001" in str(c["text"]) for c in cleans), cleans


@pytest.mark.realtime
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_enactor_run_web_serves_its_lane(tmp_path: Path) -> None:
    """Real authd and one real `enactor run --web`: its page shows its flips to plan-0002 of
    both endpoints, live; SIGTERM stops it with one line and exit 0."""
    dns, api, web = free_port(), free_port(), free_port()
    authd = subprocess.Popen(
        [sys.executable, "-m", "authd", "serve", "--store", ":memory:", "--zones", str(REPO / "zones"),
         "--listen", f"127.0.0.1:{dns}", "--control", f"127.0.0.1:{api}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path, start_new_session=True)
    run = None
    try:
        subprocess.run([sys.executable, "-m", "enactor", "planner", "--plans", "plans", "--stepped"],
                       input="go\ngo\n", capture_output=True, text=True, check=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        run = subprocess.Popen(
            [sys.executable, "-m", "enactor", "run", "--name", "enactor-a", "--plans", "plans",
             "--api", f"http://127.0.0.1:{api}", "--web", f"127.0.0.1:{web}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 60
        flips: set[tuple[str, str]] = set()
        while time.monotonic() < deadline and len(flips) < 2:
            try:
                msgs = httpx.get(f"http://127.0.0.1:{web}/messages.json", timeout=5).json()
            except httpx.HTTPError:
                msgs = []  # not listening yet: authd may still be seeding
            flips = {(m["endpoint"], m["plan_label"]) for m in msgs if m.get("kind") == "flip"}
            time.sleep(0.2)  # polling the page's state under a deadline
        assert flips == {("dynamodb.us-east-1.api.aws", "plan-0002"), (REGIONAL, "plan-0002")}, msgs
        assert msgs[0]["type"] == "hello" and msgs[0]["actors"] == ["enactor-a"]
        os.killpg(run.pid, signal.SIGTERM)
        _, err = run.communicate(timeout=30)
        assert run.returncode == 0 and "Traceback" not in err, err
        assert err.count("stopping on SIGTERM") == 1 and "live page: http://127.0.0.1:" in err
    finally:
        for p in (run, authd):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


# --- stopping and failing cleanly -----------------------------------------------------------


def test_a_stop_between_steps_unwinds_the_run() -> None:
    import threading

    from enactor.drills.web import LiveRun, RunStopped

    stop = threading.Event()
    sent: list[list[dict[str, object]]] = []
    live = LiveRun(sent.append, pace=0.0, stop=stop)
    live.step(0, {})  # not attached yet: nothing to say, no error
    stop.set()
    with pytest.raises(RunStopped):
        live.step(1, {})
    assert sent == []


def descendants(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for k in kids:
            out |= {k} | descendants(k)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.realtime
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigterm_mid_run_stops_every_process_with_one_line(tmp_path: Path) -> None:
    """SIGTERM while real processes run under --web: one line, exit 0, and authd, the
    planner and the enactors are gone (run_outage's own cleanup ran)."""
    if subprocess.run(["which", "dig"], capture_output=True).returncode:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    proc, url = start_outage("--pace", "0.3", png=tmp_path / "t.png")
    try:
        deadline = time.monotonic() + 90
        kids: set[int] = set()
        while time.monotonic() < deadline and len(kids) < 5:  # authd, planner, three enactors
            kids = descendants(proc.pid)
            time.sleep(0.2)  # polling /proc under a deadline
        assert len(kids) >= 5, kids
        msgs = httpx.get(url + "messages.json", timeout=10).json()
        assert msgs[0]["type"] == "hello" and not any(m["type"] == "end" for m in msgs)
    finally:
        code, _, err = stop_outage(proc)
    assert code == 0 and "Traceback" not in err, err
    assert err.count("stopping on SIGTERM") == 1, err
    assert not [k for k in kids if alive(k)]


def test_web_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "enactor", "outage", "--inprocess", "--web",
                              f"127.0.0.1:{port}", "--png", str(tmp_path / "t.png")],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and f"cannot serve the live page on 127.0.0.1:{port}" in lines[0], res.stderr
        # `enactor run --web`: the same line, exit 2, not a crash (70) with a traceback
        res = subprocess.run([sys.executable, "-m", "enactor", "run", "--name", "enactor-a",
                              "--plans", str(tmp_path / "plans"), "--api", f"http://127.0.0.1:{free_port()}",
                              "--web", f"127.0.0.1:{port}"],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert res.stderr.strip().splitlines()[-1] == (
            f"enactor run: cannot serve the live page on 127.0.0.1:{port}: Address already in use")


@pytest.mark.realtime
async def test_run_page_shows_the_crash_while_it_lingers_then_the_crash_propagates() -> None:
    from authd.clean_exit import leaves
    from enactor import machine as m
    from enactor.drills.web import run_with_page

    port = free_port()
    crashed = trio.Event()
    caught: list[BaseException] = []

    async def enactor_loop(observe: object) -> None:
        observe(m.SubmitBatch("Z1", (), m.Purpose.LOCK), m.BatchAccepted(0.0), m.Status.WORKING)  # type: ignore[operator]
        crashed.set()
        raise RuntimeError("RollbackTargetMissing: plan-0002 has no records")

    async def run() -> None:
        try:
            await run_with_page("enactor-a", "127.0.0.1", port, 30.0, enactor_loop,
                                [(REGIONAL + ".", ("A",))])
        except BaseException as exc:  # noqa: BLE001 - the test looks at what came out
            caught.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await crashed.wait()
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(f"http://127.0.0.1:{port}/events")  # ends after `end`
        msgs = parse_sse(r.text)
        assert [m_.get("kind") or m_["type"] for m_ in msgs] == ["hello", "lock", "crash", "end"]
        assert "RollbackTargetMissing" in msgs[-1]["headline"]
        nursery.cancel_scope.cancel()  # as a signal would, cutting the linger short
    assert caught and any(isinstance(e, RuntimeError) for e in leaves(caught[0]))


@pytest.mark.realtime
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_fixed_design_never_shows_empty_on_the_feed(tmp_path: Path) -> None:
    """The same schedule on the fixed design, read as a late client would (the SSE stream
    from the start, ended by `end`): every answer has addresses, no lane crashes, and the
    stale flip never happens."""
    proc, url = start_outage("--inprocess", "--defects", "fixed", "--pace", "0", png=tmp_path / "t.png")
    try:
        with httpx.stream("GET", url + "events", timeout=60) as r:
            msgs = parse_sse(r.read().decode())
    finally:
        code, _, err = stop_outage(proc)
    assert code == 0, err
    assert msgs[0]["type"] == "hello" and msgs[-1]["type"] == "end"
    assert "never went empty" in msgs[-1]["headline"]
    answers = [m for m in msgs if m["type"] == "answer"]
    assert answers and not any(m["empty"] for m in answers)
    assert not [m for m in msgs if m.get("kind") == "crash" or m.get("backwards")]
    assert {m["label"] for m in msgs if m["type"] == "active"} >= {"plan-0001", "plan-0012"}


@pytest.mark.parametrize("flag", ["--pace", "--web-linger"])
def test_negative_seconds_are_a_one_line_flag_error(flag: str) -> None:
    res = subprocess.run([sys.executable, "-m", "enactor", "outage", "--inprocess", flag, "-1"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"argument {flag}: must be 0 or more seconds" in res.stderr


@pytest.mark.realtime
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_feed_has_a_column_per_node_and_the_late_node_goes_empty_last(pg_cluster, tmp_path: Path) -> None:
    """Three authd nodes on one PostgreSQL database, the last 4 s late (`--nodes 3`): the
    feed has one answer column per node, and node-3's EMPTY comes after node-1's."""
    import threading

    from enactor.checker.schedule import schedule_2025
    from enactor.drills.outage import run_outage
    from enactor.drills.web import LiveRun
    from tests.conftest import require_tool

    require_tool("dig")
    msgs: list[dict[str, object]] = []
    live = LiveRun(msgs.extend, pace=0.0, stop=threading.Event())
    run_outage("2025", schedule_2025(4), store=pg_cluster.url(), nodes=3, node_delay=4.0,
               png=str(tmp_path / "nodes.png"), live=live)
    assert msgs[0]["type"] == "hello" and msgs[0]["nodes"] == ["node-1", "node-2", "node-3"]
    key = "dynamodb.us-east-1.api.aws A"
    answers = [(i, m["node"], m["empty"]) for i, m in enumerate(msgs)
               if m["type"] == "answer" and m["key"] == key]
    first_empty = {node: next((i for i, n, e in answers if n == node and e), None)
                   for node in ("node-1", "node-2", "node-3")}
    assert None not in first_empty.values(), answers
    assert first_empty["node-1"] < first_empty["node-3"]
    # when node-1 went empty, the page still showed addresses for the late node
    before = [e for i, n, e in answers if n == "node-3" and i < first_empty["node-1"]]
    assert before and before[-1] is False, answers
    assert msgs[-1]["type"] == "end"
