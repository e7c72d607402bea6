"""`authd serve` flags for DNS hardening: TCP write timeout and budget, RRL, DNS cookies.

Shell (argparse only). `add_options` adds the flags, `serve_options(args)` turns them into
`serve_dns` keyword arguments, and `worker_argv(args)` repeats them for worker processes.
"""

from __future__ import annotations

import argparse
import os

from authd.cli import xfr as cli_xfr
from authd.dns.rrl import (
    DEFAULT_IPV4_PREFIX,
    DEFAULT_IPV6_PREFIX,
    DEFAULT_RATE,
    DEFAULT_SLIP,
    DEFAULT_WINDOW,
    MODES,
    RrlConfig,
)
from authd.dns.server import DEFAULT_TCP_OUTPUT_BUDGET, DEFAULT_TCP_WRITE_TIMEOUT

# how workers get the first process's secrets, active first, comma-separated (not in argv,
# where any local user could read them)
SECRET_ENV = "AUTHD_COOKIE_SECRET"


def parse_secret(text: str) -> bytes:
    """32 hex digits -> the 16-byte cookie secret (RFC 9018 §4.4: a 128-bit SipHash key)."""
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != 16:
        raise argparse.ArgumentTypeError("expected 32 hex digits (a 128-bit secret)")
    return secret


def add_options(p: argparse.ArgumentParser) -> None:
    cli_xfr.add_options(p)  # --allow-transfer, --tsig-key(file), --notify, --ixfr-history
    p.add_argument("--tcp-write-timeout", type=float, default=DEFAULT_TCP_WRITE_TIMEOUT,
                   metavar="SECONDS",
                   help="close a TCP connection whose answers could not be written for this "
                   f"long: its peer is not reading (default: {DEFAULT_TCP_WRITE_TIMEOUT:g})")
    p.add_argument("--tcp-output-budget", type=int, default=DEFAULT_TCP_OUTPUT_BUDGET,
                   metavar="BYTES",
                   help="answer bytes a TCP connection may have waiting to be sent; past it "
                   "its further queries are not read until they are "
                   f"(default: {DEFAULT_TCP_OUTPUT_BUDGET})")
    p.add_argument("--rrl", choices=MODES, default="auto",
                   help="response-rate limiting over UDP: auto is on for a non-loopback "
                   "--listen and off on loopback (default: auto)")
    p.add_argument("--rrl-rate", type=float, default=DEFAULT_RATE, metavar="N",
                   help="responses per second per bucket (client network, response class, "
                   f"name) before limiting (default: {DEFAULT_RATE:g})")
    p.add_argument("--rrl-slip", type=int, default=DEFAULT_SLIP, metavar="N",
                   help="every Nth limited response is sent as TC=1 (BADCOOKIE to a client "
                   f"with a cookie), the rest dropped; 0 drops all (default: {DEFAULT_SLIP})")
    p.add_argument("--rrl-window", type=float, default=DEFAULT_WINDOW, metavar="SECONDS",
                   help="how many seconds of excess a bucket remembers: a flood stays "
                   f"limited until it has stopped this long (default: {DEFAULT_WINDOW:g})")
    p.add_argument("--rrl-ipv4-prefix", type=int, default=DEFAULT_IPV4_PREFIX, metavar="BITS",
                   help=f"IPv4 clients share a bucket per /BITS (default: {DEFAULT_IPV4_PREFIX})")
    p.add_argument("--rrl-ipv6-prefix", type=int, default=DEFAULT_IPV6_PREFIX, metavar="BITS",
                   help=f"IPv6 clients share a bucket per /BITS (default: {DEFAULT_IPV6_PREFIX})")
    p.add_argument("--cookie-secret", type=parse_secret, default=None, metavar="HEX",
                   help="the DNS cookie server secret, 32 hex digits; give the same one to "
                   "every server of an anycast set (RFC 9018) (default: random at start)")
    p.add_argument("--cookie-secret-previous", type=parse_secret, action="append", default=[],
                   metavar="HEX",
                   help="a retired cookie secret whose cookies are still accepted and "
                   "renewed, for rolling the secret over (RFC 9018 §4.4); may be repeated")
    p.add_argument("--no-fast-udp", action="store_true",
                   help="answer UDP with the Python loop (one recvfrom/sendto per datagram), "
                   "not the C helper's recvmmsg/sendmmsg batches; the answers are the same "
                   "(default: the C helper when it is built)")


def serve_options(args: argparse.Namespace) -> dict[str, object]:
    """The `serve_dns` keyword arguments these flags ask for. Raises ValueError on bad ones."""
    secret = args.cookie_secret
    previous = tuple(args.cookie_secret_previous)
    if secret is None and os.environ.get(SECRET_ENV):
        secret, *rest = (parse_secret(h) for h in os.environ[SECRET_ENV].split(","))
        previous = previous or tuple(rest)
    return {
        "tcp_write_timeout": args.tcp_write_timeout,
        "tcp_output_budget": args.tcp_output_budget,
        "rrl": RrlConfig(args.rrl, args.rrl_rate, args.rrl_slip, args.rrl_window,
                         args.rrl_ipv4_prefix, args.rrl_ipv6_prefix),
        "cookie_secret": secret,
        "cookie_previous": previous,
        "transfers": cli_xfr.transfer_config(args),
        "fast_udp": not args.no_fast_udp,
    }


def worker_argv(args: argparse.Namespace) -> list[str]:
    """These flags again, for a worker process (the secret travels in SECRET_ENV)."""
    return ["--tcp-write-timeout", str(args.tcp_write_timeout),
            "--tcp-output-budget", str(args.tcp_output_budget),
            "--rrl", args.rrl, "--rrl-rate", str(args.rrl_rate),
            "--rrl-slip", str(args.rrl_slip), "--rrl-window", str(args.rrl_window),
            "--rrl-ipv4-prefix", str(args.rrl_ipv4_prefix),
            "--rrl-ipv6-prefix", str(args.rrl_ipv6_prefix), *cli_xfr.worker_argv(args),
            *(["--no-fast-udp"] if args.no_fast_udp else [])]
