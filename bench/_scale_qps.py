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
All servers are started once, up front (each idles on CPU 0 while another is measured), and the
measurement runs in R rounds (`--rounds`, default 3): in each round, for each mix in the order
above, every server gets one dnsperf pass of `duration / R` seconds (at least 3 s), the servers'
order rotated by one per round so that no server always goes first. In the first round each
server meets the mixes in that order, so authd meets every random name with nothing rendered
(its templates from earlier mixes stay, as they would in service); later rounds measure a warmed
server (the same query files again: its compiled answers and caches already hold those names).
A pass's CPU time is the server's from the start of that pass to the start of its next one
(or, for its last, 1.5 s after the last pass of the run): it takes in the once-a-second fold of
the pass's counts (authd-control), which lands while another server is measured, and the
server's idle CPU between its passes (next to nothing: 0.02 s per 15 s idle for
authd-control, none measurable for the others, on 2026-12-04). The figure per (mix, server) is the
median over the rounds of queries per server CPU-second, shown with the spread (min-max); the
ratios are of the medians. Running the servers interleaved, at the same times, matters here:
one pass per server, one server after the other, gave authd / NSD from 0.69x to 0.82x for the
same code on this shared 2-core vm.
Query files hold 500,000 lines (dnsperf cycles them), drawn with a fixed seed.

Results go to the "authd at scale: queries" section of BENCHMARKS.md.
"""

from __future__ import annotations

import datetime
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from authd.localnet import find_tool, free_port, stop, wait_answering
from bench._report import write_section
from bench.dns import Result, run_dnsperf, tree_cpu

SECTION = "## authd at scale: queries (issue 12)"
MIXES = ["random existing names", "realistic mix", "random NXDOMAIN", "cached"]
LINES = 500_000
ROUNDS = 3
MIN_PASS = 3.0  # seconds: the shortest dnsperf pass a round gets
FOLD_WAIT = 1.5  # seconds after the last pass: the last once-a-second fold of counts lands
# goals of issue 12, as ratios to NSD in queries per server CPU-second
GOALS = {"realistic mix": 0.8, "random NXDOMAIN": 0.6, "cached": 0.9}


@dataclass
class MixResult:
    """One (mix, server) cell: a pass per round in `passes` (in round order); `result` is the
    pass whose queries per CPU-second is the median (the lower middle one for an even count),
    so readers of `result` see the median; `per_cpu_second` is the exact median."""
    mix: str
    server: str
    result: Result
    passes: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.passes:
            self.passes = [self.result]

    @property
    def per_cpu_second(self) -> float:
        return statistics.median(p.per_cpu_second for p in self.passes)

    @property
    def qps(self) -> float:
        return statistics.median(p.qps for p in self.passes)

    @property
    def spread(self) -> tuple[float, float]:
        """(min, max) of queries per CPU-second over the rounds."""
        values = [p.per_cpu_second for p in self.passes]
        return min(values), max(values)


def median_pass(passes: list[Result]) -> Result:
    """The pass at the (lower) median of queries per CPU-second."""
    return sorted(passes, key=lambda p: p.per_cpu_second)[(len(passes) - 1) // 2]


def pass_seconds(duration: float, rounds: int) -> float:
    """Seconds of one dnsperf pass: the per-mix duration shared out over the rounds, at least
    `MIN_PASS`."""
    return max(MIN_PASS, round(duration / max(1, rounds), 1))


def server_order(servers: list[str], rnd: int) -> list[str]:
    """The servers in round `rnd`'s order: rotated by one per round."""
    k = rnd % len(servers) if servers else 0
    return servers[k:] + servers[:k]


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


def run_mixes(zdir: Path, zfile: Path, origin: str, servers: list[str], duration: float,
              work: Path, startup_limit: float = 300.0, rounds: int = ROUNDS) -> list[MixResult]:
    """Every mix against every server that can run here, in `rounds` rounds of
    `pass_seconds(duration, rounds)` per pass (see the module's docstring); a missing tool is
    skipped by name. All servers run for the whole measurement and are stopped by PID at the
    end, on an error or Ctrl-C too."""
    dnsperf, taskset = find_tool("dnsperf"), find_tool("taskset")
    if dnsperf is None or taskset is None:
        print("  query mixes skipped: need dnsperf and taskset (Debian dnsperf, util-linux)")
        return []
    servers = list(dict.fromkeys(servers))  # a name twice would start a process kept by no key
    rounds = max(1, rounds)
    seconds = pass_seconds(duration, rounds)
    files = query_files(zfile.read_text(), origin, work)
    probe = next(line.split()[0] for line in files["cached"].read_text().splitlines())
    procs: dict[str, subprocess.Popen] = {}
    ports: dict[str, int] = {}
    cmds: dict[str, list[str]] = {}
    passes: dict[tuple[str, str], list[Result]] = {}
    try:
        for server in servers:
            port = free_port()
            cmd = server_command(server, zdir, zfile, origin, port, work)
            if cmd is None:
                print(f"  {server}: skipped (missing tool)")
                continue
            ports[server], cmds[server] = port, cmd
            procs[server] = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent,
                                             stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
        for server, proc in procs.items():
            wait_answering(ports[server], proc, server, qname=probe, qtype="A",
                           timeout=startup_limit)
        running = list(procs)
        print(f"  {len(running)} servers up (pids "
              + ", ".join(f"{s} {p.pid}" for s, p in procs.items())
              + f"); {rounds} rounds of {seconds:g} s per mix and server", flush=True)
        # per server: its last pass, that pass's round and the server's CPU time at its start
        last: dict[str, tuple[Result, int, float]] = {}

        def close(server: str, cpu_now: float) -> None:
            """The server's last pass gets its CPU time, up to now (printed then, so a pass's
            line comes once the server's next pass starts)."""
            if server in last:
                res, rnd, cpu_then = last.pop(server)
                res.cpu_s = cpu_now - cpu_then
                print(f"    round {rnd + 1} {res.label:22s} {server:14s} {res.qps:9,.0f} qps  "
                      f"{res.per_cpu_second:9,.0f} q/CPU-s  lost {res.lost}", flush=True)

        for rnd in range(rounds):
            print(f"  round {rnd + 1}/{rounds} starts, order {', '.join(server_order(running, rnd))}, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
            for mix in MIXES:
                for server in server_order(running, rnd):
                    pid = procs[server].pid
                    start = tree_cpu(pid)
                    close(server, start)
                    perf = [taskset, "-c", "1", dnsperf, "-s", "127.0.0.1", "-p",
                            str(ports[server]), "-d", str(files[mix]), "-l", f"{seconds:g}",
                            "-c", "4", "-q", "100"]
                    res = run_dnsperf(perf, mix, server, pid)
                    res.server_cmd = " ".join(cmds[server]).replace(str(work), "$WORK").replace(
                        sys.executable, "python")
                    res.command = res.command.replace(str(work), "$WORK")
                    passes.setdefault((mix, server), []).append(res)
                    last[server] = (res, rnd, start)
        time.sleep(FOLD_WAIT)  # (the last passes' once-a-second fold of counts lands)
        for server in running:
            close(server, tree_cpu(procs[server].pid))
    finally:
        for proc in procs.values():
            stop(proc)
    out = [MixResult(mix, server, median_pass(p), p)
           for mix in MIXES for server in servers if (p := passes.get((mix, server)))]
    for r in out:
        lo, hi = r.spread
        print(f"  {r.mix:22s} {r.server:14s} median {r.per_cpu_second:9,.0f} q/CPU-s "
              f"({lo:,.0f}-{hi:,.0f}), {r.qps:9,.0f} qps", flush=True)
    return out


def _ratio(a: MixResult | None, b: MixResult | None, fmt: str = ".2f") -> str:
    """a / b of the medians of queries per CPU-second, or a dash."""
    if a is None or b is None or not b.per_cpu_second:
        return "—"
    return f"{a.per_cpu_second / b.per_cpu_second:{fmt}}x"


def report(results: list[MixResult], names: int, duration: float,
           rounds: int | None = None) -> list[str]:
    """The section's lines: the table (per cell the median over the rounds and the spread,
    min-max; ratios of the medians), the goals, the commands."""
    by = {(r.mix, r.server): r for r in results}
    if rounds is None:
        rounds = max((len(r.passes) for r in results), default=1)
    seconds = pass_seconds(duration, rounds)
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
        f"to CPU 0 (one process or worker; all started up front, idle while another is "
        f"measured), dnsperf on CPU 1, `-c 4 -q 100`; {rounds} rounds, each a {seconds:g} s "
        "pass per mix and server, the servers' order rotated per round. Each cell is the "
        "median over the rounds of queries per server CPU-second, the spread (min-max) in "
        "brackets; the first round meets the names with nothing rendered, later ones a warmed "
        "server. Ratios are of the medians; mixes as in `bench/_scale_qps.py`.",
        "",
        "| mix | " + " | ".join(f"{s} q/CPU-s" for s in servers) + " | authd / NSD | "
        "authd / Knot | authd-control / NSD | authd / authd-pipeline | authd qps | NSD qps |",
        "|---|" + "---:|" * (len(servers) + 6),
    ]
    goals = []
    for mix in MIXES:
        row = [by.get((mix, s)) for s in servers]
        a, n, k = by.get((mix, "authd")), by.get((mix, "nsd")), by.get((mix, "knot"))
        c, p = by.get((mix, "authd-control")), by.get((mix, "authd-pipeline"))
        cells = []
        for r in row:
            if r is None:
                cells.append("—")
            else:
                lo, hi = r.spread
                cells.append(f"{r.per_cpu_second:,.0f} ({lo:,.0f}-{hi:,.0f})"
                             if len(r.passes) > 1 else f"{r.per_cpu_second:,.0f}")
        lines.append(f"| {mix} | " + " | ".join(cells)
                     + f" | {_ratio(a, n)} | {_ratio(a, k)} | {_ratio(c, n)} | "
                     f"{_ratio(a, p, '.1f')} | "
                     f"{f'{a.qps:,.0f}' if a else '—'} | {f'{n.qps:,.0f}' if n else '—'} |")
        if mix in GOALS and a and n and n.per_cpu_second:
            rn = a.per_cpu_second / n.per_cpu_second
            lo = a.spread[0] / n.spread[1] if n.spread[1] else 0.0
            hi = a.spread[1] / n.spread[0] if n.spread[0] else 0.0
            goals.append(f"- {'met' if rn >= GOALS[mix] else '**not met**'}: {mix} ≥ "
                         f"{GOALS[mix]}× NSD per CPU-second: {rn:.2f}× (medians; "
                         f"{lo:.2f}×-{hi:.2f}× from the spreads)")
    lines += ["", "Goals (issue 12):", "", *goals, "", "Commands (`$WORK` is a temporary "
              "directory; every server is started once and runs each round's mixes in the "
              "order above; the client command is the same in every round):", "", "```"]
    seen = set()
    for r in results:
        if r.server not in seen:
            seen.add(r.server)
            lines.append(f"# {r.server}\nserver:  {r.result.server_cmd}")
        lines.append(f"client:  {r.result.command}")
    lines += ["```", ""]
    return lines


def table(results: list[MixResult], names: int, duration: float) -> str:
    """The report's table and goals, to print (as `--no-write` runs do)."""
    lines = report(results, names, duration)
    start = next(i for i, line in enumerate(lines) if line.startswith("| mix |"))
    end = next(i for i, line in enumerate(lines) if line.startswith("Commands ("))
    return "\n".join(lines[start:end]).rstrip()


def write(results: list[MixResult], names: int, duration: float, extra: list[str] = ()) -> Path:
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
    by = {(r.mix, r.server): r.per_cpu_second for r in results}  # medians over the rounds
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
    ap.add_argument("--duration", type=float, default=10,
                    help="seconds of dnsperf per mix and server, shared out over the rounds "
                         f"(at least {MIN_PASS:g} s a pass) (default: %(default)s)")
    ap.add_argument("--servers", default="authd,authd-pyudp,authd-control,authd-pipeline,nsd,knot",
                    help="servers to run; authd-control is authd with the change API on, "
                         "authd-pyudp authd with --no-fast-udp (default: %(default)s)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--ab", metavar="TREE,TREE", help="A/B of authd source trees instead "
                    "(`ab`): a fixed number of queries per mix, rounds alternating; prints only")
    ap.add_argument("--queries", type=int, default=150_000, help="with --ab: queries per mix "
                    "and round (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of the mixes, each server "
                    f"a pass per mix and round (default: {ROUNDS}; with --ab: 5)")
    ap.add_argument("--control", action="store_true", help="with --ab: the change API on, so "
                    "metrics count every query (as authd-control)")
    args = ap.parse_args(argv)
    if args.ab:
        import statistics
        import tempfile

        trees = args.ab.split(",")
        with tempfile.TemporaryDirectory(prefix="bench-scale-ab-") as tmp:
            got = ab(trees, args.names, args.queries, args.rounds or 5, args.control, Path(tmp))
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
        results = run_mixes(zdir, zfile, ORIGIN, args.servers.split(","), args.duration, work,
                            rounds=args.rounds or ROUNDS)
        if results:
            print(table(results, args.names, args.duration), flush=True)
        from bench import _udp_loop

        loops = _udp_loop.measure(args.duration) if results else []
        memory = template_bytes(zfile) if results else None
    if results and not args.no_write:
        print(f"wrote {write(results, args.names, args.duration, notes(results, loops, memory))}")
    return 0 if results else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
