"""Prometheus metrics for one enactor (`enactor run --metrics HOST:PORT`).

The counting is pure (`EnactorCounts.observe` takes what the machine did and what came back);
the export is prometheus_client's own HTTP server in a thread, reading the counts through a
custom collector at scrape time. Crashes survive restarts: the count lives in
`<status-dir>/<name>.crashes`, bumped by the crashing process, read by the next one.

Exported, each with an `enactor` label:
- `enactor_lock_acquisitions_total` (accepted lock and takeover batches),
  `enactor_lock_losses_total` (backoffs after finding the lock held);
- `enactor_flips_total` (accepted flip batches), `enactor_cleaner_deletions_total` (record
  sets the cleaner deleted), `enactor_batches_rejected_total{purpose}`;
- `enactor_crashes_total`; `enactor_state{state}`: 1 for the current state (IDLE, WORKING,
  BACKING_OFF, PAUSED, FROZEN), 0 for the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enactor import machine as m


@dataclass
class EnactorCounts:
    name: str
    lock_acquisitions: int = 0
    lock_losses: int = 0
    flips: int = 0
    cleaner_deletions: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    state: str = m.Status.IDLE.value

    def observe(self, action: m.ActionT, result: m.ResultT | None, status: m.Status) -> None:
        """One performed action and its result (None for a sleep), then the machine's status."""
        self.state = status.value
        if isinstance(action, m.Sleep):
            if action.why == "backoff":
                self.lock_losses += 1
            return
        if not isinstance(action, m.SubmitBatch):
            return
        purpose = action.purpose.value
        if isinstance(result, m.BatchRejected):
            self.rejected[purpose] += 1
        elif isinstance(result, m.BatchAccepted):
            if purpose in ("lock", "takeover"):
                self.lock_acquisitions += 1
            elif purpose == "flip":
                self.flips += 1
            elif purpose == "clean":
                self.cleaner_deletions += sum(1 for c in action.changes
                                              if c.action is m.Action.DELETE
                                              and not c.rrset.name.startswith("_lock."))


def crash_file(status_dir: str | None, name: str) -> Path | None:
    return Path(status_dir) / f"{name}.crashes" if status_dir else None


def load_crashes(path: Path | None) -> int:
    try:
        return int(path.read_text()) if path else 0
    except (OSError, ValueError):
        return 0


def record_crash(counts: EnactorCounts, path: Path | None) -> None:
    counts.crashes += 1
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{counts.crashes}\n")


class EnactorCollector:
    def __init__(self, counts: EnactorCounts):
        self.counts = counts

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        c = self.counts
        for metric, doc, value in (
                ("enactor_lock_acquisitions", "Lock (and takeover) batches accepted", c.lock_acquisitions),
                ("enactor_lock_losses", "Backoffs after finding the lock held by another", c.lock_losses),
                ("enactor_flips", "Alias flip batches accepted", c.flips),
                ("enactor_cleaner_deletions", "Record sets the cleaner deleted", c.cleaner_deletions),
                ("enactor_crashes", "Crashes of this enactor, across restarts", c.crashes)):
            f = CounterMetricFamily(metric, doc, labels=["enactor"])
            f.add_metric([c.name], value)
            yield f
        r = CounterMetricFamily("enactor_batches_rejected", "Change batches rejected, by purpose",
                                labels=["enactor", "purpose"])
        for purpose, n in sorted(c.rejected.items()):
            r.add_metric([c.name, purpose], n)
        yield r
        s = GaugeMetricFamily("enactor_state", "1 for the enactor's current state",
                              labels=["enactor", "state"])
        for st in m.Status:
            s.add_metric([c.name, st.value], 1.0 if st.value == c.state else 0.0)
        yield s


def serve_metrics(counts: EnactorCounts, host: str, port: int) -> Any:
    """Start prometheus_client's HTTP server (a daemon thread) for these counts."""
    from prometheus_client import start_http_server
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(EnactorCollector(counts))  # type: ignore[arg-type]
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        from authd.clean_exit import Fatal

        raise Fatal(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    return server
