"""Which authd nodes count for INSYNC, and how `authd nodes` shows them (pure core).

Every node serving from a shared PostgreSQL store registers a row: its name, its addresses,
the journal seq its serving index has applied, and a heartbeat. Ages are measured by the
database's clock (`clock_timestamp() - heartbeat`), so nodes on machines whose clocks
disagree still agree on who is silent.

Rule (issue 15): GetChange is INSYNC once every *live* node has applied the change. A node
whose heartbeat is older than `timeout` seconds stops counting: Route 53 documents INSYNC as
"propagated to all Route 53 DNS servers", and a server that cannot be reached to learn the
change cannot be waited for forever (one dead machine would keep every change PENDING). It
keeps serving what it had; `authd nodes` lists it as SILENT, and it counts again as soon as
its heartbeat returns (it catches up from the journal first, then reports its seq).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class NodeState(enum.Enum):
    LIVE = "LIVE"  # heartbeat within the timeout: INSYNC waits for it
    SILENT = "SILENT"  # no heartbeat for longer than the timeout: not counted


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One row of the `nodes` table, as read (age by the database's clock)."""

    name: str
    dns: str  # "host:port" it answers DNS on
    control: str  # its change API URL, "" when it serves none
    seq: int  # journal seq its serving index has applied
    age: float  # seconds since its last heartbeat
    uptime: float  # seconds since it registered


def state_of(row: NodeRow, timeout: float) -> NodeState:
    return NodeState.LIVE if row.age <= timeout else NodeState.SILENT


def live_seqs(rows: Iterable[NodeRow], timeout: float, exclude: str | None = None) -> dict[str, int]:
    """The applied seq of every node that counts for INSYNC (`exclude`: the asking node,
    which knows its own seq better than its last heartbeat does)."""
    return {r.name: r.seq for r in rows if r.name != exclude and state_of(r, timeout) is NodeState.LIVE}


def insync_seq(rows: Iterable[NodeRow], timeout: float) -> int | None:
    """The highest seq every live node has applied (None when no node is live)."""
    seqs = live_seqs(rows, timeout).values()
    return min(seqs) if seqs else None


def table(rows: Iterable[NodeRow], head: int, timeout: float) -> list[str]:
    """`authd nodes`: one line per node, the journal head first, readable at 3 a.m."""
    rows = sorted(rows, key=lambda r: r.name)
    out = [f"journal head: seq {head}; a node silent for more than {timeout:g}s is not counted for INSYNC"]
    header = ("NODE", "STATE", "SEQ", "LAG", "HEARTBEAT", "DNS", "CONTROL")
    lines = [header] + [
        (r.name, state_of(r, timeout).value, str(r.seq), str(max(0, head - r.seq)),
         f"{r.age:.1f}s ago", r.dns, r.control or "-")
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    if not rows:
        out.append("(no node has registered)")
    return out
