"""The prober inside a real node (`authd.node.run_node`, as `authd serve` runs it): a check
created through the API is probed at once, its status reaches every serving index through the
journal (a SQLite store, the primary and a replica index), and GetHealthCheckStatus shows the
live observation. Real sockets; the waits are events, with generous deadlines."""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET

import pytest
import trio

from authd.control import api_health as A
from authd.node import NodeConfig, run_node
from tests.control_helpers import client
from tests.test_health_api import raw_problems, signed

pytestmark = [pytest.mark.realtime]


async def boto(url: str, op: str, **kw):
    return await trio.to_thread.run_sync(functools.partial(getattr(client(url), op), **kw))


async def test_node_probes_and_every_index_learns_the_status(tmp_path):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    closed_port = listeners[0].socket.getsockname()[1]
    for listener in listeners:
        await listener.aclose()
    cfg = NodeConfig(store_path=str(tmp_path / "authd.db"), zones_dir=None, dns_port=0,
                     control=("127.0.0.1", 0), replicas=1, replica_delays=[0.0])
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            node = await nursery.start(run_node, cfg)
            assert node.prober is not None
            hc = (await boto(node.control_url, "create_health_check", CallerReference="n", HealthCheckConfig={
                "Type": "TCP", "IPAddress": "127.0.0.1", "Port": closed_port, "RequestInterval": 30,
                "FailureThreshold": 1}))["HealthCheck"]["Id"]
            await node.prober.wait_stored(hc, False)  # the first probe, at once: refused
            seq = node.store.journal_since(0)[-1].seq
            for server in node.servers:
                await server.follower.wait_applied(seq)
                assert server.index.resources[A.STATUS_KIND][hc]["healthy"] is False
            seen = (await boto(node.control_url, "get_health_check_status", HealthCheckId=hc))
            [obs] = seen["HealthCheckObservations"]
            assert obs["IPAddress"] == "127.0.0.1"
            assert obs["StatusReport"]["Status"] == "Failure: Connection refused."
            for op, suffix in (("GetHealthCheckStatus", "status"), ("GetHealthCheckLastFailureReason",
                                                                   "lastfailurereason")):
                raw = await trio.to_thread.run_sync(
                    signed, "GET", f"{node.control_url}/2013-04-01/healthcheck/{hc}/{suffix}")
                root = ET.fromstring(raw.content)
                assert len(root[0]) == 1 and raw_problems(root, f"{op}Response", op) == [], raw.text
            # disabling it makes it healthy (Route 53: a disabled check counts as healthy)
            await boto(node.control_url, "update_health_check", HealthCheckId=hc, Disabled=True)
            await node.prober.wait_stored(hc, True)
            stored = node.store.get_resource(A.STATUS_KIND, hc)
            assert stored is not None and stored.doc["healthy"] is True and stored.doc["disabled"] is True
            # deleting it removes its status from every index (no entry: healthy)
            await boto(node.control_url, "delete_health_check", HealthCheckId=hc)
            seq = node.store.journal_since(0)[-1].seq
            for server in node.servers:
                await server.follower.wait_applied(seq)
                assert hc not in server.index.resources.get(A.STATUS_KIND, {})
            nursery.cancel_scope.cancel()


async def test_authd_health_lists_what_dns_routes_by(tmp_path, capsys):
    from authd.cli.main import main

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    closed_port = listeners[0].socket.getsockname()[1]
    for listener in listeners:
        await listener.aclose()
    db = str(tmp_path / "authd.db")
    cfg = NodeConfig(store_path=db, zones_dir=None, dns_port=0, control=("127.0.0.1", 0))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            node = await nursery.start(run_node, cfg)
            down = (await boto(node.control_url, "create_health_check", CallerReference="d", HealthCheckConfig={
                "Type": "TCP", "IPAddress": "127.0.0.1", "Port": closed_port, "FailureThreshold": 1}))["HealthCheck"]["Id"]
            off = (await boto(node.control_url, "create_health_check", CallerReference="o", HealthCheckConfig={
                "Type": "HTTP", "IPAddress": "127.0.0.1", "Disabled": True}))["HealthCheck"]["Id"]
            await node.prober.wait_stored(down, False)
            await node.prober.wait_stored(off, True)
            assert await trio.to_thread.run_sync(main, ["health", "--store", db]) == 0
            nursery.cancel_scope.cancel()
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "TARGET", "STATUS", "SINCE", "REASON"]
    row = next(line for line in out if line.startswith(down))
    assert f"tcp 127.0.0.1:{closed_port}" in row and " UNHEALTHY " in row
    assert row.endswith("Failure: Connection refused.")
    assert "HEALTHY (disabled)" in next(line for line in out if line.startswith(off))
    assert main(["health", "--store", str(tmp_path / "missing.db")]) == 1


async def test_a_node_without_the_prober_still_serves_the_api(tmp_path):
    from authd.cli.main import build_parser

    assert build_parser().parse_args(["serve", "--no-health-prober"]).health_prober is False
    cfg = NodeConfig(store_path=None, zones_dir=None, dns_port=0, control=("127.0.0.1", 0),
                     health_checks=False)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            node = await nursery.start(run_node, cfg)
            assert node.prober is None
            hc = (await boto(node.control_url, "create_health_check", CallerReference="x", HealthCheckConfig={
                "Type": "TCP", "IPAddress": "127.0.0.1", "Port": 9}))["HealthCheck"]["Id"]
            seen = await boto(node.control_url, "get_health_check_status", HealthCheckId=hc)
            assert seen["HealthCheckObservations"] == []
            assert node.store.get_resource(A.STATUS_KIND, hc) is None  # nothing probed it
            nursery.cancel_scope.cancel()
