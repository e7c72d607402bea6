"""Differential suite (issue 13): authd answers as Knot and NSD answer, case by case.

One test starts authd, Knot and NSD on loopback, each serving `tests/data/diff.test.zone`
and its served child `tests/data/child.diff.test.zone` unchanged, and sends every case of
`tests/dns_cases.py` (over 3,000: lookups of every kind of name in many variants, sizes at
each client limit, every opcode, odd classes, EDNS versions and options, odd headers,
malformed packets, transfers) to all three at once: UDP with many queries in flight, TCP
pipelined on a few connections, answers matched back by ID.

Each response is normalised: RCODE (extended), opcode, header flags, the question exactly as
sent back (0x20 case included), the three sections as sets of lower-cased records (names
compare case-insensitively, RFC 4343, and Knot writes names in rdata as the zone has them),
EDNS version, payload and DO, the EDE codes (RFC 8914) and the other option codes; a dropped
packet and an unparseable reply are outcomes too.

- Knot and NSD agree and authd differs: a failure, unless the case is one of `CHOICES`, each
  with its reason (a documented choice).
- Knot and NSD disagree: listed in the report, not judged.

The test writes its report (counts, the choices and why, every disagreement of the peers
with what authd answers) to `differential-report.md` in its temporary directory, or to
`$DIFF_REPORT` when set; README.md, "Differential testing against Knot and NSD", holds the
summary, and a test below keeps every choice named there.
"""

from __future__ import annotations

import os
import re
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from authd.localnet import find_tool
from tests.dns_cases import Case, cases, describe_cases
from tests.dns_peers import Server, start

pytestmark = [pytest.mark.realtime, pytest.mark.slow]

DATA = Path(__file__).resolve().parent / "data"
ZONE_FILES = [DATA / "diff.test.zone", DATA / "child.diff.test.zone"]
README = Path(__file__).resolve().parent.parent / "README.md"

# --------------------------------------------------------------------------------------------
# Sending: UDP with a window of queries in flight, TCP pipelined; answers matched by ID


def send_udp(port: int, todo: list[Case], *, window: int = 64, wait: float = 1.5,
             attempts: int = 3) -> dict[int, bytes]:
    """Every case's response, by ID; a case unanswered after `attempts` sends is missing
    (dropped). Queries expire from the window after `wait` seconds; a loaded machine may
    lose a datagram on loopback, so each unanswered case is sent again."""
    got: dict[int, bytes] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        s.connect(("127.0.0.1", port))
        for _ in range(attempts):
            queue = [c for c in todo if c.cid not in got]
            inflight: dict[int, float] = {}
            i = 0
            while i < len(queue) or inflight:
                now = time.monotonic()
                for cid in [cid for cid, t in inflight.items() if now - t > wait]:
                    del inflight[cid]
                while i < len(queue) and len(inflight) < window:
                    s.send(queue[i].wire)
                    inflight[queue[i].cid] = time.monotonic()
                    i += 1
                ready, _, _ = select.select([s], [], [], 0.05)
                while ready:
                    try:
                        data = s.recv(65535)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    if len(data) >= 2:
                        cid = struct.unpack("!H", data[:2])[0]
                        if cid in inflight:
                            del inflight[cid]
                            got.setdefault(cid, data)
                    ready, _, _ = select.select([s], [], [], 0)
    return got


def _read_exact(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def send_tcp(port: int, todo: list[Case], *, per_connection: int = 100,
             wait: float = 2.0) -> dict[int, bytes]:
    """RFC 7766 §6.2.1.1 pipelining: each connection carries up to `per_connection` queries
    written at once; responses are read in whatever order they come. What a connection did
    not answer (the server closed it, say after a malformed query) is sent again on a fresh
    connection, finally one query per connection."""
    got: dict[int, bytes] = {}
    for size in (per_connection, per_connection, 1):
        queue = [c for c in todo if c.cid not in got]
        for start_at in range(0, len(queue), size):
            chunk = queue[start_at:start_at + size]
            want = {c.cid for c in chunk}
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
                    s.sendall(b"".join(struct.pack("!H", len(c.wire)) + c.wire for c in chunk))
                    while want:
                        head = _read_exact(s, 2)
                        if head is None:
                            break
                        data = _read_exact(s, struct.unpack("!H", head)[0])
                        if data is None or len(data) < 2:
                            break
                        cid = struct.unpack("!H", data[:2])[0]
                        if cid in want:
                            want.discard(cid)
                            got[cid] = data
            except OSError:
                continue  # timed out or reset: what was answered counts, the rest goes again
    return got


def ask_all(server: Server, todo: list[Case]) -> dict[int, bytes]:
    udp = [c for c in todo if not c.tcp]
    tcp = [c for c in todo if c.tcp]
    return {**send_udp(server.port, udp), **send_tcp(server.port, tcp)}


# --------------------------------------------------------------------------------------------
# Normalising a response


def normal(data: bytes | None) -> dict[str, object]:
    if data is None:
        return {"outcome": "DROP"}
    try:
        m = dns.message.from_wire(data, ignore_trailing=True)
    except dns.exception.DNSException as exc:
        flags, counts = (struct.unpack("!H", data[2:4])[0] if len(data) >= 4 else 0,
                         data[4:12].hex())
        return {"outcome": "UNPARSEABLE", "rcode": flags & 0xF,
                "flags": dns.flags.to_text(flags & ~0xF & ~0x7800), "counts": counts,
                "why": type(exc).__name__}

    def section(rrsets: list) -> list[str]:
        return sorted(
            f"{rr.name} {rr.ttl} {dns.rdataclass.to_text(rr.rdclass)} "
            f"{dns.rdatatype.to_text(rr.rdtype)} {rd.to_text()}".lower()
            for rr in rrsets for rd in rr
        )

    ede = sorted(int(o.code) for o in m.options if o.otype == dns.edns.EDE)
    return {
        "outcome": "ANSWER",
        "rcode": dns.rcode.to_text(m.rcode()),
        "opcode": dns.opcode.to_text(m.opcode()),
        "flags": dns.flags.to_text(m.flags & ~0x7800 & ~0xF),
        "question": [f"{r.name} {dns.rdataclass.to_text(r.rdclass)} "
                     f"{dns.rdatatype.to_text(r.rdtype)}" for r in m.question],
        "answer": section(m.answer),
        "authority": section(m.authority),
        "additional": section(m.additional),
        "edns": (m.edns, int(m.payload), bool(m.ednsflags & dns.flags.DO)) if m.edns >= 0
        else None,
        "ede": ede,
        "options": sorted(int(o.otype) for o in m.options if o.otype != dns.edns.EDE),
    }


def delta(a: dict, b: dict) -> dict[str, tuple[object, object]]:
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


# --------------------------------------------------------------------------------------------
# Documented choices: where authd answers otherwise than Knot and NSD agree, on purpose


@dataclass(frozen=True)
class Choice:
    key: str
    reason: str
    applies: Callable[[Case, dict, dict], bool]  # (case, authd's, the peers' normal form)


def _only(a: dict, peers: dict, *keys: str) -> bool:
    return set(delta(a, peers)) <= set(keys)


def _extra_options(codes: set[int]) -> Callable[[Case, dict, dict], bool]:
    def applies(case: Case, a: dict, peers: dict) -> bool:
        extra = set(a.get("options", ())) - set(peers.get("options", ()))  # type: ignore[arg-type]
        return _only(a, peers, "options") and bool(extra) and extra <= codes
    return applies


def _empty_when_truncated(case: Case, a: dict, peers: dict) -> bool:
    return (_only(a, peers, "answer", "authority", "additional")
            and "TC" in str(a.get("flags", "")).split()
            and not (a["answer"] or a["authority"] or a["additional"]))


CHOICES: list[Choice] = [
    Choice("COOKIE", "authd implements DNS Cookies (RFC 7873, RFC 9018) and answers a client "
           "cookie with a server cookie; Knot (no cookies module configured) and NSD 4.6 "
           "(answer-cookie off by default) leave the option out", _extra_options({10})),
    Choice("ECS", "authd routes Route 53 geolocation, latency and IP-based record sets on the "
           "EDNS Client Subnet and echoes the option with its scope (RFC 7871 §7.2.1); Knot "
           "(no geoip module) and NSD do not implement ECS and leave it out",
           _extra_options({8})),
    Choice("TC-EMPTY", "a response over the client's limit is sent with TC=1 and empty "
           "sections (RFC 2181 §9, RFC 9471 §3 allow it: the client must retry over TCP and "
           "uses nothing from a truncated answer); Knot and NSD keep the whole RRsets that "
           "fit before the cut", _empty_when_truncated),
]


# --------------------------------------------------------------------------------------------
# The test


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        for kind in ("authd", "knot", "nsd"):
            started[kind] = start(kind, tmp_path_factory.mktemp(kind), ZONE_FILES, "diff.test.")
        yield started
    finally:
        for server in started.values():
            server.stop()


def run_all(servers: dict[str, Server], todo: list[Case]) -> dict[str, dict[int, bytes]]:
    """Every server's answers, the three asked at the same time."""
    out: dict[str, dict[int, bytes]] = {}

    def one(kind: str) -> None:
        out[kind] = ask_all(servers[kind], todo)

    threads = [threading.Thread(target=one, args=(k,)) for k in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_authd_agrees_with_knot_and_nsd(servers, tmp_path):
    todo = cases()
    assert len(todo) >= 2000
    began = time.monotonic()
    raw = run_all(servers, todo)
    elapsed = time.monotonic() - began
    agree = chose = 0
    chosen: dict[str, int] = {}
    failures: list[str] = []
    peers_differ: list[str] = []
    matches_peer = {"knot": 0, "nsd": 0, "neither": 0}
    for case in todo:
        a, k, n = (normal(raw[s].get(case.cid)) for s in ("authd", "knot", "nsd"))
        if k != n:
            side = "knot" if a == k else "nsd" if a == n else "neither"
            matches_peer[side] += 1
            peers_differ.append(f"- `{case.group}` {case.label}: authd as {side}; "
                                f"knot vs nsd {delta(k, n)}"
                                + (f"; authd vs knot {delta(a, k)}" if side == "neither" else ""))
            continue
        if a == k:
            agree += 1
            continue
        choice = next((c for c in CHOICES if c.applies(case, a, k)), None)
        if choice is not None:
            chose += 1
            chosen[choice.key] = chosen.get(choice.key, 0) + 1
            continue
        failures.append(f"{case.group} {case.label}: authd vs knot+nsd {delta(a, k)}")
    report = render_report(todo, agree, chosen, peers_differ, matches_peer, failures, elapsed)
    path = Path(os.environ.get("DIFF_REPORT") or tmp_path / "differential-report.md")
    path.write_text(report)
    print(f"\ndifferential report: {path}\n" + report.split("\n## ")[0])
    assert not failures, f"{len(failures)} undocumented differences of {len(todo)}:\n" + \
        "\n".join(failures[:60])
    assert agree + chose + len(peers_differ) == len(todo)


def render_report(todo: list[Case], agree: int, chosen: dict[str, int], peers_differ: list[str],
                  matches_peer: dict[str, int], failures: list[str], elapsed: float) -> str:
    groups = ", ".join(f"{g} {n}" for g, n in describe_cases(todo).items())
    lines = [
        "# Differential report: authd against Knot and NSD",
        "",
        f"- cases: {len(todo)} ({groups}); {sum(c.tcp for c in todo)} over pipelined TCP",
        f"- Knot and NSD agree: {len(todo) - len(peers_differ)}; authd answers the same in "
        f"{agree}, differs by a documented choice in {sum(chosen.values())}, and otherwise in "
        f"{len(failures)}",
        f"- Knot and NSD disagree: {len(peers_differ)} (authd as Knot {matches_peer['knot']}, "
        f"as NSD {matches_peer['nsd']}, as neither {matches_peer['neither']})",
        f"- sent in {elapsed:.1f} s; peers: {versions()}",
        "",
        "## Documented choices",
        "",
    ]
    for c in CHOICES:
        lines.append(f"- **{c.key}** ({chosen.get(c.key, 0)} cases): {c.reason}")
    unused = [c.key for c in CHOICES if not chosen.get(c.key)]
    if unused:  # a choice no case needs any more: the peers changed, or authd did
        lines += ["", f"Choices no case needed this run: {', '.join(unused)}"]
    lines += ["", "## Where Knot and NSD disagree", "", *peers_differ]
    if failures:
        lines += ["", "## Undocumented differences (failures)", "", *(f"- {f}" for f in failures)]
    return "\n".join(lines) + "\n"


def versions() -> str:
    """The peers' versions as they print them (`knotd -V`, `nsd -v`)."""
    out = []
    for tool, flag in (("knotd", "-V"), ("nsd", "-v")):
        path = find_tool(tool)
        if path is not None:
            res = subprocess.run([path, flag], capture_output=True, text=True, timeout=10)
            out.append((res.stdout or res.stderr).splitlines()[0].strip())
    return "; ".join(out)


def test_readme_names_every_documented_choice():
    text = README.read_text()
    section = re.search(r"## Differential testing against Knot and NSD\n(.*?)(?=\n## |\Z)", text, re.S)
    assert section is not None, "README.md has no 'Differential testing against Knot and NSD'"
    for c in CHOICES:
        assert c.key in section.group(1), f"README's differential section does not name {c.key}"


def test_cases_are_many_deterministic_and_uniquely_numbered():
    first, second = cases(), cases()
    assert first == second
    assert [c.cid for c in first] == list(range(len(first)))
    assert all(struct.unpack("!H", c.wire[:2])[0] == c.cid for c in first if len(c.wire) >= 2)
    groups = describe_cases(first)
    assert set(groups) >= {"lookup", "size", "opcode", "class", "edns", "header", "malformed",
                           "transfer"}
    assert sum(c.tcp for c in first) >= 100


def test_cases_cover_what_issue_13_lists():
    """Every opcode, QDCOUNT 0 and 2, classes ANY and CH, truncation limits, 0x20 case,
    escaped labels, 255-octet names and pipelined TCP are all among the cases sent."""
    todo = cases()
    opcodes, qdcounts, classes, payloads, names = set(), set(), set(), set(), set()
    for c in todo:
        if len(c.wire) < 12:
            continue
        opcodes.add((c.wire[2] >> 3) & 0xF)
        qdcounts.add(struct.unpack("!H", c.wire[4:6])[0])
        try:
            m = dns.message.from_wire(c.wire)
        except dns.exception.DNSException:
            continue
        if m.question:
            classes.add(m.question[0].rdclass)
            names.add(m.question[0].name)
        if m.edns >= 0:
            payloads.add(m.payload)
    assert opcodes == set(range(16)) and {0, 1, 2} <= qdcounts
    assert {dns.rdataclass.ANY, dns.rdataclass.CH} <= classes
    assert {512, 1232, 4096} <= payloads
    assert any(len(n.to_wire()) == 255 for n in names)
    assert any(b"." in label or b" " in label for n in names for label in n.labels)  # escaped
    spellings = {m.question[0].name.to_text() for c in todo if "0x20" in c.label
                 for m in [dns.message.from_wire(c.wire)]}  # (Names compare without case)
    assert sum(t != t.lower() for t in spellings) > 100
    assert sum(c.tcp for c in todo) >= 500
