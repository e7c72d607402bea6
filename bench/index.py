"""Serving index apply time by zone size: `ServingIndex.apply` of a SNAPSHOT, a 1-change and a
1,000-change CHANGE entry into zones of 10k, 100k and 1M record sets.

Benchmark (not a test). Pure in-process timing of the data plane's journal path (no store, no
HTTP), the part of "request to INSYNC" that runs on the trio thread. The peer is the same
measurement on another checkout (`--label before` run with PYTHONPATH pointing at main), so the
before/after figures come from one script.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from pathlib import Path

import dns.message

from authd.dns.index import ServingIndex
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import RecordSet

ORIGIN = "bench.test."
ZID = "Z0BENCH0TEST"
SECTION = "### serving index apply"


def zone_sets(n: int) -> list[RecordSet]:
    """SOA, NS, and n-2 A record sets two labels below the apex (so there are ENTs), with a
    weighted set and an alias among them, as the enactor's zones have."""
    out = [
        RecordSet(ORIGIN, "SOA", 60, (f"ns1.{ORIGIN} admin.{ORIGIN} 1 7200 900 1209600 60",)),
        RecordSet(ORIGIN, "NS", 172800, (f"ns1.{ORIGIN}",)),
    ]
    for i in range(n - 2):
        out.append(RecordSet(f"h{i}.g{i // 100}.{ORIGIN}", "A", 60,
                             (f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",)))
    return out


def entry(seq: int, kind: EntryKind, puts=(), deletes=()) -> JournalEntry:
    return JournalEntry(seq=seq, kind=kind, zone_id=ZID, zone_name=ORIGIN, serial=seq,
                        change_id=f"C{seq:012d}", puts=tuple(puts), deletes=tuple(deletes))


def changes(size: int, round_: int) -> tuple[list[RecordSet], list]:
    """`size` new A sets under a fresh ENT, and the keys to delete them again."""
    sets = [RecordSet(f"n{j}.r{round_}.{ORIGIN}", "A", 60, (f"192.0.2.{j % 250}",))
            for j in range(size)]
    return sets, [rs.key for rs in sets]


WARM = 5000  # questions rendered and cached before each change in the "answers cached" rounds


def warm_queries(n: int) -> list[bytes]:
    """A questions for existing names of the zone (`zone_sets`), to fill the answer tables."""
    return [dns.message.make_query(f"h{i}.g{i // 100}.{ORIGIN}", "A").to_wire()
            for i in range(min(WARM, n - 2))]


def bench_size(n: int, reps: int) -> dict:
    sets = zone_sets(n)
    gc.collect()
    index = ServingIndex()
    t0 = time.perf_counter()
    index.apply(entry(1, EntryKind.SNAPSHOT, puts=sets))
    snapshot_s = time.perf_counter() - t0
    seq = 1
    out: dict = {"n": n, "snapshot_s": snapshot_s, "reps": reps}
    for size in (1, 1000):
        times, kinds = [], {"create": [], "delete": []}
        for r in range(reps):
            puts, keys = changes(size, r)
            for kind, e in (("create", (puts, ())), ("delete", ((), keys))):
                seq += 1  # create, then delete again (the zone stays at n record sets)
                t = time.perf_counter()
                index.apply(entry(seq, EntryKind.CHANGE, puts=e[0], deletes=e[1]))
                times.append((time.perf_counter() - t) * 1000)
                kinds[kind].append(times[-1])
        for kind, ts in kinds.items():
            out[f"c{size}_{kind}_p50"] = statistics.median(ts)
            out[f"c{size}_{kind}_min"] = min(ts)
        times.sort()
        out[f"c{size}_p50"] = statistics.median(times)
        out[f"c{size}_max"] = times[-1]
    # The same 1,000-change entries with the zone's answers rendered and cached first (as a
    # serving node has them): the entry must also forget those answers.
    asks = warm_queries(n)
    kinds = {"create": [], "delete": []}
    for r in range(max(1, reps // 2)):
        puts, keys = changes(1000, reps + r)
        for kind, e in (("create", (puts, ())), ("delete", ((), keys))):
            for wire in asks:
                index.respond(wire, tcp=False)
            seq += 1
            t = time.perf_counter()
            index.apply(entry(seq, EntryKind.CHANGE, puts=e[0], deletes=e[1]))
            kinds[kind].append((time.perf_counter() - t) * 1000)
    for kind, ts in kinds.items():
        out[f"warm_{kind}_p50"] = statistics.median(ts)
        out[f"warm_{kind}_min"] = min(ts)
    out["warm_answers"] = len(asks)
    del index, sets
    gc.collect()
    return out


def write_section(text: str) -> None:
    path = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
    doc = path.read_text() if path.exists() else ""
    start = doc.find(SECTION)
    if start < 0:
        anchor = doc.find("## authd: change API and store (issue 3)")
        nxt = doc.find("\n## ", anchor + 1) if anchor >= 0 else -1
        at = nxt + 1 if nxt >= 0 else len(doc)
        doc = doc[:at] + text + "\n" + doc[at:]
    else:
        end = doc.find("\n#", start + len(SECTION))
        doc = doc[:start] + text + ("\n" + doc[end + 1:] if end >= 0 else "")
    path.write_text(doc)


def _fmt(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:,.0f}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench index", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="zone sizes in record sets")
    ap.add_argument("--reps", type=int, default=10,
                    help="create+delete rounds per change size (each round is two entries); "
                    "half as many with answers cached")
    ap.add_argument("--label", default="after", help="name for this run's figures in --json")
    ap.add_argument("--json", help="append this run's rows to this JSON file (keyed by label)")
    ap.add_argument("--note", help="with --json: what this run measured (e.g. which checkout), "
                    "printed wherever the file is used as --before")
    ap.add_argument("--before", action="append", default=[],
                    help="JSON file holding a 'before' run to compare against (repeatable: the "
                    "first gives the figures in brackets, each further one a line below the table)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    load_start = os.getloadavg()[0]
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"zone of {n:,} record sets ...", flush=True)
        rows.append(bench_size(n, args.reps))
        print(rows[-1], flush=True)
    if args.json:
        path = Path(args.json)
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc[args.label] = rows
        doc["load"] = f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
        if args.note:
            doc["note"] = args.note
        path.write_text(json.dumps(doc, indent=1))
    befores = [(f, json.loads(Path(f).read_text())) for f in args.before]
    before = {r["n"]: r for r in befores[0][1]["before"]} if befores else {}
    machine = (f"{platform.machine()}, {os.cpu_count()} cores shared with other sessions' work "
               f"(load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the "
               f"end), Python {platform.python_version()}")
    cmd = "python -m bench index" + "".join(f" --before {f}" for f in args.before)
    if args.reps != 10:
        cmd += f" --reps {args.reps}"
    lines = [
        SECTION, "",
        f"Command: `{cmd}` (`bench/index.py`). Machine: {machine}. Measured "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        "`ServingIndex.apply` in-process (what runs on the trio thread per journal entry); a "
        "change entry creates 1 or 1,000 A record sets (one address each, TTL 60) under a new "
        "name, the next deletes them again; p50 and max over the entries, and the minimum (in "
        "brackets after a p50), which bursts of other work on the machine do not move. "
        "\"Answers cached\": "
        f"the same with {WARM:,} of the zone's questions answered (so rendered and cached) "
        "before each entry, which the entry must forget.", "",
        "| record sets | SNAPSHOT load s | 1-change p50 / max ms | 1,000-change create p50 ms "
        "| 1,000-change delete p50 ms | answers cached: create; delete p50 ms "
        "| 1,000-change max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = before.get(r["n"], {})

        def one(key: str, r=r, b=b) -> str:
            now = _fmt(r[key])
            low = key.replace("_p50", "_min")
            if low != key and low in r:
                now += f" [{_fmt(r[low])}]"
            if key not in b:
                return now
            was = _fmt(b[key]) + (f" [{_fmt(b[low])}]" if low != key and low in b else "")
            return f"{now} (before: {was})"

        c1 = f"{_fmt(r['c1_p50'])} / {_fmt(r['c1_max'])}"
        if "c1_p50" in b:
            c1 += f" (before: {_fmt(b['c1_p50'])} / {_fmt(b['c1_max'])})"
        warm = f"{one('warm_create_p50')}; {one('warm_delete_p50')}"
        lines.append(
            f"| {r['n']:,} | {one('snapshot_s')} | {c1} | {one('c1000_create_p50')} "
            f"| {one('c1000_delete_p50')} | {warm} | {one('c1000_max')} |"
        )
    for i, (f, doc) in enumerate(befores):
        note = doc.get("note", "an earlier run")
        if i == 0:
            load = f" (load average {doc['load']})" if "load" in doc else ""
            lines += ["", f"\"before\" is {note}{load}, kept in `{f}`."]
        else:
            old = {r["n"]: r for r in doc["before"]}
            figures = ", ".join(f"{_fmt(old[r['n']]['c1000_p50'])} ms at {r['n']:,}"
                                for r in rows if r["n"] in old)
            lines += ["", f"Further back, {note} (`{f}`): 1,000-change p50 {figures}."]
    lines += [
        "", "A change touches only its own names and types (`Zone.update`), so its cost does not "
        "grow with the zone. An address record set is compiled without dnspython rdata: values "
        "are parsed by hand into wire form (checked against dnspython in "
        "`tests/test_index_fastpaths.py`; anything else goes through dnspython, which raises on a "
        "malformed value before any change), the rdata objects are made only if something reads "
        "them (AXFR, tools), and a plain owner name is made without re-validating its labels. "
        "Forgetting a zone's cached answers pops their keys in C, and a rendered answer keeps "
        "its Reply only if it could ever need truncating. Max figures are single entries, so "
        "they are noisy: the large ones are full garbage collections (all of the zone's objects "
        "traversed) that happened to start inside an entry, and other work on the machine.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(text)
    return 0
