"""Issue 15 on separate hosts: PostgreSQL and three authd nodes, each in its own network
namespace (veth pairs to one bridge, 198.18.0.0/24), faults by `tc netem` and cut links.

- a batch sent to node 2 through boto3 is INSYNC only once all three serve it (node 3's
  link is 80 ms slow, and node 3 applies changes 3 s late), as dig against each host shows;
- node 3 cut off: it keeps serving its last state and says so in its log; INSYNC comes once
  it is silent past --node-timeout, `authd nodes` shows it SILENT; the link back, it
  catches up and counts again;
- conflicting batches sent to node 1 and node 2 at once have exactly one winner, 200 times.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import require_tool
from tests.control_helpers import client
from tests.netns_helpers import Net
from tests.pg_helpers import Cluster, NodeProcess
from tests.test_pg_nodes import ZONE, nodes_json, race_lock_pairs, upsert, wait_insync

pytestmark = [pytest.mark.realtime, pytest.mark.slow]

TIMEOUT = "3"


@pytest.fixture
def net():
    n = Net()
    try:
        yield n
    finally:
        n.close()


def test_three_nodes_on_three_hosts_with_a_cut_link(net):
    require_tool("dig")
    db_ns, db_addr = net.add_host("db", 1)
    hosts = [net.add_host(f"n{i}", 10 + i) for i in (1, 2, 3)]
    if not net.netem("n3", "delay", "80ms"):
        print("this kernel has no netem qdisc: node 3's link is not slowed (its 3 s propagation delay stays)")
    cluster = Cluster(host=db_addr, netns=db_ns, port=5432).start()
    nodes: list[NodeProcess] = []
    try:
        url = cluster.new_database("netns")
        for i, (ns, addr) in enumerate(hosts, 1):
            extra = ["--node-timeout", TIMEOUT, "--access-key", "test", "--secret-key", "test"] + (["--propagation-delay", "3"] if i == 3 else [])
            nodes.append(NodeProcess(url, addr, f"node-{i}", *extra, netns=ns))
        n1, n2, n3 = nodes

        # 1. INSYNC only after all three hosts serve it
        r53 = client(n2.control_url)
        info = r53.change_resource_record_sets(HostedZoneId=ZONE, ChangeBatch=upsert("hosts.api.aws.", "192.0.2.20"))
        seen = []

        def check(status: str) -> None:
            answers = [n.dig("hosts.api.aws.") for n in nodes]
            seen.append(status)
            if status == "INSYNC":
                assert answers == [["192.0.2.20"]] * 3, answers

        wait_insync(r53, info["ChangeInfo"]["Id"], each=check)
        assert seen[0] == "PENDING", seen

        # 2. node 3 cut off from everything (the database too)
        mark = len(n3.lines)
        net.cut("n3")
        info = r53.change_resource_record_sets(HostedZoneId=ZONE, ChangeBatch=upsert("hosts.api.aws.", "192.0.2.21"))
        start = time.monotonic()
        wait_insync(r53, info["ChangeInfo"]["Id"], timeout=60)
        assert time.monotonic() - start > 1.0, "INSYNC did not wait for node 3 at all"
        assert [n.dig("hosts.api.aws.") for n in (n1, n2)] == [["192.0.2.21"]] * 2
        assert n3.dig("hosts.api.aws.") == ["192.0.2.20"]  # its last state, still served
        rows = {r["name"]: r for r in nodes_json(url, float(TIMEOUT))["nodes"]}
        assert rows["node-3"]["state"] == "SILENT" and rows["node-3"]["lag"] >= 1, rows
        n3.wait_for("lost the database", timeout=60, start=mark)

        # 3. the link back: node 3 catches up and counts again
        net.heal("n3")
        n3.wait_for("database reachable again", timeout=60, start=mark)
        deadline = time.monotonic() + 30
        while n3.dig("hosts.api.aws.") != ["192.0.2.21"]:
            assert time.monotonic() < deadline, "node 3 did not catch up"
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while nodes_json(url, float(TIMEOUT))["nodes"][2]["state"] != "LIVE":
            assert time.monotonic() < deadline, "node 3 does not count again"
            time.sleep(0.2)

        # 4. conflicting batches sent to two hosts at once: one winner, every time
        race_lock_pairs(n1.control_url, n2.control_url, 200)
    finally:
        for n in nodes:
            n.stop()
        cluster.destroy()
