"""Measure what a batched UDP receive/send loop would save per query (issue 12, "cut syscalls").

Not a benchmark of authd: bare loops that answer every datagram with a fixed transformation
of itself (the work of a table hit: the ID copied, a few bytes spliced), so only the socket
calls differ:
- `recvfrom`: `recvfrom` + `sendto` per datagram, as `authd serve --no-fast-udp` does;
- `recvmsg_into`: `recvmsg_into` a preallocated buffer + `sendto`;
- `mmsg`: Linux `recvmmsg`/`sendmmsg` through ctypes, up to 32 datagrams per call each way;
- `C mmsg`: the C helper `authd.dns._fastudp.drain` (authd's default UDP loop), up to 64
  datagrams per call each way, every datagram after the first of its kind a hit in a dict
  like `ServingIndex.exact_udp` (a miss: the Python callable stores the splice).
Each loop runs pinned to CPU 0 while dnsperf (pinned to CPU 1) sends it queries for a few
seconds; the figure is datagrams answered per CPU-second of the loop's process.

Run: `python -m bench._udp_loop [--duration 5]` (prints only; the numbers are quoted in the
"authd at scale: queries" section of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import select
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from authd.localnet import find_tool, free_port
from bench.dns import run_dnsperf

BATCH = 32
_FLAGS = b"\x84\x00"


def answer(data: bytes) -> bytes:
    return data[:2] + _FLAGS + data[4:]


def loop_recvfrom(sock: socket.socket) -> None:
    recvfrom, sendto = sock.recvfrom, sock.sendto
    while True:
        select.select([sock], [], [])
        for _ in range(64):
            try:
                data, addr = recvfrom(4096)
            except BlockingIOError:
                break
            sendto(answer(data), addr)


def loop_recvmsg_into(sock: socket.socket) -> None:
    buf = bytearray(4096)
    view = memoryview(buf)
    recv, sendto = sock.recvmsg_into, sock.sendto
    bufs = [buf]
    while True:
        select.select([sock], [], [])
        for _ in range(64):
            try:
                n, _, _, addr = recv(bufs)
            except BlockingIOError:
                break
            sendto(answer(bytes(view[:n])), addr)


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_Iovec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


def loop_mmsg(sock: socket.socket) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = sock.fileno()
    bufs = [ctypes.create_string_buffer(4096) for _ in range(BATCH)]
    names = [ctypes.create_string_buffer(128) for _ in range(BATCH)]
    iov_in = (_Iovec * BATCH)()
    iov_out = (_Iovec * BATCH)()
    msgs_in = (_Mmsghdr * BATCH)()
    msgs_out = (_Mmsghdr * BATCH)()
    for i in range(BATCH):
        iov_in[i].iov_base = ctypes.addressof(bufs[i])
        iov_in[i].iov_len = 4096
        for m, iov in ((msgs_in[i], iov_in), (msgs_out[i], iov_out)):
            m.msg_hdr.msg_name = ctypes.addressof(names[i])
            m.msg_hdr.msg_namelen = 128
            m.msg_hdr.msg_iov = ctypes.pointer(iov[i])
            m.msg_hdr.msg_iovlen = 1
    string_at, addressof = ctypes.string_at, ctypes.addressof
    keep: list[bytes] = [b""] * BATCH  # the replies stay alive until sendmmsg has sent them
    while True:
        select.select([sock], [], [])
        while True:
            for i in range(BATCH):
                msgs_in[i].msg_hdr.msg_namelen = 128
            n = libc.recvmmsg(fd, msgs_in, BATCH, socket.MSG_DONTWAIT, None)
            if n <= 0:
                break
            for i in range(n):
                reply = answer(string_at(addressof(bufs[i]), msgs_in[i].msg_len))
                keep[i] = reply
                iov_out[i].iov_base = ctypes.cast(ctypes.c_char_p(reply), ctypes.c_void_p).value
                iov_out[i].iov_len = len(reply)
                msgs_out[i].msg_hdr.msg_namelen = msgs_in[i].msg_hdr.msg_namelen
            libc.sendmmsg(fd, msgs_out, n, 0)


def loop_c_mmsg(sock: socket.socket) -> None:
    from authd.dns import _fastudp

    exact: dict[bytes, bytes] = {}

    def miss(data: bytes, addr: object) -> bytes:
        reply = answer(data)
        exact[data[2:]] = reply[2:]
        return reply

    fd, drain, rand = sock.fileno(), _fastudp.drain, (lambda: 0.5)
    while True:
        select.select([sock], [], [])
        while drain(fd, exact, miss, None, rand, 256) >= 256:
            pass


def wait_replying(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Poll with a query until the loop sends anything back."""
    import time

    import dns.exception
    import dns.message
    import dns.query

    q = dns.message.make_query("h0.big.test.", "A")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the loop exited with {proc.returncode}")
        try:
            dns.query.udp(q, "127.0.0.1", port=port, timeout=0.2, ignore_unexpected=True)
            return
        except (dns.exception.DNSException, OSError):
            continue
    raise RuntimeError("the loop never replied")


LOOPS = {"recvfrom": loop_recvfrom, "recvmsg_into": loop_recvmsg_into, "mmsg": loop_mmsg,
         "C mmsg": loop_c_mmsg}


def available() -> list[str]:
    """The loops this machine can run: `C mmsg` needs the C helper built (setup.py)."""
    from authd.dns.udp_batched import AVAILABLE

    return [k for k in LOOPS if k != "C mmsg" or AVAILABLE]


def serve(kind: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.setblocking(False)
    LOOPS[kind](sock)


def measure(duration: int) -> list[tuple[str, float]]:
    """(loop, datagrams per CPU-second) for each loop; empty without dnsperf and taskset."""
    dnsperf, taskset = find_tool("dnsperf"), find_tool("taskset")
    if not dnsperf or not taskset:
        return []
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        qfile = Path(tmp) / "q.txt"
        qfile.write_text("".join(f"h{i}.big.test. A\n" for i in range(1000)))
        for kind in available():
            port = free_port()
            proc = subprocess.Popen([taskset, "-c", "0", sys.executable, "-m", "bench._udp_loop",
                                     "--serve", kind, "--port", str(port)],
                                    cwd=Path(__file__).resolve().parent.parent)
            try:
                wait_replying(port, proc)
                res = run_dnsperf([taskset, "-c", "1", dnsperf, "-s", "127.0.0.1", "-p", str(port),
                                   "-d", str(qfile), "-l", str(duration), "-c", "4", "-q",
                                   "100"], kind, kind, proc.pid)
            finally:
                os.kill(proc.pid, 15)
                proc.wait()
            print(f"  {kind:14s} {res.qps:9,.0f} qps  {res.per_cpu_second:9,.0f} datagrams per "
                  f"CPU-second ({1e6 / max(res.per_cpu_second, 1):.2f} us each)  lost {res.lost}",
                  flush=True)
            out.append((kind, res.per_cpu_second))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench._udp_loop", description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds of dnsperf per loop")
    ap.add_argument("--serve", choices=sorted(LOOPS), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    if not measure(args.duration):
        print("needs dnsperf and taskset", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
