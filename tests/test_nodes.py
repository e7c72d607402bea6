"""The pure rules of `authd.store.nodes`: who counts for INSYNC, and the `authd nodes` table."""

from __future__ import annotations

import ast
from pathlib import Path

import authd.store.nodes
from authd.store.nodes import NodeRow, NodeState, insync_seq, live_seqs, state_of, table


def row(name: str, seq: int, age: float) -> NodeRow:
    return NodeRow(name, f"127.0.0.{len(name)}:53", "", seq, age, 100.0)


def test_a_silent_node_stops_counting_and_counts_again_when_back():
    rows = [row("node-1", 9, 0.5), row("node-2", 7, 2.0), row("node-3", 3, 10.5)]
    assert state_of(rows[2], 10.0) is NodeState.SILENT
    assert state_of(row("x", 1, 10.0), 10.0) is NodeState.LIVE  # the boundary still counts
    assert insync_seq(rows, 10.0) == 7  # node-3 is past the timeout
    assert insync_seq(rows, 11.0) == 3  # with a longer timeout it holds INSYNC back
    assert live_seqs(rows, 10.0, exclude="node-2") == {"node-1": 9}
    assert insync_seq([row("a", 1, 99.0)], 10.0) is None  # nobody live: nothing to wait for


def test_the_table_shows_state_lag_and_heartbeat():
    lines = table([row("node-b", 7, 12.0), row("node-a", 10, 0.25)], head=10, timeout=10.0)
    assert "journal head: seq 10" in lines[0]
    assert lines[1].split() == ["NODE", "STATE", "SEQ", "LAG", "HEARTBEAT", "DNS", "CONTROL"]
    assert lines[2].split()[:6] == ["node-a", "LIVE", "10", "0", "0.2s", "ago"]
    assert lines[3].split()[:4] == ["node-b", "SILENT", "7", "3"]
    assert table([], 0, 10.0)[-1] == "(no node has registered)"


def test_nodes_is_pure():
    tree = ast.parse(Path(authd.store.nodes.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {"trio", "socket", "time", "asyncio", "psycopg"}
