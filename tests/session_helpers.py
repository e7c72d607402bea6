"""Test helpers: stop a real command midway with Ctrl-C, and check that nothing it started is
left running.

The command runs in its own session (`start_new_session`), so SIGINT reaches it as Ctrl-C
would (FIELD-NOTES: a background job of a script inherits SIGINT ignored), and every process
it starts shares that session id, which `ps -s` lists after the command itself has exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def interrupt_once_busy(argv: list[str], cwd: Path, busy: str = "lock",
                        within: float = 120) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m argv` in its own session, send SIGINT once a stdout line holds `busy`
    (any case; by default an enactor's lock log line: the cluster is up and at work), and
    return the exited process and its stderr. Fails if no such line came within `within`
    seconds; a process still alive 60 s after the SIGINT is killed and the test fails on its
    exit status."""
    proc = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True)
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + within
        for line in proc.stdout:  # the enactors' log lines, once the cluster runs
            if busy in line.lower():
                break
            assert time.monotonic() < deadline
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, err


def assert_session_empty(sid: int) -> None:
    """No process is left in session `sid` (the session of a command started by
    `interrupt_once_busy`, whose id is the command's pid)."""
    left = subprocess.run(["ps", "-o", "pid=,args=", "-s", str(sid)], capture_output=True, text=True)
    assert not left.stdout.strip(), f"left running: {left.stdout}"
