"""Clean exits for every command line (`authd`, `enactor`, `resolver`).

Shell helper (signals and trio). Two promises to the operator, made in one place:

- **A stop is not a failure.** SIGINT (Ctrl-C) and SIGTERM end a command with one line on
  stderr (`authd: stopped on SIGTERM`) and exit status 0. Inside trio, `until_signal` turns
  either signal into a cancellation, so nurseries unwind normally; outside trio (sync loops,
  start-up), SIGTERM raises `Stopped`, a `KeyboardInterrupt`, just as SIGINT does.
- **An expected failure is one line, exit status 2**, naming the file, flag or address
  (`authd: cannot listen on 127.0.0.1:5300 (udp): Address already in use`). Nobody is shown a
  traceback for a bad zone file, a port in use or a peer that is not running. Unexpected
  exceptions still print their traceback: those are bugs, and the traceback is the report.

trio (>= 0.25) wraps what escapes a nursery in exception groups; `leaves` flattens them, so a
`KeyboardInterrupt` or an `OSError` deep inside a nursery is still recognised.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FAILURE = 2  # an expected failure (bad input, port in use, peer unreachable)


class Fatal(Exception):
    """An expected failure: `message` is the one line shown (without the program name)."""


class Stopped(KeyboardInterrupt):
    """SIGTERM outside trio: handled exactly like Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_name(exc: BaseException) -> str:
    return signal.Signals(exc.signum).name if isinstance(exc, Stopped) else "SIGINT"


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """Every exception inside (nested) exception groups; `exc` itself if it is not a group."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


def one_line(exc: BaseException) -> str:
    """The failure as the operator reads it: no `[Errno 98]`, the file name kept."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class DefaultsFormatter(argparse.HelpFormatter):
    """Every flag's help shows its default: `(default: X)` is added unless the text already
    says it (so flags others add later show theirs too)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        quiet = (None, False, [], argparse.SUPPRESS)
        if (action.option_strings and "default" not in text.lower()
                and not any(action.default is q or action.default == q for q in quiet)
                and action.nargs != 0):
            text += " (default: %(default)s)"
        return text


class RawDefaultsFormatter(DefaultsFormatter, argparse.RawDescriptionHelpFormatter):
    """`DefaultsFormatter`, with the description printed as written."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (`authd serve: error: argument --listen: ...; see
    --help`) and exit status 2, instead of the whole usage block; help shows every default."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_FAILURE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def say(prog: str, text: str) -> None:
    print(f"{prog}: {text}", file=sys.stderr, flush=True)


def run_main(prog: str, fn: Callable[[], int], expected: tuple[type[BaseException], ...] = ()) -> int:
    """Run a command's body `fn` (returns its exit status) with the promises above.

    Args:
        prog: the program name that starts every line (`authd`, `enactor serve`, ...).
        expected: exception types that are expected failures: each leaf of these is printed
            as one line, `prog: message`, and the status is 2. `Fatal` and `OSError` always are.
    """
    main_thread = threading.current_thread() is threading.main_thread()  # tests call us in threads
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    if main_thread:
        signal.signal(signal.SIGTERM, _raise_stopped)
        # A process started in the background by a script inherits SIGINT ignored, and Python
        # then leaves it ignored: Ctrl-C (or kill -INT) must stop every command all the same.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(fn())
    except BaseException as exc:  # noqa: BLE001 - sorted below; bugs are re-raised
        found = list(leaves(exc))
        if found and all(isinstance(e, KeyboardInterrupt) for e in found):
            say(prog, f"stopped on {signal_name(found[0])}")
            return EXIT_OK
        if isinstance(exc, SystemExit):
            raise
        kinds = (Fatal, OSError, *expected)
        known = [e for e in found if isinstance(e, kinds) and not isinstance(e, KeyboardInterrupt)]
        if known and len(known) == len([e for e in found if not isinstance(e, KeyboardInterrupt)]):
            for line in dict.fromkeys(one_line(e) for e in known):  # one per distinct failure
                say(prog, line)
            return EXIT_FAILURE
        traceback.print_exception(exc)
        return 1
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])


async def until_signal(prog: str, fn: Callable[..., Awaitable[Any]], *args: Any,
                       on_stop: Callable[[str], None] | None = None) -> None:
    """Run `fn(*args)` until it returns or SIGINT/SIGTERM arrives; a signal cancels it and
    prints one line (`prog: stopping on SIGINT`). Use as `trio.run(until_signal, prog, fn)`."""
    import trio

    async def watch(cancel: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                (on_stop or (lambda n: say(prog, f"stopping on {n}")))(name)
                cancel.cancel()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, nursery.cancel_scope)
        await fn(*args)
        nursery.cancel_scope.cancel()
