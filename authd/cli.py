"""The `authd` command line: one subcommand per job, each with `--help`."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="authd",
        description="An authoritative DNS server with a Route 53-compatible change API.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from authd import cli_control

    cli_control.add_subcommands(sub)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args))
