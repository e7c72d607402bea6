"""Glueless delegation end to end: real authd processes, the real `resolver serve`, real `dig`.

The glueless universe (`zones/universe/glueless/`, see zones/universe/README.md): aws.
delegates api.aws. to ns-1.awsdns-01.net., a name in another TLD, with no glue (as Route 53
delegates hosted zones). The resolver must look that name up itself: root -> net. ->
awsdns-01.net. -> 127.0.4.5, then ask api.aws.'s server there. loop.aws. is delegated to a name
inside itself with no glue: SERVFAIL with the reason in EDE.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from resolver.procs import free_port, run_authd, run_dig, run_resolver
from resolver.resolution import Server

pytestmark = pytest.mark.realtime

UNIVERSE = Path(__file__).parent.parent / "zones" / "universe"
GLUELESS = UNIVERSE / "glueless"
ADDRS = {
    GLUELESS / "root": "127.0.4.1",
    GLUELESS / "aws": "127.0.4.2",
    GLUELESS / "net": "127.0.4.3",
    GLUELESS / "awsdns-01.net": "127.0.4.4",
    UNIVERSE / "api.aws": "127.0.4.5",
}


async def dig(server: Server, name: str, rdtype: str) -> dict:
    try:
        return await run_dig(server, name, rdtype)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """Five authd processes on 127.0.4.x (one shared port) and `resolver serve` in front (it logs at INFO)."""
    try:
        port = free_port(*ADDRS.values())
    except OSError as exc:
        pytest.skip(f"cannot bind 127.0.4.x loopback addresses: {exc}")
    log = tmp_path_factory.mktemp("glueless") / "resolver.log"
    with (
        run_authd(GLUELESS / "root", ADDRS[GLUELESS / "root"], port),
        run_authd(GLUELESS / "aws", ADDRS[GLUELESS / "aws"], port),
        run_authd(GLUELESS / "net", ADDRS[GLUELESS / "net"], port),
        run_authd(GLUELESS / "awsdns-01.net", ADDRS[GLUELESS / "awsdns-01.net"], port),
        run_authd(UNIVERSE / "api.aws", ADDRS[UNIVERSE / "api.aws"], port),
        run_resolver(
            ["serve", "--root-hints", str(GLUELESS / "root.hints"),
             "--authority-port", str(port)],
            log,
        ) as server,
    ):
        yield server, log


def _log_lines(log: Path, pattern: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if re.search(pattern, line)]


async def test_glueless_delegation_is_followed_through_another_tld(
    resolver: tuple[Server, Path],
) -> None:
    server, log = resolver
    r = await dig(server, "dynamodb.us-east-1.api.aws", "A")
    assert r["status"] == "NOERROR", r["raw"]
    assert r["answer"] and all(a[3] == "A" for a in r["answer"])
    # The timeline says how: the glueless referral, the NS lookup's own referral chain, and
    # the address it found.
    assert _log_lines(log, r"referral aws\. -> api\.aws\. via 127\.0\.4\.2:\d+, 1 NS without glue")
    assert _log_lines(log, r"no glue for api\.aws\.: resolving NS ns-1\.awsdns-01\.net\. A")
    assert _log_lines(
        log, r"\[NS lookup ns-1\.awsdns-01\.net\. A\] referral net\. -> awsdns-01\.net\."
    )
    assert _log_lines(log, r"NS ns-1\.awsdns-01\.net\. of api\.aws\. is 127\.0\.4\.5 \(resolved")

    # The NS address was cached with its own TTL (300 s in awsdns-01.net.): a client asking for
    # it is served from the cache, with no new resolution logged.
    answered = len(_log_lines(log, r"ns-1\.awsdns-01\.net\. A: NOERROR from"))
    ns = await dig(server, "ns-1.awsdns-01.net", "A")
    assert [a[4] for a in ns["answer"]] == ["127.0.4.5"]
    assert 290 <= int(ns["answer"][0][1]) <= 300
    assert len(_log_lines(log, r"ns-1\.awsdns-01\.net\. A: NOERROR from")) == answered

    # Another name in api.aws.: straight to the learned server, no NS lookup again.
    lookups = len(_log_lines(log, r"resolving NS ns-1\.awsdns-01\.net\."))
    nx = await dig(server, "nope.api.aws", "A")
    assert nx["status"] == "NXDOMAIN", nx["raw"]
    assert len(_log_lines(log, r"resolving NS ns-1\.awsdns-01\.net\.")) == lookups


async def test_delegation_that_needs_itself_is_servfail_with_the_reason(
    resolver: tuple[Server, Path],
) -> None:
    server, log = resolver
    with trio.fail_after(10):  # a loop must end at once, not hang until the client gives up
        r = await dig(server, "www.loop.aws", "A")
    assert r["status"] == "SERVFAIL", r["raw"]
    assert "dependency loop: loop.aws. -> ns.loop.aws. -> loop.aws." in r["raw"]
    assert _log_lines(log, r"www\.loop\.aws\. A: failed \(dependency loop")
