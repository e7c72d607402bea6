"""Lanes benchmark: an emergency weight-to-zero (drain az1) on each lane with the slow lane busy,
and the time the heartbeat takes to find a broken fast path, against real processes.

`authd serve`, three `enactor run` and `enactor lanes run` on loopback (`enactor.lanes.lanerig`).
While a steady stream of slow changes (one a second, alternating endpoints) keeps the slow lane
busy, az1 is drained through the fast lane (several rounds) and then through the slow lane,
each measured from the submission until real `dig` shows no az1 address in 12 answers in a row
for each endpoint (the time of the first of them). Then the fast path is broken two ways, at
an arbitrary moment: a stuck holder takes the dual-stack endpoint's lock (the 2025 pattern),
and the enactors are stopped; each is measured until `lanes_fast_path_up` reads 0. Each
round is undone (az1 restored, the lock released, the enactors restarted) before the next.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench._report import write_section
from enactor.lanes.lanerig import DUAL, ENACTORS, LEGACY, Rig, drain, restore_az1

SECTION = "## Lanes: an emergency AZ drain on each lane, and the heartbeat finding a broken fast path"


class SlowStream:
    """One slow change a second, alternating endpoints, until stopped."""

    def __init__(self, rig: Rig, every: float = 1.0):
        self.rig, self.every = rig, every
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            ep = (DUAL, LEGACY)[self.sent % 2]
            self.rig.submit("slow", [{"selector": "az2-lb1", "weight": 100 + self.sent % 50,
                                      "endpoint": ep}], f"everyday {self.sent}")
            self.sent += 1
            self.stop.wait(self.every)

    def __enter__(self) -> SlowStream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _restore(rig: Rig) -> None:
    rig.submit("fast", restore_az1(), "undo the drain")
    rig.wait_for(rig.az1_back, 60, "az1 back", every=0.2)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench lanes", description=__doc__.split("\n\n")[0])
    ap.add_argument("--fast-rounds", type=int, default=3, help="fast-lane drains (default 3)")
    ap.add_argument("--break-rounds", type=int, default=2, help="stuck-lock breaks (default 2)")
    ap.add_argument("--period", type=float, default=20.0,
                    help="the lanes' --period (default 20: a heartbeat every 10 s, each allowed 10 s, "
                         "above the enactors' own time for a whole plan on a busy 2-core machine)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    lanes_args = ["--period", str(args.period), "--batch", "1", "--window", "10", "--gather", "2",
                  "--bake", "5"]
    rng = random.Random(16)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-lanes-") as tmp:
        rig = Rig(Path(tmp), lanes_args=lanes_args)
        try:
            rig.start()
            rig.wait_for(lambda: (rig.metric("lanes_heartbeat_delivered_timestamp_seconds") or 0) > 0,
                         60, "the first heartbeat")
            fast: list[float] = []
            slow: list[float] = []
            fast_api: list[float] = []
            slow_api: list[float] = []
            queued: list[int] = []
            with SlowStream(rig) as stream:
                time.sleep(5)  # let the backlog build
                for i in range(args.fast_rounds):
                    queued.append(int(rig.status().get("queued") or 0))
                    t = time.monotonic()
                    sub = rig.submit("fast", drain("az1"), "emergency")
                    fast.append(rig.seconds_until_az1_gone(t, 60))
                    fast_api.append(rig.delivery_seconds(sub))
                    print(f"fast drain {i + 1}: {fast[-1]:.2f} s to dig, {fast_api[-1]:.1f} s to the "
                          f"change API (slow backlog {queued[-1]})", flush=True)
                    _restore(rig)
                queued.append(int(rig.status().get("queued") or 0))
                t = time.monotonic()
                sub = rig.submit("slow", drain("az1"), "everyday drain")
                slow.append(rig.seconds_until_az1_gone(t, 180))
                slow_api.append(rig.delivery_seconds(sub))
                print(f"slow drain: {slow[-1]:.2f} s to dig, {slow_api[-1]:.1f} s to the change API "
                      f"(slow backlog {queued[-1]})", flush=True)
                _restore(rig)
                sent = stream.sent
            lock_found: list[float] = []
            for i in range(args.break_rounds):
                rig.wait_for(lambda: rig.metric("lanes_fast_path_up") == 1, 60, "a working fast path")
                time.sleep(rng.uniform(0, args.period / 2))  # break it at an arbitrary moment
                value = rig.hold_lock(DUAL)
                t = time.monotonic()
                lock_found.append(rig.wait_for(lambda: rig.metric("lanes_fast_path_up") == 0,
                                               3 * args.period, "the alarm") - t)
                print(f"stuck lock {i + 1}: found in {lock_found[-1]:.2f} s", flush=True)
                rig.release_lock(value, DUAL)
                rig.wait_for(lambda: rig.metric("lanes_fast_path_up") == 1, 60, "restored")
            rig.wait_for(lambda: rig.metric("lanes_fast_path_up") == 1, 60, "a working fast path")
            time.sleep(rng.uniform(0, args.period / 2))
            for n in ENACTORS:
                rig.stop(n)
            t = time.monotonic()
            stopped_found = rig.wait_for(lambda: rig.metric("lanes_fast_path_up") == 0,
                                         3 * args.period, "the alarm") - t
            print(f"enactors stopped: found in {stopped_found:.2f} s", flush=True)
            for n in ENACTORS:
                rig.start_enactor(n)
            rig.wait_for(lambda: rig.metric("lanes_fast_path_up") == 1, 60, "restored")
            hb_sum = rig.metric('lanes_delivery_seconds_sum{kind="heartbeat",lane="fast"}')
            hb_n = rig.metric('lanes_delivery_seconds_count{kind="heartbeat",lane="fast"}')
            alarms = rig.log("lanes").count("FAST PATH BROKEN")
            halts = rig.log("lanes").count("SLOW LANE HALTED")
        finally:
            rig.stop()
    hb_mean = (hb_sum or 0) / hb_n if hb_n else float("nan")
    load1 = os.getloadavg()[0]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    cmd = "python -m bench lanes" + (f" --fast-rounds {args.fast_rounds}" if args.fast_rounds != 3 else "") + \
        (f" --break-rounds {args.break_rounds}" if args.break_rounds != 2 else "") + \
        (f" --period {args.period:g}" if args.period != 20.0 else "")

    def span(xs: list[float]) -> str:
        return f"{statistics.median(xs):.2f} s" + (f" ({min(xs):.2f}-{max(xs):.2f})" if len(xs) > 1 else "")

    body = "\n".join([
        SECTION, "",
        f"`{cmd}` on {machine}, shared with other work. Real processes on loopback: `authd serve` "
        "(SQLite store), three `enactor run --poll 1 --lock-ttl 10` and `enactor lanes run "
        f"{' '.join(lanes_args)}`; one target (today's single layout). A steady stream of slow "
        f"changes (one a second, alternating the two endpoints; {sent} in all) keeps the slow lane "
        "busy. A drain is timed from its submission until real `dig` shows no az1 address in "
        "12 answers in a row for each endpoint (the first of them); a broken fast path from the "
        "break until `lanes_fast_path_up` reads 0.", "",
        "| measurement | lane | result | slow backlog at submission |",
        "|---|---|---|---|",
        f"| drain az1 (weight 0), until dig shows it gone | fast | {span(fast)} over {len(fast)} rounds | "
        f"{', '.join(map(str, queued[:-1]))} changes |",
        f"| the same, until every alias points at it (the controller's log) | fast | {span(fast_api)} |  |",
        f"| drain az1 (weight 0), until dig shows it gone | slow | {span(slow)} | {queued[-1]} changes |",
        f"| the same, until every alias points at it (the controller's log) | slow | {span(slow_api)} |  |",
        f"| heartbeat delivered, verified over DNS | fast | {hb_mean:.2f} s mean over {int(hb_n or 0)} |  |",
        f"| stuck lock holder on `_lock.{DUAL}` found | heartbeat | {span(lock_found)} over "
        f"{len(lock_found)} breaks (bound: one period, {args.period:g} s) |  |",
        f"| all three enactors stopped, found | heartbeat | {stopped_found:.2f} s (bound {args.period:g} s) |  |",
        "",
        "The fast lane waits for nothing but the enactors: its plan is written at once, and they "
        "take it up at their next poll (1 s) once they have finished the plan in flight (every "
        "endpoint locked, built, flipped and cleaned; the heartbeat and the slow batches keep them "
        "busy), which is most of its time and all of its spread. The slow lane waits its turn: one "
        "batch per 10 s window, oldest first, so the drain queues behind the backlog. "
        f"FAST PATH BROKEN lines: {alarms}, for {args.break_rounds + 1} breaks (any more are false "
        f"alarms: a heartbeat slower than period/2); slow-lane halts: {halts}. Load average "
        f"(1 min) {load0:.1f} at the start, {load1:.1f} at the end.",
        "",
    ])
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    ok = all(x <= args.period for x in [*lock_found, stopped_found])
    return 0 if ok else 1
