"""`authd serve` flags for secondaries: who may transfer, TSIG keys, NOTIFY targets.

Shell (argparse only). `add_options` adds the flags; `transfer_config(args)` turns them into
the `authd.dns.xfr.TransferConfig` that `serve_dns` takes, raising ValueError with the flag named;
`worker_argv(args)` repeats them for worker processes (which never send NOTIFY: the first
process does).
"""

from __future__ import annotations

import argparse

from authd.dns import tsig
from authd.dns.notify import NotifyTarget
from authd.dns.xfr import DEFAULT_HISTORY, TransferConfig, TransferRule


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "zone transfers to secondaries",
        "AXFR (RFC 5936) and IXFR (RFC 1995) over TCP, IXFR over UDP when it fits, TSIG (RFC "
        "8945) and NOTIFY (RFC 1996). Weighted, alias and other routing-policy sets are sent as "
        "every address any client could get (see README, 'Zone transfers').")
    g.add_argument("--allow-transfer", action="append", default=[], metavar="CIDR[@KEY]",
                   help="clients in CIDR may transfer every zone; with @KEY only when the "
                   "request is signed with that TSIG key (repeatable; default: nobody, unless "
                   "--allow-axfr)")
    g.add_argument("--tsig-key", action="append", default=[], metavar="NAME:ALG:SECRET",
                   help="a TSIG key: name, algorithm (hmac-sha256, hmac-sha512, ...) and the "
                   "base64 secret (repeatable)")
    g.add_argument("--tsig-keyfile", action="append", default=[], metavar="FILE",
                   help="TSIG keys as BIND-style `key \"name\" { algorithm ...; secret \"...\"; };` "
                   "blocks, as tsig-keygen and `keymgr -t` print them (repeatable)")
    g.add_argument("--notify", action="append", default=[], metavar="HOST:PORT[@KEY]",
                   help="send NOTIFY for every zone change to this secondary, signed with KEY "
                   "if given (repeatable)")
    g.add_argument("--ixfr-history", type=int, default=DEFAULT_HISTORY, metavar="N",
                   help="changes kept per zone for IXFR; a secondary further behind gets the "
                   f"whole zone (default: {DEFAULT_HISTORY})")


def transfer_config(args: argparse.Namespace) -> TransferConfig | None:
    """The config these flags ask for (None when no flag asks for transfers)."""
    keys = [tsig.parse_key(k) for k in args.tsig_key]
    for path in args.tsig_keyfile:
        keys += tsig.parse_keyfile(path)
    ring = tsig.keyring(keys)
    rules = tuple(TransferRule.parse(r) for r in args.allow_transfer)
    notify = tuple(NotifyTarget.parse(n) for n in args.notify)
    for what, name in [("--allow-transfer", r.key) for r in rules] + [("--notify", n.key) for n in notify]:
        if name is not None and name not in ring:
            raise ValueError(f"{what} names the TSIG key {name}, which no --tsig-key or "
                             "--tsig-keyfile defines")
    if args.ixfr_history < 0:
        raise ValueError("--ixfr-history must be 0 or more")
    cfg = TransferConfig(rules, getattr(args, "allow_axfr", False), ring, notify, args.ixfr_history)
    return cfg if cfg.enabled else None


def worker_argv(args: argparse.Namespace) -> list[str]:
    out = []
    for r in args.allow_transfer:
        out += ["--allow-transfer", r]
    for k in args.tsig_key:
        out += ["--tsig-key", k]
    for f in args.tsig_keyfile:
        out += ["--tsig-keyfile", f]
    return out + ["--ixfr-history", str(args.ixfr_history)]
