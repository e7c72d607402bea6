"""Real `authd serve` processes on one throwaway PostgreSQL: dig and boto3 against them,
three nodes on 127.0.0.2..4, INSYNC waiting for every live node, a silent node that stops
counting, and nodes that keep serving while the database is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import require_tool
from tests.control_helpers import client
from tests.pg_helpers import ROOT, NodeProcess

pytestmark = [pytest.mark.realtime, pytest.mark.slow]

ZONE = "Z0API0AWS"


def upsert(name: str, value: str) -> dict:
    return {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": value}]}}]}


def nodes_json(url: str, timeout: float = 10.0) -> dict:
    out = subprocess.run([sys.executable, "-m", "authd", "nodes", "--store", url, "--json",
                          "--node-timeout", str(timeout)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    return json.loads(out.stdout)


def wait_insync(r53, change_id: str, timeout: float = 60.0, each=None) -> int:
    """Poll GetChange until INSYNC; `each(status)` runs after every answer. Returns polls."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        status = r53.get_change(Id=change_id)["ChangeInfo"]["Status"]
        polls += 1
        if each is not None:
            each(status)
        if status == "INSYNC":
            return polls
        assert time.monotonic() < deadline, f"{change_id} still {status} after {timeout}s"
        time.sleep(0.05)


def test_one_node_on_postgresql_answers_dig_and_boto3(pg_url, tmp_path):
    require_tool("dig")
    node = NodeProcess(pg_url, "127.0.0.1", "solo")
    try:
        r53 = client(node.control_url)
        zones = {z["Name"] for z in r53.list_hosted_zones()["HostedZones"]}
        assert "api.aws." in zones  # seeded from zones/
        info = r53.change_resource_record_sets(HostedZoneId=ZONE, ChangeBatch=upsert("pg.api.aws.", "192.0.2.77"))
        wait_insync(r53, info["ChangeInfo"]["Id"])
        assert node.dig("pg.api.aws.") == ["192.0.2.77"]
        listed = nodes_json(pg_url)
        [row] = listed["nodes"]
        assert row["name"] == "solo" and row["state"] == "LIVE" and row["lag"] == 0
        assert row["seq"] == listed["head"] and row["control"] == node.control_url
        # `authd change --store postgresql://... --wait`: straight to the database, and it
        # waits for the running node to serve the change
        batch = tmp_path / "batch.json"
        batch.write_text(json.dumps(upsert("cli.api.aws.", "192.0.2.78")))
        out = subprocess.run([sys.executable, "-m", "authd", "change", "--store", pg_url, "--zone", "api.aws",
                              "--batch", str(batch), "--wait"], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0 and "INSYNC" in out.stderr, out.stderr
        assert node.dig("cli.api.aws.") == ["192.0.2.78"]
        table = subprocess.run([sys.executable, "-m", "authd", "nodes", "--store", pg_url],
                               capture_output=True, text=True, timeout=60, cwd=ROOT, check=True).stdout
        assert table.splitlines()[2].split()[:2] == ["solo", "LIVE"], table
    finally:
        node.stop()


def test_three_nodes_insync_waits_for_every_live_node(pg_url):
    """A batch sent to node 2 is INSYNC only once all three serve it; node 3 is 3 s late.
    Then node 3 dies: INSYNC comes once it is silent past --node-timeout, and `authd nodes`
    says SILENT; restarted, it catches up and counts again."""
    require_tool("dig")
    timeout = "3"
    n1 = NodeProcess(pg_url, "127.0.0.2", "node-1", "--node-timeout", timeout)
    n2 = NodeProcess(pg_url, "127.0.0.3", "node-2", "--node-timeout", timeout)
    n3 = NodeProcess(pg_url, "127.0.0.4", "node-3", "--node-timeout", timeout, "--propagation-delay", "3")
    nodes = [n1, n2, n3]
    try:
        r53 = client(n2.control_url)
        info = r53.change_resource_record_sets(HostedZoneId=ZONE, ChangeBatch=upsert("multi.api.aws.", "192.0.2.10"))
        seen = []

        def check(status: str) -> None:
            answers = [n.dig("multi.api.aws.") for n in nodes]
            seen.append((status, answers))
            if status == "INSYNC":
                assert answers == [["192.0.2.10"]] * 3, answers

        wait_insync(r53, info["ChangeInfo"]["Id"], each=check)
        # node 3 was late, and GetChange said so (the node that took the batch and node 1
        # served it already)
        assert any(st == "PENDING" and ans[2] == [] for st, ans in seen), seen
        # node 1's API agrees: the journal and the nodes table are shared
        assert client(n1.control_url).get_change(Id=info["ChangeInfo"]["Id"])["ChangeInfo"]["Status"] == "INSYNC"

        n3.kill()
        info = r53.change_resource_record_sets(HostedZoneId=ZONE, ChangeBatch=upsert("multi.api.aws.", "192.0.2.11"))
        start = time.monotonic()
        wait_insync(r53, info["ChangeInfo"]["Id"])
        assert time.monotonic() - start > 1.0, "INSYNC did not wait for the dead node at all"
        assert [n.dig("multi.api.aws.") for n in (n1, n2)] == [["192.0.2.11"]] * 2
        rows = {r["name"]: r for r in nodes_json(pg_url, float(timeout))["nodes"]}
        assert rows["node-3"]["state"] == "SILENT" and rows["node-3"]["lag"] >= 1
        assert rows["node-1"]["state"] == rows["node-2"]["state"] == "LIVE"

        n3 = NodeProcess(pg_url, "127.0.0.4", "node-3", "--node-timeout", timeout)
        nodes[2] = n3
        assert n3.dig("multi.api.aws.") == ["192.0.2.11"]  # caught up from the journal
        rows = {r["name"]: r for r in nodes_json(pg_url, float(timeout))["nodes"]}
        assert rows["node-3"]["state"] == "LIVE"
    finally:
        for n in nodes:
            n.stop()


def test_nodes_keep_serving_while_the_database_is_down(pg_cluster):
    require_tool("dig")
    url = pg_cluster.new_database()
    # polling only every 120 s: what node A learns after the restart, its LISTEN connection
    # (reconnected with backoff) told it
    a = NodeProcess(url, "127.0.0.2", "node-a", "--poll-interval", "120")
    b = NodeProcess(url, "127.0.0.3", "node-b", "--poll-interval", "120")
    try:
        r53 = client(a.control_url)
        info = r53.change_resource_record_sets(HostedZoneId=ZONE, ChangeBatch=upsert("down.api.aws.", "192.0.2.1"))
        wait_insync(r53, info["ChangeInfo"]["Id"])
        mark = len(b.lines)
        pg_cluster.stop("immediate")
        try:
            b.wait_for("lost the database", timeout=30, start=mark)
            assert a.dig("down.api.aws.") == b.dig("down.api.aws.") == ["192.0.2.1"]
        finally:
            pg_cluster.start()
        b.wait_for("database reachable again", timeout=30, start=mark)
        info = client(b.control_url).change_resource_record_sets(
            HostedZoneId=ZONE, ChangeBatch=upsert("down.api.aws.", "192.0.2.2"))
        wait_insync(r53, info["ChangeInfo"]["Id"])
        assert a.dig("down.api.aws.") == b.dig("down.api.aws.") == ["192.0.2.2"]
    finally:
        a.stop()
        b.stop()


def test_notify_wakes_other_nodes_long_before_they_would_poll(pg_url):
    """Both nodes poll only every 120 s: node B serving node A's change within seconds
    means LISTEN/NOTIFY told it."""
    require_tool("dig")
    a = NodeProcess(pg_url, "127.0.0.2", "node-a", "--poll-interval", "120")
    b = NodeProcess(pg_url, "127.0.0.3", "node-b", "--poll-interval", "120")
    try:
        start = time.monotonic()
        info = client(a.control_url).change_resource_record_sets(
            HostedZoneId=ZONE, ChangeBatch=upsert("notify.api.aws.", "192.0.2.5"))
        wait_insync(client(a.control_url), info["ChangeInfo"]["Id"], timeout=60)
        assert b.dig("notify.api.aws.") == ["192.0.2.5"]
        assert time.monotonic() - start < 60
    finally:
        a.stop()
        b.stop()


def race_lock_pairs(url_a: str, url_b: str, pairs: int) -> dict[str, int]:
    """The enactor's lock preamble (DELETE the value I believe, CREATE mine) through boto3,
    one client per node, released together `pairs` times: asserts exactly one of each pair
    succeeds and the other gets Route 53's InvalidChangeBatch. Returns the wins per node."""
    import threading

    from botocore.exceptions import ClientError

    lock = "_lock.api.aws."

    def txt(v: str) -> dict:
        return {"Name": lock, "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": f'"{v}"'}]}

    clients = {"a": client(url_a), "b": client(url_b)}
    clients["a"].change_resource_record_sets(HostedZoneId=ZONE, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": txt("v0")}]})
    held, wins = "v0", {"a": 0, "b": 0}
    for i in range(pairs):
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}

        def take(who: str, i=i, held=held, barrier=barrier, results=results) -> None:
            batch = {"Changes": [{"Action": "DELETE", "ResourceRecordSet": txt(held)},
                                 {"Action": "CREATE", "ResourceRecordSet": txt(f"{who}{i}")}]}
            barrier.wait()
            try:
                results[who] = clients[who].change_resource_record_sets(HostedZoneId=ZONE, ChangeBatch=batch)
            except ClientError as exc:
                results[who] = exc

        threads = [threading.Thread(target=take, args=(w,)) for w in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        won = [w for w in ("a", "b") if not isinstance(results[w], ClientError)]
        assert len(won) == 1, results
        lost = results["b" if won == ["a"] else "a"]
        assert lost.response["Error"]["Code"] == "InvalidChangeBatch", lost.response
        wins[won[0]] += 1
        held = f"{won[0]}{i}"
    sets = clients["b"].list_resource_record_sets(
        HostedZoneId=ZONE, StartRecordName=lock, StartRecordType="TXT", MaxItems="1")["ResourceRecordSets"]
    assert sets[0]["ResourceRecords"] == [{"Value": f'"{held}"'}]
    assert wins["a"] + wins["b"] == pairs
    return wins


def test_conflicting_batches_sent_to_two_nodes_at_once_have_one_winner(pg_url):
    a = NodeProcess(pg_url, "127.0.0.2", "node-a")
    b = NodeProcess(pg_url, "127.0.0.3", "node-b")
    try:
        race_lock_pairs(a.control_url, b.control_url, int(os.environ.get("PG_RACE_PAIRS", "200")))
    finally:
        a.stop()
        b.stop()


def test_an_unreachable_database_is_one_clear_line_and_exit_2():
    from tests.pg_helpers import free_port

    url = f"postgresql://nobody@127.0.0.1:{free_port()}/authd"  # nothing listens there
    out = subprocess.run([sys.executable, "-m", "authd", "serve", "--store", url, "--listen", "127.0.0.1:0",
                          "--control", "127.0.0.1:0"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2, out.stderr
    assert "not starting: cannot reach PostgreSQL at " + url in out.stderr
    assert "Traceback" not in out.stderr


def test_authd_nodes_on_a_database_no_node_has_used(pg_url):
    out = subprocess.run([sys.executable, "-m", "authd", "nodes", "--store", pg_url],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 1 and "no node has run on it yet" in out.stderr, out.stderr
    out = subprocess.run([sys.executable, "-m", "authd", "nodes", "--store", "nodes.db"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2 and "postgresql://" in out.stderr
