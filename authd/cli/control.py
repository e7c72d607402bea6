"""`authd change`, `authd records`, `authd export`: the control plane from the command line.

Shell. Each command talks to a `Control` backend: `HttpControl` (the Route 53 API of a
running authd, through botocore, SigV4-signed) or, with `--store FILE`, `StoreControl`
(the SQLite file directly, the same Store and the same change-batch rules). The commands do
not know which one they talk to: one code path either way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from authd.control import r53xml
from authd.model.records import RecordSet
from authd.store.contract import Change, HostedZone, StoreError
from authd.store.replica import Propagation, progress_dir

DEFAULT_ENDPOINT = "http://127.0.0.1:8053"


class CommandError(Exception):
    """A failure to report on stderr, one line per message (exit status 1: the API said no;
    `authd.clean_exit` gives 2 to the same error raised outside these commands)."""

    def __init__(self, messages: list[str], status: int = 1):
        self.messages = messages
        self.status = status  # 1: the API refused; 2: it could not be reached or read
        super().__init__("\n".join(messages))


class Control(Protocol):
    def find_zone(self, zone: str) -> HostedZone: ...

    def change(self, zone_id: str, comment: str, changes: list[Change], raw: dict[str, Any]) -> str: ...

    def status(self, change_id: str) -> str: ...

    def record_sets(self, zone_id: str) -> list[RecordSet]: ...


class HttpControl:
    """The Route 53 API of a running authd, via botocore (what boto3 uses)."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str):
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        self.client = session.create_client(
            "route53", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=Config(retries={"max_attempts": 2}),
        )

    def _call(self, op: Callable[..., Any], **kw: Any) -> Any:
        import botocore.exceptions

        try:
            return op(**kw)
        except botocore.exceptions.ClientError as exc:
            err = exc.response.get("Error", {})
            code, message = err.get("Code", "Error"), err.get("Message", str(exc))
            lines = r53xml.split_messages(message) if code == "InvalidChangeBatch" else [message]
            raise CommandError([f"{code}: {m}" for m in lines]) from exc
        except botocore.exceptions.EndpointConnectionError as exc:
            raise CommandError([f"cannot reach the control API: {exc}"], status=2) from exc

    def find_zone(self, zone: str) -> HostedZone:
        if zone.upper().startswith("Z") and "." not in zone:
            got = self._call(self.client.get_hosted_zone, Id=zone)["HostedZone"]
        else:
            name = zone if zone.endswith(".") else zone + "."
            zones = self._call(self.client.list_hosted_zones_by_name, DNSName=name, MaxItems="1")["HostedZones"]
            if not zones or zones[0]["Name"] != name.lower():
                raise CommandError([f"NoSuchHostedZone: No hosted zone found with name: {name}"])
            got = zones[0]
        return HostedZone(got["Id"].rsplit("/", 1)[-1], got["Name"], got["CallerReference"],
                          got.get("Config", {}).get("Comment", ""), 0, got.get("ResourceRecordSetCount", 0))

    def change(self, zone_id: str, comment: str, changes: list[Change], raw: dict[str, Any]) -> str:
        out = self._call(self.client.change_resource_record_sets, HostedZoneId=zone_id, ChangeBatch=raw)
        return str(out["ChangeInfo"]["Id"]).rsplit("/", 1)[-1]

    def status(self, change_id: str) -> str:
        return str(self._call(self.client.get_change, Id=change_id)["ChangeInfo"]["Status"])

    def record_sets(self, zone_id: str) -> list[RecordSet]:
        def every_page() -> list[RecordSet]:
            pages = self.client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id)
            return [RecordSet.from_route53(d) for p in pages for d in p["ResourceRecordSets"]]

        return self._call(every_page)


class StoreControl:
    """The SQLite store file directly (no server needed; a running server picks changes up
    from the journal). INSYNC means every live server following the file applied it."""

    def __init__(self, path: str):
        from authd.store.sqlstore import SQLiteStore

        self.path = path
        if path.startswith(("postgresql://", "postgres://")):
            self.store, self.propagation = _postgres_control(path)
            return
        if not Path(path).exists():
            raise CommandError([f"no store at {path}"], status=2)
        self.store = SQLiteStore(path)
        self.propagation = Propagation(status_dir=progress_dir(path))

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except StoreError as exc:
            lines = list(getattr(exc, "messages", ())) or [str(exc)]
            raise CommandError([f"{exc.code}: {m}" for m in lines]) from exc

    def find_zone(self, zone: str) -> HostedZone:
        if zone.upper().startswith("Z") and "." not in zone:
            return self._call(self.store.find_zone, zone)
        return self._call(self.store.find_zone_by_name, zone)

    def change(self, zone_id: str, comment: str, changes: list[Change], raw: dict[str, Any]) -> str:
        return self._call(self.store.change_batch, zone_id, changes, comment).id

    def status(self, change_id: str) -> str:
        info = self._call(self.store.get_change, change_id)
        return "INSYNC" if self.propagation.applied_seq() >= info.seq else "PENDING"

    def record_sets(self, zone_id: str) -> list[RecordSet]:
        return self._call(self.store.record_sets, zone_id)


def _postgres_control(url: str) -> tuple[Any, Propagation]:
    """A PostgreSQL store, and INSYNC = every live node registered in it (authd.store.nodes)."""
    from authd.store.nodes import live_seqs
    from authd.store.pgnodes import NodeRegistry
    from authd.store.pgstore import PostgresStore

    try:
        store = PostgresStore(url)
    except StoreError as exc:
        raise CommandError([str(exc)]) from exc
    registry = NodeRegistry(url)
    timeout = float(os.environ.get("AUTHD_NODE_TIMEOUT", "10"))
    return store, Propagation(peers=lambda: live_seqs(registry.rows(), timeout))


def open_control(args: argparse.Namespace) -> Control:
    if args.store:
        return StoreControl(args.store)
    return HttpControl(args.endpoint, args.access_key, args.secret_key)


# --- commands -------------------------------------------------------------------------------


def cmd_change(args: argparse.Namespace) -> int:
    try:
        raw = json.loads(Path(args.batch).read_text() if args.batch != "-" else sys.stdin.read())
    except (OSError, json.JSONDecodeError) as exc:
        raise CommandError([f"cannot read the change batch {args.batch}: {exc}"], status=2) from exc
    if isinstance(raw, dict) and "ChangeBatch" in raw:  # the --cli-input-json shape
        raw = raw["ChangeBatch"]
    try:
        r53xml.refuse_unimplemented_json(raw, "ChangeBatch")  # no field silently dropped
        comment, changes = r53xml.changes_from_route53(raw)
    except r53xml.BadRequest as exc:
        raise CommandError([f"{exc.code}: {m}" for m in exc.messages]) from exc
    control = open_control(args)
    zone = control.find_zone(args.zone)
    change_id = control.change(zone.id, comment, changes, raw)
    print(change_id, flush=True)
    if args.wait:
        start = time.monotonic()
        while True:
            status = control.status(change_id)
            if status == "INSYNC":
                print(f"{change_id} INSYNC after {time.monotonic() - start:.2f}s", file=sys.stderr)
                break
            if time.monotonic() - start > args.timeout:
                raise CommandError([f"{change_id} still {status} after {args.timeout:.0f}s"])
            time.sleep(0.05)
    return 0


def cmd_records(args: argparse.Namespace) -> int:
    control = open_control(args)
    zone = control.find_zone(args.zone)
    rows = [("NAME", "TYPE", "SET-ID", "WEIGHT", "TTL", "VALUE")]
    for rs in control.record_sets(zone.id):
        ident = rs.set_identifier or "-"
        weight = "-" if rs.weight is None else str(rs.weight)
        if rs.routing is not None:  # the policy's key where the weight column has none
            weight = _routing_column(rs)
        if rs.alias is not None:
            rows.append((rs.name, rs.rtype, ident, weight, "alias", f"-> {rs.alias.dns_name}"))
        else:
            for i, v in enumerate(rs.values):
                rows.append((rs.name if i == 0 else "", rs.rtype if i == 0 else "", ident if i == 0 else "",
                             weight if i == 0 else "", str(rs.ttl) if i == 0 else "", v))
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in range(5)) + "  " + r[5])
    return 0


def _routing_column(rs: RecordSet) -> str:
    r = rs.routing
    assert r is not None
    parts = [str(rs.weight)] if rs.weight is not None else []
    if r.failover:
        parts.append(r.failover)
    if r.region:
        parts.append(r.region)
    if r.geo is not None:
        parts.append("geo:" + "-".join(c for c in (r.geo.continent, r.geo.country, r.geo.subdivision) if c))
    if r.multivalue:
        parts.append("multivalue")
    if r.cidr is not None:
        parts.append(f"cidr:{r.cidr[1]}")
    if r.health_check_id:
        parts.append(f"hc:{r.health_check_id}")
    return " ".join(parts) or "-"


def cmd_export(args: argparse.Namespace) -> int:
    control = open_control(args)
    zone = control.find_zone(args.zone)
    doc = {"ResourceRecordSets": [rs.to_route53() for rs in control.record_sets(zone.id)]}
    text = json.dumps(doc, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--zone", required=True,
                   help="the hosted zone, by name (api.aws) or id (Z0API0AWS)")
    p.add_argument("--endpoint", default=os.environ.get("AUTHD_ENDPOINT", DEFAULT_ENDPOINT),
                   help=f"the control API of a running authd (default {DEFAULT_ENDPOINT}, or $AUTHD_ENDPOINT)")
    p.add_argument("--store", metavar="FILE|URL",
                   help="use this SQLite store file (or postgresql://USER@HOST:PORT/DB: INSYNC "
                   "then waits for every live node, $AUTHD_NODE_TIMEOUT s) directly instead of the HTTP API")
    p.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
                   help="SigV4 access key id (default $AWS_ACCESS_KEY_ID, else test)")
    p.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
                   help="SigV4 secret (default $AWS_SECRET_ACCESS_KEY, else test)")


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except CommandError as exc:
            for line in exc.messages:
                print(f"authd {args.command}: {line}", file=sys.stderr)
            return exc.status

    return run


def add_subcommands(sub: Any) -> None:
    """Register `change`, `records` and `export` on the `authd` parser's subparsers.

    Each sets `func(args) -> int` (the exit status)."""
    p = sub.add_parser(
        "change", help="apply a Route 53 change batch (all or nothing) and print its change id",
        description="Apply one change batch, the JSON `aws route53 change-resource-record-sets "
        "--change-batch` takes ({\"Comment\": ..., \"Changes\": [{\"Action\": CREATE|DELETE|UPSERT, "
        "\"ResourceRecordSet\": {...}}]}). Prints the change id. On rejection prints every "
        "problem in Route 53's words and exits 1; nothing is changed.",
    )
    _common(p)
    p.add_argument("--batch", required=True, help="the change batch JSON file (- for stdin)")
    p.add_argument("--wait", action="store_true",
                   help="wait until the change is INSYNC: applied by every serving replica")
    p.add_argument("--timeout", type=float, default=60.0, help="give up waiting after this many seconds (default 60)")
    p.set_defaults(func=_guarded(cmd_change))

    p = sub.add_parser("records", help="list a zone's record sets as a table",
                       description="List every record set of a hosted zone, in Route 53's order.")
    _common(p)
    p.set_defaults(func=_guarded(cmd_records))

    p = sub.add_parser(
        "export", help="print a zone as ListResourceRecordSets JSON (loadable from zones/)",
        description="Print the zone as {\"ResourceRecordSets\": [...]}, the shape `aws route53 "
        "list-resource-record-sets` prints; save it as zones/<origin>.json to serve it.",
    )
    _common(p)
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.set_defaults(func=_guarded(cmd_export))


# --- serve: the store, the change API and replicas (authd.node) ----------------------------


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


DEFAULT_CONTROL = ("127.0.0.1", 8053)
DEFAULT_STORE = ".authd/store.sqlite3"
MEMORY_STORE = ":memory:"


def _control_address(text: str) -> tuple[str, int] | None:
    return None if text.strip().lower() in ("off", "none", "no") else _host_port(text)


def _watch_arg(text: str) -> tuple[str, str]:
    from authd.dns.emptywatch import parse_watch

    try:
        return parse_watch(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_serve_options(p: argparse.ArgumentParser) -> None:
    """The control-plane flags of `authd serve`."""
    g = p.add_argument_group(
        "store, change API and replicas",
        "With any of these, zones are served from a store fed through the change journal "
        "(at startup and at runtime alike) instead of straight from the zone files.",
    )
    g.add_argument("--store", metavar="FILE|URL", default=None,
                   help="the store: a SQLite file (the default kind; created if missing; WAL, "
                   "synchronous=FULL), or postgresql://USER@HOST:PORT/DB to run this node as one "
                   "of many on one PostgreSQL database (tables created if missing; every node "
                   "serves DNS and the API, and GetChange waits for every live node). Zone files "
                   "seed it: a zone the store lacks is created; a zone whose file changed is "
                   "re-imported as one journaled batch; an unchanged file leaves API changes alone. "
                   f"Default with the change API on: {DEFAULT_STORE} (durable across restarts); "
                   "':memory:' keeps the store in memory (changes die with the process)")
    g.add_argument("--control", type=_control_address, default=DEFAULT_CONTROL,
                   metavar="HOST:PORT|off",
                   help=f"serve the Route 53 API (2013-04-01) here (default: {DEFAULT_CONTROL[0]}:"
                   f"{DEFAULT_CONTROL[1]}); boto3 and `aws --endpoint-url http://HOST:PORT route53 "
                   "...` work against it. 'off': no API and no store, DNS straight from the zone "
                   "files (nothing can change them; allows --workers > 1)")
    g.add_argument("--access-key", default=os.environ.get("AUTHD_ACCESS_KEY"),
                   help="SigV4 access key the API accepts (default $AUTHD_ACCESS_KEY; on loopback "
                   "test/test when unset; a non-loopback --control refuses to start without it)")
    g.add_argument("--secret-key", default=os.environ.get("AUTHD_SECRET_KEY"),
                   help="SigV4 secret for --access-key (default $AUTHD_SECRET_KEY)")
    g.add_argument("--replicas", type=int, default=0, metavar="N",
                   help="also serve DNS from N replica indexes in this process, on 127.0.0.2, "
                   "127.0.0.3, ... (same port as --listen, or free ports with port 0), each "
                   "following the journal; GetChange says INSYNC only when all have applied it")
    g.add_argument("--replica-delay", type=float, action="append", default=[], metavar="SECONDS",
                   help="propagation delay of the next replica (repeat once per replica, in order); "
                   "replicas without one get --propagation-delay")
    g.add_argument("--propagation-delay", type=float, default=0.0, metavar="SECONDS",
                   help="how late replicas apply each change (default 0): models eventual consistency")
    g.add_argument("--replica", action="store_true",
                   help="run as a replica process: follow --store read-only, serve DNS on --listen, "
                   "report progress so the primary's GetChange waits for this replica; no seeding, no API")
    g.add_argument("--replica-name", default=None,
                   help="this replica's name in logs and progress files (default replica-<port>)")
    g.add_argument("--poll-interval", type=float, default=None, metavar="SECONDS",
                   help="the active poll: how often a follower looks for new journal entries while "
                   "they keep coming (default 0.05; with PostgreSQL 1.0, a fallback: LISTEN/NOTIFY "
                   "wakes nodes at once). While none come the wait doubles up to --idle-poll, and "
                   "is back to this at the first entry; a look at an unchanged SQLite file is one "
                   "PRAGMA data_version, and on Linux a commit by any process wakes followers at "
                   "once (inotify on the -wal file), so the poll is only the fallback")
    g.add_argument("--idle-poll", type=float, default=0.5, metavar="SECONDS",
                   help="the idle poll: the ceiling the wait between looks backs off to while no "
                   "journal entry comes (never below --poll-interval; a node that reports progress "
                   "to a store file still looks every 5 s). Without inotify it bounds how late an "
                   "idle node sees another process's write")
    g.add_argument("--node-name", default=None,
                   help="PostgreSQL store: this node's name in the nodes table and `authd nodes` "
                   "(default authd-HOST-PORT; a restarted node takes its old row over)")
    g.add_argument("--node-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="PostgreSQL store: a node without a heartbeat for this long stops counting "
                   "for GetChange INSYNC (default 10; it counts again once it is back)")
    g.add_argument("--probe-any-address", action="store_true",
                   help="let health checks probe targets outside loopback (127.0.0.0/8, ::1) and "
                   "resolve FullyQualifiedDomainName targets. Off by default: a health check whose "
                   "target is elsewhere is reported UNHEALTHY with the reason and never contacted, "
                   "so a copied production config cannot make authd send traffic to real hosts")
    g.add_argument("--no-health-prober", dest="health_prober", action="store_false",
                   help="do not probe health checks on this node (the API still serves them and "
                   "DNS still routes by the stored statuses). With several nodes on one PostgreSQL "
                   "store, run the prober on one node only: each prober writes the statuses it sees "
                   "(default: the prober runs)")
    g.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                   help="override one Route 53 quota the API enforces and reports (repeatable), e.g. "
                   "MAX_HOSTED_ZONES_BY_OWNER=3 or MAX_RRSETS_BY_ZONE=50000. Names and Route 53's "
                   "defaults: MAX_HOSTED_ZONES_BY_OWNER 500, MAX_RRSETS_BY_ZONE 10000, "
                   "MAX_REUSABLE_DELEGATION_SETS_BY_OWNER 100, MAX_ZONES_BY_REUSABLE_DELEGATION_SET 100, "
                   "MAX_HEALTH_CHECKS_BY_OWNER 200, MAX_VPCS_ASSOCIATED_BY_ZONE 300, "
                   "MAX_TRAFFIC_POLICIES_BY_OWNER 50, MAX_TRAFFIC_POLICY_INSTANCES_BY_OWNER 5")
    g.add_argument("--watch-empty", action="append", default=[], metavar="NAME:TYPE",
                   type=_watch_arg,
                   help="log the moment NAME's TYPE answer goes empty (zero records, every "
                   "weighted pick) and when it comes back, at the change that did it (repeat)")
    g.add_argument("--no-metrics", dest="metrics", action="store_false",
                   help="do not count queries or serve Prometheus metrics at /metrics on the "
                   "change API's port (served by default when the API is on)")
    g.add_argument("--watch-log", metavar="FILE",
                   help="also append those moments to FILE as JSON lines (for `enactor outage`)")


def wants_node(args: argparse.Namespace) -> bool:
    """Serve from a store (the node) unless the API is off and no store or replica is asked for.

    The default is the node with the change API and a durable SQLite store; `--control off`
    alone serves the zone files directly (the fast, store-less path that --workers needs).
    """
    return bool(args.store or args.control or args.replicas or args.replica or args.watch_empty)


def store_path(args: argparse.Namespace) -> str | None:
    """The SQLite file to use, or None for an in-memory store."""
    if args.store == MEMORY_STORE:
        return None
    if args.store:
        return str(args.store)
    if args.control is not None and not args.replica:
        Path(DEFAULT_STORE).parent.mkdir(parents=True, exist_ok=True)
        return DEFAULT_STORE
    return None


def cmd_serve_node(args: argparse.Namespace) -> int:
    import logging

    import trio

    from authd.cli import dns as cli_dns
    from authd.control.app import ControlConfigError
    from authd.node import NodeConfig, run_node
    from authd.zonefiles.zonefile import ZoneLoadError

    log = logging.getLogger("authd")
    if args.workers > 1:
        log.error("--workers > 1 needs --control off (DNS straight from the zone files); with the "
                  "store and change API, start more `authd serve --replica --store FILE` processes")
        return 2
    if bool(args.access_key) != bool(args.secret_key):
        log.error("give both --access-key and --secret-key, or neither")
        return 2
    from authd.model.limits import LimitError, Limits

    try:
        limits = Limits.parse(args.limit)
    except LimitError as exc:
        log.error("not starting: %s", exc)
        return 2
    host, port = args.listen
    cfg = NodeConfig(
        store_path=store_path(args),
        zones_dir=None if args.replica else args.zones,
        dns_host=host,
        dns_port=port,
        control=args.control,
        credentials={args.access_key: args.secret_key} if args.access_key else None,
        replicas=args.replicas,
        replica_delays=args.replica_delay,
        propagation_delay=args.propagation_delay,
        replica_mode=args.replica,
        replica_name=args.replica_name or f"replica-{host}-{port}",
        poll_interval=args.poll_interval if args.poll_interval is not None else (
            1.0 if str(args.store or "").startswith(("postgresql://", "postgres://")) else 0.05),
        idle_poll=args.idle_poll,
        node_name=args.node_name,
        node_timeout=args.node_timeout,
        seed=args.seed,
        cache=not args.no_answer_cache,
        compiled=not args.no_compiled_answers,
        allow_axfr=args.allow_axfr,
        probe_any_address=args.probe_any_address,
        health_checks=args.health_prober,
        geomap=args.geo_map,
        limits=limits,
        watch_empty=args.watch_empty,
        watch_log=args.watch_log,
        metrics=args.metrics,
        dns_options=cli_dns.serve_options(args),
    )
    if cfg.dns_options["cookie_secret"] is None:  # one secret for the primary and its replicas
        cfg.dns_options["cookie_secret"] = os.urandom(16)

    async def main() -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(run_node, cfg)
        except BaseExceptionGroup as group:  # one failure at startup: report it, not the group
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    from authd.clean_exit import Fatal, leaves, until_signal

    try:
        trio.run(until_signal, "authd", main)
    except BaseException as exc:
        # One line naming what failed: the zone file, the API address, the store.
        for e in leaves(exc):
            if isinstance(e, ZoneLoadError):
                raise Fatal(f"zone load failed, not starting: {e}") from None
            if isinstance(e, ControlConfigError):
                raise Fatal(f"not starting: {e} (--control {cfg.control[0] if cfg.control else ''}:"
                            f"{cfg.control[1] if cfg.control else ''} needs --access-key and "
                            "--secret-key)") from None
            if isinstance(e, ValueError | StoreError):
                raise Fatal(f"not starting: {e}") from None
            if isinstance(e, OSError) and "cannot listen" not in str(e) and cfg.control:
                # hypercorn's bind error does not say where: it is the control API's address
                raise Fatal(f"cannot listen on {cfg.control[0]}:{cfg.control[1]} (control API): "
                            f"{e.strerror or e}") from None
        raise
    return 0
