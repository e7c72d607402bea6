"""The `resolver` command line: `serve`, `stub` and `experiment` (trio shell entry points)."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.zone
import trio

from authd.clean_exit import Fatal, OneLineParser, leaves, run_main, until_signal
from authd.logsafe import setup_logging
from resolver.acl import AccessControl, AclError, check_listen, parse_network
from resolver.cache import CachePolicy
from resolver.resolution import Delegation, Server
from resolver.server import ResolverConfig, serve_resolver

# Presets for `resolver stub`: host caches that ignore DNS TTLs.
# JVM: java.security networkaddress.cache.ttl=30 (no security manager),
# networkaddress.cache.negative.ttl=10 (the JDK's default).
STUB_PRESETS: dict[str, dict[str, int]] = {
    "jvm": {"fixed_ttl": 30, "fixed_negative_ttl": 10},
}
# Presets for `resolver serve`: match another resolver's defaults.
SERVE_PRESETS: dict[str, dict[str, object]] = {
    # Unbound 1.17+: cache-max-negative-ttl 3600, cache-min-ttl 0, cache-max-ttl 86400,
    # serve-expired no. (Unbound also caps the SOA TTL by MINIMUM the same RFC 2308 way.)
    # Its clock is in whole seconds, so entries live up to TTL+1 s (see cache.CachePolicy).
    "unbound": {"max_negative_ttl": 3600, "min_ttl": 0, "max_ttl": 86400,
                "whole_second_clock": True},
}


def duration(text: str) -> float:
    """'10ms', '1.5s', '2m', or plain seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 10ms, 1.5s, 2m)")
    value = float(m.group(1))
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def server_arg(default_port: int) -> object:
    def parse(text: str) -> Server:
        try:
            return Server.parse(text, default_port)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not HOST[:PORT]: {text!r}") from exc

    return parse


def load_root_hints(path: Path, port: int) -> Delegation:
    """A named.root-style file: root NS records and their A/AAAA addresses."""
    try:
        zone = dns.zone.from_file(
            str(path), origin=dns.name.root, relativize=False, check_origin=False
        )
    except (OSError, dns.exception.DNSException) as exc:
        raise Fatal(f"cannot read root hints {path}: {exc}") from exc
    ns = zone.get_rdataset(dns.name.root, dns.rdatatype.NS)
    if ns is None:
        raise Fatal(f"root hints {path} have no NS records for '.'")
    servers: list[Server] = []
    for rd in ns:
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            addrs = zone.get_rdataset(rd.target, rdtype)
            if addrs is not None:
                servers += [Server(a.address, port) for a in addrs]
    if not servers:
        raise Fatal(f"root hints {path} give no addresses for the root servers")
    return Delegation(dns.name.root, tuple(servers))


def _metrics_address(text: str) -> tuple[str, int]:
    from authd.cli.main import parse_listen

    return parse_listen(text)


def _add_cache_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics", type=_metrics_address, metavar="HOST:PORT",
                   help="serve Prometheus metrics (cache hits, misses, negative hits, stale "
                   "answers, hedges won) at http://HOST:PORT/metrics (default: off)")
    g = p.add_argument_group("cache")
    g.add_argument("--min-ttl", type=int, default=0, help="raise positive TTLs below this (s)")
    g.add_argument("--max-ttl", type=int, default=86400, help="cap positive TTLs (s)")
    g.add_argument(
        "--max-negative-ttl", type=int, default=3600,
        help="cap RFC 2308 negative TTLs, min(SOA TTL, SOA MINIMUM), at this many seconds",
    )
    g.add_argument(
        "--serve-stale", action="store_true",
        help="RFC 8767: when upstreams fail or time out, answer expired data with TTL 30 and EDE 3",
    )
    g.add_argument("--max-stale", type=duration, default=86400.0,
                   help="how long past expiry stale data may be served (default 1 day)")
    g.add_argument("--stale-client-timeout", type=duration, default=1.8,
                   help="with --serve-stale: answer stale data if fresh data takes longer than "
                   "this (RFC 8767 §5, default 1.8s); resolution continues and refreshes the cache")
    g.add_argument("--max-entries", type=int, default=100_000, help="cache entry bound (LRU)")
    g.add_argument("--max-bytes", type=int, default=64 * 1024 * 1024, help="cache byte bound (LRU)")
    g.add_argument("--failure-ttl", type=duration, default=1.0,
                   help="RFC 9520: remember a resolution failure this long (doubles on repeats)")


def cidr_arg(text: str) -> str:
    try:
        parse_network(text)
    except AclError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _add_access_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow", type=cidr_arg, action="append", default=[], metavar="CIDR",
        help="also serve clients in this network (repeatable, e.g. --allow 10.0.0.0/8 "
        "--allow 2001:db8::/32). Loopback (127.0.0.0/8, ::1) is always served; every other "
        "client gets REFUSED, like Unbound's access-control refuse. Listening on a "
        "non-loopback address requires at least one --allow (no accidental open resolver)",
    )


def _policy(args: argparse.Namespace, **extra: object) -> CachePolicy:
    return CachePolicy(
        min_ttl=args.min_ttl, max_ttl=args.max_ttl, max_negative_ttl=args.max_negative_ttl,
        serve_stale=args.serve_stale, max_stale=int(args.max_stale),
        stale_client_timeout=args.stale_client_timeout,
        max_entries=args.max_entries, max_bytes=args.max_bytes,
        failure_ttl=args.failure_ttl, max_failure_ttl=max(args.failure_ttl, 30.0),
        **extra,  # type: ignore[arg-type]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="resolver",
        description="A caching DNS resolver with RFC 2308 negative caching, serve-stale and "
        "hedging, and experiments on how caches stretch the outage clients see.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every decision")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="serve and stub: log only warnings and errors, not one line per "
                        "resolution")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the caching resolver",
        description="Run a caching resolver on UDP and TCP. Give --forward (one or more "
        "upstream resolvers or authorities) or --root-hints (iterative resolution). Iterative "
        "mode resolves NS names that come without glue itself (at most 4 lookups deep and 64 "
        "queries per client question; a delegation that needs itself is SERVFAIL).",
    )
    serve.add_argument("--listen", type=server_arg(53), default=Server("127.0.0.1", 5381),
                       help="HOST:PORT to answer on (default 127.0.0.1:5381, beside authd's 5380; "
                       "port 0 = any free)")
    mode = serve.add_mutually_exclusive_group(required=True)
    mode.add_argument("--forward", type=server_arg(53), nargs="+", metavar="HOST:PORT",
                      help="upstream servers, tried in order")
    mode.add_argument("--root-hints", type=Path, metavar="FILE",
                      help="named.root-style file: resolve iteratively from these root servers")
    serve.add_argument("--authority-port", type=int, default=53,
                       help="port every authority listens on in iterative mode (test universe)")
    serve.add_argument("--hedge-after", type=duration, default=None, metavar="DURATION",
                       help="ask the next upstream too if the first has not answered by then "
                       "(e.g. 10ms); the first valid answer wins")
    serve.add_argument("--timeout", type=duration, default=1.5,
                       help="per-upstream query timeout before trying the next (default 1.5s)")
    serve.add_argument("--preset", choices=sorted(SERVE_PRESETS),
                       help="match another resolver's cache defaults")
    serve.add_argument("--no-tcp", action="store_true", help="listen on UDP only")
    serve.add_argument("--tcp-max-connections", type=int, default=256, metavar="N",
                       help="open TCP client connections beyond which a new one is closed at "
                       "once (default 256); each also closes after 10 s idle or a reply not "
                       "read within 5 s")
    _add_access_flags(serve)
    _add_cache_flags(serve)

    stub = sub.add_parser(
        "stub", help="run a host-local stub cache in front of a resolver",
        description="A host's local cache (like nscd or the JVM's InetAddress cache) forwarding "
        "to one resolver, with its own fixed TTLs.",
    )
    stub.add_argument("--listen", type=server_arg(53), default=Server("127.0.0.1", 5382),
                      help="HOST:PORT to answer on (default 127.0.0.1:5382; not 5355, LLMNR's)")
    stub.add_argument("--upstream", type=server_arg(53), required=True, nargs="+",
                      metavar="HOST:PORT", help="the resolver(s) this host uses")
    stub.add_argument("--preset", choices=sorted(STUB_PRESETS),
                      help="jvm: positive 30 s, negative 10 s, whatever DNS says")
    stub.add_argument("--negative-ttl", type=int, default=None,
                      help="cache every negative answer exactly this long (SOA or not)")
    stub.add_argument("--positive-ttl", type=int, default=None,
                      help="cache every positive answer exactly this long")
    stub.add_argument("--timeout", type=duration, default=1.5, help="upstream timeout")
    _add_access_flags(stub)
    _add_cache_flags(stub)

    exp = sub.add_parser(
        "experiment", help="run a measurement (see `experiment -h`)",
        description="Measurements with real processes on loopback. outage-recovery: how long "
        "clients behind caches keep seeing the empty answer after the records are back.")
    from resolver.experiment import add_arguments  # local: matplotlib only when needed

    add_arguments(exp)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every `resolver` command: a stop (SIGINT, SIGTERM) is one line and exit 0; an expected
    failure (bad flag, unreadable root hints, address in use) one line and exit 2."""
    args = build_parser().parse_args(argv)
    return run_main(f"resolver {args.command}", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    info = args.verbose or (args.command != "experiment" and not args.quiet)
    setup_logging(  # control characters escaped in every line (authd.logsafe, issue 10)
        logging.INFO if info else logging.WARNING,
        "%(asctime)s.%(msecs)03d %(message)s", "%H:%M:%S", sys.stderr,
    )
    if args.command == "experiment":
        from resolver.experiment import run_from_args

        return run_from_args(args)
    try:
        check_listen(args.listen.host, args.allow)
    except AclError as exc:
        raise Fatal(str(exc)) from None
    acl = AccessControl.from_cidrs(args.allow)
    if args.command == "serve":
        extra = dict(SERVE_PRESETS.get(args.preset or "", {}))
        policy = _policy(args)
        if extra:
            policy = CachePolicy(**{**policy.__dict__, **extra})  # type: ignore[arg-type]
        hints = load_root_hints(args.root_hints, args.authority_port) if args.root_hints else None
        config = ResolverConfig(
            listen=args.listen, upstreams=args.forward or [], root_hints=hints, policy=policy,
            hedge_after=args.hedge_after, timeout=args.timeout, tcp=not args.no_tcp, acl=acl,
            max_tcp_connections=args.tcp_max_connections,
        )
    else:
        fixed = dict(STUB_PRESETS.get(args.preset or "", {}))
        if args.negative_ttl is not None:
            fixed["fixed_negative_ttl"] = args.negative_ttl
        if args.positive_ttl is not None:
            fixed["fixed_ttl"] = args.positive_ttl
        config = ResolverConfig(
            listen=args.listen, upstreams=args.upstream, policy=_policy(args, **fixed),
            timeout=args.timeout, name="stub", acl=acl,
        )
    async def run() -> None:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(serve_resolver, config)
            if args.metrics:
                from resolver.metrics import serve_metrics

                serve_metrics(handle.resolver, args.command, *args.metrics)

    try:
        trio.run(until_signal, f"resolver {args.command}", run)
    except BaseException as exc:
        for e in leaves(exc):
            if isinstance(e, OSError):
                raise Fatal(f"cannot listen on {config.listen}: {e.strerror or e}") from None
        raise
    return 0
