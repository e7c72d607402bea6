"""The C UDP helper is optional: without it `authd serve` answers with the Python loop.

`authd.dns._fastudp` is built by setup.py only where a C compiler is (optional=True). Here its
import is made to fail in a real `authd serve` process (`sys.modules[...] = None`), which must
say so in its start line and answer as usual; and `--no-fast-udp` is documented in `--help`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dns.message
import dns.query
import pytest

from authd.localnet import free_port, stop, wait_answering

pytestmark = pytest.mark.realtime
ROOT = Path(__file__).resolve().parent.parent
WITHOUT = ("import sys; sys.modules['authd.dns._fastudp'] = None; "
           "from authd.cli.main import main; raise SystemExit(main())")


def test_without_the_helper_authd_serves_with_the_python_loop(tmp_path: Path) -> None:
    (tmp_path / "o.test.zone").write_text(
        "$ORIGIN o.test.\n$TTL 60\n@ IN SOA ns1 hostmaster 1 7200 900 1209600 60\n"
        "@ IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A 192.0.2.80\n")
    port = free_port()
    log = tmp_path / "authd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", WITHOUT, "serve", "--zones", str(tmp_path),
                                 "--listen", f"127.0.0.1:{port}", "--control", "off"],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_answering(port, proc, "authd", qname="www.o.test.", qtype="A", timeout=60)
        for _ in range(3):  # the second and third are exact-table hits
            reply = dns.query.udp(dns.message.make_query("www.o.test.", "A"), "127.0.0.1",
                                  port=port, timeout=5)
            assert [rr.address for rr in reply.answer[0]] == ["192.0.2.80"]
        assert "(udp+tcp), udp loop Python," in log.read_text()
    finally:
        stop(proc)


def test_no_fast_udp_is_documented() -> None:
    out = subprocess.run([sys.executable, "-m", "authd", "serve", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "--no-fast-udp" in out and "recvmmsg" in out


def test_where_a_compiler_and_python_h_are_the_helper_is_built() -> None:
    """The build is optional, so a broken one would only show as the Python loop serving and
    tests/test_fastudp.py skipping. Where gcc and Python.h are (as in CI: scripts/ensure-tools.sh
    installs gcc), `make venv` must have built it."""
    import shutil
    import sysconfig

    from authd.dns.udp_batched import AVAILABLE

    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not shutil.which("gcc") or not header.exists():
        pytest.skip(f"needs gcc and {header} to build authd.dns._fastudp")
    assert AVAILABLE, "authd.dns._fastudp is not built although gcc and Python.h are: run make venv"
