"""Every command exits cleanly (issue 14, problem 2): a stop is one line and exit 0, an expected
failure one line naming the file, flag or address, exit 2, and never a traceback.

Real processes (`sys.executable -m authd|enactor|resolver`), each in its own session so that
SIGINT is delivered as Ctrl-C would deliver it (see FIELD-NOTES: a background job of a script
inherits SIGINT ignored).
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from authd.clean_exit import leaves, one_line
from tests.session_helpers import assert_session_empty, interrupt_once_busy

REPO = Path(__file__).resolve().parent.parent
ZONES = str(REPO / "zones")
pytestmark = pytest.mark.realtime


def run(*argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def assert_one_line_failure(res: subprocess.CompletedProcess[str], *must: str) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 2, (res.returncode, res.stderr)
    last = res.stderr.strip().splitlines()[-1]
    for text in must:
        assert text in last, (text, last)
    return last


@pytest.fixture
def closed_port():
    """A loopback TCP port bound by this test but not listening: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def busy_port():
    """A loopback port held for UDP and TCP by this test."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", port))
    tcp.listen()
    yield port
    udp.close()
    tcp.close()


def test_authd_failures_are_one_line(tmp_path: Path, busy_port: int, closed_port: int) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bad.test.zone").write_text("$ORIGIN bad.test.\n@ 3600 IN SOA a. b. 1 2 3 4 5\nx IN A 999.1.1.1\n")
    mem = ("--store", ":memory:")
    # a bad zone file, with the change API on (the default) and off: the file and line named
    for extra in (("--control", "127.0.0.1:0", *mem), ("--control", "off")):
        res = run("authd", "serve", "--zones", str(bad), "--listen", "127.0.0.1:0", *extra, cwd=tmp_path)
        assert_one_line_failure(res, "bad.test.zone:3")
    # the change API on a public address without credentials
    res = run("authd", "serve", "--zones", ZONES, "--listen", "127.0.0.1:0", "--control", "0.0.0.0:0",
              *mem, cwd=tmp_path)
    assert_one_line_failure(res, "0.0.0.0", "--access-key")
    # the DNS port in use, with and without the change API; then the API's port in use
    for extra in (("--control", "127.0.0.1:0", *mem), ("--control", "off")):
        res = run("authd", "serve", "--zones", ZONES, "--listen", f"127.0.0.1:{busy_port}", *extra, cwd=tmp_path)
        assert_one_line_failure(res, f"127.0.0.1:{busy_port}", "in use")
    res = run("authd", "serve", "--zones", ZONES, "--listen", "127.0.0.1:0", "--control",
              f"127.0.0.1:{busy_port}", *mem, cwd=tmp_path)
    assert_one_line_failure(res, f"127.0.0.1:{busy_port}", "control API")
    # a bad flag: one line naming it, not the usage block
    res = run("authd", "serve", "--listen", "nope", cwd=tmp_path)
    assert len(res.stderr.strip().splitlines()) == 1
    assert_one_line_failure(res, "--listen")
    # the API not running
    res = run("authd", "records", "--zone", "api.aws", "--endpoint", f"http://127.0.0.1:{closed_port}",
              cwd=tmp_path)
    assert_one_line_failure(res, f"127.0.0.1:{closed_port}")
    res = run("authd", "change", "--zone", "api.aws", "--batch", "nosuch.json", cwd=tmp_path)
    assert_one_line_failure(res, "nosuch.json")


def test_enactor_failures_are_one_line(tmp_path: Path, closed_port: int) -> None:
    api = f"http://127.0.0.1:{closed_port}"  # authd is not running
    for cmd in (["status"], ["pause"], ["resume"]):
        res = run("enactor", *cmd, "--api", api, cwd=tmp_path, timeout=120)
        assert_one_line_failure(res, f"127.0.0.1:{closed_port}")
    res = run("enactor", "recover", "--plan", "7", "--api", api, cwd=tmp_path)
    assert_one_line_failure(res, "plan-0007")
    res = run("enactor", "outage", "--schedule", "nosuch.json", cwd=tmp_path)
    assert_one_line_failure(res, "nosuch.json")
    (tmp_path / "list.json").write_text("[]")
    res = run("enactor", "outage", "--schedule", "list.json", cwd=tmp_path)
    assert_one_line_failure(res, "list.json", "object")
    res = run("enactor", "run", "--name", "enactor-a", "--defects", "nonsense", cwd=tmp_path)
    assert_one_line_failure(res, "--defects")
    res = run("enactor", "check", "--defects", "nonsense", cwd=tmp_path)
    assert_one_line_failure(res, "nonsense")


def test_resolver_failures_are_one_line(tmp_path: Path, busy_port: int) -> None:
    res = run("resolver", "serve", "--listen", f"127.0.0.1:{busy_port}", "--forward", "127.0.0.1:1",
              cwd=tmp_path)
    assert_one_line_failure(res, f"127.0.0.1:{busy_port}", "in use")
    res = run("resolver", "serve", "--root-hints", "nosuch.hints", cwd=tmp_path)
    assert_one_line_failure(res, "nosuch.hints")
    res = run("resolver", "stub", "--listen", "127.0.0.1:0", cwd=tmp_path)
    assert_one_line_failure(res, "--upstream")


def _stop(argv: list[str], ready: str, sig: signal.Signals, cwd: Path) -> tuple[int, list[str]]:
    """Start `argv` in its own session, wait for `ready` on stderr, send `sig`, and return
    (exit status, stderr lines)."""
    proc = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True)
    assert proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:  # a thread: readline on a buffered pipe cannot be select()ed
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(ready in ln for ln in seen):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"{argv} exited before saying {ready!r}: {seen}"
            seen.append(line)
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while (line := lines.get_nowait() if not lines.empty() else None) is not None:
        seen.append(line)
    return proc.returncode, [ln for ln in seen if ln.strip()]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_every_server_stops_with_one_line(tmp_path: Path, sig: signal.Signals) -> None:
    commands = [
        (["authd", "serve", "--zones", ZONES, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
          "--store", str(tmp_path / "s.sqlite3")], "control API", "authd"),
        (["authd", "serve", "--zones", ZONES, "--listen", "127.0.0.1:0", "--control", "off"],
         "listening", "authd"),
        (["resolver", "serve", "--listen", "127.0.0.1:0", "--forward", "127.0.0.1:1"], "listening",
         "resolver serve"),
        (["resolver", "stub", "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"], "listening",
         "resolver stub"),
        (["enactor", "planner", "--plans", str(tmp_path / "plans")], "wrote plan-0001", "enactor planner"),
        (["enactor", "run", "--name", "enactor-a", "--plans", str(tmp_path / "plans"), "--api",
          "http://127.0.0.1:1"], "unavailable", "enactor run (enactor-a)"),
    ]
    for argv, ready, prog in commands:
        code, lines = _stop(argv, ready, sig, tmp_path)
        text = "\n".join(lines)
        assert "Traceback" not in text, text
        assert code == 0, (argv, code, text)
        # one line says why it stopped (a server may add its own closing counts after it)
        stops = [ln for ln in lines if f"{prog}: stopp" in ln and ln.endswith(sig.name)]
        assert len(stops) == 1 and sum(": stopp" in ln for ln in lines) == 1, (argv, lines[-3:])


def test_groups_flatten_and_errors_read_as_one_line() -> None:
    group = BaseExceptionGroup("x", [ExceptionGroup("y", [OSError(98, "in use")]), KeyboardInterrupt()])
    assert [type(e) for e in leaves(group)] == [OSError, KeyboardInterrupt]
    assert one_line(OSError(2, "No such file or directory", "zones/x.zone")) == \
        "zones/x.zone: No such file or directory"


def test_outage_stopped_midway_stops_its_processes_too(tmp_path: Path) -> None:
    """Ctrl-C in the middle of `enactor outage`: one line, exit 0, and no authd or enactor of
    its cluster is left behind (everything it started was in its session)."""
    import shutil

    if shutil.which("dig") is None:
        pytest.skip("dig not installed (Debian package bind9-dnsutils)")
    proc, err = interrupt_once_busy(["enactor", "outage", "--verbose", "--png", str(tmp_path / "o.png")],
                                    tmp_path)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "enactor outage: stopped on SIGINT"
    assert_session_empty(proc.pid)
