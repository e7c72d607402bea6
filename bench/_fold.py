"""The metrics fold's cost per distinct query: `python -m bench._fold [--keys N]`.

In process, no sockets (issue 12): a `QueryTally` on a stub index whose reply counts hold N
distinct queries as a flood would leave them (random existing names answered NOERROR with
one record, random missing names answered NXDOMAIN; dnsperf's shape, no EDNS, and a bare
EDNS OPT as resolvers send), folded once (the least CPU time of a few rounds); then the same names again (a second fold, as the
hot names of a zone meet it every second). Prints microseconds per distinct query and the
bytes the tally keeps (tracemalloc).
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from typing import Any

from authd.metrics import HAD_RECORDS_CAP, QueryTally

NOERROR_ONE = b"\x85\x00\x00\x01"  # QR AA RD, NOERROR; ANCOUNT 1 (RFC 1035 §4.1.1)
NXDOMAIN = b"\x85\x03\x00\x00"


class StubIndex:
    """What `QueryTally` touches of a `ServingIndex`."""

    def __init__(self) -> None:
        self.query_counts: dict[bytes, int] = {}
        self.reply_counts: dict[bytes, int] = {}
        self.exact_udp: dict[bytes, Any] = {}

    def apply(self, entry: Any) -> bool:
        return True


def queries(n: int, seed: int, edns: bool) -> list[bytes]:
    """n distinct A queries after the ID (RD set), as dnsperf or a resolver sends them."""
    rnd = random.Random(seed)
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" if edns else b""  # RFC 6891 §6.1.2
    head = b"\x01\x00\x00\x01\x00\x00\x00\x00\x00" + (b"\x01" if edns else b"\x00")
    zone = b"".join(bytes([len(p)]) + p for p in (f"zone{seed}".encode(), b"test")) + b"\x00"
    return [head + b"\x0b" + f"h{rnd.getrandbits(40):010x}".encode() + zone + b"\x00\x01\x00\x01"
            + opt for _ in range(n)]


def fold_us(tally: QueryTally, index: StubIndex, keys: list[bytes], status: bytes) -> float:
    for key in keys:
        index.reply_counts[key + status] = 1
    t0 = time.process_time()  # CPU time: the two cores are shared
    tally.fold()
    return (time.process_time() - t0) / len(keys) * 1e6


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench._fold", description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=100_000, help="distinct queries per fold")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; the least time is shown")
    args = ap.parse_args(argv)
    for edns in (False, True):
        for label, status in (("random existing", NOERROR_ONE), ("random NXDOMAIN", NXDOMAIN)):
            keys = queries(args.keys, 1 if status == NXDOMAIN else 2, edns)
            firsts, agains = [], []
            for _ in range(args.rounds):  # the least of a few rounds: others share the CPU
                index = StubIndex()
                tally = QueryTally(index)
                firsts.append(fold_us(tally, index, keys, status))
                agains.append(fold_us(tally, index, keys, status))
            first, again = min(firsts), min(agains)
            index = StubIndex()
            tally = QueryTally(index)
            tracemalloc.start()  # a run of its own: tracing slows the fold several times
            fold_us(tally, index, keys, status)
            index.reply_counts.clear()
            kept = tracemalloc.get_traced_memory()[0]
            assert len(tally.had_records) <= HAD_RECORDS_CAP
            tracemalloc.stop()
            shape = "bare OPT" if edns else "no EDNS "
            print(f"{label:16} {shape} first fold {first:5.2f} us/query, again {again:5.2f} us/query,"
                  f" tally keeps {kept / len(keys):6.1f} B/query")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
