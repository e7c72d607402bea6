"""Enactor benchmark: the same machine driven in-process vs over HTTP to a real authd.

Measures (1) enactor actions per second with the in-process client (MemoryStore, what the
interleaving checker uses) against the HTTP client (botocore + SigV4 to authd's control API
over SQLite, what production uses), and (2) the whole 2025 schedule in-process against real
processes with real dig. Prints the ratios and rewrites the enactor section of BENCHMARKS.md.

    python -m bench enactor [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path

from enactor import machine as m
from enactor.checker.schedule import schedule_2025
from enactor.checker.sim import PlanList
from enactor.checker.testing import T0, plan_n, seeded_store
from enactor.client import Route53Http, perform
from enactor.drills.outage import authd_command, free_port, free_port_pair, run_outage

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## enactor: in-process vs HTTP (issue 4)"


def actions_per_second(api: object, rounds: int) -> tuple[float, int]:
    """Run one enactor through `rounds` plan installs; returns (actions/s, actions)."""
    plans = PlanList([plan_n(1)])
    cfg = m.Config("enactor-a", poll_interval=0.0)
    st, res = m.initial_state(), None
    n = 0
    t = T0
    start = time.perf_counter()
    for k in range(2, rounds + 2):
        plans.add(plan_n(k))
        while True:
            out = m.step(cfg, st, res)
            st = out.state
            n += 1
            if isinstance(out.action, m.Sleep):
                res = m.Slept(t)
                if out.action.why == "poll" and st.plan is not None and st.plan.number == k:
                    break
                continue
            res = perform(api, plans, out.action, lambda t=t: t)  # type: ignore[arg-type,misc]
            t += 0.01
    return n / (time.perf_counter() - start), n


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench enactor")
    ap.add_argument("--rounds", type=int, default=20, help="plan installs per client (default 20)")
    args = ap.parse_args(argv)

    mem_rate, mem_n = actions_per_second(seeded_store(), args.rounds)
    work = Path(tempfile.mkdtemp(prefix="bench-enactor-"))
    api_port = free_port()
    proc = subprocess.Popen(
        [*authd_command(), "--zones", str(ROOT / "zones"),
         "--listen", f"127.0.0.1:{free_port_pair()}", "--control", f"127.0.0.1:{api_port}",
         "--store", str(work / "s.sqlite3")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        api = Route53Http(f"http://127.0.0.1:{api_port}")
        for _ in range(100):
            try:
                api.find_zone_by_name("api.aws.")
                break
            except Exception:  # noqa: BLE001 - waiting for startup
                time.sleep(0.1)
        http_rate, http_n = actions_per_second(api, args.rounds)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    t = time.perf_counter()
    run_outage("2025", schedule_2025(12), inprocess=True)
    t_mem = time.perf_counter() - t
    t = time.perf_counter()
    run_outage("2025", schedule_2025(12))
    t_real = time.perf_counter() - t

    lines = [
        "| client | actions | actions/s | ratio |",
        "|---|---|---|---|",
        f"| in-process (MemoryStore) | {mem_n} | {mem_rate:,.0f} | {mem_rate / http_rate:.0f}x |",
        f"| HTTP (botocore + SigV4, authd control API, SQLite) | {http_n} | {http_rate:,.0f} | 1x |",
        "",
        "| the 2025 schedule (12 plans, 3 enactors) | seconds | ratio |",
        "|---|---|---|",
        f"| in-process (`enactor outage --inprocess`) | {t_mem:.2f} | {t_real / t_mem:.0f}x faster |",
        f"| real processes + real dig (`enactor outage`) | {t_real:.2f} | 1x |",
    ]
    print("\n".join(lines))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    body = (f"{SECTION}\n\n`python -m bench enactor --rounds {args.rounds}` on {machine}; load "
            f"average {os.getloadavg()[0]:.2f} at the end.\n\n" + "\n".join(lines) + "\n")
    bm = ROOT / "BENCHMARKS.md"
    text = bm.read_text()
    if SECTION in text:
        text = re.sub(re.escape(SECTION) + r".*?(?=\n## |\Z)", body.rstrip("\n") + "\n", text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    bm.write_text(text)
    return 0
