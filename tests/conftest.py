"""Shared fixtures: the shipped zones, a serving index, authd started in-process on an ephemeral
loopback port, and a helper that runs real `dig` and parses what it prints."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from authd import localnet
from authd.dns.index import ServingIndex, index_from_zones
from authd.dns.server import serve_dns
from authd.zonefiles.zonefile import LoadedZone, load_zone_dir
from tests.pg_helpers import pg_cluster, pg_url  # noqa: F401  (PostgreSQL fixtures)

ZONES = Path(__file__).resolve().parent.parent / "zones"

TOOL_PACKAGES = {
    "dig": "bind9-dnsutils",
    "kdig": "knot-dnsutils",
    "nsd": "nsd",
    "knotd": "knot",
    "unbound": "unbound",
    "dnsperf": "dnsperf",
}


find_tool = localnet.find_tool  # re-exported for the tests that import it from here


def require_tool(name: str) -> str:
    """The tool's path, or skip the test naming the Debian package that provides it."""
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package {TOOL_PACKAGES.get(name, name)})")
    return path


@pytest.fixture(scope="session")
def shipped_zones() -> list[LoadedZone]:
    return load_zone_dir(ZONES)


@pytest.fixture
def index(shipped_zones: list[LoadedZone]) -> ServingIndex:
    """The shipped zones in a serving index with a seeded rng (deterministic picks)."""
    return index_from_zones(shipped_zones, rng=random.Random(2025))


@dataclass
class AuthdServer:
    host: str
    port: int
    index: ServingIndex


async def start_authd(nursery: trio.Nursery, index: ServingIndex, **options: object) -> AuthdServer:
    host, port = await nursery.start(functools.partial(serve_dns, index, "127.0.0.1", 0, **options))
    return AuthdServer(host, port, index)


@pytest.fixture
async def authd(nursery: trio.Nursery, index: ServingIndex) -> AuthdServer:
    """authd serving the shipped zones on 127.0.0.1 and an ephemeral port (UDP and TCP)."""
    return await start_authd(nursery, index)


# --- dig ----------------------------------------------------------------------------------


@dataclass
class DigResult:
    """What dig printed, parsed: status, flags, section counts and records."""

    text: str
    status: str = ""
    flags: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    edns: dict[str, str] = field(default_factory=dict)
    answer: list[tuple[str, int, str, str, str]] = field(default_factory=list)
    authority: list[tuple[str, int, str, str, str]] = field(default_factory=list)
    additional: list[tuple[str, int, str, str, str]] = field(default_factory=list)

    def values(self, section: str = "answer") -> list[str]:
        return [rr[4] for rr in getattr(self, section)]


def parse_dig(text: str) -> DigResult:
    """Parse dig's default output (header, flags, OPT pseudosection and the sections)."""
    res = DigResult(text)
    section: list[tuple[str, int, str, str, str]] | None = None
    for line in text.splitlines():
        if line.startswith(";; ->>HEADER<<-"):
            for part in line.split("<<-", 1)[1].split(","):
                key, _, value = part.strip().partition(": ")
                if key == "status":
                    res.status = value
        elif line.startswith(";; flags:"):
            flags_part, _, counts_part = line[len(";; flags:"):].partition(";")
            res.flags = set(flags_part.split())
            for part in counts_part.split(","):
                key, _, value = part.strip().partition(": ")
                if value.isdigit():
                    res.counts[key] = int(value)
        elif line.startswith("; EDNS:"):
            # "; EDNS: version: 0, flags: do; udp: 1232"
            body = line[len("; EDNS:"):]
            for part in body.replace(";", ",").split(","):
                key, _, value = part.strip().partition(":")
                res.edns[key.strip()] = value.strip()
        elif line.startswith(";; ANSWER SECTION"):
            section = res.answer
        elif line.startswith(";; AUTHORITY SECTION"):
            section = res.authority
        elif line.startswith(";; ADDITIONAL SECTION"):
            section = res.additional
        elif not line.strip() or line.startswith(";"):
            if not line.strip():
                section = None
        elif section is not None:
            name, ttl, rclass, rtype, rdata = line.split(None, 4)
            section.append((name, int(ttl), rclass, rtype, rdata))
    return res


async def dig(server: AuthdServer, *args: str, tcp: bool = False) -> DigResult:
    """Run real dig against the server (no recursion, no retries) and parse the output."""
    exe = require_tool("dig")
    cmd = [exe, f"@{server.host}", "-p", str(server.port), "+norecurse", "+tries=1",
           "+time=3", *(["+tcp"] if tcp else []), *args]
    result = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, f"dig failed ({result.returncode}): {out}{result.stderr!r}"
    return parse_dig(out)
