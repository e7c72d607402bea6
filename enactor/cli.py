"""The `enactor` command line: run, planner, capacity, outage, demo, status, pause, resume,
gameday, cells, check, lanes, recover.

Shell. The top-level parser and `main` only: each command's flags and function live in a small
module next to what it runs (`enactor.runner_cli`, `enactor.planner_cli`,
`enactor.drills.outage_cli`, `enactor.operator_cli`, `enactor.drills.gameday_cli`,
`enactor.cells.cli`); `check` and `lanes` parse their own flags.
"""

from __future__ import annotations

import argparse
import logging
import sys

from authd.logsafe import setup_logging


def build_parser() -> argparse.ArgumentParser:
    from authd.clean_exit import OneLineParser
    from enactor import operator_cli, planner_cli, runner_cli
    from enactor.cli_args import EPILOG_DEFECTS
    from enactor.drills import gameday_cli, outage_cli

    parser = OneLineParser(
        prog="enactor",
        description="The DynamoDB DNS planner and enactors (TXT-record lock, tree build, fenced "
                    "flip, rollback, cleaner), and the October 2025 outage, reproduced.",
        epilog=EPILOG_DEFECTS)
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    runner_cli.add_parser(sub)
    planner_cli.add_parsers(sub)
    outage_cli.add_parsers(sub)
    operator_cli.add_parsers(sub)
    gameday_cli.add_parser(sub)

    from enactor.cells.cli import add_parser as add_cells_parser  # issue 16: enactor/cells/cli.py

    add_cells_parser(sub)
    sub.add_parser(
        "check",
        help="explore interleavings of the real enactor code for violations (enactor check --help)",
        add_help=False,
    )
    sub.add_parser(
        "lanes",
        help="the fast and slow lanes: run, submit, resume (enactor lanes --help)",
        description="The fast and slow lanes for changes (issue 16); see `enactor lanes --help`.",
        add_help=False,
    )
    operator_cli.add_recover_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every `enactor` command: a stop (SIGINT, SIGTERM) is one line and exit 0; an expected
    failure (bad plan or schedule file, bad flag, authd not reachable) one line and exit 2."""
    from authd.clean_exit import run_main
    from enactor.checker.schedule import ScheduleError
    from enactor.client import ApiUnavailable
    from enactor.plan import PlanError

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:  # the interleaving checker (issue 6) parses its own flags
        from enactor.checker.check import main as check_main

        return run_main("enactor check", lambda: check_main(argv[1:]))
    if argv[:1] == ["lanes"]:  # the fast and slow lanes (issue 16) parse their own flags
        from enactor.lanes.lanectl import main as lanes_main

        return run_main("enactor lanes", lambda: lanes_main(argv[1:]), (PlanError, ApiUnavailable))
    args = build_parser().parse_args(argv)
    setup_logging(logging.WARNING)  # library log lines escaped too (authd.logsafe, issue 10)
    return run_main(f"enactor {args.cmd}", lambda: int(args.fn(args)),
                    (PlanError, ScheduleError, ApiUnavailable))
