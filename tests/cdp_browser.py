"""A headless Chromium driven over the DevTools protocol: the machine's own browser (Debian's
``chromium``, installed by .ci/run), no browser download, one websocket.

``open(url)`` loads a page and reports its HTTP status and every console error, uncaught
exception, CSP violation and JavaScript dialog that happened while it loaded.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The browser's executable; skips the test where none is installed, except in CI."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("no chromium on PATH: .ci/run must install Debian's chromium")
    pytest.skip("no chromium on PATH (apt-get install chromium)")


@dataclass
class Load:
    url: str
    status: int | None
    problems: list[str] = field(default_factory=list)  # console errors, exceptions, dialogs


class Browser:
    def __init__(self, connection: ClientConnection) -> None:
        self._ws = connection
        self._next = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def open(self, url: str, timeout: float = 60) -> Load:
        """Navigate to `url` and wait for its load event."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not load in {timeout} s")
            self.events.append(json.loads(self._ws.recv(timeout=timeout)))
        self.evaluate("1")  # collect what the page logged while loading
        return Load(url, self._status(url), self._problems())

    def click(self, selector: str, timeout: float = 60) -> Load:
        """Click the first element matching `selector` and wait for the page it leads to."""
        self.events.clear()
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.click(); return true; })()"
        )
        assert found, f"no element matches {selector!r}"
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"clicking {selector!r} loaded nothing in {timeout} s")
            self.events.append(json.loads(self._ws.recv(timeout=timeout)))
        self.evaluate("1")
        url = str(self.evaluate("location.href"))
        return Load(url, self._status(url), self._problems())

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def offline(self, offline: bool = True) -> None:
        self.call("Network.emulateNetworkConditions", offline=offline, latency=0,
                  downloadThroughput=-1, uploadThroughput=-1)  # fmt: skip

    def _status(self, url: str) -> int | None:
        for event in self.events:
            if event.get("method") == "Network.responseReceived":
                params = event["params"]
                if params.get("type") == "Document":
                    return int(params["response"]["status"])
        return None

    def _problems(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')}")
            elif method == "Page.javascriptDialogOpening":
                found.append(f"dialog: {params.get('message')}")
        return found


@contextmanager
def chromium(workdir: Path) -> Iterator[Browser]:
    """A fresh headless Chromium (its own profile under `workdir`) and a page to drive."""
    profile = workdir / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a stale one names a dead port
    command = [
        chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
        "--window-size=1400,1000", f"--user-data-dir={profile}", "--remote-debugging-port=0",
        "about:blank",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = _devtools_port(profile / "DevToolsActivePort", process)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            yield Browser(ws)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _devtools_port(marker: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if marker.is_file() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        if process.poll() is not None:
            raise AssertionError(f"chromium exited with {process.returncode} before listening")
        time.sleep(0.05)
    raise AssertionError("chromium did not open its DevTools port in 60 s")
