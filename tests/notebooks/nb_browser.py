"""Serve a notebook with Voilà and drive it in headless Chromium over the DevTools protocol.

Plain Python, no Makefile and no npm: Voilà and ``websocket-client`` come from pip (``pip install
voila`` brings both), Chromium from the system (``apt-get install -y chromium``). Every process is
started in a session of its own and ended through that process group (the server's kernel and the
browser's helper processes with it), by the PID we started.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping

import psutil

CHROMIUM = Path(os.environ.get("AUTOTIMM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1400,1300",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group), output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(env or os.environ), cwd=cwd, start_new_session=True)


def descendants(pid: int) -> list[psutil.Process]:
    """Every live descendant of ``pid`` (a Jupyter kernel runs in a session of its own, outside the
    server's process group)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> list[int]:
    """End ``proc``, its process group and every descendant it started; returns the PIDs ended.

    SIGTERM first (Voilà shuts its kernels down, Chromium its helpers), SIGKILL after ``timeout``.
    """
    family = descendants(proc.pid)
    _stop_group(proc, timeout)
    left = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for child in left:
        child.terminate()
    _, still = psutil.wait_procs(left, timeout=timeout)
    for child in still:
        child.kill()
    psutil.wait_procs(still, timeout=timeout)
    return sorted([proc.pid] + [p.pid for p in family])


def _stop_group(proc: subprocess.Popen, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the group id is proc.pid: start() made it a session leader
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; give the rest of its group the same signal's grace period.
        deadline = time.monotonic() + timeout
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not group_alive(proc.pid):
            break


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until(check: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None) -> Any:
    """Poll ``check()`` until it returns something truthy; fail with ``what`` (and the log's tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    exited = f" (process exited with {proc.returncode})" if proc is not None and proc.poll() is not None else ""
    raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}{exited}.\n{tail}")


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class Voila:
    """``voila <notebook>`` on 127.0.0.1 with a random token; a context manager that ends it."""

    def __init__(self, notebook: Path, workdir: Path, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log = workdir / "voila.log"
        voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or "voila"
        cmd = [
            voila, str(notebook), "--no-browser", f"--port={self.port}", "--Voila.ip=127.0.0.1",
            f"--Voila.token={self.token}", "--Voila.port_retries=0", "--show_tracebacks=True",
        ]
        self.proc = start(cmd, self.log, env, cwd=workdir)
        self.url = f"http://127.0.0.1:{self.port}/?token={self.token}"
        self.ended: list[int] = []

    def __enter__(self) -> "Voila":
        # Only a TCP check: a GET of the page would start a kernel and run the notebook.
        wait_until(lambda: port_open(self.port), 60, "Voilà to listen", self.proc, self.log)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.ended = stop(self.proc)


class Chromium:
    """Headless Chromium with the DevTools protocol on 127.0.0.1; a context manager that ends it.

    Attributes:
        page: a :class:`Page` connected to the browser's first tab.
    """

    def __init__(self, workdir: Path) -> None:
        self.profile = workdir / "chromium-profile"
        self.profile.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "chromium.log"
        cmd = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = start(cmd, self.log)
        self.page: Page | None = None
        self.ended: list[int] = []

    def __enter__(self) -> "Chromium":
        active = self.profile / "DevToolsActivePort"
        first_line = wait_until(lambda: active.exists() and active.read_text().split("\n")[0].strip(),
                                30, "Chromium's DevTools port", self.proc, self.log)
        port = int(first_line)
        targets = wait_until(lambda: _json(f"http://127.0.0.1:{port}/json/list"), 20, "a Chromium tab", self.proc, self.log)
        tab = next(t for t in targets if t.get("type") == "page")
        self.page = Page(tab["webSocketDebuggerUrl"])
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.page is not None:
            self.page.close()
        self.ended = stop(self.proc)


def _json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


class Page:
    """The few DevTools calls the browser test needs: evaluate, click, type, press a key, screenshot."""

    def __init__(self, ws_url: str) -> None:
        import websocket  # websocket-client, installed with voila (jupyter_server depends on it)

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events received meanwhile are dropped)."""
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method} failed: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (exceptions raise RuntimeError)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error in {expression[:80]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def center(self, js_element: str) -> tuple[float, float]:
        """Page coordinates of the centre of the element a JS expression returns (scrolled into view)."""
        box = self.evaluate(
            f"(() => {{ const e = {js_element}; if (!e) return null; e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        if box is None:
            raise RuntimeError(f"No element for {js_element}")
        return float(box[0]), float(box[1])

    def click(self, js_element: str) -> None:
        """A real left click (mouse pressed and released) on the element's centre."""
        x, y = self.center(js_element)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_text(self, text: str) -> None:
        """Type into the focused element, as an input method would."""
        self.call("Input.insertText", text=text)

    def press(self, key: str, code: int) -> None:
        """Press and release a key (``"Enter", 13``, ``"ArrowRight", 39``) on the focused element."""
        text = "\r" if key == "Enter" else ""
        self.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=key, windowsVirtualKeyCode=code, text=text)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=key, windowsVirtualKeyCode=code)

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - the browser may close the socket before replying
            pass
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass
