"""Zone transfers: what secondaries get, IXFR steps, TSIG, and real Knot and NSD following authd."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from authd.dns import tsig
from authd.dns.index import ServingIndex
from authd.dns.xfr import TransferRule, TransferService, TransferView
from authd.localnet import free_port, stop, wait_answering
from authd.model.journal import EntryKind, JournalEntry
from authd.model.records import AliasTarget, RecordSet
from tests.xfr_peers import start_knot, start_nsd

ROOT = Path(__file__).resolve().parent.parent
ZONE = "xfr.test."
SECRET = base64.b64encode(b"a test secret of thirty-two byte").decode()
RING = tsig.keyring([tsig.parse_key(f"xfr-key:hmac-sha256:{SECRET}")])
CLIENT_RING = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", SECRET)})


def soa(serial: int) -> RecordSet:
    return RecordSet(ZONE, "SOA", 60, (f"ns1.{ZONE} hostmaster.{ZONE} {serial} 7200 900 1209600 60",))


def A(name: str, *values: str, **kw) -> RecordSet:
    return RecordSet(name + "." + ZONE, "A", 60, values, **kw)


BASE = [soa(1), RecordSet(ZONE, "NS", 60, (f"ns1.{ZONE}",)), A("ns1", "192.0.2.53"),
        A("www", "192.0.2.10")]


def snapshot(sets, seq=1) -> JournalEntry:
    return JournalEntry(seq, EntryKind.SNAPSHOT, "Z0XFR0TEST", ZONE, 1, "", tuple(sets))


def change(seq: int, serial: int, puts=(), deletes=()) -> JournalEntry:
    return JournalEntry(seq, EntryKind.CHANGE, "Z0XFR0TEST", ZONE, serial, f"C{seq}",
                        (*puts, soa(serial)), tuple(deletes))


def flat(view: TransferView) -> dict:
    return {k: (ttl, set(v)) for k, (ttl, v) in view.find(ZONE).flat.items()}


# --- what a secondary gets ----------------------------------------------------------------------


def test_weighted_sets_merge_and_aliases_become_their_targets_records():
    view = TransferView()
    view.apply(snapshot([
        *BASE,
        A("lb", "192.0.2.1", set_identifier="one", weight=10),
        RecordSet("lb." + ZONE, "A", 30, ("192.0.2.2",), set_identifier="two", weight=0),
        RecordSet("svc." + ZONE, "A", alias=AliasTarget("lb." + ZONE, "Z0XFR0TEST")),
        RecordSet("dangling." + ZONE, "A", alias=AliasTarget("gone." + ZONE, "Z0XFR0TEST")),
    ]))
    got = flat(view)
    assert got[("lb." + ZONE, "A")] == (30, {"192.0.2.1", "192.0.2.2"})  # every member, lowest TTL
    assert got[("svc." + ZONE, "A")] == (30, {"192.0.2.1", "192.0.2.2"})  # the target's records
    assert ("dangling." + ZONE, "A") not in got  # NODATA in DNS: nothing to transfer


def test_a_change_is_one_ixfr_step_and_aliases_follow_their_targets():
    view = TransferView()
    view.apply(snapshot([*BASE, A("plan-1", "192.0.2.1"), A("plan-2", "192.0.2.2"),
                         RecordSet("svc." + ZONE, "A", alias=AliasTarget("plan-1." + ZONE, "Z"))]))
    # the 2025 flip: the alias moves from plan-1 to plan-2
    view.apply(change(2, 2, puts=[RecordSet("svc." + ZONE, "A", alias=AliasTarget("plan-2." + ZONE, "Z"))]))
    # a change to the target alone changes what the alias sends
    view.apply(change(3, 3, puts=[A("plan-2", "192.0.2.22")]))
    zone = view.find(ZONE)
    s1, s2 = zone.steps
    assert (s1.old_serial, s1.new_serial) == (1, 2)
    assert s1.removed == (("svc." + ZONE, "A", 60, "192.0.2.1"),)
    assert s1.added == (("svc." + ZONE, "A", 60, "192.0.2.2"),)
    assert set(s2.removed) == {("plan-2." + ZONE, "A", 60, "192.0.2.2"), ("svc." + ZONE, "A", 60, "192.0.2.2")}
    assert set(s2.added) == {("plan-2." + ZONE, "A", 60, "192.0.2.22"), ("svc." + ZONE, "A", 60, "192.0.2.22")}
    assert view.steps_since(zone, 1) == [s1, s2] and view.steps_since(zone, 3) == []
    assert view.steps_since(zone, 99) is None


def test_history_limit_sends_older_clients_the_whole_zone():
    view = TransferView(history=3)
    view.apply(snapshot(BASE))
    for i in range(2, 8):
        view.apply(change(i, i, puts=[A(f"n{i}", "192.0.2.9")]))
    zone = view.find(ZONE)
    assert [s.old_serial for s in zone.steps] == [4, 5, 6]
    assert view.steps_since(zone, 4) is not None and view.steps_since(zone, 3) is None


def test_view_equals_index_state_after_any_changes(index_with_changes=None):
    """The view built incrementally equals one built from the final state in one go."""
    import random

    rng = random.Random(7)
    view = TransferView()
    sets = {rs.key: rs for rs in BASE}
    view.apply(snapshot(sets.values()))
    for i in range(2, 60):
        puts, deletes = [], []
        name = f"h{rng.randrange(12)}"
        if rng.random() < 0.3 and any(k.name.startswith(name + ".") for k in sets):
            deletes = [k for k in sets if k.name == f"{name}.{ZONE}"][:1]
        elif rng.random() < 0.3:
            puts = [RecordSet(f"{name}.{ZONE}", "A", alias=AliasTarget(f"h{rng.randrange(12)}.{ZONE}", "Z"))]
        else:
            puts = [A(name, f"192.0.2.{rng.randrange(1, 250)}", set_identifier=f"m{rng.randrange(3)}",
                      weight=rng.randrange(10))]
        for k in deletes:
            del sets[k]
        for rs in puts:
            for k in [k for k in sets if k.name == rs.name and k.rtype == rs.rtype
                      and (k.set_identifier is None) != (rs.set_identifier is None)]:
                del sets[k]  # keep the model legal: plain and weighted never share a name
                deletes.append(k)
            sets[rs.key] = rs
        sets[soa(i).key] = soa(i)
        view.apply(change(i, i, puts, deletes))
    fresh = TransferView()
    fresh.apply(snapshot(sets.values()))
    assert view.find(ZONE).flat == fresh.find(ZONE).flat


# --- the service: messages, TSIG, access ---------------------------------------------------------


def service(sets, **kw) -> TransferService:
    index = ServingIndex()
    index.apply(snapshot(sets))
    view = index.enable_transfers(1000)
    return TransferService(view, index.respond, keyring=RING, **kw)


def test_axfr_of_a_zone_over_64k_spans_messages_and_verifies_with_dnspython():
    big = [*BASE, *(A(f"host{i:05d}", f"10.0.{i >> 8 & 255}.{i & 255}") for i in range(6000))]
    svc = service(big, rules=[TransferRule.parse("127.0.0.0/8@xfr-key")])
    q = dns.message.make_query(ZONE, "AXFR")
    q.use_tsig(CLIENT_RING, keyname="xfr-key.")
    messages = list(svc.respond(q.to_wire(), "127.0.0.1", tcp=True, now=0))
    assert len(messages) >= 3 and all(len(m) <= 65535 for m in messages)
    # dnspython's inbound transfer checks the SOA framing and every message's TSIG in turn
    zone = dns.zone.Zone(ZONE)
    with dns.xfr.Inbound(zone, dns.rdatatype.AXFR) as inbound:
        ctx, mac = None, q.mac
        for wire in messages:
            m = dns.message.from_wire(wire, keyring=CLIENT_RING, request_mac=mac,
                                      xfr=True, origin=zone.origin, tsig_ctx=ctx, multi=True,
                                      one_rr_per_rrset=False)
            ctx = m.tsig_ctx
            done = inbound.process_message(m)
        assert done
    assert len(zone.nodes) == 6003  # apex, ns1, www and 6,000 hosts


def test_signed_queries_are_verified_and_answered_signed():
    svc = service(BASE, rules=[TransferRule.parse("127.0.0.0/8@xfr-key")])
    q = dns.message.make_query(ZONE, "SOA")
    q.use_tsig(CLIENT_RING, keyname="xfr-key.")
    (wire,) = svc.respond(q.to_wire(), "127.0.0.1", tcp=False, now=0)
    r = dns.message.from_wire(wire, keyring=CLIENT_RING, request_mac=q.mac)  # raises if bad
    assert r.rcode() == dns.rcode.NOERROR and r.answer[0][0].serial == 1 and r.had_tsig


@pytest.mark.parametrize("case", ["badkey", "badsig"])
def test_bad_tsig_gets_notauth_with_the_error_unsigned(case):
    """RFC 8945 §5.2.1 and §5.2.2 (today's FORMERR was the issue-13 bug)."""
    svc = service(BASE, rules=[TransferRule.parse("127.0.0.0/8@xfr-key")])
    if case == "badkey":
        ring = dns.tsigkeyring.from_text({"stranger.": ("hmac-sha256", SECRET)})
        keyname = "stranger."
    else:
        ring = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", base64.b64encode(b"x" * 32).decode())})
        keyname = "xfr-key."
    q = dns.message.make_query(ZONE, "AXFR")
    q.use_tsig(ring, keyname=keyname)
    (wire,) = svc.respond(q.to_wire(), "127.0.0.1", tcp=True, now=1_700_000_000)
    r = dns.message.from_wire(wire, keyring=False)
    assert r.rcode() == dns.rcode.NOTAUTH and not r.answer
    assert r.tsig[0].error == (tsig.BADKEY if case == "badkey" else tsig.BADSIG)
    assert r.tsig[0].mac == b"" and r.keyname == dns.name.from_text(keyname)


def test_transfers_need_the_rule_and_the_key():
    svc = service(BASE, rules=[TransferRule.parse("127.0.0.0/8@xfr-key")])
    unsigned = dns.message.make_query(ZONE, "AXFR").to_wire()
    (wire,) = svc.respond(unsigned, "127.0.0.1", tcp=True, now=0)
    assert dns.message.from_wire(wire).rcode() == dns.rcode.REFUSED
    q = dns.message.make_query(ZONE, "AXFR")
    q.use_tsig(CLIENT_RING, keyname="xfr-key.")
    (wire,) = svc.respond(q.to_wire(), "192.0.2.1", tcp=True, now=0)  # outside the CIDR
    assert dns.message.from_wire(wire, keyring=CLIENT_RING, request_mac=q.mac).rcode() == dns.rcode.REFUSED
    other = dns.message.make_query("nosuch.test.", "AXFR")
    other.use_tsig(CLIENT_RING, keyname="xfr-key.")
    (wire,) = svc.respond(other.to_wire(), "127.0.0.1", tcp=True, now=0)
    assert dns.message.from_wire(wire, keyring=CLIENT_RING, request_mac=other.mac).rcode() == dns.rcode.NOTAUTH


def test_ixfr_over_udp_answers_when_it_fits_else_the_soa():
    index = ServingIndex()
    index.apply(snapshot(BASE))
    view = index.enable_transfers(1000)
    svc = TransferService(view, index.respond, allow_any=True)
    index.apply(change(2, 2, puts=[A("new", "192.0.2.77")]))

    def ixfr(serial: int) -> dns.message.Message:
        q = dns.message.make_query(ZONE, "IXFR")
        q.authority = [dns.rrset.from_text(ZONE, 60, "IN", "SOA", f"ns1.{ZONE} hm.{ZONE} {serial} 1 1 1 1")]
        (wire,) = svc.respond(q.to_wire(), "127.0.0.1", tcp=False, now=0)
        return dns.message.from_wire(wire, one_rr_per_rrset=True)

    r = ixfr(1)  # RFC 1995 §4: new SOA, old SOA, deletions, new SOA, additions, new SOA
    assert [(rr.rdtype, rr[0].to_text().split()[2] if rr.rdtype == 6 else rr[0].to_text()) for rr in r.answer] == [
        (6, "2"), (6, "1"), (6, "2"), (1, "192.0.2.77"), (6, "2")]
    assert [rr.rdtype for rr in ixfr(2).answer] == [6]  # up to date: the SOA alone
    for i in range(3, 400):  # a long history that cannot fit one UDP message
        index.apply(change(i, i, puts=[A(f"n{i:04d}-with-a-long-label-to-fill-bytes", "192.0.2.9")]))
    assert [rr.rdtype for rr in ixfr(1).answer] == [6]  # RFC 1995 §2: the SOA; use TCP


# --- real secondaries -------------------------------------------------------------------------


def _authd(tmp: Path, *extra: str):
    zones = tmp / "zones"
    zones.mkdir()
    (zones / f"{ZONE}zone").write_text(
        "$TTL 60\n@ SOA ns1 hostmaster 1 7200 900 1209600 60\n@ NS ns1\nns1 A 192.0.2.53\nwww A 192.0.2.10\n")
    dport, cport = free_port(), free_port()
    log = open(tmp / "authd.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "authd", "serve", "--zones", str(zones), "--listen", f"127.0.0.1:{dport}",
         "--store", str(tmp / "store.sqlite3"), "--control", f"127.0.0.1:{cport}",
         "--allow-transfer", "127.0.0.0/8@xfr-key", "--tsig-key", f"xfr-key:hmac-sha256:{SECRET}",
         *extra], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    wait_answering(dport, proc, "authd", qname=ZONE)
    return proc, dport, cport


def _route53(cport: int):
    import boto3

    client = boto3.client("route53", endpoint_url=f"http://127.0.0.1:{cport}", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    zid = next(z["Id"] for z in client.list_hosted_zones()["HostedZones"] if z["Name"] == ZONE)

    def put(name: str, value: str) -> int:
        client.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [{
            "Action": "UPSERT", "ResourceRecordSet": {"Name": f"{name}.{ZONE}", "Type": "A", "TTL": 60,
                                                      "ResourceRecords": [{"Value": value}]}}]})
        sets = client.list_resource_record_sets(HostedZoneId=zid, StartRecordName=ZONE,
                                                StartRecordType="SOA", MaxItems="1")
        return int(sets["ResourceRecordSets"][0]["ResourceRecords"][0]["Value"].split()[2])

    return put


def _dig(port: int, name: str) -> str:
    return subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+norecurse", name],
                          capture_output=True, text=True, timeout=10).stdout.strip()


@pytest.mark.realtime
@pytest.mark.slow
def test_knot_and_nsd_follow_authd_by_notify_and_ixfr_and_catch_up(tmp_path):
    kport, nport = free_port(), free_port()
    proc, dport, cport = _authd(tmp_path, "--notify", f"127.0.0.1:{kport}@xfr-key",
                                "--notify", f"127.0.0.1:{nport}@xfr-key", "--ixfr-history", "60")
    (tmp_path / "knot").mkdir()
    (tmp_path / "nsd").mkdir()
    knot = start_knot(tmp_path / "knot", ZONE, dport, ("xfr-key", SECRET), kport)
    nsd = start_nsd(tmp_path / "nsd", ZONE, dport, ("xfr-key", SECRET), nport)
    try:
        for s in (knot, nsd):
            assert s.wait_serial(ZONE, 2, 20) is not None, s.log[-2000:]
        put = _route53(cport)
        # 1. a change through the Route 53 API is served by both within 2 s: NOTIFY, then IXFR
        serial = put("new", "192.0.2.77")
        for s in (knot, nsd):
            took = s.wait_serial(ZONE, serial, 2.0)
            assert took is not None, f"{s.kind} did not follow within 2 s:\n{s.log[-3000:]}"
            assert _dig(s.port, f"new.{ZONE}") == "192.0.2.77"
        assert "IXFR, incoming" in knot.log and "notify, incoming" in knot.log
        assert "notify for xfr.test." in nsd.log and "TSIG verified with key xfr-key" in nsd.log
        authd_log = (tmp_path / "authd.log").read_text()
        assert f"notify {ZONE} serial {serial} to 127.0.0.1:{kport} (key xfr-key.): acknowledged" in authd_log
        assert f"transfer {ZONE} IXFR to 127.0.0.1: serial {serial - 1} -> {serial}" in authd_log

        # 2. a secondary down for 50 changes catches up by IXFR when it comes back
        knot.stop()
        for i in range(50):
            serial = put(f"n{i:02d}", f"192.0.2.{100 + i}")
        knot = start_knot(tmp_path / "knot", ZONE, dport, ("xfr-key", SECRET), kport)
        assert knot.wait_serial(ZONE, serial, 20) is not None, knot.log[-3000:]
        assert _dig(knot.port, f"n49.{ZONE}") == "192.0.2.149"
        authd_log = (tmp_path / "authd.log").read_text()
        assert f"serial {serial - 50} -> {serial} in 50 changes" in authd_log

        # 3. past the kept history (--ixfr-history 60), the whole zone comes instead: Knot
        # keeps its zone in its journal, so it asks for IXFR from its old serial
        knot.stop()
        for i in range(70):
            serial = put(f"m{i:02d}", f"198.51.100.{i + 1}")
        knot = start_knot(tmp_path / "knot", ZONE, dport, ("xfr-key", SECRET), kport)
        assert knot.wait_serial(ZONE, serial, 20) is not None, knot.log[-3000:]
        assert _dig(knot.port, f"m69.{ZONE}") == "198.51.100.70"
        authd_log = (tmp_path / "authd.log").read_text()
        assert f"serial {serial - 70} is not in the last 60 changes; sending the whole zone" in authd_log
        # and NSD, up all along, followed every change
        assert nsd.wait_serial(ZONE, serial, 5) is not None
        assert _dig(nsd.port, f"m69.{ZONE}") == "198.51.100.70"
    finally:
        knot.stop()
        nsd.stop()
        stop(proc)


@pytest.mark.realtime
@pytest.mark.slow
def test_a_200k_record_zone_transfers_to_knot_and_kdig_counts_every_record(tmp_path):
    from bench.scale import generate_zone

    kdig = pytest.importorskip("shutil").which("kdig")
    if kdig is None:
        pytest.skip("kdig not installed (Debian package knot-dnsutils)")
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "big.test.zone").write_text(generate_zone(160_000))  # 200,003 records
    dport = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "authd", "serve", "--zones", str(zones), "--listen", f"127.0.0.1:{dport}",
         "--control", "off", "--allow-transfer", "127.0.0.0/8@xfr-key",
         "--tsig-key", f"xfr-key:hmac-sha256:{SECRET}", "--log-level", "WARNING"], cwd=ROOT)
    (tmp_path / "knot").mkdir()
    knot = None
    try:
        wait_answering(dport, proc, "authd", qname="big.test.", timeout=240)
        out = subprocess.run([kdig, "@127.0.0.1", "-p", str(dport), "-y", f"hmac-sha256:xfr-key:{SECRET}",
                              "+noall", "+answer", "big.test.", "AXFR"],
                             capture_output=True, text=True, timeout=300).stdout
        records = [line for line in out.splitlines() if line and not line.startswith(";")]
        assert len(records) == 200_003 + 1  # every record, and the SOA again at the end
        assert records[0].split()[3] == records[-1].split()[3] == "SOA"
        knot = start_knot(tmp_path / "knot", "big.test.", dport, ("xfr-key", SECRET))
        assert knot.wait_serial("big.test.", 1, 240) is not None, knot.log[-3000:]
        assert "AXFR, incoming" in knot.log and "finished" in knot.log
    finally:
        if knot is not None:
            knot.stop()
        stop(proc)
