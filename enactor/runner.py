"""`enactor run`: one enactor process looping the pure machine against the change API.

Trio shell: it only moves bytes and time. Each action goes through `client.perform` in a
worker thread (botocore is blocking); `Sleep` is `trio.sleep`; the time fed back is the wall
clock. One log line per decision, on stderr, prefixed with the UTC time.

A crash is a crash: under the `rollback-crash-on-missing` defect the machine raises, the
traceback goes to the log and the process exits with status 70, as the 2025 enactors did.
A supervisor (or `enactor outage`) may restart it; it will crash again.

`--stepped` hands the schedule to a controller (`enactor outage`, the checker's replays):

    stdout  {"event": "next", "actor": "enactor-a", "action": {...}, "log": [...], "status": ...}
    stdin   {"go": true, "now": 1760940012.5}      (or just `go`: use the wall clock)
    stdout  {"event": "result", "actor": "enactor-a", "result": {...}}
    ...     then the next "next" line; on a crash {"event": "crash", "error": ..., "traceback": ...}
            and exit status 70; on end of input, exit status 0.

In stepped mode a `Sleep` is not slept: the controller decides when the actor runs again,
and the `now` it sends is the actor's clock (virtual time, so every replay is identical).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import trio

from enactor import machine as m
from enactor.client import (
    ApiUnavailable,
    ChangeApi,
    PlanSource,
    action_to_json,
    perform,
    result_to_json,
)

CRASH_EXIT = 70


def stamp(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusFile:
    """`<dir>/<name>.json`: what `enactor status` shows for this enactor (atomic rewrites)."""

    def __init__(self, directory: str | None, cfg: m.Config):
        self.path = Path(directory) / f"{cfg.name}.json" if directory else None
        self.cfg = cfg
        self.last: dict[str, Any] = {}

    def write(self, st: m.State, now: float, crashed: str | None = None) -> None:
        if self.path is None:
            return
        doc = {
            "name": self.cfg.name,
            "defects": m.defects_text(self.cfg.defects),
            "status": "CRASHED" if crashed else st.status.value,
            "phase": st.phase.value,
            "plan": st.plan.number if st.plan else None,
            "endpoint": st.plan.endpoints[st.ep].name if st.plan and st.ep < len(st.plan.endpoints) else None,
            "lock": st.lock,
            "installed": dict(st.installed),
            "last_error": crashed or st.last_error,
            "updated": now,
            "pid": os.getpid(),
        }
        if doc == self.last:
            return
        self.last = doc
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(doc) + "\n")
        tmp.replace(self.path)


def _log(lines: tuple[str, ...] | list[str], now: float, out: IO[str]) -> None:
    for line in lines:
        print(f"{stamp(now)} {line}", file=out, flush=True)


async def run_enactor(cfg: m.Config, api: ChangeApi, plans: PlanSource, *,
                      status_dir: str | None = None, log: IO[str] = sys.stderr,
                      max_steps: int | None = None,
                      observe: Callable[[m.ActionT, m.ResultT | None, m.Status], None] | None = None,
                      ) -> None:
    """Loop the machine in real time. Returns only after `max_steps` (tests); raises what the
    machine raises (the 2025 crash). `observe(action, result, status)` sees every performed
    action (enactor.metrics)."""
    status = StatusFile(status_dir, cfg)
    st = m.initial_state()
    result: m.ResultT | None = None
    steps = 0
    while max_steps is None or steps < max_steps:
        steps += 1
        try:
            out = m.step(cfg, st, result)
        except Exception:
            status.write(st, time.time(), crashed=traceback.format_exc().strip().splitlines()[-1])
            raise
        st = out.state
        _log(out.log, st.now or time.time(), log)
        status.write(st, time.time())
        action = out.action
        if isinstance(action, m.Sleep):
            await trio.sleep(action.seconds)
            result = m.Slept(time.time())
            if observe is not None:
                observe(action, None, st.status)
            continue
        while True:
            try:
                result = await trio.to_thread.run_sync(perform, api, plans, action, time.time)
                if observe is not None:
                    observe(action, result, st.status)
                break
            except ApiUnavailable as exc:
                # Nothing decided: retry the same action. A batch that did land will fail its
                # lock preamble on the retry and the machine re-reads; steps are idempotent.
                _log([f"{cfg.name} change API unavailable ({exc}); retrying in 1s"], time.time(), log)
                await trio.sleep(1.0)


def run_stepped(cfg: m.Config, api: ChangeApi, plans: PlanSource, *, inp: IO[str], out: IO[str],
                log: IO[str] = sys.stderr, status_dir: str | None = None) -> int:
    """One action per `go` line from the controller; events as JSON lines. Returns the exit code."""
    status = StatusFile(status_dir, cfg)
    st = m.initial_state()
    result: m.ResultT | None = None

    def emit(doc: dict[str, Any]) -> None:
        out.write(json.dumps(doc) + "\n")
        out.flush()

    while True:
        try:
            step = m.step(cfg, st, result)
        except Exception as exc:
            tb = traceback.format_exc()
            log.write(tb)
            log.flush()
            status.write(st, st.now, crashed=f"{type(exc).__name__}: {exc}")
            emit({"event": "crash", "actor": cfg.name, "error": f"{type(exc).__name__}: {exc}", "traceback": tb})
            return CRASH_EXIT
        st = step.state
        _log(step.log, st.now or time.time(), log)
        status.write(st, st.now)
        emit({"event": "next", "actor": cfg.name, "action": action_to_json(step.action),
              "log": list(step.log), "status": st.status.value, "phase": st.phase.value,
              "last_error": st.last_error})
        line = inp.readline()
        if not line:
            return 0
        line = line.strip()
        now_given: float | None = None
        if line.startswith("{"):
            cmd = json.loads(line)
            if cmd.get("stop"):
                return 0
            now_given = cmd.get("now")
        clock = (lambda t=float(now_given): t) if now_given is not None else time.time
        action = step.action
        if isinstance(action, m.Sleep):
            result = m.Slept(clock())
        else:
            while True:
                try:
                    result = perform(api, plans, action, clock)
                    break
                except ApiUnavailable as exc:
                    _log([f"{cfg.name} change API unavailable ({exc}); retrying in 1s"], time.time(), log)
                    time.sleep(1.0)
        emit({"event": "result", "actor": cfg.name, "result": result_to_json(result)})
