"""Separate hosts for real: network namespaces joined by veth pairs to one bridge (root only).

Layout, every name carrying this test run's id so parallel runs never collide:
- `<id>-sw`: a namespace holding only the bridge (the "switch"), so the host's own network
  is not touched beyond one veth;
- one namespace per host (`<id>-db`, `<id>-n1`, ...), each with `eth0` at 198.18.0.N/24 (RFC
  2544's benchmarking range, never a real network), its other end on the bridge;
- the test process itself on 198.18.0.254, through one veth from the root namespace, so
  boto3 and psycopg reach the hosts; traffic only ever goes to hosts created here.
Faults: `cut(host)` downs that host's switch port, `heal(host)` brings it back, `netem(host,
...)` adds delay or loss on its eth0. `close()` deletes every namespace (and so every veth).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

PREFIX = "198.18.0"


def require_netns() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    for tool, pkg in (("ip", "iproute2"), ("tc", "iproute2")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian package {pkg})")


def sh(*argv: str) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip()}")


class Net:
    def __init__(self) -> None:
        require_netns()
        self.id = f"a15{os.getpid() % 100000}"
        self.switch = f"{self.id}-sw"
        self.hosts: dict[str, tuple[str, str]] = {}  # name -> (namespace, address)
        self._root_if = f"{self.id}r"
        sh("ip", "netns", "add", self.switch)
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        # the test process's own port on the switch
        sh("ip", "link", "add", self._root_if, "type", "veth", "peer", "name", "p-root", "netns", self.switch)
        sh("ip", "-n", self.switch, "link", "set", "p-root", "master", "br0", "up")
        sh("ip", "addr", "add", f"{PREFIX}.254/24", "dev", self._root_if)
        sh("ip", "link", "set", self._root_if, "up")

    def add_host(self, name: str, octet: int) -> tuple[str, str]:
        """A new host: (its namespace, its address)."""
        ns = f"{self.id}-{name}"
        port = f"p-{name}"[:15]
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", self.switch)
        sh("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{PREFIX}.{octet}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        self.hosts[name] = (ns, f"{PREFIX}.{octet}")
        return self.hosts[name]

    def cut(self, name: str) -> None:
        sh("ip", "-n", self.switch, "link", "set", f"p-{name}"[:15], "down")

    def heal(self, name: str) -> None:
        sh("ip", "-n", self.switch, "link", "set", f"p-{name}"[:15], "up")

    def netem(self, name: str, *spec: str) -> bool:
        """e.g. netem("n3", "delay", "50ms", "loss", "1%"). False when the kernel has no
        netem qdisc (some container kernels lack sch_netem): the caller says so."""
        try:
            sh("tc", "-n", self.hosts[name][0], "qdisc", "replace", "dev", "eth0", "root", "netem", *spec)
        except RuntimeError as exc:
            if "qdisc kind is unknown" in str(exc):
                return False
            raise
        return True

    def close(self) -> None:
        for ns, _ in self.hosts.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self._root_if], capture_output=True, timeout=30)
