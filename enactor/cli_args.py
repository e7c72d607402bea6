"""Flag types and flag groups shared by several `enactor` commands (argument parsing only).

Shell. Used by the command modules `enactor.runner_cli`, `enactor.planner_cli`,
`enactor.drills.outage_cli` and `enactor.operator_cli`; light to import, since `enactor`'s
parser is built for every command.
"""

from __future__ import annotations

import argparse
from typing import Any

from enactor import machine as m

EPILOG_DEFECTS = (
    "defects: comma-separated list of stale-check-before-lock, cleaner-by-age, "
    "rollback-crash-on-missing; '2025' for all of them; 'fixed' (the default) for none."
)


def defects_flag(text: str) -> str:
    try:
        m.parse_defects(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def seconds_flag(text: str) -> float:
    """A non-negative number of seconds (--pace, --web-linger)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def add_api_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api", default="http://127.0.0.1:8053", metavar="URL",
                   help="the Route 53 control API of authd (default http://127.0.0.1:8053)")
    p.add_argument("--access-key", default="test", help="SigV4 access key id (default test)")
    p.add_argument("--secret-key", default="test", help="SigV4 secret key (default test)")


def host_port(text: str) -> tuple[str, int]:
    from authd.cli.main import parse_listen

    return parse_listen(text)


def api_of(args: argparse.Namespace) -> Any:
    from enactor.client import Route53Http

    return Route53Http(args.api, args.access_key, args.secret_key)
