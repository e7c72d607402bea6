"""Run one `authd` command under `tracemalloc` and write where its memory grows (a bench aid).

`python -m bench._memtrace --out FILE --every 30 -- serve --zones zones ...` starts
tracemalloc, runs `authd.cli.main` with the arguments after `--`, and every `--every` seconds
a thread takes a snapshot and rewrites FILE with the allocation sites (file:line) that grew the
most since the first snapshot (taken `--first` seconds in, once the process is warm), with
their sizes and block counts. `bench soak --trace-memory` starts authd this way. Tracing
costs CPU and roughly doubles the traced process's memory, so RSS figures from such a run
are not comparable with an untraced one; the growth *sites* are what it is for.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import tracemalloc
from pathlib import Path

TOP = 25


def growth_report(first: tracemalloc.Snapshot, now: tracemalloc.Snapshot, elapsed: float) -> str:
    """The sites that grew most between two snapshots, as text lines (largest first)."""
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = now.filter_traces(keep).compare_to(first.filter_traces(keep), "lineno")
    total_now = sum(s.size for s in stats)
    total_diff = sum(s.size_diff for s in stats)
    lines = [f"after {elapsed:.0f} s: traced {total_now / 1e6:.1f} MB, "
             f"{total_diff / 1e6:+.2f} MB since the first snapshot"]
    for s in sorted(stats, key=lambda s: -s.size_diff)[:TOP]:
        frame = s.traceback[0]
        lines.append(f"{s.size_diff / 1024:+10.1f} KiB {s.count_diff:+8d} blocks  "
                     f"(now {s.size / 1024:.1f} KiB)  {frame.filename}:{frame.lineno}")
    return "\n".join(lines) + "\n"


def _status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


def _count_objects(args: argparse.Namespace, t0: float) -> None:
    """Every `--every` s: RSS (anon, file), Python's allocated blocks, and the object types
    whose live count grew most since the baseline (`--first` s in)."""
    import gc
    from collections import Counter

    def census() -> Counter[str]:
        return Counter(type(o).__name__ for o in gc.get_objects())

    time.sleep(args.every if args.first is None else args.first)
    base, base_blocks, base_status = census(), sys.getallocatedblocks(), _status()
    lines: list[str] = []
    while True:
        time.sleep(args.every)
        now, status = census(), _status()
        grew = sorted(((n - base[t], t) for t, n in now.items() if n > base[t]), reverse=True)[:8]
        lines.append(
            f"after {time.monotonic() - t0:.0f} s: RSS {status['VmRSS'] / 1024:.1f} MB "
            f"(anon {status['RssAnon'] / 1024:.1f}, was {base_status['RssAnon'] / 1024:.1f}; "
            f"file {status['RssFile'] / 1024:.1f}), allocated blocks "
            f"{sys.getallocatedblocks() - base_blocks:+,}, gc objects "
            f"{sum(now.values()) - sum(base.values()):+,}: "
            + ", ".join(f"{t} {d:+,}" for d, t in grew))
        lines.extend(_held_tracebacks())
        if args.collect:  # is what the census saw garbage in cycles, or reachable?
            lines.append(f"  gc.collect() freed {gc.collect()} objects; then "
                         + _held_tracebacks()[0].strip())
        args.out.write_text("\n".join(lines) + "\n")


def _held_tracebacks(limit: int = 3) -> list[str]:
    """Where live tracebacks come from (the innermost frame) and what holds their exception:
    a traceback kept alive keeps its frames and their locals."""
    import gc
    import types
    from collections import Counter

    tbs = [o for o in gc.get_objects() if type(o) is types.TracebackType]
    where: Counter[str] = Counter()
    for tb in tbs:
        while tb.tb_next is not None:
            tb = tb.tb_next
        where[f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"] += 1
    out = [f"  {len(tbs)} live tracebacks; innermost frames: "
           + ", ".join(f"{w} x{n}" for w, n in where.most_common(limit))]
    for tb in tbs[-limit:]:
        for ref in gc.get_referrers(tb):
            if isinstance(ref, BaseException):
                holders = [type(h).__name__ + (f"({sorted(h)[:4]})" if isinstance(h, dict) else "")
                           for h in gc.get_referrers(ref) if h is not tbs]
                out.append(f"  {type(ref).__name__}: {str(ref)[:80]!r} held by {holders[:5]}")
    return out


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: python -m bench._memtrace --out FILE [--every S] -- AUTHD-ARGS...",
              file=sys.stderr)
        return 2
    cut = argv.index("--")
    ap = argparse.ArgumentParser(prog="python -m bench._memtrace", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="file rewritten with the growth report")
    ap.add_argument("--every", type=float, default=30.0,
                    help="seconds between snapshots (default: %(default)s)")
    ap.add_argument("--first", type=float, default=None,
                    help="seconds before the baseline snapshot, once caches are warm "
                         "(default: --every)")
    ap.add_argument("--objects", action="store_true",
                    help="no tracemalloc: count live objects by type and Python's allocated "
                         "blocks beside RSS (cheap; tells Python growth from C-level growth)")
    ap.add_argument("--collect", action="store_true",
                    help="with --objects: run a full gc.collect() after each census and count "
                         "again, to tell cyclic garbage from reachable objects")
    args = ap.parse_args(argv[:cut])
    t0 = time.monotonic()
    if args.objects:
        threading.Thread(target=_count_objects, args=(args, t0), daemon=True).start()
        from authd.cli.main import main as authd_main

        return authd_main(argv[cut + 1:])
    tracemalloc.start(1)

    def snapshots() -> None:
        time.sleep(args.every if args.first is None else args.first)
        first = tracemalloc.take_snapshot()
        while True:
            time.sleep(args.every)
            report = growth_report(first, tracemalloc.take_snapshot(), time.monotonic() - t0)
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(report)
            tmp.replace(args.out)

    threading.Thread(target=snapshots, daemon=True).start()
    from authd.cli.main import main as authd_main

    return authd_main(argv[cut + 1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
