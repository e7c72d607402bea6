"""`python -m bench amplification`: bytes out per byte in under a UDP flood, authd vs NSD.

Issue 10: 20,000 identical queries from one source got 19,584 full answers from authd (15.7x
the bytes in); NSD with its default RRL answered 0.85x. This benchmark floods, in the same
run, NSD with its default RRL (`rrl-ratelimit` 200/s, slip 2), authd with `--rrl on` (its
defaults: 20/s per bucket, slip 2, window 15 s), and authd with RRL off (`--rrl auto`, which is
off on loopback) as the before; and authd at NSD's rate (`--rrl-rate 200`). The flood is `big.example.test. TXT` with EDNS (payload 4096)
from 127.0.0.1, at a fixed rate. Meanwhile a legitimate client on 127.0.0.2 (the same /24, so
the same RRL bucket) asks the same question every 20 ms with the DNS cookie it learned before
the flood, and we count how many of its queries got a full answer.

Bytes are UDP payload bytes (the DNS messages), counted by the client. Results go to the
"authd: amplification under a flood" section of BENCHMARKS.md with the exact commands.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dns.edns
import dns.flags
import dns.message

from authd.localnet import find_tool, free_port, stop, wait_answering
from bench._report import write_section as replace_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## authd: amplification under a flood (issue 10)"
QNAME, QTYPE = "big.example.test.", "TXT"
COOKIE = 10


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, for the record of where a figure came from."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


@dataclass
class Flood:
    server: str
    server_cmd: str = ""
    sent: int = 0
    bytes_in: int = 0  # what the flood sent
    replies: int = 0
    full: int = 0
    truncated: int = 0
    bytes_out: int = 0  # what the server sent back to the flood
    legit_sent: int = 0
    legit_full: int = 0

    @property
    def ratio(self) -> float:
        return self.bytes_out / self.bytes_in if self.bytes_in else 0.0


def _legit_query(cookie: bytes) -> dns.message.Message:
    q = dns.message.make_query(QNAME, QTYPE, use_edns=0, payload=1232,
                               options=[dns.edns.GenericOption(COOKIE, cookie)])
    q.flags &= ~dns.flags.RD
    return q


def _learn_cookie(port: int, client: bytes) -> bytes:
    """Ask once with a client cookie only; return client + server cookie (or the client's)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.2", 0))
    sock.settimeout(2)
    try:
        sock.sendto(_legit_query(client).to_wire(), ("127.0.0.1", port))
        reply = dns.message.from_wire(sock.recv(65535))
        for opt in reply.options:
            if opt.otype == COOKIE:
                return opt.to_wire()
    finally:
        sock.close()
    return client


def flood(port: int, server: str, count: int, rate: int) -> Flood:
    """Send `count` identical queries at `rate` per second from 127.0.0.1 while a cookie
    client on 127.0.0.2 asks the same every 20 ms; count what comes back to each."""
    res = Flood(server)
    cookie = _learn_cookie(port, os.urandom(8))
    q = dns.message.make_query(QNAME, QTYPE, use_edns=0, payload=4096)
    q.flags &= ~dns.flags.RD
    wire = bytearray(q.to_wire())
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    attacker.bind(("127.0.0.1", 0))
    attacker.setblocking(False)
    legit = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    legit.bind(("127.0.0.2", 0))
    legit.setblocking(False)
    dest = ("127.0.0.1", port)
    legit_wire = _legit_query(cookie).to_wire()

    def drain() -> None:
        while True:
            try:
                data = attacker.recv(65535)
            except BlockingIOError:
                break
            res.replies += 1
            res.bytes_out += len(data)
            # the header is enough (and keeps this client faster than the server)
            if data[2] & 0x02:  # TC
                res.truncated += 1
            elif data[6] or data[7]:  # ANCOUNT
                res.full += 1
        while True:
            try:
                data = legit.recv(65535)
            except BlockingIOError:
                break
            msg = dns.message.from_wire(data)
            if len(msg.answer) == 1 and len(msg.answer[0]) > 1 and not msg.flags & dns.flags.TC:
                res.legit_full += 1  # the whole TXT set, not a slip

    start = time.monotonic()
    next_legit = start
    while res.sent < count:
        now = time.monotonic()
        due = min(count, int((now - start) * rate) + 1)
        while res.sent < due:
            wire[0:2] = (res.sent & 0xFFFF).to_bytes(2, "big")
            try:
                attacker.sendto(wire, dest)
            except BlockingIOError:
                break
            res.sent += 1
            res.bytes_in += len(wire)
        if now >= next_legit:
            legit.sendto(legit_wire, dest)
            res.legit_sent += 1
            next_legit += 0.02
        drain()
        time.sleep(0.001)
    end = time.monotonic() + 1.0  # the last replies: a second of quiet
    while time.monotonic() < end:
        drain()
        time.sleep(0.01)
    attacker.close()
    legit.close()
    return res


def nsd_conf(d: Path, port: int, zonefile: Path) -> Path:
    conf = d / "nsd.conf"
    conf.write_text(f"""server:
  ip-address: 127.0.0.1@{port}
  username: ""
  chroot: ""
  zonesdir: "{d}"
  database: ""
  pidfile: "{d}/nsd.pid"
  xfrdfile: "{d}/xfrd.state"
  zonelistfile: "{d}/zone.list"
  logfile: "{d}/nsd.log"
  server-count: 1
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: example.test.
  zonefile: "{zonefile}"
""")
    return conf


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench amplification",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20_000, help="flood queries (default 20000)")
    ap.add_argument("--rate", type=int, default=5_000, help="flood queries/s (default 5000)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = ap.parse_args(argv)
    nsd = find_tool("nsd")
    if nsd is None:
        print("bench amplification needs nsd (Debian package nsd)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-amp-"))
    load_before = os.getloadavg()
    results: list[Flood] = []
    runs = [
        ("NSD 4.6.1, default RRL", "nsd", []),
        ("authd, --rrl on", "authd", ["--rrl", "on"]),
        ("authd, --rrl on --rrl-rate 200", "authd", ["--rrl", "on", "--rrl-rate", "200"]),
        ("authd, RRL off (before)", "authd", ["--rrl", "off"]),
    ]
    try:
        for label, kind, extra in runs:
            port = free_port("127.0.0.1", "127.0.0.2")
            if kind == "nsd":
                d = work / f"nsd-{port}"
                d.mkdir()
                zf = d / "example.test.zone"
                shutil.copy(ROOT / "zones" / "example.test.zone", zf)
                cmd = [nsd, "-d", "-c", str(nsd_conf(d, port, zf))]
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            else:
                cmd = [sys.executable, "-m", "authd", "serve", "--zones", str(ROOT / "zones"),
                       "--listen", f"127.0.0.1:{port}", "--control", "off",
                       "--log-level", "ERROR", *extra]
                proc = subprocess.Popen(cmd, cwd=ROOT)
            try:
                wait_answering(port, proc, label, qname="host.example.test.", qtype="A",
                               host="127.0.0.1", timeout=30)
                time.sleep(1.0)  # the readiness probes' bucket refills
                res = flood(port, label, args.count, args.rate)
            finally:
                stop(proc)
            res.server_cmd = " ".join(cmd).replace(str(work), "$WORK").replace(
                sys.executable, "python").replace(str(ROOT) + "/", "")
            results.append(res)
            print(f"{label:26s} sent {res.sent} ({res.bytes_in} B), replies {res.replies} "
                  f"(full {res.full}, TC {res.truncated}), {res.bytes_out} B out, "
                  f"out/in {res.ratio:.2f}; cookie client full answers "
                  f"{res.legit_full}/{res.legit_sent}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.no_write:
        write_section(results, args, load_before, os.getloadavg())
    return 0


def write_section(results: list[Flood], args: argparse.Namespace,
                  load_before: tuple[float, ...], load_after: tuple[float, ...]) -> None:
    nsd, on = results[0], results[1]
    same_rate = results[2]
    lines = [
        SECTION, "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python -m bench amplification --count {args.count} --rate {args.rate}` on "
        f"{platform.node()} ({cpu_model()}, {os.cpu_count()} cores shared with other work, Python "
        f"{platform.python_version()}, NSD 4.6.1). Load average before/after: "
        f"{load_before[0]:.2f} / {load_after[0]:.2f}.",
        "",
        f"The flood: {args.count:,} identical `{QNAME} {QTYPE}` queries (EDNS, payload 4096) "
        f"from 127.0.0.1 at {args.rate:,}/s. The cookie client: 127.0.0.2 (same /24), the same "
        "question every 20 ms with the server cookie it learned before the flood. Bytes are "
        "DNS message bytes (UDP payloads).",
        "",
        "| server | flood replies | full answers | TC=1 slips | bytes in | bytes out | "
        "out ÷ in | cookie client: full answers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r.server} | {r.replies:,} | {r.full:,} | {r.truncated:,} | "
                     f"{r.bytes_in:,} | {r.bytes_out:,} | {r.ratio:.2f} | "
                     f"{r.legit_full}/{r.legit_sent} |")
    ok = on.ratio <= nsd.ratio
    lines += [
        "",
        f"Goal (issue 10): with RRL on, bytes out ÷ bytes in is at most NSD's: "
        f"{'met' if ok else '**not met**'} ({on.ratio:.2f} vs {nsd.ratio:.2f}; "
        f"{same_rate.ratio:.2f} at NSD's rate). The cookie "
        f"client got {on.legit_full} full answers of {on.legit_sent} from authd (a valid server "
        "cookie exempts it from RRL, RFC 7873 §5.2.5); NSD 4.6.1 has no DNS cookies, so its "
        "bucket for the same question limits that client with the flood.",
        "",
        "authd's default rate is 20 responses/s per bucket, NSD's 200/s; the run with "
        "`--rrl-rate 200` compares them at the same rate. Most of what either sends back under "
        "the flood is the TC=1 slips (every 2nd limited response), each the size of the "
        "question without its OPT; the rest is dropped.",
        "",
        "Exact servers (`$WORK` is a temporary directory; NSD's nsd.conf has only the listen "
        "address, paths, `server-count: 1` and the zone: its RRL settings are the defaults):",
        "", "```",
    ]
    lines += [f"# {r.server}\n{r.server_cmd}" for r in results]
    lines += ["```", ""]
    print(f"wrote {replace_section(SECTION, chr(10).join(lines))}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
