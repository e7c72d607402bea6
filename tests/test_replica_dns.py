"""End to end with the real server and real dig: atomic batches, the journal feeding DNS,
and a delayed replica (DNS lags, the control API is current, GetChange PENDING until caught up)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
import trio
from dns.message import from_wire, make_query
from dns.rcode import NXDOMAIN

from authd.node import NodeConfig, run_node
from tests.control_helpers import client

ZONES = str(Path(__file__).resolve().parent.parent / "zones")
DIG = shutil.which("dig")

pytestmark = [pytest.mark.realtime]


def need_dig() -> str:
    if DIG is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    return DIG


async def dig(server, name: str, rtype: str = "A") -> tuple[str, list[str]]:
    """(status, answer values) as dig prints them."""
    out = await trio.run_process(
        [need_dig(), f"@{server.host}", "-p", str(server.port), "+norecurse", "+tries=1", "+time=2",
         name, rtype],
        capture_stdout=True, check=False,
    )
    text = out.stdout.decode()
    status = text.split("status: ", 1)[1].split(",", 1)[0] if "status: " in text else "TIMEOUT"
    answers, in_answer = [], False
    for line in text.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            in_answer = True
        elif in_answer and (not line.strip() or line.startswith(";;")):
            in_answer = False
        elif in_answer:
            answers.append(line.split()[-1])
    return status, answers


async def boto(url: str, op: str, **kw):
    return await trio.to_thread.run_sync(functools.partial(getattr(client(url), op), **kw))


def create(name: str, value: str = "192.0.2.77", action: str = "CREATE") -> dict:
    return {"Action": action, "ResourceRecordSet": {"Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": value}]}}


async def test_delayed_replica_lags_while_the_api_is_current(tmp_path):
    need_dig()
    cfg = NodeConfig(store_path=str(tmp_path / "authd.db"), zones_dir=ZONES, dns_port=0,
                     control=("127.0.0.1", 0), replicas=2, replica_delays=[0.0, 1.5])
    async with trio.open_nursery() as nursery:
        node = await nursery.start(run_node, cfg)
        primary, fast, slow = node.servers
        assert (fast.host, slow.host) == ("127.0.0.2", "127.0.0.3")
        for server in node.servers:
            assert (await dig(server, "ns1.api.aws"))[0] == "NOERROR"

        out = await boto(node.control_url, "change_resource_record_sets", HostedZoneId="Z0API0AWS",
                         ChangeBatch={"Changes": [create("fresh.api.aws.")]})
        change_id = out["ChangeInfo"]["Id"]
        seq = node.store.get_change(change_id).seq
        await primary.follower.wait_applied(seq)
        await fast.follower.wait_applied(seq)
        # the API is current at once ...
        listed = await boto(node.control_url, "list_resource_record_sets", HostedZoneId="Z0API0AWS",
                            StartRecordName="fresh.api.aws.", StartRecordType="A", MaxItems="1")
        assert listed["ResourceRecordSets"][0]["Name"] == "fresh.api.aws."
        # ... the primary and the prompt replica answer, the delayed replica does not yet ...
        assert await dig(primary, "fresh.api.aws") == ("NOERROR", ["192.0.2.77"])
        assert await dig(fast, "fresh.api.aws") == ("NOERROR", ["192.0.2.77"])
        assert (await dig(slow, "fresh.api.aws"))[0] == "NXDOMAIN"
        # ... and GetChange says PENDING until it catches up
        assert (await boto(node.control_url, "get_change", Id=change_id))["ChangeInfo"]["Status"] == "PENDING"
        await slow.follower.wait_applied(seq)
        assert await dig(slow, "fresh.api.aws") == ("NOERROR", ["192.0.2.77"])
        assert (await boto(node.control_url, "get_change", Id=change_id))["ChangeInfo"]["Status"] == "INSYNC"
        nursery.cancel_scope.cancel()


async def test_an_accepted_change_is_answered_once_the_primary_serves_it(tmp_path):
    """The change response waits for the local index (bounded), so with no replica behind it
    already says INSYNC and dig sees the change with no GetChange in between; with a
    delayed replica it says PENDING at once (the delay is never waited for)."""
    need_dig()
    cfg = NodeConfig(store_path=str(tmp_path / "authd.db"), zones_dir=ZONES, dns_port=0,
                     control=("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        node = await nursery.start(run_node, cfg)
        out = await boto(node.control_url, "change_resource_record_sets", HostedZoneId="Z0API0AWS",
                         ChangeBatch={"Changes": [create("settled.api.aws.")]})
        assert out["ChangeInfo"]["Status"] == "INSYNC"
        assert await dig(node.primary, "settled.api.aws") == ("NOERROR", ["192.0.2.77"])
        nursery.cancel_scope.cancel()
    cfg = NodeConfig(store_path=str(tmp_path / "authd2.db"), zones_dir=ZONES, dns_port=0,
                     control=("127.0.0.1", 0), replicas=1, replica_delays=[30.0])
    async with trio.open_nursery() as nursery:
        node = await nursery.start(run_node, cfg)
        with trio.fail_after(10):  # far less than the replica's delay
            out = await boto(node.control_url, "change_resource_record_sets", HostedZoneId="Z0API0AWS",
                             ChangeBatch={"Changes": [create("lagging.api.aws.")]})
        assert out["ChangeInfo"]["Status"] == "PENDING"
        assert await dig(node.primary, "lagging.api.aws") == ("NOERROR", ["192.0.2.77"])
        assert (await dig(node.replicas[0], "lagging.api.aws"))[0] == "NXDOMAIN"
        nursery.cancel_scope.cancel()


async def test_atomicity_seen_through_dig_and_the_dangling_alias(tmp_path):
    need_dig()
    cfg = NodeConfig(store_path=str(tmp_path / "authd.db"), zones_dir=ZONES, dns_port=0,
                     control=("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        node = await nursery.start(run_node, cfg)
        primary = node.primary
        name = "dynamodb.us-east-1.api.aws"
        before_a = await dig(primary, name)
        before_ns1 = await dig(primary, "ns1.api.aws")
        assert before_a[0] == "NOERROR" and len(before_a[1]) >= 1
        seq = node.store.seq
        bad = {"Changes": [
            create("half.api.aws."),
            create("ns1.api.aws.", "192.0.2.99", action="UPSERT"),
            {"Action": "DELETE", "ResourceRecordSet": {"Name": "nope.api.aws.", "Type": "A", "TTL": 60,
                                                        "ResourceRecords": [{"Value": "192.0.2.1"}]}},
        ]}
        c = client(node.control_url)
        with pytest.raises(c.exceptions.InvalidChangeBatch):
            await boto(node.control_url, "change_resource_record_sets", HostedZoneId="Z0API0AWS", ChangeBatch=bad)
        assert node.store.seq == seq
        assert (await dig(primary, "half.api.aws"))[0] == "NXDOMAIN"
        assert await dig(primary, "ns1.api.aws") == before_ns1

        # Route 53 lets a batch delete the tree an alias points at: DNS then answers
        # NOERROR with no addresses, the 2025 symptom (the cleaner must prevent it, not the store).
        sets = node.store.record_sets("Z0API0AWS")
        tree = [rs for rs in sets if rs.name == "plan-0001.dynamodb.us-east-1.api.aws." and rs.rtype == "A"]
        delete = {"Changes": [{"Action": "DELETE", "ResourceRecordSet": rs.to_route53()} for rs in tree]}
        out = await boto(node.control_url, "change_resource_record_sets", HostedZoneId="Z0API0AWS", ChangeBatch=delete)
        await primary.follower.wait_applied(node.store.get_change(out["ChangeInfo"]["Id"]).seq)
        assert await dig(primary, name) == ("NOERROR", [])
        nursery.cancel_scope.cancel()


async def test_replica_process_follows_the_file_and_holds_getchange(tmp_path):
    """`authd serve --replica` in its own process: follows the SQLite journal read-only,
    serves DNS, and the primary's GetChange waits for it."""
    import os
    import subprocess
    import sys
    import types

    need_dig()
    db = tmp_path / "authd.db"
    cfg = NodeConfig(store_path=str(db), zones_dir=ZONES, dns_port=0, control=("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        node = await nursery.start(run_node, cfg)
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        proc = await nursery.start(functools.partial(
            trio.run_process,
            [sys.executable, "-m", "authd", "serve", "--replica", "--store", str(db), "--listen", "127.0.0.1:0",
             "--propagation-delay", "1.0", "--replica-name", "far-away", "--poll-interval", "0.02"],
            stderr=subprocess.PIPE, env=env, check=False,
        ))
        port = None
        buf = b""
        with trio.fail_after(30):
            while port is None:
                buf += await proc.stderr.receive_some(4096)
                for line in buf.decode(errors="replace").splitlines():
                    if "far-away: DNS on " in line:
                        port = int(line.rsplit(" port ", 1)[1].split(",")[0])

        far = types.SimpleNamespace(host="127.0.0.1", port=port)
        progress = Path(str(db) + ".replicas") / "far-away.seq"
        with trio.fail_after(10):
            while not progress.exists():
                await trio.sleep(0.02)
        assert node.propagation.describe()["far-away"] == node.store.seq

        out = await boto(node.control_url, "change_resource_record_sets", HostedZoneId="Z0API0AWS",
                         ChangeBatch={"Changes": [create("far.api.aws.", "192.0.2.88")]})
        change_id = out["ChangeInfo"]["Id"]
        await node.primary.follower.wait_applied(node.store.get_change(change_id).seq)
        assert await dig(node.primary, "far.api.aws") == ("NOERROR", ["192.0.2.88"])
        assert (await dig(far, "far.api.aws"))[0] == "NXDOMAIN"
        assert (await boto(node.control_url, "get_change", Id=change_id))["ChangeInfo"]["Status"] == "PENDING"
        with trio.fail_after(15):
            while (await boto(node.control_url, "get_change", Id=change_id))["ChangeInfo"]["Status"] != "INSYNC":
                await trio.sleep(0.05)
        assert await dig(far, "far.api.aws") == ("NOERROR", ["192.0.2.88"])
        proc.kill()
        nursery.cancel_scope.cancel()


async def test_cli_change_on_the_store_file_waits_for_running_servers(tmp_path, capsys):
    """`authd change --store FILE --wait` (no HTTP) still waits until every server following
    FILE has applied the change: they report progress beside the file."""
    import json
    import time

    from authd.cli.main import main

    db = tmp_path / "authd.db"
    cfg = NodeConfig(store_path=str(db), zones_dir=ZONES, dns_port=0, replicas=1, replica_delays=[1.0],
                     poll_interval=0.02)
    batch = tmp_path / "b.json"
    batch.write_text(json.dumps({"Changes": [create("via-file.api.aws.", "192.0.2.66")]}))
    async with trio.open_nursery() as nursery:
        node = await nursery.start(run_node, cfg)
        start = time.monotonic()
        status = await trio.to_thread.run_sync(
            main, ["change", "--zone", "api.aws", "--batch", str(batch), "--store", str(db), "--wait"]
        )
        assert status == 0
        assert time.monotonic() - start >= 1.0, "waited for the delayed replica"
        assert "INSYNC" in capsys.readouterr().err
        assert await dig(node.replicas[0], "via-file.api.aws") == ("NOERROR", ["192.0.2.66"])
        nursery.cancel_scope.cancel()


async def test_the_primary_compiles_a_batch_while_the_store_commits_it(tmp_path):
    """The control API hands an accepted batch's puts to the serving index before the
    store's COMMIT (`ServingIndex.prepare`, run in the trio thread), the index serves
    nothing of them until the committed entry is applied, and the apply serves the very
    entries compiled then; the change answers INSYNC and dig sees it."""
    need_dig()
    cfg = NodeConfig(store_path=str(tmp_path / "authd.db"), zones_dir=ZONES, dns_port=0,
                     control=("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        node = await nursery.start(run_node, cfg)
        index = node.primary.index
        seen = []
        real = index.prepare

        def prepare(puts, over):
            asked = index.respond(make_query("early.api.aws.", "A").to_wire(), tcp=False)
            real(puts)  # no budget here: the assertions below need every set prepared
            seen.append((index.seq, list(puts), dict(index._prepared), asked, over))

        index.prepare = prepare
        out = await boto(node.control_url, "change_resource_record_sets", HostedZoneId="Z0API0AWS",
                         ChangeBatch={"Changes": [create("early.api.aws."), create("late.api.aws.")]})
        assert out["ChangeInfo"]["Status"] == "INSYNC"
        ((seq_then, puts, prepared, asked, over),) = seen
        # bounded by about the store's last COMMIT (a deadline the control API set)
        assert over is not None and isinstance(over(), bool)
        assert seq_then < index.seq, "prepared before the apply"
        assert from_wire(asked).rcode() == NXDOMAIN, "not served before the apply"
        rs = next(rs for rs in puts if rs.name == "early.api.aws.")
        entry = prepared[rs.key][1]
        zone = index._by_id["Z0API0AWS"]
        assert zone.nodes[entry.key][1] is entry, "the apply served what was compiled ahead"
        assert await dig(node.primary, "early.api.aws") == ("NOERROR", ["192.0.2.77"])
        nursery.cancel_scope.cancel()
