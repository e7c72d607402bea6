"""Harness for the acceptance tests: real third-party Route 53 clients against a real `authd serve`.

Shell code for tests (no pure core here): start `authd serve` as a process on loopback and
learn its ports from its own start-up log lines (the readiness signal, no polling), keep its
log for assertions, build the environment a boto3-based client needs to talk to it and never
to AWS, run real `dig` against it, and read the recipes of the README section "Using authd as
a local Route 53" so the tests run the very commands a user copies.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from authd import localnet
from tests.conftest import DigResult, parse_dig

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

_DNS_LINE = re.compile(r"authd listening on (\S+) port (\d+) \(udp\+tcp\)")
_API_LINE = re.compile(r"control API \(Route 53 2013-04-01\) on (http://\S+)")


def need(tool: str, package: str) -> str:
    """The tool's path, or skip the test naming the tool and where it comes from."""
    path = localnet.find_tool(tool) or (str(BIN / tool) if (BIN / tool).exists() else None)
    if path is None:
        pytest.skip(f"{tool} not installed ({package})")
    return path


@dataclass
class Authd:
    """A running `authd serve`: its DNS port, its control API URL, and every log line so far."""

    proc: subprocess.Popen[str]
    dns_host: str
    dns_port: int
    url: str
    log: list[str] = field(default_factory=list)

    def log_text(self) -> str:
        return "".join(self.log)


@contextmanager
def authd_serve(workdir: Path, *extra: str, zones: Path | None = None) -> Iterator[Authd]:
    """`authd serve` with the change API on free loopback ports; stopped by PID at the end.

    Its store is a SQLite file in `workdir`; `zones` defaults to an empty directory, so only
    what the client under test creates is served. A reader thread keeps draining stderr into
    `Authd.log`, so the process never blocks on a full pipe.
    """
    if zones is None:
        zones = workdir / "zones"
        zones.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "authd", "serve", "--zones", str(zones),
           "--store", str(workdir / "authd.db"), "--listen", "127.0.0.1:0",
           "--control", "127.0.0.1:0", *extra]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=workdir)
    assert proc.stderr is not None
    log: list[str] = []
    dns: tuple[str, int] | None = None
    url = None
    for line in proc.stderr:
        log.append(line)
        if m := _DNS_LINE.search(line):
            dns = (m.group(1), int(m.group(2)))
        if m := _API_LINE.search(line):
            url = m.group(1)
        if dns and url:
            break
    if not (dns and url):
        localnet.stop(proc)
        raise AssertionError(f"authd serve did not start (exit {proc.poll()}): {''.join(log)}")
    stream = proc.stderr
    reader = threading.Thread(target=lambda: log.extend(stream), daemon=True)
    reader.start()
    try:
        yield Authd(proc, dns[0], dns[1], url, log)
    finally:
        localnet.stop(proc)
        reader.join(10)


def route53_env(url: str, **more: str) -> dict[str, str]:
    """The environment for a boto3-based client (octoDNS, certbot, aws cli) aimed at authd.

    botocore reads AWS_ENDPOINT_URL_ROUTE_53 (from the service id "Route 53");
    AWS_ENDPOINT_URL is set to the same loopback URL so that no request can reach AWS even if
    a client used another service name. Credentials are the loopback test pair; no user
    config or credentials file is read.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL_ROUTE_53=url,
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_PAGER="",
        AWS_EC2_METADATA_DISABLED="true",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.update(more)
    return env


def dig(server: Authd, *args: str) -> DigResult:
    """Real dig against authd's DNS port (no recursion, one try) and its parsed output."""
    exe = need("dig", "Debian package bind9-dnsutils")
    cmd = [exe, f"@{server.dns_host}", "-p", str(server.dns_port), "+norecurse", "+tries=1",
           "+time=5", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"dig failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
    return parse_dig(proc.stdout)


# --- README recipes -------------------------------------------------------------------------

# A recipe is the fenced block right after `<!-- recipe: NAME -->` in README.md.
_RECIPE = re.compile(r"<!-- recipe: ([\w-]+) -->\s*```(\w*)\n(.*?)```", re.S)

# The ports the README's recipes use, replaced by the test's free ports.
README_API = "http://127.0.0.1:8053"
README_DNS_PORT = "5380"


def readme_recipe(name: str) -> str:
    """The text of README recipe `name`; fails if the README lost it."""
    found = {m.group(1): m.group(3) for m in _RECIPE.finditer(README.read_text())}
    assert name in found, f"README.md has no recipe block '<!-- recipe: {name} -->'"
    return found[name]


def run_recipe(names: str | list[str], cwd: Path, env: dict[str, str], replace: dict[str, str],
               timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run README recipes `names`, joined, with bash -euo pipefail in `cwd`, after `replace`.

    The edits only swap the README's well-known ports and paths for the test's own. Run
    `["env", name]` so the README's own exports are the ones in force. With `check` (the
    default) a failing recipe fails the test, showing the script and what it printed.
    """
    venv = cwd / ".venv"  # the README calls the tools as .venv/bin/NAME, from the checkout
    if not venv.exists():
        venv.symlink_to(ROOT / ".venv")
    names = [names] if isinstance(names, str) else names
    name = "+".join(names)
    script = "\n".join(readme_recipe(n) for n in names)
    for old, new in replace.items():
        assert old in script, f"recipe {name} no longer mentions {old!r}"
        script = script.replace(old, new)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert not check or proc.returncode == 0, (
        f"recipe {name} failed ({proc.returncode})\n--- script\n{script}\n--- stdout\n"
        f"{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc
