"""The README runs as written (issue 14, problem 4): every ```sh block is run, line by line, in
a fresh directory that has only `zones/` and `.venv/` from the repository, as a new user
would run it.

Markers at the end of a line: `# [server]` starts it in the background (stopped by PID with
SIGTERM after its block, and it must then exit 0), `# [slow]` runs only with README_SLOW=1,
`# [skip: why]` never runs, `# [expect: TEXT]` and `# [expect-nothing]` check its output. The README's fixed ports are remapped to free ones, and commands
that rely on a default port get it spelled out, so parallel test runs cannot collide.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from authd.localnet import free_port

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PORTS = (5380, 5381, 5382, 5390, 5391, 8053, 8080)  # every fixed port the README uses
pytestmark = [pytest.mark.realtime, pytest.mark.slow]


def blocks() -> list[list[str]]:
    """Each ```sh block as its commands; a line ending in a backslash continues on the next
    (a comment on a continued line moves to the end of the joined command)."""
    out = []
    for recipe, b in re.findall(r"(<!-- recipe: [\w-]+ -->\s*)?```sh\n(.*?)```", README.read_text(), re.S):
        if recipe:  # run whole (heredocs and all) by tests/test_acceptance_*.py
            continue
        lines: list[str] = []
        pending = ""
        for line in b.strip("\n").splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            lines.append(pending + line.strip() if pending else line)
            pending = ""
        out.append(lines)
    return out


def _explicit(line: str) -> str:
    """Spell out the defaults a line relies on, so the port remapping reaches them."""
    head = line.split("#", 1)[0].rstrip()
    words = shlex.split(head) if head else []
    if words[:2] == [".venv/bin/authd", "serve"]:
        if "--listen" not in words:
            head += " --listen 127.0.0.1:5380"
        if "--control" not in words:
            head += " --control 127.0.0.1:8053"
    elif words[:1] == [".venv/bin/authd"] and len(words) > 1 and \
            words[1] in ("change", "records", "export") and "--endpoint" not in words:
        cmd, _, redirect = head.partition(" > ")
        head = cmd + " --endpoint http://127.0.0.1:8053" + (f" > {redirect}" if redirect else "")
    elif words[:1] == [".venv/bin/enactor"] and len(words) > 1 and \
            words[1] in ("status", "pause", "resume", "recover") and "--api" not in words:
        head += " --api http://127.0.0.1:8053"
    return head


def _ready(head: str) -> str:
    """A bash condition that is true once the server started by `head` is serving."""
    words = shlex.split(head)
    addrs = [words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--listen", "--control", "--web")
             and words[i + 1] != "off"]
    if addrs:
        return " && ".join(f"(exec 3<>/dev/tcp/{a.rsplit(':', 1)[0]}/{a.rsplit(':', 1)[1]}) 2>/dev/null"
                           for a in addrs)
    if "planner" in words:
        return "test -e plans/plan-0001.json"
    if "run" in words and "--status-dir" in words:
        status = words[words.index("--status-dir") + 1]
        name = words[words.index("--name") + 1]
        return f"test -e {status.rstrip('/')}/{name}.json"
    return "true"


def script(lines: list[str], slow: bool) -> str:
    """One bash script for a block: servers in the background, every other line checked."""
    out = ["set -uo pipefail", "servers=()", "fail() { echo \"README LINE FAILED: $1\" >&2; exit 1; }",
           "stop() { for p in \"${servers[@]}\"; do kill -TERM $p 2>/dev/null; done;"
           " for p in \"${servers[@]}\"; do wait $p || fail \"server $p did not exit 0\"; done; }"]
    for i, line in enumerate(lines):
        text = line.strip()
        if not text or text.startswith("#") or "# [skip" in text or ("# [slow]" in text and not slow):
            continue
        head = _explicit(text)
        if "# [server]" in text:
            out += [f"{head} > server-{i}.log 2>&1 & servers+=($!)",
                    f"for _ in $(seq 600); do {_ready(head)} && break; sleep 0.1; done",
                    f"{_ready(head)} || {{ cat server-{i}.log >&2; fail {shlex.quote(head)}; }}"]
        elif (want := re.search(r"# \[expect: ([^\]]+)\]", text)) or "# [expect-nothing]" in text:
            check = (f'[[ "$out" == *{shlex.quote(want.group(1))}* ]]' if want else '[[ -z "$out" ]]')
            out.append(f"out=$({head}) || {{ stop; fail {shlex.quote(head)}; }}; echo \"$out\"; "
                       f"{check} || {{ stop; fail {shlex.quote(head + ' printed: ')}\"$out\"; }}")
        else:
            out.append(f"{head} || {{ stop; fail {shlex.quote(head)}; }}")
    out.append("stop")
    return "\n".join(out) + "\n"


def remap(text: str) -> str:
    mapping = {p: free_port() for p in PORTS}
    return re.sub(r"\b(" + "|".join(map(str, PORTS)) + r")\b", lambda m: str(mapping[int(m.group(1))]), text)


@pytest.mark.parametrize("index", range(len(blocks())))
def test_readme_block_runs_as_written(index: int, tmp_path: Path) -> None:
    for tool in ("dig", "bash"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (dig: Debian package bind9-dnsutils)")
    for name in ("zones", ".venv"):
        (tmp_path / name).symlink_to(REPO / name)
    lines = blocks()[index]
    body = remap(script(lines, slow=bool(os.environ.get("README_SLOW"))))
    res = subprocess.run(["bash", "-c", body], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"block {index}:\n{body}\n--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]


def test_readme_shows_the_replica_lag_before_waiting() -> None:
    text = README.read_text()
    lag = text.index("dig @127.0.0.3 -p 5380 +short new.api.aws        # the replica 3 s behind")
    assert lag < text.index("--batch zones/examples/batch-2.json --wait")
    assert (REPO / "zones" / "examples" / "batch.json").exists()
    assert "python -m enactor" not in text and "5353 " not in text.replace("Not 5353:", "")
