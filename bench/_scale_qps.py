"""The query half of `python -m bench scale`: queries per server CPU-second on a big zone.

Issue 12's mixes, on the zone `bench.scale.generate_zone` writes, against authd, NSD and Knot
in one run, pinned as in `bench/dns.py` (the server on CPU 0 with `taskset -c 0`, one process
or worker; dnsperf on CPU 1):
- random existing names (A questions for owners drawn at random, CNAME owners included);
- the realistic mix: 60% A, 10% AAAA (at names that have one), 10% A at CNAME owners,
  20% random NXDOMAIN;
- random-subdomain NXDOMAIN (a "water torture" flood: a new random label every query);
- cached: ten hot names cycled.
`authd-pipeline` is authd with `--no-compiled-answers`: what a question the answer table does
not hold cost before `authd.dns.compiled` (the full pipeline, then the table). `authd-control`
is the default `authd serve`: the change API on (no store file), so metrics count every query.
`authd-pyudp` is authd with `--no-fast-udp`: the Python UDP loop (one recvfrom/sendto per
datagram) instead of the C helper's recvmmsg/sendmmsg batches (`authd.dns.udp_batched`).
Each server is started once and runs the mixes in that order, so authd meets every random name
with nothing rendered (its templates from earlier mixes stay, as they would in service).
Query files hold 500,000 lines (dnsperf cycles them), drawn with a fixed seed.

Results go to the "authd at scale: queries" section of BENCHMARKS.md.
"""

from __future__ import annotations

import datetime
import os
import platform
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from authd.localnet import find_tool, free_port, stop, wait_answering
from bench._report import write_section
from bench.dns import Result, run_dnsperf

SECTION = "## authd at scale: queries (issue 12)"
MIXES = ["random existing names", "realistic mix", "random NXDOMAIN", "cached"]
LINES = 500_000
# goals of issue 12, as ratios to NSD in queries per server CPU-second
GOALS = {"realistic mix": 0.8, "random NXDOMAIN": 0.6, "cached": 0.9}


@dataclass
class MixResult:
    mix: str
    server: str
    result: Result


def query_files(zone_text: str, origin: str, work: Path, seed: int = 3,
                lines_per_file: int = LINES) -> dict[str, Path]:
    """One dnsperf query file per mix, from the zone's own names."""
    a_names, aaaa_names, cnames = [], [], []
    for line in zone_text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].startswith("h"):
            continue
        rtype = parts[-2]
        name = f"{parts[0]}.{origin}"
        (a_names if rtype == "A" else aaaa_names if rtype == "AAAA" else cnames).append(name)
    rnd = random.Random(seed)

    def nx() -> str:
        return f"{rnd.getrandbits(48):012x}.{origin} A"

    owners = a_names + cnames
    lines: dict[str, list[str]] = {
        "random existing names": [f"{rnd.choice(owners)} A" for _ in range(lines_per_file)],
        "random NXDOMAIN": [nx() for _ in range(lines_per_file)],
        "cached": [f"{name} A" for name in a_names[:10]],
    }
    mixed = []
    for _ in range(lines_per_file):
        r = rnd.random()
        if r < 0.6:
            mixed.append(f"{rnd.choice(a_names)} A")
        elif r < 0.7:
            mixed.append(f"{rnd.choice(aaaa_names)} AAAA")
        elif r < 0.8:
            mixed.append(f"{rnd.choice(cnames)} A")
        else:
            mixed.append(nx())
    lines["realistic mix"] = mixed
    out = {}
    for mix, text in lines.items():
        path = work / f"queries-{mix.replace(' ', '-')}.txt"
        path.write_text("\n".join(text) + "\n")
        out[mix] = path
    return out


def server_command(server: str, zdir: Path, zfile: Path, origin: str, port: int,
                   work: Path) -> list[str] | None:
    """The server pinned to CPU 0, one process or worker, as `bench/dns.py` runs NSD."""
    taskset = find_tool("taskset")
    if taskset is None:
        return None
    if server in ("authd", "authd-pipeline", "authd-control", "authd-pyudp"):
        control = f"127.0.0.1:{free_port()}" if server == "authd-control" else "off"
        cmd = [sys.executable, "-m", "authd", "serve", "--zones", str(zdir), "--listen",
               f"127.0.0.1:{port}", "--workers", "1", "--control", control,
               "--log-level", "WARNING",
               *(["--no-compiled-answers"] if server == "authd-pipeline" else []),
               *(["--no-fast-udp"] if server == "authd-pyudp" else [])]
    elif server == "nsd" and (nsd := find_tool("nsd")):
        d = work / f"nsd-qps-{port}"
        d.mkdir()
        (d / "nsd.conf").write_text(
            f'server:\n  ip-address: 127.0.0.1@{port}\n  username: ""\n  chroot: ""\n'
            f'  zonesdir: "{d}"\n  database: ""\n  pidfile: "{d}/nsd.pid"\n'
            f'  xfrdfile: "{d}/xfrd.state"\n  zonelistfile: "{d}/zone.list"\n'
            f'  logfile: "{d}/nsd.log"\n  server-count: 1\n  reuseport: yes\n'
            f'  rrl-ratelimit: 0\n  minimal-responses: yes\n  verbosity: 0\n'
            f'remote-control:\n  control-enable: no\n'
            f'zone:\n  name: {origin}\n  zonefile: "{zfile}"\n')
        cmd = [nsd, "-d", "-c", str(d / "nsd.conf")]
    elif server == "knot" and (knotd := find_tool("knotd")):
        d = work / f"knot-qps-{port}"
        d.mkdir()
        (d / "knot.conf").write_text(
            f'server:\n  listen: 127.0.0.1@{port}\n  rundir: "{d}"\n  udp-workers: 1\n'
            f'  tcp-workers: 1\n  background-workers: 1\n'
            f'database:\n  storage: "{d}"\n'
            f'log:\n  - target: "{d}/knot.log"\n    any: warning\n'
            f'template:\n  - id: default\n    storage: "{zdir}"\n    journal-content: none\n'
            f'    zonefile-sync: -1\n    semantic-checks: off\n'
            f'zone:\n  - domain: {origin}\n    file: "{zfile}"\n')
        cmd = [knotd, "-c", str(d / "knot.conf")]
    else:
        return None
    return [taskset, "-c", "0", *cmd]


def run_mixes(zdir: Path, zfile: Path, origin: str, servers: list[str], duration: int,
              work: Path, startup_limit: float = 300.0) -> list[MixResult]:
    """Every mix against every server that can run here; a missing tool is skipped by name."""
    dnsperf, taskset = find_tool("dnsperf"), find_tool("taskset")
    if dnsperf is None or taskset is None:
        print("  query mixes skipped: need dnsperf and taskset (Debian dnsperf, util-linux)")
        return []
    files = query_files(zfile.read_text(), origin, work)
    probe = next(line.split()[0] for line in files["cached"].read_text().splitlines())
    out: list[MixResult] = []
    for server in servers:
        port = free_port()
        cmd = server_command(server, zdir, zfile, origin, port, work)
        if cmd is None:
            print(f"  {server}: skipped (missing tool)")
            continue
        proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_answering(port, proc, server, qname=probe, qtype="A", timeout=startup_limit)
            for mix in MIXES:
                perf = [taskset, "-c", "1", dnsperf, "-s", "127.0.0.1", "-p", str(port),
                        "-d", str(files[mix]), "-l", str(duration), "-c", "4", "-q", "100"]
                res = run_dnsperf(perf, mix, server, proc.pid)
                res.server_cmd = " ".join(cmd).replace(str(work), "$WORK").replace(
                    sys.executable, "python")
                res.command = res.command.replace(str(work), "$WORK")
                out.append(MixResult(mix, server, res))
                print(f"  {mix:22s} {server:11s} {res.qps:9,.0f} qps  "
                      f"{res.per_cpu_second:9,.0f} q/CPU-s  lost {res.lost}", flush=True)
        finally:
            stop(proc)
    return out


def report(results: list[MixResult], names: int, duration: int) -> list[str]:
    """The section's lines: the table, the goals, the commands."""
    by = {(r.mix, r.server): r.result for r in results}
    servers = [s for s in ("authd", "authd-pyudp", "authd-control", "authd-pipeline", "nsd",
                           "knot")
               if any(r.server == s for r in results)]
    lines = [
        SECTION, "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC by "
        f"`python -m bench scale` (`bench/_scale_qps.py`) on {platform.node()} "
        f"({os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}), "
        f"load average {os.getloadavg()[0]:.1f} at the end (other sessions share the cores: "
        "queries per server CPU-second is the figure that does not depend on the share the "
        f"server got). Zone: {names:,} names (`bench.scale.generate_zone`). Each server pinned "
        f"to CPU 0 (one process or worker), dnsperf on CPU 1, {duration} s per mix, "
        "`-c 4 -q 100`; mixes as in `bench/_scale_qps.py`.",
        "",
        "| mix | " + " | ".join(f"{s} q/CPU-s" for s in servers) + " | authd / NSD | "
        "authd / Knot | authd-control / NSD | authd / authd-pipeline | authd qps | NSD qps |",
        "|---|" + "---:|" * (len(servers) + 6),
    ]
    goals = []
    for mix in MIXES:
        row = [by.get((mix, s)) for s in servers]
        a, n, k = by.get((mix, "authd")), by.get((mix, "nsd")), by.get((mix, "knot"))
        rn = a.per_cpu_second / n.per_cpu_second if a and n and n.per_cpu_second else None
        rk = a.per_cpu_second / k.per_cpu_second if a and k and k.per_cpu_second else None
        c = by.get((mix, "authd-control"))
        rc = c.per_cpu_second / n.per_cpu_second if c and n and n.per_cpu_second else None
        p = by.get((mix, "authd-pipeline"))
        rp = a.per_cpu_second / p.per_cpu_second if a and p and p.per_cpu_second else None
        lines.append(f"| {mix} | " + " | ".join(f"{r.per_cpu_second:,.0f}" if r else "—" for r in row)
                     + f" | {f'{rn:.2f}x' if rn else '—'} | {f'{rk:.2f}x' if rk else '—'} | "
                     f"{f'{rc:.2f}x' if rc else '—'} | "
                     f"{f'{rp:.1f}x' if rp else '—'} | "
                     f"{f'{a.qps:,.0f}' if a else '—'} | {f'{n.qps:,.0f}' if n else '—'} |")
        if mix in GOALS and rn is not None:
            goals.append(f"- {'met' if rn >= GOALS[mix] else '**not met**'}: {mix} ≥ "
                         f"{GOALS[mix]}× NSD per CPU-second: {rn:.2f}×")
    lines += ["", "Goals (issue 12):", "", *goals, "", "Commands (`$WORK` is a temporary "
              "directory; the server is started once and runs the mixes in the order above):",
              "", "```"]
    seen = set()
    for r in results:
        if r.server not in seen:
            seen.add(r.server)
            lines.append(f"# {r.server}\nserver:  {r.result.server_cmd}")
        lines.append(f"client:  {r.result.command}")
    lines += ["```", ""]
    return lines


def write(results: list[MixResult], names: int, duration: int, extra: list[str] = ()) -> Path:
    lines = report(results, names, duration)
    if extra:
        at = lines.index("Goals (issue 12):")
        lines[at:at] = [*extra, ""]
    return write_section(SECTION, "\n".join(lines))


def template_bytes(zfile: Path) -> tuple[int, int, float]:
    """(record sets, CNAME owners, bytes kept per compiled CNAME answer), measured with
    tracemalloc in this process on the same zone (plain A/AAAA answers keep nothing: they
    are spliced from the zone's own wire)."""
    import gc
    import tracemalloc

    import dns.message

    from authd.dns.index import index_from_zones
    from authd.zonefiles.zonefile import load_zone_dir

    zones = load_zone_dir(zfile.parent)
    index = index_from_zones(zones, rng=random.Random(1))
    sets = sum(len(z.record_sets) for z in zones)
    wires = [dns.message.make_query(rs.name, "A").to_wire()
             for z in zones for rs in z.record_sets if rs.rtype == "CNAME"]
    del zones
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for w in wires:
        index.compiled.respond(w, False)  # type: ignore[union-attr]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(d.size_diff for d in after.compare_to(before, "filename"))
    return sets, len(wires), grown / max(1, len(wires))


def notes(results: list[MixResult], loops: list[tuple[str, float]],
          memory: tuple[int, int, float] | None) -> list[str]:
    """What the figures say about the floor (measured in the same run)."""
    out = []
    by = {(r.mix, r.server): r.result.per_cpu_second for r in results}
    if loops:
        bare = dict(loops)
        floor, cfloor = bare.get("recvfrom", 0.0), bare.get("C mmsg", 0.0)
        cached = by.get(("cached", "authd"), 0.0)
        pycached = by.get(("cached", "authd-pyudp"), 0.0)
        nsd = by.get(("cached", "nsd"), 0.0)
        out += [
            "The floor (`python -m bench._udp_loop`, same run): a bare loop that answers "
            "each datagram with a splice of itself does " + ", ".join(
                f"{v:,.0f} per CPU-second with {k}" for k, v in loops)
            + ". In Python, batching through `recvmsg_into` or `recvmmsg`/`sendmmsg` (ctypes) "
            "costs more per datagram than it saves. The C helper `authd.dns._fastudp` "
            "(authd's UDP loop by default; `authd-pyudp` is `--no-fast-udp`, the Python loop) "
            "receives and sends up to 64 datagrams per system call and answers exact-table "
            "hits with no bytecode; any other question-only query goes from C to the compiled "
            "templates (Python), and the rest through the Python loop's own code. "
            + (f"authd's cached answers ({cached:,.0f}) run at {cached / cfloor:.2f}× the C "
               f"floor, {cached / nsd:.2f}× NSD. " if cfloor and nsd and cached else "")
            + (f"With the Python loop they run at {pycached:,.0f}, {pycached / floor:.2f}× its "
               f"recvfrom floor, itself {floor / nsd:.2f}× NSD: the ceiling of any "
               "per-datagram Python loop here." if floor and nsd and pycached else ""),
            "",
        ]
    if memory is not None:
        sets, owners, per = memory
        out += [f"Memory: of {sets:,} record sets, only the {owners:,} CNAME owners keep a "
                f"compiled answer, {per:,.0f} bytes each (tracemalloc); plain A/AAAA/TXT "
                "answers, NXDOMAIN and NODATA keep nothing per name (spliced from the zone's "
                "own wire and one template per zone, per query-name length).", ""]
    out += ["Every query of these mixes takes a compiled path (`authd.dns.compiled`): a random "
            "existing name is its RRset's load-time wire behind a pointer to the question, a "
            "CNAME owner its answer rendered once, a random missing name the zone's NXDOMAIN "
            "template for that name length. What remains is Python's per-packet floor above "
            "and, for random names over a big zone, memory: each lookup touches several "
            "objects spread over the heap, where NSD reads a compact tree.", ""]
    return out


def ab(trees: list[str], names: int, queries: int, rounds: int, control: bool,
       work: Path) -> dict[str, dict[str, list[float]]]:
    """A/B of authd source trees (each with its C helper built in place): every tree served
    at once, pinned to CPU 0 (idle but the one asked), dnsperf on CPU 1 sending each mix's
    `queries` queries once (`-n 1`, a fresh draw per round, the same for every tree), the
    trees' order alternating per round; the server's CPU-seconds per mix from /proc,
    including the fold of its counts (read 1.5 s after the last reply). Returns queries per
    CPU-second by tree and mix, a value per round; the first round meets every name first."""
    import time

    from bench.dns import tree_cpu
    from bench.scale import ORIGIN, generate_zone

    taskset, dnsperf = find_tool("taskset"), find_tool("dnsperf")
    if taskset is None or dnsperf is None:
        raise SystemExit("the A/B needs taskset and dnsperf")
    zdir = work / "zones"
    zdir.mkdir()
    zfile = zdir / f"{ORIGIN}zone"
    zfile.write_text(generate_zone(names))
    procs: dict[str, subprocess.Popen] = {}
    ports: dict[str, int] = {}
    out: dict[str, dict[str, list[float]]] = {t: {m: [] for m in MIXES} for t in trees}
    try:
        for tree in trees:
            ports[tree] = free_port()
            cmd = [taskset, "-c", "0", sys.executable, "-m", "authd", "serve", "--zones",
                   str(zdir), "--listen", f"127.0.0.1:{ports[tree]}", "--workers", "1",
                   "--control", f"127.0.0.1:{free_port()}" if control else "off",
                   "--log-level", "WARNING"]
            procs[tree] = subprocess.Popen(cmd, cwd=tree, env=dict(os.environ, PYTHONPATH=tree),
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for tree in trees:
            wait_answering(ports[tree], procs[tree], tree, qname=f"ns1.{ORIGIN}", qtype="A",
                           timeout=300)
        for r in range(rounds):
            rw = work / f"round{r}"
            rw.mkdir()
            files = query_files(zfile.read_text(), ORIGIN, rw, seed=100 + r,
                                lines_per_file=queries)
            for mix in MIXES:
                for tree in trees if r % 2 == 0 else trees[::-1]:
                    times = str(queries // 10) if mix == "cached" else "1"  # 10 lines there
                    perf = [taskset, "-c", "1", dnsperf, "-s", "127.0.0.1", "-p",
                            str(ports[tree]), "-d", str(files[mix]), "-n", times, "-c", "4",
                            "-q", "100"]
                    time.sleep(1.2)  # (a measurement's pause: the previous fold lands)
                    before = tree_cpu(procs[tree].pid)
                    res = run_dnsperf(perf, mix, tree, procs[tree].pid)
                    time.sleep(1.5)  # the once-a-second fold of these counts
                    cpu = tree_cpu(procs[tree].pid) - before
                    out[tree][mix].append(res.completed / cpu if cpu > 0 else 0.0)
                    print(f"  round {r} {mix:22s} {tree}: {res.completed:,} in {cpu:.2f} "
                          f"CPU-s, {out[tree][mix][-1]:,.0f} q/CPU-s, lost {res.lost}, "
                          f"load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for proc in procs.values():
            stop(proc)
    return out


def main(argv: list[str]) -> int:
    """`python -m bench._scale_qps`: the query mixes alone (`python -m bench scale` runs them
    after its loading measurements)."""
    import argparse
    import tempfile

    from bench.scale import ORIGIN, generate_zone

    ap = argparse.ArgumentParser(prog="python -m bench._scale_qps", description=__doc__.split("\n\n")[0])
    ap.add_argument("--names", type=int, default=200_000, help="zone size (default: %(default)s)")
    ap.add_argument("--duration", type=int, default=10,
                    help="seconds of dnsperf per mix and server (default: %(default)s)")
    ap.add_argument("--servers", default="authd,authd-pyudp,authd-control,authd-pipeline,nsd,knot",
                    help="servers to run; authd-control is authd with the change API on, "
                         "authd-pyudp authd with --no-fast-udp (default: %(default)s)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--ab", metavar="TREE,TREE", help="A/B of authd source trees instead "
                    "(`ab`): a fixed number of queries per mix, rounds alternating; prints only")
    ap.add_argument("--queries", type=int, default=150_000, help="with --ab: queries per mix "
                    "and round (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="with --ab (default: %(default)s)")
    ap.add_argument("--control", action="store_true", help="with --ab: the change API on, so "
                    "metrics count every query (as authd-control)")
    args = ap.parse_args(argv)
    if args.ab:
        import statistics
        import tempfile

        trees = args.ab.split(",")
        with tempfile.TemporaryDirectory(prefix="bench-scale-ab-") as tmp:
            got = ab(trees, args.names, args.queries, args.rounds, args.control, Path(tmp))
        print("median q/CPU-s over the rounds after the first, and each tree / the first:")
        for mix in MIXES:
            meds = [statistics.median(got[t][mix][1:] or got[t][mix]) for t in trees]
            print(f"  {mix:22s} " + "  ".join(f"{m:9,.0f} ({m / meds[0]:.3f})" for m in meds))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-scale-qps-") as tmp:
        work = Path(tmp)
        zdir = work / "zones"
        zdir.mkdir()
        zfile = zdir / f"{ORIGIN}zone"
        zfile.write_text(generate_zone(args.names))
        results = run_mixes(zdir, zfile, ORIGIN, args.servers.split(","), args.duration, work)
        from bench import _udp_loop

        loops = _udp_loop.measure(args.duration) if results else []
        memory = template_bytes(zfile) if results else None
    if results and not args.no_write:
        print(f"wrote {write(results, args.names, args.duration, notes(results, loops, memory))}")
    return 0 if results else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
