"""Routing policies over DNS: what one query costs in `ServingIndex.respond` per policy.

In process, no sockets: the serving index's responder (the per-packet entry point the UDP and
TCP shells call) for a plain A set (the peer, measured in the same run), a failover pair, a
geolocation and a latency set asked by source address (rendered per source address after the
first query), the same geolocation set asked with an EDNS Client Subnet option (the full
pipeline every time: its reply echoes the subnet), and multivalue sets of twelve (every
subset of eight rendered once) and of twenty (too many subsets: the full pipeline every time). Best of five rounds of 2,000
queries each, after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import dns.edns
import dns.message

from authd.dns.geo import GeoMap
from authd.dns.index import ServingIndex
from authd.model.journal import EntryKind, JournalEntry, resource_entry
from authd.model.records import GeoLocation, RecordSet, Routing

SECTION = "## authd: routing policies over DNS (issue 11)"
ROOT = Path(__file__).resolve().parent.parent
ZONE = "bench.test."


def _sets() -> list[RecordSet]:
    def a(name: str, ident: str | None, value: str, **routing: object) -> RecordSet:
        return RecordSet(f"{name}.{ZONE}", "A", 60, (value,), set_identifier=ident,
                         routing=Routing(**routing) if routing else None)  # type: ignore[arg-type]

    return [
        RecordSet(ZONE, "SOA", 60, (f"ns.{ZONE} h.{ZONE} 1 7200 900 1209600 60",)),
        RecordSet(ZONE, "NS", 60, (f"ns.{ZONE}",)),
        a("plain", None, "192.0.2.1"),
        a("fo", "p", "192.0.2.2", failover="PRIMARY", health_check_id="hc"),
        a("fo", "s", "192.0.2.3", failover="SECONDARY"),
        a("geo", "eu", "192.0.2.4", geo=GeoLocation(continent="EU")),
        a("geo", "us", "192.0.2.5", geo=GeoLocation(country="US")),
        a("geo", "any", "192.0.2.6", geo=GeoLocation(country="*")),
        a("lat", "use1", "192.0.2.7", region="us-east-1"),
        a("lat", "euw1", "192.0.2.8", region="eu-west-1"),
        *(a("mv", f"v{i}", f"198.51.100.{i}", multivalue=True) for i in range(12)),
        *(a("mv20", f"v{i}", f"198.51.100.{i}", multivalue=True) for i in range(20)),
    ]


def _index() -> ServingIndex:
    index = ServingIndex(rng=lambda: 0.5, geomap=GeoMap.parse((ROOT / "zones" / "geo-map.txt").read_text()))
    index.apply(JournalEntry(0, EntryKind.SNAPSHOT, "Z0BENCH", ZONE, 1, "", tuple(_sets())))
    index.apply(resource_entry(1, "healthcheck-status", "hc", {"healthy": True}))
    return index


def _query(name: str, subnet: str | None = None) -> bytes:
    q = dns.message.make_query(f"{name}.{ZONE}", "A")
    if subnet is not None:
        addr, bits = subnet.split("/")
        q.use_edns(0, options=[dns.edns.ECSOption(addr, int(bits))])
    return q.to_wire()


def _per_query(index: ServingIndex, wire: bytes, source: str, n: int = 2000) -> float:
    for _ in range(200):
        index.respond(wire, tcp=False, source=source)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            index.respond(wire, tcp=False, source=source)
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


CASES = [
    ("plain A (the peer)", "plain", None, "from the exact-bytes table"),
    ("failover pair, primary healthy", "fo", None, "from the exact-bytes table"),
    ("geolocation, by source address", "geo", None, "rendered per source address"),
    ("latency, by source address", "lat", None, "rendered per source address"),
    ("geolocation, EDNS Client Subnet /24", "geo", "127.0.2.0/24", "full pipeline, ECS echoed"),
    ("multivalue of 12 (8 at random)", "mv", None, "from the exact-bytes table: all 495 subsets rendered"),
    ("multivalue of 20 (8 at random)", "mv20", None, "full pipeline (125,970 subsets: not rendered)"),
]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench routing", description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    index = _index()
    rows = []
    for label, name, subnet, path in CASES:
        us = _per_query(index, _query(name, subnet), "127.0.2.9")
        rows.append((label, us, path))
        print(f"{label}: {us:.1f} us/query ({path})", flush=True)
    peer = rows[0][1]
    lines = [SECTION, "",
             "`python -m bench routing`: `ServingIndex.respond` per query, in process (best of 5 x 2,000 "
             f"after a warm-up; load average {load:.2f} at the start).", "",
             "| question | us/query | x plain A | answered by |", "|---|---|---|---|"]
    lines += [f"| {label} | {us:.1f} | {us / peer:.1f}x | {path} |" for label, us, path in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(text)
    return 0


def write_section(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text() if path.exists() else ""
    start = doc.find(SECTION)
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text
    else:
        end = doc.find("\n## ", start + len(SECTION))
        doc = doc[:start] + text + (doc[end:] if end >= 0 else "")
    path.write_text(doc)
