"""`python -m bench resolver`: the caching resolver against Unbound, measured in the same run.

Three measurements, all on loopback with authd as the authority:
1. Cache hits: dnsperf against our resolver and against Unbound (one thread each), ratio.
2. Hedging: tail latency of cache misses when the first upstream is slow and lossy, with
   `--hedge-after` off and on (a small UDP relay in this process makes the bad upstream).
3. Outage recovery: the client-observed window of the outage-recovery experiment, ours vs
   Unbound on the same grid (paired), with the stated tolerance.

It prints the ratios and rewrites the "resolver" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import trio

from bench._report import write_section as replace_section
from resolver.experiment import Settings, run_grid, table, validation_table
from resolver.outage import Impl, Layer
from resolver.procs import run_authd, run_resolver, run_unbound
from resolver.resolution import Server

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## resolver: cache hits (issue 5)"
NAMES = [f"host{i}.bench.test." for i in range(20)]


def zone() -> str:
    lines = [
        "$ORIGIN bench.test.", "$TTL 3600",
        "@ IN SOA ns1 hostmaster 1 7200 900 1209600 60", "@ IN NS ns1", "ns1 IN A 127.0.0.1",
    ]
    lines += [f"host{i} IN A 192.0.2.{i + 1}" for i in range(20)]
    return "\n".join(lines) + "\n"


def dnsperf(server: Server, seconds: float, qfile: Path) -> float:
    out = subprocess.run(
        ["dnsperf", "-s", server.host, "-p", str(server.port), "-d", str(qfile), "-l",
         str(seconds), "-c", "4", "-q", "200", "-T", "1"],
        capture_output=True, text=True, timeout=seconds + 30, check=False,
    ).stdout
    m = re.search(r"Queries per second:\s+([0-9.]+)", out)
    if not m:
        raise RuntimeError(f"dnsperf output not understood:\n{out}")
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    print(f"    {server}: {float(m.group(1)):,.0f} qps (lost {lost.group(1) if lost else '?'})")
    return float(m.group(1))


def warm(server: Server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for name in NAMES:
            s.sendto(dns.message.make_query(name, "A").to_wire(), (server.host, server.port))
            s.recvfrom(4096)


# ---- hedging ------------------------------------------------------------------------------

async def lossy_relay(
    target: Server, loss: float, delay: float, rng: random.Random,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A bad upstream: forwards to `target`, drops `loss` of queries, delays the rest."""
    front = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await front.bind(("127.0.0.1", 0))
    task_status.started(Server("127.0.0.1", front.getsockname()[1]))

    async def one(data: bytes, addr: tuple) -> None:
        await trio.sleep(delay)
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as back:
            await back.bind(("127.0.0.1", 0))
            await back.sendto(data, (target.host, target.port))
            with trio.move_on_after(2):
                reply, _ = await back.recvfrom(65535)
                await front.sendto(reply, addr)

    async with trio.open_nursery() as nursery:
        while True:
            data, addr = await front.recvfrom(65535)
            if rng.random() >= loss:
                nursery.start_soon(one, data, addr)


async def miss_latencies(resolver: Server, count: int, workers: int, tag: str) -> list[float]:
    """Latency of `count` cache misses (unique names: NXDOMAIN from the authority)."""
    out: list[float] = []

    async def worker(w: int) -> None:
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            await s.bind(("127.0.0.1", 0))
            for i in range(w, count, workers):
                wire = bytearray(dns.message.make_query(f"m{i}-{tag}.bench.test.", "A").to_wire())
                struct.pack_into("!H", wire, 0, i & 0xFFFF)
                t = trio.current_time()
                await s.sendto(bytes(wire), (resolver.host, resolver.port))
                with trio.move_on_after(5):
                    while True:
                        data, _ = await s.recvfrom(4096)
                        if data[:2] == wire[:2]:
                            out.append(trio.current_time() - t)
                            break

    async with trio.open_nursery() as nursery:
        for w in range(workers):
            nursery.start_soon(worker, w)
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000


def hedging(authority: Server, logs: Path, count: int) -> list[tuple[str, list[float]]]:
    rows: list[tuple[str, list[float]]] = []

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            bad = await nursery.start(lossy_relay, authority, 0.10, 0.030, random.Random(3))
            for label, extra in (("hedging off", []), ("hedge after 10 ms", ["--hedge-after", "10ms"])):
                args = ["serve", "--forward", str(bad), str(authority), "--timeout", "1s", *extra]
                with run_resolver(args, logs / f"hedge-{len(rows)}.log", probe="host0.bench.test.") as r:
                    lat = await miss_latencies(r, count, 5, f"h{len(rows)}")
                rows.append((label, lat))
            nursery.cancel_scope.cancel()

    trio.run(run)
    return rows


# ---- report -------------------------------------------------------------------------------

def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


def unbound_version() -> str:
    out = subprocess.run(["unbound", "-V"], capture_output=True, text=True, check=False).stdout
    first = out.splitlines()[0].strip() if out else ""
    return "Unbound " + first.removeprefix("Version ").strip() if first else "Unbound"


def write_section(text: str) -> None:
    replace_section(SECTION, text)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench resolver", description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0, help="dnsperf run length per round")
    p.add_argument("--rounds", type=int, default=3, help="alternating dnsperf rounds per server")
    p.add_argument("--misses", type=int, default=400, help="cache misses per hedging run")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    p.add_argument("--skip-validation", action="store_true", help="skip the outage experiment")
    args = p.parse_args(argv)
    for tool, pkg in (("dnsperf", "dnsperf"), ("unbound", "unbound")):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"bench resolver: {tool} not installed (Debian package {pkg})", file=sys.stderr)
            return 1
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-resolver-") as tmp, \
            run_authd({"bench.test.": zone()}) as authd:
        logs = Path(tmp)
        qfile = logs / "queries.txt"
        qfile.write_text("".join(f"{n} A\n" for n in NAMES))
        print(f"  cache hits (dnsperf, 4 clients, 200 outstanding), {args.rounds} alternating rounds:")
        with run_resolver(["serve", "--forward", str(authd.server)], logs / "ours.log",
                          probe="host0.bench.test.") as ours, \
                run_unbound([authd.server], threads=1, probe="host0.bench.test.") as ub:
            warm(ours)
            warm(ub.server)
            ours_runs: list[float] = []
            ub_runs: list[float] = []
            for _ in range(args.rounds):
                # Alternate, so load from other work on the machine hits both alike.
                ours_runs.append(dnsperf(ours, args.seconds, qfile))
                ub_runs.append(dnsperf(ub.server, args.seconds, qfile))
        ours_qps = statistics.median(ours_runs)
        ub_qps = statistics.median(ub_runs)
        ratios = [o / u for o, u in zip(ours_runs, ub_runs, strict=True)]
        ratio = ours_qps / ub_qps
        print(f"  ours / Unbound = {ratio:.2f} (medians; per round "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; goal >= 0.6)")
        print("  hedging (first upstream: 10% loss, +30 ms; second: direct):")
        hedge_rows = hedging(authd.server, logs, args.misses)
        for label, lat in hedge_rows:
            print(f"    {label:18}: p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, "
                  f"max {max(lat) * 1000:.0f} ms, answered {len(lat)}/{args.misses}")
    validation = ""
    if not args.skip_validation:
        print("  outage recovery, ours vs Unbound (single-cycle outages, paired):")
        settings = Settings(
            negatives=((10, 2), (10, 4), (10, 6), (4, 10)), serve_stale=(False, True),
            layers=(Layer.RESOLVER,), rates=(8.0,), impls=(Impl.OURS, Impl.OURS_UNBOUND_PRESET,
                                                         Impl.UNBOUND),
            clients=6, resolvers_per_cell=3, outage_at=2.0, outage_length=1.5, record_ttl=1,
        )
        result = run_grid(settings, show_progress=False)
        tol = 0.5
        validation, ok = validation_table(result, tol)
        print(validation)
        print(f"  preset within ±{tol} s of Unbound: {'yes' if ok else 'NO'}")
    shape = ""
    if not args.skip_validation:
        print("  outage recovery, the talk's shape (records back at T; clients after):")
        grid = run_grid(
            Settings(negatives=((10, 1), (10, 3), (10, 6)), serve_stale=(False,),
                     rates=(8.0,)),
            show_progress=False,
        )
        shape = table(grid.summaries)
        print(shape)
    if args.no_write:
        return 0
    hedge_table = "\n".join(
        f"| {label} | {pct(lat, 50):.1f} | {pct(lat, 90):.1f} | {pct(lat, 99):.1f} | "
        f"{max(lat) * 1000:.0f} | {len(lat)}/{args.misses} |"
        for label, lat in hedge_rows
    )
    text = f"""{SECTION}

Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `python -m bench resolver`
on {machine()}; {unbound_version()}; load average {load:.1f} at the start (dnsperf shares the 2 cores; absolute numbers
are noisy, the ratio is measured in one run).

### Cache hits: dnsperf, ours vs Unbound (one thread each)

Both forward to authd; 20 names warmed into the cache; `dnsperf -c 4 -q 200 -T 1 -l {args.seconds:g}`,
{args.rounds} rounds alternating between the two servers (medians; the per-round ratios show
the noise from the shared machine).

| resolver | queries/s (median) | per round |
|---|---|---|
| ours (`resolver serve`, one trio process) | {ours_qps:,.0f} | {', '.join(f'{x:,.0f}' for x in ours_runs)} |
| Unbound (`num-threads: 1`) | {ub_qps:,.0f} | {', '.join(f'{x:,.0f}' for x in ub_runs)} |
| **ratio ours / Unbound** | **{ratio:.2f}** (goal ≥ 0.6) | {', '.join(f'{r:.2f}' for r in ratios)} |

The hit path (`resolver/server.py: _serve_udp`): the UDP socket is drained non-blocking after
`trio.lowlevel.wait_readable`; the question is read from the bytes without a parse and is
itself the cache key (lowercased only if the exact bytes miss); the answer body is rendered
once per second of the entry's age (TTLs only change once a second) and each hit patches only
the ID, the flags and, if the client's case differs, the question (`resolver/cache.py:
render_hit`).

### Hedging: tail latency of cache misses with one bad upstream

`resolver serve --forward BAD GOOD --timeout 1s [--hedge-after 10ms]`; BAD is a relay that
drops 10% of queries and delays the rest by 30 ms; {args.misses} unique names (each a miss), 5
concurrent clients. Latencies in ms.

| setting | p50 | p90 | p99 | max | answered |
|---|---|---|---|---|---|
{hedge_table}

Without hedging every lost query waits out the 1 s timeout before the second upstream is
asked; with `--hedge-after 10ms` the second upstream is asked 10 ms in and the first valid
answer wins, so the tail collapses to the good upstream's latency plus 10 ms.

### Outage recovery: client-observed windows, ours vs Unbound

Outage and repair go through authd's Route 53 change API, as the enactor's would: one change
batch per endpoint zone DELETEs the active plan tree (weighted root and leaves), leaving the
stable alias dangling (authd answers NOERROR, no addresses, SOA), and a later batch CREATEs it
again; each waits for INSYNC. The full grid (negative TTL x serve-stale x cache layers x client
rate) is `resolver experiment outage-recovery --out results/resolver` (about 100 s here); it
writes the table, CSVs and plots there (`results/` is not committed).

Command: `resolver experiment outage-recovery --impl both --layers resolver --serve-stale both
--rates 8 --clients 6 --resolvers 3 --negative 10:2,10:4,10:6,4:10 --outage-at 2
--outage-length 1.5 --record-ttl 1`. The outage (1.5 s) is shorter than every negative TTL, so
each resolver caches the NODATA exactly once and each client's window is one negative-cache
lifetime, whatever the phase. Window = first empty answer to first addresses again, per client.

{validation}

Tolerance: ±0.5 s between ours with `--preset unbound` and Unbound (medians). Differences,
explained:
- **Unbound holds a negative answer about one second longer** than min(SOA TTL, MINIMUM):
  its clock is whole seconds and an entry is served until its expiry second has passed
  (TTL 0 is still served), so the lifetime is between TTL and TTL+1 s, and here (entries
  filled just after a second boundary, when the positive entry expired) almost exactly
  TTL+1. Ours expires at exactly TTL by default; `resolver serve --preset unbound` uses the
  same whole-second clock (`CachePolicy.whole_second_clock`) and then matches.
- **Negative-TTL cap**: Unbound caps at `cache-max-negative-ttl` (3600 s), as do we
  (`--max-negative-ttl`, default 3600); the scaled SOA values here are far below it.
- **Prefetch** is off in both (Unbound's default); with `prefetch: yes` Unbound refreshes
  popular entries in their last 10% of TTL, which shortens positive-to-negative transitions
  but not negative lifetimes.
- **Serve-stale** makes no difference here in either: the authority answers (NODATA), so no
  resolution fails and RFC 8767 never applies. Stale data protects against an unreachable
  authority, not against one that says "nothing". (Unbound's `serve-expired` is configured
  RFC 8767-style with `serve-expired-client-timeout: 1800`.)

### Outage recovery: the talk's shape

A smaller grid (`resolver experiment outage-recovery --negative
10:1,10:3,10:6 --serve-stale off --rates 8`; 6 clients per cell, 3 resolvers, stub negative
TTL 2 s, record TTL 5 s, outage 8 s; "auth win" is the authority's own empty window, delays
are from when the authority answered again, T):

```
{shape}
```

With no cache, clients see the repair within one query gap. Behind a resolver they recover
over the following negative-TTL window (each delay is at most min(SOA TTL, MINIMUM) plus one
query gap, spread by when each resolver last cached the NODATA), and a stub cache with its own
negative TTL adds to it: the talk's 09:25 (records back) to
09:40 (clients recovered), scaled.
"""
    write_section(text)
    print("  wrote the resolver section of BENCHMARKS.md")
    return 0
