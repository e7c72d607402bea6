"""Prometheus metrics (issue 14): authd's /metrics, the enactor's and the resolver's, each
checked for its values and validated by `promtool check metrics` (Debian `prometheus`).

Real sockets on loopback: a node with the change API, queries over UDP and TCP, a change that
leaves the stable alias dangling (the 2025 symptom must show as empty answers for a name that
had records), an enactor running against the API, a resolver in front of authd.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dns.asyncquery
import dns.message
import httpx
import pytest
import trio
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from authd.node import NodeConfig, run_node
from authd.store.contract import Action, Change, InvalidChangeBatch
from enactor import machine as m
from enactor.checker.testing import DUAL, plan_n
from enactor.client import Route53Http
from enactor.metrics import EnactorCollector, EnactorCounts, load_crashes, record_crash
from enactor.plan import PlanStore
from enactor.runner import run_enactor
from resolver.cache import CachePolicy
from resolver.metrics import ResolverCollector
from resolver.resolution import Server
from resolver.server import ResolverConfig, serve_resolver

ZONES = str(Path(__file__).resolve().parent.parent / "zones")
pytestmark = pytest.mark.realtime


def promtool_ok(text: str) -> None:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    out = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


async def ask(host: str, port: int, name: str, rtype: str, tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rtype)
    with trio.fail_after(10):
        if tcp:
            return await dns.asyncquery.tcp(q, host, port=port)
        return await dns.asyncquery.udp(q, host, port=port)


async def test_authd_metrics_count_queries_empty_answers_changes_and_lag(tmp_path: Path) -> None:
    cfg = NodeConfig(store_path=None, zones_dir=ZONES, dns_port=0, control=("127.0.0.1", 0),
                     replicas=1, replica_delays=[30.0])
    async with trio.open_nursery() as nursery:
        node = await nursery.start(run_node, cfg)
        host, port = node.primary.host, node.primary.port
        for _ in range(3):
            assert (await ask(host, port, DUAL, "A")).answer
        await ask(host, port, DUAL, "AAAA", tcp=True)
        await ask(host, port, "nosuch.api.aws.", "A")
        # the 2025 symptom: the alias's target goes away, the name answers NOERROR and nothing
        api = Route53Http(node.control_url)
        zid = (await trio.to_thread.run_sync(api.find_zone_by_name, "api.aws.")).id
        alias = await trio.to_thread.run_sync(api.get_record_sets, zid, DUAL, "A")
        target = alias[0].alias.dns_name
        tree = await trio.to_thread.run_sync(api.get_record_sets, zid, target, "A")
        await trio.to_thread.run_sync(api.change_batch, zid, [Change(Action.DELETE, rs) for rs in tree], "gone")
        with pytest.raises(InvalidChangeBatch):
            await trio.to_thread.run_sync(api.change_batch, zid, [Change(Action.DELETE, tree[0])], "again")
        for _ in range(2):
            reply = await ask(host, port, DUAL, "A")
            assert reply.rcode() == 0 and not reply.answer
        async with httpx.AsyncClient() as client:
            res = await client.get(node.control_url + "/metrics")  # unsigned: Prometheus scrapes it
        nursery.cancel_scope.cancel()
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    got = samples(res.text)
    assert got[("authd_dns_queries_total", (("rcode", "NOERROR"), ("type", "A")))] == 5
    assert got[("authd_dns_queries_total", (("rcode", "NOERROR"), ("type", "AAAA")))] == 1  # over TCP
    assert got[("authd_dns_queries_total", (("rcode", "NXDOMAIN"), ("type", "A")))] == 1
    assert got[("authd_dns_empty_answers_total", (("name", DUAL), ("type", "A")))] == 2
    assert got[("authd_changes_total", (("result", "accepted"),))] == 1
    assert got[("authd_changes_total", (("result", "InvalidChangeBatch"),))] == 1
    head = got[("authd_journal_position", ())]
    assert got[("authd_node_applied_position", (("node", "primary"),))] == head
    assert got[("authd_node_lag_entries", (("node", "replica-1"),))] >= 1  # 30 s behind by design
    assert got[("authd_node_propagation_delay_seconds", (("node", "replica-1"),))] == 30
    promtool_ok(res.text)


async def test_enactor_metrics_count_locks_flips_cleaning_and_crashes(tmp_path: Path) -> None:
    cfg = NodeConfig(store_path=None, zones_dir=ZONES, dns_port=0, control=("127.0.0.1", 0))
    ps = PlanStore(tmp_path / "plans")
    counts = EnactorCounts("enactor-a")
    async with trio.open_nursery() as nursery:
        node = await nursery.start(run_node, cfg)
        for n in (1, 2, 3):  # one plan at a time: by plan 3, plan 1's tree is unreachable
            ps.put(plan_n(n))
            with trio.fail_after(60):
                await run_enactor(m.Config("enactor-a", poll_interval=0.01), Route53Http(node.control_url),
                                  ps, max_steps=80, observe=counts.observe)
        nursery.cancel_scope.cancel()
    assert counts.lock_acquisitions >= 4 and counts.flips >= 4  # plans 2 and 3, both endpoints
    assert counts.cleaner_deletions > 0  # plan 1's trees, once neither alias nor rollback reaches them
    crashes = tmp_path / "status" / "enactor-a.crashes"
    record_crash(counts, crashes)
    assert load_crashes(crashes) == 1  # the next process starts from here
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EnactorCollector(counts))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    got = samples(text)
    assert got[("enactor_flips_total", (("enactor", "enactor-a"),))] == counts.flips
    assert got[("enactor_crashes_total", (("enactor", "enactor-a"),))] == 1
    assert got[("enactor_state", (("enactor", "enactor-a"), ("state", "IDLE")))] == 1
    assert got[("enactor_state", (("enactor", "enactor-a"), ("state", "FROZEN")))] == 0
    promtool_ok(text)


async def test_resolver_metrics_count_hits_misses_and_negative_hits() -> None:
    cfg = NodeConfig(store_path=None, zones_dir=ZONES, dns_port=0, control=None)
    async with trio.open_nursery() as nursery:
        node = await nursery.start(run_node, cfg)
        config = ResolverConfig(listen=Server("127.0.0.1", 0),
                                upstreams=[Server(node.primary.host, node.primary.port)],
                                policy=CachePolicy())
        h = await nursery.start(serve_resolver, config)
        for _ in range(3):
            await ask(h.udp.host, h.udp.port, DUAL, "A")
            await ask(h.udp.host, h.udp.port, "nosuch.api.aws.", "A")
        nursery.cancel_scope.cancel()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResolverCollector(h.resolver, "serve"))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    got = samples(text)
    label = (("resolver", "serve"),)
    assert got[("resolver_cache_hits_total", label)] >= 4  # the repeats
    assert got[("resolver_cache_negative_hits_total", label)] >= 2  # the repeated NXDOMAIN
    assert got[("resolver_cache_misses_total", label)] >= 2
    assert got[("resolver_cache_entries", label)] >= 2
    promtool_ok(text)
