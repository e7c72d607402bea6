"""`python -m bench scale`: big zones that look like real ones, loaded by authd, NSD and Knot in
the same run: the time from process start to the first answer, and the memory it then holds.

The zone (`generate_zone`) has N names with random suffixes: every name an A record, a quarter
of them an AAAA too, and one in ten a CNAME to a random other name instead. That is the shape
issue 12 measured, where authd never answered a 200,000-name zone within 300 s.

Runs, one server at a time (they share the 2 cores with nothing but this script):
- authd `--control off` (DNS straight from the zone file),
- authd with the store (`--store FILE`: the file seeds a new SQLite file, the index is fed
  from it), then `authd-restart`: the same command again on that store file, which is the
  store's own startup (the file is unchanged: the index is built from the store's snapshot),
- NSD and Knot with the same file.

Besides the wall time to the first answer (which the rest of the machine's load stretches),
the server's own CPU time up to then is read from /proc, and its peak resident set.

Results go to the "authd at scale: loading big zones" section of BENCHMARKS.md with the
exact commands. The query mixes of issue 12 (queries per server CPU-second against NSD and Knot)
run on the `--qps-names` zone, in `bench/_scale_qps.py` (every server started up front, then
`--rounds` rounds with the servers' order rotated, the median reported); then the INSYNC latency of 1,000-change
batches through the change API on the `--insync-names` zone (the biggest), in
`bench/_scale_insync.py`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query

from authd.localnet import find_tool, free_port, stop
from bench import _scale_insync, _scale_qps
from bench._report import write_section as replace_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## authd at scale: loading big zones (issue 12)"
ORIGIN = "big.test."


def generate_zone(n: int, seed: int = 1) -> str:
    """N names: A for each, AAAA for every 4th, a CNAME instead of data for every 10th, to a
    random other name of the zone that has an A (as a `www` CNAME to a host is written).

    The targets are the owners' full names, random suffix included: until 2026-12-02 they
    lacked it (`h0001234.big.test.`), so every CNAME dangled and each CNAME question of the
    query mixes measured a CNAME + NXDOMAIN answer."""
    rnd = random.Random(seed)
    names = [f"h{i:07d}-{rnd.getrandbits(20):05x}" for i in range(n)]
    pick = random.Random(seed + 1)
    out = [f"$ORIGIN {ORIGIN}", "$TTL 300",
           f"@ IN SOA ns1.{ORIGIN} hostmaster.{ORIGIN} 1 7200 3600 1209600 300",
           "@ IN NS ns1", "ns1 IN A 192.0.2.53"]
    for i, name in enumerate(names):
        if i % 10 == 9:
            j = pick.randrange(n)
            if j % 10 == 9:  # a CNAME owner: its neighbour has the A
                j -= 1
            out.append(f"{name} 600 IN CNAME {names[j]}.{ORIGIN}")
            continue
        out.append(f"{name} IN A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
        if i % 4 == 0:
            out.append(f"{name} IN AAAA 2001:db8::{i >> 16:x}:{i & 0xFFFF:x}")
    return "\n".join(out) + "\n"


@dataclass
class Result:
    server: str
    names: int
    seconds: float | None  # to the first answer; None: not answering within the limit
    rss_mb: int | None
    command: str
    cpu: float | None = None  # the server's user + system CPU seconds up to the first answer
    peak_mb: int | None = None  # its peak resident set (VmHWM)
    # the store runs: to the change API's port accepting (a new store's import committed)
    api_seconds: float | None = None
    api_cpu: float | None = None
    api_peak_mb: int | None = None
    api_rss_mb: int | None = None


def _family(pid: int) -> list[int]:
    pids = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(k) for k in kids]
    except OSError:
        pass
    return pids


def rss_mb(pid: int, field: str = "VmRSS") -> int:
    """Resident memory (or, with `VmHWM`, its peak) of a process and its children, in MB."""
    total = 0
    for p in _family(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total // 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (/proc/PID/stat)."""
    total = 0
    for p in _family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def time_to_answer(cmd: list[str], port: int, label: str, names: int, limit: float,
                   cwd: Path | None = None, api_port: int | None = None) -> Result:
    """Start `cmd`, time its first DNS answer and then, with `api_port`, the moment its
    change API accepts connections (a new store answers DNS from the file while it is
    seeded, and opens the API once the import committed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    query = dns.message.make_query(ORIGIN, "SOA")
    seconds = None
    try:
        while time.perf_counter() - start < limit:
            if proc.poll() is not None:
                print(f"  {label}: exited with {proc.returncode} before answering", flush=True)
                break
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.2)
            except (dns.exception.Timeout, OSError):
                continue
            if reply.answer:
                seconds = time.perf_counter() - start
                break
        cpu = cpu_seconds(proc.pid) if seconds is not None else None
        mem = rss_mb(proc.pid) if seconds is not None else None
        peak = rss_mb(proc.pid, "VmHWM") if seconds is not None else None
        api = api_cpu = api_peak = api_rss = None
        if api_port is not None and seconds is not None:
            while time.perf_counter() - start < limit and proc.poll() is None:
                if _accepting(api_port):
                    api = time.perf_counter() - start
                    api_cpu, api_peak = cpu_seconds(proc.pid), rss_mb(proc.pid, "VmHWM")
                    api_rss = rss_mb(proc.pid)
                    break
                time.sleep(0.05)
    finally:
        stop(proc)
    shown = (f"{seconds:.1f} s ({cpu:.1f} s CPU), {mem} MB (peak {peak} MB)" if seconds is not None
             else f"no answer within {limit:.0f} s")
    if api is not None:
        shown += f"; change API open at {api:.1f} s ({api_cpu:.1f} s CPU), {api_rss} MB (peak {api_peak} MB)"
    print(f"  {label} ({names:,} names): {shown}", flush=True)
    return Result(label, names, seconds, mem, " ".join(cmd), cpu, peak, api, api_cpu, api_peak, api_rss)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.split("\n\n")[0])
    ap.add_argument("--names", default="200000,1000000",
                    help="comma-separated zone sizes in names (default: %(default)s)")
    ap.add_argument("--limit", type=float, default=300.0,
                    help="seconds to wait for a server's first answer (default: %(default)s)")
    ap.add_argument("--servers", default="authd,authd-store,authd-restart,nsd,knot",
                    help="which to run (default: %(default)s)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--qps-names", type=int, default=200_000,
                    help="zone size (one of --names) the query mixes run on; 0: none "
                         "(default: %(default)s)")
    ap.add_argument("--qps-duration", type=float, default=15,
                    help="seconds of dnsperf per query mix and server, shared out over the "
                         "--rounds (at least 3 s a pass) (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=_scale_qps.ROUNDS,
                    help="rounds of the query mixes: in each, every server a dnsperf pass per "
                         "mix, the servers' order rotated per round; the median over the rounds "
                         "is reported (default: %(default)s)")
    ap.add_argument("--qps-servers", default="authd,authd-pyudp,authd-control,authd-pipeline,nsd,knot",
                    help="servers the query mixes run against (default: %(default)s)")
    ap.add_argument("--insync-names", type=int, default=None,
                    help="zone size (one of --names) the 1,000-change batches run on, timed to "
                         "INSYNC; 0: none (default: the biggest of --names)")
    ap.add_argument("--insync-batches", type=int, default=100,
                    help="change batches per shape (create/delete, upsert) (default: %(default)s: a p99 of "
                         "fewer is their maximum)")
    ap.add_argument("--insync-only", action="store_true",
                    help="run only the change batches: no loading, no query mixes")
    args = ap.parse_args(argv)
    args.load = os.getloadavg()[0]  # the rest of the machine's work, said beside the figures
    sizes = [int(s) for s in args.names.split(",") if s]
    servers = args.servers.split(",")
    if args.insync_names is None:
        args.insync_names = max(sizes, default=0)
    if args.insync_only:
        servers, args.qps_names = [], 0
        sizes = [n for n in sizes if n == args.insync_names]
    status = 0
    nsd, knotd = find_tool("nsd"), find_tool("knotd")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        for n in sizes:
            zdir = work / f"z{n}"
            zdir.mkdir()
            zfile = zdir / f"{ORIGIN}zone"
            t = time.perf_counter()
            zfile.write_text(generate_zone(n))
            lines = sum(1 for _ in zfile.open())
            print(f"zone of {n:,} names ({lines:,} lines) written in {time.perf_counter() - t:.1f} s",
                  flush=True)
            for server in servers:
                port = free_port()
                api_port = None
                if server == "authd":
                    cmd = [sys.executable, "-m", "authd", "serve", "--zones", str(zdir), "--listen",
                           f"127.0.0.1:{port}", "--control", "off", "--log-level", "WARNING"]
                elif server in ("authd-store", "authd-restart"):  # restart: the same store file
                    api_port = free_port()  # waited for too: the restart needs a committed seed
                    cmd = [sys.executable, "-m", "authd", "serve", "--zones", str(zdir), "--listen",
                           f"127.0.0.1:{port}", "--store", str(work / f"store-{n}.sqlite3"),
                           "--control", f"127.0.0.1:{api_port}", "--log-level", "WARNING"]
                elif server == "nsd" and nsd:
                    d = work / f"nsd-{n}"
                    d.mkdir()
                    (d / "nsd.conf").write_text(
                        f'server:\n  ip-address: 127.0.0.1@{port}\n  username: ""\n  chroot: ""\n'
                        f'  zonesdir: "{d}"\n  database: ""\n  pidfile: "{d}/nsd.pid"\n'
                        f'  xfrdfile: "{d}/xfrd.state"\n  zonelistfile: "{d}/zone.list"\n'
                        f'  logfile: "{d}/nsd.log"\n  server-count: 1\n  verbosity: 0\n'
                        f'remote-control:\n  control-enable: no\n'
                        f'zone:\n  name: {ORIGIN}\n  zonefile: "{zfile}"\n')
                    cmd = [nsd, "-d", "-c", str(d / "nsd.conf")]
                elif server == "knot" and knotd:
                    d = work / f"knot-{n}"
                    d.mkdir()
                    (d / "knot.conf").write_text(
                        f'server:\n  listen: 127.0.0.1@{port}\n  rundir: "{d}"\n'
                        f'database:\n  storage: "{d}"\n'
                        f'log:\n  - target: "{d}/knot.log"\n    any: warning\n'
                        f'template:\n  - id: default\n    storage: "{zdir}"\n    journal-content: none\n'
                        f'    zonefile-sync: -1\n    semantic-checks: off\n'
                        f'zone:\n  - domain: {ORIGIN}\n    file: "{zfile}"\n')
                    cmd = [knotd, "-c", str(d / "knot.conf")]
                else:
                    print(f"  {server}: skipped (missing tool or unknown name)")
                    continue
                results.append(time_to_answer(cmd, port, server, n, args.limit, cwd=ROOT,
                                              api_port=api_port))
            if n == args.qps_names:  # issue 12's query mixes (bench/_scale_qps.py)
                mixes = _scale_qps.run_mixes(zdir, zfile, ORIGIN, args.qps_servers.split(","),
                                             args.qps_duration, work, args.limit, args.rounds)
                if mixes:
                    print(_scale_qps.table(mixes, n, args.qps_duration), flush=True)
                if mixes and not args.no_write:
                    from bench import _udp_loop

                    extra = _scale_qps.notes(mixes, _udp_loop.measure(args.qps_duration),
                                             _scale_qps.template_bytes(zfile))
                    print(f"wrote {_scale_qps.write(mixes, n, args.qps_duration, extra)}")
            if n == args.insync_names:  # the change API on this zone (bench/_scale_insync.py)
                store = work / f"store-{n}.sqlite3"  # the authd-store load's, if it ran
                insync = _scale_insync.run(zdir, zfile, ORIGIN, work, batches=args.insync_batches,
                                           limit=args.limit, store=store if store.exists() else None)
                _scale_insync.print_summary(insync)
                status |= _scale_insync.failed(insync)
                if not args.no_write:
                    print(f"wrote {_scale_insync.write(insync)}")
    if not args.no_write and results:
        write_section(results, args)
    return status


# What the profile (`python -m cProfile`, 1M names) says, kept with the table it explains.
NOTES = """\
Where the time goes (cProfile of the 1M-name load, in process; the profiler's shares). The
zone file path is about two thirds parsing and checking (`zonefiles.masterfile.read_tuples`: splitting,
owner names, per-type canonical values; `zonefiles.zonefile.check_zone` about a tenth of that) and one
third building the index (`dns.answer.Zone.build`: per record set a `PackedRRset` from wire forms,
a `Plain`, the owner's `Name` and key, its node dict, `existing`). No dnspython rdata object is
made at load: they are made from the texts when an answer needs one (a CNAME target, glue,
AXFR). The cyclic garbage collector is paused during a load (`authd.gcpause`): it took a third
to a half of the time before. The store path adds the content hash and one bulk insert of a
new zone (`SQLCore.import_sets`: `executemany` of rows encoded and checked per batch); the
index is fed the sets just imported, not a read-back. A restart on an unchanged file skips
the parse (`zonefiles.seed.seed_dir`: the file's digest is recorded) and reads the snapshot
(one `json.loads` per 65,536 rows, then a `RecordSet` per row).
The floor in pure Python is about 8 µs of CPU per line read and 7 µs per record set built on this
machine (allocation of some ten small objects per set); memory is about 1.2 KB per record set,
most of it a dict per owner name (224 B), the packed RRset (120 B), the stored `RecordSet` and its
key (170 B) and the owner's key and labels.
A served zone's file (`authd serve --zones DIR`, the `authd` row) is built straight into its
served zone as it is read (`zonefiles.fastbuild`, branch `load3`): the reader
(`masterfile.read_wired`) hands over each A/AAAA value's wire form with its text, one
`RecordSet` per (owner, type) is made as the line is read and the dict holding them becomes
the zone's `records`, and each owner is split, keyed and given its `Name` once (a suffix's
labels and whether they are inside the zone once per distinct suffix). The zone-level rules
are a cheap test on the way; a file it does not pass clean goes through `check_zone` for its
error and line (a DNAME zone is then built the reference way). Measured 2026-12-02 02:29 UTC
with `python -m bench scale --names 1000000 --servers authd --no-write --insync-names 0`, main
(7f6f8bb) and `load3` one after the other (load average 1.3): main 18.3 s to the first answer,
18.2 s CPU, 1435 MB (peak 1477 MB); `load3` 12.1 s, 11.9 s CPU, 1370 MB (peak 1473 MB). At
load 3.4-3.7 (02:20 UTC): main 22.9 s, 18.6 s CPU; `load3` 19.5 s, 13.4 s CPU. The store
seed (`--servers authd-store`, which reads the file without building a zone) is unchanged in
time, 28.2 s / 27.7 s CPU on main and 29.1 s / 28.6 s CPU on `load3`, and holds 1549 -> 1459 MB
(the record sets are made as the lines are read, with no grouping lists). The profile's new
shape (cProfile, 200,000 names, shares of the load): reading 55 % (owner names 15 %, AAAA
canonical-text checks 8 %, CNAME targets and other values 9 %), making the record sets 15 %,
building the served zone 29 % (its own loop 16 %: per record set an `AddressRRset` or
`PackedRRset`, a `Plain`, the owner's key, `Name` and node dict), the index 0.3 %."""


def shown_command(command: str) -> str:
    """A command as a reader runs it from the repository: the venv's python, `$WORK` for the
    run's temporary directory."""
    command = command.replace(sys.executable, ".venv/bin/python")
    return re.sub(r"/tmp/bench-scale-[^/ ]+", "$WORK", command)


def write_section(results: list[Result], args: argparse.Namespace) -> None:
    by = {(r.server, r.names): r for r in results}
    lines = [
        SECTION, "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python -m bench scale --names {args.names} --servers {args.servers}` on "
        f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; load average {args.load:.1f} at the start). Zones: N names with random suffixes; A for each, AAAA "
        "for every 4th, a CNAME instead for every 10th (`bench.scale.generate_zone`). Time is "
        "from process start to the first answer (an SOA query polled every 0.2 s); CPU is the "
        "server's own user + system time up to then (less stretched than the wall time by the "
        "rest of the machine's load); memory is the server's resident set then, and its peak. "
        "`authd-store` seeds a new SQLite file from the zone file (it answers DNS from the file "
        "while the import runs, and opens the change API once it has committed: the last "
        "column, waited for before the next run); `authd-restart` starts again "
        "on that file (unchanged zone: the index comes from the store's snapshot). Other work "
        "on the machine shares its 2 cores.",
        "",
        "| names | server | first answer | CPU | RSS | peak RSS | vs NSD (time) | change API open |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        nsd = by.get(("nsd", r.names))
        ratio = (f"{r.seconds / nsd.seconds:.1f}x" if r.seconds and nsd and nsd.seconds else "—")
        shown = f"{r.seconds:.1f} s" if r.seconds is not None else f"> {args.limit:.0f} s"
        cpu = f"{r.cpu:.1f} s" if r.cpu is not None else "—"
        api = (f"{r.api_seconds:.1f} s ({r.api_cpu:.1f} s CPU; {r.api_rss_mb} MB, peak {r.api_peak_mb} MB)"
               if r.api_seconds is not None else "—")
        lines.append(f"| {r.names:,} | {r.server} | {shown} | {cpu} | "
                     f"{r.rss_mb if r.rss_mb is not None else '—'} MB | "
                     f"{r.peak_mb if r.peak_mb is not None else '—'} MB | {ratio} | {api} |")
    lines += ["", NOTES]
    lines += ["", "Commands (`$WORK` is a temporary directory):", "", "```"]
    lines += [f"# {r.server}, {r.names:,} names\n{shown_command(r.command)}" for r in results]
    lines += ["```", ""]
    print(f"wrote {replace_section(SECTION, chr(10).join(lines))}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
