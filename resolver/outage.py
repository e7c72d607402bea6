"""Outage-recovery measurements from client samples (pure core: no sockets, no clock).

A client sample says what one client saw at one moment: addresses, an empty answer (NODATA or
NXDOMAIN: "nothing"), or an error (SERVFAIL, timeout). From samples we compute, per client, when
it first saw nothing and when it first saw addresses again, and from those the client-observed
outage window and the recovery delay after the authoritative repair.
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class Outcome(enum.Enum):
    ADDRESSES = "addresses"
    EMPTY = "empty"
    ERROR = "error"


class Layer(enum.Enum):
    NONE = "none"  # clients ask the authority directly
    RESOLVER = "resolver"  # clients -> caching resolver -> authority
    STUB = "stub+resolver"  # clients -> host stub cache -> caching resolver -> authority


class Impl(enum.Enum):
    OURS = "ours"
    OURS_UNBOUND_PRESET = "ours-ub"  # ours with `--preset unbound` (whole-second clock)
    UNBOUND = "unbound"


@dataclass(frozen=True, order=True)
class Cell:
    """One point of the grid."""

    soa_ttl: int
    soa_minimum: int
    serve_stale: bool
    layer: Layer
    rate: float
    impl: Impl = Impl.OURS

    @property
    def negative_ttl(self) -> int:
        # RFC 2308 §5: what a conforming resolver caches a NODATA for.
        return min(self.soa_ttl, self.soa_minimum)

    @property
    def label(self) -> str:
        stale = "stale" if self.serve_stale else "nostale"
        return (
            f"{self.impl.value}/{self.layer.value}/soa{self.soa_ttl}-min{self.soa_minimum}/"
            f"{stale}/{self.rate:g}qps"
        )


@dataclass(frozen=True)
class Sample:
    t: float
    client: int
    outcome: Outcome


@dataclass(frozen=True)
class ClientResult:
    client: int
    first_empty: float | None
    first_back: float | None  # first addresses after first_empty

    @property
    def window(self) -> float | None:
        if self.first_empty is None or self.first_back is None:
            return None
        return self.first_back - self.first_empty


@dataclass(frozen=True)
class CellSummary:
    cell: Cell
    clients: int
    saw_outage: int
    recovered: int
    auth_window: float
    median_window: float | None
    median_delay: float | None
    max_delay: float | None
    error_fraction: float = 0.0  # samples that got SERVFAIL or no answer in time


def per_client(samples: Iterable[Sample]) -> dict[int, ClientResult]:
    ordered = sorted(samples, key=lambda s: s.t)
    first_empty: dict[int, float] = {}
    first_back: dict[int, float] = {}
    clients: set[int] = set()
    for s in ordered:
        clients.add(s.client)
        if s.outcome is Outcome.EMPTY and s.client not in first_empty:
            first_empty[s.client] = s.t
        elif (
            s.outcome is Outcome.ADDRESSES
            and s.client in first_empty
            and s.client not in first_back
        ):
            first_back[s.client] = s.t
    return {c: ClientResult(c, first_empty.get(c), first_back.get(c)) for c in sorted(clients)}


def authority_window(probe: Sequence[Sample]) -> tuple[float | None, float | None]:
    """When the authority itself first answered nothing, and first answered addresses again."""
    r = per_client(probe)
    if not r:
        return None, None
    only = next(iter(r.values()))
    return only.first_empty, only.first_back


def error_fraction(samples: Sequence[Sample]) -> float:
    return sum(1 for s in samples if s.outcome is Outcome.ERROR) / len(samples) if samples else 0.0


def summarise(
    cell: Cell, results: dict[int, ClientResult], t_fix: float, auth_window: float,
    errors: float = 0.0,
) -> CellSummary:
    windows = [r.window for r in results.values() if r.window is not None]
    delays = [r.first_back - t_fix for r in results.values() if r.first_back is not None]
    return CellSummary(
        cell=cell,
        clients=len(results),
        saw_outage=sum(1 for r in results.values() if r.first_empty is not None),
        recovered=sum(1 for r in results.values() if r.first_back is not None),
        auth_window=auth_window,
        median_window=statistics.median(windows) if windows else None,
        median_delay=statistics.median(delays) if delays else None,
        max_delay=max(delays) if delays else None,
        error_fraction=errors,
    )
