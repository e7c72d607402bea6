"""The operator's help text and defaults (issue 14, problems 3 and 9): every command and
subcommand has a description, every flag with a default says it, and no default port is one a
desktop already uses (5353 mDNS, 5355 LLMNR) or the test universe's (5300). Pure: parsers only.
"""

from __future__ import annotations

import argparse

import pytest

from authd.cli import main as authd_cli
from enactor import cli as enactor_cli
from enactor.cells import check as enactor_cellcheck
from enactor.checker import check as enactor_check
from enactor.lanes import lanectl
from resolver import cli as resolver_cli

TAKEN = {5353: "mDNS (RFC 6762, avahi)", 5355: "LLMNR (systemd-resolved)", 5300: "the test universe"}


def walk(parser: argparse.ArgumentParser, path: str):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}")


PARSERS = [*walk(authd_cli.build_parser(), "authd"), *walk(enactor_cli.build_parser(), "enactor"),
           *walk(resolver_cli.build_parser(), "resolver"), ("enactor check", enactor_check.build_parser()),
           ("enactor check --cells", enactor_cellcheck.build_parser()),
           *walk(lanectl.build_parser(), "enactor lanes")]


@pytest.mark.parametrize("path,parser", PARSERS, ids=[p for p, _ in PARSERS])
def test_every_command_has_a_description_and_shows_its_defaults(path: str, parser: argparse.ArgumentParser) -> None:
    if path == "enactor check" and parser.description is None:  # the stub that forwards to check
        return
    assert parser.description, f"`{path} --help` has no description"
    for action in parser._actions:
        if not action.option_strings or action.help in (None, argparse.SUPPRESS):
            continue
        assert action.help.strip(), f"{path} {action.option_strings[0]} has no help"
        default = action.default
        if default in (None, False, [], argparse.SUPPRESS) or isinstance(action, argparse._HelpAction):
            continue
        shown = parser._get_formatter()._get_help_string(action)  # what --help prints
        assert "default" in shown.lower(), \
            f"{path} {action.option_strings[0]}: help does not say its default ({default!r})"


def test_default_ports_are_clear_of_mdns_llmnr_and_the_test_universe() -> None:
    ports = {
        "authd serve --listen": authd_cli.parse_listen(authd_cli.DEFAULT_LISTEN)[1],
        "resolver serve --listen": resolver_cli.build_parser().parse_args(
            ["serve", "--forward", "127.0.0.1"]).listen.port,
        "resolver stub --listen": resolver_cli.build_parser().parse_args(
            ["stub", "--upstream", "127.0.0.1"]).listen.port,
    }
    for what, port in ports.items():
        assert port not in TAKEN, f"{what} defaults to {port}, which is {TAKEN.get(port)}"
    assert len(set(ports.values())) == len(ports)  # they can all run at once


def test_outage_help_agrees_with_itself_about_the_default() -> None:
    outage = dict(walk(enactor_cli.build_parser(), "enactor"))["enactor outage"]
    text = outage.format_help()
    assert "'fixed' (the default)" not in text and "else 2025" in text
