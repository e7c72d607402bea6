"""The live web page of an outage run (`enactor outage --web HOST:PORT`, `enactor run --web`).

Thin trio shell around `enactor.drills.webfeed` (the pure feed): a small ASGI app served by
hypercorn's trio worker, as `authd.control.app` is, with three routes:

- `GET /`: the page, one HTML file with inline CSS and JS (`enactor/static/outage.html`);
- `GET /events`: server-sent events (`text/event-stream`): every message since the client's
  `Last-Event-ID` (none: the whole run, so a late page load replays it), then each new one
  as it is published; the stream ends after the `end` message;
- `GET /messages.json`: every message so far, one JSON list (for curl and scripts); asked
  before the run's first message, it waits for it (up to 10 s).

The outage driver is synchronous (subprocess pipes, `dig`): `run_outage` runs in a worker
thread (`trio.to_thread.run_sync`) while the web server runs in the trio thread of the same
process. The worker hands each batch of messages to the trio thread with
`trio.from_thread.run_sync`, so the `Hub` is only ever touched by the trio thread and needs no
lock. A stop (SIGINT/SIGTERM) sets a `threading.Event` the worker checks between schedule
steps; it then unwinds through `run_outage`'s `finally`, which stops every process it started.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from authd.control.asgi import Receive, Scope, Send, acknowledge_lifespan
from enactor.drills.webfeed import (
    Answer,
    Feed,
    Observation,
    Translator,
    answers_from_digs,
    end_message,
    last_event_id,
    sse_frame,
)

PAGE = Path(__file__).resolve().parent / "static" / "outage.html"
RUN_KEEP = 5000  # messages `enactor run --web` keeps for late pages (it runs for days)
KEEPALIVE = 15.0  # seconds between SSE comments, so proxies and browsers keep the stream open


class Hub:
    """The feed plus a wake-up for every stream waiting on it (trio thread only)."""

    def __init__(self, limit: int | None = None) -> None:
        self.feed = Feed(limit)
        self._changed = trio.Event()

    def publish(self, msgs: list[dict[str, Any]]) -> None:
        for msg in msgs:
            self.feed.publish(msg)
        if msgs:
            self._changed.set()
            self._changed = trio.Event()

    async def wait(self, seen: int, timeout: float) -> bool:
        """Until there is a message after `seen` (True) or `timeout` passes (False)."""
        if self.feed.last_id > seen:
            return True
        with trio.move_on_after(timeout):
            await self._changed.wait()
            return True
        return False


class LiveApp:
    """The ASGI app (HTTP only; lifespan events are acknowledged)."""

    def __init__(self, hub: Hub, page: Path = PAGE, keepalive: float = KEEPALIVE):
        self.hub = hub
        self.page = page
        self.keepalive = keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await acknowledge_lifespan(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if method not in ("GET", "HEAD"):
            await _plain(send, 405, "only GET\n", [(b"allow", b"GET, HEAD")])
        elif path in ("/", "/index.html"):
            await _plain(send, 200, self.page.read_text(), [], "text/html; charset=utf-8")
        elif path == "/messages.json":
            await self.hub.wait(0, 10.0)  # a run that has not said hello yet is about to
            await _plain(send, 200, json.dumps(self.hub.feed.messages), [], "application/json")
        elif path == "/events":
            headers = dict(scope.get("headers") or [])
            seen = last_event_id(headers.get(b"last-event-id", b"").decode("latin-1"))
            await self._stream(seen, receive, send)
        else:
            await _plain(send, 404, f"no page at {path}; the live page is /\n", [])

    async def _stream(self, seen: int, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"),
                                (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})
        async with trio.open_nursery() as nursery:

            async def gone() -> None:  # the browser closed the page: stop streaming to it
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(gone)
            # a reconnecting client is told how long to wait (HTML SSE 9.2.6, `retry`)
            await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
            while True:
                for msg in self.hub.feed.since(seen):
                    await send({"type": "http.response.body", "body": sse_frame(msg), "more_body": True})
                    seen = msg["id"]
                if self.hub.feed.ended:
                    break
                if not await self.hub.wait(seen, self.keepalive):
                    await send({"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            nursery.cancel_scope.cancel()


async def _plain(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]],
                 ctype: str = "text/plain; charset=utf-8") -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype.encode()), (b"cache-control", b"no-cache"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def serve_web(app: LiveApp, host: str, port: int, *,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the live page with hypercorn's trio worker; `task_status.started(url)` once
    listening. Never returns (until cancelled)."""
    import logging

    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("enactor.web.http")
    config.graceful_timeout = 0.5  # open SSE streams never finish on their own

    class Started:
        def started(self, binds: list[str] | None = None) -> None:
            task_status.started(f"http://{host if ':' not in host else f'[{host}]'}:{port}/")

    await serve(app, config, task_status=Started())  # type: ignore[arg-type]


async def start_web(nursery: trio.Nursery, hub: Hub, host: str, port: int) -> str:
    """Start `serve_web` in `nursery`; its URL. A port in use (or any bind error) is one line
    naming the address (`authd.clean_exit.Fatal`), not hypercorn's exception group."""
    from authd.clean_exit import Fatal, leaves, one_line

    try:
        return str(await nursery.start(serve_web, LiveApp(hub), host, port))
    except (OSError, BaseExceptionGroup) as exc:
        errors = list(leaves(exc))
        if not errors or not all(isinstance(e, OSError) for e in errors):
            raise
        raise Fatal(f"cannot serve the live page on {host}:{port}: {one_line(errors[0])}") from None


# --- the hook run_outage calls (worker thread) -------------------------------------------


class RunStopped(Exception):
    """SIGINT/SIGTERM arrived while the schedule ran: unwind it (processes get stopped)."""


class LiveRun:
    """`run_outage(live=...)`: publishes what each schedule step recorded, and paces the run.

    Called in the worker thread. `publish` hands messages to the trio thread (None: nothing
    is served, pacing only); `stop` is set by the signal handler.
    """

    def __init__(self, publish: Callable[[list[dict[str, Any]]], None] | None, pace: float,
                 stop: threading.Event):
        self.publish = publish
        self.pace = pace
        self.stop = stop
        self.tr: Translator | None = None

    def attach(self, drv: Any, title: str, actors: list[str]) -> None:
        """Before the first step: the driver (in-process `SimDriver` or `ProcessDriver`)."""
        from enactor.checker.testing import WATCH

        observe, nodes = observer_for(drv)
        endpoints: dict[str, tuple[str, ...]] = {}
        for _, name, rtype in WATCH:
            endpoints[name] = (*endpoints.get(name, ()), rtype)
        self.tr = Translator(drv.rec, observe, node=nodes[0])
        self._send([self.tr.hello(title, actors, list(endpoints.items()), nodes, pace=self.pace)])

    def step(self, i: int, _step: dict[str, Any]) -> None:
        """Before schedule step i: publish what the steps before it did, then wait `pace`."""
        if self.stop.is_set():
            raise RunStopped("stopped")
        if self.tr is not None:
            self._send(self.tr.pull())
        if self.pace > 0 and self.stop.wait(self.pace):  # pacing for a human, not synchronisation
            raise RunStopped("stopped")

    def end(self, summary: dict[str, Any], headline: str, error: str | None = None) -> None:
        if self.tr is not None:
            self._send([*self.tr.pull(), end_message(summary, headline, error)])

    def _send(self, msgs: list[dict[str, Any]]) -> None:
        if self.publish is not None and msgs:
            self.publish(msgs)


def observer_for(drv: Any) -> tuple[Callable[[], Observation], list[str]]:
    """How to see DNS after a step: in-process, authd's serving index over the store (every
    address a weighted pick could give); with processes, the dig samples the driver took of
    every node, and the active plans from the change API (the source of truth)."""
    from enactor.checker.sim import DnsView, SimDriver, active_plan
    from enactor.checker.testing import WATCH

    if isinstance(drv, SimDriver):
        from enactor.drills.timeline import Event

        view = DnsView(drv.sim.api)
        node = "authd (in-process index)"
        # the Sim restarts a crashed enactor itself and only logs it: its lane shows it
        lifecycle: list[Event] = []
        chained = drv.sim.on_log

        def on_log(t: float, line: str) -> None:
            if chained is not None:
                chained(t, line)
            who, _, what = line.partition(" ")
            if what == "(re)started":
                lifecycle.append(Event(t, who, "restart", "restarted by its supervisor"))
            elif what == "KILLED":
                lifecycle.append(Event(t, who, "kill", "killed"))

        drv.sim.on_log = on_log

        def observe_index() -> Observation:
            api = drv.sim.api
            active = {name: active_plan(api, api.find_zone_by_name(zone).id, name)
                      for zone, name in dict.fromkeys((z, n) for z, n, _ in WATCH)}
            answers = tuple(Answer(node, name, rtype, "NOERROR", tuple(sorted(view.answers(name, rtype))), "index")
                            for _, name, rtype in WATCH)
            events = tuple(lifecycle)
            lifecycle.clear()
            return Observation(active, answers, events)

        return observe_index, [node]
    seen = [0]
    nodes = ["node-1", *(n for n, _, _ in drv.c.extra)]

    def observe_digs() -> Observation:
        from enactor.plan import root_plan

        new = drv.digs[seen[0]:]
        seen[0] = len(drv.digs)
        active: dict[str, int | None] = {}
        if new:  # only after a sample: the API is asked as often as dig is
            for zone, name in dict.fromkeys((z, n) for z, n, _ in WATCH):
                sets = drv.api.get_record_sets(drv.api.find_zone_by_name(zone).id, name, "A")
                active[name] = root_plan(sets[0].alias.dns_name, name) if sets and sets[0].alias else None
        return Observation(active, tuple(answers_from_digs(new)))

    return observe_digs, nodes


# --- `enactor outage --web`: the trio main ------------------------------------------------


def say(text: str) -> None:
    import sys

    print(f"enactor outage: {text}", file=sys.stderr, flush=True)


def serve_outage(run: Callable[[LiveRun], Any], host: str, port: int, pace: float,
                 linger: float | None, on_result: Callable[[Any], None]) -> int:
    """Serve the page, run `run(live)` in a worker thread, hand its result to `on_result`
    (the trio thread prints the report), then keep the page up `linger` seconds (None: until
    SIGINT/SIGTERM). A signal ends it all with one line and exit status 0."""
    from authd.clean_exit import until_signal

    stop = threading.Event()
    hub = Hub()

    def on_stop(name: str) -> None:
        stop.set()
        say(f"stopping on {name}")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            url = await start_web(nursery, hub, host, port)
            say(f"live page: {url}")
            token = trio.lowlevel.current_trio_token()

            def publish(msgs: list[dict[str, Any]]) -> None:
                trio.from_thread.run_sync(hub.publish, msgs, trio_token=token)

            live = LiveRun(publish, pace, stop)
            try:
                result = await trio.to_thread.run_sync(run, live)
            except RunStopped:
                nursery.cancel_scope.cancel()
                return
            on_result(result)
            if linger is None:
                say(f"the run is over; the page stays up at {url} until Ctrl-C")
                await trio.sleep_forever()
            say(f"the run is over; the page stays up at {url} for {linger:g} s")
            await trio.sleep(linger)
            nursery.cancel_scope.cancel()

    trio.run(functools.partial(until_signal, on_stop=on_stop), "enactor outage", main)
    return 0


# --- `enactor run --web`: one enactor's own lane, in its own trio loop -------------------


async def run_with_page(name: str, host: str, port: int, linger: float | None,
                        run: Callable[[Callable[..., None]], Awaitable[None]],
                        endpoints: list[tuple[str, tuple[str, ...]]],
                        chained: Callable[..., None] | None = None) -> None:
    """Serve the page while `run(observe)` (the real-time enactor loop) runs; every action it
    performs becomes a lane event. A crash is shown (and kept up `linger` seconds) before it
    propagates, so the supervisor still sees the crash exit status."""
    import sys
    import time

    from enactor.drills.timeline import Recorder
    from enactor.drills.webfeed import run_events
    from enactor.runner import stamp

    hub = Hub(limit=RUN_KEEP)
    rec = Recorder(time.time())
    tr = Translator(rec)
    async with trio.open_nursery() as nursery:
        url = await start_web(nursery, hub, host, port)
        print(f"{stamp(time.time())} {name} live page: {url}", file=sys.stderr, flush=True)
        hub.publish([tr.hello(f"enactor run --name {name}", [name], endpoints, [])])

        def observe(action: Any, result: Any, status: Any) -> None:
            if chained is not None:
                chained(action, result, status)
            rec.events.extend(run_events(name, time.time(), action, result, status))
            hub.publish(tr.pull())  # the trio thread: run_enactor calls us between awaits

        try:
            await run(observe)
        except Exception as exc:
            rec.add(time.time(), name, "crash", f"crashed ({type(exc).__name__})")
            hub.publish([*tr.pull(), end_message({}, f"{name} crashed: {type(exc).__name__}: {exc}")])
            try:
                if linger:
                    await trio.sleep(linger)
            finally:
                raise exc  # the crash (exit 70 for the supervisor), even if a signal cut the linger short
        nursery.cancel_scope.cancel()


def endpoints_of(plans: Any) -> list[tuple[str, tuple[str, ...]]]:
    """The endpoints (name, record types) of the newest plan; the watched names if none yet."""
    latest = plans.latest()
    if latest is not None:
        return [(e.name, e.rtypes) for e in latest.endpoints]
    from enactor.checker.testing import WATCH

    out: dict[str, tuple[str, ...]] = {}
    for _, name, rtype in WATCH:
        out[name] = (*out.get(name, ()), rtype)
    return list(out.items())
