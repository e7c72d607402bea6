"""`python -m bench soak`: mixed DNS load, change-API churn and three enactors on the fixed
design, all at once against one real `authd serve`, for a while (issue 10: ten minutes).

What runs, all on loopback, all started and stopped by PID here:
- `authd serve` with the store and the change API;
- the planner writing a new plan every `--plan-every` seconds, and three `enactor run`
  processes (the fixed design) installing them: lock, build, flip, clean, over and over;
- dnsperf at `--qps` with a mix of the endpoint names and random names (existing, missing);
- a churn loop sending change batches (UPSERT / DELETE of random names) through boto3;
- a watcher asking the endpoint names (A and AAAA) every 50 ms with dnspython.

It passes when: the watcher never saw an empty answer (NOERROR with zero records, or any
other rcode) for an endpoint name, and at most 0.1 % of its queries went unanswered within
1 s (UDP on a shared, busy machine: a lost query is counted and shown, apart from empties); authd's RSS in the last third of the run stayed within
10 % of its RSS once warm (`memory_verdict`: bounded caches fill during the warm-up and then
stay flat, a leak keeps climbing); and no process logged an ERROR line or a traceback. The figures go to
the "Soak" section of BENCHMARKS.md with the exact command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from authd.localnet import find_tool, free_port, stop, wait_answering
from bench._report import write_section as replace_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Soak: DNS load, change churn and the enactors together (issue 10)"
ENDPOINTS = [("dynamodb.us-east-1.api.aws.", "A"), ("dynamodb.us-east-1.api.aws.", "AAAA"),
             ("dynamodb.us-east-1.amazonaws.com.", "A")]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def memory_verdict(samples: list[tuple[float, int]], duration: float, warmup: float,
                   bound: float = 0.10) -> dict:
    """Tell growth into bounded caches (which then stays flat) from a leak, from RSS samples
    (seconds since the start, kB).

    The baseline is the first sample once the caches are warm: `warmup` seconds in, at most a
    third of the run. The run passes when every sample in its last third stays within `bound`
    of that baseline: a cache that filled during the warm-up keeps RSS flat there, a leak keeps
    climbing. Also given, for the record: the old measure (the sample at 60 s against the
    largest of the last six) and the slope over the last third in MB per minute."""
    warm = min(warmup, duration / 3)
    base = next((kb for t, kb in samples if t >= warm), samples[0][1])
    tail = [(t, kb) for t, kb in samples if t >= duration * 2 / 3] or samples[-1:]
    peak = max(kb for _, kb in tail)
    early = next((kb for t, kb in samples if t >= 60), samples[0][1])
    end = max(kb for _, kb in samples[-6:])
    slope = 0.0
    if len(tail) >= 2:
        mt = sum(t for t, _ in tail) / len(tail)
        mk = sum(kb for _, kb in tail) / len(tail)
        var = sum((t - mt) ** 2 for t, _ in tail)
        if var:
            slope = sum((t - mt) * (kb - mk) for t, kb in tail) / var * 60 / 1024
    growth = peak / base - 1 if base else 0.0
    return {
        "rss_warm_at_s": round(warm), "rss_mb_warm": round(base / 1024, 1),
        "rss_mb_last_third_max": round(peak / 1024, 1), "rss_growth": round(growth, 4),
        "rss_mb_at_60s": round(early / 1024, 1), "rss_mb_end": round(end / 1024, 1),
        "rss_growth_since_60s": round(end / early - 1, 4) if early else 0.0,
        "rss_mb_per_min_last_third": round(slope, 2), "memory_ok": growth <= bound,
    }


def query_file(path: Path, n: int = 20_000, seed: int = 1) -> None:
    """Endpoint names, existing example.test names and random missing ones, shuffled."""
    rnd = random.Random(seed)
    lines = []
    for _ in range(n):
        r = rnd.random()
        if r < 0.3:
            name, qtype = rnd.choice(ENDPOINTS)
        elif r < 0.6:
            name, qtype = rnd.choice(["host.example.test.", "www.example.test.", "mail.example.test."]), "A"
        else:
            name, qtype = f"x{rnd.getrandbits(40):010x}.example.test.", rnd.choice(["A", "AAAA"])
        lines.append(f"{name} {qtype}")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long (default: %(default)s)")
    ap.add_argument("--warmup", type=float, default=180.0,
                    help="seconds before the memory baseline is taken, once authd's bounded "
                         "caches are full; at most a third of the run (default: %(default)s)")
    ap.add_argument("--qps", type=int, default=2000, help="dnsperf query rate (default: %(default)s)")
    ap.add_argument("--plan-every", type=float, default=5.0,
                    help="seconds between new plans (default: %(default)s)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--trace-memory", choices=["sites", "objects"], default=None,
                    help="run authd under bench/_memtrace.py and print its report at the end: "
                         "'sites' the top growth sites by tracemalloc (slow; RSS not comparable), "
                         "'objects' live objects by type and Python's blocks beside RSS; "
                         "implies --no-write")
    args = ap.parse_args(argv)
    dnsperf = find_tool("dnsperf")
    if dnsperf is None:
        print("bench soak needs dnsperf (Debian package dnsperf)", file=sys.stderr)
        return 2
    duration = args.minutes * 60
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    dport, cport = free_port(), free_port()
    api = f"http://127.0.0.1:{cport}"
    procs: list[subprocess.Popen] = []
    logs = work / "logs"
    logs.mkdir()

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "w")  # noqa: SIM115 - lives as long as the process
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        procs.append(p)
        return p

    py = sys.executable
    serve = ["serve", "--zones", str(ROOT / "zones"), "--listen", f"127.0.0.1:{dport}",
             "--control", f"127.0.0.1:{cport}", "--store", str(work / "store.sqlite3")]
    trace = work / "memtrace.txt"
    if args.trace_memory:
        serve = ["-m", "bench._memtrace", "--out", str(trace), "--every", "30",
                 "--first", str(min(args.warmup, duration / 3)),
                 *(["--objects", "--collect"] if args.trace_memory == "objects" else []),
                 "--", *serve]
    else:
        serve = ["-m", "authd", *serve]
    authd = start("authd", [py, *serve])
    result: dict = {}
    try:
        wait_answering(dport, authd, "authd", qname="api.aws.")
        start("planner", [py, "-m", "enactor", "planner", "--plans", str(work / "plans"),
                          "--every", str(args.plan_every)])
        for who in ("enactor-a", "enactor-b", "enactor-c"):
            start(who, [py, "-m", "enactor", "run", "--name", who, "--plans", str(work / "plans"),
                        "--api", api, "--status-dir", str(work / "status"), "--defects", "fixed"])
        qfile = work / "queries.txt"
        query_file(qfile)
        start("dnsperf", [dnsperf, "-s", "127.0.0.1", "-p", str(dport), "-d", str(qfile), "-l",
                          str(int(duration)), "-Q", str(args.qps), "-c", "4"])
        stop_at = time.monotonic() + duration
        empty: list[str] = []
        unanswered: list[str] = []  # timeouts: a starved machine, not an empty answer
        watched = [0]
        churned = [0, 0]  # accepted, rejected

        def watch() -> None:
            qs = [(n, t, dns.message.make_query(n, t)) for n, t in ENDPOINTS]
            while time.monotonic() < stop_at:
                for name, qtype, q in qs:
                    try:
                        r = dns.query.udp(q, "127.0.0.1", port=dport, timeout=1.0)
                    except Exception as exc:  # noqa: BLE001 - a lost answer is recorded, not fatal
                        unanswered.append(f"{time.strftime('%H:%M:%S')} {name} {qtype}: no answer ({exc})")
                        continue
                    watched[0] += 1
                    if r.rcode() != dns.rcode.NOERROR or not r.answer:
                        empty.append(f"{time.strftime('%H:%M:%S')} {name} {qtype}: "
                                     f"{dns.rcode.to_text(r.rcode())}, {len(r.answer)} answers")
                time.sleep(0.05)

        def churn() -> None:
            import boto3
            from botocore.config import Config

            r53 = boto3.client("route53", endpoint_url=api, region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test",
                               config=Config(retries={"max_attempts": 1}))
            rnd = random.Random(2)
            live: list[str] = []
            while time.monotonic() < stop_at:
                # a steady state: about 100 live names, so memory measures leaks, not data
                if live and (len(live) >= 100 or rnd.random() < 0.4):
                    name = live.pop(rnd.randrange(len(live)))
                    action, value = "DELETE", "192.0.2.44"
                else:
                    name = f"churn-{rnd.getrandbits(32):08x}.example.test."
                    action, value = "CREATE", "192.0.2.44"
                    live.append(name)
                try:
                    r53.change_resource_record_sets(HostedZoneId="Z0EXAMPLE0TEST", ChangeBatch={
                        "Changes": [{"Action": action, "ResourceRecordSet": {
                            "Name": name, "Type": "A", "TTL": 60,
                            "ResourceRecords": [{"Value": value}]}}]})
                    churned[0] += 1
                except Exception:  # noqa: BLE001 - counted; a soak reports, it does not stop
                    churned[1] += 1
                time.sleep(0.05)

        threads = [threading.Thread(target=watch, daemon=True), threading.Thread(target=churn, daemon=True)]
        for t in threads:
            t.start()
        rss: list[tuple[float, int]] = []
        t0 = time.monotonic()
        last_print = 0.0
        while time.monotonic() < stop_at:
            now = time.monotonic() - t0
            rss.append((now, rss_kb(authd.pid)))
            if now - last_print >= 30:
                print(f"  {now:5.0f} s: authd RSS {rss[-1][1] / 1024:.0f} MB, {watched[0]} endpoint "
                      f"answers checked, {len(empty)} empty, {len(unanswered)} unanswered, "
                      f"{churned[0]} batches", flush=True)
                last_print = now
            for p in procs:
                if p.poll() is not None and p is not procs[-1]:  # dnsperf may end on time
                    raise RuntimeError(f"{p.args[2] if len(p.args) > 2 else p.args} exited with {p.returncode}")
            time.sleep(5)
        for t in threads:
            t.join(10)
        memory = memory_verdict(rss, duration, args.warmup)
        errors = []
        for log in sorted(logs.glob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if " ERROR " in line or "Traceback" in line or " CRITICAL " in line:
                    errors.append(f"{log.stem}: {line[:200]}")
        perf = (logs / "dnsperf.log").read_text(errors="replace") if (logs / "dnsperf.log").exists() else ""
        sent = next((ln.split()[-1] for ln in perf.splitlines() if "Queries sent" in ln), "?")
        lost = next((ln.split(":", 1)[1].strip() for ln in perf.splitlines() if "Queries lost" in ln), "?")
        plans = len(list((work / "plans").glob("plan-*.json")))
        result = {
            "minutes": args.minutes, "qps": args.qps, "endpoint_answers_checked": watched[0],
            "empty_endpoint_answers": len(empty), "empty_examples": empty[:5] + unanswered[:3],
            "unanswered_endpoint_queries": len(unanswered),
            **memory, "error_lines": len(errors), "error_examples": errors[:5],
            "batches_accepted": churned[0], "batches_rejected": churned[1], "plans_written": plans,
            "dnsperf_sent": sent, "dnsperf_lost": lost,
        }
        result["passed"] = (not empty and len(unanswered) * 1000 <= watched[0]
                            and memory["memory_ok"] and not errors)
        print(json.dumps(result, indent=2))
    finally:
        for p in reversed(procs):
            stop(p)
    if args.trace_memory:
        print(trace.read_text() if trace.exists() else "no tracemalloc report was written")
    elif not args.no_write and result:
        write_section(result, args)
    return 0 if result.get("passed") else 1


def write_section(r: dict, args: argparse.Namespace) -> None:
    lines = [
        SECTION, "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python -m bench soak --minutes {args.minutes:g} --qps {args.qps}` (`make soak`) on "
        f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}): one `authd serve` with the SQLite store and the change "
        f"API; the planner writing a plan every {args.plan_every:g} s and three `enactor run` "
        f"processes on the fixed design installing them; dnsperf at {args.qps} queries/s "
        "(30 % endpoint names, 30 % existing names, 40 % random missing names); a boto3 loop "
        "creating and deleting names; a watcher asking the endpoint names every 50 ms.",
        "",
        "| measure | value |", "|---|---:|",
        f"| result | {'passed' if r['passed'] else '**failed**'} |",
        f"| endpoint answers checked by the watcher | {r['endpoint_answers_checked']:,} |",
        f"| empty endpoint answers (NOERROR with no records, or another rcode) | "
        f"{r['empty_endpoint_answers']} |",
        f"| endpoint queries unanswered within 1 s (at most 0.1 % allowed) | "
        f"{r['unanswered_endpoint_queries']} |",
        f"| plans written and installed | {r['plans_written']} |",
        f"| change batches accepted / rejected | {r['batches_accepted']:,} / {r['batches_rejected']} |",
        f"| dnsperf queries sent / lost | {r['dnsperf_sent']} / {r['dnsperf_lost']} |",
        f"| authd RSS once warm (at {r['rss_warm_at_s']} s), largest in the last third | "
        f"{r['rss_mb_warm']} MB, {r['rss_mb_last_third_max']} MB ({r['rss_growth'] * 100:+.1f} %; "
        "bound +10 %) |",
        f"| authd RSS slope over the last third | {r['rss_mb_per_min_last_third']:+.2f} MB/min |",
        f"| the earlier measure: RSS at 60 s, at the end | {r['rss_mb_at_60s']} MB, "
        f"{r['rss_mb_end']} MB ({r['rss_growth_since_60s'] * 100:+.1f} %) |",
        f"| ERROR lines or tracebacks in any log | {r['error_lines']} |",
        "",
        "**What the memory bound measures** (changed on 2026-12-01; issue 10 asks for \"no memory "
        "growth beyond 10 % after warm-up\"). authd keeps bounded caches that this traffic fills "
        "with one-off values (new churn names, a new lock value and a new SOA serial with every "
        "batch). Growth into a bounded cache stops when it is full; a leak does not. So the "
        f"baseline is RSS once the caches are warm ({r['rss_warm_at_s']} s in: `--warmup`, at "
        "most a third of the run), and the bound is that every sample in the last third stays "
        "within 10 % of it (`bench/soak.py` `memory_verdict`, tested in "
        "`tests/test_bench_soak.py`); the slope over the last third is shown to tell the two "
        "apart. The earlier measure (RSS at 60 s against the end) is kept in the table. The "
        "first ten-minute run, with caches of 65,536 entries, measured 49.5 MB -> 86.9 MB "
        "(+75.6 %) by that earlier measure.",
        "",
        "The caches and their full sizes (bytes per entry by tracemalloc x entries): "
        "`records.canonical_name` 170 B x 1,024 = 0.2 MB; `records.canonical_value` 270 B x 512 "
        "= 0.14 MB, dotted quads not cached, SOA texts 16 entries of their own; "
        "`answer._owner` 380 B x 1,024 = 0.4 MB; `answer._compiled` 0.9-1.8 KB x 1,024 = under "
        "2 MB, SOAs 64 entries of their own; the serving index's rendered answers about 620 B "
        "per UDP question x 25,000 = 16 MB (it starts over when full). "
        "`python -m bench soak --trace-memory sites` (tracemalloc) or `objects` (live objects by "
        "type) shows where authd's memory grows.",
        "",
    ]
    if r["rss_mb_per_min_last_third"] > 0.2:
        lines += [
            f"RSS still rose {r['rss_mb_per_min_last_third']:.2f} MB a minute over the last "
            "third: within the bound for this run, but not shown flat; a longer run would tell "
            "a slow leak from the last caches filling.", ""]
    if r["empty_examples"] or r["error_examples"]:
        lines += ["First problems:", "", "```", *r["empty_examples"], *r["error_examples"], "```", ""]
    print(f"wrote {replace_section(SECTION, chr(10).join(lines))}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
