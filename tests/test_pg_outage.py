"""`enactor outage --nodes 3 --store postgresql://...`: the 2025 schedule against three authd
nodes on one PostgreSQL database, the last one 4 s late; every sample digs every node, so the
empty answer is seen reaching node 1 and node 2 first, and node 3 last."""

from __future__ import annotations

import pytest

from enactor.checker.schedule import schedule_2025
from enactor.drills.outage import run_outage
from tests.conftest import require_tool

pytestmark = [pytest.mark.realtime, pytest.mark.slow]

DUAL = "dynamodb.us-east-1.api.aws."


def test_the_outage_spreads_node_by_node(pg_cluster, tmp_path):
    require_tool("dig")
    res = run_outage("2025", schedule_2025(12), store=pg_cluster.url(), nodes=3, node_delay=4.0,
                     png=str(tmp_path / "nodes.png"))
    s = res.summary
    assert len(s["nodes"]) == 3 and s["empty_at_end"]
    for suffix in ("", " @node-2", " @node-3"):  # in the end every node answers nothing
        assert s["final_answers"][f"{DUAL} A{suffix}"] == 0, s["final_answers"]
        assert s["final_rcodes"][f"{DUAL} A{suffix}"] == "NOERROR"
    per_sample = 3 * len({k for _, k, _ in res.digs if "@" not in k})  # every name on 3 nodes
    samples = [{k: text for _, k, text in res.digs[i:i + per_sample]}
               for i in range(0, len(res.digs), per_sample)]
    spread = [d for d in samples
              if "ANSWER: 0" in d[f"{DUAL} A"] and "ANSWER: 1" in d[f"{DUAL} A @node-3"]]
    assert spread, "no sample saw node 1 empty while the late node 3 still answered"
    assert (tmp_path / "nodes.png").read_bytes()[:4] == b"\x89PNG"
    # the run made its own database and dropped it: the server is left as it was
    import psycopg

    with psycopg.connect(pg_cluster.url()) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database")]
    assert not [n for n in names if n.startswith("enactor_outage_")], names
