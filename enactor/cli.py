"""The `enactor` command line (placeholder until its issue lands)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check"]:  # the interleaving checker (issue 6); its own --help
        from enactor.check import main as check_main

        return check_main(argv[1:])
    parser = argparse.ArgumentParser(prog="enactor")
    parser.parse_args(argv)
    return 0
