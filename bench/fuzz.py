"""`python -m bench fuzz`: fuzz real `authd serve` and `resolver serve` over UDP and TCP (issue 10).

The packets come from `bench/_fuzzcases.py`: hypothesis-drawn structure-aware messages and
well-formed queries, mutated at random, random bytes, and the issue-10 crashers. Each target
runs as its own process on loopback (the resolver forwards to an authd serving `zones/`).

What is checked, and reported per target and transport:
- **the process never dies** (polled after every batch, and at the end);
- **every well-formed query gets an answer** (`is_well_formed_query`): UDP is sent in
  batches and every well-formed query of a batch must be answered before the next batch (so
  the socket buffers never overflow, and a missing answer is the server's doing); over TCP
  each connection carries 1-32 frames (some split across writes, some zero-length, some
  cut short before EOF), and a well-formed query left unanswered because the server closed
  the connection is asked again on a fresh one (RFC 7766 §6.2.1 clients retry);
- **the log stays quiet**: no traceback, and at most one line per error class per second.
  A line's class is its text with numbers and quoted strings taken out (`authd/errlog.py`
  writes ``KIND: 'message'; N so far (+M more since the last line)``, so its class is KIND);
- RSS before and after.

`--write` puts the table into the "Reliability" section of BENCHMARKS.md with the exact
command and the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench._fuzzcases import (
    ISSUE10,
    Mutator,
    harvest,
    messages,
    query,
    well_formed_queries,
)
from bench._report import write_section as replace_section

ROOT = Path(__file__).resolve().parent.parent
ZONES = ROOT / "zones"
SECTION = "## Reliability"
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Target:
    """A running process under fuzz: where it answers, its log, and its PID."""

    name: str
    host: str
    port: int
    proc: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kib(self) -> int:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        m = re.search(r"VmRSS:\s+(\d+)", text)
        return int(m.group(1)) if m else 0


@dataclass
class Stats:
    target: str
    transport: str
    packets: int = 0
    well_formed: int = 0
    answered: int = 0
    unanswered: int = 0
    replies: int = 0
    retried: int = 0
    connections: int = 0
    closed_by_server: int = 0
    seconds: float = 0.0
    died: bool = False
    exit_code: int | None = None
    tracebacks: int = 0
    log_lines: int = 0
    max_per_class_second: int = 0
    worst_class: str = ""
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    final_probe_ok: bool = False
    samples: list[str] = field(default_factory=list)
    reported: int = 0

    @property
    def ok(self) -> bool:
        return (not self.died and self.unanswered == 0 and self.tracebacks == 0
                and self.max_per_class_second <= 1 and self.final_probe_ok)

    def row(self) -> str:
        rate = self.packets / self.seconds if self.seconds else 0.0
        return (f"| {self.target} | {self.transport} | {self.packets:,} | {self.seconds:.0f} | "
                f"{rate:,.0f} | {f'died (exit {self.exit_code})' if self.died else 'alive'} | "
                f"{self.well_formed:,} | {self.answered:,} | {self.unanswered:,} | "
                f"{self.tracebacks} | {self.log_lines:,} | {self.max_per_class_second} | "
                f"{self.rss_before_kib / 1024:.0f} → {self.rss_after_kib / 1024:.0f} MB | "
                f"{'PASS' if self.ok else 'FAIL'} |")


HEADER_ROW = ("| target | transport | packets | seconds | packets/s | process | well-formed sent | "
              "answered | unanswered | tracebacks | log lines | max lines per class per second | "
              "RSS | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


# ---- processes ---------------------------------------------------------------------------


def _free_port() -> int:
    from authd.localnet import free_port

    return free_port("127.0.0.1")


def _wait_log(proc: subprocess.Popen, log: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{' '.join(proc.args)} did not start: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)


def _spawn(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as err:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)


def _stop(proc: subprocess.Popen) -> None:
    from authd.localnet import stop

    stop(proc)


@contextlib.contextmanager
def start_authd(workdir: Path) -> Iterator[Target]:
    """`authd serve` on the shipped zones, DNS only, on a free loopback port."""
    port = _free_port()
    log = workdir / "authd.log"
    proc = _spawn([sys.executable, "-m", "authd", "serve", "--zones", str(ZONES), "--listen",
                   f"127.0.0.1:{port}", "--control", "off", "--seed", "1"], log)
    try:
        _wait_log(proc, log, "authd listening")
        yield Target("authd", "127.0.0.1", port, proc, log)
    finally:
        _stop(proc)


@contextlib.contextmanager
def start_resolver(workdir: Path) -> Iterator[Target]:
    """`resolver serve` (warnings and errors only) forwarding to an authd of its own."""
    with start_authd(workdir) as upstream:
        port = _free_port()
        log = workdir / "resolver.log"
        proc = _spawn([sys.executable, "-m", "resolver", "-q", "serve", "--listen",
                       f"127.0.0.1:{port}", "--forward", f"127.0.0.1:{upstream.port}",
                       "--timeout", "1"], log)
        try:
            from resolver.procs import wait_answering
            from resolver.resolution import Server

            wait_answering(Server("127.0.0.1", port), "example.test.", proc, "resolver", 30)
            yield Target("resolver", "127.0.0.1", port, proc, log)
        finally:
            _stop(proc)


TARGETS = {"authd": start_authd, "resolver": start_resolver}


# ---- replies -------------------------------------------------------------------------------


def reply_key(wire: bytes) -> bytes | None:
    """ID plus the lowercased first question of a reply, to match it to its query."""
    if len(wire) < 12 or not wire[2] & 0x80 or not (wire[4] << 8 | wire[5]):
        return None
    pos = 12
    while pos < len(wire) and wire[pos]:
        if wire[pos] & 0xC0:
            return None
        pos += 1 + wire[pos]
    if pos + 5 > len(wire):
        return None
    return wire[:2] + wire[12:pos + 5].lower()


def query_key(wire: bytes) -> bytes:
    """The same key for a well-formed query (its question ends at the first root label)."""
    pos = 12
    while wire[pos]:
        pos += 1 + wire[pos]
    return wire[:2] + wire[12:pos + 5].lower()


PROBE = query("host.example.test.", 1, qid=0xBEEF)


def probe_udp(t: Target, timeout: float = 5.0) -> bool:
    """A plain query answered NOERROR with an answer record."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(PROBE, (t.host, t.port))
            r = s.recv(65535)
        except OSError:
            return False
    return r[:2] == PROBE[:2] and r[3] & 0xF == 0 and r[6:8] != b"\x00\x00"


def probe_tcp(t: Target, timeout: float = 5.0) -> bool:
    try:
        with socket.create_connection((t.host, t.port), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(PROBE)) + PROBE)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                chunk = s.recv(65535)
                if not chunk:
                    return False
                data += chunk
    except OSError:
        return False
    r = data[2:]
    return r[:2] == PROBE[:2] and r[3] & 0xF == 0 and r[6:8] != b"\x00\x00"


# ---- drivers -------------------------------------------------------------------------------


def fuzz_udp(t: Target, gen: Mutator, packets: int, st: Stats, *, batch: int = 64,
             wait: float = 5.0) -> None:
    """Batches of `batch` packets; each batch's well-formed queries answered before the next."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.connect((t.host, t.port))
        s.setblocking(False)
        sent = 0
        while sent < packets:
            expected: Counter[bytes] = Counter()
            for _ in range(min(batch, packets - sent)):
                wire, good = gen.next()
                if good:
                    expected[query_key(wire)] += 1
                    st.well_formed += 1
                try:
                    s.send(wire)
                except BlockingIOError:
                    select.select([], [s], [], 1.0)
                    s.send(wire)
                except ConnectionRefusedError:
                    pass  # an ICMP error from an earlier datagram; the liveness check decides
                sent += 1
            deadline = time.monotonic() + wait
            while expected and time.monotonic() < deadline:
                ready, _, _ = select.select([s], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    break
                while True:
                    try:
                        data = s.recv(65535)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    st.replies += 1
                    key = reply_key(data)
                    if key is not None and expected[key] > 0:
                        expected[key] -= 1
                        st.answered += 1
                        if not expected[key]:
                            del expected[key]
            missing = sum(expected.values())
            st.unanswered += missing
            if missing and len(st.samples) < 5:
                st.samples.append(f"udp: {missing} unanswered, e.g. {next(iter(expected)).hex()}")
            # Drain stragglers (replies to garbage) so they do not pile up.
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                while True:
                    s.recv(65535)
                    st.replies += 1
            st.packets = sent
            _progress(st)
            if not t.alive():
                st.died = True
                return


def _progress(st: Stats, every: int = 100_000) -> None:
    """A line on stderr each `every` packets, so a long run can be watched."""
    mark = st.packets // every
    if mark > st.reported:
        st.reported = mark
        print(f"  {st.target} {st.transport}: {st.packets:,} packets, {st.unanswered} unanswered",
              file=sys.stderr, flush=True)


def _tcp_exchange(t: Target, frames: list[bytes], cut_last: bool,
                  rng_chunks: list[int]) -> tuple[list[bytes], bool]:
    """Send frames on one connection, half-close, read every reply; (replies, closed early)."""
    replies: list[bytes] = []
    with socket.create_connection((t.host, t.port), timeout=10) as s:
        out = b"".join(struct.pack("!H", len(f)) + f for f in frames)
        if cut_last:
            out += struct.pack("!H", 512) + b"\x00" * 7  # a frame cut short by EOF
        try:
            if rng_chunks:
                pos = 0
                for size in rng_chunks:
                    s.sendall(out[pos:pos + size])
                    pos += size
                s.sendall(out[pos:])
            else:
                s.sendall(out)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            return replies, True
        buf = b""
        try:
            while True:
                chunk = s.recv(65535)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    n = struct.unpack("!H", buf[:2])[0]
                    replies.append(buf[2:2 + n])
                    buf = buf[2 + n:]
        except OSError:
            return replies, True
    return replies, False


def fuzz_tcp(t: Target, gen: Mutator, packets: int, st: Stats) -> None:
    """Connections of 1-32 frames each: split writes, empty frames, a frame cut by EOF."""
    rng = gen.rng
    sent = 0
    while sent < packets:
        k = min(rng.randrange(1, 33), packets - sent)
        frames: list[bytes] = []
        expected: Counter[bytes] = Counter()
        for _ in range(k):
            wire, good = gen.next()
            if rng.random() < 0.01:
                wire, good = b"", False  # a zero-length frame
            frames.append(wire)
            if good:
                expected[query_key(wire)] += 1
                st.well_formed += 1
        sent += k
        cut = rng.random() < 0.05
        total = sum(2 + len(f) for f in frames)
        chunks = ([rng.randrange(1, 40) for _ in range(rng.randrange(1, 6))]
                  if rng.random() < 0.1 and total > 200 else [])
        st.connections += 1
        try:
            replies, early = _tcp_exchange(t, frames, cut, chunks)
        except OSError as exc:
            replies, early = [], True
            if len(st.samples) < 5:
                st.samples.append(f"tcp connect: {exc}")
        for r in replies:
            st.replies += 1
            key = reply_key(r)
            if key is not None and expected[key] > 0:
                expected[key] -= 1
                st.answered += 1
                if not expected[key]:
                    del expected[key]
        if expected and early:
            st.closed_by_server += 1
        if expected:
            # Ask again, each on a fresh connection of its own (RFC 7766 §6.2.1).
            for key in list(expected.elements()):
                again = next((f for f in frames if f and query_key_safe(f) == key), None)
                if again is None:
                    continue
                st.retried += 1
                try:
                    rs, _ = _tcp_exchange(t, [again], False, [])
                except OSError:
                    rs = []
                if any(reply_key(r) == key for r in rs):
                    st.answered += 1
                    expected[key] -= 1
        missing = sum(v for v in expected.values() if v > 0)
        st.unanswered += missing
        if missing and len(st.samples) < 5:
            st.samples.append(f"tcp: {missing} unanswered after retry")
        st.packets = sent
        _progress(st)
        if not t.alive():
            st.died = True
            return


def query_key_safe(wire: bytes) -> bytes | None:
    try:
        return query_key(wire)
    except IndexError:
        return None


# ---- the log -------------------------------------------------------------------------------

_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_HELD = re.compile(r" \(\+\d+ more since the last line\)")


def line_class(text: str) -> str:
    """What makes two log lines 'the same error': the text without numbers, quoted parts and
    errlog's held-back count."""
    return re.sub(r"\d+", "#", _QUOTED.sub("'…'", _HELD.sub("", text)))[:120]
# authd: "2026-12-01T20:16:22 authd[123] INFO ..."; resolver: "20:16:22.123 resolver ..."
_TIME = re.compile(r"^(?:\d{4}-\d\d-\d\d[T ])?(\d\d:\d\d:\d\d)(?:[.,]\d+)?")


def check_log(text: str, st: Stats) -> None:
    """Tracebacks, line count, and the most lines one error class wrote in one second."""
    per: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        if TRACEBACK in line:
            st.tracebacks += 1
        if not line.strip():
            continue
        st.log_lines += 1
        m = _TIME.match(line)
        if not m:
            continue  # a continuation line (a traceback's, counted above)
        if any(w in line for w in ("listening", "loaded", "starting")):
            continue  # start-up lines
        cls = line_class(line[m.end():])
        per[(cls, m.group(1))] += 1
    if per:
        (cls, _sec), n = per.most_common(1)[0]
        st.max_per_class_second, st.worst_class = n, cls


# ---- one run -------------------------------------------------------------------------------


def make_mutator(seed: int, pool_size: int = 1500) -> Mutator:
    pool = harvest(messages(), pool_size, seed)
    good = harvest(well_formed_queries(), max(50, pool_size // 5), seed + 1)
    return Mutator(pool, good, seed)


def run(target: str, transport: str, packets: int, seed: int = 0,
        gen: Mutator | None = None, workdir: Path | None = None) -> Stats:
    """Fuzz one target over one transport; every check filled in."""
    st = Stats(target, transport)
    gen = gen or make_mutator(seed)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-")))
        t = stack.enter_context(TARGETS[target](workdir))
        st.rss_before_kib = t.rss_kib()
        t0 = time.monotonic()
        (fuzz_udp if transport == "udp" else fuzz_tcp)(t, gen, packets, st)
        st.seconds = time.monotonic() - t0
        st.final_probe_ok = t.alive() and probe_udp(t) and probe_tcp(t)
        st.rss_after_kib = t.rss_kib()
        st.died = not t.alive()
        st.exit_code = t.proc.poll()
        check_log(t.log.read_text(errors="replace"), st)
    return st


def machine() -> str:
    return (f"{platform.node()} ({os.cpu_count()} cores, {platform.machine()}, "
            f"Python {platform.python_version()})")


def write_section(text: str) -> None:
    replace_section(SECTION, text)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=["authd", "resolver", "all"], default="all",
                    help="which server to fuzz (default: both, one after the other)")
    ap.add_argument("--transport", choices=["udp", "tcp", "all"], default="all",
                    help="DNS over UDP datagrams or RFC 7766 TCP framing (default: both)")
    ap.add_argument("--packets", type=int, default=20_000,
                    help="packets per target and transport (default 20,000; the issue asks 1,000,000)")
    ap.add_argument("--seed", type=int, default=0, help="seed for the pool and the mutations")
    ap.add_argument("--write", action="store_true",
                    help="put the results into the Reliability section of BENCHMARKS.md")
    args = ap.parse_args(argv)
    targets = ["authd", "resolver"] if args.target == "all" else [args.target]
    transports = ["udp", "tcp"] if args.transport == "all" else [args.transport]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load0 = os.getloadavg()[0]
    gen = make_mutator(args.seed)
    print(HEADER_ROW, flush=True)
    results: list[Stats] = []
    for target in targets:
        for transport in transports:
            st = run(target, transport, args.packets, args.seed, gen)
            results.append(st)
            print(st.row(), flush=True)
            for s in st.samples:
                print(f"  {s}", flush=True)
            if st.worst_class:
                print(f"  busiest log class: {st.worst_class!r} ({st.max_per_class_second} in one second)")
    ok = all(r.ok for r in results)
    if args.write:
        cmd = "python -m bench fuzz " + " ".join(argv)
        write_section("\n".join([
            SECTION, "",
            f"Measured {started} with `{cmd.strip()}` on {machine()}; load average before/after "
            f"{load0:.2f} / {os.getloadavg()[0]:.2f} (the 2 cores are shared, so rates are "
            "what this machine gave at the time).", "",
            "Each target is a real process on loopback (`authd serve --zones zones/ --control "
            "off`; `resolver serve --forward` to such an authd). Packets: hypothesis-drawn "
            "structure-aware messages and well-formed queries, mutated at random (flip, set, cut, "
            "insert, delete, duplicate, splice), random bytes, and the issue-10 crashers "
            f"({', '.join(ISSUE10)}). Checks: the process never dies; every well-formed query is "
            "answered (UDP in batches of 64, each batch answered before the next; TCP with 1-32 "
            "frames per connection, split writes, empty frames and frames cut by EOF, retried on "
            "a fresh connection if the server closed it); no traceback and at most one log line "
            "per error class per second; a plain query answered over UDP and TCP at the end.", "",
            HEADER_ROW, *[r.row() for r in results], "",
        ]))
    return 0 if ok else 1
