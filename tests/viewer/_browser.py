"""Headless Chromium (Debian's package) driven over the DevTools protocol, for the viewer tests.

One browser per test session (starting one costs seconds); a fresh tab per test. Only what
the tests need: navigate, evaluate JavaScript, move the mouse, take screenshots, and collect
console errors and uncaught exceptions. Speaks to the browser through websocket-client on
127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

#: Executable names of Chromium, most likely first.
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium(install: bool = True) -> str:
    """The path of a Chromium executable; installs Debian's package if none (as root, with
    apt-get), since Playwright's own browser download cannot work offline."""
    for name in _NAMES:
        path = shutil.which(name)
        if path:
            return path
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
        return find_chromium(install=False)
    raise RuntimeError("no Chromium found: install Debian's `chromium` package "
                       "(apt-get install chromium) to run the viewer's browser tests")


class Browser:
    """One headless Chromium process with remote debugging on a loopback port."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.process = subprocess.Popen(
            [find_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-sync", "--mute-audio",
             "--hide-scrollbars", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.poll() is not None:
                raise RuntimeError(f"Chromium exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Chromium did not open its debugging port within 60 s")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])

    def new_page(self) -> Page:
        """A new tab."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank",
                                         method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            target = json.load(response)
        return Page(self, target["id"], target["webSocketDebuggerUrl"])

    def close(self) -> None:
        """Stop the browser."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Page:
    """One tab: commands are answered in order; events are kept for inspection."""

    def __init__(self, browser: Browser, target_id: str, url: str) -> None:
        self.browser = browser
        self.target_id = target_id
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Page.bringToFront")  # a background tab gets no animation frames

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call one DevTools method and return its result (``RuntimeError`` on an error)."""
        self._next_id += 1
        ident = self._next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll ``expression`` until it is truthy; its value (``TimeoutError`` after
        ``timeout``: a page that never gets there fails, it does not hang)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still false after {timeout} s; "
                                   f"console: {self.errors()}")
            time.sleep(0.05)

    def open(self, url: str, timeout: float = 30.0) -> None:
        """Load ``url`` and wait until the viewer says it is ready."""
        self.send("Page.navigate", url=url)
        state = self.wait_for("document.body && document.body.dataset.ready", timeout)
        assert state == "true", f"the viewer failed to start: {self.errors()}"

    def mouse_move(self, x: float, y: float) -> None:
        """Move the mouse to page coordinates (CSS pixels of the viewport)."""
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page."""
        width, height = self.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        self.send("Emulation.setDeviceMetricsOverride", width=max(1400, width),
                  height=min(height, 8000), deviceScaleFactor=1, mobile=False)
        data = self.send("Page.captureScreenshot", format="png")["data"]
        self.send("Emulation.clearDeviceMetricsOverride")
        path.write_bytes(base64.b64decode(data))
        return path

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far (drains
        pending events first)."""
        self.evaluate("0")
        out = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                               "assert"):
                out.append(" ".join(str(a.get("value", a.get("description")))
                                    for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                out.append(str(details.get("exception", {}).get("description")
                               or details.get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                out.append(str(params["entry"].get("text")) + " " +
                           str(params["entry"].get("url", "")))
        return out

    def close(self) -> None:
        """Close the tab."""
        try:
            self.ws.close()
        finally:
            urllib.request.urlopen(
                f"http://127.0.0.1:{self.browser.port}/json/close/{self.target_id}",
                timeout=30).close()
