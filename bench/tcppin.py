"""`python -m bench tcppin`: 256 TCP clients that pipeline and never read, authd vs NSD.

Issue 10: such clients held every authd TCP slot indefinitely (new clients got 0/15 answers,
memory grew from 34 to 703 MB), while NSD served new TCP clients again within 4 s. In the same
run, for NSD (its defaults: `tcp-count` 100, busy timeout 200 ms) and authd (its defaults:
`--tcp-max-connections` 256, write timeout 2 s, output budget 16 KiB), this connects 256 such
clients, then every 0.5 s for 10 s asks one new TCP client for an answer (5 s deadline each),
and samples the server's RSS. Results go to the "TCP clients that never read" section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import trio

from authd.localnet import find_tool, free_port, stop, wait_answering
from bench._report import write_section as replace_section
from bench.amplification import cpu_model, nsd_conf

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## authd: TCP clients that never read (issue 10)"
ATTACKERS = 256
QUERY = dns.message.make_query("host.example.test.", "A").to_wire()
BURST = (len(QUERY).to_bytes(2, "big") + QUERY) * 1700


@dataclass
class Pin:
    server: str
    server_cmd: str = ""
    rss_idle_kib: int = 0
    rss_peak_kib: int = 0
    connected: int = 0
    closed_by_server: int = 0
    probes: list[float | None] = field(default_factory=list)  # seconds to an answer, or None

    @property
    def answered(self) -> int:
        return sum(p is not None for p in self.probes)


def _rss_kib(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


async def _pinner(port: int, res: Pin) -> None:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    try:
        await sock.connect(("127.0.0.1", port))
        res.connected += 1
        with trio.move_on_after(15):
            while True:
                await sock.send(BURST)
    except OSError:
        res.closed_by_server += 1
    finally:
        sock.close()


async def _probe(port: int) -> float | None:
    start = time.monotonic()
    with trio.move_on_after(5):
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            q = dns.message.make_query("mail.example.test.", "A").to_wire()
            await stream.send_all(len(q).to_bytes(2, "big") + q)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                data = await stream.receive_some(4096)
                if not data:
                    return None
                buf += data
            await stream.aclose()
            return time.monotonic() - start
        except OSError:
            return None
    return None


async def attack(port: int, pid: int, res: Pin) -> None:
    res.rss_idle_kib = res.rss_peak_kib = _rss_kib(pid)
    async with trio.open_nursery() as nursery:
        for _ in range(ATTACKERS):
            nursery.start_soon(_pinner, port, res)
        await trio.sleep(1.0)  # let the pipelines fill
        for _ in range(20):
            res.probes.append(await _probe(port))
            res.rss_peak_kib = max(res.rss_peak_kib, _rss_kib(pid))
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench tcppin", description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = ap.parse_args(argv)
    nsd = find_tool("nsd")
    if nsd is None:
        print("bench tcppin needs nsd (Debian package nsd)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-pin-"))
    results: list[Pin] = []
    try:
        for label in ("NSD 4.6.1, defaults", "authd, defaults"):
            port = free_port()
            if label.startswith("NSD"):
                d = work / f"nsd-{port}"
                d.mkdir()
                zf = d / "example.test.zone"
                shutil.copy(ROOT / "zones" / "example.test.zone", zf)
                cmd = [nsd, "-d", "-c", str(nsd_conf(d, port, zf))]
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            else:
                cmd = [sys.executable, "-m", "authd", "serve", "--zones", str(ROOT / "zones"),
                       "--listen", f"127.0.0.1:{port}", "--control", "off",
                       "--log-level", "ERROR"]
                proc = subprocess.Popen(cmd, cwd=ROOT)
            res = Pin(label)
            try:
                wait_answering(port, proc, label, qname="host.example.test.", qtype="A",
                               timeout=30)
                trio.run(attack, port, proc.pid, res)
            finally:
                stop(proc)
            res.server_cmd = " ".join(cmd).replace(str(work), "$WORK").replace(
                sys.executable, "python").replace(str(ROOT) + "/", "")
            results.append(res)
            done = [p for p in res.probes if p is not None]
            print(f"{label:22s} pinned {res.connected}, closed by server {res.closed_by_server};"
                  f" new clients answered {res.answered}/{len(res.probes)}"
                  f"{f' (slowest {max(done):.2f} s)' if done else ''}; RSS "
                  f"{res.rss_idle_kib // 1024} -> {res.rss_peak_kib // 1024} MiB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.no_write:
        write_section(results)
    return 0


def write_section(results: list[Pin]) -> None:
    lines = [
        SECTION, "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`python -m bench tcppin` on {platform.node()} ({cpu_model()}, {os.cpu_count()} cores shared with "
        f"other work, Python {platform.python_version()}, NSD 4.6.1).",
        "",
        f"{ATTACKERS} clients connect and write pipelined `host.example.test. A` queries "
        "whenever the kernel takes them, never reading (receive buffer 4 KiB). From one second "
        "later, every 0.5 s for 10 s, a new TCP client asks `mail.example.test. A` (5 s "
        "deadline); RSS is sampled each time. The regression test `tests/test_tcp_pin.py` "
        "checks the same against a real `authd serve`.",
        "",
        "| server | pinned clients closed by the server | new clients answered | slowest "
        "answer | RSS idle → peak |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        done = [p for p in r.probes if p is not None]
        slowest = f"{max(done):.2f} s" if done else "—"
        lines.append(f"| {r.server} | {r.closed_by_server}/{r.connected} | "
                     f"{r.answered}/{len(r.probes)} | {slowest} | "
                     f"{r.rss_idle_kib / 1024:.0f} → {r.rss_peak_kib / 1024:.0f} MiB |")
    lines += ["", "Servers (`$WORK` is a temporary directory; NSD's nsd.conf has only the "
              "listen address, paths, `server-count: 1` and the zone):", "", "```"]
    lines += [f"# {r.server}\n{r.server_cmd}" for r in results]
    lines += ["```", ""]
    print(f"wrote {replace_section(SECTION, chr(10).join(lines))}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
