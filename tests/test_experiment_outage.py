"""A small outage-recovery experiment, end to end: real authority, resolvers, UDP clients.

It asserts the talk's shape: the records are back at T; clients with no cache recover at once;
clients behind a caching resolver recover within one negative TTL after T, later for a longer
negative TTL; nobody recovers before the repair.
"""

from __future__ import annotations

import statistics

import pytest

from resolver.experiment import Settings, run_grid, table
from resolver.outage import Layer

pytestmark = [pytest.mark.realtime, pytest.mark.slow]


def test_recovery_ordering() -> None:
    settings = Settings(
        negatives=((10, 1), (10, 4)),
        serve_stale=(False,),
        layers=(Layer.NONE, Layer.RESOLVER),
        rates=(10.0,),
        clients=6,
        resolvers_per_cell=6,
        outage_at=1.5,
        record_ttl=1,
        outage_length=5.0,
        tail=1.0,
    )
    try:
        result = run_grid(settings, show_progress=False)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    print(table(result.summaries))
    (batch,) = result.batches
    # The deletion and the repair are swaps of a live authd (a new process each), so the
    # authority's own window can run a little longer than planned on a busy machine.
    assert 5.0 <= batch.t_fix - batch.t_break < 7.0
    delays: dict[tuple[Layer, int], list[float]] = {}
    for cell, r, t_fix in result.clients:
        assert r.first_empty is not None, f"{cell.label} client {r.client} never saw the outage"
        assert r.first_back is not None, f"{cell.label} client {r.client} never recovered"
        # Nothing comes back before the authority has it (T is the authority probe's first
        # addresses; 0.3 s covers the probe's own query gaps and the swap's overlap).
        assert r.first_back >= t_fix - 0.3
        delays.setdefault((cell.layer, cell.negative_ttl), []).append(r.first_back - t_fix)
    for s in result.summaries:
        # The authority's own outage window is the one we caused.
        assert 4.5 < s.auth_window < 7.0, s
    # No cache: clients see the repair within a couple of query gaps.
    assert max(delays[(Layer.NONE, 1)] + delays[(Layer.NONE, 4)]) < 1.0
    # Behind a resolver: within one negative TTL (+1 s for the client's next query).
    assert max(delays[(Layer.RESOLVER, 1)]) <= 1 + 1.0
    assert max(delays[(Layer.RESOLVER, 4)]) <= 4 + 1.0
    # And the longer negative TTL stretches the outage clients see.
    assert statistics.mean(delays[(Layer.RESOLVER, 4)]) > statistics.mean(
        delays[(Layer.RESOLVER, 1)]
    )
    assert statistics.mean(delays[(Layer.RESOLVER, 4)]) > statistics.mean(
        delays[(Layer.NONE, 4)]
    ) + 0.5
