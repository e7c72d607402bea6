"""A minimal Chrome DevTools Protocol client for the live-page test: headless Chromium on a
loopback debugging port, one page, `Runtime.evaluate` and `Page.captureScreenshot`.

Test helper (real process, real socket). The websocket is `wsproto` (already installed with
hypercorn) over a plain socket, so no new dependency; CDP is JSON request/response by `id`
with events interleaved (https://chromedevtools.github.io/devtools-protocol/), and events
are skipped here because the test polls the DOM.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import wsproto
import wsproto.events as wse

from authd.localnet import free_port


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """`chromium --headless --remote-debugging-port` in its own profile directory; stopped by
    PID (its process group) in `close`."""

    def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 60.0):
        exe = chromium_path()
        assert exe is not None, "chromium is not installed (Debian package chromium)"
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="outage-web-chromium-")
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={self.port}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self.proc.returncode}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/json/version", timeout=2).raise_for_status()
                return
            except httpx.HTTPError as exc:
                last = exc
                time.sleep(0.2)  # polling a port that is not open yet, with a deadline
        self.close()
        raise RuntimeError(f"chromium's debugging port did not open in {timeout}s: {last}")

    def new_page(self, url: str) -> Page:
        r = httpx.put(f"http://127.0.0.1:{self.port}/json/new?{url}", timeout=10)
        r.raise_for_status()
        return Page(r.json()["webSocketDebuggerUrl"])

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One page target over its websocket."""

    def __init__(self, ws_url: str, timeout: float = 30.0):
        u = urlparse(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(wse.Request(host=f"{u.hostname}:{u.port}", target=u.path)))
        self._next = 0
        self._pending: list[Any] = []
        while not any(isinstance(e, wse.AcceptConnection) for e in self._pending):
            self._read()
            for e in self._pending:
                if isinstance(e, wse.RejectConnection):
                    raise RuntimeError(f"chromium refused the websocket: {e.status_code}")
        self._pending.clear()
        self._text = ""

    def _read(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise RuntimeError("chromium closed the devtools websocket")
        self.ws.receive_data(data)
        self._pending.extend(self.ws.events())

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply (events in between are dropped)."""
        self._next += 1
        msg_id = self._next
        self.sock.sendall(self.ws.send(wse.TextMessage(json.dumps({"id": msg_id, "method": method,
                                                                   "params": params}))))
        while True:
            while self._pending:
                e = self._pending.pop(0)
                if isinstance(e, wse.Ping):
                    self.sock.sendall(self.ws.send(e.response()))
                elif isinstance(e, wse.TextMessage):
                    self._text += e.data
                    if e.message_finished:
                        doc, self._text = json.loads(self._text), ""
                        if doc.get("id") == msg_id:
                            if "error" in doc:
                                raise RuntimeError(f"{method}: {doc['error']}")
                            return dict(doc.get("result", {}))
                elif isinstance(e, wse.CloseConnection):
                    raise RuntimeError("chromium closed the devtools websocket")
            self._read()

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        """Poll the DOM until `expression` is truthy; its value. Raises at the deadline with
        the page's text, so a failure shows what the page did show."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)  # a DOM poll interval under a deadline, not a synchronisation guess
        text = self.evaluate("document.body.innerText")
        raise AssertionError(f"the page never showed {expression!r} in {timeout}s; it shows:\n{text[:3000]}")

    def screenshot(self, path: Path) -> Path:
        res = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(res["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
