"""A real lanes setup on loopback: `authd serve`, three `enactor run` and `enactor lanes run`.

Shell (processes, sockets, files), for `tests/test_lanes_e2e.py` and `python -m bench lanes`.
Everything is started as a real process in a work directory, talks over loopback, and is
stopped by PID. DNS is asked with real `dig` (`authd`'s weighted answer is one member per
query, so "the drained address is gone" means a run of `clean_run` answers without it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authd.localnet import free_port
from enactor.client import Route53Http
from enactor.drills.outage import REPO, dig
from enactor.lanes.lanectl import submit
from enactor.plan import Plan, PlanStore
from enactor.planner import default_capacity

ENACTORS = ("enactor-a", "enactor-b", "enactor-c")
DUAL = "dynamodb.us-east-1.api.aws."
LEGACY = "dynamodb.us-east-1.amazonaws.com."
AZ1 = {"192.0.2.11", "192.0.2.12", "192.0.2.111"}  # az1's addresses, both endpoints
_A = re.compile(r"^\S+\s+\d+\s+IN\s+A\s+(\S+)$", re.M)


@dataclass
class Rig:
    work: Path
    lanes_args: list[str] = field(default_factory=list)
    lock_ttl: float = 10.0
    cells: int = 0  # 0: today's single layout; N: `enactor cells init --cells N`, one enactor each
    poll: float = 1.0  # `enactor run --poll`: each idle loop reads every endpoint and lists its zone
    dns_port: int = 0
    api_port: int = 0
    metrics_port: int = 0
    procs: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def plans(self) -> Path:
        return self.work / "plans"

    @property
    def inbox(self) -> Path:
        return self.work / "inbox"

    @property
    def lanes_log(self) -> Path:
        return self.work / "logs" / "lanes.log"

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.work / "logs" / f"{name}.log", "w")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        log.close()

    def start(self) -> None:
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        PlanStore(self.plans).put(Plan(1, float(int(time.time())), default_capacity()))
        self.dns_port, self.api_port, self.metrics_port = free_port(), free_port(), free_port()
        py = sys.executable
        zones = REPO / "zones"
        if self.cells:
            self.init_cells()
            zones = self.work / "cells" / "zones"
        self._start("authd", [py, "-m", "authd", "serve", "--zones", str(zones),
                              "--listen", f"127.0.0.1:{self.dns_port}",
                              "--control", f"127.0.0.1:{self.api_port}",
                              "--store", str(self.work / "authd.sqlite3")])
        self._wait_authd()
        where = ["--plans", str(self.plans)]
        if self.cells:
            where = ["--targets", str(self.start_cells())]
        else:
            for name in ENACTORS:
                self.start_enactor(name)
        self._start("lanes", [py, "-m", "enactor", "lanes", "run", *where,
                              "--api", self.api_url, "--dns", f"127.0.0.1:{self.dns_port}",
                              "--inbox", str(self.inbox), "--status", str(self.work / "lanes.json"),
                              "--metrics", f"127.0.0.1:{self.metrics_port}", *self.lanes_args])

    def start_enactor(self, name: str, plans: Path | None = None) -> None:
        self._start(name, [sys.executable, "-m", "enactor", "run", "--name", name,
                           "--plans", str(plans or self.plans), "--api", self.api_url,
                           "--poll", str(self.poll), "--lock-ttl", str(self.lock_ttl)])

    # --- cells (enactor.cells.layout: each its own hosted zone, plan store and enactor) ---

    @property
    def layout(self) -> Any:
        from enactor.cells.layout import CellLayout

        return CellLayout.make(self.cells)

    def cell_zone(self, i: int) -> str:
        return str(self.layout.cells[i - 1].zone)

    def cell_endpoint(self, i: int) -> str:
        """The cell's dual-stack endpoint (where customers' CNAMEs point)."""
        return str(self.layout.cells[i - 1].endpoints[0])

    def cell_plans(self, i: int) -> Path:
        return self.work / "cells" / self.layout.cells[i - 1].plan_dir

    def init_cells(self) -> Path:
        """`enactor cells init`: every cell's zone (for authd), its plan-0001 and the lanes'
        targets file, exactly as an operator would set the cells up."""
        subprocess.run([sys.executable, "-m", "enactor", "cells", "init", "--cells", str(self.cells),
                        "--dir", str(self.work / "cells")], check=True, cwd=REPO,
                       capture_output=True, text=True, timeout=60)
        return self.work / "cells" / "targets.json"

    def start_cells(self) -> Path:
        """One enactor per cell, each given only its own cell's plan store."""
        for i in range(1, self.cells + 1):
            self.start_enactor(f"enactor-cell-{i}", self.cell_plans(i))
        for i in range(1, self.cells + 1):
            self.wait_for(lambda i=i: bool(self.addresses(self.cell_endpoint(i))), 60,
                          f"cell-{i}'s plan 1 answering")
        return self.work / "cells" / "targets.json"

    def _wait_authd(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        api = Route53Http(self.api_url)
        zone, name = ("api.aws.", DUAL) if not self.cells else (self.cell_zone(1), self.cell_endpoint(1))
        while time.monotonic() < deadline:
            p = self.procs["authd"]
            if p.poll() is not None:
                raise RuntimeError(f"authd exited {p.returncode}: {self.log('authd')[-2000:]}")
            try:
                api.find_zone_by_name(zone)
                if dig(self.dns_port, name, "A", timeout=1).rcode == "NOERROR":
                    return
            except Exception:  # noqa: BLE001 - keep polling until the deadline
                pass
            time.sleep(0.2)
        raise RuntimeError(f"authd did not come up in {timeout}s")

    def log(self, name: str) -> str:
        p = self.work / "logs" / f"{name}.log"
        return p.read_text() if p.exists() else ""

    def stop(self, name: str | None = None) -> None:
        """Stop one process (or all, the controller first) by PID: SIGTERM, then SIGKILL."""
        names = [name] if name else ["lanes", *[n for n in self.procs if n.startswith("enactor")], "authd"]
        for n in names:
            p = self.procs.get(n)
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    # --- the change side ---

    def submit(self, lane: str, edits: list[dict[str, Any]], note: str = "") -> Path:
        return submit(self.inbox, {"lane": lane, "edits": edits, "note": note})

    def delivery_seconds(self, submitted: Path, timeout: float = 30.0) -> float:
        """The controller's own figure for a change: from acceptance until every endpoint's
        alias pointed at a plan carrying it (read through the change API)."""
        def find() -> re.Match[str] | None:
            log = self.log("lanes")
            acc = re.search(rf"accepted {re.escape(submitted.name)} as \w+ change #(\d+)", log)
            if acc is None:
                return None
            return re.search(rf"\w+ change #{acc.group(1)} delivered to \S+ in ([\d.]+)s", log)
        self.wait_for(lambda: find() is not None, timeout, f"the delivery line of {submitted.name}")
        m = find()
        assert m is not None
        return float(m.group(1))

    def status(self) -> dict[str, Any]:
        p = self.work / "lanes.json"
        try:
            return dict(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            return {}

    def metric(self, name: str) -> float | None:
        import httpx

        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def wait_for(self, cond: Any, timeout: float, what: str, every: float = 0.1) -> float:
        """Poll `cond()` until true; returns the monotonic time it first was. Raises on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n, p in self.procs.items():
                if p.poll() is not None and n in ("authd", "lanes"):
                    raise RuntimeError(f"{n} exited {p.returncode}:\n{self.log(n)[-3000:]}")
            if cond():
                return time.monotonic()
            time.sleep(every)
        raise TimeoutError(f"{what}: not within {timeout}s\n--- lanes log ---\n{self.log('lanes')[-3000:]}")

    # --- the DNS side ---

    def addresses(self, name: str) -> set[str]:
        return set(_A.findall(dig(self.dns_port, name, "A").text))

    def az1_gone(self, clean_run: int = 12) -> bool:
        """`clean_run` answers in a row, for each endpoint, without any az1 address."""
        for name in (DUAL, LEGACY):
            for _ in range(clean_run):
                got = self.addresses(name)
                if not got or got & AZ1:
                    return False
        return True

    def seconds_until_az1_gone(self, since: float, timeout: float, clean_run: int = 12) -> float:
        """Dig both endpoints in turn from monotonic time `since` until `clean_run` answers of
        each in a row carry no az1 address; returns the time of the first dig of that run,
        relative to `since` (the drain landed between the dig before it and that one)."""
        deadline = since + timeout
        run_start: float | None = None
        clean = 0
        while time.monotonic() < deadline:
            for name in (DUAL, LEGACY):
                t = time.monotonic()
                got = self.addresses(name)
                if not got or got & AZ1:
                    run_start, clean = None, 0
                    continue
                if run_start is None:
                    run_start = t
                clean += 1
            if run_start is not None and clean >= 2 * clean_run:
                return run_start - since
        raise TimeoutError(f"az1 still answered {timeout}s after the drain")

    def az1_back(self) -> bool:
        return any(self.addresses(DUAL) & AZ1 for _ in range(12))

    # --- fault injection ---

    def hold_lock(self, endpoint: str = DUAL, holder: str = "enactor-stuck", seconds: int = 3600) -> str:
        """A stuck holder takes the endpoint's lock (waiting until it is free): the enactors
        back off forever and nothing new is flipped."""
        from authd.store.contract import Action, Change, InvalidChangeBatch
        from enactor import machine as m

        api = Route53Http(self.api_url)
        zid = api.find_zone_by_name("api.aws." if endpoint == DUAL else "amazonaws.com.").id
        value = m.lock_value(holder, int(time.time()) + seconds)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                api.change_batch(zid, [Change(Action.CREATE, m.lock_record(endpoint, value))], "stuck holder")
                return value
            except InvalidChangeBatch:
                time.sleep(0.05)  # an enactor holds it: take it the moment it is released
        raise TimeoutError("the lock never came free")

    def release_lock(self, value: str, endpoint: str = DUAL) -> None:
        from authd.store.contract import Action, Change
        from enactor import machine as m

        api = Route53Http(self.api_url)
        zid = api.find_zone_by_name("api.aws." if endpoint == DUAL else "amazonaws.com.").id
        api.change_batch(zid, [Change(Action.DELETE, m.lock_record(endpoint, value))], "release stuck lock")


def drain(az: str = "az1") -> list[dict[str, Any]]:
    return [{"selector": az, "weight": 0}]


def restore_az1() -> list[dict[str, Any]]:
    """az1 back to the default weights (enactor.planner.default_capacity)."""
    return [{"selector": "az1-lb1", "weight": 100}, {"selector": "az1-lb2", "weight": 50, "endpoint": DUAL}]
