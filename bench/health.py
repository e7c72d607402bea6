"""The health-check prober's cost: CPU per probe and in all, for N checks on the fast
(10 s) interval against loopback listeners, TCP and HTTP.

Runs `authd.health.prober.Prober` over a MemoryStore of N checks for T seconds per type, against one
loopback listener (accept-and-close for TCP, a 200 response for HTTP), and reports probes
made, CPU seconds (this process: prober and listener together), CPU per probe, share of one
core and max RSS. Route 53's default limit is 200 checks per account. Rewrites the
"authd: health-check prober" section of BENCHMARKS.md (`--no-write` to only print).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import trio

from authd.control import api_health as A
from authd.health import healthcheck as H
from authd.health.prober import Prober
from authd.store.memstore import MemoryStore

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## authd: health-check prober"


async def _run(htype: str, n: int, seconds: float) -> dict[str, float]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    store = MemoryStore()
    for i in range(n):
        cfg = H.parse_config({"Type": htype, "IPAddress": "127.0.0.1", "Port": str(port), "RequestInterval": "10"})
        A.create_step(store, f"bench-{i}", cfg, limit=n)
    accepted = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        try:
            if htype == "HTTP":
                await stream.receive_some(4096)
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except trio.BrokenResourceError:
            pass
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handler, listeners)
        prober = Prober(store)
        cpu0, t0 = time.process_time(), time.monotonic()
        await nursery.start(prober.run)
        await trio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
        healthy = sum(1 for c in prober.checks.values() if c.healthy)
        nursery.cancel_scope.cancel()
    return {"checks": n, "seconds": wall, "probes": accepted, "cpu": cpu, "healthy": healthy,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench health", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checks", type=int, default=200, help="health checks per type (default 200)")
    ap.add_argument("--seconds", type=float, default=25.0, help="run time per type (default 25)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    rows = []
    for htype in ("TCP", "HTTP"):
        r = trio.run(_run, htype, args.checks, args.seconds)
        line = (f"| {htype} | {r['checks']} | {r['seconds']:.0f} s | {r['probes']} | {r['cpu']:.2f} s | "
                f"{1000 * r['cpu'] / max(r['probes'], 1):.2f} ms | {100 * r['cpu'] / r['seconds']:.1f} % | "
                f"{r['rss_mb']:.0f} MB |")
        print(line, flush=True)
        rows.append(line)
        assert r["healthy"] == r["checks"], f"{htype}: only {r['healthy']} of {r['checks']} healthy"
    text = "\n".join([
        SECTION, "",
        f"`python -m bench health --checks {args.checks} --seconds {args.seconds:g}`: the prober alone "
        "(MemoryStore, no DNS), every check on the 10 s interval against one loopback listener in the "
        "same process; CPU is the whole process's (prober and listener).", "",
        "| type | checks | run | probes | CPU | CPU per probe | one core | max RSS |",
        "|---|---|---|---|---|---|---|---|",
        *rows, "",
    ])
    if not args.no_write:
        path = ROOT / "BENCHMARKS.md"
        doc = path.read_text()
        if SECTION in doc:
            start = doc.index(SECTION)
            nxt = doc.find("\n## ", start + len(SECTION))
            doc = doc[:start] + text + ("\n" + doc[nxt + 1:] if nxt != -1 else "")
        else:
            doc = doc.rstrip("\n") + "\n\n" + text
        path.write_text(doc)
    return 0
