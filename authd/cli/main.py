"""The `authd` command line: an argparse dispatcher, one function per subcommand.

Shell. `authd serve` loads zones and serves DNS until Ctrl-C; `authd demo` starts a server on
the shipped zones and shows real `dig` output. Other subcommands register themselves the same
way: an `add_<name>_command(subparsers)` that sets `func` on its parser.
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import random
import shutil
import signal
import sys
from pathlib import Path

import trio

from authd import logsafe
from authd.clean_exit import Fatal
from authd.cli import control as cli_control
from authd.cli import dns as cli_dns
from authd.cli import nodes as cli_nodes
from authd.cli.health import add_subcommand as add_health_command
from authd.dns.geo import GeoMap, GeoMapError
from authd.dns.index import ServingIndex, index_from_zones
from authd.dns.server import DEFAULT_TCP_IDLE_TIMEOUT, DEFAULT_TCP_MAX_CONNECTIONS, serve_dns
from authd.zonefiles.zonefile import ZoneLoadError, load_zone_dir

log = logging.getLogger("authd")

DEFAULT_ZONES = "zones/"
# Not 5353: that is mDNS, and avahi holds it on most desktops (RFC 6762); not 5355
# (LLMNR, systemd-resolved) nor 5300 (the test universe, zones/universe). See README.
DEFAULT_LISTEN = "127.0.0.1:5380"


def setup_logging(level: str = "INFO") -> None:
    # one place escapes control characters in every log line (authd.logsafe, issue 10)
    logsafe.setup_logging(level, "%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s",
                          "%Y-%m-%dT%H:%M:%S", sys.stderr)


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:5380`, `[::1]:5380` or `:5380` (loopback) -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


# --- serve ------------------------------------------------------------------------------------


def add_serve_command(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve",
        help="serve DNS (UDP and TCP) from the zones until Ctrl-C",
        description="Load every *.zone (RFC 1035) and *.json (Route 53 "
        "list-resource-record-sets) file in --zones, then answer DNS queries over UDP and TCP "
        "on --listen until interrupted. A bad zone stops startup with the file, line or record "
        "and the reason; the server never starts half-loaded.",
    )
    p.add_argument("--zones", default=DEFAULT_ZONES, metavar="DIR",
                   help=f"directory of zone files to serve (default: {DEFAULT_ZONES})")
    p.add_argument("--listen", default=DEFAULT_LISTEN, type=parse_listen, metavar="HOST:PORT",
                   help=f"address and port for UDP and TCP; port 0 picks a free one "
                   f"(default: {DEFAULT_LISTEN}; IPv6 as [::1]:5380)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="number of server processes sharing the port with SO_REUSEPORT "
                   "(default: 1)")
    p.add_argument("--reuse-port", action="store_true",
                   help="set SO_REUSEPORT even with one worker, so other processes can share "
                   "the port (implied by --workers > 1)")
    p.add_argument("--tcp-idle-timeout", type=float, default=DEFAULT_TCP_IDLE_TIMEOUT,
                   metavar="SECONDS",
                   help="close a TCP connection idle this long, RFC 7766 §6.2.3 "
                   f"(default: {DEFAULT_TCP_IDLE_TIMEOUT:g})")
    p.add_argument("--tcp-max-connections", type=int, default=DEFAULT_TCP_MAX_CONNECTIONS,
                   metavar="N",
                   help="open TCP connections per worker; at the cap the connection idle "
                   "longest is closed to make room, RFC 7766 §6.2.3 "
                   f"(default: {DEFAULT_TCP_MAX_CONNECTIONS})")
    cli_dns.add_options(p)  # --tcp-write-timeout, --tcp-output-budget, --rrl*, --cookie-secret
    p.add_argument("--allow-axfr", action="store_true",
                   help="answer AXFR over TCP (refused by default)")
    p.add_argument("--no-answer-cache", action="store_true",
                   help="parse and answer every query in full, without the table of rendered "
                   "answers (for benchmarking the uncached path)")
    p.add_argument("--no-compiled-answers", action="store_true",
                   help="answer questions the answer table does not hold through the full "
                   "pipeline, not from compiled templates (for benchmarking what they save)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed for weighted picks, for reproducible runs (default: random)")
    p.add_argument("--geo-map", type=load_geo_map, default=None, metavar="FILE",
                   help="where clients are, for geolocation, latency and TestDNSAnswer: one "
                   "line per block, 'CIDR CONTINENT COUNTRY SUBDIVISION REGION' ('-' for none), "
                   "matched against the EDNS Client Subnet or else the source address "
                   "(example: zones/geo-map.txt for loopback ranges; default: none, so only "
                   "`*` defaults answer geolocation sets)")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log verbosity (default: INFO: one line per start, zone load, error)")
    p.add_argument("--worker-label", default=None, help=argparse.SUPPRESS)
    cli_control.add_serve_options(p)  # --store, --control, --replicas, --replica, delays
    p.set_defaults(func=cmd_serve)
    return p


def build_index(args: argparse.Namespace) -> ServingIndex:
    """The serving index for `serve`: zone files turned into SNAPSHOT journal entries."""
    zones = load_zone_dir(args.zones, build=True)  # the served zones built as read
    return index_from_zones(
        zones,
        rng=random.Random(args.seed),
        cache=not args.no_answer_cache,
        compiled=not args.no_compiled_answers,
        allow_axfr=args.allow_axfr,
        geomap=args.geo_map,
    )


def load_geo_map(path: str) -> GeoMap:
    """`--geo-map FILE`: read and parse it, or refuse with the line and field at fault."""
    try:
        with open(path, encoding="utf-8") as f:
            return GeoMap.parse(f.read(), source=path)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from exc
    except GeoMapError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _worker_argv(args: argparse.Namespace, port: int, label: str) -> list[str]:
    host = args.listen[0]
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    argv = [sys.executable, "-m", "authd", "serve", "--zones", str(args.zones),
            "--listen", listen, "--workers", "1", "--reuse-port", "--worker-label", label,
            "--control", "off",
            "--tcp-idle-timeout", str(args.tcp_idle_timeout),
            "--tcp-max-connections", str(args.tcp_max_connections),
            *cli_dns.worker_argv(args),
            "--log-level", args.log_level]
    if args.allow_axfr:
        argv.append("--allow-axfr")
    if args.no_answer_cache:
        argv.append("--no-answer-cache")
    if args.no_compiled_answers:
        argv.append("--no-compiled-answers")
    if args.geo_map is not None:
        argv += ["--geo-map", args.geo_map.source]
    if args.seed is not None:
        argv += ["--seed", str(args.seed + int(label.split("/")[0]))]
    return argv


async def _stop_on_signal(cancel_scope: trio.CancelScope) -> None:
    """Ctrl-C (SIGINT) or SIGTERM: log it and stop serving cleanly (workers stop with us)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("authd: stopping on %s", signal.Signals(signum).name)
            cancel_scope.cancel()
            return


async def run_serve(args: argparse.Namespace, index: ServingIndex) -> None:
    host, port = args.listen
    workers = max(1, args.workers)
    options = cli_dns.serve_options(args)
    if options["cookie_secret"] is None:
        options["cookie_secret"] = os.urandom(16)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        _, bound = await nursery.start(
            functools.partial(
                serve_dns, index, host, port,
                reuse_port=args.reuse_port or workers > 1,
                tcp_idle_timeout=args.tcp_idle_timeout,
                tcp_max_connections=args.tcp_max_connections,
                worker=args.worker_label or f"1/{workers}",
                **options,
            )
        )
        # every worker signs cookies with the same secret, so a cookie from one is valid at all
        secrets = [options["cookie_secret"], *options["cookie_previous"]]  # type: ignore[misc]
        env = {**os.environ, cli_dns.SECRET_ENV: ",".join(k.hex() for k in secrets)}
        for i in range(2, workers + 1):
            # Extra workers are whole processes (the GIL allows one core per process); they
            # bind the same port with SO_REUSEPORT and the kernel spreads queries over them.
            nursery.start_soon(
                functools.partial(trio.run_process, _worker_argv(args, bound, f"{i}/{workers}"),
                                  check=False, env=env)
            )


def cmd_serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        cli_dns.serve_options(args)
    except ValueError as exc:
        log.error("not starting: %s", exc)
        return 2
    if args.geo_map is not None:
        log.info("geo map %s: %d blocks place clients for geolocation and latency routing",
                 args.geo_map.source, len(args.geo_map))
    if cli_control.wants_node(args):  # the store, the change API, replicas: authd.node
        return cli_control.cmd_serve_node(args)
    log.info("authd starting: zones from %s, listen %s:%d, %d worker(s)",
             args.zones, args.listen[0], args.listen[1], args.workers)
    try:
        index = build_index(args)
    except ZoneLoadError as exc:
        raise Fatal(f"zone load failed, not starting: {exc}") from None
    # Zone data lives as long as the server: keep the cyclic GC from walking it on every
    # collection (those pauses showed up as p99 latency).
    gc.collect()
    gc.freeze()
    trio.run(run_serve, args, index)
    return 0


# --- demo -------------------------------------------------------------------------------------

async def _run_demo(zones_dir: str, dig: str) -> None:
    index = index_from_zones(load_zone_dir(zones_dir, build=True))
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(functools.partial(serve_dns, index, "127.0.0.1", 0))

        async def show(title: str, *dig_args: str, short: bool = False) -> None:
            cmd = [dig, f"@{host}", "-p", str(port), "+norecurse", *dig_args]
            print(f"\n### {title}\n$ {' '.join(['dig', *cmd[1:]])}", flush=True)
            result = await trio.run_process(cmd, capture_stdout=True, check=False)
            text = result.stdout.decode(errors="replace")
            if not short:
                keep = [
                    line for line in text.splitlines()
                    if line and not line.startswith((";; Query time", ";; SERVER", ";; WHEN",
                                                     ";; MSG SIZE", "; <<>> DiG", ";; global"))
                ]
                text = "\n".join(keep)
            print(text.rstrip(), flush=True)

        print(f"authd demo: serving {', '.join(index.zone_names())} on {host} port {port}")
        name = "dynamodb.us-east-1.api.aws"
        print(f"\n### Weighted answers: {name} is an alias to plan-0001's weighted tree "
              "(weights 100/50/100/100); each query picks one load balancer")
        for _ in range(8):
            cmd = [dig, f"@{host}", "-p", str(port), "+norecurse", "+short", name, "A"]
            result = await trio.run_process(cmd, capture_stdout=True, check=False)
            print(f"$ dig @{host} -p {port} +short {name} A   ->   "
                  f"{result.stdout.decode().strip() or '(empty)'}", flush=True)
        await show("An AAAA answer from the dual-stack endpoint (alias followed, no CNAME shown)",
                   name, "AAAA")
        await show("NXDOMAIN: a name that does not exist (SOA in authority, RFC 2308)",
                   "nosuch.api.aws", "A")
        await show("NODATA: the IPv4-only legacy endpoint has no AAAA (NOERROR, ANSWER: 0, SOA)",
                   "dynamodb.us-east-1.amazonaws.com", "AAAA")
        nursery.cancel_scope.cancel()


def add_demo_command(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="start authd on the shipped zones and show real dig output",
        description="Start authd on a free loopback port with --zones and run dig against "
        "it: the weighted answer changing across queries, an AAAA answer, an NXDOMAIN and a "
        "NODATA. Needs dig (Debian package bind9-dnsutils).",
    )
    p.add_argument("--zones", default=DEFAULT_ZONES, metavar="DIR",
                   help=f"directory of zone files to serve (default: {DEFAULT_ZONES})")
    p.set_defaults(func=cmd_demo)
    return p


def cmd_demo(args: argparse.Namespace) -> int:
    setup_logging("WARNING")
    dig = shutil.which("dig")
    if dig is None:
        print("authd demo needs dig (Debian package bind9-dnsutils): apt-get install "
              "bind9-dnsutils", file=sys.stderr)
        return 2
    if not Path(args.zones).is_dir():
        print(f"authd demo: no zone directory {args.zones!r}", file=sys.stderr)
        return 2
    try:
        trio.run(_run_demo, args.zones, dig)
    except ZoneLoadError as exc:
        print(f"authd demo: {exc}", file=sys.stderr)
        return 2
    return 0


# --- dispatcher -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from authd.clean_exit import OneLineParser

    parser = OneLineParser(
        prog="authd",
        description="An authoritative DNS server with Route 53-style weighted and alias "
        "record sets.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_command(sub)
    add_demo_command(sub)
    cli_control.add_subcommands(sub)  # change, records, export
    add_health_command(sub, cli_control.DEFAULT_STORE)  # health
    cli_nodes.add_subcommand(sub)  # nodes (a PostgreSQL store's authd nodes)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every `authd` command: a stop (SIGINT, SIGTERM) is one line and exit 0; an expected
    failure (bad zone file, flag, address in use, unreachable API) one line and exit 2."""
    from authd.clean_exit import run_main
    from authd.control.app import ControlConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    return run_main("authd", lambda: int(args.func(args)),
                    (ZoneLoadError, ControlConfigError, cli_control.CommandError))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
